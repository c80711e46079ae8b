"""API tests with the test client: predict, explain, what-if, roles, bad input, models, health."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.serving.app import create_app
from retain.serving.security import Principal, StaticKeys
from retain.settings import get_settings

ADVISOR = {"X-API-Key": "advisor-secret"}
ADMIN = {"X-API-Key": "admin-secret"}
KEYS = StaticKeys(
    {
        "advisor-secret": Principal("k1", "advisor", programmes=("9254",)),
        "admin-secret": Principal("k2", "admin"),
    }
)


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """semester_1 then enrolment trained on 800 synthetic rows (seed 31): this module's copy."""
    home = tmp_path_factory.mktemp("api-home")
    return copy_trained_home(
        home,
        ("dropout", "dropout", "semester_1", 800),
        ("dropout", "dropout", "enrolment", 800),
        data_dir=True,
    )


@pytest.fixture
def client(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    monkeypatch.setenv("RETAIN_API_MAX_BATCH", "50")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), auth=KEYS)) as test_client:
        yield test_client


def _students(n: int, seed: int = 5, drop_semester_2: bool = True) -> list[dict[str, object]]:
    spec = load_spec("dropout")
    frame = synthesize(spec, n, seed=seed).drop(columns=["target"])
    if drop_semester_2:
        frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    records = frame.to_dict(orient="records")
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in records]


