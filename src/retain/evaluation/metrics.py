"""Classification and regression metrics, calibration error, bootstrap intervals and thresholds.

All functions are pure: arrays in, numbers or DataFrames out. Class labels are integer indices
``0..k-1`` in model order (see :attr:`retain.data.spec.Task.labels`); for binary tasks index 1 is
the adverse (positive) class.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "CLASSIFICATION_CI_METRICS",
    "REGRESSION_CI_METRICS",
    "bootstrap_ci",
    "classification_metrics",
    "confusion",
    "expected_calibration_error",
    "metrics_with_ci",
    "regression_metrics",
    "slugify",
    "threshold_for_capacity",
    "threshold_for_recall",
]

CLASSIFICATION_CI_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "log_loss",
)
"""Default metrics given confidence intervals by :func:`metrics_with_ci` for classification."""

REGRESSION_CI_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
"""Default metrics given confidence intervals by :func:`metrics_with_ci` for regression."""

_EPS = 1e-15


def slugify(label: str) -> str:
    """Lowercase ``label`` and turn every run of non-alphanumerics into one ``_``.

    Parameters
    ----------
    label : str
        A class label such as ``"Not dropout"``.

    Returns
    -------
    str
        The slug, e.g. ``"not_dropout"``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", str(label).lower()).strip("_")
    return slug or "class"


def _proba_2d(proba: np.ndarray) -> np.ndarray:
    """Return probabilities as ``(n, k)``; a 1-D array is the positive class of a binary task."""
    arr = np.asarray(proba, dtype=float)
    if arr.ndim == 1:
        return np.column_stack([1.0 - arr, arr])
    if arr.ndim != 2:
        raise ValueError(f"proba must be 1-D or 2-D, got shape {arr.shape}")
    return arr


