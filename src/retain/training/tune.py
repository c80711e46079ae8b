"""Hyperparameter search with Optuna: cross-validated, pruned, within a trial and time budget.

The search is its own command (``retain tune``); its best parameters are written to
``configs/params.yaml`` so the default training run reuses them and stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from retain.data.spec import DatasetSpec, Task, load_spec
from retain.evaluation.evaluate import score_metrics
from retain.features.build import FeatureSet, feature_set, raw_column_of, select_features
from retain.settings import get_settings
from retain.training import params as tuned_params
from retain.training.fit import (
    choose_class_weights,
    encode_target,
    fit_pipeline,
    folds,
    holdout_split,
    out_of_fold,
)
from retain.training.models import DEFAULT_PARAMS
from retain.training.train import prepare

log = logging.getLogger(__name__)


def suggest(trial: object, kind: str, task: Task) -> dict[str, object]:
    """The search space of a model family."""
    t = trial  # optuna.Trial; typed loosely so optuna stays an optional import for callers
    if kind == "lightgbm":
        space: dict[str, object] = {
            "n_estimators": t.suggest_int("n_estimators", 100, 900, step=50),  # type: ignore[attr-defined]
            "learning_rate": t.suggest_float("learning_rate", 0.01, 0.12, log=True),  # type: ignore[attr-defined]
            "num_leaves": t.suggest_int("num_leaves", 4, 48, log=True),  # type: ignore[attr-defined]
            "min_child_samples": t.suggest_int("min_child_samples", 5, 80, log=True),  # type: ignore[attr-defined]
            "subsample": t.suggest_float("subsample", 0.5, 1.0),  # type: ignore[attr-defined]
            "subsample_freq": 1,
            "colsample_bytree": t.suggest_float("colsample_bytree", 0.3, 1.0),  # type: ignore[attr-defined]
            "reg_lambda": t.suggest_float("reg_lambda", 1e-3, 20.0, log=True),  # type: ignore[attr-defined]
            "reg_alpha": t.suggest_float("reg_alpha", 1e-3, 5.0, log=True),  # type: ignore[attr-defined]
        }
        if task.is_multiclass:
            space["class_weight"] = t.suggest_categorical("class_weight", [None, "balanced"])  # type: ignore[attr-defined]
        return space
    if kind == "xgboost":
        return {
            "n_estimators": t.suggest_int("n_estimators", 100, 900, step=50),  # type: ignore[attr-defined]
            "learning_rate": t.suggest_float("learning_rate", 0.01, 0.12, log=True),  # type: ignore[attr-defined]
            "max_depth": t.suggest_int("max_depth", 2, 7),  # type: ignore[attr-defined]
            "min_child_weight": t.suggest_float("min_child_weight", 0.5, 20, log=True),  # type: ignore[attr-defined]
            "subsample": t.suggest_float("subsample", 0.5, 1.0),  # type: ignore[attr-defined]
            "colsample_bytree": t.suggest_float("colsample_bytree", 0.3, 1.0),  # type: ignore[attr-defined]
            "reg_lambda": t.suggest_float("reg_lambda", 1e-3, 20.0, log=True),  # type: ignore[attr-defined]
        }
    if kind == "linear":
        return {"C": t.suggest_float("C", 1e-3, 100.0, log=True)}  # type: ignore[attr-defined]
    if kind == "forest":
        return {
            "n_estimators": t.suggest_int("n_estimators", 100, 500, step=50),  # type: ignore[attr-defined]
            "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 20, log=True),  # type: ignore[attr-defined]
            "max_features": t.suggest_float("max_features", 0.1, 0.8),  # type: ignore[attr-defined]
        }
    return dict(DEFAULT_PARAMS.get(kind, {}))


def _fold_score(task: Task, y: np.ndarray, pred: np.ndarray) -> float:
    if task.is_multiclass and task.primary_metric in {"macro_f1", "accuracy", "balanced_accuracy"}:
        weights = choose_class_weights(y, pred)
        return float(score_metrics(task, y, pred, weights)[task.primary_metric])
    return float(score_metrics(task, y, pred, None)[task.primary_metric])


def tune_stage(
    spec: DatasetSpec,
    task: Task,
    stage: str,
    kind: str = "lightgbm",
    trials: int = 50,
    timeout: float | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuned_params.TunedParams:
    """Search one model's hyperparameters by cross-validation on the training part only.

    The held-out rows that later judge the champion are split off first and never seen here.
    """
    import optuna

    settings = get_settings()
    rng_seed = settings.seed if seed is None else seed
    data = prepare(spec, task)
    split = holdout_split(data.frame, data.y, task, 0.2, settings.seed, spec.time_column)
    X = data.frame.iloc[split.train].reset_index(drop=True)
    y = encode_target(X, task)
    fold_list = folds(y, task, settings.cv_folds, settings.seed)
    features = feature_set(spec, task, stage)
    direction: Literal["maximize", "minimize"] = "maximize" if task.greater_is_better else "minimize"
    n_classes = len(task.labels) if task.is_classification else 0

    def objective(trial: optuna.Trial) -> float:
        hp = suggest(trial, kind, task)
        oof = np.zeros((len(y), n_classes)) if n_classes else np.zeros(len(y))
        seen = np.zeros(len(y), dtype=bool)
        for step, (tr, va) in enumerate(fold_list):
            model = fit_pipeline(spec, task, features, kind, hp, X.iloc[tr], y[tr], rng_seed, settings.n_jobs)
            part = select_features(X.iloc[va], features)
            oof[va] = model.predict_proba(part) if n_classes else model.predict(part)
            seen[va] = True
            interim = _fold_score(task, y[seen], oof[seen])
            trial.report(interim, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return _fold_score(task, y, oof)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=rng_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=1),
    )
    defaults = {k: v for k, v in DEFAULT_PARAMS.get(kind, {}).items() if k != "subsample_freq"}
    if defaults:
        study.enqueue_trial(defaults, skip_if_exists=True)
    study.optimize(objective, n_trials=trials, timeout=timeout, gc_after_trial=False)
    best = {**study.best_trial.params}
    if kind == "lightgbm":
        best["subsample_freq"] = 1
    drop, selected_score = select_by_importance(
        spec, task, stage, kind, best, X, y, fold_list, float(study.best_value), rng_seed, settings.n_jobs
    )
    if drop and progress:
        progress(
            f"{spec.model_name(task.name, stage)}: dropping {len(drop)} low-importance features helps CV: {drop}"
        )
    if progress:
        progress(
            f"{spec.model_name(task.name, stage)}: best CV {task.primary_metric} {selected_score:.4f} ({kind}; search best {study.best_value:.4f})"
        )
    return tuned_params.TunedParams(
        kind=kind,
        params=best,
        drop=drop,
        cv_score=selected_score,
        metric=task.primary_metric,
        trials=len(study.trials),
        tuned_at=datetime.now(UTC).strftime("%Y-%m-%d"),
    )


def _cv_score(
    spec: DatasetSpec,
    task: Task,
    features: FeatureSet,
    kind: str,
    params: dict[str, object],
    X: pd.DataFrame,
    y: np.ndarray,
    fold_list: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
    n_jobs: int,
) -> float:
    oof = out_of_fold(spec, task, features, kind, params, X, y, fold_list, seed, n_jobs)
    return _fold_score(task, y, oof)


def select_by_importance(
    spec: DatasetSpec,
    task: Task,
    stage: str,
    kind: str,
    params: dict[str, object],
    X: pd.DataFrame,
    y: np.ndarray,
    fold_list: list[tuple[np.ndarray, np.ndarray]],
    base_score: float,
    seed: int,
    n_jobs: int,
    min_gain: float = 0.002,
) -> tuple[list[str], float]:
    """Drop the least important raw features only where cross-validation shows it helps.

    Importance is the permutation-free, cheap one: the fitted model's gain (or |coefficient|)
    summed back to raw columns. Candidates drop the bottom 15%, 30% and 45%; a candidate is kept
    only when its CV score beats the full set by ``min_gain``.
    """
    features = feature_set(spec, task, stage)
    model = fit_pipeline(spec, task, features, kind, params, X, y, seed, n_jobs)
    estimator = model.named_steps["model"]
    names = [str(n) for n in model.named_steps["prep"].get_feature_names_out()]
    weights = getattr(estimator, "feature_importances_", None)
    if weights is None and hasattr(estimator, "coef_"):
        weights = np.abs(np.atleast_2d(estimator.coef_)).sum(axis=0)
    if weights is None or len(weights) != len(names):
        return [], base_score
    per_raw: dict[str, float] = dict.fromkeys(features.raw, 0.0)
    for name, weight in zip(names, weights, strict=True):
        raw = raw_column_of(name, features.raw)
        if raw in per_raw:
            per_raw[raw] += float(weight)
    protected_from_drop = set(task.monotone)
    ranked = [c for c in sorted(per_raw, key=lambda c: per_raw[c]) if c not in protected_from_drop]
    best_drop: list[str] = []
    best_score = base_score
    sign = 1.0 if task.greater_is_better else -1.0
    for share in (0.15, 0.30, 0.45):
        drop = ranked[: int(len(features.raw) * share)]
        if not drop:
            continue
        candidate = feature_set(spec, task, stage, drop=drop)
        score = _cv_score(spec, task, candidate, kind, params, X, y, fold_list, seed, n_jobs)
        if sign * (score - best_score) > min_gain:
            best_drop, best_score = drop, score
    return best_drop, best_score


def tune_many(
    dataset: str | None,
    task: str | None = None,
    stage: str | None = None,
    trials: int = 50,
    timeout: float | None = None,
    kinds: tuple[str, ...] = ("lightgbm",),
    save: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, tuned_params.TunedParams]:
    """Tune every requested stage; keep the best family per model (and save it when asked)."""
    if dataset is None:
        raise ValueError("tuning needs a dataset")
    spec = load_spec(dataset)
    out: dict[str, tuned_params.TunedParams] = {}
    for t in [spec.task(task)] if task else spec.tasks:
        for st in [stage] if stage else t.stages:
            name = spec.model_name(t.name, st)
            best: tuned_params.TunedParams | None = None
            for kind in kinds:
                found = tune_stage(spec, t, st, kind, trials, timeout, progress=progress)
                if (
                    best is None
                    or best.cv_score is None
                    or found.cv_score is None
                    or (
                        (found.cv_score > best.cv_score) == t.greater_is_better
                        and found.cv_score != best.cv_score
                    )
                ):
                    best = found
            assert best is not None
            out[name] = best
            if save:
                tuned_params.save(name, best)
    return out
