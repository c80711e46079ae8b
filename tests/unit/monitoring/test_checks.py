"""Drift of stored traffic against the reference kept with the champion, through the CLI too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from retain.cli import app
from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.monitoring.checks import check_drift, check_performance, parse_window, write_report
from retain.monitoring.performance import truth
from retain.predictor import Predictor
from retain.scoring import score_records
from retain.settings import get_settings
from retain.store.models import Outcome
from retain.store.repository import Store

SPEC = load_spec("dropout")


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dropout.dropout.semester_1`` trained on 800 synthetic rows (seed 31): this module's copy."""
    return copy_trained_home(
        tmp_path_factory.mktemp("drift-home"), ("dropout", "dropout", "semester_1", 800), data_dir=True
    )


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


def test_live_performance_from_recorded_outcomes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.from_settings()
    students = synthesize(SPEC, 600, seed=77)
    students["student_id"] = [f"live-{i}" for i in range(len(students))]
    _record(students.drop(columns=["target"]), store)
    for sid, outcome in zip(students["student_id"], students["target"], strict=True):
        store.record_outcome("dropout", sid, str(outcome))
    store.record_outcome("dropout", "never-predicted", "Dropout")  # no prediction before it: unpaired

    report = check_performance("dropout", "dropout", store=store)
    judged = [p for p in report.periods if p.judged]
    assert len(judged) == 1 and judged[0].n == 600 and judged[0].model_version == 1
    assert judged[0].n_adverse == int((students["target"] == "Dropout").sum())
    assert judged[0].metrics["roc_auc"] > 0.6  # the model learnt something real about these students
    assert "recall_adverse" in judged[0].metrics
    assert not any("floor" in a for a in report.alerts)  # no floor configured
    assert {g.feature for g in report.groups} & set(SPEC.protected)  # protected model inputs get rates
    payload = report.to_dict()
    assert payload["periods"][0]["metrics"]["roc_auc"] == judged[0].metrics["roc_auc"]

    monkeypatch.setenv("RETAIN_PERFORMANCE_FLOORS", '{"dropout.dropout": 0.999}')
    get_settings.cache_clear()
    strict = check_performance("dropout", "dropout", store=store)
    assert any("worse than the floor" in a for a in strict.alerts)
    store.close()


def test_outcome_truth_by_task_kind() -> None:
    binary, multiclass = SPEC.task("dropout"), SPEC.task("outcome")
    assert truth(binary, "Dropout", float("nan")) == 1.0
    assert truth(binary, "Graduate", float("nan")) == 0.0  # any other outcome: not the adverse one
    assert truth(multiclass, "Enrolled", float("nan")) == 1.0
    assert truth(multiclass, "Transferred", float("nan")) is None  # not a class of this task
    grades = load_spec("secondary_math").tasks[0]
    assert truth(grades, "14", 14.0) == (14.0 if not grades.is_classification else truth(grades, "14", 14.0))


def test_outcomes_import_and_performance_cli(home: Path, tmp_path: Path) -> None:
    store = Store.from_settings()
    students = synthesize(SPEC, 120, seed=5)
    students["student_id"] = [f"cli-{i}" for i in range(len(students))]
    _record(students.drop(columns=["target"]), store)
    store.close()
    file = tmp_path / "outcomes.csv"
    pd.DataFrame({"student_id": students["student_id"], "outcome": students["target"]}).to_csv(
        file, index=False
    )
    runner = CliRunner()
    for _ in range(2):  # importing the same file twice records each outcome once
        done = runner.invoke(app, ["outcomes", "import", str(file), "--dataset", "dropout"])
        assert done.exit_code == 0, done.output
    reader = Store.from_settings()
    with reader.engine.connect() as connection:
        imported = connection.scalar(
            select(func.count()).select_from(Outcome).where(Outcome.event_id.like("file-%"))
        )
    reader.close()
    assert imported == 120
    shown = runner.invoke(
        app, ["monitor", "performance", "--dataset", "dropout", "--task", "dropout", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["periods"][0]["n"] >= 120

    bad = tmp_path / "bad.csv"
    bad.write_text("student,result\ns1,Dropout\n")
    refused = runner.invoke(app, ["outcomes", "import", str(bad), "--dataset", "dropout"])
    assert refused.exit_code == 2 and "student_id" in refused.output
