"""Retraining from real outcomes: a challenger against the champion on the same fresh rows.

The training set is the reference data (the dataset's file, as the champion was trained on) plus
the newly labelled students: each recorded outcome joined with the inputs of the last prediction
made for that student before it. Part of the newly labelled students is held out and never
trained on; champion and challenger are both scored on exactly those rows, and the paired gate
(:func:`retain.training.gate.decide_paired`) promotes the challenger only when it is better by
the task's margin and a paired bootstrap says the gain is real. Otherwise the champion stays and
the reason, with its numbers, is recorded.

``fresh_labelled``, ``split_fresh`` and ``compare`` are pure; ``retrain`` does the I/O (store,
data file, MLflow) around them and is what the CLI, the Prefect flow and the API job call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retain.data.spec import DatasetSpec, Task, load_spec
from retain.data.validate import validate_frame
from retain.evaluation.evaluate import metric_inputs, metric_scorer
from retain.monitoring.performance import truth
from retain.settings import Settings, get_settings
from retain.store.repository import Scope, Store
from retain.training.artifact import RiskModel
from retain.training.fit import Split, TrainingError
from retain.training.gate import GateDecision, PairedComparison, decide_paired, paired_bootstrap
from retain.training.train import PreparedData, Progress, TrainOptions, prepare, train_stage

log = logging.getLogger(__name__)


class RetrainError(LookupError):
    """A retrain that cannot run (no champion, too few new outcomes); the message says why."""


@dataclass(frozen=True)
class RetrainOptions:
    """Knobs of a retrain.

    ``holdout`` is the share of the newly labelled students kept out of training to judge both
    models; ``min_fresh`` the fewest newly labelled students a retrain accepts; ``rounds`` and
    ``alpha`` configure the paired bootstrap.
    """

    holdout: float = 0.4
    min_fresh: int = 100
    rounds: int = 500
    alpha: float = 0.05
    register: bool = True
    data_path: Path | None = None
    trigger: str = "manual"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RetrainOptions:
        """Options from ``RETAIN_RETRAIN_*`` settings, with keyword overrides."""
        base = cls(
            holdout=settings.retrain_holdout,
            min_fresh=settings.retrain_min_outcomes,
            rounds=settings.retrain_bootstrap_rounds,
        )
        return replace(base, **overrides)


@dataclass(frozen=True)
class FreshRows:
    """Newly labelled students: model inputs, encoded labels and when each outcome was recorded."""

    frame: pd.DataFrame
    y: np.ndarray
    recorded_at: pd.Series
    unmatched: int = 0


@dataclass
class RetrainResult:
    """What a retrain did and why."""

    model_name: str
    champion_version: int | None
    challenger_version: int | None
    n_reference: int
    n_fresh: int
    n_fresh_train: int
    n_fresh_test: int
    metric: str
    champion_score: float
    challenger_score: float
    comparison: PairedComparison
    decision: GateDecision
    trigger: str
    decision_id: int | None = None
    seconds: float = 0.0
    cv_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "trigger": self.trigger,
            "promoted": self.promoted,
            "reason": self.decision.reason,
            "metric": self.metric,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "champion_score": self.champion_score,
            "challenger_score": self.challenger_score,
            "margin": self.decision.margin,
            "paired_test": self.comparison.to_dict(),
            "rows": {
                "reference": self.n_reference,
                "fresh": self.n_fresh,
                "fresh_train": self.n_fresh_train,
                "fresh_test": self.n_fresh_test,
            },
            "challenger_cv": self.cv_metrics,
            "decision_id": self.decision_id,
            "seconds": round(self.seconds, 1),
        }


def fresh_labelled(
    pairs: pd.DataFrame, spec: DatasetSpec, task: Task, model_name: str, features: list[str]
) -> FreshRows:
    """Outcome pairs of one model as typed model inputs and encoded labels (pure).

    ``pairs`` are ``Store.outcome_pairs`` rows; only those scored by ``model_name`` count (their
    stored inputs are that model's features). Outcomes that say nothing about the task are
    counted as ``unmatched``, never guessed.
    """
    empty = FreshRows(
        pd.DataFrame(columns=features), np.array([]), pd.Series([], dtype="datetime64[ns, UTC]")
    )
    if not len(pairs):
        return empty
    rows = pairs[(pairs["task"] == task.name) & (pairs["model_name"] == model_name)]
    labels = [truth(task, str(o), float(v)) for o, v in zip(rows["outcome"], rows["value"], strict=True)]
    known = np.array([v is not None for v in labels], dtype=bool)
    rows = rows[known] if len(rows) else rows
    if not len(rows):
        return replace(empty, unmatched=int((~known).sum()))
    inputs = pd.DataFrame([dict(f or {}) for f in rows["features"]]).reindex(columns=features)
    typed, report = validate_frame(inputs, spec, required=features)
    report.raise_for_errors()
    y = np.array([v for v in labels if v is not None])
    y = y.astype(int) if task.is_classification else y.astype(float)
    return FreshRows(
        typed.reindex(columns=features).reset_index(drop=True),
        y,
        pd.to_datetime(rows["recorded_at"], utc=True).reset_index(drop=True),
        int((~known).sum()),
    )


def split_fresh(fresh: FreshRows, task: Task, holdout: float, seed: int) -> Split:
    """Which fresh rows train and which judge: stratified by label, seeded (pure).

    Every class of a classification task keeps at least one row on each side when it can, so the
    held-out rows can score both models.
    """
    n = len(fresh.y)
    rng = np.random.default_rng(seed)
    if task.is_classification:
        test: list[int] = []
        for label in np.unique(fresh.y):
            members = np.flatnonzero(fresh.y == label)
            rng.shuffle(members)
            take = round(len(members) * holdout)
            take = min(max(take, 1), len(members) - 1) if len(members) >= 2 else 0
            test.extend(members[:take].tolist())
        test_idx = np.sort(np.asarray(test, dtype=int))
    else:
        order = rng.permutation(n)
        test_idx = np.sort(order[: round(n * holdout)])
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    return Split(train=train_idx, test=test_idx)


def compare(
    task: Task,
    champion: RiskModel,
    challenger: RiskModel,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    rounds: int,
    alpha: float,
    seed: int,
) -> tuple[float, float, PairedComparison, GateDecision]:
    """Both models on the same held-out rows, the paired bootstrap and the gate's decision (pure)."""
    metric = task.primary_metric
    score = metric_scorer(task, metric)
    champion_inputs = metric_inputs(champion, task, X)
    challenger_inputs = metric_inputs(challenger, task, X)
    champion_score = score(y, champion_inputs)
    challenger_score = score(y, challenger_inputs)
    comparison = paired_bootstrap(
        y,
        champion_inputs,
        challenger_inputs,
        score,
        task.greater_is_better,
        rounds=rounds,
        alpha=alpha,
        seed=seed,
    )
    decision = decide_paired(metric, challenger_score, champion_score, comparison, task.promotion_margin)
    return champion_score, challenger_score, comparison, decision


def _combined(reference: PreparedData, fresh: FreshRows, split: Split) -> tuple[PreparedData, Split]:
    """Reference rows then fresh rows in one frame; the split trains on the reference and the
    fresh training part and tests on the fresh held-out part only."""
    frame = pd.concat([reference.frame, fresh.frame], ignore_index=True, sort=False)
    y = np.concatenate([reference.y, fresh.y.astype(reference.y.dtype)])
    n_ref = len(reference.y)
    combined = PreparedData(frame, y, reference.data_hash, reference.dropped_unlabelled)
    return combined, Split(
        train=np.concatenate([np.arange(n_ref), n_ref + split.train]), test=n_ref + split.test
    )


def retrain(
    name: str,
    *,
    options: RetrainOptions | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    actor: str | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Retrain ``name`` (``dataset.task.stage``) with the outcomes recorded since it was trained.

    Raises ``RetrainError`` when there is no champion or too few newly labelled students.
    """
    from retain.training import registry

    started = time.perf_counter()
    s = settings or get_settings()
    opts = options or RetrainOptions.from_settings(s)
    say = progress or (lambda message: log.info(message))
    try:
        dataset, task_name, stage = name.split(".", 2)
    except ValueError:
        raise RetrainError(f"model name {name!r}: expected dataset.task.stage") from None
    spec = load_spec(dataset)
    task = spec.task(task_name)
    if stage not in task.stages:
        raise RetrainError(f"task {task.name!r} has no stage {stage!r}; stages: {task.stages}")
    registry.configure(s)
    champion_version = registry.champion_version(name)
    if champion_version is None:
        raise RetrainError(f"{name} has no champion to retrain; train it first (retain train)")
    champion, _ = registry.load_risk_model(name, str(champion_version))
    own_store = store is None
    db = store or Store.from_settings(s)
    try:
        say(f"{name}: reading recorded outcomes")
        fresh = fresh_labelled(
            db.outcome_pairs(dataset, task=task.name), spec, task, name, list(champion.features)
        )
        if len(fresh.y) < opts.min_fresh:
            raise RetrainError(
                f"{name}: {len(fresh.y)} newly labelled student(s) with a prediction before the outcome; "
                f"a retrain needs at least {opts.min_fresh}"
            )
        fresh_split = split_fresh(fresh, task, opts.holdout, s.seed)
        if len(fresh_split.test) == 0 or len(fresh_split.train) == 0:
            raise RetrainError(f"{name}: too few newly labelled students to hold some out")
        say(f"{name}: reference data and {len(fresh.y)} newly labelled students")
        reference = prepare(spec, task, opts.data_path)
        data, split = _combined(reference, fresh, fresh_split)
        train_options = TrainOptions(baselines=(), importance=False, register=opts.register)
        try:
            result, challenger, X_test, y_test = train_stage(
                spec, task, stage, data, split, train_options, s, say
            )
        except TrainingError as exc:
            raise RetrainError(f"{name}: {exc}") from None
        challenger.meta.update({"retrained_from": champion_version, "fresh_rows": len(fresh.y)})
        say(f"{name}: champion v{champion_version} against the challenger on {len(y_test)} held-out rows")
        champion_score, challenger_score, comparison, decision = compare(
            task, champion, challenger, X_test, y_test, rounds=opts.rounds, alpha=opts.alpha, seed=s.seed
        )
        outcome = RetrainResult(
            model_name=name,
            champion_version=champion_version,
            challenger_version=None,
            n_reference=len(reference.y),
            n_fresh=len(fresh.y),
            n_fresh_train=len(fresh_split.train),
            n_fresh_test=len(fresh_split.test),
            metric=task.primary_metric,
            champion_score=champion_score,
            challenger_score=challenger_score,
            comparison=comparison,
            decision=decision,
            trigger=opts.trigger,
            cv_metrics=result.cv_metrics,
        )
        if opts.register:
            from retain.training.train import log_and_register

            log_and_register(
                spec, task, result, challenger, X_test, y_test, train_options, s, say,
                decision=decision, extra={"retrain": outcome.to_dict()},
            )  # fmt: skip
            outcome.challenger_version = result.version
        outcome.seconds = time.perf_counter() - started
        outcome.decision_id = db.record_decision(
            name,
            "retrain",
            promoted=decision.promote,
            metric=decision.metric,
            reason=decision.reason,
            margin=decision.margin,
            champion_version=champion_version,
            challenger_version=outcome.challenger_version,
            champion_score=champion_score,
            challenger_score=challenger_score,
            details={"trigger": opts.trigger, **outcome.to_dict()},
            actor=actor,
        )
        db.audit(
            "model.retrain",
            Scope.admin(actor or "system"),
            dataset=dataset,
            details={"model": name, "promoted": decision.promote, "decision_id": outcome.decision_id},
        )
        say(f"{name}: {decision.reason}")
        return outcome
    finally:
        if own_store:
            db.close()


__all__ = [
    "FreshRows",
    "RetrainError",
    "RetrainOptions",
    "RetrainResult",
    "compare",
    "fresh_labelled",
    "retrain",
    "split_fresh",
]
