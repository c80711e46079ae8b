"""Unit tests for ``retain.features.build``: feature sets and the preprocessing pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import DatasetSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.features.build import (
    FeatureSet,
    build_preprocessor,
    feature_set,
    monotone_vector,
    raw_column_of,
    select_features,
)


@pytest.fixture(scope="module")
def dropout() -> DatasetSpec:
    return load_spec("dropout")


@pytest.fixture(scope="module")
def typed(dropout: DatasetSpec) -> pd.DataFrame:
    frame, report = validate_frame(synthesize(dropout, 600, seed=5), dropout)
    assert report.ok
    return frame


@pytest.fixture(scope="module")
def sem2(dropout: DatasetSpec) -> FeatureSet:
    return feature_set(dropout, dropout.task("dropout"), "semester_2")


def test_feature_set_splits_by_kind(dropout: DatasetSpec, sem2: FeatureSet) -> None:
    assert sem2.raw == dropout.features("dropout", "semester_2")
    assert set(sem2.numeric) | set(sem2.categorical) == set(sem2.raw)
    assert not set(sem2.numeric) & set(sem2.categorical)
    assert "course" in sem2.categorical
    assert "debtor" in sem2.numeric  # boolean counts as numeric
    assert "admission_grade" in sem2.numeric
    assert sem2.derived_names == [d.name for d in dropout.derived_features("dropout", "semester_2")]
    assert (
        "approval_rate_1st_sem",
        "ratio",
        "units_1st_sem_approved",
        "units_1st_sem_enrolled",
    ) in sem2.derived


def test_feature_set_at_enrolment_has_no_derived(dropout: DatasetSpec) -> None:
    fs = feature_set(dropout, dropout.task("outcome"), "enrolment")
    assert fs.derived == []
    assert "units_1st_sem_approved" not in fs.raw


def test_output_names(dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame) -> None:
    prep = build_preprocessor(dropout, sem2).fit(select_features(typed, sem2))
    out = prep.transform(select_features(typed, sem2))
    names = [str(c) for c in out.columns]
    assert len(names) == len(set(names))
    for col in sem2.numeric:
        assert sum(n.startswith("num") and n.endswith(f"__{col}") for n in names) == 1, col
    for name in sem2.derived_names:
        assert f"derived__{name}" in names
    for col in sem2.categorical:
        assert any(n.startswith(f"cat__{col}_") for n in names), col
    assert all(n.split("__")[0] in {"num_median", "num_most_frequent", "derived", "cat"} for n in names)
    assert out.dtypes.eq(np.float64).all()
    assert len(out) == len(typed)


def test_onehot_names_use_codes(dropout: DatasetSpec, typed: pd.DataFrame) -> None:
    spec = load_spec("exam_scores")
    frame, _ = validate_frame(synthesize(spec, 500, seed=1), spec)
    fs = feature_set(spec, spec.task("math"), "demographics")
    out = build_preprocessor(spec, fs).fit_transform(select_features(frame, fs))
    assert {
        "cat__gender_female",
        "cat__gender_male",
        "cat__lunch_standard",
        "cat__lunch_free/reduced",
    } <= set(out.columns)
    gender = out[["cat__gender_female", "cat__gender_male"]].to_numpy()
    np.testing.assert_array_equal(gender.sum(axis=1), 1.0)
    np.testing.assert_array_equal(gender[:, 0], (frame["gender"] == "female").to_numpy(dtype=float))


def test_raw_column_of_maps_every_output_back(
    dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame
) -> None:
    out = build_preprocessor(dropout, sem2).fit_transform(select_features(typed, sem2))
    known = set(sem2.raw) | set(sem2.derived_names)
    for name in out.columns:
        assert raw_column_of(str(name), sem2.raw + sem2.derived_names) in known, name


def test_raw_column_of_prefers_longest_match() -> None:
    raw = ["age", "age_at_enrollment", "course", "units_1st_sem_approved"]
    assert raw_column_of("num_median__age", raw) == "age"
    assert raw_column_of("num_median__age_at_enrollment", raw) == "age_at_enrollment"
    assert raw_column_of("cat__course_9254", raw) == "course"
    assert raw_column_of("cat__course_infrequent_sklearn", raw) == "course"
    assert raw_column_of("derived__grade_trend", raw) == "grade_trend"
    assert raw_column_of("plain", raw) == "plain"


def test_missing_values_are_imputed_inside_pipeline(
    dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame
) -> None:
    X = select_features(typed, sem2).copy()
    rng = np.random.default_rng(0)
    for col in ["admission_grade", "course", "units_1st_sem_enrolled", "debtor", "marital_status"]:
        X.loc[rng.choice(X.index, 60, replace=False), col] = np.nan
    prep = build_preprocessor(dropout, sem2).fit(X)
    out = prep.transform(X)
    assert not out.isna().any().any()
    all_missing = X.head(3).copy()
    all_missing.loc[:, :] = np.nan
    assert not prep.transform(all_missing).isna().any().any()


def test_missing_columns_at_transform_are_imputed(
    dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame
) -> None:
    prep = build_preprocessor(dropout, sem2).fit(select_features(typed, sem2))
    partial = typed[sem2.raw[:5]]
    out = prep.transform(select_features(partial, sem2))
    assert not out.isna().any().any()


def test_median_imputation_value(dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame) -> None:
    X = select_features(typed, sem2)
    prep = build_preprocessor(dropout, sem2).fit(X)
    row = X.head(1).copy()
    row["admission_grade"] = np.nan
    out = prep.transform(row)
    assert out["num_median__admission_grade"].iloc[0] == pytest.approx(X["admission_grade"].median())


def test_constant_policy_uses_fill_value() -> None:
    spec = DatasetSpec.model_validate(
        {
            "name": "mini",
            "title": "Mini",
            "source": {"file": "m.csv"},
            "stages": ["s"],
            "columns": [
                {"name": "absences", "type": "integer", "missing": "constant", "fill_value": -1},
                {"name": "age", "type": "integer"},
                {"name": "y", "type": "float", "role": "target"},
            ],
            "tasks": [
                {
                    "name": "t",
                    "type": "regression",
                    "target": "y",
                    "pass_mark": 1,
                    "stages": ["s"],
                    "primary_metric": "rmse",
                }
            ],
        }
    )
    fs = feature_set(spec, spec.task("t"), "s")
    X = pd.DataFrame({"absences": [1.0, 2.0, np.nan], "age": [10.0, np.nan, 30.0]})
    out = build_preprocessor(spec, fs).fit_transform(X)
    assert out["num_constant__absences"].tolist() == [1.0, 2.0, -1.0]
    assert out["num_median__age"].tolist() == [10.0, 20.0, 30.0]


def test_unknown_and_infrequent_categories_do_not_crash(
    dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame
) -> None:
    prep = build_preprocessor(dropout, sem2).fit(select_features(typed, sem2))
    rows = select_features(typed, sem2).head(3).copy()
    rows["course"] = ["not-a-course", "33", "9999"]
    rows["marital_status"] = ["6", "weird", "1"]
    out = prep.transform(rows)
    assert len(out) == 3
    assert not out.isna().any().any()
    course_cols = [c for c in out.columns if str(c).startswith("cat__course_")]
    assert out[course_cols].to_numpy().sum(axis=1).max() <= 1.0


def test_scaling_standardises_numeric(dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame) -> None:
    out = build_preprocessor(dropout, sem2, scale=True).fit_transform(select_features(typed, sem2))
    grade = out["num_median__admission_grade"]
    assert grade.mean() == pytest.approx(0.0, abs=1e-9)
    assert grade.std(ddof=0) == pytest.approx(1.0, rel=1e-6)
    unscaled = build_preprocessor(dropout, sem2).fit_transform(select_features(typed, sem2))
    assert unscaled["num_median__admission_grade"].mean() > 10


def test_monotone_vector_marks_only_numeric_and_derived() -> None:
    names = [
        "num_median__debtor",
        "num_most_frequent__units",
        "derived__approval_rate",
        "cat__debtor_1",
        "cat__course_33",
        "num_median__age",
    ]
    monotone = {"debtor": 1, "units": -1, "approval_rate": -1, "course": 1}
    assert monotone_vector(names, monotone) == [1, -1, -1, 0, 0, 0]


def test_monotone_vector_on_real_pipeline(
    dropout: DatasetSpec, sem2: FeatureSet, typed: pd.DataFrame
) -> None:
    out = build_preprocessor(dropout, sem2).fit_transform(select_features(typed, sem2))
    names = [str(c) for c in out.columns]
    vector = monotone_vector(names, dict(dropout.task("dropout").monotone))
    marked = {
        raw_column_of(n, sem2.raw + sem2.derived_names): v for n, v in zip(names, vector, strict=True) if v
    }
    assert marked == dict(dropout.task("dropout").monotone)


def test_select_features_orders_and_fills(sem2: FeatureSet, typed: pd.DataFrame) -> None:
    shuffled = typed[list(reversed(sem2.raw[:4]))]
    out = select_features(shuffled, sem2)
    assert list(out.columns) == sem2.raw
    assert out[sem2.raw[5]].isna().all()
    assert "student_id" not in out.columns


def test_feature_set_drop_removes_feature_and_dependent_derived(dropout: DatasetSpec) -> None:
    task = dropout.task("dropout")
    fs = feature_set(dropout, task, "semester_2", drop=["units_1st_sem_enrolled", "grade_trend"])
    full = feature_set(dropout, task, "semester_2")
    assert fs.raw == [c for c in full.raw if c != "units_1st_sem_enrolled"]
    assert "units_1st_sem_enrolled" not in fs.numeric
    assert set(full.derived_names) - set(fs.derived_names) == {"approval_rate_1st_sem", "grade_trend"}
