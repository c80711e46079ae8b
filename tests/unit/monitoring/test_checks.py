"""Drift of stored traffic against the reference kept with the champion, through the CLI too."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.data.spec import load_spec
from retain.data.synth import synthesize, synthesize_to_file
from retain.monitoring.checks import check_drift, parse_window, write_report
from retain.predictor import Predictor
from retain.scoring import score_records
from retain.settings import get_settings
from retain.store.repository import Store
from retain.training.train import TrainOptions, train

SPEC = load_spec("dropout")


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("drift-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    get_settings.cache_clear()
    synthesize_to_file(SPEC, 800, home / "train.csv", seed=31)
    train(
        "dropout",
        "dropout",
        "semester_1",
        TrainOptions(data_path=home / "train.csv", baselines=(), importance=False),
    )
    mp.undo()
    return home


@pytest.fixture
def home(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    get_settings.cache_clear()
    return trained_home


def _record(students: pd.DataFrame, store: Store) -> None:
    predictor = Predictor.from_registry("dropout", "dropout", "semester_1")
    frame = students[[c for c in students.columns if c in predictor.features or c == "student_id"]]
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict(orient="records")
    ]
    scored = score_records(predictor, records)
    store.record_predictions(scored.store_records([None] * len(records)))


def test_the_model_keeps_a_reference_without_identifiers(home: Path) -> None:
    model = Predictor.from_registry("dropout", "dropout", "semester_1").model
    assert model.reference is not None and model.reference_scores is not None
    assert "student_id" not in model.reference.columns
    assert set(model.reference.columns) <= set(model.features)
    assert list(model.reference_scores.columns) == ["risk_score", "risk_band"]


def test_stable_then_shifted_traffic(home: Path) -> None:
    store = Store.from_settings()
    few = check_drift("dropout", "dropout", "semester_1", store=store)
    assert not few.report.enough_data and not few.report.dataset_drift  # nothing stored yet

    _record(synthesize(SPEC, 400, seed=31).drop(columns=["target"]), store)  # the training population
    stable = check_drift("dropout", "dropout", "semester_1", store=store, last=400)
    assert stable.report.enough_data and not stable.report.dataset_drift
    assert "admission_grade" not in stable.report.drifted
    assert stable.report.share_drifted < 0.2, stable.report.drifted  # codes compare as codes

    shifted = synthesize(SPEC, 400, seed=31).drop(columns=["target"])
    shifted["admission_grade"] = (shifted["admission_grade"] + 40).clip(upper=200)
    shifted["units_1st_sem_approved"] = 0
    _record(shifted, store)
    moved = check_drift("dropout", "dropout", "semester_1", store=store, last=400)
    assert {"admission_grade", "units_1st_sem_approved"} <= set(moved.report.drifted)
    assert moved.report.prediction_drift  # nobody passing a unit: risk goes up
    page = write_report(moved, home / "reports").read_text()
    assert "admission_grade" in page and "drifted" in page
    store.close()


def test_cli_prints_json_and_writes_html(home: Path) -> None:
    result = CliRunner().invoke(app, ["monitor", "drift", "--dataset", "dropout", "--task", "dropout",
                                      "--stage", "semester_1", "--window", "1d", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["model_name"] == "dropout.dropout.semester_1" and Path(payload["html"]).exists()
    bad = CliRunner().invoke(app, ["monitor", "drift", "--dataset", "dropout", "--window", "soon"])
    assert bad.exit_code == 2 and "window" in bad.output


def test_parse_window() -> None:
    assert parse_window("7d").days == 7 and parse_window("12h").seconds == 12 * 3600
    with pytest.raises(ValueError):
        parse_window("7 days")
