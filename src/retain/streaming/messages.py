"""What travels on the streams: the event a producer sends, the prediction the worker emits, and
the dead letter a bad event becomes.

The pydantic models are the one source of truth: their JSON Schemas are shipped in ``docs/``
(``stream-message.schema.json``, ``stream-prediction.schema.json``,
``stream-dead-letter.schema.json``; a test keeps the files equal to :func:`json_schemas`) and
:func:`parse_event` validates with the same models. Everything here is pure: bytes in, objects
or ``MessageError`` out.

A bad event is classified with a :class:`DeadLetterReason` and a detail that names the field.
Dead letters never carry a raw student id: :func:`redact` replaces every id field with its keyed
HMAC pseudonym (the same one the store uses), in parsed payloads and in text that is not JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from retain.data.load import record_ids
from retain.data.spec import DatasetSpec, SpecError
from retain.scoring import ScoringError, missing_fields, resolve_target

Record = dict[str, Any]
#: A field of a student record: a code, a number, a flag, or null when unknown.
StudentValue = str | int | float | bool | None
Pseudonymizer = Callable[[str], str]

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MAX_ID_LENGTH = 200
_MAX_FIELDS = 1000
_DATASET_PATTERN = r"^[a-z][a-z0-9_]*$"
#: Raw ids shorter than this are replaced only where a whole string equals them.
_MIN_SUBSTRING_ID = 4


class DeadLetterReason(StrEnum):
    """Why an event went to the dead-letter stream (a stable code; ``detail`` explains)."""

    not_utf8 = "not_utf8"
    not_json = "not_json"
    schema_violation = "schema_violation"
    unknown_dataset = "unknown_dataset"
    unknown_task = "unknown_task"
    unknown_stage = "unknown_stage"
    missing_student_fields = "missing_student_fields"
    invalid_student_fields = "invalid_student_fields"
    no_model = "no_model"
    scoring_failed = "scoring_failed"
    too_many_deliveries = "too_many_deliveries"


Detail = str | list[dict[str, Any]]


class MessageError(ValueError):
    """An event that cannot be scored, with its dead-letter reason and a field-level detail."""

    def __init__(self, reason: DeadLetterReason, detail: Detail) -> None:
        super().__init__(f"{reason.value}: {detail if isinstance(detail, str) else json.dumps(detail)}")
        self.reason = reason
        self.detail = detail


# ----------------------------------------------------------------------------------- the models


class StreamEvent(BaseModel):
    """One student event: the student's full record as of ``sent_at``, to be scored."""

    model_config = ConfigDict(
        extra="forbid",
        title="Retain stream event",
        json_schema_extra={"$schema": _JSON_SCHEMA_DIALECT},
    )

    event_id: str = Field(
        min_length=1,
        max_length=_MAX_ID_LENGTH,
        description="Unique id of the event; the same id never makes a second stored prediction.",
    )
    dataset: str = Field(
        min_length=1,
        max_length=100,
        pattern=_DATASET_PATTERN,
        description="Dataset (spec) name, e.g. `dropout`.",
    )
    task: str | None = Field(
        default=None, max_length=100, description="Task to score; default: the spec's first task."
    )
    stage: str | None = Field(
        default=None,
        max_length=100,
        description="Stage to score at; default: the latest stage whose features the record carries.",
    )
    student: dict[str, StudentValue] = Field(
        max_length=_MAX_FIELDS,
        description=(
            "The student's full record as of `sent_at`, with the spec's canonical field names "
            "(codes as strings or integers, numbers, null when unknown). Must carry `student_id`, "
            "unless the dataset derives ids from a hash of identifying columns."
        ),
    )
    sent_at: AwareDatetime = Field(
        description="When the source system sent the event (RFC 3339 with a time zone).",
    )


class StreamPrediction(BaseModel):
    """One prediction on the output stream (the API's prediction plus stream timing)."""

    model_config = ConfigDict(
        extra="forbid",
        title="Retain stream prediction",
        json_schema_extra={"$schema": _JSON_SCHEMA_DIALECT},
    )

    event_id: str = Field(description="The event's id.")
    dataset: str
    student_id: str = Field(description="The event's student id, echoed back (stored pseudonymised).")
    task: str
    stage: str
    model_name: str = Field(description="Registered model name `{dataset}.{task}.{stage}`.")
    model_version: int | None
    risk_score: float = Field(description="Probability of the adverse outcome.")
    risk_band: str = Field(description="`low`, `medium` or `high`.")
    prediction: str | float = Field(description="Predicted label (classification) or value (regression).")
    probabilities: dict[str, float] | None = Field(default=None, description="Class probabilities.")
    interval: tuple[float, float] | None = Field(default=None, description="Prediction interval.")
    prediction_id: str = Field(description="Id of the stored prediction.")
    duplicate: bool | None = Field(
        default=None,
        description="Present and true when the event id was scored before: the stored prediction is repeated.",
    )
    sent_at: AwareDatetime
    scored_at: AwareDatetime = Field(description="When the prediction was stored.")
    latency_ms: float = Field(description="From `sent_at` to `scored_at`, in milliseconds.")


