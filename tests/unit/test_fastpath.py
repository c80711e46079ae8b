"""Unit tests for ``retain.fastpath``: the compiled scorer equals the full path, or declines."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from retain.data.spec import ColumnType, DatasetSpec, ImputePolicy, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.fastpath import FastScorer, UnsupportedModelError, compile_model
from retain.features.build import feature_set
from retain.predictor import Predictor
from retain.training.artifact import RiskModel, Scores
from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold

TOL = 1e-9
LGBM = {"n_estimators": 25, "num_leaves": 7, "min_child_samples": 5}


def _tiny_spec() -> DatasetSpec:
    """Categorical columns with ``missing: constant`` (a code and a non-code fill), a derived ratio."""
    return DatasetSpec.model_validate(
        {
            "name": "tiny",
            "title": "Tiny college",
            "source": {"file": "tiny.csv"},
            "stages": ["term_1"],
            "columns": [
                {
                    "name": "program",
                    "type": "categorical",
                    "codes": {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e", "F": "f"},
                    "stage": "term_1",
                    "missing": "constant",
                    "fill_value": "A",
                },
                {
                    "name": "campus",
                    "type": "categorical",
                    "codes": {f"C{i}": f"campus {i}" for i in range(1, 25)},
                    "stage": "term_1",
                    "missing": "constant",
                    "fill_value": "unknown",
                },
                {
                    "name": "housing",
                    "type": "categorical",
                    "codes": {"Y": "on campus", "N": "off campus"},
                    "stage": "term_1",
                    "missing": "constant",
                    "fill_value": "not given",
                },
                {
                    "name": "plan",
                    "type": "categorical",
                    "codes": {"1": "one", "2": "two", "3": "three", "4": "four"},
                    "stage": "term_1",
                    "missing": "most_frequent",
                },
                {"name": "aid", "type": "boolean", "stage": "term_1", "missing": "most_frequent"},
                {
                    "name": "credits",
                    "type": "integer",
                    "min": 0,
                    "max": 40,
                    "stage": "term_1",
                    "missing": "constant",
                    "fill_value": 0,
                },
                {"name": "attempted", "type": "integer", "min": 0, "max": 40, "stage": "term_1"},
                {"name": "gpa", "type": "float", "min": 0, "max": 4, "stage": "term_1", "missing": "mean"},
                {
                    "name": "age",
                    "type": "integer",
                    "min": 16,
                    "max": 70,
                    "stage": "term_1",
                    "missing": "error",
                },
                {"name": "status", "type": "categorical", "codes": {"W": "w", "R": "r"}, "role": "target"},
            ],
            "derived": [{"name": "completion", "op": "ratio", "a": "credits", "b": "attempted"}],
            "tasks": [
                {
                    "name": "withdrawal",
                    "type": "classification",
                    "target": "status",
                    "adverse": "W",
                    "negative_label": "Retained",
                    "stages": ["term_1"],
                    "primary_metric": "roc_auc",
                    "monotone": {"credits": -1},
                }
            ],
        }
    )


@dataclass(frozen=True)
class Case:
    """One trained model to compare the fast path against."""

    dataset: str
    task: str
    stage: str
    kind: str
    params: dict[str, object]
    calibration: str = "sigmoid"


CASES: dict[str, Case] = {
    "dropout-binary-derived-monotone": Case("dropout", "dropout", "semester_2", "lightgbm", LGBM),
    "dropout-outcome-class-weights": Case("dropout", "outcome", "semester_1", "lightgbm", LGBM),
    "secondary-math-grade-regression": Case("secondary_math", "grade", "", "lightgbm", LGBM),
    "exam-math-linear": Case("exam_scores", "math", "with_other_scores", "linear", {"C": 1.0}),
    "tiny-constant-categorical-isotonic": Case("tiny", "withdrawal", "term_1", "lightgbm", LGBM, "isotonic"),
    "dropout-forest": Case("dropout", "dropout", "enrolment", "forest", {"n_estimators": 15}),
    "dropout-outcome-xgboost": Case("dropout", "outcome", "semester_1", "xgboost", {"n_estimators": 15}),
    "exam-math-xgboost": Case("exam_scores", "math", "with_other_scores", "xgboost", {"n_estimators": 15}),
    "dropout-linear-isotonic": Case("dropout", "dropout", "semester_1", "linear", {"C": 1.0}, "isotonic"),
    "exam-reading-majority": Case("exam_scores", "reading", "demographics", "majority", {}),
}


def _spec(dataset: str) -> DatasetSpec:
    return _tiny_spec() if dataset == "tiny" else load_spec(dataset)


@dataclass
class Trained:
    spec: DatasetSpec
    model: RiskModel
    scorer: FastScorer
    train: pd.DataFrame


_CACHE: dict[str, Trained] = {}


def _trained(name: str) -> Trained:
    if name not in _CACHE:
        case = CASES[name]
        spec = _spec(case.dataset)
        task = spec.task(case.task)
        stage = case.stage or task.stages[-1]
        typed, report = validate_frame(synthesize(spec, 400, seed=5), spec)
        assert report.ok, report.summary()
        y = encode_target(typed, task)
        fs = feature_set(spec, task, stage)
        oof = out_of_fold(spec, task, fs, case.kind, case.params, typed, y, folds(y, task, 3, 0))
        model = build_risk_model(
            spec, task, stage, fs, case.kind, case.params, typed, y, oof, calibration=case.calibration
        )
        _CACHE[name] = Trained(spec, model, compile_model(spec, model), typed)
    return _CACHE[name]


def _rare_codes(trained: Trained, column: str) -> list[str]:
    """Codes seen fewer than 5 times in training: the one-hot encoder's infrequent bucket."""
    codes = list(trained.spec.column(column).codes or {})
    counts = trained.train[column].value_counts()
    return [c for c in codes if int(counts.get(c, 0)) < 5]


