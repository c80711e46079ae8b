"""Stream message formats: schema files, parsing and its reasons, pseudonymised dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from retain.data.spec import load_spec
from retain.streaming.messages import (
    DeadLetter,
    DeadLetterReason,
    MessageError,
    StreamEvent,
    dead_letter,
    ensure_student_id,
    json_schemas,
    parse_event,
    redact,
    redact_text,
    resolve_event,
    rfc3339,
    schema_text,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"
AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "e-1",
        "dataset": "dropout",
        "student": {"student_id": "S-12345", "course": "9254", "admission_grade": 130.5},
        "sent_at": "2026-11-23T12:00:00.250Z",
    }
    body.update(changes)
    return body


def _reason(data: bytes) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse_event(data)
    return caught.value


def _fake_key(raw: str) -> str:
    return f"pseudo-{len(raw)}"


# ------------------------------------------------------------------------------------ schemas


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_shipped_schema_files_are_generated_from_the_models(name: str) -> None:
    shipped = (DOCS / name).read_text(encoding="utf-8")
    assert shipped == schema_text(json_schemas()[name]), (
        f"docs/{name} is stale; regenerate with `retain stream schema --output docs`"
    )


def test_schema_file_and_parser_agree_on_examples() -> None:
    schema = json.loads((DOCS / "stream-message.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = _body(task="dropout", stage=None)
    assert not list(validator.iter_errors(good))
    assert parse_event(json.dumps(good).encode()).event_id == "e-1"
    for bad in (
        _body(event_id=""),
        _body(student={"course": {"nested": 1}}),
        _body(extra="field"),
        {k: v for k, v in _body().items() if k != "sent_at"},
    ):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(MessageError):
            parse_event(json.dumps(bad).encode())


# ------------------------------------------------------------------------------------ parsing


def test_a_good_event_parses_with_typed_values() -> None:
    event = parse_event(json.dumps(_body(task="dropout")).encode())
    assert isinstance(event, StreamEvent)
    assert event.student["admission_grade"] == 130.5 and event.student["course"] == "9254"
    assert event.sent_at == datetime(2026, 11, 23, 12, 0, 0, 250_000, tzinfo=UTC)
    assert event.stage is None


def test_not_utf8() -> None:
    error = _reason(b'{"event_id": "\xff\xfe"}')
    assert error.reason is DeadLetterReason.not_utf8
    assert "UTF-8" in str(error.detail)


@pytest.mark.parametrize("data", [b"", b"nope", b'{"event_id": "e-1",', b"\x00"])
def test_not_json(data: bytes) -> None:
    assert _reason(data).reason is DeadLetterReason.not_json


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "(message)"),
        ({k: v for k, v in _body().items() if k != "event_id"}, "event_id"),
        (_body(event_id=17), "event_id"),
        (_body(sent_at="2026-11-23T12:00:00"), "sent_at"),
        (_body(sent_at="yesterday"), "sent_at"),
        (_body(student={"course": [1]}), "student.course"),
        (_body(dataset="Not A Name"), "dataset"),
        (_body(colour="blue"), "colour"),
    ],
)
def test_schema_violations_name_the_field(body: Any, field: str) -> None:
    error = _reason(json.dumps(body).encode())
    assert error.reason is DeadLetterReason.schema_violation
    assert isinstance(error.detail, list)
    fields = [d["field"] for d in error.detail]
    assert any(f.startswith(field) for f in fields), fields


def test_schema_detail_never_echoes_values() -> None:
    error = _reason(json.dumps(_body(event_id=12345678)).encode())
    assert "12345678" not in json.dumps(error.detail)


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 678_900, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"


# ------------------------------------------------------------------------- tasks, stages, fields


def test_resolve_event_reasons() -> None:
    spec = load_spec("dropout")
    enrolment = set(spec.features("dropout", "enrolment")) | {"student_id"}
    semester_1 = set(spec.features("dropout", "semester_1")) | {"student_id"}
    assert resolve_event(spec, "dropout", None, enrolment) == ("dropout", "enrolment")
    assert resolve_event(spec, "dropout", None, semester_1) == ("dropout", "semester_1")
    assert resolve_event(spec, "dropout", "enrolment", semester_1) == ("dropout", "enrolment")
    cases = [
        (("nope", None, semester_1), DeadLetterReason.unknown_task),
        (("dropout", "semester_9", semester_1), DeadLetterReason.unknown_stage),
        (("dropout", "semester_1", enrolment), DeadLetterReason.missing_student_fields),
        (("dropout", None, {"student_id"}), DeadLetterReason.missing_student_fields),
        (("dropout", None, semester_1 | {"shoe_size"}), DeadLetterReason.invalid_student_fields),
    ]
    for (task, stage, fields), reason in cases:
        with pytest.raises(MessageError) as caught:
            resolve_event(spec, task, stage, fields)
        assert caught.value.reason is reason, (task, stage)
    with pytest.raises(MessageError) as caught:
        resolve_event(spec, "dropout", "semester_1", enrolment)
    named = {d["field"] for d in caught.value.detail if isinstance(d, dict)}
    assert "student.units_1st_sem_approved" in named


def test_the_student_id_is_required_where_it_cannot_be_derived() -> None:
    spec = load_spec("dropout")
    assert ensure_student_id(spec, {"student_id": 42})["student_id"] == 42
    with pytest.raises(MessageError) as caught:
        ensure_student_id(spec, {"course": "9254"})
    assert caught.value.reason is DeadLetterReason.missing_student_fields
    with pytest.raises(MessageError) as caught:
        ensure_student_id(spec, {"student_id": True})
    assert caught.value.reason is DeadLetterReason.invalid_student_fields
    hashed = spec.model_copy(
        update={"id": spec.id.model_copy(update={"derive": "hash", "hash_columns": ["course"]})}
    )
    assert ensure_student_id(hashed, {"course": "9254"})["student_id"]


# ------------------------------------------------------------------------------- dead letters


def test_redact_replaces_ids_at_any_depth() -> None:
    found: set[str] = set()
    payload = {"student": {"student_id": "S-12345", "course": "9254"}, "others": [{"student_id": 77}]}
    out = redact(payload, {"student_id"}, _fake_key, found)
    assert out == {
        "student": {"student_id": "pseudo-7", "course": "9254"},
        "others": [{"student_id": "pseudo-2"}],
    }
    assert found == {"S-12345", "77"}


def test_redact_text_handles_broken_json() -> None:
    found: set[str] = set()
    text = '{"event_id": "e", "student": {"student_id": "S-12345", "course": 1'
    out = redact_text(text, {"student_id"}, _fake_key, found)
    assert "S-12345" not in out and '"student_id": "pseudo-7"' in out
    out = redact_text('{"student_id": 123456, "x": 1', {"student_id"}, _fake_key, found)
    assert "123456" not in out


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(_body()).encode(),
        json.dumps(_body())[:-5].encode(),
        json.dumps(_body()).encode() + b"\xff",
    ],
)
def test_dead_letters_carry_no_raw_id(data: bytes) -> None:
    out = dead_letter(
        data,
        DeadLetterReason.invalid_student_fields,
        [{"field": "student.student_id", "found": ["S-12345"], "problem": "id S-12345 looks odd"}],
        partition="events",
        position="17-0",
        deliveries=1,
        id_fields={"student_id"},
        pseudonymize=_fake_key,
        at=AT,
    )
    assert b"S-12345" not in out
    letter = DeadLetter.model_validate_json(out)
    assert letter.reason is DeadLetterReason.invalid_student_fields
    assert letter.source.position == "17-0" and letter.source.partition == "events"
    assert letter.dead_lettered_at == AT


def test_a_json_payload_is_kept_parsed_and_text_as_text() -> None:
    kwargs: dict[str, Any] = {
        "partition": "p",
        "position": "1",
        "deliveries": 1,
        "id_fields": {"student_id"},
        "pseudonymize": _fake_key,
        "at": AT,
    }
    parsed = json.loads(dead_letter(json.dumps(_body()).encode(), DeadLetterReason.no_model, "x", **kwargs))
    assert parsed["payload"]["student"]["student_id"] == "pseudo-7"
    assert parsed["payload"]["event_id"] == "e-1"
    text = json.loads(dead_letter(b"not json at all", DeadLetterReason.not_json, "x", **kwargs))
    assert text["payload"] == "not json at all"
