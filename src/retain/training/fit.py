"""Pure model fitting: targets, pipelines, cross-validation and decision rules.

Frames in, fitted objects and arrays out; nothing here touches disk, MLflow or the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from retain.data.spec import DatasetSpec, Task
from retain.evaluation.calibration import ProbabilityCalibrator
from retain.features.build import FeatureSet, build_preprocessor, monotone_vector, select_features
from retain.training.artifact import RiskModel
from retain.training.models import MONOTONE_KINDS, make_estimator, needs_scaling


class TrainingError(ValueError):
    """The data cannot train this task (too few rows, a single class, ...)."""


def encode_target(frame: pd.DataFrame, task: Task) -> np.ndarray:
    """Target as model input: class indices (adverse = 1 for binary tasks) or float values."""
    values = frame[task.target]
    if task.type.value == "regression":
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if task.threshold is not None:
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        return (numeric < task.threshold).astype(int)
    if task.classes is not None:
        index = {label: i for i, label in enumerate(task.classes)}
        return values.map(lambda v: index.get(str(v), -1)).to_numpy(dtype=int)
    return (values.astype(str) == str(task.adverse)).to_numpy(dtype=int)


def adverse_index(task: Task) -> int:
    if task.classes is not None and task.adverse is not None:
        return task.classes.index(task.adverse)
    return 1


@dataclass(frozen=True)
class Split:
    """Row positions of the training part and the held-out test part."""

    train: np.ndarray
    test: np.ndarray


def holdout_split(
    frame: pd.DataFrame,
    y: np.ndarray,
    task: Task,
    test_size: float,
    seed: int,
    time_column: str | None = None,
) -> Split:
    """Held-out rows for evaluation: the newest cohorts when a time column exists, else stratified."""
    positions = np.arange(len(frame))
    if time_column is not None and time_column in frame.columns:
        order = np.argsort(frame[time_column].to_numpy(), kind="stable")
        n_test = max(1, round(len(frame) * test_size))
        return Split(train=np.sort(order[:-n_test]), test=np.sort(order[-n_test:]))
    stratify = y if task.is_classification else _regression_strata(y)
    train, test = train_test_split(positions, test_size=test_size, random_state=seed, stratify=stratify)
    return Split(train=np.sort(train), test=np.sort(test))


def _regression_strata(y: np.ndarray, bins: int = 5) -> np.ndarray:
    edges = np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1])
    return np.digitize(y, np.unique(edges))


def folds(y: np.ndarray, task: Task, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds: stratified by class (or by target quantile for regression)."""
    if task.is_classification:
        counts = (
            np.bincount(y, minlength=len(task.labels)) if len(y) else np.zeros(len(task.labels), dtype=int)
        )
        smallest = int(counts.min())
        if smallest < 2:
            rare = [label for label, n in zip(task.labels, counts, strict=False) if n < 2]
            raise TrainingError(
                f"task {task.name!r}: class(es) {rare} have fewer than 2 rows; cannot cross-validate"
            )
        k = max(2, min(n_folds, smallest))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    strata = _regression_strata(y)
    k = max(2, min(n_folds, len(y) // 2))
    if np.bincount(strata).min() >= k:
        return list(
            StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), strata)
        )
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y))))


def fit_pipeline(
    spec: DatasetSpec,
    task: Task,
    features: FeatureSet,
    kind: str,
    params: Mapping[str, object],
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int = 42,
    n_jobs: int = 1,
) -> Pipeline:
    """Fit preprocessing then the estimator (with monotone constraints by transformed name)."""
    prep = build_preprocessor(spec, features, scale=needs_scaling(kind))
    transformed = prep.fit_transform(select_features(X, features), y)
    names = [str(n) for n in transformed.columns]
    constraints = monotone_vector(names, dict(task.monotone)) if kind in MONOTONE_KINDS else None
    if task.is_classification and kind in MONOTONE_KINDS and task.is_multiclass:
        constraints = None
    estimator = make_estimator(kind, task, params, monotone=constraints, seed=seed, n_jobs=n_jobs)
    estimator.fit(transformed, y)
    return Pipeline([("prep", prep), ("model", estimator)])