def _students(trained: Trained, n: int = 300, seed: int = 123) -> list[dict[str, Any]]:
    """Synthetic records in the many shapes a JSON body carries, with missing and rare values.

    Each numeric column is either native (Python ints and floats, ``None``/NaN when missing) or
    text (every value a string, blanks and ``NA`` when missing) for the whole batch: pandas
    re-parses floats' text when a column mixes both, which the fast path declines.
    """
    spec, model = trained.spec, trained.model
    frame = synthesize(spec, n, seed=seed)
    target = spec.task(model.task).target
    records: list[dict[str, Any]] = frame.drop(columns=[target]).to_dict("records")
    rng = np.random.default_rng(seed)
    text_columns = {c for c in model.features if rng.random() < 0.3}
    for record in records:
        for name in model.features:
            col = spec.column(name)
            draw = rng.random()
            value = record[name]
            nullable = col.missing is not ImputePolicy.error
            if col.type is ColumnType.categorical:
                rare = _rare_codes(trained, name)
                if draw < 0.12 and nullable:
                    record[name] = [None, math.nan, "", " NA ", "null"][int(rng.integers(5))]
                elif draw < 0.3 and rare:
                    record[name] = rare[int(rng.integers(len(rare)))]
                elif draw < 0.45 and str(value).isdigit():
                    record[name] = [int(value), float(value), f" {value} ", f"{value}.0"][
                        int(rng.integers(4))
                    ]
            elif name in text_columns:
                number = float(value)
                shown = str(int(number)) if number.is_integer() else repr(round(number, 3))
                if draw < 0.12 and nullable:
                    record[name] = ["", " NA ", "null", None][int(rng.integers(4))]
                else:
                    record[name] = [shown, f" {shown} ", f"{shown}.0" if "." not in shown else shown][
                        int(rng.integers(3))
                    ]
            else:
                number = float(value)
                if draw < 0.12 and nullable:
                    record[name] = [None, math.nan][int(rng.integers(2))]
                elif number.is_integer() and draw < 0.5:
                    record[name] = [int(number), number, np.int64(int(number))][int(rng.integers(3))]
                else:
                    record[name] = number
        for key, value in list(record.items()):  # other columns as a JSON body carries them
            if key not in model.features and isinstance(value, np.generic):
                record[key] = value.item()
    return records


