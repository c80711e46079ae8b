"""Live performance: stored predictions judged against the outcomes recorded later.

Pure code. ``Store.outcome_pairs`` gives each recorded outcome with the last prediction made for
that student before it; this module turns the pairs into the training metrics (the same
functions as the model card) per model version and period, group rates for every protected
column of the spec (who is flagged, who is missed), and alerts: the primary metric under a floor,
or a gap in the share of adverse outcomes caught between groups above a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from retain.data.spec import DatasetSpec, Task
from retain.evaluation.evaluate import decision_metrics
from retain.evaluation.metrics import classification_metrics, regression_metrics, slugify

#: Metrics reported per period (those a task's metrics have; the primary metric always).
SHOWN = ("roc_auc", "pr_auc", "macro_f1", "accuracy", "brier", "mae", "rmse", "r2")


@dataclass(frozen=True)
class PeriodPerformance:
    """Metrics of one model version over one period of outcomes."""

    model_version: int | None
    period: str
    n: int
    n_adverse: int
    metrics: dict[str, float]
    judged: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GroupRates:
    """How one group of a protected column fares: flagged, caught and falsely flagged shares."""

    feature: str
    group: str
    period: str
    n: int
    adverse_rate: float
    flagged_rate: float
    caught: float | None  # flagged among those with the adverse outcome (true positive rate)
    false_alarms: float | None  # flagged among the others (false positive rate)
    mean_risk: float | None = None  # mean predicted risk: against adverse_rate, the group's calibration

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PerformanceReport:
    """Live performance of a task: by version and period, by group, and the alerts raised."""

    dataset: str
    task: str
    primary_metric: str
    floor: float | None
    periods: list[PeriodPerformance] = field(default_factory=list)
    groups: list[GroupRates] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    unmatched: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "task": self.task,
            "primary_metric": self.primary_metric,
            "floor": self.floor,
            "unmatched_outcomes": self.unmatched,
            "alerts": self.alerts,
            "periods": [p.to_dict() for p in self.periods],
            "groups": [g.to_dict() for g in self.groups],
        }


def truth(task: Task, outcome: str, value: float) -> float | None:
    """The label index (classification) or value (regression) of a recorded outcome.

    ``None`` when the outcome does not say anything about this task (an unknown label).
    """
    if not task.is_classification:
        return None if np.isnan(value) else float(value)
    if task.threshold is not None:  # binary from a number: below the threshold is adverse
        return None if np.isnan(value) else float(value < task.threshold)
    labels = task.labels
    if outcome in labels:
        return float(labels.index(outcome))
    if task.classes is None and outcome:  # binary: any other known outcome is "not adverse"
        return 0.0
    return None


def _period_key(stamps: pd.Series, period: str) -> pd.Series:
    return pd.to_datetime(stamps, utc=True).dt.tz_localize(None).dt.to_period(period).astype(str)


def live_performance(
    pairs: pd.DataFrame,
    spec: DatasetSpec,
    task: Task,
    *,
    period: str = "M",
    min_outcomes: int = 30,
    min_group: int = 20,
    floor: float | None = None,
    max_caught_gap: float = 0.2,
) -> PerformanceReport:
    """Metrics per model version and period, rates per protected group, and alerts.

    Parameters
    ----------
    pairs : DataFrame
        ``Store.outcome_pairs`` rows.
    period : str, default "M"
        A pandas period alias for the outcome dates ("W", "M", "Q", "Y").
    min_outcomes : int, default 30
        Periods with fewer paired outcomes are listed but not judged (no metrics, no alert).
    min_group : int, default 20
        Smaller groups are left out of the group rates.
    floor : float, optional
        Alert when the latest judged period's primary metric is worse than this.
    max_caught_gap : float, default 0.2
        Alert when, within a period, the share of adverse outcomes flagged "high" differs
        between two groups of a protected column by more than this.
    """
    report = PerformanceReport(spec.name, task.name, task.primary_metric, floor)
    rows = pairs[pairs["task"] == task.name] if len(pairs) else pairs
    if not len(rows):
        return report
    y = [truth(task, str(o), float(v)) for o, v in zip(rows["outcome"], rows["value"], strict=True)]
    known = np.array([v is not None for v in y])
    report.unmatched = int((~known).sum())
    data = rows[known].copy()
    data["y"] = [v for v in y if v is not None]
    data["period"] = _period_key(data["recorded_at"], period)
    adverse_index = task.labels.index(task.adverse) if task.is_classification and task.adverse else 1
    if task.is_classification:
        data["adverse"] = data["y"] == adverse_index
    else:
        data["adverse"] = data["y"] < (task.pass_mark if task.pass_mark is not None else -np.inf)
    for keys, group in data.groupby(["model_version", "period"], dropna=False, sort=True):
        version, when = cast(tuple[Any, Any], keys)
        n = len(group)
        judged = n >= min_outcomes
        metrics = _metrics(task, group) if judged else {}
        report.periods.append(
            PeriodPerformance(
                None if version is None or version != version else int(version),
                str(when),
                n,
                int(group["adverse"].sum()),
                metrics,
                judged,
            )
        )
    judged_periods = [p for p in report.periods if p.judged and task.primary_metric in p.metrics]
    if floor is not None and judged_periods:
        latest = judged_periods[-1]
        value = latest.metrics[task.primary_metric]
        worse = value < floor if task.greater_is_better else value > floor
        if worse:
            report.alerts.append(
                f"{task.primary_metric} {value:.3f} in {latest.period} (version {latest.model_version}) "
                f"is worse than the floor {floor:.3f}"
            )
    report.groups = _group_rates(spec, data, min_group)
    for (feature, when), rates in _by(report.groups, lambda g: (g.feature, g.period)).items():
        caught = [g.caught for g in rates if g.caught is not None]
        if len(caught) >= 2 and max(caught) - min(caught) > max_caught_gap:
            low = min(rates, key=lambda g: g.caught if g.caught is not None else 1.0)
            report.alerts.append(
                f"{feature} in {when}: adverse outcomes caught range from {min(caught):.0%} to "
                f"{max(caught):.0%} across groups (lowest: {low.group}); limit {max_caught_gap:.0%}"
            )
    return report


def _metrics(task: Task, group: pd.DataFrame) -> dict[str, float]:
    if not task.is_classification:
        predicted = pd.to_numeric(group["prediction"], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(predicted)
        found = regression_metrics(group["y"].to_numpy(dtype=float)[ok], predicted[ok])
    else:
        labels = task.labels
        y = group["y"].to_numpy(dtype=int)
        proba = np.array(
            [[float((p or {}).get(label, np.nan)) for label in labels] for p in group["probabilities"]]
        )
        decided = np.array([labels.index(p) if p in labels else -1 for p in group["prediction"]])
        ok = ~np.isnan(proba).any(axis=1) & (decided >= 0)
        found = classification_metrics(y[ok], proba[ok], labels)
        found.update(decision_metrics(y[ok], decided[ok], labels))
        adverse = slugify(task.adverse or "")
        if f"recall_{adverse}" in found:
            found["recall_adverse"] = found[f"recall_{adverse}"]
    shown = {*SHOWN, task.primary_metric, "recall_adverse"}
    return {k: float(v) for k, v in found.items() if k in shown and v == v}


def _group_rates(spec: DatasetSpec, data: pd.DataFrame, min_group: int) -> list[GroupRates]:
    out: list[GroupRates] = []
    flagged = data["risk_band"] == "high"
    for feature in spec.protected:
        values = data["features"].map(lambda f, name=feature: (f or {}).get(name))
        if values.isna().all():
            continue  # not a model input: the stored rows do not carry it
        column = spec.column(feature)
        readable = values.map(
            lambda v, c=column: "unknown" if v is None else (c.codes or {}).get(str(v), str(v))
        )
        for keys, idx in data.groupby([data["period"], readable]).groups.items():
            when, group = cast(tuple[Any, Any], keys)
            rows = data.loc[idx]
            if len(rows) < min_group:
                continue
            hit = flagged.loc[idx]
            adverse = rows["adverse"].astype(bool)
            out.append(
                GroupRates(
                    feature,
                    str(group),
                    str(when),
                    len(rows),
                    float(adverse.mean()),
                    float(hit.mean()),
                    # rates over fewer than ten students are noise, not evidence
                    float(hit[adverse].mean()) if adverse.sum() >= 10 else None,
                    float(hit[~adverse].mean()) if (~adverse).sum() >= 10 else None,
                    float(pd.to_numeric(rows["risk_score"], errors="coerce").mean()),
                )
            )
    return out


def _by(items: Sequence[GroupRates], key: Any) -> dict[Any, list[GroupRates]]:
    grouped: dict[Any, list[GroupRates]] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    return grouped


def fairness_gaps(groups: Sequence[GroupRates], max_gap: float) -> list[dict[str, Any]]:
    """Per protected column and period: the spread between its groups of the share flagged, of
    adverse outcomes caught (equal opportunity) and of false alarms, and whether the caught gap
    is over ``max_gap`` (pure). Rates not given for a small group are left out of the spread."""
    out: list[dict[str, Any]] = []
    for (feature, when), rates in sorted(_by(groups, lambda g: (g.feature, g.period)).items()):
        entry: dict[str, Any] = {"feature": feature, "period": when, "groups": len(rates)}
        for name in ("flagged_rate", "caught", "false_alarms"):
            values = [(getattr(g, name), g.group) for g in rates if getattr(g, name) is not None]
            if len(values) >= 2:
                low, high = min(values), max(values)
                entry[f"{name}_gap"] = high[0] - low[0]
                entry[f"{name}_lowest"] = low[1]
                entry[f"{name}_highest"] = high[1]
        errors = [(abs(g.mean_risk - g.adverse_rate), g.group) for g in rates if g.mean_risk is not None]
        if len(errors) >= 2:
            entry["calibration_gap"] = max(errors)[0] - min(errors)[0]
            entry["calibration_worst"] = max(errors)[1]
        entry["over_limit"] = bool(entry.get("caught_gap", 0.0) > max_gap)
        out.append(entry)
    return out
