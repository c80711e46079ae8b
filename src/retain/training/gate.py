"""The one promotion gate: every path (training, retraining, API, CLI) asks it.

A candidate becomes champion only when it beats the current champion on the same held-out
rows by the task's margin on the task's primary metric (or when there is no champion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_TOLERANCE = 1e-9  # metric differences below this are float noise, not improvement


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with the numbers behind it."""

    promote: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None
    margin: float

    def to_dict(self) -> dict[str, object]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "metric": self.metric,
            "candidate": self.candidate,
            "champion": self.champion,
            "margin": self.margin,
        }


def decide(
    metric: str,
    candidate: float,
    champion: float | None,
    greater_is_better: bool,
    margin: float,
) -> GateDecision:
    """Promote when there is no champion, or the candidate is better by at least ``margin``."""
    if champion is None:
        return GateDecision(True, "no current champion", metric, candidate, None, margin)
    improvement = candidate - champion if greater_is_better else champion - candidate
    if improvement >= margin - _TOLERANCE and improvement > _TOLERANCE:
        reason = f"{metric} better by {improvement:.4f} (margin {margin:.4f}) on the same held-out rows"
        return GateDecision(True, reason, metric, candidate, champion, margin)
    reason = f"{metric} {candidate:.4f} vs champion {champion:.4f}: improvement {improvement:.4f} below margin {margin:.4f}"
    return GateDecision(False, reason, metric, candidate, champion, margin)


@dataclass(frozen=True)
class PairedComparison:
    """A challenger against the champion on the same rows, resampled together.

    ``improvement`` is oriented so that positive means the challenger is better; ``low`` is the
    lower end of its one-sided ``1 - alpha`` bootstrap interval and ``p_value`` the share of
    rounds in which the challenger was not better.
    """

    improvement: float
    low: float
    p_value: float
    rounds: int
    alpha: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "improvement": self.improvement,
            "low": self.low,
            "p_value": self.p_value,
            "rounds": self.rounds,
            "alpha": self.alpha,
        }


def paired_bootstrap(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], float],
    greater_is_better: bool,
    *,
    rounds: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap of ``score(challenger) - score(champion)`` over the same resampled rows.

    Parameters
    ----------
    y : ndarray, shape (n,)
        True labels or values of the fresh held-out rows.
    champion, challenger : ndarray, shape (n,) or (n, k)
        Each model's predictions for those rows (probabilities or values).
    score : callable
        ``score(y, predictions) -> float``; resamples where it fails (e.g. one class only) are
        skipped.
    """
    sign = 1.0 if greater_is_better else -1.0
    observed = sign * (score(y, challenger) - score(y, champion))
    rng = np.random.default_rng(seed)
    n = len(y)
    diffs: list[float] = []
    for _ in range(rounds):
        rows = rng.integers(0, n, n)
        try:
            diffs.append(sign * (score(y[rows], challenger[rows]) - score(y[rows], champion[rows])))
        except ValueError:
            continue
    if not diffs:
        return PairedComparison(observed, float("-inf"), 1.0, 0, alpha)
    values = np.asarray(diffs)
    return PairedComparison(
        observed, float(np.quantile(values, alpha)), float(np.mean(values <= 0)), len(values), alpha
    )


def decide_paired(
    metric: str,
    candidate: float,
    champion: float,
    comparison: PairedComparison,
    margin: float,
) -> GateDecision:
    """Promote a retrained challenger only when it is better by ``margin`` and the paired test
    says the improvement is real (its one-sided interval lies above zero)."""
    if comparison.improvement >= margin - _TOLERANCE and comparison.low > 0 and comparison.rounds > 0:
        reason = (
            f"{metric} better by {comparison.improvement:.4f} (margin {margin:.4f}); paired bootstrap: "
            f"lower {1 - comparison.alpha:.0%} bound {comparison.low:.4f}, p = {comparison.p_value:.3f}"
        )
        return GateDecision(True, reason, metric, candidate, champion, margin)
    why = (
        f"improvement {comparison.improvement:.4f} below margin {margin:.4f}"
        if comparison.improvement < margin - _TOLERANCE
        else f"not significant: lower {1 - comparison.alpha:.0%} bound {comparison.low:.4f}, "
        f"p = {comparison.p_value:.3f}"
    )
    reason = f"champion stays: {metric} {candidate:.4f} vs {champion:.4f}, {why}"
    return GateDecision(False, reason, metric, candidate, champion, margin)