def test_predict_infers_the_stage_and_returns_the_documented_fields(client: TestClient) -> None:
    response = client.post(
        "/v1/dropout/predict", json={"students": _students(3), "task": "dropout"}, headers=ADVISOR
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    first = predictions[0]
    assert first["stage"] == "semester_1"
    assert first["model_name"] == "dropout.dropout.semester_1"
    assert 0 <= first["risk_score"] <= 1
    assert first["risk_band"] in {"low", "medium", "high"}
    assert set(first["probabilities"]) == {"Not dropout", "Dropout"}
    assert abs(first["probabilities"]["Dropout"] - first["risk_score"]) < 1e-9


def test_explanations_are_plain_words(client: TestClient) -> None:
    body = {"students": _students(2), "task": "dropout", "explain": True, "top_k": 3}
    response = client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert response.status_code == 200, response.text
    reasons = response.json()["predictions"][0]["reasons"]
    assert 1 <= len(reasons) <= 3
    for reason in reasons:
        assert reason["direction"] in {"raises risk", "lowers risk"}
        assert reason["direction"] in reason["text"]
        assert reason["label"] in reason["text"]


def test_stage_can_be_forced_and_missing_features_are_named(client: TestClient) -> None:
    students = _students(1)
    ok = client.post(
        "/v1/dropout/predict",
        json={"students": students, "task": "dropout", "stage": "enrolment"},
        headers=ADVISOR,
    )
    assert ok.status_code == 200 and ok.json()["predictions"][0]["stage"] == "enrolment"
    del students[0]["admission_grade"]
    bad = client.post(
        "/v1/dropout/predict",
        json={"students": students, "task": "dropout", "stage": "enrolment"},
        headers=ADVISOR,
    )
    assert bad.status_code == 422
    assert "admission_grade" in bad.text


def test_bad_input_gets_4xx_naming_the_field(client: TestClient) -> None:
    students = _students(2)
    students[1]["course"] = 123456
    response = client.post(
        "/v1/dropout/predict", json={"students": students, "task": "dropout"}, headers=ADVISOR
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["field"] == "course" and detail[0]["students"] == [2]

    students = _students(1)
    students[0]["admission_grade"] = "high"
    response = client.post("/v1/dropout/predict", json={"students": students}, headers=ADVISOR)
    assert response.status_code == 422 and "admission_grade" in response.text

    for infinite in ("inf", "-Infinity"):  # pydantic reads these as floats; no range bounds gdp
        students = _students(1)
        students[0]["gdp"] = infinite
        body = {"students": students, "task": "dropout"}
        response = client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
        assert response.status_code == 422
        assert response.json()["detail"][0] == {
            "field": "gdp",
            "problem": "not a finite number",
            "expected": "a finite float",
            "students": [1],
            "found": [str(float(infinite))],  # as read: "inf", "-inf"
        }

    students = _students(1)
    students[0]["shoe_size"] = 42
    response = client.post("/v1/dropout/predict", json={"students": students}, headers=ADVISOR)
    assert response.status_code == 422 and "shoe_size" in response.text

    response = client.post(
        "/v1/dropout/predict", content=b"{not json", headers={**ADVISOR, "content-type": "application/json"}
    )
    assert response.status_code == 422

    response = client.post("/v1/dropout/predict", json={"students": _students(51)}, headers=ADVISOR)
    assert response.status_code == 422 and "students" in response.text

    response = client.post("/v1/nope/predict", json={"students": []}, headers=ADVISOR)
    assert response.status_code == 404 and "unknown dataset" in response.text

    response = client.post(
        "/v1/dropout/predict", json={"students": _students(1), "task": "nope"}, headers=ADVISOR
    )
    assert response.status_code == 422 and "nope" in response.text

    response = client.post(
        "/v1/dropout/predict",
        json={"students": _students(1, drop_semester_2=False), "task": "outcome"},
        headers=ADVISOR,
    )
    assert response.status_code == 404 and "no champion" in response.text

    huge = b"x" * (get_settings().api_max_body_bytes + 1)
    response = client.post(
        "/v1/dropout/predict", content=huge, headers={**ADVISOR, "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_what_if_and_counterfactuals_use_actionable_features_only(client: TestClient) -> None:
    spec = load_spec("dropout")
    student = _students(1, seed=9)[0]
    student.update({"tuition_fees_up_to_date": 0, "units_1st_sem_approved": 0, "units_1st_sem_enrolled": 6})
    body = {"student": student, "task": "dropout", "changes": {"tuition_fees_up_to_date": 1}}
    response = client.post("/v1/dropout/what-if", json=body, headers=ADVISOR)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["after"]["risk_score"] <= result["before"]["risk_score"] + 1e-12
    for suggestion in result["counterfactuals"]:
        for change in suggestion["changes"]:
            assert change["feature"] in spec.actionable
    refused = client.post(
        "/v1/dropout/what-if",
        json={"student": student, "task": "dropout", "changes": {"gender": 0}},
        headers=ADVISOR,
    )
    assert refused.status_code == 422 and "not an actionable feature" in refused.text


def test_roles_and_keys(client: TestClient) -> None:
    assert client.post("/v1/dropout/predict", json={"students": _students(1)}).status_code == 401
    assert (
        client.post(
            "/v1/dropout/predict", json={"students": _students(1)}, headers={"X-API-Key": "wrong"}
        ).status_code
        == 401
    )
    assert client.get("/v1/models", headers=ADVISOR).status_code == 200
    assert client.post("/v1/models/dropout.dropout.semester_1/rollback", headers=ADVISOR).status_code == 403
    response = client.post("/v1/models/dropout.dropout.semester_1/rollback", headers=ADMIN)
    assert response.status_code == 422 and "no previous champion" in response.text


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["champions"]["dropout.dropout.semester_1"] == 1
    client.post("/v1/dropout/predict", json={"students": _students(4), "task": "dropout"}, headers=ADVISOR)
    text = client.get("/metrics").text
    assert 'retain_http_requests_total{method="POST",route="/v1/dropout/predict",status="200"}' in text
    assert "retain_predictions_total" in text and "retain_http_request_duration_seconds_bucket" in text


def test_openapi_documents_fields_with_codes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    student = schema["components"]["schemas"]["DropoutStudent"]["properties"]
    assert "Codes: 1 = single" in student["marital_status"]["description"]
    assert "units_2nd_sem_approved" in student
    assert student["marital_status"]["x-codes"]["1"] == "single"  # machine-readable codes and labels
    assert (student["admission_grade"]["minimum"], student["admission_grade"]["maximum"]) == (0, 200)
    assert student["units_2nd_sem_approved"]["x-stage"] == "semester_2"


def test_api_results_equal_the_batch_predictor(client: TestClient, trained_home: Path) -> None:
    from retain.predictor import Predictor

    students = _students(20, seed=17)
    response = client.post(
        "/v1/dropout/predict", json={"students": students, "task": "dropout"}, headers=ADVISOR
    )
    assert response.status_code == 200, response.text
    api = response.json()["predictions"]
    predictor = Predictor.from_registry("dropout", "dropout", "semester_1")
    batch = predictor.predict(students)
    assert [p["student_id"] for p in api] == batch["student_id"].tolist()
    assert [p["risk_score"] for p in api] == pytest.approx(batch["risk_score"].tolist(), abs=1e-12)
    assert [p["risk_band"] for p in api] == batch["risk_band"].tolist()


def test_repeated_event_id_is_not_stored_twice(client: TestClient) -> None:
    body = {"students": _students(1, seed=23), "task": "dropout", "event_id": "evt-42"}
    first = client.post("/v1/dropout/predict", json=body, headers=ADVISOR).json()["predictions"][0]
    second = client.post("/v1/dropout/predict", json=body, headers=ADVISOR).json()["predictions"][0]
    assert first["prediction_id"] == second["prediction_id"]
    assert second.get("duplicate") is True and not first.get("duplicate")


def test_monitoring_endpoints(client: TestClient) -> None:
    client.post(
        "/v1/dropout/predict", json={"students": _students(5, seed=8), "task": "dropout"}, headers=ADVISOR
    )
    drift = client.get(
        "/v1/dropout/monitoring/drift", params={"task": "dropout", "stage": "semester_1"}, headers=ADVISOR
    )
    assert drift.status_code == 200, drift.text
    body = drift.json()
    assert body["model_name"] == "dropout.dropout.semester_1" and body["n_current"] >= 5
    assert body["enough_data"] is False and body["dataset_drift"] is False  # a few records never decide
    assert "student_id" not in drift.text
    missing = client.get(
        "/v1/dropout/monitoring/drift", params={"task": "dropout", "stage": "semester_2"}, headers=ADVISOR
    )
    assert missing.status_code == 404 and "no champion" in missing.json()["detail"]
    assert (
        client.get("/v1/dropout/monitoring/drift", params={"window": "soon"}, headers=ADVISOR).status_code
        == 422
    )
    assert client.get("/v1/dropout/monitoring/drift").status_code == 401

    performance = client.get(
        "/v1/dropout/monitoring/performance", params={"task": "dropout"}, headers=ADVISOR
    )
    assert performance.status_code == 200 and performance.json()["primary_metric"] == "roc_auc"
    bad = client.get("/v1/dropout/monitoring/performance", params={"period": "day"}, headers=ADVISOR)
    assert bad.status_code == 422 and "period" in bad.text
    assert client.get("/v1/nowhere/monitoring/performance", headers=ADVISOR).status_code == 404
    exported = client.get("/metrics").text
    assert 'retain_drift_share{model="dropout.dropout.semester_1"} NaN' in exported
    assert 'retain_monitoring_alerts{dataset="dropout",task="dropout"} 0.0' in exported


def test_native_trees_take_over_without_changing_an_answer(client: TestClient) -> None:
    """The first request loads the model and LightGBM answers while its trees compile behind;
    readiness then says the native code runs, and the same students get the same scores."""
    body = {"students": _students(40, seed=17), "task": "dropout"}
    first = client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert first.status_code == 200, first.text
    deadline = time.monotonic() + 120
    while not client.get("/readyz").json()["native"].get("dropout.dropout.semester_1"):
        assert time.monotonic() < deadline, "native trees never took over"
        time.sleep(0.2)
    second = client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert second.status_code == 200, second.text
    before = [(p["risk_score"], p["probabilities"], p["risk_band"]) for p in first.json()["predictions"]]
    after = [(p["risk_score"], p["probabilities"], p["risk_band"]) for p in second.json()["predictions"]]
    assert after == before  # bit for bit: the JSON floats are the same


def test_the_predict_shortcut_answers_as_the_route_does(client: TestClient, trained_home: Path) -> None:
    # the same requests through the shortcut (``PredictShortcut``) and through FastAPI's route
    with TestClient(create_app(get_settings(), auth=KEYS)) as plain:
        plain.app.state.retain.shortcuts.clear()  # type: ignore[attr-defined]
        bodies = [
            {"students": _students(4, seed=8), "task": "dropout", "explain": True, "top_k": 2},
            {"students": _students(1, seed=9), "task": "dropout", "event_id": "same-event"},
            {"students": _students(1, seed=9), "task": "dropout", "event_id": "same-event"},
        ]
        for body in bodies:  # one store: each app its own event ids
            fast = client.post("/v1/dropout/predict", json=_event(body, "fast"), headers=ADVISOR)
            routed = plain.post("/v1/dropout/predict", json=_event(body, "routed"), headers=ADVISOR)
            assert fast.status_code == routed.status_code == 200
            assert fast.headers["content-type"] == routed.headers["content-type"]
            answers = fast.json(), routed.json()
            for answer in answers:
                for prediction in answer["predictions"]:
                    assert prediction.pop("prediction_id")
            assert answers[0] == answers[1]
        assert answers[0]["predictions"][0]["duplicate"] is True
        bad = [
            ({"students": [{"gender": "x"}]}, ADVISOR),
            ({"students": _students(1)}, {"X-API-Key": "unknown"}),
            ({"students": _students(1)}, {}),
            ({"students": _students(1), "task": "nope"}, ADVISOR),
        ]
        for body, headers in bad:
            fast = client.post("/v1/dropout/predict", json=body, headers=headers)
            routed = plain.post("/v1/dropout/predict", json=body, headers=headers)
            assert fast.status_code == routed.status_code and fast.status_code in (401, 404, 422)
            assert fast.json() == routed.json()
    metrics = client.get("/metrics").text
    assert 'route="/v1/dropout/predict",status="200"' in metrics


def _event(body: dict[str, object], prefix: str) -> dict[str, object]:
    return {**body, "event_id": f"{prefix}-{body['event_id']}"} if "event_id" in body else body
