"""Fixtures for the stream tests: two small trained dropout models and a store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retain.predictor import Predictor
from retain.settings import get_settings
from retain.store.repository import Store


@pytest.fixture(scope="session")
def stream_predictors(
    copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Predictor]:
    """``dropout.dropout.semester_1`` and ``dropout.dropout.enrolment``, trained on 800 synthetic rows."""
    home = tmp_path_factory.mktemp("stream-models")
    copy_trained_home(
        home,
        ("dropout", "dropout", "semester_1", 800),
        ("dropout", "dropout", "enrolment", 800),
        data_dir=True,
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    get_settings.cache_clear()
    try:
        predictors = {}
        for stage in ("semester_1", "enrolment"):
            predictors[stage] = Predictor.from_registry("dropout", "dropout", stage)
    finally:
        mp.undo()
        get_settings.cache_clear()
    return predictors


@pytest.fixture
def store() -> Iterator[Store]:
    """A fresh SQLite store under the test's RETAIN_HOME."""
    opened = Store.open()
    yield opened
    opened.close()
