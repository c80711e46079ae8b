"""Monitoring checks against the live store: the I/O edge around the pure drift code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retain.data.spec import SpecError, load_spec
from retain.monitoring.drift import DriftOptions, DriftReport, detect_drift, render_html
from retain.monitoring.performance import PerformanceReport, live_performance
from retain.predictor import Predictor
from retain.settings import Settings, get_settings
from retain.store.repository import Store
from retain.training import registry

_WINDOW = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` or ``2w`` as a timedelta (``ValueError`` otherwise)."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"window {text!r}: use a number and m, h, d or w (e.g. 7d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class DriftCheck:
    """A drift report with what it compared."""

    model_name: str
    model_version: int | None
    window: str
    report: DriftReport
    checked_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "window": self.window,
            "checked_at": self.checked_at.isoformat(),
            **self.report.to_dict(),
        }


def check_drift(
    dataset: str,
    task: str | None = None,
    stage: str | None = None,
    *,
    window: str | None = "7d",
    last: int | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    options: DriftOptions | None = None,
) -> DriftCheck:
    """Drift of the champion's recent traffic (a time ``window`` and/or the ``last`` N predictions)
    against the training reference kept with the model.

    Raises ``LookupError`` when there is no champion or it carries no reference (trained before
    references were kept: retrain it).
    """
    s = settings or get_settings()
    now = datetime.now(UTC)
    since = now - parse_window(window) if window else None  # a bad window fails before any I/O
    spec = load_spec(dataset)
    t = spec.task(task) if task else spec.tasks[0]
    st = stage or t.stages[-1]
    if st not in t.stages:
        raise SpecError(f"task {t.name!r} has no stage {st!r}; stages: {t.stages}")
    registry.configure(s)
    if registry.champion_version(spec.model_name(t.name, st)) is None:
        raise LookupError(f"no champion model {spec.model_name(t.name, st)!r}; train it first")
    predictor = Predictor.from_registry(dataset, t.name, st, settings=s)
    model = predictor.model
    if getattr(model, "reference", None) is None:
        raise LookupError(f"{predictor.model_name} v{predictor.version} has no drift reference; retrain it")
    assert model.reference is not None
    own = store or Store.from_settings(s)
    try:
        current = own.prediction_window(dataset, model_name=predictor.model_name, since=since, limit=last)
    finally:
        if store is None:
            own.close()
    declared = {c.name: c.type.value for c in spec.columns}
    report = detect_drift(
        model.reference,
        current,
        predictor.features,
        declared=declared,
        prediction_columns=(),
        options=options,
    )
    scores = getattr(model, "reference_scores", None)
    if scores is not None:  # outputs against their own reference: the held-out rows' scores
        report.predictions = detect_drift(scores, current, [], options=options).predictions
    label = window if window else ""
    if last:
        label = f"{label}, last {last}" if label else f"last {last}"
    return DriftCheck(predictor.model_name, predictor.version, label or "all", report, now)


def write_report(check: DriftCheck, folder: Path) -> Path:
    """Write the HTML report under ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = check.checked_at.strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"drift-{check.model_name}-{stamp}.html"
    title = f"Drift: {check.model_name} v{check.model_version}, window {check.window}"
    path.write_text(render_html(check.report, title), encoding="utf-8")
    return path


def check_performance(
    dataset: str,
    task: str | None = None,
    *,
    period: str = "M",
    window: str | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
) -> PerformanceReport:
    """Live performance of a task from the store's outcomes and the predictions before them."""
    s = settings or get_settings()
    spec = load_spec(dataset)
    t = spec.task(task) if task else spec.tasks[0]
    since = datetime.now(UTC) - parse_window(window) if window else None
    own = store or Store.from_settings(s)
    try:
        pairs = own.outcome_pairs(dataset, task=t.name, since=since)
    finally:
        if store is None:
            own.close()
    return live_performance(
        pairs,
        spec,
        t,
        period=period,
        floor=s.performance_floors.get(f"{dataset}.{t.name}"),
        max_caught_gap=s.fairness_max_gap,
    )
