"""Scenarios for the feedback-loop demonstration: a new intake that differs from the training data.

Pure: frames in, frames out, deterministic for a seed. ``retain simulate`` (``retain.feedback_loop``)
streams the intake through the real worker, records the outcomes later, checks drift and live
performance, and retrains through the gate.

Scenarios
---------
``drift``
    A new intake under an economic shock: admission grades 0.8 standard deviations lower,
    unemployment 1.5 sd higher and GDP 1 sd lower, and one programme (the last code of the
    spec's programme column) takes a quarter of the students. The outcomes change with it (concept drift): students living away from home
    without a scholarship, and debtors, now drop out far more often than the training data says,
    so a model trained before the shock under-rates them.
``stable``
    A new intake from the training population, outcomes as before: nothing should drift and a
    retrained challenger should not beat the champion by a real margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from retain.data.spec import DatasetSpec, Task
from retain.data.synth import synthesize

SCENARIOS = ("drift", "stable")


@dataclass(frozen=True)
class Intake:
    """A simulated intake: the students as the institution sends them, and their later outcomes."""

    students: pd.DataFrame
    outcomes: pd.DataFrame


def _sd(frame: pd.DataFrame, name: str) -> float:
    values = pd.to_numeric(frame[name], errors="coerce")
    sd = float(values.std())
    return sd if np.isfinite(sd) and sd > 0 else 1.0


def _shock(students: pd.DataFrame, spec: DatasetSpec, rng: np.random.Generator) -> pd.DataFrame:
    out = students.copy()
    moves = {"admission_grade": -0.8, "unemployment_rate": 1.5, "gdp": -1.0}
    for name, size in moves.items():
        if name in out.columns:
            col = spec.column_map[name]
            shifted = out[name] + size * _sd(out, name)
            low = col.min if col.min is not None else -np.inf
            high = col.max if col.max is not None else np.inf
            out[name] = shifted.clip(low, high).round(2)
    programme = spec.programme_column
    if programme is not None and programme in out.columns:
        codes = list(spec.column_map[programme].codes or {})
        if codes:
            moved = rng.random(len(out)) < 0.25
            out.loc[moved, programme] = codes[-1]
    return out


def _new_dropout(students: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Who drops out after the shock: the pressure falls on cost, not on the old signals."""
    displaced = students.get("displaced", pd.Series(0, index=students.index)).astype(float).to_numpy()
    scholarship = students.get("scholarship_holder", pd.Series(0, index=students.index)).astype(float)
    debtor = students.get("debtor", pd.Series(0, index=students.index)).astype(float).to_numpy()
    logit = -1.6 + 2.6 * displaced * (1.0 - scholarship.to_numpy()) + 1.8 * debtor
    return rng.random(len(students)) < 1.0 / (1.0 + np.exp(-logit))


def intake(
    spec: DatasetSpec,
    task: Task,
    scenario: str,
    rows: int,
    *,
    seed: int,
    reference_seed: int,
    reference_rows: int,
) -> Intake:
    """A new intake of ``rows`` students for ``scenario`` with their eventual outcomes.

    The students come from the same synthetic population as the reference data
    (``synthesize(spec, reference_rows, reference_seed)``: the generator's relationships are
    seeded, so another seed would be another world), drawn after the reference students and
    given ids of their own; ``seed`` drives the scenario's changes.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r}: choose one of {list(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    drawn = synthesize(spec, reference_rows + rows, seed=reference_seed)
    students = drawn.iloc[reference_rows:].reset_index(drop=True)
    id_column = spec.id.column
    students[id_column] = [f"{spec.id.prefix}intake-{seed}-{n:06d}" for n in range(len(students))]
    labels = students[task.target].astype(str).to_numpy(dtype=object)
    if scenario == "drift":
        students = _shock(students, spec, rng)
        if task.adverse is not None:
            dropped = _new_dropout(students, rng)
            others = sorted({str(v) for v in labels} - {task.adverse}) or [task.negative_label or "other"]
            keep = labels != task.adverse
            fallback = np.asarray(others, dtype=object)[rng.integers(0, len(others), len(labels))]
            labels = np.where(dropped, task.adverse, np.where(keep, labels, fallback))
    outcomes = pd.DataFrame({"student_id": students[id_column].to_numpy(), "outcome": labels})
    targets = [t.target for t in spec.tasks]
    return Intake(students.drop(columns=[c for c in targets if c in students.columns]), outcomes)


__all__ = ["SCENARIOS", "Intake", "intake"]


def simulated_help(
    outcomes: pd.DataFrame,
    bands: pd.Series,
    task: Task,
    *,
    seed: int,
    share: float = 0.5,
    effect: float = 0.35,
) -> tuple[list[str], pd.DataFrame]:
    """Advisors help a random ``share`` of the flagged (medium or high) students; help turns an
    adverse outcome into the most common other one with probability ``effect`` (pure).

    Returns the helped students' ids and the outcomes after help. The help is random among the
    flagged, so the matched comparison should recover about ``effect`` times the adverse rate.
    """
    rng = np.random.default_rng(seed + 7919)
    flagged = bands.isin(["medium", "high"]).to_numpy()
    helped = flagged & (rng.random(len(outcomes)) < share)
    labels = outcomes["outcome"].astype(str).to_numpy(dtype=object)
    others = pd.Series(labels[labels != task.adverse])
    fallback = str(others.mode().iloc[0]) if len(others) else (task.negative_label or "other")
    saved = helped & (labels == task.adverse) & (rng.random(len(labels)) < effect)
    after = outcomes.assign(outcome=np.where(saved, fallback, labels))
    return [str(s) for s in outcomes["student_id"][helped]], after
