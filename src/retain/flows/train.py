"""The training flow: every requested task and stage, tracked, gated and registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from retain.training.train import TrainOptions, train


@task(name="train-dataset")
def _train(dataset: str, task_name: str | None, stage: str | None, data: str | None) -> list[dict[str, Any]]:
    options = TrainOptions(data_path=Path(data) if data else None)
    return [r.summary() for r in train(dataset, task_name, stage, options)]


@flow(name="train", log_prints=False)
def train_flow(
    dataset: str, task: str | None = None, stage: str | None = None, data: str | None = None
) -> dict[str, Any]:
    """Train ``dataset`` (one task or stage, or all) and return the models' summaries."""
    return {"models": _train(dataset, task, stage, data)}
