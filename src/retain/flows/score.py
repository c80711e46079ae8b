"""The batch scoring flow: a file of students in, scores out (and into the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from retain.batch.score import score
from retain.predictor import Predictor
from retain.store.repository import Store


@flow(name="batch_score")
def batch_score_flow(
    dataset: str,
    task: str,
    stage: str,
    input: str,
    output: str,
    store: bool = True,
    model: str = "champion",
) -> dict[str, Any]:
    """Score ``input`` with the registered model, write ``output``; with ``store`` the
    predictions also go to the store for the dashboard and monitoring (idempotent per file)."""
    predictor = Predictor.from_registry(dataset, task, stage, model)
    db = Store.from_settings() if store else None
    try:
        result = score(predictor, Path(input), Path(output), store=db)
    finally:
        if db is not None:
            db.close()
    return {
        "model_name": predictor.model_name,
        "model_version": predictor.version,
        "scored": len(result),
        "bands": {str(k): int(v) for k, v in result["risk_band"].value_counts().items()},
        "output": output,
        "stored": store,
    }
