"""Training runs: data in, one tracked, evaluated, gated and registered model per stage.

``train`` is the library function behind ``retain train`` and the Prefect training flow. The
pure steps (fitting, metrics) live in ``fit`` and ``evaluation``; this module sequences them and
does the I/O at the edges (data files, MLflow).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retain.data.load import load_raw
from retain.data.spec import DatasetSpec, Task, list_specs, load_spec, spec_paths
from retain.data.validate import validate_frame
from retain.data.version import frame_hash
from retain.evaluation.evaluate import evaluate_model, score_metrics
from retain.evaluation.metrics import metrics_with_ci
from retain.features.build import feature_set
from retain.settings import Settings, get_settings
from retain.training import params as tuned_params
from retain.training.artifact import RiskModel
from retain.training.fit import (
    Split,
    TrainingError,
    build_risk_model,
    encode_target,
    folds,
    holdout_split,
    out_of_fold,
)
from retain.training.gate import GateDecision, decide

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    """Knobs of a training run (defaults give the fast, reproducible default run)."""

    baselines: tuple[str, ...] = ("majority", "linear")
    test_size: float = 0.2
    importance: bool = True
    register: bool = True
    data_path: Path | None = None
    kind: str | None = None


@dataclass
class StageResult:
    """What one trained stage produced."""

    model_name: str
    dataset: str
    task: str
    stage: str
    kind: str
    n_train: int
    n_test: int
    n_features: int
    cv_metrics: dict[str, float]
    test_metrics: dict[str, dict[str, float]]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    version: int | None = None
    run_id: str | None = None
    decision: GateDecision | None = None
    seconds: float = 0.0
    tracking_seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        return {
            "model": self.model_name,
            "kind": self.kind,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "cv": self.cv_metrics,
            "test": {k: v["value"] for k, v in self.test_metrics.items()},
            "version": self.version,
            "promoted": None if self.decision is None else self.decision.promote,
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class PreparedData:
    """A validated, typed frame with its encoded target and content hash."""

    frame: pd.DataFrame
    y: np.ndarray
    data_hash: str
    dropped_unlabelled: int


def prepare(spec: DatasetSpec, task: Task, data_path: Path | None = None) -> PreparedData:
    """Load and validate the data a task needs; rows without a label are set aside."""
    raw = load_raw(spec, data_path)
    latest = task.stages[-1]
    required = [*spec.features(task, latest), task.target]
    typed, report = validate_frame(raw, spec, required=required)
    report.raise_for_errors()
    labelled = typed[task.target].notna()
    frame = typed[labelled].reset_index(drop=True)
    y = encode_target(frame, task)
    if task.is_classification and (y < 0).any():
        raise TrainingError(f"task {task.name!r}: labels outside {task.labels}")
    if len(frame) < 20:
        raise TrainingError(f"task {task.name!r}: only {len(frame)} labelled rows; need at least 20")
    return PreparedData(
        frame=frame, y=y, data_hash=frame_hash(typed), dropped_unlabelled=int((~labelled).sum())
    )


_CI_METRICS_CLF = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "pr_auc", "brier", "ece")
_CI_METRICS_REG = ("mae", "rmse", "r2")


def _test_metrics(
    task: Task, model: RiskModel, X: pd.DataFrame, y: np.ndarray, rounds: int, seed: int
) -> dict[str, dict[str, float]]:
    point = evaluate_model(model, task, X, y)
    if task.is_classification:
        proba = model.predict_proba(X)
        ci = metrics_with_ci(
            y, proba, "classification", task.labels, list(_CI_METRICS_CLF), rounds, seed=seed
        )
    else:
        ci = metrics_with_ci(
            y, model.predict_value(X), "regression", None, list(_CI_METRICS_REG), rounds, seed=seed
        )
    out = {name: {"value": float(value)} for name, value in point.items()}
    for name, entry in ci.items():
        if (name in out and name not in ("accuracy", "balanced_accuracy", "macro_f1")) or (
            name in out and not task.is_multiclass
        ):
            out[name].update({"low": entry["low"], "high": entry["high"]})
    return out


def _input_example(spec: DatasetSpec, features: list[str], seed: int) -> pd.DataFrame | None:
    """Synthetic rows for MLflow's input example (never real students)."""
    try:
        from retain.data.synth import synthesize
    except ImportError:
        return None
    synthetic = synthesize(spec, rows=5, seed=seed)
    typed, _ = validate_frame(synthetic, spec, required=features)
    return typed.reindex(columns=features)


#: Rows of training inputs kept with a model as its drift reference.
REFERENCE_ROWS = 5000


def _attach_drift_reference(model: RiskModel, frame: pd.DataFrame, X_test: pd.DataFrame, seed: int) -> None:
    """Keep a sample of the inputs (model features only: no ids) and the held-out rows' scores."""
    inputs = frame[[f for f in model.features if f in frame.columns]]
    if len(inputs) > REFERENCE_ROWS:
        inputs = inputs.sample(REFERENCE_ROWS, random_state=seed)
    model.reference = inputs.reset_index(drop=True)
    scores = model.score(X_test)
    model.reference_scores = pd.DataFrame({"risk_score": scores.risk, "risk_band": scores.band})


