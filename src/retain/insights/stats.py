"""Group comparisons: which test, the test itself, effect sizes and multiple-comparison correction.

Pure functions on numpy arrays and pandas Series; nothing here reads a spec or writes a file.
A :class:`Comparison` holds aggregates only (group sizes, means, quantiles, rates), never rows.

Test choice
-----------
Numeric outcome (a score or grade):

* **2 groups: Welch's t-test.** It does not assume equal variances and loses almost nothing
  when they are equal, so there is no pre-test to run (pre-testing variances and then choosing
  Student's or Welch's test distorts the error rate). Effect size: Hedges' g (Cohen's d with
  the small-sample correction) with an approximate 95% interval, and the difference in means
  with its Welch interval.
* **k > 2 groups: Welch's ANOVA or Kruskal-Wallis.** Welch's ANOVA (unequal variances) when
  every group has at least ``CLT_MIN`` (30) students, so that the group means are close to
  normal, *and* the within-group residuals are not strongly skewed (``|skewness| <= MAX_SKEW``,
  1.0), so that means describe the groups well, *and* every group varies (Welch's weights are
  ``n / variance``). Otherwise Kruskal-Wallis (ranks: no normality assumption, robust to
  outliers and to piles of zeros such as a final grade of 0 for students who did not sit the
  exam). No normality test decides this: their power grows with n, so they reject harmless
  departures in large files and miss harmful ones in small groups. Effect sizes: omega squared
  for Welch's ANOVA (less biased than eta squared; computed from the one-way sums of squares;
  it can be slightly negative when there is no effect), epsilon squared ``H / (n - 1)`` for
  Kruskal-Wallis.

Categorical outcome (a class such as Dropout):

* **Chi-square test of independence** on the groups x classes table, without the continuity
  correction (so that Cramér's V is computed from the same statistic). For a 2 x 2 table with
  an expected count below 5, **Fisher's exact test** instead. Larger tables with more than 20%
  of expected counts below 5 keep the chi-square test with a note that its p-value is
  approximate. Effect size: Cramér's V; with two groups also the difference in rates of the
  focus class with Newcombe's 95% interval.

Small groups
------------
Groups with fewer than ``MIN_GROUP_SIZE`` (10) students are pooled into one "Other" group;
when the pooled group still has fewer than 10 students, those students are left out. Both are
recorded on the comparison (``pooled``, ``excluded``).

Correction
----------
**Holm** (default) across every comparison of a report. It controls the family-wise error rate
(the chance of *any* false finding) under any dependence between the tests, which matters here:
the comparisons share the same students and outcomes, and group columns are correlated with one
another (scholarship and tuition fees, for instance). Benjamini-Hochberg controls the false
discovery rate instead and is valid only under positive dependence; it is available
(``method="bh"``) for exploratory use with many comparisons. Holm is uniformly more powerful
than Bonferroni, and each finding in a report for educators should be one they can act on, so
the stricter promise is the right default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "CHI_SQUARE",
    "CLT_MIN",
    "FISHER",
    "KRUSKAL",
    "MAX_SKEW",
    "MIN_GROUP_SIZE",
    "WELCH_ANOVA",
    "WELCH_T",
    "Comparison",
    "ComparisonError",
    "Correction",
    "EffectSize",
    "GroupSummary",
    "OutcomeKind",
    "PooledGroups",
    "TestChoice",
    "adjust_p_values",
    "choose_categorical_test",
    "choose_numeric_test",
    "cohens_d",
    "compare_categorical",
    "compare_numeric",
    "correct",
    "cramers_v",
    "describe",
    "epsilon_squared",
    "eta_squared",
    "format_p",
    "hedges_g",
    "newcombe_interval",
    "omega_squared",
    "pool_small_groups",
    "welch_anova",
    "welch_t",
    "wilson_interval",
]

MIN_GROUP_SIZE = 10
"""Groups with fewer students are pooled into "Other" (or left out when still too small)."""

CLT_MIN = 30
"""Welch's ANOVA needs at least this many students in every group (else Kruskal-Wallis)."""

MAX_SKEW = 1.0
"""Welch's ANOVA needs ``|skewness|`` of the within-group residuals at most this (else Kruskal-Wallis)."""

