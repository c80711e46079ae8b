"""Unit tests for retain.evaluation.report: cards render to Markdown, HTML and PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.evaluation.fairness import fairness_gaps, group_metrics
from retain.evaluation.metrics import classification_metrics, metrics_with_ci, regression_metrics
from retain.evaluation.report import RESPONSIBLE_USE, ModelCard, render_model_card

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _importance() -> pd.DataFrame:
    names = [f"feature_{i}" for i in range(25)]
    return pd.DataFrame({"feature": names, "importance": np.linspace(1.0, 0.01, 25)})


def _base(task_type: str, **kwargs: object) -> ModelCard:
    values: dict[str, object] = {
        "model_name": "toy.dropout.enrolment",
        "dataset_title": "Toy students",
        "task_name": "dropout",
        "task_description": "Will the student drop out?",
        "task_type": task_type,
        "stage": "enrolment",
        "features": ["Age at enrolment", "Course", "Scholarship holder"],
        "protected_attributes": {"Gender": False, "Age at enrolment": True},
        "data_version": "sha256:abc123",
        "git_commit": "deadbeef",
        "seed": 42,
        "training_rows": 800,
        "evaluation_rows": 200,
        "evaluation_method": "stratified 20% hold-out",
        "metrics": {},
        "importance": _importance(),
        "feature_labels": {"feature_0": "Most important <feature>"},
        "limitations": "Trained on one institution's cohorts.",
        "created_at": "2026-01-01 00:00 UTC",
    }
    values.update(kwargs)
    return ModelCard(**values)  # type: ignore[arg-type]


def _check_outputs(paths: dict[str, Path], expected_plots: set[str]) -> str:
    assert expected_plots <= set(paths)
    for name in expected_plots:
        assert paths[name].read_bytes().startswith(PNG_MAGIC), name
    markdown = paths["markdown"].read_text(encoding="utf-8")
    html = paths["html"].read_text(encoding="utf-8")
    for section in ("Intended use", "Limitations", "Responsible use", "Metrics"):
        assert section in markdown and section in html
    assert RESPONSIBLE_USE in markdown and RESPONSIBLE_USE in html
    assert html.count("data:image/png;base64,") == len(expected_plots)
    for name in expected_plots:
        assert f"({name}.png)" in markdown
    assert "Trained on one institution" in html
    assert "Most important &lt;feature&gt;" in html  # labels applied and escaped
    assert "feature_24" not in markdown  # only the top 20 are listed
    return html


def test_binary_card(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p1 = np.clip(0.3 + 0.4 * y + rng.normal(scale=0.15, size=300), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    labels = ["Not dropout", "Dropout"]
    metrics = metrics_with_ci(y, proba, "classification", labels, n_rounds=30)
    groups = pd.DataFrame({"gender": rng.choice(["Female", "Male"], 300)})
    fairness = group_metrics(y, p1, (p1 > 0.5).astype(int), groups)
    card = _base(
        "classification",
        metrics=metrics,
        labels=labels,
        y_true=y,
        proba=proba,
        baselines={"logistic regression": classification_metrics(y, proba, labels)},
        thresholds="High band: top 20% of risk scores (score >= 0.71).",
        fairness=fairness,
        fairness_gaps=fairness_gaps(fairness),
    )
    paths = render_model_card(card, tmp_path / "card")
    html = _check_outputs(paths, {"confusion_matrix", "roc_curve", "pr_curve", "calibration", "importance"})
    assert f"{metrics['roc_auc']['value']:.3f}" in html
    assert f"{metrics['roc_auc']['low']:.3f}" in html
    assert "logistic regression" in html and "Female" in html and "score &gt;= 0.71" in html
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "| roc_auc |" in markdown and "95% CI" in markdown


def test_multiclass_card(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = ["Dropout", "Enrolled", "Graduate"]
    y = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = classification_metrics(y, proba, labels)
    card = _base("classification", metrics=metrics, labels=labels, y_true=y, proba=proba)
    paths = render_model_card(card, tmp_path)
    html = _check_outputs(paths, {"confusion_matrix", "roc_curve", "pr_curve", "calibration", "importance"})
    assert f"{metrics['macro_f1']:.3f}" in html
    assert "Graduate" in html


def test_regression_card(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(60, 10, 200)
    pred = y + rng.normal(scale=4, size=200)
    metrics = regression_metrics(y, pred)
    card = _base("regression", metrics=metrics, y_true=y, y_pred=pred, importance=_importance())
    paths = render_model_card(card, tmp_path)
    html = _check_outputs(paths, {"predicted_vs_actual", "residuals", "importance"})
    assert "roc_curve" not in paths and "confusion_matrix" not in paths
    assert f"{metrics['rmse']:.3f}" in html
    assert ">200<" in html  # n_rows printed as an integer


def test_card_without_arrays_still_renders(tmp_path: Path) -> None:
    card = _base("classification", metrics={"roc_auc": 0.8}, importance=None)
    paths = render_model_card(card, tmp_path)
    assert set(paths) == {"markdown", "html"}
    assert "0.800" in paths["html"].read_text(encoding="utf-8")


@pytest.mark.parametrize("bad", [float("nan")])
def test_nan_metric_shown_as_not_available(tmp_path: Path, bad: float) -> None:
    card = _base(
        "classification", metrics={"roc_auc": {"value": 0.7, "low": bad, "high": bad}}, importance=None
    )
    html = render_model_card(card, tmp_path)["html"].read_text(encoding="utf-8")
    assert "n/a" in html
