"""The command line as a whole: bad settings are named once, with no traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_bad_setting_is_named_and_no_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_API_WORKERS", "0")
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 2
    assert "RETAIN_API_WORKERS" in result.output and "greater than or equal to 1" in result.output
    assert "Traceback" not in result.output and "dropout" not in result.output


def test_valid_settings_let_the_command_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_API_WORKERS", "2")
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    assert "dropout" in result.output
