"""A student's explanation for the dashboard: reasons, inputs in readable words, suggestions.

Registered by :func:`retain.serving.app.create_app`. The read goes through the store's scoped,
audited ``student_history``; nothing is stored (no new prediction is made for a page view).
(No ``from __future__ import annotations``: FastAPI must see the local dependencies as objects.)
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query

from retain.data.spec import DatasetSpec
from retain.explanations import reasons
from retain.interventions import suggest
from retain.predictor import Predictor
from retain.serving.security import Principal
from retain.settings import Settings
from retain.store.repository import AccessDeniedError, Store

Dependency = Callable[..., Coroutine[Any, Any, Principal]]


def feature_rows(spec: DatasetSpec, features: list[str], inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model input with its label, readable value, and what a what-if control needs (pure)."""
    actionable = set(spec.actionable)
    out: list[dict[str, Any]] = []
    for name in features:
        column = spec.column(name)
        value = inputs.get(name)
        missing = value is None or (isinstance(value, float) and pd.isna(value))
        row: dict[str, Any] = {
            "name": name,
            "label": column.display,
            "value": None if missing else value,
            "readable": "missing" if missing else column.readable(value),
            "type": column.type.value,
            "actionable": name in actionable,
        }
        if column.codes:
            row["codes"] = dict(column.codes)
        if column.min is not None:
            row["min"] = column.min
        if column.max is not None:
            row["max"] = column.max
        out.append(row)
    return out


def add_explanation_route(
    app: FastAPI,
    *,
    settings: Settings,
    store: Store,
    spec_of: Callable[[str], DatasetSpec],
    predictor_of: Callable[[DatasetSpec, str, str], Predictor],
    advisor: Dependency,
) -> None:
    """Add ``GET /v1/{dataset}/students/{student_id}/explanation``."""

    @app.get(
        "/v1/{dataset}/students/{student_id}/explanation",
        tags=["students"],
        summary="Why a student is at risk: reasons in plain words, inputs, suggested interventions.",
    )
    def explanation(
        dataset: str,
        student_id: str,
        who: Annotated[Principal, Depends(advisor)],
        task: str | None = None,
        top_k: Annotated[int, Query(ge=1, le=20)] = 5,
    ) -> dict[str, Any]:
        spec = spec_of(dataset)
        try:
            history = store.student_history(dataset, student_id, who.scope)
        except (AccessDeniedError, LookupError):
            raise HTTPException(404, "student_id: no such student in your caseload") from None
        predictions = [p for p in history.predictions if task is None or p.task == task]
        if not predictions:
            raise HTTPException(404, "student_id: no prediction for this student (and task) yet")
        latest = predictions[-1]
        inputs = store.prediction_inputs(latest.id, who.scope) or {}
        predictor = predictor_of(spec, latest.task, latest.stage)
        typed = predictor.prepare([{spec.id.column: student_id, **inputs}])
        found = reasons(spec, predictor.model, typed, top_k)[0]
        now = predictor.model.score(typed)
        return {
            "student_id": student_id,
            "dataset": dataset,
            "task": latest.task,
            "stage": latest.stage,
            "prediction": {
                "id": latest.id,
                "risk_score": latest.risk_score,
                "risk_band": latest.risk_band,
                "model_version": latest.model_version,
                "predicted_at": latest.created_at.isoformat(),
            },
            "current": {
                "risk_score": float(now.risk[0]),
                "risk_band": str(now.band[0]),
                "model_name": predictor.model_name,
                "model_version": predictor.version,
            },
            "reasons": [r.to_dict() for r in found],
            "suggestions": [x.to_dict() for x in suggest(spec, found, settings.intervention_types)],
            "features": feature_rows(spec, list(predictor.features), inputs),
        }
