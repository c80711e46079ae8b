"""Exploratory summaries of a dataset, driven by its spec: distributions, outcome rates by group, tests.

Pure: a typed frame (``validate_frame``'s output, or synthetic records) and a spec in, an
:class:`EdaReport` out. Every value shown to people is a readable label from the spec's
``codes``, never a raw code.

What is compared
----------------
* **Outcomes** are the tasks' target columns, one outcome per column. A numeric target (a score
  or grade) is compared as a number; each group also reports the share below the pass mark
  (a regression task's ``pass_mark``, or a classification task's ``threshold``). A categorical
  target is compared as the rate of the adverse class against all others when a binary task
  is defined on it (``adverse`` with ``negative_label``, e.g. Dropout vs Not dropout), and as
  the full class table otherwise.
* **Groups** are the spec's categorical and boolean columns (role ``feature`` or ``info``)
  other than the targets. Small groups are pooled or left out (``min_group_size``); a column
  with more than ``max_levels`` groups after that is skipped (and listed as skipped), as is one
  with a single group.
* Every outcome is compared across every group column; comparisons by a **protected**
  attribute go to their own section. One multiple-comparison correction (Holm by default)
  covers all comparisons of the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from retain.data.spec import Column, ColumnType, DatasetSpec
from retain.insights.stats import (
    CLT_MIN,
    MAX_SKEW,
    MIN_GROUP_SIZE,
    Comparison,
    ComparisonError,
    Correction,
    OutcomeKind,
    compare_categorical,
    compare_numeric,
    correct,
    pool_small_groups,
)

__all__ = [
    "CategoricalSummary",
    "EdaOptions",
    "EdaReport",
    "LevelCount",
    "NumericSummary",
    "Outcome",
    "Skipped",
    "build_eda",
    "group_columns",
    "labelled",
    "level_order",
    "outcomes",
    "summarize_categorical",
    "summarize_numeric",
]

_NUMERIC = (ColumnType.integer, ColumnType.float)
_CODED = (ColumnType.categorical, ColumnType.boolean)
_MAX_BINS = 30
_MAGNITUDE_RANK = {"large": 0, "medium": 1, "small": 2, "negligible": 3, "": 4}


@dataclass(frozen=True)
class EdaOptions:
    """Knobs of a report; the defaults are the documented ones (docs/insights.md)."""

    min_group_size: int = MIN_GROUP_SIZE
    max_levels: int = 20
    alpha: float = 0.05
    correction: Correction = "holm"
    clt_min: int = CLT_MIN
    max_skew: float = MAX_SKEW


@dataclass(frozen=True)
class Outcome:
    """A target column as the report compares it.

    ``focus`` is the readable label of the adverse class (categorical); with ``binary`` the
    comparison is ``focus`` against all others (``other_label``). ``pass_mark`` (numeric)
    makes each group report the share below it.
    """

    column: str
    label: str
    kind: OutcomeKind
    tasks: tuple[str, ...]
    focus: str | None = None
    binary: bool = False
    other_label: str | None = None
    pass_mark: float | None = None
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NumericSummary:
    """Distribution of a numeric column: moments, quantiles and a histogram (``counts`` per bin)."""

    column: str
    label: str
    n: int
    missing: int
    mean: float
    sd: float
    min: float
    q1: float
    median: float
    q3: float
    max: float
    skewness: float
    counts: tuple[int, ...]
    edges: tuple[float, ...]
    is_outcome: bool = False
    protected: bool = False


@dataclass(frozen=True)
class LevelCount:
    """One level of a coded column: readable label, students, share of those with a value."""

    label: str
    n: int
    share: float


@dataclass(frozen=True)
class CategoricalSummary:
    """Distribution of a categorical or boolean column, levels in spec order."""

    column: str
    label: str
    n: int
    missing: int
    levels: tuple[LevelCount, ...]
    is_outcome: bool = False
    protected: bool = False


@dataclass(frozen=True)
class Skipped:
    """A comparison that was not run, and why."""

    outcome: str
    group_by: str
    reason: str
    outcome_label: str = ""
    group_label: str = ""


@dataclass
class EdaReport:
    """Everything the EDA report shows; the dashboard renders the same object."""

    dataset: str
    title: str
    n_rows: int
    outcomes: list[Outcome]
    numeric: list[NumericSummary]
    categorical: list[CategoricalSummary]
    comparisons: list[Comparison]
    skipped: list[Skipped]
    options: EdaOptions = field(default_factory=EdaOptions)
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def general(self) -> list[Comparison]:
        """Comparisons by attributes that are not protected."""
        return [c for c in self.comparisons if not c.protected]

    @property
    def protected(self) -> list[Comparison]:
        """Comparisons by protected attributes (described for fairness, not levers to act on)."""
        return [c for c in self.comparisons if c.protected]

    def findings(self, protected: bool | None = False) -> list[Comparison]:
        """Significant comparisons after correction, largest effects first (by magnitude, then p).

        ``protected``: ``False`` general only, ``True`` protected only, ``None`` both.
        """
        chosen = [
            c for c in self.comparisons if c.significant and (protected is None or c.protected == protected)
        ]
        return sorted(
            chosen, key=lambda c: (_MAGNITUDE_RANK.get(c.effect.magnitude, 4), c.p_adjusted or 0.0, -c.n)
        )

    def comparisons_frame(self) -> pd.DataFrame:
        """One row per comparison: outcome, group, test, statistic, p, adjusted p, effect, sentence."""
        rows = [
            {
                "outcome": c.outcome_label,
                "group": c.group_label,
                "section": "protected" if c.protected else "general",
                "test": c.test,
                "statistic": c.statistic,
                "statistic_name": c.statistic_name,
                "df": ", ".join(f"{d:.1f}" if not float(d).is_integer() else f"{d:.0f}" for d in c.df),
                "p": c.p_value,
                "p_adjusted": c.p_adjusted,
                "effect_name": c.effect.name,
                "effect": c.effect.value,
                "effect_ci_low": c.effect.ci_low,
                "effect_ci_high": c.effect.ci_high,
                "magnitude": c.effect.magnitude,
                "n": c.n,
                "groups": len(c.groups),
                "significant": c.significant,
                "sentence": c.sentence,
            }
            for c in self.comparisons
        ]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, object]:
        """Plain types for JSON output."""
        return {
            "dataset": self.dataset,
            "title": self.title,
            "rows": self.n_rows,
            "source": self.source,
            "options": {
                "min_group_size": self.options.min_group_size,
                "max_levels": self.options.max_levels,
                "alpha": self.options.alpha,
                "correction": self.options.correction,
                "clt_min": self.options.clt_min,
                "max_skew": self.options.max_skew,
            },
            "outcomes": [
                {
                    "column": o.column,
                    "label": o.label,
                    "kind": o.kind,
                    "tasks": list(o.tasks),
                    "focus": o.focus,
                }
                for o in self.outcomes
            ],
            "findings": [c.sentence for c in self.findings(None)],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "skipped": [
                {"outcome": s.outcome, "group_by": s.group_by, "reason": s.reason} for s in self.skipped
            ],
            "numeric": [
                {k: v for k, v in vars(s).items() if k not in ("counts", "edges")} for s in self.numeric
            ],
            "categorical": [
                {
                    "column": s.column,
                    "label": s.label,
                    "n": s.n,
                    "missing": s.missing,
                    "levels": [{"label": lv.label, "n": lv.n, "share": lv.share} for lv in s.levels],
                }
                for s in self.categorical
            ],
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- labels


def level_order(column: Column) -> list[str]:
    """Readable labels of a coded column in the spec's code order (empty for uncoded columns)."""
    labels: list[str] = []
    for code in column.codes or {}:
        label = column.readable(code)
        if label not in labels:
            labels.append(label)
    return labels


