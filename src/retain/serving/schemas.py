"""Request and response models generated from the dataset specs.

Each dataset gets its own ``Student`` model whose fields are the spec's canonical column names,
typed and documented with their allowed codes and readable labels, so the OpenAPI page describes
every field. Deeper checks (codes, ranges) run through the spec's validation, whose report names
the field and the student.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from retain.data.spec import Column, ColumnType, DatasetSpec


def _describe(col: Column) -> str:
    parts = [col.display]
    if col.description:
        parts.append(col.description)
    if col.codes:
        shown = "; ".join(f"{k} = {v}" for k, v in list(col.codes.items())[:60])
        parts.append(f"Codes: {shown}")
    if col.min is not None or col.max is not None:
        parts.append(
            f"Range {col.min:g} to {col.max:g}." if col.min is not None and col.max is not None else ""
        )
    if col.stage:
        parts.append(f"Known from stage: {col.stage}.")
    return " ".join(p for p in parts if p)


def _field_type(col: Column) -> Any:
    if col.type is ColumnType.categorical:
        return str | int | None
    if col.type is ColumnType.string:
        return str | None
    if col.type is ColumnType.boolean:
        return int | bool | None
    return float | None


def _schema_extra(col: Column) -> dict[str, Any] | None:
    """Machine-readable documentation: allowed codes with labels (``x-codes``) and the range."""
    extra: dict[str, Any] = {}
    if col.codes:
        extra["x-codes"] = {str(k): str(v) for k, v in col.codes.items()}
    if col.type in (ColumnType.integer, ColumnType.float):
        if col.min is not None:
            extra["minimum"] = col.min
        if col.max is not None:
            extra["maximum"] = col.max
    if col.stage:
        extra["x-stage"] = col.stage
    return extra or None


def student_model(spec: DatasetSpec) -> type[BaseModel]:
    """The pydantic model of one student record of ``spec`` (all feature and info columns)."""
    fields: dict[str, Any] = {
        "student_id": (
            str | None,
            Field(
                default=None,
                max_length=200,
                description="Your id for the student; echoed back, stored only pseudonymised.",
            ),
        ),
    }
    for col in spec.columns:
        if col.role in ("target",):
            continue
        fields[col.name] = (
            _field_type(col),
            Field(default=None, description=_describe(col), json_schema_extra=_schema_extra(col)),
        )
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "Student"
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def predict_request_model(spec: DatasetSpec, max_batch: int) -> type[BaseModel]:
    student = student_model(spec)
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "PredictRequest"
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        students=(
            list[student],  # type: ignore[valid-type]
            Field(min_length=1, max_length=max_batch, description="One or more students."),
        ),
        task=(
            str | None,
            Field(
                default=None,
                description=f"Task: {[t.name for t in spec.tasks]}; default {spec.tasks[0].name}.",
            ),
        ),
        stage=(
            str | None,
            Field(
                default=None,
                description=f"Stage: {spec.stages}; default: the latest whose features are all present.",
            ),
        ),
        explain=(bool, Field(default=False, description="Add the top reasons in plain words.")),
        top_k=(int, Field(default=3, ge=1, le=10)),
        event_id=(
            str | None,
            Field(default=None, max_length=200, description="Idempotency key for the request."),
        ),
    )


def whatif_request_model(spec: DatasetSpec) -> type[BaseModel]:
    student = student_model(spec)
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "WhatIfRequest"
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        student=(student, Field(description="The student as they are now.")),
        changes=(
            dict[str, float | int | str],
            Field(default_factory=dict, description=f"Changes to actionable features: {spec.actionable}."),
        ),
        task=(str | None, None),
        stage=(str | None, None),
        max_changes=(int, Field(default=2, ge=1, le=3)),
    )


class Reason(BaseModel):
    feature: str
    label: str
    value: str
    contribution: float
    direction: str
    text: str


class Prediction(BaseModel):
    """One student's prediction (see ``retain.predictor`` for the meaning of each field)."""

    model_config = ConfigDict(extra="allow")
    student_id: str
    task: str
    stage: str
    model_name: str
    model_version: int | None
    risk_score: float
    risk_band: str
    prediction: str | float
    probabilities: dict[str, float] | None = None
    interval: tuple[float, float] | None = None
    reasons: list[Reason] | None = None


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class ModelVersion(BaseModel):
    name: str
    version: int
    aliases: list[str]
    metrics: dict[str, float]
