"""Fast scoring of a few records: the fitted pipeline compiled to plain Python and numpy.

``Predictor.predict`` on one student spends most of its ~100 ms in pandas and pandera
(validation) and in scikit-learn's per-call checks (the ``ColumnTransformer`` with pandas
output), not in the model. ``compile_model`` reads everything the fitted pipeline learned
(imputation values, scaler moments, derived-feature recipes, the one-hot layout with its
infrequent bucket, the calibrator's maps) once, and ``FastScorer.score_records`` then scores a
list of canonical records with the same arithmetic, in well under a millisecond of Python.

The fast path is an optimisation, never a second source of truth:

* ``score_records`` returns ``None`` whenever it has any doubt about a record: a value that
  would fail validation (unknown code, out of range, not a number, a missing value where the
  spec forbids one), a field the spec does not know, a source header instead of a canonical
  name, or a value of an unexpected type. The caller then takes the full path
  (``Predictor.predict``), which produces the proper validation report.
* For records it accepts, results equal ``RiskModel.score`` on the validated frame (the unit
  tests hold them to 1e-9; in practice they are bit-for-bit equal on the tested models).
* Decision rules (bands, class weights, regression risk and interval) are ``RiskModel``'s own
  methods, applied to the arrays.

Typical use in a front end::

    scorer = compile_model(predictor.spec, predictor.model)   # once, at model load
    scores = scorer.score_records(records)
    if scores is None:
        frame = predictor.predict(records)                     # full path: report, or result
"""

from __future__ import annotations

import copy
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retain.data.spec import Column, ColumnType, DatasetSpec, ImputePolicy
from retain.evaluation.calibration import _EPS, _logit
from retain.features.transformers import CodeCleaner, DerivedFeatures
from retain.native_trees import CompiledForest, UnsupportedForestError, compile_lightgbm
from retain.training.artifact import RiskModel, Scores

__all__ = ["FastScorer", "UnsupportedModelError", "compile_model"]

logger = logging.getLogger(__name__)

# the same tokens as ``retain.data.validate`` (kept private there)
_MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "?"})
# decimal numbers whose float value every parser rounds the same way (<= 15 significant digits)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d*)(?:\.(\d*))?", re.ASCII)
# anything pandas.to_numeric might also read as a number (exponents, inf, nan) that is not plain
_NUMBER_LIKE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)|[+-]?inf(?:inity)?|[+-]nan", re.I)
_MAX_DIGITS = 15
_MAX_EXACT_INT = 2**53

Record = Mapping[str, Any]


class UnsupportedModelError(ValueError):
    """The fitted pipeline holds something the fast path does not replicate; use the full path."""


class _DoubtError(Exception):
    """A value the fast path will not decide on; the caller falls back to full validation."""


# --------------------------------------------------------------------------------------------
# Validation: one rule per spec column, mirroring ``validate._coerce_column`` and the pandera
# schema for values that pass, and doubting everything else.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """How one spec column's values are checked and typed."""

    name: str
    coded: bool  # categorical or string: values become code strings
    codes: frozenset[str] | None
    check_codes: bool  # categorical with codes: anything else is an unknown code
    integer: bool
    allowed: frozenset[float] | None  # boolean columns: the allowed numbers
    low: float | None
    high: float | None
    nullable: bool


def _rule_of(col: Column) -> _Rule:
    coded = col.type in (ColumnType.categorical, ColumnType.string)
    allowed: frozenset[float] | None = None
    if col.type is ColumnType.boolean:
        allowed = frozenset(float(k) for k in (col.codes or {"0": "", "1": ""}))
    return _Rule(
        name=col.name,
        coded=coded,
        codes=frozenset(col.codes) if col.codes else None,
        check_codes=col.type is ColumnType.categorical and col.codes is not None,
        integer=col.type is ColumnType.integer,
        allowed=allowed,
        low=None if coded else col.min,
        high=None if coded else col.max,
        nullable=col.missing is not ImputePolicy.error or col.role == "target",
    )


def _plain_float(text: str) -> float | None:
    """``float(text)`` for a plain decimal with at most 15 significant digits, else ``None``."""
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match.group(1), match.group(2) or ""
    if not whole and not fraction:
        return None
    if len(whole.lstrip("0")) + len(fraction) > _MAX_DIGITS:
        raise _DoubtError
    return float(text)