def labelled(values: pd.Series, column: Column) -> pd.Series:
    """Readable labels for a coded column's values (``readable``), missing values kept missing."""
    present = values.notna()
    out = pd.Series(np.nan, index=values.index, dtype=object)
    if present.any():
        unique = pd.unique(values[present])
        mapping = {v: column.readable(v) for v in unique}
        out[present] = values[present].map(mapping)
    return out


# ----------------------------------------------------------------------------- what to compare


def outcomes(spec: DatasetSpec) -> list[Outcome]:
    """One :class:`Outcome` per task target column, in task order (see the module docstring)."""
    found: list[Outcome] = []
    seen: set[str] = set()
    for task in spec.tasks:
        if task.target in seen:
            continue
        seen.add(task.target)
        column = spec.column(task.target)
        tasks = [t for t in spec.tasks if t.target == task.target]
        names = tuple(t.name for t in tasks)
        if column.type in _NUMERIC:
            marks = [t.pass_mark for t in tasks if t.pass_mark is not None]
            marks += [t.threshold for t in tasks if t.threshold is not None]
            found.append(
                Outcome(column.name, column.display, "numeric", names, pass_mark=marks[0] if marks else None)
            )
            continue
        adverse = next((t.adverse for t in tasks if t.adverse is not None), None)
        binary_task = next((t for t in tasks if t.adverse is not None and t.classes is None), None)
        classes = tuple(level_order(column))
        focus = column.readable(adverse) if adverse is not None else (classes[0] if classes else None)
        found.append(
            Outcome(
                column.name,
                column.display,
                "categorical",
                names,
                focus=focus,
                binary=binary_task is not None,
                other_label=binary_task.negative_label if binary_task is not None else None,
                classes=classes,
            )
        )
    return found


