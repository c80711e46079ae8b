"""Prefect 3 flows: train, batch_score, monitor and retrain. Each only calls library functions.

Flows run locally without a server by default (Prefect starts a temporary one in the process,
with its state under ``RETAIN_HOME/prefect``); in production ``PREFECT_API_URL`` points at a
Prefect server and ``retain flows serve`` registers the cron schedules. Call
:func:`configure_prefect` before importing a flow module: Prefect reads its settings on import.
"""

from __future__ import annotations

import os

from retain.settings import Settings, get_settings

FLOW_NAMES = ("train", "batch_score", "monitor", "retrain")


def configure_prefect(settings: Settings | None = None) -> None:
    """Prefect's home under ``RETAIN_HOME``, analytics off, and room for a slow first start.

    Values the user set in the environment are kept.
    """
    s = settings or get_settings()
    os.environ.setdefault("PREFECT_HOME", str((s.home / "prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


__all__ = ["FLOW_NAMES", "configure_prefect"]
