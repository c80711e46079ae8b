"""Spec-driven EDA: outcomes, group columns, readable labels, sections, correction, planted effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from retain.data.load import load_raw
from retain.data.spec import DatasetSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.insights.eda import (
    EdaOptions,
    build_eda,
    group_columns,
    labelled,
    level_order,
    outcomes,
    summarize_categorical,
    summarize_numeric,
)
from retain.insights.stats import WELCH_T, adjust_p_values

SEED = 11


def _typed(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    typed, report = validate_frame(frame, spec, required=[c.name for c in spec.columns])
    assert report.ok, report.summary()
    return typed


@pytest.fixture(scope="module")
def dropout() -> DatasetSpec:
    return load_spec("dropout")


@pytest.fixture(scope="module")
def exams() -> DatasetSpec:
    return load_spec("exam_scores")


def test_outcomes_come_from_the_tasks(dropout: DatasetSpec, exams: DatasetSpec) -> None:
    (target,) = outcomes(dropout)
    assert (target.column, target.kind, target.focus) == ("target", "categorical", "Dropout")
    assert target.binary and target.other_label == "Not dropout"
    assert set(target.tasks) == {"outcome", "dropout"}
    assert [o.column for o in outcomes(exams)] == ["math_score", "reading_score", "writing_score"]
    assert all(o.kind == "numeric" and o.pass_mark == 50 for o in outcomes(exams))
    (grade,) = outcomes(load_spec("secondary_math"))
    assert (grade.column, grade.kind, grade.pass_mark, set(grade.tasks)) == (
        "g3",
        "numeric",
        10,
        {"grade", "pass"},
    )


def test_group_columns_are_coded_non_target_columns(dropout: DatasetSpec) -> None:
    names = [c.name for c in group_columns(dropout)]
    assert {"scholarship_holder", "tuition_fees_up_to_date", "course", "gender"} <= set(names)
    assert "target" not in names and "admission_grade" not in names and "student_id" not in names


def test_labels_come_from_the_spec_codes(dropout: DatasetSpec) -> None:
    course = dropout.column("course")
    assert level_order(course)[:2] == ["Biofuel Production Technologies", "Animation and Multimedia Design"]
    values = pd.Series(["9254", None, "9500"], dtype=object)
    assert labelled(values, course).tolist()[0::2] == ["Tourism", "Nursing"]
    assert pd.isna(labelled(values, course).iloc[1])
    gender = labelled(pd.Series([0.0, 1.0, np.nan]), dropout.column("gender"))
    assert gender.tolist()[:2] == ["female", "male"]


def test_summaries_use_labels_and_unit_bins(exams: DatasetSpec, dropout: DatasetSpec) -> None:
    prep = summarize_categorical(
        pd.Series(["none", "completed", "none", None], dtype=object), exams.column("test_preparation")
    )
    assert [(lv.label, lv.n) for lv in prep.levels] == [("none", 2), ("completed", 1)]
    assert prep.missing == 1
    lunch = summarize_categorical(pd.Series(["free/reduced"] * 3, dtype=object), exams.column("lunch"))
    assert [lv.label for lv in lunch.levels] == ["standard", "free or reduced"]
    order = summarize_numeric(pd.Series([0.0, 1.0, 1.0, 9.0, np.nan]), dropout.column("application_order"))
    assert (order.n, order.missing, order.median) == (4, 1, 1.0)
    assert order.edges[0] == -0.5 and len(order.counts) == 10 and sum(order.counts) == 4


@pytest.fixture(scope="module")
def synthetic_dropout(dropout: DatasetSpec) -> pd.DataFrame:
    return _typed(dropout, synthesize(dropout, 1500, seed=SEED))


def test_report_on_synthetic_dropout_uses_labels_sections_and_one_correction(
    dropout: DatasetSpec, synthetic_dropout: pd.DataFrame
) -> None:
    report = build_eda(synthetic_dropout, dropout)
    assert report.n_rows == 1500 and report.comparisons
    by_group = {c.group_by: c for c in report.comparisons}
    assert {c.group_by for c in report.protected} == {
        name for name in by_group if dropout.column(name).protected
    }
    assert "gender" in {c.group_by for c in report.protected}
    assert "scholarship_holder" in {c.group_by for c in report.general}
    for c in report.comparisons:
        column = dropout.column(c.group_by)
        allowed = set(level_order(column))
        for g in c.groups:
            assert g.label in allowed or g.label.startswith("Other ("), (c.group_by, g.label)
            assert not g.label.isdigit()
        assert c.kind == "categorical" and c.focus == "Dropout"
        assert c.p_adjusted is not None and c.p_adjusted >= c.p_value
    expected = adjust_p_values([c.p_value for c in report.comparisons], "holm")
    assert [c.p_adjusted for c in report.comparisons] == pytest.approx(list(expected))
    frame = report.comparisons_frame()
    assert {"test", "statistic", "p", "p_adjusted", "effect", "sentence", "section"} <= set(frame.columns)
    assert len(frame) == len(report.comparisons)
    json.dumps(report.to_dict())  # plain types only


def test_max_levels_skips_wide_columns(dropout: DatasetSpec, synthetic_dropout: pd.DataFrame) -> None:
    report = build_eda(synthetic_dropout, dropout, EdaOptions(max_levels=2))
    assert all(len(c.groups) <= 2 for c in report.comparisons)
    skipped = {s.group_by: s.reason for s in report.skipped}
    assert "course" in skipped and "more than 2" in skipped["course"]
    assert "scholarship_holder" not in skipped


def _planted_exams(exams: DatasetSpec, seed: int = SEED) -> pd.DataFrame:
    """Synthetic exam records with every group column shuffled at random (no effect), then +8
    maths points planted for students with test preparation."""
    frame = synthesize(exams, 600, seed=seed)
    rng = np.random.default_rng(seed)
    for column in group_columns(exams):
        codes = list(column.codes or {})
        frame[column.name] = rng.choice(codes, size=len(frame))
    for score in ("math_score", "reading_score", "writing_score"):
        frame[score] = np.clip(np.round(rng.normal(65, 14, len(frame))), 0, 100).astype(int)
    completed = frame["test_preparation"] == "completed"
    frame.loc[completed, "math_score"] = np.clip(frame.loc[completed, "math_score"] + 8, 0, 100)
    return _typed(exams, frame)


def test_a_planted_difference_is_found_and_random_groups_are_not_flagged(exams: DatasetSpec) -> None:
    report = build_eda(_planted_exams(exams), exams)
    assert len(report.comparisons) == 15
    planted = next(
        c for c in report.comparisons if (c.outcome, c.group_by) == ("math_score", "test_preparation")
    )
    assert planted.test == WELCH_T and planted.significant
    assert planted.effect.magnitude in ("medium", "large", "small")
    others = [c for c in report.comparisons if c is not planted]
    assert not any(c.significant for c in others), [c.sentence for c in others if c.significant]
    assert report.findings(None) == [planted]
    assert "“completed” than for “none”" in planted.sentence


def test_small_groups_are_pooled_and_recorded(exams: DatasetSpec) -> None:
    frame = _planted_exams(exams)
    frame.loc[frame.index[:4], "parental_education"] = "master's degree"
    frame.loc[frame.index[4:], "parental_education"] = frame.loc[
        frame.index[4:], "parental_education"
    ].replace("master's degree", "high school")
    report = build_eda(frame, exams)
    c = next(c for c in report.comparisons if c.group_by == "parental_education")
    assert "master's degree" in c.excluded
    assert "master's degree" not in [g.label for g in c.groups]


def test_missing_target_drops_its_outcome(exams: DatasetSpec) -> None:
    frame = _planted_exams(exams).drop(columns=["reading_score", "writing_score"])
    report = build_eda(frame, exams)
    assert {c.outcome for c in report.comparisons} == {"math_score"}


def test_headline_findings_on_the_example_data(shared_data: object) -> None:
    exams = load_spec("exam_scores")
    report = build_eda(_typed(exams, load_raw(exams)), exams)
    prep = next(
        c for c in report.comparisons if (c.outcome, c.group_by) == ("math_score", "test_preparation")
    )
    none, completed = prep.groups
    assert (none.label, completed.label) == ("none", "completed")
    assert (completed.mean or 0) - (none.mean or 0) == pytest.approx(5.7, abs=0.5)
    assert prep.significant and (prep.p_adjusted or 1) < 0.001

    dropout = load_spec("dropout")
    report = build_eda(_typed(dropout, load_raw(dropout)), dropout)
    rates = {c.group_by: {g.label: g.rate for g in c.groups} for c in report.comparisons}
    assert rates["scholarship_holder"]["no"] > rates["scholarship_holder"]["yes"] + 0.2
    assert rates["tuition_fees_up_to_date"]["no"] > rates["tuition_fees_up_to_date"]["yes"] + 0.5
    tuition = next(c for c in report.comparisons if c.group_by == "tuition_fees_up_to_date")
    assert tuition.significant and tuition.effect.magnitude == "medium"
