"""The API while the database is down: predictions get a clear 503 and acknowledge nothing, a
retry with the same event id after the database comes back stores exactly one prediction, and
readiness reports the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.serving.app import create_app
from retain.serving.security import Principal, StaticKeys
from retain.settings import get_settings
from retain.store.repository import PredictionWriter, Scope, Store

ADVISOR = {"X-API-Key": "advisor-secret"}
KEYS = StaticKeys({"advisor-secret": Principal("k1", "advisor", programmes=("9254",))})
DOWN_MESSAGE = "the database is unavailable"


def _database_down(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("stmt", {}, Exception("database is down"))


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``dropout.dropout.enrolment`` champion (the shared home the API tests use): this module's copy."""
    home = tmp_path_factory.mktemp("db-down-home")
    return copy_trained_home(
        home,
        ("dropout", "dropout", "semester_1", 800),
        ("dropout", "dropout", "enrolment", 800),
        data_dir=True,
    )


@dataclass
class Service:
    client: TestClient
    store: Store


@contextmanager
def _service(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: Any
) -> Iterator[Service]:
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    monkeypatch.setenv("RETAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")  # a fresh store
    get_settings.cache_clear()
    settings = get_settings()
    store = Store.from_settings(settings)
    with TestClient(create_app(settings, auth=auth, store=store)) as client:
        yield Service(client, store)
    store.close()


@pytest.fixture
def service(trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    with _service(trained_home, tmp_path, monkeypatch, KEYS) as running:
        yield running


def _body(n: int, event_id: str, seed: int = 3) -> dict[str, Any]:
    frame = synthesize(load_spec("dropout"), n, seed=seed).drop(columns=["target"])
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
    return {"students": records, "task": "dropout", "stage": "enrolment", "event_id": event_id}


def _stored(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, id FROM predictions ORDER BY event_id")).all()
    return [(r[0], r[1]) for r in rows]


def _assert_refused(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert DOWN_MESSAGE in response.json()["detail"]
    assert "nothing was stored" in response.json()["detail"]
    assert "prediction_id" not in response.text and "predictions" not in response.json()


def test_predict_is_refused_while_writes_fail_and_a_retry_stores_it_once(service: Service) -> None:
    body = _body(1, "evt-down-1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PredictionWriter, "write_prepared", _database_down)  # the group-commit thread calls it
        _assert_refused(service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR))
        _assert_refused(service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR))
    assert _stored(service.store) == []

    # The database is back: the same request with the same event id succeeds, once.
    response = service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["prediction_id"] and not prediction.get("duplicate")
    assert _stored(service.store) == [("evt-down-1", prediction["prediction_id"])]

    again = service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert again.status_code == 200, again.text
    (repeat,) = again.json()["predictions"]
    assert repeat["prediction_id"] == prediction["prediction_id"] and repeat["duplicate"] is True
    assert len(_stored(service.store)) == 1

    page = service.store.caseload("dropout", scope=Scope.admin())
    assert page.total == 1 and page.entries[0].prediction_id == prediction["prediction_id"]


def test_a_failing_insert_rolls_back_the_whole_batch(service: Service) -> None:
    """The database itself fails the INSERT (not a patched method): nothing of the batch stays."""

    def rename(old: str, new: str) -> None:
        with service.store.engine.begin() as connection:
            connection.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")

    # a write earlier keeps the writer's connection open: the failure hits that connection
    warm = service.client.post("/v1/dropout/predict", json=_body(1, "evt-warm"), headers=ADVISOR)
    assert warm.status_code == 200, warm.text
    rename("predictions", "predictions_away")  # every INSERT now fails inside the database
    try:
        body = _body(3, "evt-batch", seed=11)
        _assert_refused(service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR))
        with service.store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM predictions_away").scalar() == 1
    finally:
        rename("predictions_away", "predictions")

    response = service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert response.status_code == 200, response.text
    ids = [p["prediction_id"] for p in response.json()["predictions"]]
    batch = [row for row in _stored(service.store) if row[0].startswith("evt-batch")]
    assert sorted(batch) == sorted((f"evt-batch/{i}", pid) for i, pid in enumerate(ids))
    response = service.client.post("/v1/dropout/predict", json=body, headers=ADVISOR)
    assert [p["prediction_id"] for p in response.json()["predictions"]] == ids
    assert len(_stored(service.store)) == 4  # the three and the warm-up


def test_readyz_reports_the_database(service: Service) -> None:
    ready = service.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"] is True and ready.json()["ready"] is True

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(service.store, "authenticate", _database_down)
        down = service.client.get("/readyz")
        assert down.status_code == 503, down.text
        assert down.json()["database"] is False and down.json()["ready"] is False
        assert down.json()["champions"]["dropout.dropout.enrolment"] == 1
        assert service.client.get("/healthz").status_code == 200  # alive, just not ready

    back = service.client.get("/readyz")
    assert back.status_code == 200 and back.json()["database"] is True


def test_key_lookup_while_the_database_is_down_is_503_not_401(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With keys in the store, an outage must not look like a bad key (401) or a crash (500)."""
    with _service(trained_home, tmp_path, monkeypatch, None) as service:
        _, secret = service.store.create_key("advisor", programmes=["9254"])
        headers = {"X-API-Key": secret}
        body = _body(1, "evt-auth-down")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(service.store, "authenticate", _database_down)
            _assert_refused(service.client.post("/v1/dropout/predict", json=body, headers=headers))
        assert _stored(service.store) == []
        response = service.client.post("/v1/dropout/predict", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert len(_stored(service.store)) == 1
