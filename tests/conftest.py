"""Shared fixtures: an isolated RETAIN_HOME per test, the example data folder, synthetic frames."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
def live_api(
    tmp_path_factory: pytest.TempPathFactory, copy_trained_home: Callable[..., Path]
) -> Iterator[LiveApi]:
    home = tmp_path_factory.mktemp("dashboard-home")
    # dropout.dropout.enrolment trained on 900 synthetic rows (seed 21) in data/ (RETAIN_DATA_DIR)
    copy_trained_home(home, ("dropout", "dropout", "enrolment", 900), seed=21, data_dir=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    mp.setenv("RETAIN_DATA_DIR", str(home / "data"))
    get_settings.cache_clear()
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


# ----------------------------------------------------------------------------- trained homes
# Training costs seconds and a new MLflow database (every MLflow migration) costs more, so modules
# that need the same trained registry share one home built once per session: each module copies
# it into a folder of its own (copy_trained_home), so what one module stores, promotes or retrains
# no other sees. A copy's registry still finds its models: MLflow keeps the original's absolute
# artifact paths (new runs in a copy write their artifacts next to the original's, by run id).
#
# FAST_TRAINING shortens only what none of these tests reads: the bootstrap rounds behind the
# confidence intervals of a trained model's held-out metrics. The models, their point metrics, the
# promotion gate and the retrain gate's paired bootstrap are unchanged.

FAST_TRAINING = {"RETAIN_BOOTSTRAP_ROUNDS": "20"}

#: (dataset, task, stage, synthetic rows) of one model in a trained home.
Model = tuple[str, str, str, int]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database with every migration applied, as the first registry call makes it."""
    from mlflow import MlflowClient

    from retain.training import registry

    home = tmp_path_factory.mktemp("mlflow-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETAIN_HOME", str(home))
        get_settings.cache_clear()
        registry.configure()
        MlflowClient().search_experiments()  # the tracking store creates its tables
        MlflowClient().search_registered_models()  # and the registry store (the same database)
    get_settings.cache_clear()
    return home / "mlflow" / "mlflow.db"


def seed_mlflow(home: Path, template: Path) -> None:
    """Put a copy of the empty, migrated MLflow database where ``home``'s registry will look."""
    target = home / "mlflow" / "mlflow.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


@pytest.fixture
def fast_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """FAST_TRAINING for this test: for tests that train but never read a held-out metric's CI."""
    for key, value in FAST_TRAINING.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture
def mlflow_ready(isolated_home: Path, mlflow_template: Path) -> Path:
    """This test's home with the MLflow database its first registry call would create, made already."""
    seed_mlflow(isolated_home, mlflow_template)
    return isolated_home


@pytest.fixture
def fast_training(mlflow_ready: Path, fast_bootstrap: None) -> Path:
    """For a test that trains in its own home: a ready MLflow database there, and FAST_TRAINING."""
    return mlflow_ready


def _train_last(home: Path, models: tuple[Model, ...], seed: int, data_dir: bool) -> None:
    """Train the last of ``models`` into ``home`` (which holds the others), with its data."""
    dataset, task, stage, rows = models[-1]
    assert all(n == rows for d, *_, n in models if d == dataset), "one synthetic file per dataset"
    assert data_dir or {m[0] for m in models} == {dataset}, "train.csv holds one dataset: data_dir=True"
    spec = load_spec(dataset)
    path = home / "data" / spec.source.file if data_dir else home / "train.csv"
    if not path.exists():
        synthesize_to_file(spec, rows, path, seed=seed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETAIN_HOME", str(home))
        if data_dir:
            mp.setenv("RETAIN_DATA_DIR", str(home / "data"))
        for key, value in FAST_TRAINING.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        try:
            options = TrainOptions(data_path=None if data_dir else path, baselines=(), importance=False)
            train(dataset, task, stage, options)
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def copy_trained_home(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Callable[..., Path]:
    """``copy_trained_home(target, *models, seed=31, data_dir=False)``: ``target`` holding those models.

    ``target`` (a folder, empty or absent) becomes a copy of a home where ``models`` were trained
    and registered in the order given, with ``TrainOptions(baselines=(), importance=False)``. That
    home is built once per session for each distinct request, from a copy of the home of all but
    its last model (so requests that share a prefix share its training). Each dataset's synthetic
    rows (``seed``) are in ``train.csv``, passed as ``data_path``; with ``data_dir=True`` they are
    in ``data/<the spec's file>`` and ``RETAIN_DATA_DIR`` points there while training. A model is
    ``(dataset, task, stage, rows)``. Test modules cannot import from this file (several folders
    have a ``conftest.py``), hence a fixture rather than a helper.
    """
    built: dict[tuple[object, ...], Path] = {}

    def home_of(models: tuple[Model, ...], seed: int, data_dir: bool) -> Path:
        key = (models, seed, data_dir)
        if key not in built:
            home = tmp_path_factory.mktemp("trained-home")
            if len(models) > 1:
                shutil.copytree(home_of(models[:-1], seed, data_dir), home, dirs_exist_ok=True)
            else:
                seed_mlflow(home, mlflow_template)
            _train_last(home, models, seed, data_dir)
            built[key] = home
        return built[key]

    def copy(target: Path, *models: Model, seed: int = 31, data_dir: bool = False) -> Path:
        assert models, "name at least one model"
        shutil.copytree(home_of(models, seed, data_dir), target, dirs_exist_ok=True)
        return target

    return copy
