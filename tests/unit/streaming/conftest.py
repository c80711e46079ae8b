"""Fixtures for the stream tests: two small trained dropout models and a store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file
from retain.predictor import Predictor
from retain.settings import get_settings
from retain.store.repository import Store


@pytest.fixture(scope="session")
def stream_predictors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Predictor]:
    """``dropout.dropout.semester_1`` and ``dropout.dropout.enrolment``, trained on 800 synthetic rows."""
    from retain.training.train import TrainOptions, train

    home = tmp_path_factory.mktemp("stream-models")
    data = home / "train.csv"
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    get_settings.cache_clear()
    try:
        synthesize_to_file(load_spec("dropout"), 800, data, seed=31)
        options = TrainOptions(data_path=data, baselines=(), importance=False)
        predictors = {}
        for stage in ("semester_1", "enrolment"):
            train("dropout", "dropout", stage, options)
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
