"""The one promotion gate: every path (training, retraining, API, CLI) asks it.

A candidate becomes champion only when it beats the current champion on the same held-out
rows by the task's margin on the task's primary metric (or when there is no champion).
"""

from __future__ import annotations

from dataclasses import dataclass

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