class DeadLetterSource(BaseModel):
    """Where a dead-lettered event was read."""

    model_config = ConfigDict(extra="forbid")
    partition: str = Field(description="Stream or shard.")
    position: str = Field(description="Entry id or sequence number.")


class DeadLetter(BaseModel):
    """An event that could not be scored; student ids in it are pseudonymised."""

    model_config = ConfigDict(
        extra="forbid",
        title="Retain stream dead letter",
        json_schema_extra={"$schema": _JSON_SCHEMA_DIALECT},
    )

    reason: DeadLetterReason
    detail: str | list[dict[str, Any]] = Field(description="What is wrong, naming the field(s).")
    source: DeadLetterSource
    deliveries: int = Field(ge=1, description="How often the source had delivered the event.")
    payload: Any = Field(
        description="The original event: parsed when it is JSON, else its text; id fields pseudonymised."
    )
    dead_lettered_at: AwareDatetime


SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "stream-message.schema.json": StreamEvent,
    "stream-prediction.schema.json": StreamPrediction,
    "stream-dead-letter.schema.json": DeadLetter,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the three message kinds, by the file name they are shipped under."""
    return {name: model.model_json_schema() for name, model in SCHEMA_FILES.items()}


def schema_text(schema: Mapping[str, Any]) -> str:
    """A schema as it is written to disk (sorted keys, two-space indent, final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write the shipped schema files into ``folder`` (regenerate ``docs/`` after a model change)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / name
        path.write_text(schema_text(schema), encoding="utf-8")
        written.append(path)
    return written


# ------------------------------------------------------------------------------------- parsing


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp as RFC 3339 with milliseconds and ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _schema_detail(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``{field, problem}`` (the offending values are left out: they may be ids)."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(message)", "problem": err["msg"]}
        for err in error.errors(include_url=False, include_input=False)
    ]