def group_columns(spec: DatasetSpec, frame: pd.DataFrame | None = None) -> list[Column]:
    """Categorical and boolean columns to group by: role feature or info, not a target, present in ``frame``."""
    targets = {t.target for t in spec.tasks}
    return [
        c
        for c in spec.columns
        if c.type in _CODED
        and c.role in ("feature", "info")
        and c.name not in targets
        and (frame is None or c.name in frame.columns)
    ]


# ----------------------------------------------------------------------------- distributions


def _histogram(values: np.ndarray, column: Column) -> tuple[tuple[int, ...], tuple[float, ...]]:
    if values.size == 0:
        return (), ()
    low, high = float(values.min()), float(values.max())
    whole = column.type is ColumnType.integer or bool(np.all(values == np.round(values)))
    if whole and high - low <= 40:
        edges = np.arange(low - 0.5, high + 1.5)
    else:
        edges = np.histogram_bin_edges(values, bins="auto")
        if edges.size - 1 > _MAX_BINS:
            edges = np.histogram_bin_edges(values, bins=_MAX_BINS)
    counts, edges = np.histogram(values, bins=edges)
    return tuple(int(c) for c in counts), tuple(float(e) for e in edges)


def summarize_numeric(values: pd.Series, column: Column, *, is_outcome: bool = False) -> NumericSummary:
    """Moments, quantiles and a histogram of a numeric column (unit bins for small integer ranges)."""
    numbers = pd.to_numeric(values, errors="coerce")
    x = numbers.dropna().to_numpy(dtype=float)
    missing = int(numbers.isna().sum())
    if x.size == 0:
        nan = math.nan
        return NumericSummary(
            column.name, column.display, 0, missing, nan, nan, nan, nan, nan, nan, nan, nan, (), (),
            is_outcome, column.protected,
        )  # fmt: skip
    q1, median, q3 = (float(v) for v in np.quantile(x, [0.25, 0.5, 0.75]))
    skew = float(scipy_stats.skew(x, bias=False)) if x.size > 2 and np.ptp(x) > 0 else 0.0
    counts, edges = _histogram(x, column)
    return NumericSummary(
        column=column.name,
        label=column.display,
        n=int(x.size),
        missing=missing,
        mean=float(x.mean()),
        sd=float(x.std(ddof=1)) if x.size > 1 else math.nan,
        min=float(x.min()),
        q1=q1,
        median=median,
        q3=q3,
        max=float(x.max()),
        skewness=skew,
        counts=counts,
        edges=edges,
        is_outcome=is_outcome,
        protected=column.protected,
    )


def summarize_categorical(
    values: pd.Series, column: Column, *, is_outcome: bool = False
) -> CategoricalSummary:
    """Counts per readable level, spec order first (levels without students are listed with 0)."""
    labels = labelled(values, column)
    counts = labels.dropna().value_counts()
    order = level_order(column)
    ordered = order + [str(label) for label in counts.index if label not in order]
    total = int(counts.sum())
    levels = tuple(
        LevelCount(label, int(counts.get(label, 0)), float(counts.get(label, 0)) / total if total else 0.0)
        for label in ordered
    )
    return CategoricalSummary(
        column.name, column.display, total, int(labels.isna().sum()), levels, is_outcome, column.protected
    )


