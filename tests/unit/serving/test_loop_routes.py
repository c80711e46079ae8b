"""Feedback-loop endpoints: drift history, fairness, decisions, retrain jobs (test client)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from retain.data.spec import load_spec
from retain.serving.app import create_app
from retain.serving.security import Principal, StaticKeys
from retain.settings import get_settings
from retain.simulation import intake
from retain.store.repository import Scope

ADVISOR = {"X-API-Key": "advisor-secret"}
ADMIN = {"X-API-Key": "admin-secret"}
KEYS = StaticKeys({"advisor-secret": Principal("k1", "advisor"), "admin-secret": Principal("k2", "admin")})
SPEC = load_spec("dropout")
TASK = SPEC.task("dropout")
NAME = "dropout.dropout.enrolment"


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dropout.dropout.enrolment`` trained on 1200 synthetic rows (seed 5) in ``data/``."""
    home = tmp_path_factory.mktemp("loop-api-home")
    return copy_trained_home(home, ("dropout", "dropout", "enrolment", 1200), seed=5, data_dir=True)


@pytest.fixture
def client(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_bootstrap: None
) -> Iterator[TestClient]:
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    monkeypatch.setenv("RETAIN_HOME", str(home))
    monkeypatch.setenv("RETAIN_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("RETAIN_RETRAIN_BOOTSTRAP_ROUNDS", "100")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), auth=KEYS)) as test_client:
        yield test_client
    get_settings.cache_clear()


def _predict_and_label(client: TestClient, rows: int) -> None:
    new = intake(SPEC, TASK, "drift", rows, seed=6, reference_seed=5, reference_rows=1200)
    students = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in new.students.to_dict(orient="records")
    ]
    for start in range(0, rows, 50):
        body = {"students": students[start : start + 50], "task": "dropout", "stage": "enrolment"}
        assert client.post("/v1/dropout/predict", json=body, headers=ADVISOR).status_code == 200
    store = client.app.state.retain.store  # type: ignore[attr-defined]
    later = datetime.now(UTC) + timedelta(seconds=1)
    for sid, outcome in zip(new.outcomes["student_id"], new.outcomes["outcome"], strict=True):
        store.record_outcome(
            "dropout", sid, outcome, task="dropout", recorded_at=later, scope=Scope.admin("t")
        )


def test_drift_checks_are_stored_and_listed(client: TestClient) -> None:
    _predict_and_label(client, 300)
    checked = client.get(
        "/v1/dropout/monitoring/drift?task=dropout&stage=enrolment&window=1d", headers=ADVISOR
    )
    assert checked.status_code == 200, checked.text
    history = client.get("/v1/dropout/monitoring/drift/history", headers=ADVISOR).json()
    assert isinstance(history, list), history
    assert len(history) == 1 and history[0]["id"] == checked.json()["id"]
    assert history[0]["model_name"] == NAME and history[0]["n_current"] == 300
    assert history[0]["drifted"] == checked.json()["drifted"] and "report" not in history[0]
    assert client.get("/v1/nope/monitoring/drift/history", headers=ADVISOR).status_code == 404


def test_fairness_reports_group_rates_and_gaps_without_students(client: TestClient) -> None:
    _predict_and_label(client, 300)
    body = client.get("/v1/dropout/monitoring/fairness?task=dropout&period=Y", headers=ADVISOR).json()
    assert body["task"] == "dropout" and body["max_gap"] == get_settings().fairness_max_gap
    assert {g["feature"] for g in body["groups"]} <= set(SPEC.protected)
    assert body["groups"] and body["gaps"]
    gap = body["gaps"][0]
    assert 0 <= gap.get("flagged_rate_gap", 0) <= 1 and isinstance(gap["over_limit"], bool)
    assert all(0 <= g["mean_risk"] <= 1 for g in body["groups"])  # calibration per group
    assert any("calibration_gap" in g for g in body["gaps"])
    assert "student" not in str(body).lower().replace("students", "")
    bad = client.get("/v1/dropout/monitoring/fairness?period=X", headers=ADVISOR)
    assert bad.status_code == 422


def test_retrain_is_an_admin_job_whose_decision_is_listed(client: TestClient) -> None:
    _predict_and_label(client, 400)
    assert client.post(f"/v1/models/{NAME}/retrain", headers=ADVISOR).status_code == 403
    assert client.post("/v1/models/dropout.dropout.nope/retrain", headers=ADMIN).status_code == 404
    assert client.post("/v1/models/dropout.dropout.semester_2/retrain", headers=ADMIN).status_code == 404
    started = client.post(f"/v1/models/{NAME}/retrain", headers=ADMIN)
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]["id"]
    assert started.headers["location"] == f"/v1/jobs/{job_id}"
    again = client.post(f"/v1/models/{NAME}/retrain", headers=ADMIN)
    assert again.status_code in (202, 409)  # 409 while the first is queued or running
    client.app.state.retain.jobs.wait(job_id, timeout=300)  # type: ignore[attr-defined]
    if again.status_code == 202:
        client.app.state.retain.jobs.wait(again.json()["job"]["id"], timeout=300)  # type: ignore[attr-defined]
    job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"]["fresh"] == 400 and job["result"]["model_name"] == NAME
    decisions = client.get("/v1/dropout/monitoring/decisions", headers=ADVISOR).json()
    assert decisions[-1]["kind"] == "retrain" and decisions[-1]["reason"] == job["result"]["reason"]
    assert decisions[-1]["challenger_version"] == job["result"]["challenger_version"]
    assert client.get("/v1/jobs/missing", headers=ADMIN).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=ADVISOR).status_code == 403