WELCH_T = "Welch t-test"
WELCH_ANOVA = "Welch's ANOVA"
KRUSKAL = "Kruskal-Wallis test"
CHI_SQUARE = "chi-square test"
FISHER = "Fisher's exact test"

OutcomeKind = Literal["numeric", "categorical"]
Correction = Literal["holm", "bh"]

_Z95 = 1.959963984540054
_MAGNITUDES = ("negligible", "small", "medium", "large")


class ComparisonError(ValueError):
    """A comparison cannot be run (fewer than two groups left, a constant outcome, ...)."""


@dataclass(frozen=True)
class TestChoice:
    """The test picked for a comparison and the reason, in words."""

    test: str
    reason: str


@dataclass(frozen=True)
class EffectSize:
    """An effect size with its conventional magnitude and, where cheap, a 95% interval."""

    name: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    magnitude: str = ""


@dataclass(frozen=True)
class GroupSummary:
    """Aggregates of one group: size, and either the numeric outcome's distribution or class shares.

    Numeric outcomes fill ``mean`` .. ``p95`` (and ``below`` when a pass mark is known: the share
    strictly below it); categorical outcomes fill ``rate`` (share of the focus class, with a Wilson
    95% interval) and ``shares`` (every class).
    """

    label: str
    n: int
    mean: float | None = None
    sd: float | None = None
    mean_ci_low: float | None = None
    mean_ci_high: float | None = None
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    p05: float | None = None
    p95: float | None = None
    below: float | None = None
    rate: float | None = None
    rate_ci_low: float | None = None
    rate_ci_high: float | None = None
    shares: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PooledGroups:
    """Group labels after pooling small groups: NaN marks students left out."""

    labels: pd.Series
    order: tuple[str, ...]
    pooled: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """One outcome compared across the groups of one column.

    ``groups`` follow the column's level order (pooled "Other" last). With two groups,
    ``difference`` is ``groups[0] - groups[1]``: a difference in means (numeric) or in the focus
    class's rate as a proportion (categorical), with its 95% interval. ``p_adjusted``,
    ``significant`` and ``sentence`` are filled by :func:`correct`.
    """

    outcome: str
    outcome_label: str
    group_by: str
    group_label: str
    kind: OutcomeKind
    test: str
    reason: str
    statistic_name: str
    statistic: float
    df: tuple[float, ...]
    p_value: float
    effect: EffectSize
    groups: tuple[GroupSummary, ...]
    n: int
    focus: str | None = None
    difference: float | None = None
    difference_ci: tuple[float, float] | None = None
    pooled: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    note: str = ""
    protected: bool = False
    p_adjusted: float | None = None
    significant: bool | None = None
    sentence: str = ""

    def table(self) -> pd.DataFrame:
        """The groups as a frame (one row per group), ready to render."""
        rows = []
        for g in self.groups:
            row: dict[str, object] = {"group": g.label, "n": g.n}
            if self.kind == "numeric":
                row |= {"mean": g.mean, "sd": g.sd, "median": g.median, "q1": g.q1, "q3": g.q3}
                if g.below is not None:
                    row["below_pass_mark"] = g.below
            else:
                row |= {"rate": g.rate, "rate_ci_low": g.rate_ci_low, "rate_ci_high": g.rate_ci_high}
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, object]:
        """Plain types for JSON (NaN stays a float; the CLI turns it into null)."""
        return {
            "outcome": self.outcome,
            "outcome_label": self.outcome_label,
            "group_by": self.group_by,
            "group_label": self.group_label,
            "kind": self.kind,
            "test": self.test,
            "reason": self.reason,
            "statistic_name": self.statistic_name,
            "statistic": self.statistic,
            "df": list(self.df),
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "significant": self.significant,
            "effect": {
                "name": self.effect.name,
                "value": self.effect.value,
                "ci": None if self.effect.ci_low is None else [self.effect.ci_low, self.effect.ci_high],
                "magnitude": self.effect.magnitude,
            },
            "n": self.n,
            "focus": self.focus,
            "difference": self.difference,
            "difference_ci": None if self.difference_ci is None else list(self.difference_ci),
            "groups": [_group_dict(g) for g in self.groups],
            "pooled": list(self.pooled),
            "excluded": list(self.excluded),
            "note": self.note,
            "protected": self.protected,
            "sentence": self.sentence,
        }