def _labels_int(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.dtype.kind == "f" and not (np.all(np.isfinite(y)) and np.all(np.equal(np.mod(y, 1), 0))):
        raise ValueError("y_true must hold integer class indices")
    return y.astype(int)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins.

    Binary tasks (``proba`` of shape ``(n,)`` holding the positive-class probability, or
    ``(n, 2)``) compare the positive-class probability with the observed frequency of label 1.
    Multi-class tasks (``(n, k)``, ``k > 2``) compare the top-label probability with the top-label
    accuracy. Each bin's absolute gap is weighted by its share of rows.

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        Integer class indices (binary: 1 is the positive class).
    proba : ndarray of shape (n,) or (n, k)
        Predicted probabilities.
    n_bins : int, default 10
        Number of equal-width bins on ``[0, 1]``; a probability of exactly 1 falls in the last bin.

    Returns
    -------
    float
        The ECE in ``[0, 1]``; ``nan`` for empty input.
    """
    y = _labels_int(y_true)
    p = np.asarray(proba, dtype=float)
    if p.ndim == 2 and p.shape[1] <= 2:
        p = p[:, -1]
    if p.ndim == 1:
        confidence = p
        outcome = (y == 1).astype(float)
    else:
        confidence = p.max(axis=1)
        outcome = (p.argmax(axis=1) == y).astype(float)
    n = confidence.shape[0]
    if n == 0:
        return float("nan")
    bins = np.clip(np.floor(confidence * n_bins).astype(int), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(float)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    out_sum = np.bincount(bins, weights=outcome, minlength=n_bins)
    filled = counts > 0
    gaps = np.abs(conf_sum[filled] - out_sum[filled]) / counts[filled]
    return float(np.sum(gaps * counts[filled]) / n)


def _confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """``(k, k)`` counts, rows true and columns predicted."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _ovr_scores(
    y: np.ndarray, p: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float]
) -> float | None:
    """Macro one-vs-rest score over the classes that have positives and negatives in ``y``."""
    values: list[float] = []
    for c in range(p.shape[1]):
        positives = int(np.sum(y == c))
        if 0 < positives < y.shape[0]:
            values.append(float(score((y == c).astype(int), p[:, c])))
    return float(np.mean(values)) if values else None


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Standard classification metrics from class probabilities.

    The predicted class is the argmax of ``proba``. Keys:

    - ``n_rows``, ``accuracy``, ``balanced_accuracy`` (mean recall over classes present in
      ``y_true``);
    - ``macro_precision``, ``macro_recall``, ``macro_f1``: means over the classes that occur in
      ``y_true`` or in the predictions (scikit-learn's default label set; 0 where undefined);
    - ``roc_auc``: binary, the AUC of class 1; multi-class, the macro one-vs-rest AUC over the
      classes that have both positives and negatives in ``y_true``;
    - ``pr_auc``: average precision of class 1 (binary) or its macro one-vs-rest mean;
    - ``brier``: binary, the Brier score of class 1; multi-class, the mean over classes of the
      one-vs-rest Brier score, which equals the multi-class Brier score divided by ``k``;
    - ``ece``: :func:`expected_calibration_error` with 10 bins;
    - ``log_loss``: mean negative log probability of the true class (probabilities clipped to
      ``[1e-15, 1]``);
    - ``precision_<label>``, ``recall_<label>``, ``f1_<label>`` per class with the label
      slugified. ``recall_`` and ``f1_`` are given only for classes present in ``y_true``,
      ``precision_`` only for classes present in ``y_true`` or predicted.

    Undefined metrics (e.g. an AUC when ``y_true`` holds one class) are omitted, not ``nan``.

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        Integer class indices ``0..k-1``.
    proba : ndarray of shape (n, k) or (n,)
        Class probabilities in label order; a 1-D array is P(class 1) of a binary task.
    labels : sequence of str
        Class names in index order (binary: the adverse label is index 1).

    Returns
    -------
    dict of str to float
    """
    y = _labels_int(y_true)
    p = _proba_2d(proba)
    k = len(labels)
    if p.shape[1] != k:
        raise ValueError(f"proba has {p.shape[1]} columns but {k} labels were given")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    if np.any((y < 0) | (y >= k)):
        raise ValueError(f"y_true holds class indices outside 0..{k - 1}")
    n = y.shape[0]
    out: dict[str, float] = {"n_rows": float(n)}
    if n == 0:
        return out
    pred = p.argmax(axis=1)
    cm = _confusion_counts(y, pred, k)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(float)
    in_true = support > 0
    in_either = in_true | (predicted > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)

    out["accuracy"] = float(tp.sum() / n)
    out["balanced_accuracy"] = float(recall[in_true].mean())
    out["macro_precision"] = float(precision[in_either].mean())
    out["macro_recall"] = float(recall[in_either].mean())
    out["macro_f1"] = float(f1[in_either].mean())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if k == 2:
            if 0 < support[1] < n:
                positive = (y == 1).astype(int)
                out["roc_auc"] = float(roc_auc_score(positive, p[:, 1]))
                out["pr_auc"] = float(average_precision_score(positive, p[:, 1]))
        else:
            auc = _ovr_scores(y, p, roc_auc_score)
            if auc is not None:
                out["roc_auc"] = auc
            ap = _ovr_scores(y, p, average_precision_score)
            if ap is not None:
                out["pr_auc"] = ap

    onehot = np.eye(k)[y]
    if k == 2:
        out["brier"] = float(np.mean((p[:, 1] - onehot[:, 1]) ** 2))
    else:
        out["brier"] = float(np.mean((p - onehot) ** 2))
    out["ece"] = expected_calibration_error(y, p)
    true_p = np.clip(p[np.arange(n), y], _EPS, 1.0)
    out["log_loss"] = float(-np.mean(np.log(true_p)))

    for c, label in enumerate(labels):
        slug = slugify(label)
        if in_either[c]:
            out[f"precision_{slug}"] = float(precision[c])
        if in_true[c]:
            out[f"recall_{slug}"] = float(recall[c])
            out[f"f1_{slug}"] = float(f1[c])
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Regression metrics: ``n_rows``, ``mae``, ``mse``, ``rmse`` and ``r2``.

    ``r2`` is omitted when ``y_true`` has fewer than two rows or no variance.

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        Observed values.
    y_pred : ndarray of shape (n,)
        Predicted values.

    Returns
    -------
    dict of str to float
    """
    y = np.asarray(y_true, dtype=float).ravel()
    f = np.asarray(y_pred, dtype=float).ravel()
    if y.shape != f.shape:
        raise ValueError(f"y_true has shape {y.shape} but y_pred has {f.shape}")
    out: dict[str, float] = {"n_rows": float(y.shape[0])}
    if y.shape[0] == 0:
        return out
    err = f - y
    mse = float(np.mean(err**2))
    out["mae"] = float(np.mean(np.abs(err)))
    out["mse"] = mse
    out["rmse"] = math.sqrt(mse)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if y.shape[0] >= 2 and ss_tot > 0:
        out["r2"] = 1.0 - float(np.sum(err**2)) / ss_tot
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Confusion matrix with readable labels.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n,)
        Integer class indices ``0..k-1`` (or the label strings themselves).
    labels : sequence of str
        Class names in index order.

    Returns
    -------
    DataFrame of shape (k, k)
        Counts; the index (named ``true``) holds true classes and the columns (named
        ``predicted``) predicted classes.
    """
    names = list(labels)
    k = len(names)

    def _idx(values: np.ndarray) -> np.ndarray:
        arr = np.asarray(values)
        if arr.dtype.kind in {"U", "S", "O"}:
            lookup = {name: i for i, name in enumerate(names)}
            return np.array([lookup[str(v)] for v in arr], dtype=int)
        return _labels_int(arr)

    cm = _confusion_counts(_idx(y_true), _idx(y_pred), k)
    frame = pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))
    return frame


def _is_discrete(y: np.ndarray) -> bool:
    return y.dtype.kind in {"i", "u", "b", "U", "S", "O"}


def _bootstrap_indices(y_true: np.ndarray, n_rounds: int, seed: int, stratify: bool) -> list[np.ndarray]:
    """Row indices for each bootstrap round (within-class resampling when stratified)."""
    rng = np.random.default_rng(seed)
    n = y_true.shape[0]
    if stratify and _is_discrete(y_true):
        groups = [np.flatnonzero(y_true == value) for value in np.unique(y_true)]
        return [
            np.concatenate([rng.choice(g, size=g.shape[0], replace=True) for g in groups])
            for _ in range(n_rounds)
        ]
    return [np.asarray(rng.integers(0, n, size=n)) for _ in range(n_rounds)]


def _percentile_interval(values: list[float], alpha: float) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    low, high = np.quantile(np.asarray(values), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray,
    pred: np.ndarray,
    n_rounds: int = 200,
    alpha: float = 0.05,
    seed: int = 42,
    stratify: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a metric.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(y_true, pred) -> float``.
    y_true : ndarray of shape (n,)
        Truth (class indices or values).
    pred : ndarray of shape (n,) or (n, k)
        Predictions or probabilities; rows are resampled together with ``y_true``.
    n_rounds : int, default 200
        Bootstrap rounds.
    alpha : float, default 0.05
        One minus the coverage: the interval runs from the ``alpha/2`` to the ``1 - alpha/2``
        quantile.
    seed : int, default 42
        Seed of the resampling generator.
    stratify : bool, default True
        Resample within each class of ``y_true`` (applied only when ``y_true`` is discrete, i.e.
        integer, boolean or string; floating targets are resampled as a whole).

    Returns
    -------
    (low, high) : tuple of float
        ``(nan, nan)`` when the metric is undefined in every round. Rounds where the metric raises
        ``ValueError``/``ZeroDivisionError`` or returns a non-finite value are skipped.
    """
    y = np.asarray(y_true)
    p = np.asarray(pred)
    values: list[float] = []
    for idx in _bootstrap_indices(y, n_rounds, seed, stratify):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = float(metric_fn(y[idx], p[idx]))
        except (ValueError, ZeroDivisionError, KeyError):
            continue
        if math.isfinite(value):
            values.append(value)
    return _percentile_interval(values, alpha)


