"""Shared fixtures: an isolated RETAIN_HOME per test, the example data folder, synthetic frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from retain.settings import get_settings

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
