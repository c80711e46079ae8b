"""Tests for ``retain.data.synth``: valid, deterministic, realistic synthetic records."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.data.load import load_raw
from retain.data.spec import DatasetSpec, load_spec_file, spec_paths
from retain.data.synth import synthesize, synthesize_to_file
from retain.data.validate import validate_frame

SPEC_DIR = Path(__file__).resolve().parents[3] / "configs" / "datasets"
BUNDLED = sorted(spec_paths([SPEC_DIR]))


def _spec(name: str) -> DatasetSpec:
    return load_spec_file(SPEC_DIR / f"{name}.yaml")


def _header(path: Path, delimiter: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter))


def _all_columns(spec: DatasetSpec) -> list[str]:
    return [c.name for c in spec.columns]


@pytest.fixture(scope="module")
def dropout() -> pd.DataFrame:
    return synthesize(_spec("dropout"), 20_000, seed=7)


def test_bundled_specs_are_found() -> None:
    assert {"dropout", "exam_scores", "secondary_math", "secondary_portuguese"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_output_validates_with_every_column_required(name: str) -> None:
    spec = _spec(name)
    frame = synthesize(spec, 2_000, seed=1)

    typed, report = validate_frame(frame, spec, required=_all_columns(spec))

    assert report.issues == [], report.summary()
    assert list(frame.columns) == [spec.id.column, *_all_columns(spec)]
    assert len(frame) == 2_000
    assert not frame.isna().any().any()
    assert frame[spec.id.column].is_unique
    assert frame[spec.id.column].str.startswith(f"{spec.id.prefix}synth-").all()
    for col in spec.columns:
        if col.type.value == "categorical":
            assert frame[col.name].map(type).eq(str).all(), col.name
            assert set(frame[col.name].unique()) <= set(col.codes or {}), col.name
        elif col.type.value == "boolean":
            assert set(typed[col.name].unique()) <= {float(k) for k in col.codes or {"0": "", "1": ""}}
        elif col.type.value == "integer":
            assert (typed[col.name] == np.floor(typed[col.name])).all(), col.name


@pytest.mark.parametrize("name", BUNDLED)
def test_deterministic_for_a_seed_and_different_for_another(name: str) -> None:
    spec = _spec(name)
    first = synthesize(spec, 500, seed=11)
    pd.testing.assert_frame_equal(first, synthesize(spec, 500, seed=11))
    other = synthesize(spec, 500, seed=12)
    features = [c for c in _all_columns(spec)]
    assert not first[features].equals(other[features])


@pytest.mark.parametrize("name", BUNDLED)
def test_coded_marginals_are_uneven(name: str) -> None:
    spec = _spec(name)
    frame = synthesize(spec, 5_000, seed=2)
    for col in spec.columns:
        if col.type.value == "categorical" and col.role != "target" and len(col.codes or {}) > 1:
            shares = frame[col.name].value_counts(normalize=True)
            assert shares.iloc[0] > 1.2 / len(col.codes or {}), col.name


def test_dropout_units_are_consistent(dropout: pd.DataFrame) -> None:
    for sem in ("1st", "2nd"):
        enrolled = dropout[f"units_{sem}_sem_enrolled"]
        approved = dropout[f"units_{sem}_sem_approved"]
        evaluations = dropout[f"units_{sem}_sem_evaluations"]
        without = dropout[f"units_{sem}_sem_without_evaluations"]
        grade = dropout[f"units_{sem}_sem_grade"]
        assert (approved <= enrolled).all()
        assert (evaluations >= approved).all()
        assert (without <= enrolled - approved).all()
        assert (grade[approved == 0] == 0).all()
        assert (grade[approved > 0] > 0).all()


def test_dropout_target_relates_to_features(dropout: pd.DataFrame) -> None:
    is_dropout = dropout["target"] == "Dropout"
    shares = dropout["target"].value_counts(normalize=True)
    assert set(shares.index) == {"Dropout", "Enrolled", "Graduate"}
    assert 0.2 < shares["Dropout"] < 0.4

    few = dropout["units_2nd_sem_approved"] <= 2
    assert few.mean() > 0.05
    assert is_dropout[few].mean() > 1.8 * is_dropout[~few].mean()
    # monotone signs from the spec: debtor raises risk; fees up to date and scholarships lower it
    assert is_dropout[dropout["debtor"] == 1].mean() > is_dropout[dropout["debtor"] == 0].mean()
    for protective in ("tuition_fees_up_to_date", "scholarship_holder"):
        assert is_dropout[dropout[protective] == 1].mean() < is_dropout[dropout[protective] == 0].mean()
    # the middle class sits between the extremes in engagement
    by_class = dropout.groupby("target")["units_2nd_sem_grade"].mean()
    assert by_class["Dropout"] < by_class["Enrolled"] < by_class["Graduate"]


def test_exam_scores_correlate() -> None:
    frame = synthesize(_spec("exam_scores"), 5_000, seed=5)
    scores = frame[["math_score", "reading_score", "writing_score"]]
    assert scores.corr().loc["math_score", "reading_score"] > 0.4
    assert scores.corr().loc["reading_score", "writing_score"] > 0.4
    assert 45 < scores["math_score"].mean() < 75


@pytest.mark.parametrize("name", ["secondary_math", "secondary_portuguese"])
def test_secondary_final_grade_follows_period_grades(name: str) -> None:
    frame = synthesize(_spec(name), 5_000, seed=5)
    assert frame["g3"].corr(frame["g2"]) > 0.5
    assert frame["g3"].corr(frame["g1"]) > 0.5
    fail_rate = (frame["g3"] < 10).mean()
    assert 0.1 < fail_rate < 0.5
    assert (frame["failures"] == 0).mean() > 0.5


def test_institution_spec_works_without_code_changes() -> None:
    spec = DatasetSpec.model_validate(
        {
            "name": "college",
            "title": "An institution's own records",
            "source": {"file": "college.parquet", "format": "parquet"},
            "id": {"prefix": "c-"},
            "stages": ["admission", "term_1"],
            "columns": [
                {
                    "name": "campus",
                    "type": "categorical",
                    "codes": ["north", "south", "online"],
                    "stage": "admission",
                },
                {"name": "first_generation", "type": "boolean", "stage": "admission", "protected": True},
                {"name": "entry_gpa", "type": "float", "min": 0, "max": 4, "stage": "admission"},
                {"name": "distance_km", "type": "float", "min": 0, "stage": "admission"},
                {"name": "cohort", "type": "integer", "min": 2015, "max": 2024, "role": "time"},
                {"name": "note", "type": "string", "role": "info"},
                {"name": "credits_earned", "type": "integer", "min": 0, "max": 30, "stage": "term_1"},
                {"name": "missed_sessions", "type": "integer", "min": 0, "max": 40, "stage": "term_1"},
                {"name": "on_hold", "type": "boolean", "stage": "term_1"},
                {"name": "term_gpa", "type": "float", "min": 0, "max": 4, "role": "target"},
                {
                    "name": "status",
                    "type": "categorical",
                    "role": "target",
                    "codes": {"A": "active", "W": "withdrawn", "G": "graduated"},
                },
            ],
            "tasks": [
                {
                    "name": "withdrawal",
                    "type": "classification",
                    "target": "status",
                    "adverse": "W",
                    "negative_label": "stays",
                    "stages": ["admission", "term_1"],
                    "primary_metric": "roc_auc",
                    "monotone": {"credits_earned": -1, "missed_sessions": 1, "on_hold": 1},
                },
                {
                    "name": "gpa",
                    "type": "regression",
                    "target": "term_gpa",
                    "pass_mark": 2.0,
                    "stages": ["admission", "term_1"],
                    "primary_metric": "rmse",
                    "greater_is_better": False,
                },
                {
                    "name": "probation",
                    "type": "classification",
                    "target": "term_gpa",
                    "threshold": 2.0,
                    "adverse": "probation",
                    "negative_label": "good standing",
                    "stages": ["admission", "term_1"],
                    "primary_metric": "roc_auc",
                    "monotone": {"entry_gpa": -1},
                },
            ],
            "time_column": "cohort",
        }
    )
    frame = synthesize(spec, 10_000, seed=3)

    _, report = validate_frame(frame, spec, required=_all_columns(spec))
    assert report.issues == [], report.summary()
    withdrawn = frame["status"] == "W"
    assert withdrawn.mean() == pytest.approx(0.3, abs=0.05)
    high_credits = frame["credits_earned"] > frame["credits_earned"].median()
    assert withdrawn[high_credits].mean() < withdrawn[~high_credits].mean()
    many_missed = frame["missed_sessions"] > frame["missed_sessions"].median()
    assert withdrawn[many_missed].mean() > withdrawn[~many_missed].mean()
    assert withdrawn[frame["on_hold"] == 1].mean() > withdrawn[frame["on_hold"] == 0].mean()
    assert frame["term_gpa"].corr(frame["entry_gpa"]) > 0.1
    assert frame["term_gpa"].corr(frame["credits_earned"]) > 0.1


def test_csv_file_uses_source_headers_and_delimiter(tmp_path: Path) -> None:
    spec = _spec("dropout")
    path = synthesize_to_file(spec, 300, tmp_path / "dropout.csv", seed=9)

    header = _header(path, ";")
    assert header[0] == "student_id"
    assert "Curricular units 1st sem (approved)" in header
    assert "Nacionality" in header
    assert "Daytime/evening attendance\t" in header
    frame = load_raw(spec, path)
    typed, report = validate_frame(frame, spec, required=_all_columns(spec))
    assert report.ok, report.summary()
    expected = synthesize(spec, 300, seed=9)
    assert frame["student_id"].tolist() == expected["student_id"].tolist()
    np.testing.assert_allclose(typed["units_1st_sem_grade"], expected["units_1st_sem_grade"])
    assert typed["target"].tolist() == expected["target"].tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["dropout.csv"]


def test_chunked_parquet_matches_frame(tmp_path: Path) -> None:
    spec = _spec("secondary_math")
    path = synthesize_to_file(spec, 25, tmp_path / "math.parquet", seed=4, chunk_rows=7)

    written = pd.read_parquet(path)
    pd.testing.assert_frame_equal(written, synthesize(spec, 25, seed=4, chunk_rows=7))
    assert list(written.columns) == ["student_id", *_all_columns(spec)]
    assert written["student_id"].is_unique


def test_chunked_csv_matches_frame(tmp_path: Path) -> None:
    spec = _spec("exam_scores")
    path = synthesize_to_file(spec, 30, tmp_path / "exams.csv", seed=4, chunk_rows=8)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 31
    assert _header(path, ",")[:3] == ["student_id", "gender", "race/ethnicity"]
    loaded = load_raw(spec, path)
    typed, report = validate_frame(loaded, spec, required=_all_columns(spec))
    assert report.ok
    expected = synthesize(spec, 30, seed=4, chunk_rows=8)
    assert typed["math_score"].tolist() == expected["math_score"].astype(float).tolist()


def test_zero_rows_and_bad_arguments(tmp_path: Path) -> None:
    spec = _spec("exam_scores")
    empty = synthesize(spec, 0)
    assert empty.empty
    assert list(empty.columns) == ["student_id", *_all_columns(spec)]
    with pytest.raises(ValueError, match="rows"):
        synthesize(spec, -1)
    with pytest.raises(ValueError, match="unsupported file type"):
        synthesize_to_file(spec, 10, tmp_path / "exams.json")
