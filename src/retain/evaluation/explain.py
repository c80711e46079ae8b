"""Feature importance and per-student contributions for fitted scikit-learn pipelines.

Permutation importance works on raw input columns through the whole pipeline. SHAP values are
computed on the pipeline's transformed features and summed back to the raw input column each
transformed feature came from (one-hot columns of a category, for example).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shap
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

__all__ = [
    "base_estimator",
    "local_contributions",
    "permutation_importance_table",
    "raw_feature_name",
    "shap_importance_table",
]

_AGNOSTIC_MAX_ROWS = 100
_BACKGROUND_ROWS = 50


def permutation_importance_table(
    model: BaseEstimator,
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    scoring: str,
    n_repeats: int = 5,
    seed: int = 42,
) -> pd.DataFrame:
    """Permutation importance of raw input columns through a whole fitted pipeline.

    Parameters
    ----------
    model : estimator
        A fitted estimator or pipeline accepting ``X``.
    X : DataFrame
        Evaluation rows with raw input columns.
    y : array-like of shape (n,)
        Truth for ``X``.
    scoring : str
        A scikit-learn scorer name (e.g. ``"roc_auc"``, ``"neg_log_loss"``, ``"r2"``).
    n_repeats : int, default 5
        Shuffles per column.
    seed : int, default 42
        Random state of the shuffles.

    Returns
    -------
    DataFrame
        Columns ``feature``, ``importance`` (mean drop in score) and ``importance_std``, sorted by
        importance, highest first.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = permutation_importance(
            model, X, y, scoring=scoring, n_repeats=n_repeats, random_state=seed, n_jobs=1
        )
    table = pd.DataFrame(
        {
            "feature": [str(c) for c in X.columns],
            "importance": np.asarray(result.importances_mean, dtype=float),
            "importance_std": np.asarray(result.importances_std, dtype=float),
        }
    )
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def raw_feature_name(transformed: str, raw_columns: Sequence[str]) -> str | None:
    """The raw input column a transformed feature name comes from, if any.

    The ``transformer__`` prefix is stripped (``num__age`` -> ``age``); the remainder maps to the
    longest raw column name that equals it or prefixes it followed by ``_`` (``course_9254`` ->
    ``course``). Names without a prefix are matched as they are.

    Parameters
    ----------
    transformed : str
        A name from ``get_feature_names_out()``.
    raw_columns : sequence of str
        The pipeline's raw input columns.

    Returns
    -------
    str or None
        The raw column, or ``None`` when the name does not map back (e.g. a derived feature).
    """
    candidates = [transformed.split("__", 1)[1]] if "__" in transformed else []
    candidates.append(transformed)
    for rest in candidates:
        best: str | None = None
        for raw in raw_columns:
            if (rest == raw or rest.startswith(raw + "_")) and (best is None or len(raw) > len(best)):
                best = raw
        if best is not None:
            return best
    return None


def base_estimator(estimator: BaseEstimator) -> BaseEstimator:
    """Unwrap calibration and freezing to reach the fitted model that makes the scores.

    ``CalibratedClassifierCV`` -> ``calibrated_classifiers_[0].estimator``; a
    ``FrozenEstimator`` (or any wrapper named so) -> its ``estimator``.

    Parameters
    ----------
    estimator : estimator
        The last step of a pipeline.

    Returns
    -------
    estimator
    """
    current = estimator
    for _ in range(5):
        if isinstance(current, CalibratedClassifierCV) and hasattr(current, "calibrated_classifiers_"):
            current = current.calibrated_classifiers_[0].estimator
        elif type(current).__name__ == "FrozenEstimator" and hasattr(current, "estimator"):
            current = current.estimator
        else:
            break
    return current


@dataclass(frozen=True)
class _ShapResult:
    values: np.ndarray  # (n, f, k)
    names: list[str]


def _split(pipeline: BaseEstimator) -> tuple[Callable[[pd.DataFrame], object] | None, BaseEstimator]:
    if isinstance(pipeline, Pipeline):
        if len(pipeline) > 1:
            return pipeline[:-1].transform, pipeline[-1]
        return None, pipeline[-1]
    return None, pipeline


