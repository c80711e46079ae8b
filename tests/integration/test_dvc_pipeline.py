"""``dvc repro`` of the shipped dvc.yaml and params.yaml, for real, in a throwaway DVC project.

The project is a temporary folder holding copies of dvc.yaml, params.yaml, .dvcignore and the
files the stages depend on (configs, the code they hash), with ``.venv`` linked to the virtual
environment running the tests, so the stages call the same ``retain`` CLI. Only the parameters
are made small (one stage, a few hundred synthetic students, 3 folds). RETAIN_HOME,
RETAIN_DATA_DIR and MLFLOW_TRACKING_URI point elsewhere, and the pipeline must ignore them.

Needs DVC in ``.venv-dvc`` (``make dvc-env``): skips without it, fails under CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DVC = REPO_ROOT / ".venv-dvc" / "bin" / "dvc"
#: What the stages read from the repo (dvc.yaml's deps); copied so DVC can hash them.
COPIED = ("dvc.yaml", "params.yaml", ".dvcignore", "configs", "src/retain")
STAGE = "semester_2"
TRAIN_ROWS, HELDOUT_ROWS = 800, 300
STATE = Path(".retain/pipeline")


def _unavailable(reason: str) -> None:
    """Fail under CI (``CI`` set), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A DVC project (``dvc init --no-scm``) with the repo's pipeline and small parameters."""
    if not DVC.exists():
        _unavailable(f"DVC not installed at {DVC.relative_to(REPO_ROOT)} (run `make dvc-env`)")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "retain").exists():
        _unavailable(f"no retain CLI in {venv}/bin (run the tests from the project's venv)")
    root = tmp_path / "project"
    root.mkdir()
    for name in COPIED:
        source, target = REPO_ROOT / name, root / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (root / ".venv").symlink_to(venv, target_is_directory=True)

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["stages"] = STAGE
    params["synth"].update(rows=TRAIN_ROWS, heldout_rows=HELDOUT_ROWS)
    params["train"].update(cv_folds=3, bootstrap_rounds=50, baselines="majority")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    _dvc(root, "init", "--no-scm", "-q")
    _dvc(root, "config", "core.analytics", "false")
    return root


def _env(root: Path) -> dict[str, str]:
    elsewhere = root.parent
    (elsewhere / "no-data").mkdir(exist_ok=True)
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "RETAIN_HOME": str(elsewhere / "outside-home"),
        "RETAIN_DATA_DIR": str(elsewhere / "no-data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{elsewhere / 'outside-tracking.db'}",
    }


def _dvc(root: Path, *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(DVC), *args],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"dvc {' '.join(args)} exited {result.returncode}:\n{output[-4000:]}"
    return output


def _ran(output: str) -> set[str]:
    return {stage for stage in ("prepare", "train", "evaluate") if f"Running stage '{stage}'" in output}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_repro_builds_models_reruns_nothing_then_only_what_a_param_change_touches(project: Path) -> None:
    first = _dvc(project, "repro", timeout=400)
    assert _ran(first) == {"prepare", "train", "evaluate"}, first[-3000:]

    metrics = _json(project / STATE / "metrics" / f"{STAGE}.json")
    assert metrics["model_name"] == f"dropout.dropout.{STAGE}"
    assert metrics["model_version"] == 1
    assert metrics["n_rows"] == HELDOUT_ROWS
    assert 0.5 < metrics["roc_auc"] < 1
    assert 0 <= metrics["ece"] <= 1 and 0 < metrics["accuracy"] <= 1

    (summary,) = _json(project / STATE / "train" / f"{STAGE}.json")["models"]
    assert summary["version"] == 1 and summary["promoted"] is True
    assert summary["n_train"] + summary["n_test"] == TRAIN_ROWS
    assert 0.5 < summary["test"]["roc_auc"] < 1
    validation = _json(project / STATE / "train" / "validation.json")
    assert validation["ok"] is True and validation["n_rows"] == TRAIN_ROWS

    # the registry is the pipeline's own; nothing went to RETAIN_HOME or MLFLOW_TRACKING_URI
    assert (project / STATE / "mlflow" / "mlflow.db").exists()
    assert not (project.parent / "outside-home" / "mlflow").exists()
    assert not (project.parent / "outside-tracking.db").exists()

    # DVC itself reads them as the pipeline's metrics (workspace revision "" without git)
    (workspace,) = json.loads(_dvc(project, "metrics", "show", "--json")).values()
    shown = workspace["data"][str(STATE / "metrics" / f"{STAGE}.json")]["data"]
    assert shown["roc_auc"] == metrics["roc_auc"]

    second = _dvc(project, "repro")
    assert _ran(second) == set(), second
    assert "Data and pipelines are up to date" in second

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seed"] = 7
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _dvc(project, "repro", timeout=400)
    assert _ran(third) == {"train", "evaluate"}, third[-3000:]
    assert "Stage 'prepare' didn't change, skipping" in third

    # a fresh registry each time: evaluate judges the model this run trained, not an old champion
    again = _json(project / STATE / "metrics" / f"{STAGE}.json")
    assert again["model_version"] == 1 and 0.5 < again["roc_auc"] < 1
    assert "Data and pipelines are up to date" in _dvc(project, "status")
