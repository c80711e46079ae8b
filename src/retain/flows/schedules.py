"""Cron schedules for a Prefect server: what ``retain flows serve`` registers and runs."""

from __future__ import annotations

from typing import Any

from retain.data.spec import load_spec
from retain.settings import Settings, get_settings


def deployments(datasets: list[str], settings: Settings | None = None) -> list[Any]:
    """One monitoring deployment per dataset (retrains where drift or performance calls for
    it) and one scheduled retrain per current champion, on ``RETAIN_FLOW_SCHEDULES``."""
    from retain.flows.monitor import monitor_flow
    from retain.flows.retrain import retrain_flow
    from retain.training import registry

    s = settings or get_settings()
    registry.configure(s)
    out: list[Any] = []
    monitor_cron = s.flow_schedules.get("monitor")
    retrain_cron = s.flow_schedules.get("retrain")
    for dataset in datasets:
        spec = load_spec(dataset)
        if monitor_cron:
            out.append(
                monitor_flow.to_deployment(
                    name=f"monitor-{spec.name}",
                    cron=monitor_cron,
                    parameters={"dataset": spec.name, "retrain_on_alert": True},
                    tags=["retain", spec.name],
                )
            )
        if not retrain_cron:
            continue
        for t in spec.tasks:
            for stage in t.stages:
                name = spec.model_name(t.name, stage)
                if registry.champion_version(name) is None:
                    continue
                out.append(
                    retrain_flow.to_deployment(
                        name=f"retrain-{name}",
                        cron=retrain_cron,
                        parameters={"model": name, "trigger": "schedule"},
                        tags=["retain", spec.name],
                    )
                )
    return out