def _transformed(pipeline: BaseEstimator, X: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    transform, _ = _split(pipeline)
    if transform is None:
        return X.to_numpy(dtype=float), [str(c) for c in X.columns]
    assert isinstance(pipeline, Pipeline)
    Xt: object = transform(X)
    if isinstance(Xt, pd.DataFrame):  # set_output(transform="pandas") already names the columns
        return Xt.to_numpy(dtype=float), [str(c) for c in Xt.columns]
    names = [str(n) for n in pipeline[:-1].get_feature_names_out()]
    if sp.issparse(Xt):
        return np.asarray(sp.csr_matrix(Xt).toarray(), dtype=float), names
    return np.asarray(Xt, dtype=float), names


def _as_nfk(values: object, n: int, f: int) -> np.ndarray:
    """Normalise SHAP outputs of any shap version to shape ``(n, f, k)``."""
    if hasattr(values, "values") and not isinstance(values, np.ndarray | list):
        values = values.values
    if isinstance(values, list):
        arr = np.stack([np.asarray(v, dtype=float) for v in values], axis=-1)
    else:
        arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(n, f)
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim == 3:
        if arr.shape[:2] == (n, f):
            return arr
        if arr.shape[1:] == (n, f):
            return np.moveaxis(arr, 0, -1)
    raise ValueError(f"unexpected SHAP output shape {arr.shape} for {n} rows and {f} features")


def _draw(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rows[rng.choice(rows.shape[0], size=min(size, rows.shape[0]), replace=False)]


def _agnostic_values(
    model: BaseEstimator, Xt: np.ndarray, pool: np.ndarray, names: list[str], seed: int
) -> np.ndarray:
    background = _draw(pool, _BACKGROUND_ROWS, seed)
    with_names = hasattr(model, "feature_names_in_")
    method = model.predict_proba if hasattr(model, "predict_proba") else model.predict

    def predict(data: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(data, columns=names) if with_names else data
        return np.asarray(method(frame), dtype=float)

    f = Xt.shape[1]
    explainer = shap.Explainer(
        predict, shap.maskers.Independent(background), algorithm="permutation", seed=seed
    )
    explanation = explainer(Xt, max_evals=max(2 * f + 1, 200), silent=True)
    return _as_nfk(explanation.values, Xt.shape[0], f)


def _shap_values(
    pipeline: BaseEstimator,
    X: pd.DataFrame,
    seed: int,
    agnostic_rows: int,
    background: pd.DataFrame | None = None,
) -> _ShapResult:
    Xt, names = _transformed(pipeline, X)
    pool = _transformed(pipeline, background)[0] if background is not None and len(background) else Xt
    _, last = _split(pipeline)
    model = base_estimator(last)
    n, f = Xt.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            explainer = shap.TreeExplainer(model)
            values = explainer.shap_values(Xt, check_additivity=False)
            return _ShapResult(_as_nfk(values, n, f), names)
        except Exception:  # not a tree model shap understands: try the next explainer
            pass
        if hasattr(model, "coef_"):
            try:
                linear = shap.LinearExplainer(model, _draw(pool, _BACKGROUND_ROWS * 4, seed))
                return _ShapResult(_as_nfk(linear.shap_values(Xt), n, f), names)
            except Exception:  # e.g. a linear model shap does not support
                pass
        values = _agnostic_values(last, Xt[:agnostic_rows], pool, names, seed)
    return _ShapResult(values, names)


def _sample(X: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(X) <= max_rows:
        return X
    return X.sample(n=max_rows, random_state=seed)


def _aggregate(
    values: np.ndarray, names: list[str], raw_columns: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Sum signed contributions ``(n, f, k)`` of transformed features per raw column."""
    targets = [raw_feature_name(name, raw_columns) or name for name in names]
    order: list[str] = [c for c in raw_columns if c in targets]
    order += [t for t in dict.fromkeys(targets) if t not in order]
    position = {name: i for i, name in enumerate(order)}
    out = np.zeros((values.shape[0], len(order), values.shape[2]))
    for j, target in enumerate(targets):
        out[:, position[target], :] += values[:, j, :]
    return out, order


def shap_importance_table(
    pipeline: BaseEstimator,
    X: pd.DataFrame,
    max_rows: int = 500,
    seed: int = 42,
    level: Literal["raw", "transformed"] = "raw",
    background: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Mean absolute SHAP value per feature.

    ``X`` is transformed with all pipeline steps but the last; the last step's fitted model
    (unwrapped from calibration, see :func:`base_estimator`) is explained with
    ``shap.TreeExplainer`` for tree models, ``shap.LinearExplainer`` for linear models and
    otherwise shap's model-agnostic permutation explainer over ``predict_proba`` / ``predict``
    of the last step on a small background sample (at most 100 explained rows). SHAP values are
    in the explained model's output units (log-odds for LightGBM, XGBoost and logistic
    regression; probability for scikit-learn forests and the model-agnostic explainer); for a
    calibrated model they explain the uncalibrated scores, which calibration maps monotonically.

    Parameters
    ----------
    pipeline : Pipeline or estimator
        Fitted pipeline whose earlier steps support ``get_feature_names_out()``.
    X : DataFrame
        Rows with raw input columns; at most ``max_rows`` are sampled.
    max_rows : int, default 500
        Rows explained.
    seed : int, default 42
        Seed for row and background sampling.
    level : {"raw", "transformed"}, default "raw"
        ``"raw"``: per-row SHAP values of the transformed features that map to the same raw
        column (see :func:`raw_feature_name`) are summed before taking the mean absolute value;
        features that map to no raw column (e.g. ``derived__grade_trend``) keep their name
        without the transformer prefix. ``"transformed"``: one row per transformed feature with its
        ``raw_feature``.
    background : DataFrame, optional
        Reference rows (raw columns, e.g. training data) for the linear and model-agnostic
        explainers; default the explained rows. Tree models need none.

    Returns
    -------
    DataFrame
        Columns ``feature`` and ``importance`` (mean |SHAP|, averaged across classes for
        multi-class models), plus ``raw_feature`` at the transformed level; sorted by importance,
        highest first.
    """
    sample = _sample(X, max_rows, seed)
    result = _shap_values(
        pipeline, sample, seed, agnostic_rows=min(_AGNOSTIC_MAX_ROWS, len(sample)), background=background
    )
    raw_columns = [str(c) for c in X.columns]
    if level == "transformed":
        importance = np.abs(result.values).mean(axis=(0, 2))
        table = pd.DataFrame(
            {
                "feature": result.names,
                "raw_feature": [raw_feature_name(n, raw_columns) for n in result.names],
                "importance": importance,
            }
        )
    else:
        values, order = _aggregate(result.values, result.names, raw_columns)
        order = [o.split("__", 1)[1] if "__" in o and o not in raw_columns else o for o in order]
        table = pd.DataFrame({"feature": order, "importance": np.abs(values).mean(axis=(0, 2))})
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def local_contributions(
    pipeline: BaseEstimator,
    X_row_frame: pd.DataFrame,
    class_index: int = 1,
    background: pd.DataFrame | None = None,
    seed: int = 42,
) -> pd.DataFrame:
    """Per-row SHAP contributions aggregated to raw input columns.

    Parameters
    ----------
    pipeline : Pipeline or estimator
        As in :func:`shap_importance_table`.
    X_row_frame : DataFrame
        The rows to explain (raw input columns).
    class_index : int, default 1
        The class whose contributions are returned (the adverse class). Models with a single
        output (binary LightGBM/XGBoost/logistic margins, regression) return that output's
        contributions, negated when ``class_index`` is 0 for a binary classifier.
    background : DataFrame, optional
        Reference rows (raw columns, e.g. a sample of training data) for linear and
        model-agnostic explainers. Pass it when explaining few rows with such models: the default
        (the explained rows themselves) makes a single row's contributions all zero. Tree models
        need none.
    seed : int, default 42
        Seed for background sampling.

    Returns
    -------
    DataFrame
        Index of ``X_row_frame``, one column per raw feature (plus unmapped transformed features),
        signed contributions in the explained model's output units (positive raises the output
        for ``class_index``).
    """
    result = _shap_values(
        pipeline, X_row_frame, seed=seed, agnostic_rows=len(X_row_frame), background=background
    )
    raw_columns = [str(c) for c in X_row_frame.columns]
    values, order = _aggregate(result.values, result.names, raw_columns)
    if values.shape[2] == 1:
        _, last = _split(pipeline)
        is_classifier = hasattr(base_estimator(last), "classes_")
        chosen = -values[:, :, 0] if is_classifier and class_index == 0 else values[:, :, 0]
    else:
        if not 0 <= class_index < values.shape[2]:
            raise ValueError(f"class_index {class_index} out of range for {values.shape[2]} outputs")
        chosen = values[:, :, class_index]
    order = [o.split("__", 1)[1] if "__" in o and o not in raw_columns else o for o in order]
    return pd.DataFrame(chosen, index=X_row_frame.index, columns=order)