def parse_event(data: bytes) -> StreamEvent:
    """Validate one raw event against the message schema.

    Parameters
    ----------
    data : bytes
        The message body: UTF-8 JSON.

    Returns
    -------
    StreamEvent

    Raises
    ------
    MessageError
        ``not_utf8``, ``not_json`` or ``schema_violation`` (the detail names each field).
    """
    try:
        return StreamEvent.model_validate_json(data)
    except ValidationError as exc:
        first = exc
    # The fast path failed: find out why, slowly (bad events are rare).
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(
            DeadLetterReason.not_utf8, f"the message is not UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        problem = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise MessageError(DeadLetterReason.not_json, f"the message is not JSON: {problem}") from None
    if not isinstance(parsed, dict):
        raise MessageError(
            DeadLetterReason.schema_violation,
            [{"field": "(message)", "problem": f"expected a JSON object, got {type(parsed).__name__}"}],
        )
    raise MessageError(DeadLetterReason.schema_violation, _schema_detail(first))


def resolve_event(
    spec: DatasetSpec, task: str | None, stage: str | None, fields: set[str]
) -> tuple[str, str]:
    """The task and stage an event is scored at, from the fields its record carries.

    Parameters
    ----------
    spec : DatasetSpec
    task, stage : str or None
        As the event gives them (``None``: the spec's first task; the latest stage the fields allow).
    fields : set of str
        The record's field names.

    Returns
    -------
    (task, stage)

    Raises
    ------
    MessageError
        ``unknown_task``, ``unknown_stage``, ``missing_student_fields`` (naming them) or
        ``invalid_student_fields`` (fields the spec does not know).
    """
    if task is not None:
        try:
            spec.task(task)
        except SpecError as exc:
            raise MessageError(DeadLetterReason.unknown_task, str(exc)) from None
    if stage is not None:
        t = spec.task(task) if task is not None else spec.tasks[0]
        if stage not in t.stages:
            raise MessageError(
                DeadLetterReason.unknown_stage, f"task {t.name!r} has no stage {stage!r}; stages: {t.stages}"
            )
    known = {c.name for c in spec.columns} | {spec.id.column}
    unknown = sorted(fields - known)
    if unknown:
        raise MessageError(
            DeadLetterReason.invalid_student_fields,
            [{"field": f"student.{f}", "problem": "not a field of the dataset"} for f in unknown],
        )
    record = dict.fromkeys(fields)
    try:
        resolved = resolve_target(spec, task, stage, [record])
        missing_fields(spec, *resolved, [record])
    except ScoringError as exc:
        raise MessageError(DeadLetterReason.missing_student_fields, student_detail(exc)) from None
    return resolved


def student_detail(error: ScoringError) -> Detail:
    """A scoring error's detail about one record: fields under ``student.``, batch positions dropped."""
    if isinstance(error.detail, str):
        return error.detail
    return [
        {"field": f"student.{d['field']}", **{k: v for k, v in d.items() if k not in ("field", "students")}}
        for d in error.detail
    ]


def ensure_student_id(spec: DatasetSpec, student: Record) -> Record:
    """The record with its id, derived when the spec hashes identifying columns.

    A stream cannot number rows (batches differ run to run), so for specs that derive ids from
    row numbers the event must carry the id.

    Raises
    ------
    MessageError
        ``missing_student_fields`` when the id is absent and cannot be derived;
        ``invalid_student_fields`` when it is not a non-empty string or an integer.
    """
    column = spec.id.column
    value = student.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if spec.id.derive == "hash" and spec.id.hash_columns:
            return {**student, column: record_ids([student], spec)[0]}
        raise MessageError(
            DeadLetterReason.missing_student_fields,
            [{"field": f"student.{column}", "problem": "missing field", "expected": "the student's id"}],
        )
    if isinstance(value, bool) or not isinstance(value, str | int) or len(str(value)) > _MAX_ID_LENGTH:
        raise MessageError(
            DeadLetterReason.invalid_student_fields,
            [
                {
                    "field": f"student.{column}",
                    "problem": "invalid id",
                    "expected": f"a string or integer of at most {_MAX_ID_LENGTH} characters",
                }
            ],
        )
    return student


# ------------------------------------------------------------------------------- pseudonymising


def redact(value: Any, id_fields: Collection[str], pseudonymize: Pseudonymizer, found: set[str]) -> Any:
    """A copy of a parsed JSON value with every id field's value replaced by its pseudonym.

    Parameters
    ----------
    value : JSON value
    id_fields : collection of str
        Field names that hold student ids (at any depth).
    pseudonymize : callable
        Raw id -> keyed HMAC pseudonym (``Store.key``).
    found : set of str
        Receives the raw ids that were replaced (to scrub them from other text).
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in id_fields and item is not None and not isinstance(item, dict | list):
                raw = str(item)
                found.add(raw)
                out[key] = pseudonymize(raw)
            else:
                out[key] = redact(item, id_fields, pseudonymize, found)
        return out
    if isinstance(value, list):
        return [redact(item, id_fields, pseudonymize, found) for item in value]
    return value


def redact_text(text: str, id_fields: Collection[str], pseudonymize: Pseudonymizer, found: set[str]) -> str:
    """Text that is not JSON (or is cut short) with the values of ``"<id field>": ...`` pseudonymised."""
    if not id_fields:
        return text
    names = "|".join(re.escape(f) for f in sorted(id_fields))
    pattern = re.compile(rf'("(?:{names})"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^\s,}}\]]+)')

    def replace(match: re.Match[str]) -> str:
        raw = match.group(2)
        if raw.startswith('"'):
            raw = raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
        found.add(raw)
        return f'{match.group(1)}"{pseudonymize(raw)}"'

    return pattern.sub(replace, text)


def _scrub(value: Any, raw_ids: Collection[str], pseudonymize: Pseudonymizer) -> Any:
    """Replace raw ids inside strings of ``value`` (whole strings always, substrings when long)."""
    if not raw_ids:
        return value
    if isinstance(value, str):
        if value in raw_ids:
            return pseudonymize(value)
        for raw in raw_ids:
            if len(raw) >= _MIN_SUBSTRING_ID and raw in value:
                value = value.replace(raw, pseudonymize(raw))
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, raw_ids, pseudonymize) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, raw_ids, pseudonymize) for v in value]
    return value


def dead_letter(
    data: bytes,
    reason: DeadLetterReason,
    detail: Detail,
    *,
    partition: str,
    position: str,
    deliveries: int,
    id_fields: Collection[str],
    pseudonymize: Pseudonymizer,
    at: datetime,
) -> bytes:
    """The dead-letter message (JSON bytes) for one event, id fields pseudonymised.

    Parameters
    ----------
    data : bytes
        The original message body.
    reason, detail
        Why it is dead-lettered (see :class:`DeadLetterReason`).
    partition, position : str
        Where the source read it.
    deliveries : int
        How often it had been delivered.
    id_fields : collection of str
        Names of fields holding student ids (``student_id`` and the specs' id columns).
    pseudonymize : callable
        Raw id -> pseudonym (``Store.key``).
    at : datetime
        When it is dead-lettered.
    """
    found: set[str] = set()
    text = data.decode("utf-8", errors="backslashreplace")
    try:
        payload: Any = redact(json.loads(text), id_fields, pseudonymize, found)
    except ValueError:
        payload = redact_text(text, id_fields, pseudonymize, found)
    message = {
        "reason": reason.value,
        "detail": _scrub(detail, found, pseudonymize),
        "source": {"partition": partition, "position": position},
        "deliveries": deliveries,
        "payload": payload,
        "dead_lettered_at": rfc3339(at),
    }
    return json.dumps(message, ensure_ascii=False, default=str).encode("utf-8")