# ----------------------------------------------------------------------------- the report


def _outcome_values(frame: pd.DataFrame, outcome: Outcome, spec: DatasetSpec) -> pd.Series:
    raw = frame[outcome.column]
    if outcome.kind == "numeric":
        return pd.to_numeric(raw, errors="coerce").astype(float)
    return labelled(raw, spec.column(outcome.column))


def _compare(
    outcome: Outcome, values: pd.Series, groups: pd.Series, column: Column, options: EdaOptions
) -> Comparison:
    order = level_order(column)
    if outcome.kind == "numeric":
        return compare_numeric(
            values,
            groups,
            outcome=outcome.column,
            outcome_label=outcome.label,
            group_by=column.name,
            group_label=column.display,
            order=order,
            min_group_size=options.min_group_size,
            pass_mark=outcome.pass_mark,
            protected=column.protected,
            clt_min=options.clt_min,
            max_skew=options.max_skew,
        )
    return compare_categorical(
        values,
        groups,
        outcome=outcome.column,
        outcome_label=outcome.label,
        group_by=column.name,
        group_label=column.display,
        focus=outcome.focus or "",
        order=order,
        classes=outcome.classes,
        binary=outcome.binary,
        other_label=outcome.other_label,
        min_group_size=options.min_group_size,
        protected=column.protected,
    )


def _too_many_levels(groups: pd.Series, options: EdaOptions) -> int | None:
    pooled = pool_small_groups(groups.dropna(), options.min_group_size)
    return len(pooled.order) if len(pooled.order) > options.max_levels else None


def build_eda(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    options: EdaOptions | None = None,
    *,
    source: str | None = None,
    notes: Sequence[str] = (),
) -> EdaReport:
    """Summaries, outcome rates by group and corrected group comparisons of one dataset.

    Parameters
    ----------
    frame : DataFrame, shape (n_students, n_columns)
        Canonical column names; typed as ``validate_frame`` types them (codes as strings,
        numbers as floats) or as ``synthesize`` makes them. Spec columns that are absent are
        left out; a target that is absent drops its outcome.
    spec : DatasetSpec
    options : EdaOptions, optional
        Minimum group size, maximum levels, alpha and correction (defaults documented).
    source : str, optional
        Where the data came from, for the report's header.
    notes : sequence of str
        Extra lines for the report (e.g. validation warnings).

    Returns
    -------
    EdaReport
        Comparisons corrected together (``p_adjusted``, ``significant``, ``sentence`` filled).
    """
    options = options or EdaOptions()
    wanted = [o for o in outcomes(spec) if o.column in frame.columns]
    outcome_columns = {o.column for o in wanted}
    numeric = [
        summarize_numeric(frame[c.name], c, is_outcome=c.name in outcome_columns)
        for c in spec.columns
        if c.type in _NUMERIC and c.name in frame.columns and c.role != "id"
    ]
    categorical = [
        summarize_categorical(frame[c.name], c, is_outcome=c.name in outcome_columns)
        for c in spec.columns
        if c.type in _CODED and c.name in frame.columns and c.role != "id"
    ]
    raw: list[Comparison] = []
    skipped: list[Skipped] = []
    group_values = {c.name: labelled(frame[c.name], c) for c in group_columns(spec, frame)}
    for outcome in wanted:
        values = _outcome_values(frame, outcome, spec)
        for column in group_columns(spec, frame):
            groups = group_values[column.name]
            too_many = _too_many_levels(groups[values.notna()], options)
            if too_many is not None:
                reason = f"{too_many} groups after pooling (more than {options.max_levels})"
                skipped.append(Skipped(outcome.column, column.name, reason, outcome.label, column.display))
                continue
            try:
                raw.append(_compare(outcome, values, groups, column, options))
            except ComparisonError as exc:
                skipped.append(Skipped(outcome.column, column.name, str(exc), outcome.label, column.display))
    comparisons = correct(raw, options.correction, options.alpha)
    return EdaReport(
        dataset=spec.name,
        title=spec.title,
        n_rows=len(frame),
        outcomes=wanted,
        numeric=numeric,
        categorical=categorical,
        comparisons=comparisons,
        skipped=skipped,
        options=options,
        source=source,
        notes=list(notes),
    )
