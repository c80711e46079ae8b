"""Tuned hyperparameters kept in the repository, so the default training run reuses them.

``retain tune`` writes ``configs/params.yaml``; ``retain train`` reads it. A model without an
entry trains with the family defaults.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from retain.settings import get_settings


class TunedParams(BaseModel):
    """The chosen model family and hyperparameters for one registered model name."""

    kind: str = "lightgbm"
    params: dict[str, object] = Field(default_factory=dict)
    calibration: str = "sigmoid"
    drop: list[str] = Field(default_factory=list)
    cv_score: float | None = None
    metric: str | None = None
    trials: int | None = None
    tuned_at: str | None = None


def params_path() -> Path:
    return get_settings().spec_dir.parent / "params.yaml"


def load_all(path: Path | None = None) -> dict[str, TunedParams]:
    target = path or params_path()
    if not target.exists():
        return {}
    raw = yaml.safe_load(target.read_text(encoding="utf-8")) or {}
    return {name: TunedParams.model_validate(entry) for name, entry in raw.items()}


def tuned_for(model_name: str, path: Path | None = None) -> TunedParams:
    return load_all(path).get(model_name, TunedParams())


def save(model_name: str, tuned: TunedParams, path: Path | None = None) -> Path:
    """Write one entry (keeping the others), sorted by name for stable diffs."""
    target = path or params_path()
    entries = load_all(target)
    entries[model_name] = tuned
    body = {name: entries[name].model_dump(exclude_none=True) for name in sorted(entries)}
    header = (
        "# Tuned hyperparameters per registered model ({dataset}.{task}.{stage}); written by `retain tune`.\n"
    )
    target.write_text(header + yaml.safe_dump(body, sort_keys=True), encoding="utf-8")
    return target
