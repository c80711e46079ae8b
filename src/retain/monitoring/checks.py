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


def store_drift(check: DriftCheck, store: Store) -> int:
    """Keep a drift check in the store (for trends and the dashboard); returns its id."""
    return store.record_drift(
        load_spec(check.model_name.split(".", 1)[0]).name,
        check.model_name,
        check.model_version,
        check.window,
        check.report.to_dict(),
        at=check.checked_at,
    )


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


@dataclass
class MonitorResult:
    """One monitoring pass over a dataset's champions: drift per model, performance per task,
    and the models whose drift or live performance calls for a retrain (with why)."""

    dataset: str
    drift: list[DriftCheck]
    performance: list[PerformanceReport]
    triggers: dict[str, list[str]]
    reports: list[Path]
    skipped: list[str]

    def to_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "drift": [
                {
                    "model_name": c.model_name,
                    "model_version": c.model_version,
                    "window": c.window,
                    "n_current": c.report.n_current,
                    "enough_data": c.report.enough_data,
                    "share_drifted": c.report.share_drifted if c.report.enough_data else None,
                    "dataset_drift": c.report.dataset_drift,
                    "prediction_drift": c.report.prediction_drift,
                    "drifted": c.report.drifted,
                }
                for c in self.drift
            ],
            "performance": [
                {"task": p.task, "alerts": p.alerts, "periods": [x.to_dict() for x in p.periods]}
                for p in self.performance
            ],
            "triggers": self.triggers,
            "reports": [str(p) for p in self.reports],
            "skipped": self.skipped,
        }


def retrain_reasons(check: DriftCheck, performance: PerformanceReport | None) -> list[str]:
    """Why a model should be retrained (pure): dataset drift, prediction drift, or a live
    performance alert of its task. Empty when nothing calls for it."""
    reasons: list[str] = []
    report = check.report
    if report.enough_data and report.dataset_drift:
        reasons.append(
            f"dataset drift: {len(report.drifted)} of {len(report.judged)} features ({report.share_drifted:.0%})"
        )
    if report.enough_data and report.prediction_drift:
        moved = [f.feature for f in report.predictions if f.drifted]
        reasons.append(f"prediction drift ({', '.join(moved)})")
    if performance is not None:
        reasons.extend(f"live performance: {alert}" for alert in performance.alerts)
    return reasons


def monitor(
    dataset: str,
    task: str | None = None,
    stage: str | None = None,
    *,
    window: str | None = "7d",
    last: int | None = None,
    period: str = "M",
    report_dir: Path | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
) -> MonitorResult:
    """Check drift of every champion of ``dataset`` (or one task or stage) and the live
    performance of its tasks; store each drift result, write its HTML report, and say which
    models call for a retrain."""
    s = settings or get_settings()
    if window:
        parse_window(window)
    spec = load_spec(dataset)
    tasks = [spec.task(task)] if task else list(spec.tasks)
    own = store or Store.from_settings(s)
    folder = report_dir or s.home / "reports"
    result = MonitorResult(dataset, [], [], {}, [], [])
    try:
        registry.configure(s)
        for t in tasks:
            stages = [stage] if stage else list(t.stages)
            names = {st: spec.model_name(t.name, st) for st in stages}
            live = [st for st, name in names.items() if registry.champion_version(name) is not None]
            result.skipped.extend(f"{names[st]}: no champion" for st in stages if st not in live)
            if not live:
                continue
            performance = check_performance(dataset, t.name, period=period, settings=s, store=own)
            result.performance.append(performance)
            for st in live:
                try:
                    check = check_drift(dataset, t.name, st, window=window, last=last, settings=s, store=own)
                except LookupError as exc:
                    result.skipped.append(f"{names[st]}: {exc}")
                    continue
                own.record_drift(
                    dataset,
                    check.model_name,
                    check.model_version,
                    check.window,
                    check.report.to_dict(),
                    at=check.checked_at,
                )
                result.drift.append(check)
                result.reports.append(write_report(check, folder))
                reasons = retrain_reasons(check, performance)
                if reasons:
                    result.triggers[check.model_name] = reasons
    finally:
        if store is None:
            own.close()
    return result
