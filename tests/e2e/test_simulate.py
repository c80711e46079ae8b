"""``retain simulate``: the whole feedback loop on the embedded defaults, deterministic for a seed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.settings import get_settings

runner = CliRunner()
SIZES = ["--reference-rows", "1500", "--intake-rows", "900"]


def _simulate(home: Path, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["simulate", "--home", str(home), *SIZES, "--json", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate points RETAIN_HOME and the stores at its own folder; undo that after each test."""
    for name in ("RETAIN_HOME", "RETAIN_DATABASE_URL", "RETAIN_TRACKING_URI"):
        original = os.environ.get(name)
        monkeypatch.setenv(name, original or "unset")  # records the original, restored at teardown
        if original is None:
            monkeypatch.delenv(name)
    get_settings.cache_clear()


def test_a_shifted_intake_is_detected_retrained_and_promoted_the_same_way_twice(
    tmp_path: Path, fast_bootstrap: None
) -> None:
    first = _simulate(tmp_path / "a", "--scenario", "drift", "--seed", "11")
    streamed = first["streamed"]
    assert streamed == {"sent": 900, "scored": 900, "dead_letters": 0, "duplicates": 0}  # type: ignore[comparison-overlap]
    drift = first["drift"]
    assert isinstance(drift, dict) and {"admission_grade", "unemployment_rate"} <= set(drift["drifted"])
    assert first["triggers"], "a shifted intake whose outcomes changed must call for a retrain"
    retrain = first["retrain"]
    assert isinstance(retrain, dict) and retrain["promoted"], retrain
    assert retrain["challenger_score"] > retrain["champion_score"]
    assert first["final_champion"] == retrain["challenger_version"] != first["champion_version"]
    assert Path(str(first["reports"][0])).exists()  # type: ignore[index]
    impact = first["impact"]  # simulated help cuts adverse outcomes; the matched estimate sees it
    assert isinstance(impact, dict) and impact["simulated"] and impact["n_helped"] > 30
    assert impact["difference"] < 0 and impact["ci_high"] < 0.05

    second = _simulate(tmp_path / "b", "--scenario", "drift", "--seed", "11")
    assert isinstance(second["retrain"], dict)
    for key in ("champion_score", "challenger_score", "reason", "rows"):
        assert second["retrain"][key] == retrain[key], key
    assert second["drift"] == drift and second["live_metric"] == first["live_metric"]


def test_a_stable_intake_leaves_the_champion_in_place(tmp_path: Path, fast_bootstrap: None) -> None:
    result = _simulate(tmp_path, "--scenario", "stable", "--seed", "11")
    drift = result["drift"]
    assert isinstance(drift, dict) and not drift["dataset_drift"] and not drift["prediction_drift"]
    assert result["triggers"] == [] and result["retrain"] is None
    assert result["final_champion"] == result["champion_version"]


def test_an_unknown_scenario_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--home", str(tmp_path), "--scenario", "flood"])
    assert result.exit_code == 2 and "drift" in result.stderr and "stable" in result.stderr
