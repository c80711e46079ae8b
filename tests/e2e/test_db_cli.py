"""`retain db upgrade`: migrates an empty store to head once; a second run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.settings import get_settings
from retain.store.db import head_revision


def test_db_upgrade_migrates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    get_settings.cache_clear()
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"from": None, "to": head_revision(), "head": head_revision()}
    second = runner.invoke(app, ["db", "upgrade", "--json"])
    assert json.loads(second.stdout)["from"] == head_revision()
