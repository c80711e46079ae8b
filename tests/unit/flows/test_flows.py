"""The Prefect flows run for real (Prefect's temporary local server) and only call the library."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from retain.data.spec import load_spec
from retain.settings import get_settings
from retain.simulation import intake
from retain.store.models import Prediction
from retain.store.repository import Scope, Store
from retain.training import registry

SPEC = load_spec("dropout")
TASK = SPEC.task("dropout")
NAME = "dropout.dropout.enrolment"


@pytest.fixture(scope="module")
def flow_home(
    copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A trained champion, and Prefect's state in a folder of its own for the module."""
    home = tmp_path_factory.mktemp("flows-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    mp.setenv("PREFECT_HOME", str(home / "prefect"))
    get_settings.cache_clear()
    from retain.flows import configure_prefect

    configure_prefect()
    copy_trained_home(home, ("dropout", "dropout", "enrolment", 1200), seed=3)
    yield home
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture
def home(flow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RETAIN_HOME", str(flow_home))
    get_settings.cache_clear()
    registry.configure()
    return flow_home


def test_prefect_settings_live_under_retain_home(home: Path) -> None:
    assert os.environ["PREFECT_HOME"] == str(home / "prefect")
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_the_loop_through_the_flows_batch_score_monitor_retrain(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_bootstrap: None
) -> None:
    # 50, the fewest paired-bootstrap rounds the setting allows: this test checks that the retrain
    # gate ran a paired test and decided, not which way (test_retrain.py checks the verdicts).
    monkeypatch.setenv("RETAIN_RETRAIN_BOOTSTRAP_ROUNDS", "50")
    get_settings.cache_clear()
    from retain.flows.monitor import monitor_flow
    from retain.flows.retrain import retrain_flow
    from retain.flows.score import batch_score_flow

    new = intake(SPEC, TASK, "drift", 700, seed=4, reference_seed=3, reference_rows=1200)
    students = tmp_path / "intake.csv"
    new.students.to_csv(students, index=False)
    scored = batch_score_flow("dropout", "dropout", "enrolment", str(students), str(tmp_path / "risk.csv"))
    assert scored["scored"] == 700 and scored["model_name"] == NAME and sum(scored["bands"].values()) == 700
    out = pd.read_csv(tmp_path / "risk.csv")
    assert len(out) == 700 and set(out["risk_band"]) <= {"low", "medium", "high"}
    batch_score_flow("dropout", "dropout", "enrolment", str(students), str(tmp_path / "again.csv"))
    store = Store.from_settings()
    with store.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Prediction)) == 700  # the same file twice

    checked = monitor_flow("dropout", "dropout", "enrolment", window="1d", retrain_on_alert=True)
    drift = checked["drift"][0]
    assert drift["n_current"] == 700 and "admission_grade" in drift["drifted"]
    assert store.drift_results("dropout", model_name=NAME)[0].drifted == drift["drifted"]
    assert Path(checked["reports"][0]).exists()
    assert checked["retrains"] == {} or "skipped" in next(
        iter(checked["retrains"].values())
    )  # no outcomes yet

    later = datetime.now(UTC) + timedelta(seconds=1)
    for sid, outcome in zip(new.outcomes["student_id"], new.outcomes["outcome"], strict=True):
        store.record_outcome(
            "dropout", sid, outcome, task="dropout", recorded_at=later, scope=Scope.admin("t")
        )
    result = retrain_flow(NAME, trigger="test", data=str(home / "train.csv"))
    assert result["rows"]["fresh"] == 700 and result["trigger"] == "test"
    assert result["paired_test"]["rounds"] > 0 and isinstance(result["promoted"], bool)
    decision = store.decisions("dropout")[0]
    assert decision.kind == "retrain" and decision.challenger_version == result["challenger_version"]
    assert decision.reason == result["reason"]
    store.close()


def test_serve_registers_a_monitor_per_dataset_and_a_retrain_per_champion(home: Path) -> None:
    from retain.flows.schedules import deployments

    planned = {d.name: d for d in deployments(["dropout", "exam_scores"])}
    assert set(planned) == {"monitor-dropout", "monitor-exam_scores", f"retrain-{NAME}"}
    assert planned["monitor-dropout"].parameters == {"dataset": "dropout", "retrain_on_alert": True}
    assert planned[f"retrain-{NAME}"].parameters == {"model": NAME, "trigger": "schedule"}
    crons = {str(s.schedule.cron) for s in planned["monitor-dropout"].schedules}
    assert crons == {get_settings().flow_schedules["monitor"]}