def _canonical_code(value: object) -> tuple[str, bool]:
    """``(code, is_missing_token)`` as ``validate.normalize_codes`` would give it, for one value.

    Raises ``_DoubtError`` for types and values where pandas' handling depends on the other rows or
    is not worth replicating (booleans, infinities, huge numbers, exponent notation, ...).
    """
    kind = type(value)
    if kind is str:
        text = str(value).strip()
        number = _plain_float(text)
        if number is None:
            if _NUMBER_LIKE.fullmatch(text):
                raise _DoubtError
            return text, text.lower() in _MISSING_TOKENS
        if number.is_integer():
            if abs(number) >= _MAX_EXACT_INT:
                raise _DoubtError
            return str(int(number)), False
        return text, False
    if kind is int or (isinstance(value, np.integer) and not isinstance(value, np.bool_)):
        number_i = int(value)  # type: ignore[call-overload]
        if abs(number_i) >= _MAX_EXACT_INT:
            raise _DoubtError
        return str(number_i), False
    if kind is float or kind is np.float64:
        number_f = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number_f):
            raise _DoubtError
        if number_f.is_integer():
            if abs(number_f) >= _MAX_EXACT_INT:
                raise _DoubtError
            return str(int(number_f)), False
        return repr(number_f), False
    raise _DoubtError


def _is_nan(value: object) -> bool:
    return value is None or ((type(value) is float or type(value) is np.float64) and value != value)


def _code_value(value: object, rule: _Rule) -> str | None:
    """A categorical or string value as its code (``None`` when missing)."""
    if _is_nan(value):
        missing, code = True, None
    else:
        text, token = _canonical_code(value)
        in_codes = rule.codes is not None and text in rule.codes
        missing, code = token and not in_codes, text
        if not missing and rule.check_codes and not in_codes:
            raise _DoubtError  # unknown code: the full path reports it
    if missing:
        if not rule.nullable:
            raise _DoubtError
        return None
    return code


def _mixes_text_and_floats(values: list[Any]) -> bool:
    has_text = any(type(v) is str for v in values)
    return has_text and any(isinstance(v, float) and v == v for v in values)


_PLAIN_NUMBER_TYPES = frozenset({int, float, type(None)})


