"""The monitoring flow: drift and live performance, and a retrain where they call for one."""

from __future__ import annotations

from typing import Any

from prefect import flow

from retain.monitoring.checks import monitor
from retain.training.retrain import RetrainError, RetrainOptions, retrain


@flow(name="monitor")
def monitor_flow(
    dataset: str,
    task: str | None = None,
    stage: str | None = None,
    window: str = "7d",
    retrain_on_alert: bool = False,
    data: str | None = None,
) -> dict[str, Any]:
    """Check every champion of ``dataset``; with ``retrain_on_alert`` retrain the models whose
    drift or live performance calls for it (each through the paired gate) on the reference
    data ``data`` (default: the data folder's file) plus the new outcomes."""
    from pathlib import Path

    from retain.settings import get_settings

    result = monitor(dataset, task, stage, window=window)
    out = result.to_dict()
    retrains: dict[str, Any] = {}
    if retrain_on_alert:
        s = get_settings()
        for name, reasons in result.triggers.items():
            options = RetrainOptions.from_settings(
                s, trigger="; ".join(reasons), data_path=Path(data) if data else None
            )
            try:
                retrains[name] = retrain(name, options=options, actor="monitor-flow").to_dict()
            except RetrainError as exc:  # e.g. outcomes have not arrived yet: say so, keep going
                retrains[name] = {"skipped": str(exc)}
    out["retrains"] = retrains
    return out