def out_of_fold(
    spec: DatasetSpec,
    task: Task,
    features: FeatureSet,
    kind: str,
    params: Mapping[str, object],
    X: pd.DataFrame,
    y: np.ndarray,
    fold_list: list[tuple[np.ndarray, np.ndarray]],
    seed: int = 42,
    n_jobs: int = 1,
) -> np.ndarray:
    """Out-of-fold predictions: probabilities (n, k) for classification, values (n,) otherwise."""
    n_classes = len(task.labels) if task.is_classification else 0
    oof = np.zeros((len(y), n_classes)) if n_classes else np.zeros(len(y))
    for train_idx, valid_idx in fold_list:
        model = fit_pipeline(
            spec, task, features, kind, params, X.iloc[train_idx], y[train_idx], seed, n_jobs
        )
        valid = select_features(X.iloc[valid_idx], features)
        if n_classes:
            proba = np.asarray(model.predict_proba(valid), dtype=float)
            fitted_classes = list(model.named_steps["model"].classes_)
            full = np.zeros((len(valid_idx), n_classes))
            for j, cls in enumerate(fitted_classes):
                full[:, int(cls)] = proba[:, j]
            oof[valid_idx] = full
        else:
            oof[valid_idx] = np.asarray(model.predict(valid), dtype=float)
    return oof


def choose_class_weights(y: np.ndarray, proba: np.ndarray, grid: tuple[float, ...] = ()) -> list[float]:
    """Per-class multipliers on probabilities that maximise macro-F1 (multi-class decisions)."""
    from sklearn.metrics import f1_score

    k = proba.shape[1]
    steps = grid or tuple(np.round(np.arange(0.6, 2.61, 0.1), 2))
    weights = np.ones(k)
    best = f1_score(y, np.argmax(proba, axis=1), average="macro")
    for _ in range(2):
        for cls in range(k):
            for w in steps:
                trial = weights.copy()
                trial[cls] = w
                score = f1_score(y, np.argmax(proba * trial, axis=1), average="macro")
                if score > best + 1e-9:
                    best, weights = score, trial
    return [float(w) for w in weights]


def band_cutoffs(task: Task, risk: np.ndarray, y_adverse: np.ndarray) -> tuple[float, float]:
    """Risk cut-offs (medium, high) chosen for the task's stated objective on validation scores."""
    objective = task.objective
    if objective.kind == "recall" and y_adverse.sum() > 0:
        adverse_scores = np.sort(risk[y_adverse == 1])
        idx = int(np.floor((1 - objective.recall) * len(adverse_scores)))
        high = float(adverse_scores[min(idx, len(adverse_scores) - 1)])
        medium_recall = min(1.0, objective.recall + (1 - objective.recall) / 2)
        idx_m = int(np.floor((1 - medium_recall) * len(adverse_scores)))
        medium = float(adverse_scores[min(idx_m, len(adverse_scores) - 1)])
        return (min(medium, high), high)
    high = float(np.quantile(risk, 1 - objective.high_fraction))
    medium = float(np.quantile(risk, max(0.0, 1 - objective.high_fraction - objective.medium_fraction)))
    return (min(medium, high), high)


def build_risk_model(
    spec: DatasetSpec,
    task: Task,
    stage: str,
    features: FeatureSet,
    kind: str,
    params: Mapping[str, object],
    X: pd.DataFrame,
    y: np.ndarray,
    oof: np.ndarray,
    seed: int = 42,
    n_jobs: int = 1,
    calibration: str = "sigmoid",
) -> RiskModel:
    """Fit the final model on all training rows; decision rules come from out-of-fold predictions."""
    pipeline = fit_pipeline(spec, task, features, kind, params, X, y, seed, n_jobs)
    model = RiskModel(
        dataset=spec.name,
        task=task.name,
        stage=stage,
        task_type=task.type.value,
        kind=kind,
        features=list(features.raw),
        pipeline=pipeline,
        labels=list(task.labels),
        adverse_index=adverse_index(task),
        pass_mark=task.pass_mark,
        params=dict(params),
    )
    if task.is_classification:
        calibrator = ProbabilityCalibrator(method=calibration).fit(oof, y)
        calibrated = calibrator.transform(oof)
        model.calibrator = calibrator
        if task.is_multiclass:
            model.class_weights = choose_class_weights(y, calibrated)
        risk = calibrated[:, model.adverse_index]
        model.band_cutoffs = band_cutoffs(task, risk, (y == model.adverse_index).astype(int))
    else:
        residuals = y - oof
        model.residual_quantiles = [float(q) for q in np.quantile(residuals, np.linspace(0, 1, 101))]
        risk = model.risk_from_value(oof)
        below = (y < (task.pass_mark or 0)).astype(int)
        model.band_cutoffs = band_cutoffs(task, risk, below)
    return model