def _reference(trained: Trained, records: list[dict[str, Any]]) -> Scores:
    typed, report = validate_frame(pd.DataFrame(records), trained.spec, required=trained.model.features)
    assert report.ok, report.summary()
    return trained.model.score(typed)


def _assert_same(got: Scores, want: Scores) -> None:
    np.testing.assert_allclose(got.risk, want.risk, rtol=0, atol=TOL)
    assert got.band.tolist() == want.band.tolist()
    if want.proba is not None:
        assert got.proba is not None
        np.testing.assert_allclose(got.proba, want.proba, rtol=0, atol=TOL)
        assert got.predicted.tolist() == want.predicted.tolist()
    else:
        np.testing.assert_allclose(
            got.predicted.astype(float), want.predicted.astype(float), rtol=0, atol=TOL
        )
    if want.value is not None:
        assert got.value is not None and got.interval is not None and want.interval is not None
        np.testing.assert_allclose(got.value, want.value, rtol=0, atol=TOL)
        np.testing.assert_allclose(got.interval, want.interval, rtol=0, atol=TOL)


@pytest.mark.parametrize("name", list(CASES))
def test_scores_equal_the_full_path(name: str) -> None:
    trained = _trained(name)
    records = _students(trained)
    want = _reference(trained, records)
    got = trained.scorer.score_records(records)
    assert got is not None
    _assert_same(got, want)
    for i in (0, 1, 7):  # one record at a time, as the API scores
        one = trained.scorer.score_records([records[i]])
        assert one is not None
        _assert_same(one, _reference(trained, [records[i]]))


@pytest.mark.parametrize("name", list(CASES))
def test_transform_equals_the_fitted_preprocessing(name: str) -> None:
    trained = _trained(name)
    records = _students(trained, n=120, seed=8)
    typed, _ = validate_frame(pd.DataFrame(records), trained.spec, required=trained.model.features)
    prep = trained.model.pipeline.named_steps["prep"]
    want = prep.transform(typed.reindex(columns=trained.model.features))
    got = trained.scorer.transform(records)
    assert trained.scorer.feature_names_out == [str(c) for c in want.columns]
    np.testing.assert_allclose(got, want.to_numpy(dtype=float), rtol=0, atol=TOL)


def test_matches_predictor_output() -> None:
    trained = _trained("dropout-outcome-class-weights")
    records = _students(trained, n=25, seed=3)
    frame = Predictor(spec=trained.spec, model=trained.model).predict(records)
    got = trained.scorer.score_records(records)
    assert got is not None and got.proba is not None
    np.testing.assert_allclose(frame["risk_score"], got.risk, rtol=0, atol=TOL)
    assert frame["prediction"].tolist() == got.predicted.tolist()
    assert frame["risk_band"].tolist() == got.band.tolist()
    np.testing.assert_allclose(frame["proba_dropout"], got.proba[:, 0], rtol=0, atol=TOL)


