"""Suggested interventions: the institution's catalogue matched to the reasons behind a risk.

Pure. A dataset spec lists its interventions and the features each one addresses; a reason that
raises a student's risk suggests the interventions that address its feature, strongest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retain.data.spec import DatasetSpec
from retain.explanations import Reason


@dataclass(frozen=True)
class Suggestion:
    """An intervention and the reasons (plain words) it addresses."""

    type: str
    description: str
    reasons: tuple[str, ...]
    features: tuple[str, ...]
    weight: float

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "description": self.description,
            "reasons": list(self.reasons),
            "features": list(self.features),
            "weight": round(self.weight, 4),
        }


def suggest(spec: DatasetSpec, reasons: Sequence[Reason], catalogue: Sequence[str]) -> list[Suggestion]:
    """Interventions for the reasons that raise risk, ordered by the risk they address.

    Only types in ``catalogue`` (the institution's ``RETAIN_INTERVENTION_TYPES``) are suggested,
    so a retired intervention in a spec is never offered.
    """
    allowed = set(catalogue)
    raising = [r for r in reasons if r.contribution > 0]
    out: list[Suggestion] = []
    for item in spec.interventions:
        if item.type not in allowed:
            continue
        matched = [r for r in raising if r.feature in item.addresses]
        if matched:
            out.append(
                Suggestion(
                    item.type,
                    item.description,
                    tuple(r.text for r in matched),
                    tuple(r.feature for r in matched),
                    float(sum(r.contribution for r in matched)),
                )
            )
    return sorted(out, key=lambda s: (-s.weight, s.type))