def _group_dict(g: GroupSummary) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in GroupSummary.__dataclass_fields__:
        value = getattr(g, name)
        if name == "shares":
            if value:
                out[name] = dict(value)
        elif value is not None:
            out[name] = value
    return out


# ----------------------------------------------------------------------------- small groups


def pool_small_groups(
    groups: pd.Series, min_size: int = MIN_GROUP_SIZE, order: Sequence[str] | None = None
) -> PooledGroups:
    """Pool groups smaller than ``min_size`` into one "Other" group, or leave them out.

    Parameters
    ----------
    groups : Series of str
        Group label per student; missing values stay missing.
    min_size : int, default 10
        Smallest group kept on its own.
    order : sequence of str, optional
        Preferred order of the labels (e.g. the spec's code order); labels not in it follow,
        most frequent first.

    Returns
    -------
    PooledGroups
        ``labels`` aligned with ``groups`` (NaN where a student is left out), the kept labels
        in order (the pooled group last), and the labels pooled or excluded.
    """
    counts = groups.dropna().astype(str).value_counts()
    known = [str(o) for o in order or () if str(o) in counts.index]
    rest = [str(label) for label in counts.index if str(label) not in known]
    ordered = known + rest
    small = [label for label in ordered if counts[label] < min_size]
    kept = [label for label in ordered if counts[label] >= min_size]
    labels = groups.where(groups.isna(), groups.astype(str))
    if not small:
        return PooledGroups(labels, tuple(kept))
    if len(small) > 1 and int(counts[small].sum()) >= min_size:
        name = f"Other ({len(small)} groups under {min_size} students)"
        return PooledGroups(labels.replace(dict.fromkeys(small, name)), (*kept, name), pooled=tuple(small))
    return PooledGroups(labels.where(~labels.isin(small)), tuple(kept), excluded=tuple(small))


# ----------------------------------------------------------------------------- test choice


def _residual_skewness(groups: Sequence[np.ndarray]) -> float:
    residuals = np.concatenate([g - g.mean() for g in groups])
    if residuals.size < 3 or np.allclose(residuals, 0):
        return 0.0
    return float(stats.skew(residuals, bias=False))


def choose_numeric_test(
    groups: Sequence[np.ndarray], *, clt_min: int = CLT_MIN, max_skew: float = MAX_SKEW
) -> TestChoice:
    """The test for a numeric outcome across groups (see the module docstring for the rule).

    Parameters
    ----------
    groups : sequence of 1-D arrays
        The outcome's values per group, no missing values; at least two groups.
    clt_min : int, default 30
        Smallest group size for Welch's ANOVA.
    max_skew : float, default 1.0
        Largest ``|skewness|`` of the within-group residuals for Welch's ANOVA.
    """
    k = len(groups)
    if k < 2:
        raise ComparisonError("fewer than two groups")
    if k == 2:
        return TestChoice(WELCH_T, "two groups; Welch's test allows unequal variances")
    smallest = min(len(g) for g in groups)
    skew = _residual_skewness(groups)
    if smallest < clt_min:
        return TestChoice(
            KRUSKAL,
            f"{k} groups, the smallest has {smallest} students (under {clt_min}), so ranks, not means",
        )
    if abs(skew) > max_skew:
        return TestChoice(
            KRUSKAL,
            f"{k} groups, values skewed within groups (skewness {skew:.2f}, beyond ±{max_skew:g}), so ranks, not means",
        )
    if any(np.var(g) == 0 for g in groups):
        return TestChoice(KRUSKAL, f"{k} groups, one of which does not vary, so ranks, not means")
    return TestChoice(
        WELCH_ANOVA,
        f"{k} groups of at least {clt_min} students, within-group skewness {skew:.2f} (within ±{max_skew:g}); Welch's ANOVA allows unequal variances",
    )


def _expected(table: np.ndarray) -> np.ndarray:
    total = table.sum()
    return np.outer(table.sum(axis=1), table.sum(axis=0)) / total


