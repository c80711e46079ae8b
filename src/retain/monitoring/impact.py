"""Intervention impact: outcomes of flagged students with and without a logged intervention,
matched on their risk at the time (pure).

Advisors choose whom to help, so this is an observational comparison: students are stratified by
the risk the model gave them before the intervention, the adverse-outcome rates of helped and
not-helped students are compared within each stratum, and the differences are averaged over the
helped students (the effect on the treated). A bootstrap over students gives the interval. It
controls for the risk the model saw, nothing else; the report says so in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retain.data.spec import Task
from retain.monitoring.performance import truth

CAUTION = (
    "Students were not given interventions at random: advisors chose whom to help. The comparison "
    "matches students on the risk the model gave them at the time, but other differences (motivation, "
    "circumstances, who asked for help) may explain part of the gap. Read it as a signal worth a proper "
    "trial, not as proof that an intervention works."
)


@dataclass(frozen=True)
class Stratum:
    low: float
    high: float
    n_helped: int
    n_other: int
    adverse_helped: float | None
    adverse_other: float | None


@dataclass
class ImpactReport:
    """The matched comparison and what it rests on."""

    task: str
    n_flagged: int
    n_helped: int
    n_other: int
    n_unmatched: int
    difference: float | None  # adverse rate of helped minus matched others (negative: fewer adverse)
    ci_low: float | None
    ci_high: float | None
    simulated: bool
    strata: list[Stratum] = field(default_factory=list)
    caution: str = CAUTION

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if k != "strata"},
            "strata": [s.__dict__ for s in self.strata],
        }


def _att(
    risk: np.ndarray, helped: np.ndarray, adverse: np.ndarray, edges: np.ndarray
) -> tuple[float | None, int]:
    """Effect on the helped over strata that hold both groups; and how many helped had no match."""
    strata = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, len(edges) - 2)
    total, weight, unmatched = 0.0, 0, 0
    for b in np.unique(strata):
        inside = strata == b
        h, o = inside & helped, inside & ~helped
        if h.sum() == 0:
            continue
        if o.sum() == 0:
            unmatched += int(h.sum())
            continue
        total += h.sum() * (adverse[h].mean() - adverse[o].mean())
        weight += int(h.sum())
    return (float(total / weight) if weight else None), unmatched


def intervention_impact(
    pairs: pd.DataFrame,
    task: Task,
    *,
    flagged: tuple[str, ...] = ("high", "medium"),
    strata: int = 5,
    rounds: int = 1000,
    seed: int = 0,
    min_per_group: int = 30,
) -> ImpactReport:
    """Compare adverse-outcome rates of flagged students with and without an intervention.

    Parameters
    ----------
    pairs : DataFrame
        ``Store.outcome_pairs`` rows (with their ``interventions`` column).
    flagged : tuple of str
        The bands that count as flagged (default: medium and high).
    strata : int
        Risk strata (quantiles of the flagged students' risk at the time).
    min_per_group : int
        With fewer helped or other students, no difference is given.
    """
    rows = pairs[(pairs["task"] == task.name) & pairs["risk_band"].isin(flagged)] if len(pairs) else pairs
    labels = (
        [truth(task, str(o), float(v)) for o, v in zip(rows["outcome"], rows["value"], strict=True)]
        if len(rows)
        else []
    )
    known = np.array([v is not None for v in labels], dtype=bool)
    rows = rows[known] if len(rows) else rows
    empty = ImpactReport(task.name, len(rows), 0, 0, 0, None, None, None, False)
    if not len(rows):
        return empty
    y = np.array([v for v in labels if v is not None], dtype=float)
    if task.is_classification:
        adverse_index = task.labels.index(task.adverse) if task.adverse in task.labels else 1
        adverse = (y == adverse_index).astype(float) if task.classes else y.astype(float)
    else:
        adverse = (y < (task.pass_mark if task.pass_mark is not None else -np.inf)).astype(float)
    actions = rows["interventions"].map(lambda a: list(a) if isinstance(a, list | tuple) else [])
    helped = actions.map(bool).to_numpy()
    simulated = bool(actions.map(lambda a: any(str(x).startswith("simulated:") for x in a)).any())
    risk = rows["risk_score"].to_numpy(dtype=float)
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, strata + 1)))
    if len(edges) < 2:
        edges = np.array([risk.min(), risk.max() + 1e-9])
    report = ImpactReport(
        task.name, len(rows), int(helped.sum()), int((~helped).sum()), 0, None, None, None, simulated
    )
    bins = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, len(edges) - 2)
    for b in range(len(edges) - 1):
        inside = bins == b
        h, o = inside & helped, inside & ~helped
        report.strata.append(
            Stratum(
                float(edges[b]),
                float(edges[b + 1]),
                int(h.sum()),
                int(o.sum()),
                float(adverse[h].mean()) if h.any() else None,
                float(adverse[o].mean()) if o.any() else None,
            )
        )
    if report.n_helped < min_per_group or report.n_other < min_per_group:
        return report
    report.difference, report.n_unmatched = _att(risk, helped, adverse, edges)
    rng = np.random.default_rng(seed)
    helped_idx, other_idx = np.flatnonzero(helped), np.flatnonzero(~helped)
    draws: list[float] = []
    for _ in range(rounds):
        sample = np.concatenate(
            [rng.choice(helped_idx, len(helped_idx)), rng.choice(other_idx, len(other_idx))]
        )
        value, _ = _att(risk[sample], helped[sample], adverse[sample], edges)
        if value is not None:
            draws.append(value)
    if draws:
        report.ci_low, report.ci_high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    return report
