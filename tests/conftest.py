"""Shared fixtures: an isolated RETAIN_HOME per test, the example data folder, synthetic frames."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file
from retain.serving.app import create_app
from retain.settings import get_settings
from retain.simulation import intake
from retain.store.repository import Scope, Store
from retain.training.train import TrainOptions, train

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own RETAIN_HOME (MLflow store, audit log) and fresh settings."""
    home = tmp_path_factory.mktemp("retain-home")
    monkeypatch.setenv("RETAIN_HOME", str(home))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RETAIN_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example data folder (../shared/data); tests that need it skip when it is absent."""
    folder = Path(os.environ.get("RETAIN_DATA_DIR", SHARED_DATA))
    if not (folder / "dropout_academic_success.csv").exists():
        folder = SHARED_DATA
    if not (folder / "dropout_academic_success.csv").exists():
        pytest.skip(f"example data not found in {folder}")
    monkeypatch.setenv("RETAIN_DATA_DIR", str(folder))
    get_settings.cache_clear()
    return folder


# ----------------------------------------------------------------------------- a live API
# A real API on a loopback port (uvicorn in a thread) with a trained model, keys, a roster and
# scored students: the dashboard's AppTests and the browser test both talk to it.


DASHBOARD_SPEC = load_spec("dropout")


@dataclass(frozen=True)
class LiveApi:
    url: str
    admin_key: str
    advisor_key: str
    student_ids: list[str]
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    home = tmp_path_factory.mktemp("dashboard-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    mp.setenv("RETAIN_DATA_DIR", str(home / "data"))
    get_settings.cache_clear()
    synthesize_to_file(DASHBOARD_SPEC, 900, home / "data" / DASHBOARD_SPEC.source.file, seed=21)
    train("dropout", "dropout", "enrolment", TrainOptions(baselines=(), importance=False))
    store = Store.from_settings()
    _, admin_key = store.create_key("admin", name="test admin")
    _, advisor_key = store.create_key("advisor", programmes=["9500"], name="test advisor")
    new = intake(
        DASHBOARD_SPEC,
        DASHBOARD_SPEC.task("dropout"),
        "stable",
        150,
        seed=22,
        reference_seed=21,
        reference_rows=900,
    )
    students = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in new.students.to_dict(orient="records")
    ]
    roster = pd.DataFrame(
        {
            "student_id": [s["student_id"] for s in students],
            "name": [f"Student {n:02d}" for n in range(len(students))],
            "programme": [s["course"] for s in students],
        }
    )
    store.import_roster(roster, dataset="dropout")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(get_settings(), store=store), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    answer = httpx.post(
        f"{url}/v1/dropout/predict",
        json={"students": students, "task": "dropout", "stage": "enrolment"},
        headers={"X-API-Key": admin_key},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    later = pd.Timestamp.now(tz="UTC").to_pydatetime() + pd.Timedelta(seconds=1)
    helped = set(new.outcomes["student_id"].iloc[::2])
    for sid, outcome in zip(new.outcomes["student_id"], new.outcomes["outcome"], strict=True):
        if sid in helped:
            store.record_intervention("dropout", sid, "tutoring", note="weekly", scope=Scope.admin("test"))
        store.record_outcome(
            "dropout", sid, outcome, task="dropout", recorded_at=later, scope=Scope.admin("test")
        )
    mp.undo()  # the server keeps its own settings and store; other tests must not see this home
    get_settings.cache_clear()
    yield LiveApi(url, admin_key, advisor_key, [str(s["student_id"]) for s in students], home)
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture
def api_env(live_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> LiveApi:
    """Each test sees the live API's home and URL (the autouse home fixture would hide them)."""
    monkeypatch.setenv("RETAIN_HOME", str(live_api.home))
    monkeypatch.setenv("RETAIN_DATA_DIR", str(live_api.home / "data"))
    monkeypatch.setenv("RETAIN_DASHBOARD_API_URL", live_api.url)
    get_settings.cache_clear()
    from retain.training import registry

    registry.configure()  # MLflow's URI is process-wide: point it back at the live API's registry
    return live_api
