"""Evaluate a fitted ``RiskModel`` on labelled rows with the task's own decision rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from retain.data.spec import Task
from retain.evaluation.metrics import classification_metrics, confusion, regression_metrics, slugify
from retain.training.artifact import RiskModel


def decision_metrics(y: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro/per-class precision, recall, F1 of class decisions."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support

    k = len(labels)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, labels=list(range(k)), zero_division=0
    )
    out: dict[str, float] = {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
    }
    for i, label in enumerate(labels):
        slug = slugify(label)
        out[f"precision_{slug}"] = float(precision[i])
        out[f"recall_{slug}"] = float(recall[i])
        out[f"f1_{slug}"] = float(f1[i])
    return out


def score_metrics(
    task: Task, y: np.ndarray, pred: np.ndarray, class_weights: list[float] | None
) -> dict[str, float]:
    """All metrics of predictions: probabilities (n, k) or values (n,)."""
    if not task.is_classification:
        return regression_metrics(y, pred)
    metrics = classification_metrics(y, pred, task.labels)
    weights = np.asarray(class_weights or [1.0] * pred.shape[1])
    metrics.update(decision_metrics(y, np.argmax(pred * weights, axis=1), task.labels))
    return metrics


def evaluate_model(model: RiskModel, task: Task, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """Metrics of ``model`` on labelled rows ``X`` (validated canonical columns)."""
    if task.is_classification:
        return score_metrics(task, y, model.predict_proba(X), model.class_weights)
    return score_metrics(task, y, model.predict_value(X), None)


def confusion_table(model: RiskModel, X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    proba = model.predict_proba(X)
    return confusion(y, model.decide(proba), model.labels)


#: Metrics computed from class decisions (the model's own decision rule), not from probabilities.
DECISION_METRICS = frozenset({"accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1"})


def metric_inputs(model: RiskModel, task: Task, X: pd.DataFrame) -> np.ndarray:
    """What :func:`metric_scorer` needs of one model on rows ``X``.

    Classification: shape (n, 2k), the probabilities then the one-hot of the model's decisions
    (its own class weights decide, so two models with different weights compare fairly).
    Regression: shape (n,), the predicted values.
    """
    if not task.is_classification:
        return model.predict_value(X)
    proba = model.predict_proba(X)
    decisions = model.decide(proba)
    return np.hstack([proba, np.eye(proba.shape[1])[decisions]])


def metric_scorer(task: Task, metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``score(y, metric_inputs(...)) -> float`` for one metric; ``ValueError`` when undefined."""

    def score(y: np.ndarray, inputs: np.ndarray) -> float:
        if not task.is_classification:
            values = regression_metrics(y, inputs)
        else:
            k = inputs.shape[1] // 2
            if metric in DECISION_METRICS:
                values = decision_metrics(y, np.argmax(inputs[:, k:], axis=1), task.labels)
            else:
                values = classification_metrics(y, inputs[:, :k], task.labels)
        if metric not in values:
            raise ValueError(f"{metric} is undefined on these rows")
        return float(values[metric])

    return score
