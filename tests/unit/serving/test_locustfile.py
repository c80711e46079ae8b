"""The load test's request bodies are valid: one of each, posted to the app, answers 200.

``loadtest/traffic.py`` builds the bodies without locust (locust lives in its own venv); the
locustfile itself is only parsed here, to check its task mix.
"""

from __future__ import annotations

import ast
import importlib.util
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from retain.serving.app import create_app
from retain.serving.security import Principal, StaticKeys
from retain.settings import get_settings

LOADTEST = Path(__file__).resolve().parents[3] / "loadtest"
# An admin key, as the README recommends: an advisor sees only students on its roster programmes.
ADMIN = {"X-API-Key": "admin-secret"}
KEYS = StaticKeys({"admin-secret": Principal("k1", "admin")})


def _traffic() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loadtest_traffic", LOADTEST / "traffic.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


traffic = _traffic()


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``dropout.dropout.semester_1`` champion (the shared one, 800 synthetic rows): this module's copy."""
    return copy_trained_home(
        tmp_path_factory.mktemp("locust-home"), ("dropout", "dropout", "semester_1", 800), data_dir=True
    )


@pytest.fixture
def client(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), auth=KEYS)) as test_client:
        yield test_client


def test_every_kind_of_request_is_accepted(client: TestClient) -> None:
    rng = random.Random(3)
    students = traffic.make_students(120, seed=4)
    assert not any(k == "target" or k.startswith("units_2nd") for k in students[0])

    for body in (
        traffic.predict_body(students, rng),
        traffic.batch_body(students, rng),
        traffic.explain_body(students, rng),
    ):
        response = client.post(traffic.PREDICT_PATH, json=body, headers=ADMIN)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == len(body["students"])
        assert {p["model_name"] for p in predictions} == {"dropout.dropout.semester_1"}
    assert len(traffic.batch_body(students, rng)["students"]) == traffic.BATCH_SIZE == 50
    assert predictions[0]["reasons"]

    for _ in range(5):  # several draws: both change shapes
        response = client.post(traffic.WHAT_IF_PATH, json=traffic.what_if_body(students, rng), headers=ADMIN)
        assert response.status_code == 200, response.text

    for _ in range(3):
        response = client.get(traffic.CASELOAD_PATH, params=traffic.caseload_params(rng), headers=ADMIN)
        assert response.status_code == 200, response.text
    assert client.get(traffic.CASELOAD_PATH, params={"task": "dropout"}, headers=ADMIN).json()["total"] > 0

    scored = predictions[0]["student_id"]
    response = client.get(traffic.student_path(scored), headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"]


def test_locustfile_mix_matches_the_documented_weights() -> None:
    tree = ast.parse((LOADTEST / "locustfile.py").read_text())
    weights = {
        node.name: deco.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for deco in node.decorator_list
        if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "task"
    }
    assert weights == {
        "predict_one": 50,
        "predict_batch": 10,
        "predict_explained": 15,
        "what_if": 10,
        "caseload": 10,
        "student": 5,
        "engagement_image": 5,
    }
    used = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == "traffic"
    }
    missing = used - set(dir(traffic))
    assert not missing, f"the locustfile uses names traffic.py lacks: {missing}"
