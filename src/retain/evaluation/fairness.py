"""Fairness audit: per-group error rates of flagged students and the gaps between groups.

Regression tasks use the same functions: callers pass a binary "below the pass mark" truth and
the risk scores.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from retain.data.spec import ColumnType, DatasetSpec
from retain.evaluation.metrics import expected_calibration_error

__all__ = [
    "MISSING_GROUP",
    "SMALL_GROUP",
    "bin_protected",
    "fairness_gaps",
    "group_metrics",
]

SMALL_GROUP = "other (small groups)"
"""Label of the group that collects groups smaller than ``min_group_size``."""

MISSING_GROUP = "missing"
"""Label of rows whose protected attribute is missing."""

GROUP_METRIC_COLUMNS: tuple[str, ...] = (
    "n",
    "selection_rate",
    "false_positive_rate",
    "false_negative_rate",
    "true_positive_rate",
    "base_rate",
    "mean_score",
    "roc_auc",
    "ece",
)


def _rate(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def _n(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(len(y_true))


def _selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return _rate(float(np.sum(y_pred)), float(len(y_pred)))


def _false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    negative = ~np.asarray(y_true, dtype=bool)
    return _rate(float(np.sum(np.asarray(y_pred, dtype=bool) & negative)), float(np.sum(negative)))


def _false_negative_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    positive = np.asarray(y_true, dtype=bool)
    return _rate(float(np.sum(~np.asarray(y_pred, dtype=bool) & positive)), float(np.sum(positive)))


def _true_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    positive = np.asarray(y_true, dtype=bool)
    return _rate(float(np.sum(np.asarray(y_pred, dtype=bool) & positive)), float(np.sum(positive)))


def _base_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return _rate(float(np.sum(y_true)), float(len(y_true)))


def _mean_score(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean(scores)) if len(scores) else float("nan")


def _roc_auc(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> float:
    y = np.asarray(y_true, dtype=int)
    if y.min(initial=0) == y.max(initial=0):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def _ece(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> float:
    s = np.asarray(scores, dtype=float)
    if len(s) == 0 or s.min() < 0 or s.max() > 1:
        return float("nan")
    return expected_calibration_error(np.asarray(y_true, dtype=int), s)


def _merge_small(groups: pd.Series, min_group_size: int) -> pd.Series:
    labels = groups.astype(object).where(groups.notna(), MISSING_GROUP).astype(str)
    counts = labels.value_counts()
    small = set(counts[counts < min_group_size].index)
    if small:
        labels = labels.where(~labels.isin(small), SMALL_GROUP)
    return labels


def group_metrics(
    y_true_binary: np.ndarray,
    scores: np.ndarray,
    flagged: np.ndarray,
    groups: pd.DataFrame,
    min_group_size: int = 20,
) -> pd.DataFrame:
    """Per-group rates for every protected attribute, computed with fairlearn's ``MetricFrame``.

    Groups with fewer than ``min_group_size`` rows are merged into ``"other (small groups)"``;
    if that merged group is itself still smaller than ``min_group_size`` it is left out, so no
    tiny group is ever reported. Missing attribute values form the group ``"missing"``.

    Parameters
    ----------
    y_true_binary : ndarray of shape (n,)
        1 for the adverse outcome (for regression: below the pass mark).
    scores : ndarray of shape (n,)
        Risk scores (probability of the adverse outcome).
    flagged : ndarray of shape (n,)
        1 where the student is flagged for an advisor (score above the decision threshold).
    groups : DataFrame with n rows
        One column per protected attribute holding readable group labels (see
        :func:`bin_protected`); aligned with the arrays by position.
    min_group_size : int, default 20
        Smallest group reported on its own.

    Returns
    -------
    DataFrame
        Columns ``attribute``, ``group``, ``n``, ``selection_rate``, ``false_positive_rate``,
        ``false_negative_rate``, ``true_positive_rate``, ``base_rate``, ``mean_score``,
        ``roc_auc`` and ``ece`` (``nan`` where undefined for a group, e.g. an AUC for a group
        with one outcome; ``ece`` only for scores in ``[0, 1]``).
    """
    y = np.asarray(y_true_binary).astype(int).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    f = np.asarray(flagged).astype(int).ravel()
    if not (y.shape == s.shape == f.shape) or len(groups) != y.shape[0]:
        raise ValueError("y_true_binary, scores, flagged and groups must have the same number of rows")
    metric_fns = {
        "n": _n,
        "selection_rate": _selection_rate,
        "false_positive_rate": _false_positive_rate,
        "false_negative_rate": _false_negative_rate,
        "true_positive_rate": _true_positive_rate,
        "base_rate": _base_rate,
        "mean_score": _mean_score,
        "roc_auc": _roc_auc,
        "ece": _ece,
    }
    frames: list[pd.DataFrame] = []
    for attribute in groups.columns:
        labels = _merge_small(groups[attribute].reset_index(drop=True), min_group_size)
        merged = (labels == SMALL_GROUP).to_numpy()
        mask = ~merged if int(merged.sum()) < min_group_size else np.ones(len(labels), dtype=bool)
        if not mask.any():
            continue
        frame = MetricFrame(
            metrics=metric_fns,
            y_true=y[mask],
            y_pred=f[mask],
            sensitive_features=pd.Series(labels[mask].to_numpy(), name="group"),
            sample_params={name: {"scores": s[mask]} for name in ("mean_score", "roc_auc", "ece")},
        )
        by_group = frame.by_group.reset_index()
        by_group.insert(0, "attribute", str(attribute))
        frames.append(by_group)
    if not frames:
        return pd.DataFrame(columns=["attribute", "group", *GROUP_METRIC_COLUMNS])
    table = pd.concat(frames, ignore_index=True)
    table["n"] = table["n"].astype(int)
    for col in GROUP_METRIC_COLUMNS[1:]:
        table[col] = table[col].astype(float)
    return table[["attribute", "group", *GROUP_METRIC_COLUMNS]]


def _extremes(part: pd.DataFrame, column: str) -> tuple[float, str | None, str | None]:
    values = part[column].to_numpy(dtype=float)
    groups = part["group"].astype(str).to_numpy()
    defined = ~np.isnan(values)
    if int(defined.sum()) < 2:
        return float("nan"), None, None
    values, groups = values[defined], groups[defined]
    high, low = int(np.argmax(values)), int(np.argmin(values))
    return float(values[high] - values[low]), str(groups[high]), str(groups[low])


def fairness_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Largest between-group gaps per protected attribute.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`group_metrics`.

    Returns
    -------
    DataFrame
        One row per attribute with ``n_groups``; for each of ``selection_rate``,
        ``false_positive_rate``, ``false_negative_rate`` and ``true_positive_rate`` the
        ``<metric>_gap`` (max minus min over groups) and the groups with the highest
        (``<metric>_highest``) and lowest (``<metric>_lowest``) value; and
        ``equalized_odds_difference``, the larger of the TPR and FPR gaps (fairlearn's
        definition). Gaps are ``nan`` when fewer than two groups define the metric.
    """
    rows: list[dict[str, object]] = []
    for attribute, part in table.groupby("attribute", sort=False):
        part = part.reset_index(drop=True)
        row: dict[str, object] = {"attribute": attribute, "n_groups": len(part)}
        for column in ("selection_rate", "false_positive_rate", "false_negative_rate", "true_positive_rate"):
            gap, high, low = _extremes(part, column)
            row[f"{column}_gap"] = gap
            row[f"{column}_highest"] = high
            row[f"{column}_lowest"] = low
        gaps = [
            g for g in (row["true_positive_rate_gap"], row["false_positive_rate_gap"]) if isinstance(g, float)
        ]
        finite = [g for g in gaps if not np.isnan(g)]
        row["equalized_odds_difference"] = max(finite) if finite else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _numeric_bins(values: pd.Series, max_bins: int = 4) -> pd.Series:
    """Readable bins for a numeric attribute (e.g. ``"17-19"``, ``"20-24"``, ``"25+"``)."""
    numeric = pd.to_numeric(values, errors="coerce")
    present = numeric.dropna()
    out = pd.Series(MISSING_GROUP, index=values.index, dtype=object)
    if present.empty:
        return out
    integral = bool(np.all(np.equal(np.mod(present.to_numpy(dtype=float), 1), 0)))
    quantiles = np.quantile(present.to_numpy(dtype=float), np.linspace(0, 1, max_bins + 1)[1:-1])
    lowest = float(present.min())
    if integral:
        cuts = sorted({float(np.ceil(q)) for q in quantiles if np.ceil(q) > lowest})
    else:
        cuts = sorted({float(f"{q:.3g}") for q in quantiles if float(f"{q:.3g}") > lowest})
    bin_index = np.searchsorted(np.asarray(cuts), present.to_numpy(dtype=float), side="right")
    starts = [lowest, *cuts]

    def _fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    names: list[str] = []
    for i, start in enumerate(starts):
        if i == len(starts) - 1:
            single = not cuts and float(present.max()) == start
            names.append(_fmt(start) if single else f"{_fmt(start)}+")
        elif integral:
            end = starts[i + 1] - 1
            names.append(_fmt(start) if end <= start else f"{_fmt(start)}-{_fmt(end)}")
        else:
            names.append(f"{_fmt(start)} to <{_fmt(starts[i + 1])}")
    out.loc[present.index] = pd.Series([names[i] for i in bin_index], index=present.index, dtype=object)
    return out


def bin_protected(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Readable group labels for every protected column of ``spec`` found in ``frame``.

    Coded columns (categorical, or boolean with codes) map to ``Column.readable(value)``;
    numeric columns (integer, float) are cut into at most four bins at data quantiles, labelled
    like ``"17-19"``, ``"20-24"``, ``"25+"``; other columns use their string value. Missing
    values become ``"missing"``.

    Parameters
    ----------
    frame : DataFrame
        Records with canonical column names.
    spec : DatasetSpec
        The dataset spec naming the protected columns.

    Returns
    -------
    DataFrame
        Same index as ``frame``, one string column per protected column (canonical names).
    """
    out = pd.DataFrame(index=frame.index)
    for name in spec.protected:
        if name not in frame.columns:
            continue
        column = spec.column(name)
        values = frame[name]
        if column.codes is not None:
            labels = values.map(lambda v, c=column: MISSING_GROUP if pd.isna(v) else c.readable(v))
        elif column.type in (ColumnType.integer, ColumnType.float):
            labels = _numeric_bins(values)
        else:
            labels = values.map(lambda v, c=column: MISSING_GROUP if pd.isna(v) else c.readable(v))
        out[name] = labels.astype(object)
    return out
