"""Manual promotion through the same gate as training, with an audited override."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from retain.data.load import dataset_path
from retain.data.spec import load_spec
from retain.evaluation.evaluate import evaluate_model
from retain.settings import Settings, get_settings
from retain.training import registry
from retain.training.fit import holdout_split
from retain.training.gate import GateDecision, decide
from retain.training.train import prepare


def audit(event: str, settings: Settings | None = None, **details: object) -> None:
    """Append an audit record (who, when, what) to ``RETAIN_HOME/audit.jsonl``."""
    home = (settings or get_settings()).home
    home.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(UTC).isoformat(), "who": getpass.getuser(), "event": event, **details}
    with (home / "audit.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")


def promote(
    name: str,
    version: int,
    force: bool = False,
    reason: str | None = None,
    settings: Settings | None = None,
) -> GateDecision:
    """Make ``version`` champion if the gate agrees on the held-out rows of the current data.

    With ``force`` the gate is skipped; a reason is required and the override is audited.
    ``settings`` (default: the process's) say where the registry, data and audit log are.
    """
    s = settings or get_settings()
    registry.configure(s)
    dataset, task_name, _stage = name.split(".", 2)
    spec = load_spec(dataset)
    task = spec.task(task_name)
    if force:
        if not reason:
            raise LookupError("an override needs --reason")
        old = registry.set_champion(name, version)
        audit("promote-override", s, model=name, version=version, previous=old, reason=reason)
        return GateDecision(True, f"override: {reason}", task.primary_metric, float("nan"), None, 0.0)
    data = prepare(spec, task, dataset_path(spec, s.data_dir))
    split = holdout_split(data.frame, data.y, task, 0.2, s.seed, spec.time_column)
    X = data.frame.iloc[split.test].reset_index(drop=True)
    y = data.y[split.test]
    candidate, _ = registry.load_risk_model(name, str(version))
    candidate_score = evaluate_model(candidate, task, X, y)[task.primary_metric]
    current = registry.champion_version(name)
    champion_score = None
    if current is not None:
        if current == version:
            return GateDecision(
                False,
                f"version {version} is already champion",
                task.primary_metric,
                candidate_score,
                candidate_score,
                0.0,
            )
        champion, _ = registry.load_risk_model(name, str(current))
        champion_score = evaluate_model(champion, task, X, y)[task.primary_metric]
    decision = decide(
        task.primary_metric, candidate_score, champion_score, task.greater_is_better, task.promotion_margin
    )
    if decision.promote:
        registry.set_champion(name, version)
    audit("promote", s, model=name, version=version, previous=current, decision=decision.to_dict())
    return decision