def test_infrequent_and_constant_fill_mapping() -> None:
    trained = _trained("tiny-constant-categorical-isotonic")
    scorer = trained.scorer
    columns = trained.model.pipeline.named_steps["prep"].named_steps["columns"]
    encoders = {
        c: pipe.named_steps["onehot"]
        for name, pipe, cols in columns.transformers_
        if name.startswith("cat")
        for c in cols
    }
    # what this test covers: a fill that is not a code lands in the infrequent bucket (campus)
    # or in no column at all (housing, no infrequent codes); a fill that is a code (program)
    assert _rare_codes(trained, "campus") and not _rare_codes(trained, "housing")
    assert encoders["campus"].infrequent_categories_[0] is not None
    assert encoders["housing"].infrequent_categories_[0] is None
    base = _students(trained, n=1, seed=1)[0]
    prep = trained.model.pipeline.named_steps["prep"]
    for column in ("program", "campus", "housing", "plan"):
        # every code of the column (and a missing value), one record each, in one batch
        records = [{**base, column: code} for code in [*(trained.spec.column(column).codes or {}), None]]
        got = scorer.score_records(records)
        assert got is not None
        _assert_same(got, _reference(trained, records))
        typed, _ = validate_frame(pd.DataFrame(records), trained.spec)
        want = prep.transform(typed.reindex(columns=trained.model.features)).to_numpy()
        np.testing.assert_allclose(scorer.transform(records), want, rtol=0, atol=TOL)


def _invalid_edits(spec: DatasetSpec, model: RiskModel) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """Edits that make a record fail validation (each paired with a description)."""
    categorical = next(c for c in model.features if spec.column(c).type is ColumnType.categorical)
    bounded = next(
        c
        for c in model.features
        if spec.column(c).type is ColumnType.integer and spec.column(c).max is not None
    )
    high = float(spec.column(bounded).max or 0)
    edits: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("unknown code", lambda r: r.__setitem__(categorical, "999")),
        ("unknown code text", lambda r: r.__setitem__(categorical, "not-a-code")),
        ("above the maximum", lambda r: r.__setitem__(bounded, high + 1)),
        ("below the minimum", lambda r: r.__setitem__(bounded, -1)),
        ("not a number", lambda r: r.__setitem__(bounded, "many")),
        ("not a whole number", lambda r: r.__setitem__(bounded, 1.5)),
    ]
    booleans = [c for c in model.features if spec.column(c).type is ColumnType.boolean]
    if booleans:
        edits.append(("not a yes/no code", lambda r: r.__setitem__(booleans[0], 2)))
    required = [c for c in model.features if spec.column(c).missing is ImputePolicy.error]
    if required:
        edits.append(("missing where the spec forbids it", lambda r: r.__setitem__(required[0], None)))
    return edits


@pytest.mark.parametrize(
    "name", ["dropout-binary-derived-monotone", "exam-math-linear", "tiny-constant-categorical-isotonic"]
)
def test_invalid_records_fall_back(name: str) -> None:
    trained = _trained(name)
    good = _students(trained, n=3, seed=4)
    for problem, edit in _invalid_edits(trained.spec, trained.model):
        bad = dict(good[1])
        edit(bad)
        batch = [good[0], bad, good[2]]
        assert trained.scorer.score_records(batch) is None, problem
        assert trained.scorer.score_records([bad]) is None, problem
        _, report = validate_frame(pd.DataFrame(batch), trained.spec, required=trained.model.features)
        assert not report.ok, problem  # the full path reports it
        with pytest.raises(ValueError):
            trained.scorer.transform([bad])


@pytest.mark.parametrize(
    "value",
    [True, "1e3", "inf", math.inf, [1], {"a": 1}, "1" * 20, 2**60],
)
def test_doubtful_values_fall_back(value: object) -> None:
    trained = _trained("dropout-binary-derived-monotone")
    record = _students(trained, n=1, seed=2)[0]
    record["units_1st_sem_enrolled"] = value
    assert trained.scorer.score_records([record]) is None


def test_unknown_fields_and_empty_input_fall_back() -> None:
    trained = _trained("exam-math-linear")
    record = _students(trained, n=1, seed=2)[0]
    assert trained.scorer.score_records([{**record, "favourite_colour": "blue"}]) is None
    assert trained.scorer.score_records([]) is None
    source = {
        trained.spec.column(k).header if k in trained.spec.column_map else k: v for k, v in record.items()
    }
    assert trained.scorer.score_records([source]) is None  # source headers: the full path renames
    assert trained.scorer.score_records([{**record, "student_id": "s-1"}]) is not None


