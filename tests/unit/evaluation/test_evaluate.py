"""Unit tests for ``retain.evaluation.evaluate``: metrics with the task's decision rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retain.data.spec import DatasetSpec, load_spec
from retain.data.synth import synthesize
from retain.data.validate import validate_frame
from retain.evaluation.evaluate import confusion_table, decision_metrics, evaluate_model, score_metrics
from retain.features.build import feature_set
from retain.training.fit import build_risk_model, encode_target, folds, out_of_fold

SMALL = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


@pytest.fixture(scope="module")
def dropout() -> DatasetSpec:
    return load_spec("dropout")


def test_decision_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    m = decision_metrics(y, pred, ["Dropout", "Enrolled", "Graduate"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["recall_dropout"] == pytest.approx(0.5)
    assert m["precision_enrolled"] == pytest.approx(2 / 3)
    assert m["f1_graduate"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_decision_metrics_absent_class_counts_as_zero() -> None:
    m = decision_metrics(np.array([0, 0, 1]), np.array([0, 0, 1]), ["a", "b", "c"])
    assert m["recall_c"] == 0.0
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_score_metrics_uses_class_weights(dropout: DatasetSpec) -> None:
    task = dropout.task("outcome")
    y = np.array([0, 1, 1, 2])
    proba = np.array([[0.6, 0.1, 0.3], [0.2, 0.35, 0.45], [0.1, 0.4, 0.5], [0.1, 0.1, 0.8]])
    plain = score_metrics(task, y, proba, None)
    weighted = score_metrics(task, y, proba, [1.0, 1.5, 1.0])
    assert plain["accuracy"] == pytest.approx(0.5)
    assert weighted["accuracy"] == pytest.approx(1.0)
    assert plain["roc_auc"] == weighted["roc_auc"]  # probability metrics ignore the decision weights


def test_score_metrics_regression() -> None:
    task = load_spec("exam_scores").task("math")
    m = score_metrics(task, np.array([50.0, 60.0, 70.0]), np.array([52.0, 58.0, 70.0]), None)
    assert m["mae"] == pytest.approx(4 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(8 / 3))


@pytest.fixture(scope="module")
def fitted(dropout: DatasetSpec):
    typed, _ = validate_frame(synthesize(dropout, 400, seed=21), dropout)
    task = dropout.task("outcome")
    y = encode_target(typed, task)
    fs = feature_set(dropout, task, "semester_1")
    oof = out_of_fold(dropout, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    model = build_risk_model(dropout, task, "semester_1", fs, "lightgbm", SMALL, typed, y, oof)
    return model, task, typed, y


def test_evaluate_model_matches_model_decisions(fitted) -> None:
    model, task, typed, y = fitted
    m = evaluate_model(model, task, typed, y)
    decided = model.decide(model.predict_proba(typed))
    assert m["accuracy"] == pytest.approx(np.mean(decided == y))
    assert 0.5 < m["roc_auc"] <= 1.0
    assert m["n_rows"] == len(y)


def test_evaluate_model_regression() -> None:
    spec = load_spec("exam_scores")
    typed, _ = validate_frame(synthesize(spec, 200, seed=3), spec)
    task = spec.task("math")
    y = encode_target(typed, task)
    fs = feature_set(spec, task, "with_other_scores")
    oof = out_of_fold(spec, task, fs, "lightgbm", SMALL, typed, y, folds(y, task, 3, 0))
    model = build_risk_model(spec, task, "with_other_scores", fs, "lightgbm", SMALL, typed, y, oof)
    m = evaluate_model(model, task, typed, y)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((model.predict_value(typed) - y) ** 2)))


def test_confusion_table(fitted) -> None:
    model, _, typed, y = fitted
    table = confusion_table(model, typed, y)
    assert isinstance(table, pd.DataFrame)
    assert table.shape == (3, 3)
    assert list(table.index) == ["Dropout", "Enrolled", "Graduate"]
    assert int(table.to_numpy().sum()) == len(y)
    assert table.to_numpy().sum(axis=1).tolist() == np.bincount(y, minlength=3).tolist()
