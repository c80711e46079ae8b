"""Request and response models generated from the dataset specs.

Each dataset gets its own ``Student`` model whose fields are the spec's canonical column names,
typed and documented with their allowed codes and readable labels, so the OpenAPI page describes
every field. Deeper checks (codes, ranges) run through the spec's validation, whose report names
the field and the student.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NotRequired, Required

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from typing_extensions import TypedDict

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


_NONE = type(None)
_SHAPES_KEPT = 1024
"""Student shapes (field names and value types) the plain reader remembers, per dataset."""


def _plain_types(col: Column) -> frozenset[type]:
    """The JSON value types that ``_field_type`` takes as they are (pydantic changes none of them,
    or only an int to the float it stands for); anything else goes through pydantic."""
    if col.type is ColumnType.categorical:
        return frozenset({str, int, _NONE})
    if col.type is ColumnType.string:
        return frozenset({str, _NONE})
    if col.type is ColumnType.boolean:
        return frozenset({int, bool, _NONE})
    return frozenset({float, int, _NONE})


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


def _prefix(spec: DatasetSpec) -> str:
    return "".join(part.capitalize() for part in spec.name.split("_"))


def _student_fields(spec: DatasetSpec) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each student field's type and ``Field`` arguments (every field optional, default null)."""
    fields: dict[str, tuple[Any, dict[str, Any]]] = {
        "student_id": (
            str | None,
            {
                "max_length": 200,
                "description": "Your id for the student; echoed back, stored only pseudonymised.",
            },
        ),
    }
    for col in spec.columns:
        if col.role in ("target",):
            continue
        fields[col.name] = (
            _field_type(col),
            {"description": _describe(col), "json_schema_extra": _schema_extra(col)},
        )
    return fields


def _request_fields(spec: DatasetSpec, max_batch: int) -> dict[str, tuple[Any, dict[str, Any], Any]]:
    """The predict request's fields besides ``students``: type, ``Field`` arguments, default."""
    return {
        "task": (
            str | None,
            {"description": f"Task: {[t.name for t in spec.tasks]}; default {spec.tasks[0].name}."},
            None,
        ),
        "stage": (
            str | None,
            {"description": f"Stage: {spec.stages}; default: the latest whose features are all present."},
            None,
        ),
        "explain": (bool, {"description": "Add the top reasons in plain words."}, False),
        "top_k": (int, {"ge": 1, "le": 10}, 3),
        "event_id": (
            str | None,
            {"max_length": 200, "description": "Idempotency key for the request."},
            None,
        ),
    }


def student_model(spec: DatasetSpec) -> type[BaseModel]:
    """The pydantic model of one student record of ``spec`` (all feature and info columns)."""
    fields: dict[str, Any] = {
        name: (kind, Field(default=None, **args)) for name, (kind, args) in _student_fields(spec).items()
    }
    return create_model(f"{_prefix(spec)}Student", __config__=ConfigDict(extra="forbid"), **fields)


def predict_request_model(spec: DatasetSpec, max_batch: int) -> type[BaseModel]:
    """The documented body of ``POST /v1/{dataset}/predict`` (OpenAPI)."""
    student = student_model(spec)
    fields: dict[str, Any] = {
        name: (kind, Field(default=default, **args))
        for name, (kind, args, default) in _request_fields(spec, max_batch).items()
    }
    return create_model(
        f"{_prefix(spec)}PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        students=(
            list[student],  # type: ignore[valid-type]
            Field(min_length=1, max_length=max_batch, description="One or more students."),
        ),
        **fields,
    )


class PredictRequest(TypedDict, total=False):
    """A validated predict body as plain data (what ``predict_request_parser`` returns)."""

    students: list[dict[str, Any]]
    task: str | None
    stage: str | None
    explain: bool
    top_k: int
    event_id: str | None


def _typed_dict(name: str, fields: dict[str, Any]) -> Any:
    """A ``TypedDict`` made at run time that refuses unknown keys, as the models do."""
    factory: Any = TypedDict
    made = factory(name, fields)
    made.__pydantic_config__ = ConfigDict(extra="forbid")
    return made