def choose_categorical_test(table: np.ndarray) -> TestChoice:
    """The test for a groups x classes table of counts: chi-square, or Fisher's exact for sparse 2 x 2."""
    table = np.asarray(table, dtype=float)
    if table.ndim != 2 or min(table.shape) < 2:
        raise ComparisonError("the table needs at least two groups and two classes")
    expected = _expected(table)
    if table.shape == (2, 2) and (expected < 5).any():
        return TestChoice(FISHER, "a 2 × 2 table with an expected count below 5, so an exact test")
    return TestChoice(CHI_SQUARE, f"{table.shape[0]} groups × {table.shape[1]} classes, test of independence")


# ----------------------------------------------------------------------------- tests


def welch_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Welch's t-test of two samples: ``(t, df, two-sided p)`` with ``t`` for ``mean(a) - mean(b)``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 == 0:
        raise ComparisonError("the outcome does not vary within either group")
    t = float((a.mean() - b.mean()) / math.sqrt(se2))
    df = float(se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)))
    return t, df, float(2 * stats.t.sf(abs(t), df))


def welch_anova(groups: Sequence[np.ndarray]) -> tuple[float, float, float, float]:
    """Welch's one-way ANOVA (unequal variances): ``(F, df1, df2, p)``.

    ``w_i = n_i / s_i^2``; ``F = [sum w_i (m_i - m_w)^2 / (k - 1)] / [1 + 2 (k - 2) / (k^2 - 1) * L]``
    with ``L = sum (1 - w_i / W)^2 / (n_i - 1)``, ``df1 = k - 1`` and ``df2 = (k^2 - 1) / (3 L)``
    (Welch 1951).
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    k = len(arrays)
    n = np.array([g.size for g in arrays], dtype=float)
    means = np.array([g.mean() for g in arrays])
    variances = np.array([g.var(ddof=1) for g in arrays])
    if (variances == 0).any():
        raise ComparisonError("a group does not vary: Welch's ANOVA needs a variance per group")
    w = n / variances
    total = w.sum()
    weighted_mean = float((w * means).sum() / total)
    lam = float(((1 - w / total) ** 2 / (n - 1)).sum())
    numerator = float((w * (means - weighted_mean) ** 2).sum() / (k - 1))
    f = numerator / (1 + 2 * (k - 2) / (k**2 - 1) * lam)
    df1, df2 = float(k - 1), float((k**2 - 1) / (3 * lam))
    return f, df1, df2, float(stats.f.sf(f, df1, df2))


# ----------------------------------------------------------------------------- effect sizes


def _magnitude(value: float, cuts: tuple[float, float, float]) -> str:
    size = abs(value)
    for label, cut in zip(_MAGNITUDES[:3], cuts, strict=True):
        if size < cut:
            return label
    return _MAGNITUDES[-1]


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of ``a`` against ``b``: difference in means over the pooled standard deviation."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    if pooled == 0:
        return 0.0 if a.mean() == b.mean() else math.copysign(math.inf, a.mean() - b.mean())
    return float((a.mean() - b.mean()) / math.sqrt(pooled))


def hedges_g(a: np.ndarray, b: np.ndarray) -> EffectSize:
    """Hedges' g of ``a`` against ``b`` with an approximate 95% interval.

    ``g = J d`` with ``J = 1 - 3 / (4 (n_a + n_b) - 9)``; the interval is
    ``g +/- 1.96 sqrt((n_a + n_b) / (n_a n_b) + g^2 / (2 (n_a + n_b)))`` (Hedges & Olkin 1985).
    Magnitudes: < 0.2 negligible, < 0.5 small, < 0.8 medium, else large (Cohen 1988).
    """
    na, nb = len(a), len(b)
    g = (1 - 3 / (4 * (na + nb) - 9)) * cohens_d(a, b)
    se = math.sqrt((na + nb) / (na * nb) + g**2 / (2 * (na + nb)))
    return EffectSize("Hedges' g", g, g - _Z95 * se, g + _Z95 * se, _magnitude(g, (0.2, 0.5, 0.8)))


def _sums_of_squares(groups: Sequence[np.ndarray]) -> tuple[float, float, int, int]:
    arrays = [np.asarray(g, dtype=float) for g in groups]
    values = np.concatenate(arrays)
    grand = values.mean()
    between = float(sum(g.size * (g.mean() - grand) ** 2 for g in arrays))
    within = float(sum(((g - g.mean()) ** 2).sum() for g in arrays))
    return between, within, len(arrays), values.size


_VARIANCE_CUTS = (0.01, 0.06, 0.14)


def eta_squared(groups: Sequence[np.ndarray]) -> EffectSize:
    """Eta squared: between-group over total sum of squares (biased upwards in small samples)."""
    between, within, _, _ = _sums_of_squares(groups)
    total = between + within
    value = between / total if total > 0 else 0.0
    return EffectSize("η²", value, magnitude=_magnitude(value, _VARIANCE_CUTS))


def omega_squared(groups: Sequence[np.ndarray]) -> EffectSize:
    """Omega squared ``(SS_b - (k - 1) MS_w) / (SS_t + MS_w)``; magnitudes 0.01 / 0.06 / 0.14."""
    between, within, k, n = _sums_of_squares(groups)
    ms_within = within / (n - k)
    value = (between - (k - 1) * ms_within) / (between + within + ms_within)
    return EffectSize("ω²", float(value), magnitude=_magnitude(max(value, 0.0), _VARIANCE_CUTS))


def epsilon_squared(h: float, n: int) -> EffectSize:
    """Epsilon squared of a Kruskal-Wallis ``H`` on ``n`` values: ``H / ((n^2 - 1) / (n + 1)) = H / (n - 1)``."""
    value = float(h) / (n - 1)
    return EffectSize("ε²", value, magnitude=_magnitude(value, _VARIANCE_CUTS))


def cramers_v(table: np.ndarray) -> EffectSize:
    """Cramér's V of a table of counts, ``sqrt(chi2 / (n (min(r, c) - 1)))``, from the uncorrected chi-square.

    Magnitudes follow Cohen's w (0.1 / 0.3 / 0.5) divided by ``sqrt(min(r, c) - 1)``.
    """
    table = np.asarray(table, dtype=float)
    chi2 = float(stats.chi2_contingency(table, correction=False)[0])
    m = min(table.shape) - 1
    value = math.sqrt(chi2 / (table.sum() * m))
    cuts = (0.1 / math.sqrt(m), 0.3 / math.sqrt(m), 0.5 / math.sqrt(m))
    return EffectSize("Cramér's V", value, magnitude=_magnitude(value, cuts))


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) of ``k1 / n1 - k2 / n2``, from Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


# ----------------------------------------------------------------------------- comparisons


def _prepare(
    values: pd.Series, groups: pd.Series, min_size: int, order: Sequence[str] | None
) -> PooledGroups:
    if len(values) != len(groups):
        raise ValueError("values and groups must have the same length")
    keep = values.notna().to_numpy() & groups.notna().to_numpy()
    pooled = pool_small_groups(groups[keep], min_size, order)
    if len(pooled.order) < 2:
        left = f" (left out: {', '.join(pooled.excluded)})" if pooled.excluded else ""
        raise ComparisonError(f"fewer than two groups with at least {min_size} students{left}")
    return pooled


def _numeric_summary(label: str, x: np.ndarray, pass_mark: float | None) -> GroupSummary:
    n = x.size
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    p05, q1, median, q3, p95 = (float(v) for v in np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95]))
    mean = float(x.mean())
    below = float((x < pass_mark).mean()) if pass_mark is not None else None
    return GroupSummary(label, n, mean, sd, mean - half, mean + half, median, q1, q3, p05, p95, below=below)


def compare_numeric(
    values: pd.Series,
    groups: pd.Series,
    *,
    outcome: str,
    group_by: str,
    outcome_label: str | None = None,
    group_label: str | None = None,
    order: Sequence[str] | None = None,
    min_group_size: int = MIN_GROUP_SIZE,
    pass_mark: float | None = None,
    protected: bool = False,
    clt_min: int = CLT_MIN,
    max_skew: float = MAX_SKEW,
) -> Comparison:
    """Compare a numeric outcome across groups with the test :func:`choose_numeric_test` picks.

    Parameters
    ----------
    values : Series of float, shape (n,)
        The outcome; rows where it or the group is missing are left out.
    groups : Series of str, shape (n,)
        Readable group labels.
    outcome, group_by : str
        Column names; ``outcome_label`` and ``group_label`` are their readable labels.
    order : sequence of str, optional
        Level order of the groups (e.g. the spec's).
    min_group_size : int, default 10
        See :func:`pool_small_groups`.
    pass_mark : float, optional
        When given, each group reports the share of values below it.
    protected : bool, default False
        Whether ``group_by`` is a protected attribute (reported in its own section).

    Raises
    ------
    ComparisonError
        When fewer than two groups are left or the outcome does not vary.
    """
    pooled = _prepare(values, groups, min_group_size, order)
    frame = pd.DataFrame({"v": values.to_numpy(dtype=float), "g": groups.to_numpy(dtype=object)})
    frame = frame[values.notna().to_numpy() & groups.notna().to_numpy()]
    frame["g"] = pooled.labels.to_numpy()
    frame = frame.dropna()
    arrays = [frame.loc[frame["g"] == label, "v"].to_numpy(dtype=float) for label in pooled.order]
    if np.ptp(np.concatenate(arrays)) == 0:
        raise ComparisonError("the outcome has a single value")
    choice = choose_numeric_test(arrays, clt_min=clt_min, max_skew=max_skew)
    difference: float | None = None
    difference_ci: tuple[float, float] | None = None
    dfs: tuple[float, ...]
    if choice.test == WELCH_T:
        t, df, p = welch_t(arrays[0], arrays[1])
        statistic, statistic_name, dfs = t, "t", (df,)
        effect = hedges_g(arrays[0], arrays[1])
        difference = float(arrays[0].mean() - arrays[1].mean())
        se = math.sqrt(arrays[0].var(ddof=1) / arrays[0].size + arrays[1].var(ddof=1) / arrays[1].size)
        half = float(stats.t.ppf(0.975, df)) * se
        difference_ci = (difference - half, difference + half)
    elif choice.test == WELCH_ANOVA:
        f, df1, df2, p = welch_anova(arrays)
        statistic, statistic_name, dfs = f, "F", (df1, df2)
        effect = omega_squared(arrays)
    else:
        result = stats.kruskal(*arrays)
        statistic, statistic_name, dfs = float(result.statistic), "H", (float(len(arrays) - 1),)
        p = float(result.pvalue)
        effect = epsilon_squared(statistic, int(sum(a.size for a in arrays)))
    summaries = tuple(
        _numeric_summary(label, x, pass_mark) for label, x in zip(pooled.order, arrays, strict=True)
    )
    return Comparison(
        outcome=outcome,
        outcome_label=outcome_label or outcome,
        group_by=group_by,
        group_label=group_label or group_by,
        kind="numeric",
        test=choice.test,
        reason=choice.reason,
        statistic_name=statistic_name,
        statistic=float(statistic),
        df=dfs,
        p_value=float(p),
        effect=effect,
        groups=summaries,
        n=int(sum(a.size for a in arrays)),
        difference=difference,
        difference_ci=difference_ci,
        pooled=pooled.pooled,
        excluded=pooled.excluded,
        protected=protected,
    )


def compare_categorical(
    values: pd.Series,
    groups: pd.Series,
    *,
    outcome: str,
    group_by: str,
    focus: str,
    outcome_label: str | None = None,
    group_label: str | None = None,
    order: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    binary: bool = False,
    other_label: str | None = None,
    min_group_size: int = MIN_GROUP_SIZE,
    protected: bool = False,
) -> Comparison:
    """Compare a categorical outcome across groups: chi-square (or Fisher's exact) and Cramér's V.

    Parameters
    ----------
    values : Series of str, shape (n,)
        Readable outcome labels; rows where it or the group is missing are left out.
    groups : Series of str, shape (n,)
        Readable group labels.
    focus : str
        The class whose rate each group reports (the adverse outcome, e.g. ``Dropout``).
    classes : sequence of str, optional
        Order of the outcome classes in the table.
    binary : bool, default False
        Test ``focus`` against all other classes together (named ``other_label``) instead of
        the full table.
    min_group_size : int, default 10
        See :func:`pool_small_groups`.

    Raises
    ------
    ComparisonError
        When fewer than two groups are left or the outcome has a single class.
    """
    pooled = _prepare(values, groups, min_group_size, order)
    keep = values.notna().to_numpy() & groups.notna().to_numpy()
    outcome_values = values[keep].astype(str)
    if binary:
        other = other_label or f"Not {focus}"
        outcome_values = outcome_values.where(outcome_values == focus, other)
        class_order = [focus, other]
    else:
        seen = set(outcome_values.unique())
        class_order = [c for c in classes or () if c in seen] + sorted(seen - set(classes or ()))
    frame = pd.DataFrame({"v": outcome_values.to_numpy(), "g": pooled.labels.to_numpy()}).dropna()
    counts = pd.crosstab(frame["g"], frame["v"]).reindex(
        index=list(pooled.order), columns=class_order, fill_value=0
    )
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2:
        raise ComparisonError("the outcome has a single class among these students")
    table = counts.to_numpy(dtype=float)
    choice = choose_categorical_test(table)
    note = ""
    dfs: tuple[float, ...]
    if choice.test == FISHER:
        odds, p = stats.fisher_exact(table)
        statistic, statistic_name, dfs = float(odds), "odds ratio", ()
    else:
        chi2, p, dof, expected = stats.chi2_contingency(table, correction=False)
        statistic, statistic_name, dfs = float(chi2), "χ²", (float(dof),)
        if (expected < 5).mean() > 0.2:
            note = "more than 20% of expected counts are below 5: the p-value is approximate"
    effect = cramers_v(table)
    focus_col = counts.columns.get_loc(focus) if focus in counts.columns else None
    summaries = []
    for i, label in enumerate(pooled.order):
        row = table[i]
        n = int(row.sum())
        k = int(row[focus_col]) if focus_col is not None else 0
        low, high = wilson_interval(k, n)
        shares = {str(c): float(v / n) for c, v in zip(counts.columns, row, strict=True)}
        summaries.append(
            GroupSummary(label, n, rate=k / n, rate_ci_low=low, rate_ci_high=high, shares=shares)
        )
    difference: float | None = None
    difference_ci: tuple[float, float] | None = None
    if len(summaries) == 2:
        a, b = summaries
        ka, kb = round((a.rate or 0) * a.n), round((b.rate or 0) * b.n)
        difference = float((a.rate or 0) - (b.rate or 0))
        difference_ci = newcombe_interval(ka, a.n, kb, b.n)
    return Comparison(
        outcome=outcome,
        outcome_label=outcome_label or outcome,
        group_by=group_by,
        group_label=group_label or group_by,
        kind="categorical",
        test=choice.test,
        reason=choice.reason,
        statistic_name=statistic_name,
        statistic=statistic,
        df=dfs,
        p_value=float(p),
        effect=effect,
        groups=tuple(summaries),
        n=int(table.sum()),
        focus=focus,
        difference=difference,
        difference_ci=difference_ci,
        pooled=pooled.pooled,
        excluded=pooled.excluded,
        note=note,
        protected=protected,
    )


# ----------------------------------------------------------------------------- correction


def adjust_p_values(p_values: Iterable[float], method: Correction = "holm") -> np.ndarray:
    """Adjusted p-values, in the input order; NaN stays NaN and does not count as a test.

    ``holm``: sorted ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))`` (Holm 1979).
    ``bh``: ``p_adj(i) = min_{j >= i} min(1, m p(j) / j)`` (Benjamini & Hochberg 1995).
    """
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    ranked = p[order]
    ranks = np.arange(1, m + 1)
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - ranks + 1) * ranked))
    elif method == "bh":
        adjusted = np.minimum.accumulate(np.minimum(1.0, m * ranked / ranks)[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}: use 'holm' or 'bh'")
    out[order] = adjusted
    return out


def correct(
    comparisons: Sequence[Comparison], method: Correction = "holm", alpha: float = 0.05
) -> list[Comparison]:
    """Adjust the p-values of all ``comparisons`` together; fill ``significant`` and ``sentence``."""
    adjusted = adjust_p_values([c.p_value for c in comparisons], method)
    out = []
    for c, p in zip(comparisons, adjusted, strict=True):
        done = replace(c, p_adjusted=float(p), significant=bool(p < alpha))
        out.append(replace(done, sentence=describe(done, alpha)))
    return out


# ----------------------------------------------------------------------------- words


def format_p(p: float) -> str:
    """``< 0.001`` or the value with two significant digits, prefixed by ``=``."""
    if math.isnan(p):
        return "= n/a"
    if p < 0.001:
        return "< 0.001"
    if p >= 0.995:
        return "= 1"
    return f"= {float(f'{p:.2g}'):g}"


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _rate_name(c: Comparison) -> str:
    return f"{_lower_first(c.focus or c.outcome_label)} rate"


def _evidence(c: Comparison) -> str:
    e = c.effect
    p = c.p_adjusted if c.p_adjusted is not None else c.p_value
    which = "adjusted p" if c.p_adjusted is not None else "p"
    value = abs(e.value) if e.name == "Hedges' g" else e.value  # the words give the direction
    return f"{c.test}, {_effect_symbol(e)} = {value:.2f}, {which} {format_p(p)}"


def _effect_symbol(e: EffectSize) -> str:
    return {"Hedges' g": "g", "Cramér's V": "V"}.get(e.name, e.name)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def describe(c: Comparison, alpha: float = 0.05) -> str:
    """One plain-words sentence: what differs, by how much, which test, the effect size and p.

    Uses the adjusted p-value when there is one; a comparison that is not significant at
    ``alpha`` says there is no clear difference.
    """
    p = c.p_adjusted if c.p_adjusted is not None else c.p_value
    significant = p < alpha
    evidence = _evidence(c)
    group = _lower_first(c.group_label)
    if c.kind == "numeric":
        outcome = _lower_first(c.outcome_label)
        if len(c.groups) == 2:
            hi, lo = sorted(c.groups, key=lambda g: g.mean or 0.0, reverse=True)
            diff = (hi.mean or 0.0) - (lo.mean or 0.0)
            if significant:
                return (
                    f"{c.outcome_label} was {diff:.1f} points higher for {group} “{hi.label}” than for "
                    f"“{lo.label}” (mean {hi.mean:.1f} vs {lo.mean:.1f}; {evidence})."
                )
            return (
                f"No clear difference in {outcome} by {group} "
                f"(mean {hi.mean:.1f} for “{hi.label}”, {lo.mean:.1f} for “{lo.label}”; {evidence})."
            )
        use_median = c.test == KRUSKAL
        stat = "median" if use_median else "mean"

        def value(g: GroupSummary) -> float:
            return (g.median if use_median else g.mean) or 0.0

        hi = max(c.groups, key=value)
        lo = min(c.groups, key=value)
        spread = (
            f"highest {stat} for “{hi.label}” ({value(hi):.1f}), lowest for “{lo.label}” ({value(lo):.1f})"
        )
        if significant:
            return f"{c.outcome_label} differed by {group}: {spread} ({evidence})."
        return f"No clear difference in {outcome} by {group} ({spread}; {evidence})."
    rate = _rate_name(c)
    if len(c.groups) == 2:
        hi, lo = sorted(c.groups, key=lambda g: g.rate or 0.0, reverse=True)
        gap = 100 * ((hi.rate or 0.0) - (lo.rate or 0.0))
        if significant:
            return (
                f"The {rate} was higher for {group} “{hi.label}” than for “{lo.label}” "
                f"({_pct(hi.rate)} vs {_pct(lo.rate)}, {gap:.1f} percentage points; {evidence})."
            )
        return (
            f"No clear difference in the {rate} by {group} "
            f"({_pct(hi.rate)} for “{hi.label}”, {_pct(lo.rate)} for “{lo.label}”; {evidence})."
        )
    hi = max(c.groups, key=lambda g: g.rate or 0.0)
    lo = min(c.groups, key=lambda g: g.rate or 0.0)
    spread = f"highest for “{hi.label}” ({_pct(hi.rate)}), lowest for “{lo.label}” ({_pct(lo.rate)})"
    if significant:
        return f"The {rate} differed by {group}: {spread} ({evidence})."
    return f"No clear difference in the {rate} by {group} ({spread}; {evidence})."
