"""Unit tests for ``retain.predictor``: the one scoring object and its output schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import DatasetSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import DataValidationError, validate_frame
from retain.features.build import feature_set
from retain.predictor import OUTPUT_COLUMNS, Predictor
from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold

SMALL = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


def _predictor(dataset: str, task_name: str, stage: str, version: int | None = None) -> Predictor:
    spec = load_spec(dataset)
    typed, _ = validate_frame(synthesize(spec, 400, seed=9), spec)
    task = spec.task(task_name)
    y = encode_target(typed, task)
    fs = feature_set(spec, task, stage)
    oof = out_of_fold(spec, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    model = build_risk_model(spec, task, stage, fs, "lightgbm", SMALL, typed, y, oof)
    return Predictor(spec=spec, model=model, version=version)


@pytest.fixture(scope="module")
def dropout_pred() -> Predictor:
    return _predictor("dropout", "dropout", "semester_1", version=3)


@pytest.fixture(scope="module")
def exam_pred() -> Predictor:
    return _predictor("exam_scores", "math", "with_other_scores")


def _new(spec: DatasetSpec, n: int = 12, seed: int = 77) -> pd.DataFrame:
    return synthesize(spec, n, seed=seed)


def _to_source_headers(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    return frame.rename(columns={c.name: c.header for c in spec.columns})


def test_classification_output_columns(dropout_pred: Predictor) -> None:
    out = dropout_pred.predict(_new(dropout_pred.spec))
    expected = [*OUTPUT_COLUMNS, "proba_not_dropout", "proba_dropout"]
    assert list(out.columns) == expected == dropout_pred.output_columns
    assert len(out) == 12
    row = out.iloc[0]
    assert row["dataset"] == "dropout"
    assert row["task"] == "dropout"
    assert row["stage"] == "semester_1"
    assert row["model_name"] == "dropout.dropout.semester_1"
    assert row["model_version"] == 3
    np.testing.assert_allclose(out["risk_score"], out["proba_dropout"])
    np.testing.assert_allclose(out["proba_dropout"] + out["proba_not_dropout"], 1.0)
    assert set(out["risk_band"]) <= {"low", "medium", "high"}
    assert set(out["prediction"]) <= {"Dropout", "Not dropout"}


def test_regression_output_columns(exam_pred: Predictor) -> None:
    out = exam_pred.predict(_new(exam_pred.spec))
    assert list(out.columns) == [*OUTPUT_COLUMNS, "interval_low", "interval_high"] == exam_pred.output_columns
    assert out["model_version"].isna().all()
    assert (out["interval_low"] <= out["interval_high"]).all()
    assert out["risk_score"].between(0, 1).all()
    assert out["prediction"].dtype == float


def test_output_in_input_order_with_ids(dropout_pred: Predictor) -> None:
    frame = _new(dropout_pred.spec, 20)
    frame["student_id"] = [f"stu-{i}" for i in range(20)]
    out = dropout_pred.predict(frame)
    shuffled = frame.sample(frac=1.0, random_state=0)
    out_shuffled = dropout_pred.predict(shuffled)
    assert out_shuffled["student_id"].tolist() == shuffled["student_id"].tolist()
    by_id = out.set_index("student_id")["risk_score"]
    np.testing.assert_allclose(out_shuffled["risk_score"], by_id.loc[out_shuffled["student_id"]].to_numpy())
    # a row scored alone gets the same score as in the batch
    single = dropout_pred.predict(frame.iloc[[7]])
    assert single["risk_score"].iloc[0] == pytest.approx(out["risk_score"].iloc[7])


def test_ids_derived_when_absent(exam_pred: Predictor) -> None:
    frame = _new(exam_pred.spec, 3).drop(columns=["student_id"])
    out = exam_pred.predict(frame)
    assert out["student_id"].tolist() == ["exam-000001", "exam-000002", "exam-000003"]


def test_source_headers_and_canonical_names_agree(dropout_pred: Predictor) -> None:
    frame = _new(dropout_pred.spec)
    canonical = dropout_pred.predict(frame)
    source = dropout_pred.predict(_to_source_headers(frame, dropout_pred.spec))
    shouting = dropout_pred.predict(frame.rename(columns=str.upper))
    pd.testing.assert_frame_equal(canonical, source)
    pd.testing.assert_frame_equal(canonical, shouting)


def test_text_values_as_in_csv_files(dropout_pred: Predictor) -> None:
    frame = _new(dropout_pred.spec)
    pd.testing.assert_frame_equal(dropout_pred.predict(frame.astype(str)), dropout_pred.predict(frame))


def test_list_of_records(exam_pred: Predictor) -> None:
    frame = _new(exam_pred.spec, 5)
    records = _to_source_headers(frame, exam_pred.spec).to_dict(orient="records")
    pd.testing.assert_frame_equal(exam_pred.predict(records), exam_pred.predict(frame))


def test_only_model_features_required(dropout_pred: Predictor) -> None:
    frame = _new(dropout_pred.spec)[["student_id", *dropout_pred.features]]
    out = dropout_pred.predict(frame)
    assert len(out) == len(frame)
    assert "units_2nd_sem_approved" not in dropout_pred.features


def test_bad_code_raises_with_report(dropout_pred: Predictor) -> None:
    frame = _new(dropout_pred.spec)
    frame.loc[4, "course"] = "12345"
    with pytest.raises(DataValidationError) as info:
        dropout_pred.predict(frame)
    issue = info.value.report.errors[0]
    assert issue.column == "course"
    assert issue.rows == (5,)


def test_missing_feature_column_raises(dropout_pred: Predictor) -> None:
    frame = _new(dropout_pred.spec).drop(columns=["units_1st_sem_approved"])
    with pytest.raises(DataValidationError, match="units_1st_sem_approved"):
        dropout_pred.predict(frame)


def test_out_of_range_raises(exam_pred: Predictor) -> None:
    records = _new(exam_pred.spec, 2).to_dict(orient="records")
    records[1]["reading_score"] = 140
    with pytest.raises(DataValidationError) as info:
        exam_pred.predict(records)
    assert info.value.report.bad_rows() == {2}


def test_prepare_returns_typed_frame(exam_pred: Predictor) -> None:
    typed = exam_pred.prepare(_new(exam_pred.spec, 4).astype(str))
    assert typed["reading_score"].dtype == np.float64
    assert typed["gender"].map(type).eq(str).all()
