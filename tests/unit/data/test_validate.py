"""Unit tests for ``retain.data.validate``: typing, codes, ranges and reports by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import DatasetSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import (
    DataValidationError,
    ValidationReport,
    normalize_codes,
    validate_frame,
)

MINI = {
    "name": "mini",
    "title": "Mini",
    "source": {"file": "mini.csv"},
    "stages": ["early"],
    "columns": [
        {"name": "age", "type": "integer", "min": 15, "max": 22, "stage": "early"},
        {"name": "score", "type": "float", "min": 0, "max": 20, "missing": "error", "stage": "early"},
        {"name": "course", "type": "categorical", "codes": {"1": "A", "2": "B", "10": "C"}},
        {"name": "flag", "type": "boolean"},
        {"name": "outcome", "type": "categorical", "role": "target", "codes": ["pass", "fail"]},
    ],
    "tasks": [
        {
            "name": "result",
            "type": "classification",
            "target": "outcome",
            "adverse": "fail",
            "negative_label": "pass",
            "stages": ["early"],
            "primary_metric": "roc_auc",
        }
    ],
}


@pytest.fixture(scope="module")
def mini() -> DatasetSpec:
    return DatasetSpec.model_validate(MINI)


@pytest.fixture(scope="module")
def exam() -> DatasetSpec:
    return load_spec("exam_scores")


def _good(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "student_id": [f"s{i}" for i in range(n)],
            "age": ["16", "17", "18", "19"][:n],
            "score": ["10.5", "12", "0", "20"][:n],
            "course": ["1", "2", "10", "1"][:n],
            "flag": ["0", "1", "1", "0"][:n],
            "outcome": ["pass", "fail", "pass", "pass"][:n],
        }
    )


def _issue(report: ValidationReport, column: str, problem: str):
    found = [i for i in report.issues if i.column == column and i.problem == problem]
    assert found, f"no {problem!r} issue for {column!r}: {report.summary()}"
    return found[0]


def test_valid_frame_types_values(mini: DatasetSpec) -> None:
    typed, report = validate_frame(_good(), mini)
    assert report.ok and report.issues == [], report.summary()
    assert typed["age"].dtype == np.float64
    assert typed["score"].tolist() == [10.5, 12.0, 0.0, 20.0]
    assert typed["course"].tolist() == ["1", "2", "10", "1"]
    assert typed["flag"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert typed["student_id"].tolist() == ["s0", "s1", "s2", "s3"]
    assert list(typed.columns) == ["student_id", "age", "score", "course", "flag", "outcome"]


def test_unknown_code_is_reported_with_row_and_example(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[2, "course"] = "7"
    typed, report = validate_frame(frame, mini)
    issue = _issue(report, "course", "unknown code")
    assert issue.rows == (3,)
    assert issue.n_rows == 1
    assert issue.examples == ("7",)
    assert "1, 2, 10" in issue.expected
    assert pd.isna(typed.loc[2, "course"])
    assert not report.ok


def test_non_number_is_reported(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[1, "age"] = "seventeen"
    typed, report = validate_frame(frame, mini)
    issue = _issue(report, "age", "not a number")
    assert issue.rows == (2,)
    assert issue.examples == ("seventeen",)
    assert np.isnan(typed.loc[1, "age"])


@pytest.mark.parametrize("value", ["inf", "-Infinity", float("inf")])
def test_an_infinite_number_is_reported_not_passed_on(mini: DatasetSpec, value: object) -> None:
    # an unbounded column has no range to catch it, and no model takes an infinity
    frame = _good()
    frame["age"] = frame["age"].astype(object)
    frame.loc[1, "age"] = value
    typed, report = validate_frame(frame, mini)
    issue = _issue(report, "age", "not a finite number")
    assert issue.rows == (2,) and issue.expected == "a finite integer"
    assert np.isnan(typed.loc[1, "age"]) and not report.ok


def test_fractional_integer_is_reported(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[3, "age"] = "17.5"
    _, report = validate_frame(frame, mini)
    issue = _issue(report, "age", "not a whole number")
    assert issue.rows == (4,)
    assert issue.expected == "an integer"


def test_integer_written_as_float_is_fine(mini: DatasetSpec) -> None:
    frame = _good()
    frame["age"] = ["16.0", "17", " 18 ", "19.00"]
    typed, report = validate_frame(frame, mini)
    assert report.ok, report.summary()
    assert typed["age"].tolist() == [16.0, 17.0, 18.0, 19.0]


@pytest.mark.parametrize(("value", "bound"), [("14", "at least 15"), ("23", "at most 22")])
def test_out_of_range_is_reported(mini: DatasetSpec, value: str, bound: str) -> None:
    frame = _good()
    frame.loc[2, "age"] = value
    _, report = validate_frame(frame, mini)
    issue = _issue(report, "age", "out of range")
    assert issue.rows == (3,)
    assert issue.n_rows == 1
    assert bound in issue.expected
    assert report.bad_rows() == {3}


def test_bounds_are_inclusive(mini: DatasetSpec) -> None:
    frame = _good()
    frame["age"] = ["15", "22", "15", "22"]
    frame["score"] = ["0", "20", "0.0", "20.0"]
    _, report = validate_frame(frame, mini)
    assert report.ok, report.summary()


def test_boolean_outside_codes(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[0, "flag"] = "2"
    _, report = validate_frame(frame, mini)
    assert _issue(report, "flag", "not a yes/no code").rows == (1,)


def test_missing_required_column_is_an_error(mini: DatasetSpec) -> None:
    frame = _good().drop(columns=["age"])
    typed, report = validate_frame(frame, mini)
    issue = _issue(report, "age", "column is missing")
    assert issue.severity == "error"
    assert "age" not in typed.columns
    with pytest.raises(DataValidationError) as info:
        report.raise_for_errors()
    assert info.value.report is report
    assert "column is missing" in str(info.value)


def test_missing_column_names_source_header(exam: DatasetSpec) -> None:
    frame = synthesize(exam, 5, seed=0).drop(columns=["math_score"])
    _, report = validate_frame(frame, exam)
    assert "'math score'" in _issue(report, "math_score", "column is missing").expected


def test_required_subset_only(mini: DatasetSpec) -> None:
    frame = _good().drop(columns=["course", "flag"])
    _, report = validate_frame(frame, mini, required=["age", "score"])
    assert report.ok, report.summary()
    _, report_all = validate_frame(frame, mini)
    assert {i.column for i in report_all.errors} == {"course", "flag"}


def test_target_not_required_by_default(mini: DatasetSpec) -> None:
    _, report = validate_frame(_good().drop(columns=["outcome"]), mini)
    assert report.ok, report.summary()


def test_extra_columns_are_warnings(mini: DatasetSpec) -> None:
    frame = _good()
    frame["shoe_size"] = "42"
    typed, report = validate_frame(frame, mini)
    assert report.ok
    assert len(report.warnings) == 1
    assert "shoe_size" in report.warnings[0].column
    assert "shoe_size" not in typed.columns


@pytest.mark.parametrize(
    "codes", [[1, 2, 10, 1], ["1", "2", "10", "1"], [1.0, 2.0, 10.0, 1.0], [" 1 ", "2.0", "10 ", "1"]]
)
def test_codes_in_any_spelling_are_accepted(mini: DatasetSpec, codes: list[object]) -> None:
    frame = _good()
    frame["course"] = codes
    typed, report = validate_frame(frame, mini)
    assert report.ok, report.summary()
    assert typed["course"].tolist() == ["1", "2", "10", "1"]


def test_normalize_codes() -> None:
    assert normalize_codes(pd.Series([1, 2.0, 3.5])).tolist() == ["1", "2", "3.5"]
    assert normalize_codes(pd.Series([" 1 ", "1.0", "abc", "01"])).tolist() == ["1", "1", "abc", "1"]


def test_none_is_a_code_not_missing(exam: DatasetSpec) -> None:
    frame = synthesize(exam, 6, seed=1)
    frame["test_preparation"] = ["none", "completed", "none", " none", "completed", "none"]
    frame = frame.astype(str)
    typed, report = validate_frame(frame, exam)
    assert report.ok, report.summary()
    assert typed["test_preparation"].tolist() == ["none", "completed", "none", "none", "completed", "none"]


def test_missing_values_allowed_where_policy_permits(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[0, "age"] = ""
    frame.loc[1, "age"] = "NA"
    frame.loc[2, "course"] = "?"
    frame.loc[3, "flag"] = np.nan
    typed, report = validate_frame(frame, mini)
    assert report.ok, report.summary()
    assert typed["age"].isna().tolist() == [True, True, False, False]
    assert pd.isna(typed.loc[2, "course"])
    assert np.isnan(typed.loc[3, "flag"])


def test_missing_value_where_policy_is_error(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[2, "score"] = "null"
    _, report = validate_frame(frame, mini)
    issue = _issue(report, "score", "missing value")
    assert issue.rows == (3,)


def test_blank_target_is_not_an_error_it_means_not_final_yet(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[1, "outcome"] = ""
    typed, report = validate_frame(frame, mini, required=[c.name for c in mini.columns])
    assert report.ok, report.summary()
    assert typed["outcome"].isna().tolist() == [False, True, *([False] * (len(frame) - 2))]


def test_row_numbers_are_one_based_data_rows(mini: DatasetSpec) -> None:
    frame = pd.concat([_good()] * 5, ignore_index=True)  # 20 rows
    frame.loc[0, "course"] = "99"
    frame.loc[19, "age"] = "x"
    frame.loc[12, "score"] = "25"
    _, report = validate_frame(frame, mini)
    assert _issue(report, "course", "unknown code").rows == (1,)
    assert _issue(report, "age", "not a number").rows == (20,)
    assert _issue(report, "score", "out of range").rows == (13,)
    assert report.bad_rows() == {1, 13, 20}


def test_many_bad_rows_listed_first_ten_and_counted(mini: DatasetSpec) -> None:
    frame = pd.concat([_good()] * 10, ignore_index=True)  # 40 rows
    frame["course"] = "5"
    _, report = validate_frame(frame, mini)
    issue = _issue(report, "course", "unknown code")
    assert issue.n_rows == 40
    assert issue.rows == tuple(range(1, 11))
    assert "and 30 more" in issue.describe()


def test_range_issue_rows_with_non_default_index(mini: DatasetSpec) -> None:
    frame = pd.concat([_good()] * 5, ignore_index=True).iloc[8:12]  # index labels 8..11
    frame.loc[9, "age"] = "30"  # second data row
    _, report = validate_frame(frame, mini)
    issue = _issue(report, "age", "out of range")
    assert issue.rows == (2,)
    assert issue.n_rows == 1


def test_code_rows_with_non_default_index(mini: DatasetSpec) -> None:
    frame = pd.concat([_good()] * 5, ignore_index=True).iloc[8:12]
    frame.loc[9, "course"] = "99"
    _, report = validate_frame(frame, mini)
    assert _issue(report, "course", "unknown code").rows == (2,)


def test_empty_frame_is_an_error(mini: DatasetSpec) -> None:
    _, report = validate_frame(_good().iloc[:0], mini)
    assert not report.ok
    assert report.errors[0].problem == "no rows"


def test_report_to_dict_and_summary(mini: DatasetSpec) -> None:
    frame = _good()
    frame.loc[0, "course"] = "99"
    frame["extra"] = 1
    _, report = validate_frame(frame, mini)
    data = report.to_dict()
    assert data["ok"] is False
    assert data["n_rows"] == 4
    assert {i["severity"] for i in data["issues"]} == {"error", "warning"}
    assert "1 error(s), 1 warning(s)" in report.summary()


def test_large_frame_with_one_bad_row_reports_exactly_that_row(exam: DatasetSpec) -> None:
    base = synthesize(exam, 1_000, seed=2)
    frame = pd.concat([base] * 200, ignore_index=True)
    assert len(frame) == 200_000
    frame.loc[154_320, "reading_score"] = 101
    frame.loc[154_320 + 7, "lunch"] = "caviar"
    _, report = validate_frame(frame, exam)
    assert sorted(i.problem for i in report.errors) == ["out of range", "unknown code"]
    assert _issue(report, "reading_score", "out of range").rows == (154_321,)
    assert _issue(report, "lunch", "unknown code").rows == (154_328,)
    assert report.bad_rows() == {154_321, 154_328}