def train_stage(
    spec: DatasetSpec,
    task: Task,
    stage: str,
    data: PreparedData,
    split: Split,
    options: TrainOptions,
    settings: Settings,
    progress: Progress,
) -> tuple[StageResult, RiskModel, pd.DataFrame, np.ndarray]:
    """Cross-validate, fit and evaluate one stage (pure: nothing is logged or written)."""
    started = time.perf_counter()
    name = spec.model_name(task.name, stage)
    tuned = tuned_params.tuned_for(name)
    features = feature_set(spec, task, stage, drop=tuned.drop)
    X_train = data.frame.iloc[split.train].reset_index(drop=True)
    y_train = data.y[split.train]
    X_test = data.frame.iloc[split.test].reset_index(drop=True)
    y_test = data.y[split.test]
    fold_list = folds(y_train, task, settings.cv_folds, settings.seed)
    kind = options.kind or tuned.kind
    params = tuned.params if kind == tuned.kind else {}
    progress(f"{name}: {len(fold_list)}-fold CV of {kind} on {len(y_train)} rows")
    oof = out_of_fold(
        spec, task, features, kind, params, X_train, y_train, fold_list, settings.seed, settings.n_jobs
    )
    model = build_risk_model(
        spec,
        task,
        stage,
        features,
        kind,
        params,
        X_train,
        y_train,
        oof,
        settings.seed,
        settings.n_jobs,
        tuned.calibration,
    )
    if task.is_classification:
        assert model.calibrator is not None
        cv_metrics = score_metrics(task, y_train, model.calibrator.transform(oof), model.class_weights)
    else:
        cv_metrics = score_metrics(task, y_train, oof, None)
    baselines: dict[str, dict[str, float]] = {}
    for base in options.baselines:
        if base == kind:
            continue
        progress(f"{name}: baseline {base}")
        oof_b = out_of_fold(
            spec, task, features, base, {}, X_train, y_train, fold_list, settings.seed, settings.n_jobs
        )
        baselines[base] = score_metrics(task, y_train, oof_b, None)
    progress(f"{name}: evaluating on {len(y_test)} held-out rows")
    test_metrics = _test_metrics(task, model, X_test, y_test, settings.bootstrap_rounds, settings.seed)
    _attach_drift_reference(model, data.frame, X_test, settings.seed)
    model.meta.update(
        {
            "data_hash": data.data_hash,
            "n_train": len(y_train),
            "n_test": len(y_test),
            "cv_folds": len(fold_list),
            "seed": settings.seed,
            "primary_metric": task.primary_metric,
        }
    )
    result = StageResult(
        model_name=name,
        dataset=spec.name,
        task=task.name,
        stage=stage,
        kind=kind,
        n_train=len(y_train),
        n_test=len(y_test),
        n_features=len(features.raw),
        cv_metrics={k: float(v) for k, v in cv_metrics.items()},
        test_metrics=test_metrics,
        baselines=baselines,
        seconds=time.perf_counter() - started,
    )
    return result, model, X_test, y_test


def _champion_metric(name: str, task: Task, X_test: pd.DataFrame, y_test: np.ndarray) -> float | None:
    from retain.training import registry

    if registry.champion_version(name) is None:
        return None
    try:
        champion, _ = registry.load_risk_model(name)
    except Exception as exc:  # a champion that cannot load is treated as absent, loudly
        log.warning("champion of %s cannot be loaded (%s); treating as absent", name, exc)
        return None
    return float(evaluate_model(champion, task, X_test, y_test).get(task.primary_metric, np.nan))


