"""Data and prediction drift: a window of recent traffic against the training reference.

Pure code (frames in, a report out). Per feature the test suits the column and the sample size,
as Evidently's defaults do:

==========================  ===================================  ==============================
column                      smaller side <= ``large_n`` rows     both sides larger
==========================  ===================================  ==============================
numeric (> 5 distinct)      two-sample Kolmogorov-Smirnov,       Wasserstein distance in units
                            drift when p < ``alpha``             of the reference's standard
                                                                 deviation > ``distance``
categorical or few values   chi-square on the category counts    Jensen-Shannon distance
                            (rare ones pooled), p < ``alpha``    (base 2; <1% ones pooled)
                                                                 > ``distance``
==========================  ===================================  ==============================

P-value tests become oversensitive with many rows (any tiny shift is "significant"), hence the
effect-size distances above ``large_n``. Missing values are compared as their own share (a feature
whose missing share moves by more than ``missing_share`` has drifted too). A feature is only
judged when both sides have at least ``min_samples`` values; the window as a whole only when the
current sample has ``min_samples`` rows, so a single record never decides drift. The dataset has
drifted when the share of drifted features reaches ``share``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class DriftOptions:
    """Thresholds of the drift tests (defaults as in the module docstring)."""

    alpha: float = 0.05
    distance: float = 0.1
    large_n: int = 1000
    min_samples: int = 100
    share: float = 0.5
    missing_share: float = 0.1


@dataclass(frozen=True)
class FeatureDrift:
    """The drift test of one column."""

    feature: str
    kind: Kind
    test: str
    statistic: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    p_value: float | None = None
    missing_reference: float = 0.0
    missing_current: float = 0.0
    judged: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftReport:
    """Drift of a window: per feature, overall, and of the model's outputs."""

    features: list[FeatureDrift]
    predictions: list[FeatureDrift]
    n_reference: int
    n_current: int
    options: DriftOptions = field(default_factory=DriftOptions)

    @property
    def enough_data(self) -> bool:
        """Whether the window is large enough to be judged at all."""
        return self.n_current >= self.options.min_samples and self.n_reference >= self.options.min_samples

    @property
    def judged(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.judged]

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.judged if f.drifted]

    @property
    def share_drifted(self) -> float:
        judged = self.judged
        return len(self.drifted) / len(judged) if judged else 0.0

    @property
    def dataset_drift(self) -> bool:
        return self.enough_data and bool(self.judged) and self.share_drifted >= self.options.share

    @property
    def prediction_drift(self) -> bool:
        return self.enough_data and any(f.drifted for f in self.predictions if f.judged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "enough_data": self.enough_data,
            "share_drifted": self.share_drifted,
            "dataset_drift": self.dataset_drift,
            "prediction_drift": self.prediction_drift,
            "drifted": self.drifted,
            "options": asdict(self.options),
            "features": [f.to_dict() for f in self.features],
            "predictions": [f.to_dict() for f in self.predictions],
        }


def column_kind(values: pd.Series, declared: str | None = None) -> Kind:
    """``categorical`` for declared categorical/boolean/string columns, text, or <= 5 distinct values."""
    if declared in ("categorical", "boolean", "string"):
        return "categorical"
    if not pd.api.types.is_numeric_dtype(values) or values.nunique(dropna=True) <= 5:
        return "categorical"
    return "numeric"


def _numeric(
    ref: np.ndarray, cur: np.ndarray, options: DriftOptions
) -> tuple[str, float, float | None, float]:
    if min(len(ref), len(cur)) <= options.large_n:
        result = stats.ks_2samp(ref, cur)
        p = float(result.pvalue)
        return "ks", float(result.statistic), p, options.alpha
    scale = float(np.std(ref))
    distance = float(stats.wasserstein_distance(ref, cur)) / (scale if scale > 0 else 1.0)
    return "wasserstein", distance, None, options.distance


