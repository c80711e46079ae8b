"""What-if and counterfactuals over actionable features only.

``apply_changes`` answers "what if this student's situation changed?"; ``counterfactuals`` finds
the smallest sets of changes to actionable features (the spec marks them: things an institution
or a student can change) that move the student to a lower risk band. Protected and background
features (gender, age, nationality, parents' background) are never changed: only columns marked
``actionable`` that the model uses are candidates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from retain.data.spec import ColumnType, DatasetSpec, Task
from retain.data.validate import normalize_codes
from retain.training.artifact import BANDS, RiskModel


class WhatIfError(ValueError):
    """A requested change is not allowed (not actionable, unknown code, out of range)."""


@dataclass(frozen=True)
class Change:
    """One change to one actionable feature."""

    feature: str
    label: str
    before: str
    after: str
    value: float | str


@dataclass(frozen=True)
class Counterfactual:
    """A set of changes and the risk and band they lead to."""

    changes: tuple[Change, ...]
    risk: float
    band: str

    def to_dict(self) -> dict[str, object]:
        return {
            "changes": [
                {"feature": c.feature, "label": c.label, "from": c.before, "to": c.after, "value": c.value}
                for c in self.changes
            ],
            "risk_score": round(self.risk, 4),
            "risk_band": self.band,
        }


def actionable_features(spec: DatasetSpec, model: RiskModel) -> list[str]:
    return [c for c in spec.actionable if c in model.features]


def _coerce(spec: DatasetSpec, feature: str, value: object) -> float | str:
    col = spec.column(feature)
    if col.type in (ColumnType.categorical, ColumnType.string):
        code = str(normalize_codes(pd.Series([value])).iloc[0])
        if col.codes is not None and code not in col.codes:
            raise WhatIfError(f"{feature}: unknown code {value!r}; expected one of {list(col.codes)[:12]}")
        return code
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WhatIfError(f"{feature}: {value!r} is not a number") from None
    if col.type is ColumnType.boolean and number not in (0.0, 1.0):
        raise WhatIfError(f"{feature}: expected 0 or 1, got {value!r}")
    if (col.min is not None and number < col.min) or (col.max is not None and number > col.max):
        raise WhatIfError(f"{feature}: {value!r} is outside {col.min:g}..{col.max:g}")
    return number


def apply_changes(
    spec: DatasetSpec, model: RiskModel, student: pd.DataFrame, changes: dict[str, object]
) -> pd.DataFrame:
    """A copy of a one-row typed frame with actionable ``changes`` applied (validated)."""
    allowed = set(actionable_features(spec, model))
    out = student.copy()
    for feature, value in changes.items():
        if feature not in spec.column_map:
            raise WhatIfError(f"{feature}: not a column of dataset {spec.name!r}")
        if feature not in allowed:
            raise WhatIfError(
                f"{feature}: not an actionable feature of this model (allowed: {sorted(allowed)})"
            )
        out[feature] = out[feature].astype(object)
        out.loc[out.index[0], feature] = _coerce(spec, feature, value)
    return out


def _candidates(spec: DatasetSpec, task: Task, feature: str, current: Any) -> list[float | str]:
    col = spec.column(feature)
    if col.type is ColumnType.boolean:
        return [v for v in (0.0, 1.0) if pd.isna(current) or v != float(current)]
    if col.type is ColumnType.categorical:
        return [code for code in (col.codes or {}) if code != str(current)]
    base = 0.0 if current is None or pd.isna(current) else float(current)
    sign = task.monotone.get(feature)
    directions = [-sign] if sign else [1, -1]  # move the way that lowers risk when it is known
    if not task.is_classification and sign:
        directions = [sign]  # regression: raising the value lowers the risk
    span = (col.max - col.min) if col.max is not None and col.min is not None else max(abs(base), 1.0)
    steps = (
        [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
        if col.type is ColumnType.integer
        else [span * f for f in (0.05, 0.1, 0.2)]
    )
    values: list[float | str] = []
    for direction in directions:
        for step in steps:
            value = base + direction * step
            if (col.min is not None and value < col.min) or (col.max is not None and value > col.max):
                continue
            values.append(value)
    return values


def _consistent(spec: DatasetSpec, row: pd.Series) -> bool:
    """Derived ratios stay meaningful: a numerator never exceeds its denominator."""
    for d in spec.derived:
        if d.op == "ratio" and d.a in row and d.b in row:
            a, b = row[d.a], row[d.b]
            if pd.notna(a) and pd.notna(b) and float(a) > float(b):
                return False
    return True


def _band_rank(band: str) -> int:
    return BANDS.index(band)


def counterfactuals(
    spec: DatasetSpec,
    task: Task,
    model: RiskModel,
    student: pd.DataFrame,
    max_changes: int = 3,
    max_results: int = 3,
) -> list[Counterfactual]:
    """The smallest sets of actionable changes that move ``student`` (one typed row) to a lower band.

    Single changes are tried first; pairs only when no single change is enough. Results are
    ordered by number of changes, then by the risk they reach.
    """
    current = model.score(student)
    current_band = str(current.band[0])
    if _band_rank(current_band) == 0:
        return []
    row = student.iloc[0]
    singles: list[tuple[str, float | str]] = []
    for feature in actionable_features(spec, model):
        singles.extend((feature, value) for value in _candidates(spec, task, feature, row[feature]))
    found: list[Counterfactual] = []
    by_risk: list[tuple[float, tuple[str, float | str]]] = []
    for size in range(1, max_changes + 1):
        if size == 1:
            combos: list[tuple[tuple[str, float | str], ...]] = [(s,) for s in singles]
        else:
            best_singles = [s for _, s in sorted(by_risk)[:12]]
            combos = [
                combo
                for combo in itertools.combinations(best_singles, size)
                if len({f for f, _ in combo}) == size
            ]
        rows = []
        kept: list[tuple[tuple[str, float | str], ...]] = []
        for combo in combos:
            changed = row.copy()
            for feature, value in combo:
                changed[feature] = value
            if _consistent(spec, changed):
                rows.append(changed)
                kept.append(combo)
        if not rows:
            continue
        batch = pd.DataFrame(rows).reset_index(drop=True)
        scores = model.score(batch)
        for i, combo in enumerate(kept):
            risk = float(scores.risk[i])
            if size == 1:
                by_risk.append((risk, combo[0]))
            if _band_rank(str(scores.band[i])) < _band_rank(current_band):
                changes = tuple(
                    Change(
                        feature=f,
                        label=spec.column(f).display,
                        before=spec.column(f).readable(row[f]),
                        after=spec.column(f).readable(v),
                        value=v,
                    )
                    for f, v in combo
                )
                found.append(Counterfactual(changes, risk, str(scores.band[i])))
        if found:
            break
    found.sort(key=lambda c: (len(c.changes), c.risk))
    unique: list[Counterfactual] = []
    seen: set[tuple[str, ...]] = set()
    for cf in found:
        key = tuple(c.feature for c in cf.changes)
        if key not in seen:  # one suggestion per set of features, the most effective value
            seen.add(key)
            unique.append(cf)
    return unique[:max_results]


def risk_of(model: RiskModel, frame: pd.DataFrame) -> np.ndarray:
    return model.score(frame).risk