def predict_request_reader(
    spec: DatasetSpec, max_batch: int, parser: TypeAdapter[PredictRequest] | None = None
) -> Callable[[bytes], PredictRequest]:
    """Read a predict body: the request as plain data, or pydantic's ``ValidationError``.

    A body whose every value already has a type the documented model keeps as it is (a code as
    a string or an integer, a number as a float or an integer, no unknown field, every limit
    kept) is read with orjson and checked here in one pass; anything else, valid or not, goes
    through ``predict_request_parser``, so every error and every coercion is pydantic's. A
    number sent as an integer stays an integer here where pydantic would make it a float; the
    scoring reads both as the same float. Codes and ranges are checked by the scoring's
    validation either way.
    """
    full = parser or predict_request_parser(spec, max_batch)
    fields = {"student_id": frozenset({str, _NONE})}
    fields.update({col.name: _plain_types(col) for col in spec.columns if col.role != "target"})
    allowed = frozenset(fields)
    envelope = frozenset({"students", *_request_fields(spec, max_batch)})
    shapes: dict[tuple[Any, ...], bool] = {}  # a student's names then value types -> plain

    def plain(body: bytes) -> PredictRequest | None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict or not data.keys() <= envelope:
            return None
        students = data.get("students")
        if type(students) is not list or not 1 <= len(students) <= max_batch:
            return None
        for name in ("task", "stage", "event_id"):
            value = data.get(name)
            if value is not None and type(value) is not str:
                return None
        event_id = data.get("event_id")
        if event_id is not None and len(event_id) > 200:
            return None
        if type(data.get("explain", False)) is not bool:
            return None
        top_k = data.get("top_k", 3)
        if type(top_k) is not int or not 1 <= top_k <= 10:
            return None
        for student in students:
            if type(student) is not dict:
                return None
            # the students of a batch share a few shapes (field names and value types in order):
            # each shape is checked once, then found by one lookup
            shape = (*student, *map(type, student.values()))
            ok = shapes.get(shape)
            if ok is None:
                ok = student.keys() <= allowed and all(
                    type(value) in fields[name] for name, value in student.items()
                )
                if len(shapes) < _SHAPES_KEPT:
                    shapes[shape] = ok
            if not ok:
                return None
            sid = student.get("student_id")
            if sid is not None and len(sid) > 200:
                return None
        request: PredictRequest = data  # type: ignore[assignment]
        return request

    def read(body: bytes) -> PredictRequest:
        return plain(body) or full.validate_json(body)

    return read


def predict_request_parser(spec: DatasetSpec, max_batch: int) -> TypeAdapter[PredictRequest]:
    """The same rules as ``predict_request_model``, validated straight from JSON bytes into plain
    dicts (pydantic's ``TypedDict`` mode): no model objects to build and dump again, about a
    fifth of the work per student. Absent fields stay absent (defaults: see the model)."""
    student = _typed_dict(
        f"{_prefix(spec)}StudentData",
        {
            name: NotRequired[Annotated[kind, Field(**args)]]
            for name, (kind, args) in _student_fields(spec).items()
        },
    )
    body = _typed_dict(
        f"{_prefix(spec)}PredictData",
        {
            "students": Required[
                Annotated[list[student], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
            ],
            **{
                name: NotRequired[Annotated[kind, Field(**args)]]
                for name, (kind, args, _) in _request_fields(spec, max_batch).items()
            },
        },
    )
    adapter: TypeAdapter[PredictRequest] = TypeAdapter(body)
    return adapter


def whatif_request_model(spec: DatasetSpec) -> type[BaseModel]:
    student = student_model(spec)
    name = f"{_prefix(spec)}WhatIfRequest"
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


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route that parses its JSON body itself but documents it by ``model``."""
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": reference}}}}


def document_bodies(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Add ``models`` (and the models they use) to the app's OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                own = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in own.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components[model.__name__] = own
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_PREDICTION_FIELDS = ("probabilities", "interval", "reasons")


def predict_response_json(outputs: list[dict[str, Any]]) -> bytes:
    """``PredictResponse`` as JSON: every ``Prediction`` field present (null when it does not
    apply), then the extras (``prediction_id``, ``duplicate``), as the model would serialise it."""
    for out in outputs:
        for name in _PREDICTION_FIELDS:
            out.setdefault(name, None)
    return orjson.dumps({"predictions": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)


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