def log_and_register(
    spec: DatasetSpec,
    task: Task,
    result: StageResult,
    model: RiskModel,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    options: TrainOptions,
    settings: Settings,
    progress: Progress,
    *,
    decision: GateDecision | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Log a trained stage to MLflow, register it, and promote it when the gate agrees.

    ``decision`` is the gate's verdict when the caller already made it (a retrain's paired test);
    by default the champion is scored on the same held-out rows and :func:`decide` rules.
    ``extra`` dicts are logged as JSON artifacts (``{name}.json``).
    """
    import mlflow

    from retain.training import registry
    from retain.training.card import write_model_card

    exp = registry.experiment_id(spec.name, settings)
    commit = registry.git_commit()
    with mlflow.start_run(experiment_id=exp, run_name=result.model_name) as run:
        result.run_id = run.info.run_id
        mlflow.set_tags(
            {
                "dataset": spec.name,
                "task": task.name,
                "stage": result.stage,
                "model_kind": result.kind,
                "data_hash": str(model.meta.get("data_hash")),
                "git_commit": commit,
            }
        )
        mlflow.log_params(
            {
                "seed": settings.seed,
                "kind": result.kind,
                "n_train": result.n_train,
                "n_test": result.n_test,
                "n_features": result.n_features,
                "cv_folds": model.meta.get("cv_folds"),
                "band_cutoffs": json.dumps([round(c, 4) for c in model.band_cutoffs]),
                **{f"hp_{k}": v for k, v in model.params.items()},
            }
        )
        mlflow.log_metrics({f"cv_{k}": v for k, v in result.cv_metrics.items() if np.isfinite(v)})
        mlflow.log_metrics(
            {f"test_{k}": v["value"] for k, v in result.test_metrics.items() if np.isfinite(v["value"])}
        )
        for base, metrics in result.baselines.items():
            mlflow.log_metrics({f"baseline_{base}_{k}": v for k, v in metrics.items() if np.isfinite(v)})
        spec_text = spec_paths().get(spec.name, settings.spec_dir / f"{spec.name}.yaml")
        if spec_text.exists():
            mlflow.log_text(spec_text.read_text(encoding="utf-8"), "spec/dataset.yaml")
        mlflow.log_dict(result.summary(), "summary.json")
        progress(f"{result.model_name}: writing the model card")
        card_dir = registry.artifact_dir()
        write_model_card(
            spec, task, result, model, X_test, y_test, card_dir, commit, importance=options.importance
        )
        mlflow.log_artifacts(str(card_dir), "model_card")
        if decision is None:
            champion_score = _champion_metric(result.model_name, task, X_test, y_test)
            candidate = result.test_metrics.get(task.primary_metric, {}).get("value", float("nan"))
            decision = decide(
                task.primary_metric, candidate, champion_score, task.greater_is_better, task.promotion_margin
            )
        result.decision = decision
        for artifact, payload in (extra or {}).items():
            mlflow.log_dict(payload, f"{artifact}.json")
        mlflow.log_dict(decision.to_dict(), "gate_decision.json")
        mlflow.set_tag("gate", "promote" if decision.promote else "keep-champion")
        progress(f"{result.model_name}: registering")
        example = _input_example(spec, model.features, settings.seed)
        version = registry.log_risk_model(model, result.model_name, input_example=example)
        result.version = version
        try:
            from mlflow import MlflowClient

            MlflowClient().set_model_version_tag(
                result.model_name, str(version), "gate", json.dumps(decision.to_dict())
            )
            if decision.promote:
                registry.set_champion(result.model_name, version)
        except Exception:
            registry.delete_version(result.model_name, version)
            result.version = None
            raise


def train(
    dataset: str,
    task: str | None = None,
    stage: str | None = None,
    options: TrainOptions | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    stage_done: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    """Train (and by default register) every requested task and stage of a dataset."""
    opts = options or TrainOptions()
    s = settings or get_settings()
    say = progress or (lambda message: log.info(message))
    spec = load_spec(dataset)
    tasks = [spec.task(task)] if task else list(spec.tasks)
    if opts.register:
        from retain.training import registry

        registry.configure(s)
    results: list[StageResult] = []
    for t in tasks:
        stages = [stage] if stage else list(t.stages)
        for st in stages:
            spec.features(t, st)
        data = prepare(spec, t, opts.data_path)
        if data.dropped_unlabelled:
            say(f"{spec.name}.{t.name}: {data.dropped_unlabelled} row(s) without a final outcome set aside")
        split = holdout_split(data.frame, data.y, t, opts.test_size, s.seed, spec.time_column)
        for st in stages:
            result, model, X_test, y_test = train_stage(spec, t, st, data, split, opts, s, say)
            if opts.register:
                started = time.perf_counter()
                log_and_register(spec, t, result, model, X_test, y_test, opts, s, say)
                result.tracking_seconds = time.perf_counter() - started
            results.append(result)
            if stage_done is not None:
                stage_done(result)
    return results


def count_stages(dataset: str | None, task: str | None = None, stage: str | None = None) -> int:
    """How many models a ``train`` (or ``train_all`` when ``dataset`` is None) call will fit."""
    s = get_settings()
    names = (
        [dataset]
        if dataset
        else [n for n in list_specs() if (s.data_dir / load_spec(n).source.file).exists()]
    )
    total = 0
    for name in names:
        spec = load_spec(name)
        for t in [spec.task(task)] if task else spec.tasks:
            total += 1 if stage else len(t.stages)
    return total


def train_all(
    options: TrainOptions | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    stage_done: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    """Every bundled dataset, task and stage whose data file is present."""
    s = settings or get_settings()
    results: list[StageResult] = []
    for name in list_specs():
        spec = load_spec(name)
        if (options is None or options.data_path is None) and not (s.data_dir / spec.source.file).exists():
            if progress:
                progress(f"{name}: no data file in {s.data_dir}; skipped")
            continue
        results.extend(train(name, options=options, settings=s, progress=progress, stage_done=stage_done))
    return results


__all__ = [
    "PreparedData",
    "StageResult",
    "TrainOptions",
    "log_and_register",
    "prepare",
    "train",
    "train_all",
]