def metrics_with_ci(
    y_true: np.ndarray,
    pred: np.ndarray,
    task_type: Literal["classification", "regression"],
    labels: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    n_rounds: int = 200,
    alpha: float = 0.05,
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """Point estimates with bootstrap confidence intervals for several metrics at once.

    One set of bootstrap samples serves all metrics (stratified by class for classification).

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        Class indices (classification) or values (regression).
    pred : ndarray
        Probabilities ``(n, k)`` for classification, predictions ``(n,)`` for regression.
    task_type : {"classification", "regression"}
        Which metric family to use.
    labels : sequence of str, optional
        Class names in index order; required for classification.
    metrics : sequence of str, optional
        Metric names (keys of :func:`classification_metrics` / :func:`regression_metrics`);
        default :data:`CLASSIFICATION_CI_METRICS` or :data:`REGRESSION_CI_METRICS`.
    n_rounds, alpha, seed
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``{metric: {"value": v, "low": lo, "high": hi}}``; metrics undefined on the full data are
        omitted; ``low``/``high`` are ``nan`` when no round defined them.
    """
    y = np.asarray(y_true)
    p = np.asarray(pred)
    compute: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    if task_type == "classification":
        if labels is None:
            raise ValueError("classification needs labels")
        names = list(labels)
        wanted = list(metrics) if metrics is not None else list(CLASSIFICATION_CI_METRICS)
        y = _labels_int(y)

        def compute(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
            return classification_metrics(a, b, names)

        stratify = True
    elif task_type == "regression":
        wanted = list(metrics) if metrics is not None else list(REGRESSION_CI_METRICS)
        y = y.astype(float)
        compute = regression_metrics
        stratify = False
    else:
        raise ValueError(f"unknown task type {task_type!r}")

    point = compute(y, p)
    present = [m for m in wanted if m in point]
    samples: dict[str, list[float]] = {m: [] for m in present}
    for idx in _bootstrap_indices(y, n_rounds, seed, stratify):
        try:
            round_values = compute(y[idx], p[idx])
        except (ValueError, ZeroDivisionError):
            continue
        for m in present:
            value = round_values.get(m)
            if value is not None and math.isfinite(value):
                samples[m].append(value)
    out: dict[str, dict[str, float]] = {}
    for m in present:
        low, high = _percentile_interval(samples[m], alpha)
        out[m] = {"value": point[m], "low": low, "high": high}
    return out


def threshold_for_capacity(scores: np.ndarray, fraction: float) -> float:
    """The score threshold at which the top ``fraction`` of rows are flagged.

    Rows with ``score >= threshold`` are flagged. The threshold is the score of the
    ``round(fraction * n)``-th highest row (at least one row when ``fraction > 0``); ties at the
    threshold may flag slightly more rows.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Risk scores, higher is riskier.
    fraction : float
        Share of rows advisors can act on, in ``[0, 1]``. ``0`` gives ``inf`` (nobody flagged).

    Returns
    -------
    float
    """
    s = np.asarray(scores, dtype=float).ravel()
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if s.shape[0] == 0:
        raise ValueError("scores is empty")
    if fraction == 0.0:
        return float("inf")
    n_flag = min(max(round(fraction * s.shape[0]), 1), s.shape[0])
    ordered = np.sort(s)[::-1]
    return float(ordered[n_flag - 1])


def threshold_for_recall(y_true_binary: np.ndarray, scores: np.ndarray, recall: float) -> float:
    """The highest threshold whose flags (``score >= threshold``) reach at least ``recall``.

    Parameters
    ----------
    y_true_binary : ndarray of shape (n,)
        1 (or True) for the adverse outcome.
    scores : ndarray of shape (n,)
        Risk scores.
    recall : float
        Target share of adverse cases caught, in ``(0, 1]``.

    Returns
    -------
    float
    """
    y = np.asarray(y_true_binary).astype(bool).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true_binary has shape {y.shape} but scores has {s.shape}")
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"recall must be in (0, 1], got {recall}")
    positives = np.sort(s[y])[::-1]
    if positives.shape[0] == 0:
        raise ValueError("no adverse cases: recall is undefined")
    needed = min(max(math.ceil(recall * positives.shape[0] - 1e-9), 1), positives.shape[0])
    return float(positives[needed - 1])
