"""Unit tests for ``retain.training.params``: tuned hyperparameters on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retain.settings import get_settings
from retain.training.params import TunedParams, load_all, params_path, save, tuned_for


def test_round_trip_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    first = TunedParams(
        kind="xgboost", params={"max_depth": 3, "learning_rate": 0.1}, cv_score=0.8, metric="roc_auc"
    )
    second = TunedParams(kind="lightgbm", params={"num_leaves": 7}, calibration="isotonic", trials=20)
    save("dropout.dropout.semester_1", first, path)
    save("dropout.outcome.enrolment", second, path)
    loaded = load_all(path)
    assert loaded == {"dropout.dropout.semester_1": first, "dropout.outcome.enrolment": second}
    # overwrite one entry, the other is kept
    updated = TunedParams(kind="forest", params={"n_estimators": 50})
    save("dropout.dropout.semester_1", updated, path)
    loaded = load_all(path)
    assert loaded["dropout.dropout.semester_1"] == updated
    assert loaded["dropout.outcome.enrolment"] == second


def test_file_is_sorted_yaml_with_header(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    save("b.t.s", TunedParams(), path)
    save("a.t.s", TunedParams(cv_score=None), path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#")
    assert list(yaml.safe_load(text)) == ["a.t.s", "b.t.s"]
    assert "cv_score" not in text  # None values left out


def test_missing_file_and_unknown_name_give_defaults(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert load_all(path) == {}
    assert tuned_for("x.y.z", path) == TunedParams()
    save("a.b.c", TunedParams(kind="linear"), path)
    assert tuned_for("x.y.z", path).kind == "lightgbm"
    assert tuned_for("a.b.c", path).kind == "linear"


def test_empty_file_is_no_entries(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert load_all(path) == {}


def test_default_path_beside_spec_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec_dir = tmp_path / "configs" / "datasets"
    spec_dir.mkdir(parents=True)
    monkeypatch.setenv("RETAIN_SPEC_DIR", str(spec_dir))
    get_settings.cache_clear()
    assert params_path() == tmp_path / "configs" / "params.yaml"
    written = save("m.t.s", TunedParams(kind="forest"))
    assert written == tmp_path / "configs" / "params.yaml"
    assert tuned_for("m.t.s").kind == "forest"


def test_drop_list_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    save("d.t.s", TunedParams(drop=["gdp", "inflation_rate"]), path)
    assert tuned_for("d.t.s", path).drop == ["gdp", "inflation_rate"]
