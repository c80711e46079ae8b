"""The retraining flow: challenger from reference data plus new outcomes, paired gate, promote or keep."""

from __future__ import annotations

from typing import Any

from prefect import flow

from retain.training.retrain import RetrainOptions, retrain


@flow(name="retrain")
def retrain_flow(
    model: str, trigger: str = "manual", actor: str | None = None, data: str | None = None
) -> dict[str, Any]:
    """Retrain ``model`` (``dataset.task.stage``) on the reference data (``data``, default: the
    data folder's file) plus the new outcomes; the result carries the gate's decision."""
    from pathlib import Path

    from retain.settings import get_settings

    options = RetrainOptions.from_settings(
        get_settings(), trigger=trigger, data_path=Path(data) if data else None
    )
    return retrain(model, options=options, actor=actor).to_dict()