def _numbers_at_once(column: list[Any], rule: _Rule) -> list[float] | None:
    """``_number_value`` over a column of plain ints, floats and nulls, vectorised (``None``: other
    types present, use the per-value path). Raises ``_DoubtError`` where that path would."""
    kinds = set(map(type, column))
    if not kinds <= _PLAIN_NUMBER_TYPES:
        return None
    try:
        array = np.array(column, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        return None
    missing = np.isnan(array)
    if np.isinf(array).any() or (missing.any() and not rule.nullable):
        raise _DoubtError
    present = array[~missing]
    if int in kinds and (np.abs(present) >= _MAX_EXACT_INT).any():
        raise _DoubtError
    if rule.allowed is not None and not np.isin(present, list(rule.allowed)).all():
        raise _DoubtError
    if rule.integer and (present != np.floor(present)).any():
        raise _DoubtError
    if (rule.low is not None and (present < rule.low).any()) or (
        rule.high is not None and (present > rule.high).any()
    ):
        raise _DoubtError
    return array.tolist()


def _number_value(value: object, rule: _Rule) -> float:
    """A numeric value as float64 (NaN when missing), checked like validation checks it."""
    kind = type(value)
    number: float
    if value is None:
        number = math.nan
    elif kind is float or kind is np.float64:
        number = float(value)  # type: ignore[arg-type]
        if math.isinf(number):
            raise _DoubtError
    elif kind is int or (isinstance(value, np.integer) and not isinstance(value, np.bool_)):
        as_int = int(value)  # type: ignore[call-overload]
        if abs(as_int) >= _MAX_EXACT_INT:
            raise _DoubtError
        number = float(as_int)
    elif kind is str:
        text = str(value).strip()
        parsed = _plain_float(text)
        if parsed is None:
            token = text.lower() in _MISSING_TOKENS
            if not token or (rule.codes is not None and _canonical_code(text)[0] in rule.codes):
                raise _DoubtError  # not a number (or a code that is not a number)
            number = math.nan
        else:
            number = parsed
    else:
        raise _DoubtError
    if number != number:
        if not rule.nullable:
            raise _DoubtError
        return number
    if rule.allowed is not None and number not in rule.allowed:
        raise _DoubtError
    if rule.integer and number != math.floor(number):
        raise _DoubtError
    if (rule.low is not None and number < rule.low) or (rule.high is not None and number > rule.high):
        raise _DoubtError
    return number


# --------------------------------------------------------------------------------------------
# The compiled preprocessing: numeric groups, derived features, one-hot groups.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NumericBlock:
    """Impute (and scale) a group of numeric or derived columns into ``out``."""

    columns: tuple[str, ...]
    fill: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None
    out: slice


@dataclass(frozen=True)
class _OneHot:
    """One categorical column: output column per code (``-1``: all zeros)."""

    column: str
    fill: str
    index: dict[str, int]
    unknown: int


@dataclass(frozen=True)
class _Estimator:
    """The final estimator as a function of the transformed matrix."""

    predict: Callable[[np.ndarray], np.ndarray]
    description: str
    lightgbm: _LightGBM | None = None


class _LightGBM:
    """LightGBM's predictor, or the same forest compiled to native code once ``native`` is set."""

    def __init__(self, booster: Any, binary: bool, threads: int) -> None:
        self.booster = booster
        self.binary = binary
        self.threads = threads
        self.native: CompiledForest | None = None
        self.native_threads = 1

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        result = self.raw(matrix)
        if self.binary:  # LGBMClassifier.predict_proba's expansion
            return np.vstack((1.0 - result, result)).transpose()
        return result

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """``Booster.predict``: P(class 1) for a binary model, else what ``__call__`` returns."""
        native = self.native
        if native is not None:
            return native.predict(matrix, threads=self.native_threads)
        # one thread for a handful of rows: OpenMP start-up costs more than it saves
        return np.asarray(self.booster.predict(matrix, num_threads=1 if len(matrix) < 64 else self.threads))

    def model_text(self) -> str:
        """The trees ``Booster.predict`` uses (its best iteration when one is set)."""
        return str(self.booster.model_to_string(num_iteration=None))


def _steps(pipe: object, where: str) -> dict[str, object]:
    if not isinstance(pipe, Pipeline):
        raise UnsupportedModelError(f"{where}: expected a Pipeline, found {type(pipe).__name__}")
    return dict(pipe.steps)


def _imputer_fill(imputer: object, where: str) -> np.ndarray:
    if not isinstance(imputer, SimpleImputer):
        raise UnsupportedModelError(f"{where}: expected a SimpleImputer, found {type(imputer).__name__}")
    missing = imputer.missing_values
    if not (isinstance(missing, float) and math.isnan(missing)) or imputer.add_indicator:
        raise UnsupportedModelError(f"{where}: only NaN imputation without indicators is supported")
    return np.asarray(imputer.statistics_)


def _numeric_block(pipe: object, columns: list[str], out: slice, where: str) -> _NumericBlock:
    steps = _steps(pipe, where)
    unknown = set(steps) - {"impute", "scale"}
    if unknown or "impute" not in steps:
        raise UnsupportedModelError(f"{where}: unexpected steps {sorted(steps)}")
    fill = _imputer_fill(steps["impute"], where).astype(np.float64)
    if np.isnan(fill).any():
        raise UnsupportedModelError(f"{where}: a column was empty at fit time (the imputer drops it)")
    mean = scale = None
    if "scale" in steps:
        scaler = steps["scale"]
        if not isinstance(scaler, StandardScaler) or not (scaler.with_mean and scaler.with_std):
            raise UnsupportedModelError(f"{where}: only a StandardScaler with mean and std is supported")
        mean = np.asarray(scaler.mean_, dtype=np.float64)
        scale = np.asarray(scaler.scale_, dtype=np.float64)
    if out.stop - out.start != len(columns):
        raise UnsupportedModelError(f"{where}: {len(columns)} inputs but {out.stop - out.start} outputs")
    return _NumericBlock(tuple(columns), fill, mean, scale, out)


def _one_hot_blocks(pipe: object, columns: list[str], out: slice, where: str) -> list[_OneHot]:
    steps = _steps(pipe, where)
    if list(steps) != ["clean", "impute", "onehot"]:
        raise UnsupportedModelError(f"{where}: unexpected steps {list(steps)}")
    if not isinstance(steps["clean"], CodeCleaner):
        raise UnsupportedModelError(f"{where}: expected a CodeCleaner")
    fills = _imputer_fill(steps["impute"], where)
    encoder = steps["onehot"]
    if not isinstance(encoder, OneHotEncoder):
        raise UnsupportedModelError(f"{where}: expected a OneHotEncoder")
    if encoder.drop is not None or encoder.handle_unknown not in ("infrequent_if_exist", "ignore"):
        raise UnsupportedModelError(f"{where}: only drop=None with ignore/infrequent_if_exist is supported")
    infrequent = getattr(encoder, "infrequent_categories_", None)
    blocks: list[_OneHot] = []
    position = out.start
    for i, column in enumerate(columns):
        fill = fills[i]
        if not isinstance(fill, str):
            raise UnsupportedModelError(f"{where}: no imputation value for {column!r}")
        categories = [str(c) for c in encoder.categories_[i]]
        rare = (
            {str(c) for c in infrequent[i]} if infrequent is not None and infrequent[i] is not None else set()
        )
        index: dict[str, int] = {}
        for code in categories:
            if code not in rare:
                index[code] = position
                position += 1
        unknown = -1
        if rare:
            unknown = position  # the "infrequent_sklearn" column comes last
            for code in rare:
                index[code] = position
            position += 1
        blocks.append(_OneHot(column=column, fill=fill, index=index, unknown=unknown))
    if position != out.stop:
        raise UnsupportedModelError(f"{where}: one-hot layout does not match the encoder's output")
    return blocks


def _sklearn_without_names(estimator: object) -> Any:
    """A shallow copy that takes numpy input without a feature-names warning."""
    clone: Any = copy.copy(estimator)
    if "feature_names_in_" in vars(clone):
        del clone.feature_names_in_
    return clone


def _compile_estimator(model: RiskModel, estimator: object, n_features: int) -> _Estimator:
    n_in = getattr(estimator, "n_features_in_", n_features)
    if n_in != n_features:
        raise UnsupportedModelError(f"estimator expects {n_in} features, the pipeline makes {n_features}")
    classification = model.is_classification
    if classification:
        classes = np.asarray(getattr(estimator, "classes_", []))
        if classes.tolist() != list(range(len(model.labels))):
            raise UnsupportedModelError("estimator classes do not match the task's labels")
    module = type(estimator).__module__
    if module.startswith("lightgbm"):
        if callable(getattr(estimator, "objective_", None)):
            raise UnsupportedModelError("LightGBM with a custom objective")
        n_jobs = getattr(estimator, "n_jobs", None)
        threads = int(n_jobs) if isinstance(n_jobs, int) and n_jobs > 0 else 0  # 0: OpenMP default
        lightgbm = _LightGBM(
            estimator.booster_,  # type: ignore[attr-defined]
            binary=classification and len(model.labels) == 2,
            threads=threads,
        )
        return _Estimator(lightgbm, "lightgbm booster", lightgbm)
    if module.startswith("xgboost"):
        booster_x = estimator.get_booster()  # type: ignore[attr-defined]
        if getattr(estimator, "booster", None) == "gblinear":
            iteration_range: tuple[int, int] = (0, 0)
        else:
            best = getattr(estimator, "best_iteration", None) if _has_best_iteration(estimator) else None
            iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
        if classification and getattr(estimator, "objective", None) == "multi:softmax":
            raise UnsupportedModelError("XGBoost multi:softmax")
        missing = float(getattr(estimator, "missing", np.nan))
        n_classes = len(model.labels)

        def xgboost_predict(matrix: np.ndarray) -> np.ndarray:
            result = booster_x.inplace_predict(
                matrix, iteration_range=iteration_range, missing=missing, validate_features=False
            )
            if not classification:
                return np.asarray(result)
            if result.ndim == 2 and result.shape[1] == n_classes:
                return np.asarray(result)
            return np.vstack((1.0 - result, result)).transpose()  # XGBClassifier.predict_proba

        return _Estimator(xgboost_predict, "xgboost booster")
    if module.startswith("sklearn"):
        plain = _sklearn_without_names(estimator)
        method = plain.predict_proba if classification else plain.predict

        def sklearn_predict(matrix: np.ndarray) -> np.ndarray:
            # column-major, like a pandas frame's values: the same BLAS summation order
            return np.asarray(method(np.asfortranarray(matrix)))

        return _Estimator(sklearn_predict, f"scikit-learn {type(estimator).__name__}")
    raise UnsupportedModelError(f"unsupported estimator {type(estimator).__name__}")


def _has_best_iteration(estimator: object) -> bool:
    try:
        getattr(estimator, "best_iteration")  # noqa: B009 - a property that raises when unset
    except AttributeError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Calibration: ``ProbabilityCalibrator.transform`` without scikit-learn's per-call checks.
# --------------------------------------------------------------------------------------------


def _compile_map(fitted: object) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(fitted, LogisticRegression):
        coef = np.asarray(fitted.coef_, dtype=np.float64)
        intercept = np.asarray(fitted.intercept_, dtype=np.float64)
        if coef.shape != (1, 1) or intercept.shape != (1,):
            raise UnsupportedModelError("calibration map is not a one-feature binary logistic regression")
        slope, offset = float(coef[0, 0]), float(intercept[0])

        def platt(p: np.ndarray) -> np.ndarray:
            # LogisticRegression.predict_proba(logit(p))[:, 1] = expit(x @ coef.T + intercept)
            return np.asarray(expit(_logit(p) * slope + offset), dtype=np.float64)

        return platt
    if isinstance(fitted, IsotonicRegression):
        if fitted.out_of_bounds != "clip":
            raise UnsupportedModelError("isotonic calibration must clip out-of-bounds values")
        xs = np.asarray(fitted.X_thresholds_, dtype=np.float64)
        ys = np.asarray(fitted.y_thresholds_, dtype=np.float64)
        low, high = float(fitted.X_min_), float(fitted.X_max_)

        def isotonic(p: np.ndarray) -> np.ndarray:
            t = np.clip(p, low, high)
            if len(ys) == 1:
                return ys.repeat(t.shape)
            # scipy's interp1d(kind="linear"), which IsotonicRegression.predict uses
            hi = np.searchsorted(xs, t).clip(1, len(xs) - 1)
            lo = hi - 1
            slope = (ys[hi] - ys[lo]) / (xs[hi] - xs[lo])
            return np.asarray(slope * (t - xs[lo]) + ys[lo], dtype=np.float64)

        return isotonic
    raise UnsupportedModelError(f"unsupported calibration map {type(fitted).__name__}")


def _compile_calibrator(model: RiskModel) -> Callable[[np.ndarray], np.ndarray] | None:
    calibrator = model.calibrator
    if calibrator is None:
        return None
    maps = [_compile_map(m) for m in calibrator.maps_]
    if calibrator.n_classes_ == 2:
        if len(maps) != 1:
            raise UnsupportedModelError("binary calibrator needs exactly one map")
        only = maps[0]

        def binary(proba: np.ndarray) -> np.ndarray:
            # ``ProbabilityCalibrator.transform`` on the positive class's column (a vector is also
            # taken as that column: the estimator's own output, before its two-column expansion)
            p1 = np.clip(only(proba[:, 1] if proba.ndim == 2 else proba), 0.0, 1.0)
            return np.column_stack([1 - p1, p1])

        return binary

    def multiclass(proba: np.ndarray) -> np.ndarray:
        cols = [np.clip(m(proba[:, k]), _EPS, 1.0) for k, m in enumerate(maps)]
        stacked = np.column_stack(cols)
        return stacked / stacked.sum(axis=1, keepdims=True)

    return multiclass


# --------------------------------------------------------------------------------------------
# The scorer
# --------------------------------------------------------------------------------------------


_FEW_ROWS = 8  # up to this many rows, the feature matrix is built in plain Python

_BlockLists = tuple[tuple[str, ...], list[float], list[float | None], list[float], int]


def _block_lists(block: _NumericBlock) -> _BlockLists:
    n = len(block.columns)
    means: list[float | None] = block.mean.tolist() if block.mean is not None else [None] * n
    scales: list[float] = block.scale.tolist() if block.scale is not None else [1.0] * n
    return (block.columns, block.fill.tolist(), means, scales, int(block.out.start))


class FastScorer:
    """A ``RiskModel`` compiled for low-latency scoring of canonical records.

    Build it with ``compile_model``. It keeps no mutable state of its own after construction;
    concurrent calls are as safe as concurrent predictions of the underlying booster or
    estimator (LightGBM, XGBoost ``gbtree`` and scikit-learn predict without shared writes).

    Attributes
    ----------
    spec : DatasetSpec
    model : RiskModel
    feature_names_out : list of str
        Names of the transformed features, in the order the estimator sees them.
    estimator : str
        Which prediction routine the final estimator uses.
    """

    def __init__(
        self,
        spec: DatasetSpec,
        model: RiskModel,
        rules: dict[str, _Rule],
        features: list[str],
        numeric: list[_NumericBlock],
        derived: list[tuple[str, str, str, str]],
        derived_block: _NumericBlock | None,
        one_hot: list[_OneHot],
        feature_names_out: list[str],
        estimator: _Estimator,
        calibrate: Callable[[np.ndarray], np.ndarray] | None,
    ) -> None:
        self.spec = spec
        self.model = model
        self._rules = rules
        self._known = frozenset(rules) | {spec.id.column}
        self._features = features
        self._numeric = numeric
        self._derived = derived
        self._derived_block = derived_block
        self._one_hot = one_hot
        self.feature_names_out = feature_names_out
        self._estimator = estimator
        self.estimator = estimator.description
        self._calibrate = calibrate
        self._labels = np.asarray(model.labels, dtype=object)
        # the numeric blocks as Python lists, for ``_matrix_of_few``
        self._numeric_lists = [_block_lists(block) for block in numeric]
        self._derived_lists = _block_lists(derived_block) if derived_block is not None else None
        self._native_lock = threading.Lock()
        self._native_compiling = False
        # Codes by (type, value) per column: coded values repeat, and each maps to one answer.
        self._code_memo: dict[str, dict[tuple[type, object], str | None]] = {name: {} for name in rules}

    @property
    def n_features_out(self) -> int:
        return len(self.feature_names_out)

    # ---- native trees -----------------------------------------------------------------------

    @property
    def has_lightgbm(self) -> bool:
        """Whether the estimator is a LightGBM forest (``compile_native`` may apply)."""
        return self._estimator.lightgbm is not None

    @property
    def native(self) -> bool:
        """Whether the estimator runs as compiled native code (``compile_native``)."""
        lightgbm = self._estimator.lightgbm
        return lightgbm is not None and lightgbm.native is not None

    def compile_native(
        self, cache_dir: Path | None = None, threads: int = 1, *, background: bool = False
    ) -> bool:
        """Run a LightGBM estimator as native code from now on (``retain.native_trees``).

        The predictions stay bit-for-bit the same; single records score several times faster
        and batches two to four times. Returns ``False`` (and keeps LightGBM's predictor) for
        other estimators and for forests the compiler does not replicate.

        Parameters
        ----------
        cache_dir : Path, optional
            Machine code kept between processes (see ``native_trees.compile_lightgbm``).
        threads : int, default 1
            Threads for large batches (the native code releases the GIL).
        background : bool, default False
            Compile in a daemon thread and return ``True`` at once; scoring goes on with
            LightGBM's predictor until the swap (one attribute assignment, safe while other
            threads score). A second call while one compiles starts nothing.
        """
        lightgbm = self._estimator.lightgbm
        if lightgbm is None:
            return False
        with self._native_lock:
            if lightgbm.native is not None:
                lightgbm.native_threads = max(1, threads)
                return True
            if self._native_compiling:
                return True
            self._native_compiling = True
        if not background:
            return self._compile_native(lightgbm, cache_dir, threads)
        threading.Thread(
            target=self._compile_native,
            args=(lightgbm, cache_dir, threads),
            name="retain-native-trees",
            daemon=True,
        ).start()
        return True

    def _compile_native(self, lightgbm: _LightGBM, cache_dir: Path | None, threads: int) -> bool:
        try:
            forest = compile_lightgbm(lightgbm.model_text(), cache_dir)
            if forest.n_features != self.n_features_out:
                raise UnsupportedForestError("the forest's inputs differ from the transformed matrix")
        except Exception as exc:  # never fatal: LightGBM's predictor goes on serving
            logger.warning("LightGBM trees not compiled to native code: %s", exc)
            return False
        finally:
            with self._native_lock:
                self._native_compiling = False
        lightgbm.native_threads = max(1, threads)
        lightgbm.native = forest
        return True

    # ---- validation -------------------------------------------------------------------------

    def parse(self, records: Sequence[Record]) -> dict[str, list[Any]] | None:
        """Validate and type records like ``validate_frame``; ``None`` on any doubt.

        Parameters
        ----------
        records : sequence of mappings
            Canonical field names (``spec.id.column`` allowed); values as a JSON body or a
            stream message would carry them.

        Returns
        -------
        dict of column -> list, or None
            Per model feature, one value per record: float64 (NaN when missing) for numeric
            columns, the code string (``None`` when missing) for categorical ones. ``None``
            when validation would report an error or the fast path is unsure; the caller then
            runs the full validation, which explains what is wrong.
        """
        if not records:
            return None
        keys: set[str] = set()
        for record in records:
            if not isinstance(record, Mapping):
                return None
            keys.update(record)
        if not keys <= self._known:
            return None  # unknown field or a source header: canonicalize + report on the full path
        if any(name not in keys for name in self._features):
            return None  # a required column is missing altogether
        rules = self._rules
        out: dict[str, list[Any]] = {}
        try:
            for name in keys:
                rule = rules.get(name)
                if rule is None:
                    continue  # the id column: any value is accepted and never scored
                column = [record.get(name) for record in records]
                if rule.coded:
                    out[name] = self._codes(column, rule)
                    continue
                # numpy pays off from a few dozen rows; a single record is faster value by value
                numbers = _numbers_at_once(column, rule) if len(column) >= 32 else None
                if numbers is None:
                    if len(column) > 1 and _mixes_text_and_floats(column):
                        return None  # pandas would re-parse the floats' text: not worth replicating
                    numbers = [_number_value(value, rule) for value in column]
                out[name] = numbers
        except _DoubtError:
            return None
        return out

    def _codes(self, column: list[Any], rule: _Rule) -> list[str | None]:
        memo = self._code_memo[rule.name]
        out: list[str | None] = []
        for value in column:
            key = (type(value), value)
            try:
                code = memo[key]
            except KeyError:
                code = _code_value(value, rule)
                if len(memo) < 10_000:
                    memo[key] = code
            except TypeError:  # unhashable: the full check decides
                code = _code_value(value, rule)
            out.append(code)
        return out

    def matrix(self, values: dict[str, list[Any]], n: int) -> np.ndarray:
        """The transformed matrix from ``parse``'s values (what ``transform`` returns)."""
        return self._matrix(values, n)

    # ---- features ---------------------------------------------------------------------------

    def _matrix(self, values: dict[str, list[Any]], n: int) -> np.ndarray:
        if n <= _FEW_ROWS:
            return self._matrix_of_few(values, n)
        out = np.zeros((n, self.n_features_out), dtype=np.float64)
        for block in self._numeric:
            raw = np.array([values[c] for c in block.columns], dtype=np.float64).T
            self._fill_block(out, raw, block)
        if self._derived_block is not None:
            cols = []
            for _name, op, a, b in self._derived:
                left = np.asarray(values[a], dtype=np.float64)
                right = np.asarray(values[b], dtype=np.float64)
                if op == "ratio":  # DerivedFeatures: a / b, 0 where b <= 0, NaN if either is NaN
                    with np.errstate(divide="ignore", invalid="ignore"):
                        value = np.where(right > 0, left / np.where(right > 0, right, 1.0), 0.0)
                    cols.append(np.where(np.isnan(left) | np.isnan(right), np.nan, value))
                else:
                    cols.append(left - right)
            self._fill_block(out, np.column_stack(cols), self._derived_block)
        rows = np.arange(n)
        for enc in self._one_hot:
            index = enc.index
            positions = [
                index.get(enc.fill if code is None else code, enc.unknown) for code in values[enc.column]
            ]
            target = np.asarray(positions, dtype=np.intp)
            hit = target >= 0
            out[rows[hit], target[hit]] = 1.0
        return out

    def _matrix_of_few(self, values: dict[str, list[Any]], n: int) -> np.ndarray:
        """``_matrix`` for a handful of rows in plain Python floats: a few dozen numpy calls on
        one-row arrays cost more than the arithmetic. The same IEEE operations (fill, subtract,
        divide), so the same bits."""
        width = self.n_features_out
        rows = [[0.0] * width for _ in range(n)]
        for columns, fills, means, scales, start in self._numeric_lists:
            for j, name in enumerate(columns):
                fill, mean, scale, at = fills[j], means[j], scales[j], start + j
                for row, value in zip(rows, values[name], strict=True):
                    if value != value:
                        value = fill
                    row[at] = value if mean is None else (value - mean) / scale
        if self._derived_lists is not None:
            _, fills, means, scales, start = self._derived_lists
            for j, (_name, op, a, b) in enumerate(self._derived):
                fill, mean, scale, at = fills[j], means[j], scales[j], start + j
                for row, left, right in zip(rows, values[a], values[b], strict=True):
                    if op == "ratio":
                        nan = left != left or right != right
                        value = math.nan if nan else (left / right if right > 0 else 0.0)
                    else:
                        value = left - right
                    if value != value:
                        value = fill
                    row[at] = value if mean is None else (value - mean) / scale
        for enc in self._one_hot:
            index, missing_code, unknown = enc.index, enc.fill, enc.unknown
            for row, code in zip(rows, values[enc.column], strict=True):
                position = index.get(missing_code if code is None else code, unknown)
                if position >= 0:
                    row[position] = 1.0
        return np.array(rows, dtype=np.float64).reshape(n, width)

    @staticmethod
    def _fill_block(out: np.ndarray, raw: np.ndarray, block: _NumericBlock) -> None:
        filled = np.where(np.isnan(raw), block.fill, raw)
        if block.mean is not None and block.scale is not None:
            filled = (filled - block.mean) / block.scale
        out[:, block.out] = filled

    def transform(self, records: Sequence[Record]) -> np.ndarray:
        """The transformed feature matrix the estimator sees, shape (n, n_features_out).

        Equal to ``model.pipeline.named_steps["prep"].transform`` of the validated frame.

        Raises
        ------
        ValueError
            When the records need the full validation path (``parse`` returned ``None``).
        """
        values = self.parse(records)
        if values is None:
            raise ValueError("records need the full validation path (Predictor.prepare)")
        return self._matrix(values, len(records))

    # ---- scoring ----------------------------------------------------------------------------

    def score_matrix(self, matrix: np.ndarray) -> Scores:
        """Score an already transformed matrix (see ``transform``) with the model's rules."""
        model = self.model
        lightgbm = self._estimator.lightgbm
        if lightgbm is not None and lightgbm.binary and self._calibrate is not None:
            # the calibrator reads only P(class 1): skip LightGBM's two-column expansion
            raw = np.asarray(lightgbm.raw(matrix), dtype=float)
        else:
            raw = np.asarray(self._estimator.predict(matrix), dtype=float)
        if model.is_classification:
            proba = self._calibrate(raw) if self._calibrate is not None else raw
            risk = proba[:, model.adverse_index]
            predicted = self._labels[model.decide(proba)]
            return Scores(risk=risk, band=model.band_of(risk), predicted=predicted, proba=proba)
        value = raw
        risk = model.risk_from_value(value)
        return Scores(
            risk=risk,
            band=model.band_of(risk),
            predicted=value,
            value=value,
            interval=model.interval_of(value),
        )

    def score_records(self, records: Sequence[Record]) -> Scores | None:
        """Score canonical records, or return ``None`` so the caller takes the full path.

        Parameters
        ----------
        records : sequence of mappings
            Canonical names, as ``Predictor.predict`` accepts them (the id column is ignored).

        Returns
        -------
        Scores or None
            What ``RiskModel.score`` returns for the validated records, in input order;
            ``None`` when any record fails (or might fail) validation.
        """
        values = self.parse(records)
        if values is None:
            return None
        return self.score_matrix(self._matrix(values, len(records)))


def compile_model(spec: DatasetSpec, model: RiskModel) -> FastScorer:
    """Compile a fitted ``RiskModel`` into a ``FastScorer``.

    Parameters
    ----------
    spec : DatasetSpec
        The spec the model was trained with (validation rules come from it).
    model : RiskModel
        Its pipeline must be ``Pipeline([("prep", ...), ("model", estimator)])`` as built by
        ``retain.training.fit.fit_pipeline``.

    Returns
    -------
    FastScorer

    Raises
    ------
    UnsupportedModelError
        When the pipeline holds a step the fast path does not replicate; keep using
        ``Predictor.predict`` for that model.
    """
    steps = _steps(model.pipeline, "model pipeline")
    if list(steps) != ["prep", "model"]:
        raise UnsupportedModelError(f"model pipeline: unexpected steps {list(steps)}")
    prep = _steps(steps["prep"], "preprocessing")
    if list(prep) != ["derive", "columns"]:
        raise UnsupportedModelError(f"preprocessing: unexpected steps {list(prep)}")
    derive, columns = prep["derive"], prep["columns"]
    if not isinstance(derive, DerivedFeatures) or not isinstance(columns, ColumnTransformer):
        raise UnsupportedModelError("preprocessing: expected DerivedFeatures then a ColumnTransformer")
    derived = [(str(n), str(op), str(a), str(b)) for n, op, a, b in derive.specs]
    if any(op not in ("ratio", "difference") for _, op, _, _ in derived):
        raise UnsupportedModelError("unknown derived-feature op")
    inputs = [str(c) for c in derive.feature_names_in_]
    if inputs != list(model.features):
        raise UnsupportedModelError("the pipeline's inputs differ from the model's features")
    names_out = [str(n) for n in columns.get_feature_names_out()]
    numeric: list[_NumericBlock] = []
    derived_block: _NumericBlock | None = None
    one_hot: list[_OneHot] = []
    derived_names = [d[0] for d in derived]
    for name, fitted, cols in columns.transformers_:
        if name == "remainder":
            if fitted != "drop" and len(cols):
                raise UnsupportedModelError("a ColumnTransformer remainder that is not dropped")
            continue
        out = columns.output_indices_[name]
        selected = [str(c) for c in cols]
        where = f"transformer {name!r}"
        if fitted == "drop" or out.stop == out.start:
            continue
        if name.startswith("num"):
            numeric.append(_numeric_block(fitted, selected, out, where))
        elif name == "derived":
            if selected != derived_names:
                raise UnsupportedModelError(f"{where}: columns differ from the derived features")
            derived_block = _numeric_block(fitted, selected, out, where)
        elif name.startswith("cat"):
            one_hot.extend(_one_hot_blocks(fitted, selected, out, where))
        else:
            raise UnsupportedModelError(f"unknown transformer {name!r}")
    for block in numeric:
        for c in block.columns:
            if spec.column(c).type not in (ColumnType.integer, ColumnType.float, ColumnType.boolean):
                raise UnsupportedModelError(f"numeric transformer on non-numeric column {c!r}")
    for enc in one_hot:
        if spec.column(enc.column).type is not ColumnType.categorical:
            raise UnsupportedModelError(f"one-hot transformer on non-categorical column {enc.column!r}")
    for _, _, a, b in derived:
        for ref in (a, b):
            if spec.column(ref).type not in (ColumnType.integer, ColumnType.float, ColumnType.boolean):
                raise UnsupportedModelError(f"derived feature input {ref!r} is not numeric")
    rules = {c.name: _rule_of(c) for c in spec.columns}
    missing = [f for f in model.features if f not in rules]
    if missing:
        raise UnsupportedModelError(f"model features not in the spec: {missing}")
    estimator = _compile_estimator(model, steps["model"], len(names_out))
    return FastScorer(
        spec=spec,
        model=model,
        rules=rules,
        features=list(model.features),
        numeric=numeric,
        derived=derived,
        derived_block=derived_block,
        one_hot=one_hot,
        feature_names_out=names_out,
        estimator=estimator,
        calibrate=_compile_calibrator(model),
    )
