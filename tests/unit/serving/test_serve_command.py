"""`retain serve`: what it hands uvicorn, and where several workers keep their metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from retain.cli import app
from retain.settings import get_settings


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder of its arguments and of the metrics folder it would see."""
    calls: list[dict[str, Any]] = []

    def run(target: str, **options: Any) -> None:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        calls.append(
            {
                "target": target,
                **options,
                "metrics": folder,
                "metrics_exists": folder is not None and Path(folder).is_dir(),
                "workers_setting": os.environ.get("RETAIN_API_WORKERS"),
            }
        )

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("RETAIN_HOME", str(tmp_path / "home"))
    for name in ("PROMETHEUS_MULTIPROC_DIR", "RETAIN_API_WORKERS"):  # set by serve: put back after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_one_worker_keeps_its_metrics_in_process(started: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    (call,) = started
    assert call["target"] == "retain.serving.app:create_app" and call["factory"] is True
    assert call["port"] == 8123 and call["workers"] == 1
    assert call["metrics"] is None


def test_several_workers_share_a_fresh_metrics_folder_removed_afterwards(
    started: list[dict[str, Any]],
) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    (call,) = started
    assert call["workers"] == 2 and call["workers_setting"] == "2"
    assert call["metrics_exists"]
    assert not Path(call["metrics"]).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_the_callers_metrics_folder_is_used_and_made_if_missing(
    started: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "prometheus" / "api"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    result = CliRunner().invoke(app, ["serve", "--workers", "3"])
    assert result.exit_code == 0, result.output
    (call,) = started
    assert call["metrics"] == str(folder) and call["metrics_exists"]
    assert folder.is_dir()  # the caller's: left in place


def test_fewer_than_one_worker_is_refused(started: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output
    assert started == []