def test_a_retrain_without_outcomes_fails_as_a_job_not_as_the_service(client: TestClient) -> None:
    started = client.post(f"/v1/models/{NAME}/retrain", headers=ADMIN)
    job_id = started.json()["job"]["id"]
    client.app.state.retain.jobs.wait(job_id, timeout=120)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
    assert job["status"] == "failed" and "at least" in job["error"]
    assert client.get("/healthz").status_code == 200


def test_promotions_through_the_api_are_decisions_too(client: TestClient) -> None:
    response = client.post(f"/v1/models/{NAME}/promote?version=1", headers=ADMIN)
    assert response.status_code == 200
    decision = client.get(f"/v1/dropout/monitoring/decisions?model={NAME}", headers=ADVISOR).json()[0]
    assert decision["kind"] == "promote" and not decision["promoted"]  # version 1 is already champion


def test_a_students_explanation_has_reasons_readable_inputs_and_suggestions(client: TestClient) -> None:
    new = intake(SPEC, TASK, "drift", 5, seed=9, reference_seed=5, reference_rows=1200)
    student = {k: (None if pd.isna(v) else v) for k, v in new.students.iloc[0].to_dict().items()}
    body = {"students": [student], "task": "dropout", "stage": "enrolment"}
    predicted = client.post("/v1/dropout/predict", json=body, headers=ADVISOR).json()["predictions"][0]
    sid = str(student["student_id"])
    store = client.app.state.retain.store  # type: ignore[attr-defined]
    before = len(store.audit_entries(action="student.read"))
    hidden = client.get(f"/v1/dropout/students/{sid}/explanation", headers=ADVISOR)
    assert hidden.status_code == 404  # this advisor's scope holds no programme: not their student
    response = client.get(f"/v1/dropout/students/{sid}/explanation?top_k=4", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prediction"]["id"] == predicted["prediction_id"] and body["stage"] == "enrolment"
    assert body["current"]["risk_score"] == pytest.approx(predicted["risk_score"])  # same champion
    assert 1 <= len(body["reasons"]) <= 4 and all(r["text"] for r in body["reasons"])
    by_name = {f["name"]: f for f in body["features"]}
    course = by_name["course"]
    assert course["readable"] == SPEC.column("course").codes[str(course["value"])]  # labels, not codes
    assert by_name["tuition_fees_up_to_date"]["actionable"] and not course["actionable"]
    catalogue = set(get_settings().intervention_types)
    assert all(s["type"] in catalogue and s["reasons"] for s in body["suggestions"])
    assert len(store.audit_entries(action="student.read")) == before + 1  # the read is audited
    assert store.audit_entries(action="student.read.denied")  # and so is the refusal
    with store.engine.connect() as connection:
        from sqlalchemy import func, select

        from retain.store.models import Prediction

        assert connection.scalar(select(func.count()).select_from(Prediction)) == 1  # no new prediction
    assert client.get("/v1/dropout/students/nobody/explanation", headers=ADMIN).status_code == 404


def test_intervention_impact_comes_from_outcomes_and_interventions(client: TestClient) -> None:
    _predict_and_label(client, 300)
    body = client.get("/v1/dropout/monitoring/interventions?task=dropout", headers=ADVISOR).json()
    assert body["task"] == "dropout" and body["n_helped"] == 0 and body["difference"] is None
    assert body["n_flagged"] > 0 and "not given interventions at random" in body["caution"]
    assert client.get("/v1/dropout/monitoring/interventions?task=nope", headers=ADVISOR).status_code == 422


def test_retrain_jobs_and_decisions_are_counted_on_metrics(client: TestClient) -> None:
    started = client.post(f"/v1/models/{NAME}/retrain", headers=ADMIN)
    client.app.state.retain.jobs.wait(started.json()["job"]["id"], timeout=120)  # type: ignore[attr-defined]
    client.post(f"/v1/models/{NAME}/promote?version=1", headers=ADMIN)
    text = client.get("/metrics").text
    assert 'retain_jobs_total{kind="retrain",status="failed"} 1.0' in text  # no outcomes yet
    assert (
        'retain_gate_decisions_total{kind="promote",model="dropout.dropout.enrolment",promoted="false"} 1.0'
        in text
    )
