"""Unit tests for ``retain.settings``: environment prefix and tracking URI precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from retain.settings import Settings, get_settings


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RETAIN_SEED", "7")
    monkeypatch.setenv("RETAIN_CV_FOLDS", "3")
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RETAIN_EXTRA_SPEC_DIRS", f'["{tmp_path / "specs"}"]')
    monkeypatch.setenv("SEED", "99")  # no prefix: ignored
    get_settings.cache_clear()
    s = get_settings()
    assert s.seed == 7
    assert s.cv_folds == 3
    assert s.data_dir == tmp_path
    assert s.spec_dirs() == [s.spec_dir, tmp_path / "specs"]


def test_settings_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("RETAIN_SEED", "11")
    assert get_settings().seed == first.seed
    get_settings.cache_clear()
    assert get_settings().seed == 11


def test_home_comes_from_env(isolated_home: Path) -> None:
    s = get_settings()
    assert s.home == isolated_home
    assert s.mlflow_dir == isolated_home / "mlflow"
    assert s.artifact_location().startswith("file://")
    assert s.artifact_location().endswith("/mlflow/artifacts")


def test_secret_key_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_ID_KEY", "top-secret")
    s = Settings()
    assert s.id_key.get_secret_value() == "top-secret"
    assert "top-secret" not in repr(s)


def test_tracking_uri_defaults_to_sqlite_under_home(isolated_home: Path) -> None:
    uri = get_settings().resolved_tracking_uri()
    assert uri == f"sqlite:///{(isolated_home / 'mlflow' / 'mlflow.db').resolve()}"


def test_mlflow_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    get_settings.cache_clear()
    assert get_settings().resolved_tracking_uri() == "http://mlflow.example:5000"


def test_retain_tracking_uri_beats_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("RETAIN_TRACKING_URI", "http://retain.example:5000")
    get_settings.cache_clear()
    assert get_settings().resolved_tracking_uri() == "http://retain.example:5000"


def test_default_spec_dir_is_bundled_configs() -> None:
    assert (get_settings().spec_dir / "dropout.yaml").exists()
