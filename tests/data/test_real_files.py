"""The bundled example data (../shared/data): every file loads and validates against its spec."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.data.load import load_raw
from retain.data.spec import load_spec
from retain.data.validate import ValidationReport, validate_frame

EXPECTED_ROWS = {"dropout": 3539, "exam_scores": 800, "secondary_math": 316, "secondary_portuguese": 519}


def _load(name: str) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    spec = load_spec(name)
    raw = load_raw(spec)
    typed, report = validate_frame(raw, spec, required=[c.name for c in spec.columns])
    return raw, typed, report


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_file_loads_and_validates(shared_data: Path, name: str) -> None:
    raw, typed, report = _load(name)
    assert report.ok, report.summary()
    assert report.issues == [], report.summary()
    assert len(raw) == EXPECTED_ROWS[name]
    spec = load_spec(name)
    assert list(typed.columns) == [spec.id.column, *(c.name for c in spec.columns)]
    assert typed[spec.id.column].is_unique
    assert typed[spec.id.column].str.startswith(spec.id.prefix).all()
    for task in spec.tasks:
        assert typed[task.target].notna().all()


def test_dropout_class_balance(shared_data: Path) -> None:
    _, typed, _ = _load("dropout")
    share = typed["target"].value_counts(normalize=True)
    assert share["Dropout"] == pytest.approx(0.32, abs=0.02)
    assert share["Enrolled"] == pytest.approx(0.18, abs=0.02)
    assert share["Graduate"] == pytest.approx(0.50, abs=0.02)


def test_dropout_quirky_header_is_canonicalised(shared_data: Path) -> None:
    raw, typed, _ = _load("dropout")
    assert "daytime_attendance" in raw.columns
    assert set(typed["daytime_attendance"].unique()) == {0.0, 1.0}


def test_exam_none_preparation_is_kept(shared_data: Path) -> None:
    _, typed, _ = _load("exam_scores")
    assert set(typed["test_preparation"]) == {"none", "completed"}
