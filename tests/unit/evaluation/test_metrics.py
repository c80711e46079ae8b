"""Unit tests for retain.evaluation.metrics (synthetic data only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from retain.evaluation.metrics import (
    bootstrap_ci,
    classification_metrics,
    confusion,
    expected_calibration_error,
    metrics_with_ci,
    regression_metrics,
    slugify,
    threshold_for_capacity,
    threshold_for_recall,
)

LABELS = ["Not dropout", "Dropout"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _calibrated_binary(rng: np.random.Generator, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    p = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < p).astype(int)
    return y, p


def test_ece_small_for_calibrated_and_large_for_miscalibrated(rng: np.random.Generator) -> None:
    y, p = _calibrated_binary(rng)
    assert expected_calibration_error(y, p) < 0.02
    overconfident = np.clip(p + 0.3, 0, 1)
    assert expected_calibration_error(y, overconfident) > 0.2


def test_ece_hand_computed_binary() -> None:
    # bin [0.1, 0.2): p=0.1, 0.1 with labels 0, 1 -> |0.1 - 0.5| = 0.4, weight 2/4
    # bin [0.9, 1.0]: p=0.9, 1.0 with labels 1, 1 -> |0.95 - 1.0| = 0.05, weight 2/4
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 1.0])
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)
    two_columns = np.column_stack([1 - p, p])
    assert expected_calibration_error(y, two_columns) == pytest.approx(0.225)


def test_ece_multiclass_uses_top_label() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 2, 2])
    # bin 7: confidence 0.7, accuracy 0.5 -> 0.2; bin 8: confidence 0.8, accuracy 1 -> 0.2
    assert expected_calibration_error(y, proba) == pytest.approx(0.2)


def test_classification_metrics_hand_computed() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.2, 0.6, 0.4, 0.9])
    proba = np.column_stack([1 - p1, p1])
    m = classification_metrics(y, proba, LABELS)
    assert m["n_rows"] == 4
    assert m["accuracy"] == pytest.approx(0.5)  # predictions 0, 1, 0, 1
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["precision_dropout"] == pytest.approx(0.5)
    assert m["recall_not_dropout"] == pytest.approx(0.5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p1))
    assert m["brier"] == pytest.approx(np.mean((p1 - y) ** 2))
    assert m["log_loss"] == pytest.approx(log_loss(y, proba))
    assert set(m) >= {"macro_precision", "macro_recall", "macro_f1", "pr_auc", "ece", "f1_dropout"}


def test_classification_metrics_multiclass(rng: np.random.Generator) -> None:
    n, k = 300, 3
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba, ["Dropout", "Enrolled", "Graduate"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    onehot = np.eye(k)[y]
    assert m["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)) / k)
    assert 0.5 < m["accuracy"] <= 1.0
    assert "recall_graduate" in m


def test_classification_metrics_missing_class_does_not_crash() -> None:
    y = np.zeros(10, dtype=int)
    proba = np.tile([0.8, 0.2], (10, 1))
    m = classification_metrics(y, proba, LABELS)
    assert "roc_auc" not in m and "pr_auc" not in m
    assert m["accuracy"] == 1.0
    assert "recall_dropout" not in m
    multi = classification_metrics(np.array([0, 0, 1, 1]), np.full((4, 3), 1 / 3), ["a", "b", "c"])
    assert "roc_auc" in multi  # defined for the classes present
    assert "recall_c" not in multi


def test_regression_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["mse"] == pytest.approx(4 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)
    assert "r2" not in regression_metrics(np.array([1.0]), np.array([2.0]))


def test_confusion_labels() -> None:
    table = confusion(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert list(table.index) == ["a", "b", "c"] and list(table.columns) == ["a", "b", "c"]
    assert table.loc["b", "c"] == 1 and table.loc["c", "c"] == 1
    assert int(table.to_numpy().sum()) == 4


def test_bootstrap_ci_contains_point_estimate(rng: np.random.Generator) -> None:
    y, p = _calibrated_binary(rng, 500)
    point = roc_auc_score(y, p)
    low, high = bootstrap_ci(roc_auc_score, y, p, n_rounds=200)
    assert low <= point <= high
    assert high - low < 0.15
    assert bootstrap_ci(roc_auc_score, y, p, n_rounds=50) == bootstrap_ci(roc_auc_score, y, p, n_rounds=50)


def test_bootstrap_ci_skips_undefined_rounds() -> None:
    y = np.zeros(20, dtype=int)
    low, high = bootstrap_ci(roc_auc_score, y, np.linspace(0, 1, 20), n_rounds=10)
    assert math.isnan(low) and math.isnan(high)


def test_metrics_with_ci(rng: np.random.Generator) -> None:
    y, p = _calibrated_binary(rng, 400)
    out = metrics_with_ci(y, np.column_stack([1 - p, p]), "classification", LABELS, n_rounds=50)
    assert set(out) >= {"accuracy", "roc_auc", "pr_auc", "brier", "ece", "log_loss"}
    # ECE is biased upwards under resampling, so its interval may sit above the point estimate
    for name in ("accuracy", "roc_auc", "brier"):
        entry = out[name]
        assert entry["low"] <= entry["value"] <= entry["high"]
    values = rng.normal(size=200)
    reg = metrics_with_ci(values, values + rng.normal(scale=0.1, size=200), "regression", n_rounds=50)
    assert set(reg) == {"mae", "rmse", "r2"}
    assert reg["r2"]["low"] <= reg["r2"]["value"] <= reg["r2"]["high"]


def test_threshold_for_capacity() -> None:
    scores = np.arange(100) / 100
    threshold = threshold_for_capacity(scores, 0.2)
    assert np.sum(scores >= threshold) == 20
    assert threshold_for_capacity(scores, 0.0) == math.inf
    assert np.sum(scores >= threshold_for_capacity(scores, 1.0)) == 100


def test_threshold_for_recall(rng: np.random.Generator) -> None:
    y, scores = _calibrated_binary(rng, 1000)
    threshold = threshold_for_recall(y, scores, 0.8)
    flagged = scores >= threshold
    recall = flagged[y == 1].mean()
    assert recall >= 0.8
    # any higher threshold (the next positive score up) falls short
    higher = np.min(scores[(y == 1) & (scores > threshold)])
    assert (scores >= higher)[y == 1].mean() < 0.8
    with pytest.raises(ValueError):
        threshold_for_recall(np.zeros(5), np.ones(5), 0.8)


def test_slugify() -> None:
    assert slugify("Not dropout") == "not_dropout"
    assert slugify("Grade A+/B") == "grade_a_b"