def test_code_and_number_spellings_match_validation() -> None:
    trained = _trained("dropout-binary-derived-monotone")
    base = _students(trained, n=1, seed=6)[0]
    spellings: dict[str, list[object]] = {
        "marital_status": [1, "1", 1.0, " 1 ", "01", "1.0", "  2", 2],
        "units_1st_sem_enrolled": [6, "6", " 6 ", 6.0, "6.", "06", "+6"],
        "admission_grade": [120.5, "120.5", " 120.50 ", "130", 99.25],
    }
    for column, values in spellings.items():
        for value in values:
            record = {**base, column: value}
            got = trained.scorer.score_records([record])
            assert got is not None, (column, value)
            _assert_same(got, _reference(trained, [record]))


def test_mixed_batches_and_missing_keys() -> None:
    trained = _trained("dropout-binary-derived-monotone")
    records = _students(trained, n=6, seed=12)
    optional = next(
        c for c in trained.model.features if trained.spec.column(c).missing is not ImputePolicy.error
    )
    del records[2][optional]  # absent in one record only: missing, imputed
    got = trained.scorer.score_records(records)
    assert got is not None
    _assert_same(got, _reference(trained, records))
    # a column absent from every record is a validation error
    assert (
        trained.scorer.score_records([{k: v for k, v in r.items() if k != optional} for r in records]) is None
    )


def test_unsupported_pipeline_raises() -> None:
    trained = _trained("exam-math-linear")
    model = trained.model
    odd = RiskModel(
        **{
            **vars(model),
            "pipeline": Pipeline([("prep", model.pipeline.named_steps["prep"]), ("extra", StandardScaler())]),
        }
    )
    with pytest.raises(UnsupportedModelError):
        compile_model(trained.spec, odd)


LIGHTGBM_CASES = [name for name, case in CASES.items() if case.kind == "lightgbm"]


@pytest.mark.parametrize("name", LIGHTGBM_CASES)
def test_native_trees_give_the_same_scores(name: str, tmp_path: Path) -> None:
    trained = _trained(name)
    scorer = compile_model(trained.spec, trained.model)  # its own copy: the shared one stays LightGBM
    records = _students(trained, n=700, seed=31)
    before = scorer.score_records(records)
    assert before is not None and scorer.has_lightgbm and not scorer.native
    assert scorer.compile_native(tmp_path, threads=2)
    assert scorer.native
    after = scorer.score_records(records)
    assert after is not None
    assert np.array_equal(after.risk, before.risk)
    assert np.array_equal(
        after.proba if after.proba is not None else after.predicted,
        before.proba if before.proba is not None else before.predicted,
    )
    _assert_same(after, _reference(trained, records))
    one = scorer.score_records(records[:1])
    assert one is not None and np.array_equal(one.risk, before.risk[:1])


def test_native_trees_do_not_apply_to_other_estimators() -> None:
    trained = _trained("exam-math-linear")
    scorer = compile_model(trained.spec, trained.model)
    assert not scorer.has_lightgbm
    assert not scorer.compile_native()


@pytest.mark.parametrize("name", list(CASES))
def test_few_rows_build_the_same_matrix_bit_for_bit(name: str) -> None:
    """A handful of rows (the API's single records) take a plain-Python path to the matrix."""
    trained = _trained(name)
    records = _students(trained, n=64, seed=41)
    values = trained.scorer.parse(records)
    assert values is not None
    many = trained.scorer._matrix(values, len(records))  # the numpy path
    for start in range(0, 64, 5):
        part = records[start : start + 5]
        few_values = trained.scorer.parse(part)
        assert few_values is not None
        few = trained.scorer._matrix(few_values, len(part))
        assert np.array_equal(few, many[start : start + len(part)], equal_nan=True)
