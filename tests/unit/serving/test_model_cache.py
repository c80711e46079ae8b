"""The model cache: first load on the request, later re-checks behind it, new champions swapped in."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from retain.data.spec import load_spec
from retain.serving import models as cache_module
from retain.serving.models import ModelCache

SPEC = load_spec("dropout")


class _FakeRegistry:
    def __init__(self) -> None:
        self.version: int | None = 1
        self.checks = 0
        self.loads = 0
        self.slow = threading.Event()
        self.native: list[bool] = []  # compile_native calls: whether in the background

    def champion_version(self, name: str) -> int | None:
        self.checks += 1
        if self.slow.is_set():
            time.sleep(0.3)
        return self.version

    def load(self, dataset: str, task: str, stage: str, settings: Any = None) -> Any:
        self.loads += 1
        native = self.native

        def compile_native(self: Any, settings: Any, background: bool = False, threads: Any = None) -> bool:
            native.append(background)
            return True

        return type(
            "P",
            (),
            {
                "version": self.version,
                "model_name": f"{dataset}.{task}.{stage}",
                "compile_native": compile_native,
            },
        )()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> _FakeRegistry:
    registry = _FakeRegistry()
    monkeypatch.setattr(cache_module.registry, "configure", lambda settings=None: "")
    monkeypatch.setattr(cache_module.registry, "champion_version", registry.champion_version)
    monkeypatch.setattr(cache_module.Predictor, "from_registry", registry.load)
    return registry


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_stale_model_is_served_at_once_and_refreshed_behind(fake: _FakeRegistry) -> None:
    now = [0.0]
    cache = ModelCache(refresh_seconds=30, clock=lambda: now[0])
    assert cache.get(SPEC, "dropout", "semester_1").version == 1
    assert (fake.checks, fake.loads) == (1, 1)
    assert fake.native == [True]  # native trees compile behind the request, never on it
    assert cache.get(SPEC, "dropout", "semester_1").version == 1 and fake.checks == 1  # fresh: no check

    fake.version = 2  # promoted elsewhere
    fake.slow.set()  # the registry is slow: the request must not wait for it
    now[0] = 31.0
    started = time.perf_counter()
    assert cache.get(SPEC, "dropout", "semester_1").version == 1
    assert time.perf_counter() - started < 0.1
    _wait_for(lambda: cache.loaded() == {"dropout.dropout.semester_1": 2})
    assert cache.get(SPEC, "dropout", "semester_1").version == 2


def test_registry_errors_keep_the_loaded_model(fake: _FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    cache = ModelCache(refresh_seconds=10, clock=lambda: now[0])
    cache.get(SPEC, "dropout", "semester_1")

    def down(name: str) -> int:
        raise ConnectionError("registry down")

    monkeypatch.setattr(cache_module.registry, "champion_version", down)
    now[0] = 11.0
    assert cache.get(SPEC, "dropout", "semester_1").version == 1
    _wait_for(lambda: not cache._refreshing)
    assert cache.get(SPEC, "dropout", "semester_1").version == 1


def test_invalidate_and_missing_champion(fake: _FakeRegistry) -> None:
    cache = ModelCache(refresh_seconds=30, background=False)
    cache.get(SPEC, "dropout", "semester_1")
    fake.version = 3
    cache.invalidate("dropout.dropout.semester_1")
    assert cache.get(SPEC, "dropout", "semester_1").version == 3  # loaded on the request
    fake.version = None
    cache.invalidate()
    with pytest.raises(LookupError, match="no champion"):
        cache.get(SPEC, "dropout", "semester_1")
