"""End to end through the CLI: train with a small budget, register, predict a file, evaluate,
promote and roll back, and refuse bad input with a clear message and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file

runner = CliRunner()


@pytest.fixture
def synthetic_dropout(tmp_path: Path) -> tuple[Path, Path]:
    spec = load_spec("dropout")
    train_file = tmp_path / "train.csv"
    heldout_file = tmp_path / "heldout.csv"
    synthesize_to_file(spec, 900, train_file, seed=1)
    synthesize_to_file(spec, 300, heldout_file, seed=2)
    return train_file, heldout_file


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_train_register_predict_evaluate_promote_rollback(
    synthetic_dropout: tuple[Path, Path], tmp_path: Path, fast_training: Path
) -> None:
    train_file, heldout_file = synthetic_dropout
    base = ["--dataset", "dropout", "--task", "dropout", "--stage", "enrolment"]
    code, out, err = _run("train", *base, "--data", str(train_file), "--baselines", "majority", "--json")
    assert code == 0, err
    summary = json.loads(out)
    (model,) = summary["models"]
    assert model["model"] == "dropout.dropout.enrolment"
    assert model["version"] == 1 and model["promoted"] is True
    assert model["test"]["roc_auc"] > 0.6

    output = tmp_path / "scored.csv"
    code, _, err = _run("predict", *base, "--input", str(heldout_file), "--output", str(output))
    assert code == 0, err
    scored = pd.read_csv(output)
    assert len(scored) == 300
    assert {"student_id", "risk_score", "risk_band", "prediction", "model_version"} <= set(scored.columns)
    assert scored["risk_score"].between(0, 1).all()
    assert set(scored["risk_band"]) <= {"low", "medium", "high"}

    code, out, err = _run("evaluate", *base, "--data", str(heldout_file), "--json")
    assert code == 0, err
    metrics = json.loads(out)
    for key in ("n_rows", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "brier", "ece"):
        assert key in metrics
    assert metrics["n_rows"] == 300
    assert "rmse" not in metrics

    # a second training run of the same data cannot beat the champion by the margin: kept
    code, out, err = _run("train", *base, "--data", str(train_file), "--baselines", "", "--json")
    assert code == 0, err
    second = json.loads(out)["models"][0]
    assert second["version"] == 2 and second["promoted"] is False

    code, out, _ = _run("models", "list", "dropout.dropout.enrolment", "--json")
    versions = {v["version"]: v["aliases"] for v in json.loads(out)["versions"]}
    assert "champion" in versions[1] and "champion" not in versions[2]

    code, _, err = _run("models", "promote", "dropout.dropout.enrolment", "2", "--force")
    assert code == 2 and "reason" in err
    code, _, err = _run(
        "models", "promote", "dropout.dropout.enrolment", "2", "--force", "--reason", "test override"
    )
    assert code == 0, err
    code, out, err = _run("models", "rollback", "dropout.dropout.enrolment")
    assert code == 0, err
    assert "version 1" in out


def test_bad_input_gets_a_clear_message_and_nonzero_exit(tmp_path: Path) -> None:
    spec = load_spec("dropout")
    good = tmp_path / "good.csv"
    synthesize_to_file(spec, 50, good, seed=3)
    frame = pd.read_csv(good, sep=";", dtype=str)
    frame.loc[4, "Course"] = "12345"
    frame.loc[7, "Admission grade"] = "high"
    frame = frame.drop(columns=["GDP"])
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, sep=";", index=False)
    code, out, err = _run("data", "validate", "dropout", str(bad))
    assert code == 1
    assert "'course': unknown code in 1 row(s) (rows 5)" in err
    assert "'admission_grade': not a number" in err
    assert "'gdp': column is missing" in err
    assert "Traceback" not in out + err

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = _run("data", "validate", "dropout", str(empty))
    assert code == 2 and "empty" in err

    code, _, err = _run("train", "--dataset", "nope")
    assert code == 2 and "unknown dataset" in err

    code, _, err = _run("train", "--dataset", "dropout", "--task", "dropout", "--data", str(bad))
    assert code == 2 and "does not match the spec" in err


def test_failed_run_registers_nothing(tmp_path: Path, mlflow_ready: Path) -> None:
    spec = load_spec("dropout")
    data = tmp_path / "one_class.csv"
    synthesize_to_file(spec, 60, data, seed=4)
    frame = pd.read_csv(data, sep=";", dtype=str)
    frame["Target"] = "Graduate"
    frame.to_csv(data, sep=";", index=False)
    code, _, err = _run(
        "train", "--dataset", "dropout", "--task", "dropout", "--stage", "enrolment", "--data", str(data)
    )
    assert code == 2
    assert "fewer than 2 rows" in err
    code, out, _ = _run("models", "list", "--json")
    assert json.loads(out)["versions"] == []


def test_data_list_and_show() -> None:
    code, out, _ = _run("data", "list", "--json")
    assert code == 0
    names = {d["name"] for d in json.loads(out)["datasets"]}
    assert names == {"dropout", "exam_scores", "secondary_math", "secondary_portuguese"}
    code, out, _ = _run("data", "show", "dropout", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["name"] == "dropout"
    assert {t["name"] for t in shown["tasks"]} == {"outcome", "dropout"}


def test_unlabelled_rows_are_set_aside_when_training(tmp_path: Path) -> None:
    from retain.training.train import prepare

    spec = load_spec("dropout")
    data = tmp_path / "partly_labelled.csv"
    synthesize_to_file(spec, 200, data, seed=8)
    frame = pd.read_csv(data, sep=";", dtype=str)
    frame.loc[:29, "Target"] = ""
    frame.to_csv(data, sep=";", index=False)
    prepared = prepare(spec, spec.task("dropout"), data)
    assert prepared.dropped_unlabelled == 30
    assert len(prepared.frame) == 170