def _pool_rare(
    observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pool categories expected fewer than ``min_expected`` times (the chi-square approximation
    fails on them) into one bin, itself folded into the smallest kept bin when still too small."""
    rare = expected < min_expected
    if not rare.any():
        return observed, expected
    obs = list(observed[~rare])
    exp = list(expected[~rare])
    pooled_obs, pooled_exp = float(observed[rare].sum()), float(expected[rare].sum())
    if pooled_exp >= min_expected or not exp:
        obs.append(pooled_obs)
        exp.append(pooled_exp)
    else:
        smallest = int(np.argmin(exp))
        obs[smallest] += pooled_obs
        exp[smallest] += pooled_exp
    return np.asarray(obs, dtype=float), np.asarray(exp, dtype=float)


def _pool_like(counts: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> np.ndarray:
    """Pool ``counts`` exactly as ``_pool_rare`` pools the current sample with ``expected``."""
    pooled, _ = _pool_rare(counts, expected, min_expected)
    return pooled


def _categorical(
    ref: pd.Series, cur: pd.Series, options: DriftOptions
) -> tuple[str, float, float | None, float]:
    ref_counts = ref.astype(str).value_counts()
    cur_counts = cur.astype(str).value_counts()
    categories = ref_counts.index.union(cur_counts.index)
    r = ref_counts.reindex(categories, fill_value=0).to_numpy(dtype=float)
    c = cur_counts.reindex(categories, fill_value=0).to_numpy(dtype=float)
    if min(len(ref), len(cur)) <= options.large_n:
        if len(categories) < 2:
            return "chi2", 0.0, 1.0, options.alpha
        # Homogeneity of the two samples (a 2 x k table): both sides are samples, so the
        # reference's own noise counts too. Rare categories are pooled first.
        expected = (r + c) / (r.sum() + c.sum()) * c.sum()
        observed, _ = _pool_rare(c, expected)
        if len(observed) < 2:
            return "chi2", 0.0, 1.0, options.alpha
        pooled_ref = _pool_like(r, expected)
        statistic, p, _, _ = stats.chi2_contingency(np.vstack([pooled_ref, observed]), correction=False)
        return "chi2", float(statistic), float(p), options.alpha
    # Categories under 1% of both sides are pooled: their noise would dominate the distance.
    rare = (r / r.sum() < 0.01) & (c / c.sum() < 0.01)
    if rare.any():
        r = np.append(r[~rare], r[rare].sum())
        c = np.append(c[~rare], c[rare].sum())
    p_ref = r / r.sum()
    p_cur = c / c.sum()
    distance = float(
        np.nan_to_num(stats.entropy(p_ref, (p_ref + p_cur) / 2, base=2))
        + np.nan_to_num(stats.entropy(p_cur, (p_ref + p_cur) / 2, base=2))
    )
    return "jensen_shannon", float(np.sqrt(max(distance / 2, 0.0))), None, options.distance


def feature_drift(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    options: DriftOptions | None = None,
    declared: str | None = None,
) -> FeatureDrift:
    """Test one column; see the module docstring for the choice of test."""
    o = options or DriftOptions()
    ref = reference.dropna()
    cur = current.dropna()
    miss_ref = 1.0 - len(ref) / len(reference) if len(reference) else 0.0
    miss_cur = 1.0 - len(cur) / len(current) if len(current) else 0.0
    kind = column_kind(ref if len(ref) else reference, declared)
    if len(ref) < o.min_samples or len(cur) < o.min_samples:
        return FeatureDrift(
            name,
            kind,
            "none",
            0.0,
            0.0,
            False,
            len(ref),
            len(cur),
            missing_reference=miss_ref,
            missing_current=miss_cur,
            judged=False,
            note=f"fewer than {o.min_samples} values on one side",
        )
    if kind == "numeric":
        test, statistic, p, threshold = _numeric(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float), o)
    else:
        test, statistic, p, threshold = _categorical(ref, cur, o)
    drifted = (p < threshold) if p is not None else (statistic > threshold)
    note = ""
    if abs(miss_cur - miss_ref) > o.missing_share:
        drifted = True
        note = f"missing share moved from {miss_ref:.0%} to {miss_cur:.0%}"
    return FeatureDrift(
        name,
        kind,
        test,
        statistic,
        threshold,
        bool(drifted),
        len(ref),
        len(cur),
        p_value=p,
        missing_reference=miss_ref,
        missing_current=miss_cur,
        note=note,
    )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    *,
    declared: dict[str, str] | None = None,
    prediction_columns: Sequence[str] = ("risk_score", "risk_band"),
    options: DriftOptions | None = None,
) -> DriftReport:
    """Per-feature and prediction drift of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current : DataFrame
        Rows of the training reference and of the recent window; columns missing from one side
        are reported as not judged.
    features : sequence of str
        The model's input columns.
    declared : dict, optional
        Spec types by column (``categorical`` columns are never treated as numbers).
    prediction_columns : sequence of str
        Output columns compared when both frames have them.
    """
    o = options or DriftOptions()
    kinds = declared or {}
    out: list[FeatureDrift] = []
    for name in features:
        if name not in reference.columns or name not in current.columns:
            out.append(
                FeatureDrift(
                    name, "numeric", "none", 0.0, 0.0, False, 0, 0, judged=False, note="column absent"
                )
            )
            continue
        out.append(feature_drift(name, reference[name], current[name], o, kinds.get(name)))
    predictions = [
        feature_drift(name, reference[name], current[name], o, "categorical" if name == "risk_band" else None)
        for name in prediction_columns
        if name in reference.columns and name in current.columns
    ]
    return DriftReport(out, predictions, len(reference), len(current), o)


def render_html(report: DriftReport, title: str) -> str:
    """A self-contained HTML page of a drift report (no scripts, no external assets)."""
    from html import escape

    def rows(items: list[FeatureDrift]) -> str:
        out = []
        for f in sorted(items, key=lambda x: (not x.drifted, not x.judged, x.feature)):
            status = "drifted" if f.drifted else ("ok" if f.judged else "not judged")
            p = "" if f.p_value is None else f"{f.p_value:.3g}"
            out.append(
                f"<tr class='{status.replace(' ', '-')}'><td>{escape(f.feature)}</td><td>{f.kind}</td>"
                f"<td>{f.test}</td><td>{f.statistic:.4g}</td><td>{p}</td><td>{f.threshold:.3g}</td>"
                f"<td>{f.n_reference}</td><td>{f.n_current}</td>"
                f"<td>{f.missing_reference:.0%} / {f.missing_current:.0%}</td>"
                f"<td>{status}</td><td>{escape(f.note)}</td></tr>"
            )
        return "\n".join(out)

    head = (
        "<tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>"
        "<th>threshold</th><th>reference n</th><th>current n</th><th>missing ref / cur</th>"
        "<th>status</th><th>note</th></tr>"
    )
    verdict = (
        "not enough data to judge"
        if not report.enough_data
        else ("dataset drift" if report.dataset_drift else "no dataset drift")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 0.9rem; text-align: left; }}
tr.drifted td {{ background: #fde2e1; }} tr.not-judged td {{ color: #888; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p><strong>{verdict}</strong>: {len(report.drifted)} of {len(report.judged)} judged features drifted
({report.share_drifted:.0%}; dataset drift at {report.options.share:.0%}); prediction drift:
{"yes" if report.prediction_drift else "no"}. Reference rows: {report.n_reference}; current rows:
{report.n_current} (at least {report.options.min_samples} needed).</p>
<h2>Features</h2><table>{head}
{rows(report.features)}</table>
<h2>Predictions</h2><table>{head}
{rows(report.predictions)}</table>
</body></html>
"""
