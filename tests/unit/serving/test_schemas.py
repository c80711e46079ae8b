"""The predict body reader: plain JSON read in one pass, everything else through pydantic, and the
same outcome as pydantic's validation either way."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from retain.data.spec import ColumnType, load_spec
from retain.data.synth import synthesize
from retain.serving.schemas import predict_request_parser, predict_request_reader

SPEC = load_spec("dropout")
MAX_BATCH = 5
NUMERIC = {c.name for c in SPEC.columns if c.type in (ColumnType.integer, ColumnType.float)}


def _student(seed: int = 1) -> dict[str, Any]:
    row = synthesize(SPEC, 1, seed=seed).drop(columns=["target"]).to_dict("records")[0]
    return {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}


def _outcome(read: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", read(body)
    except ValidationError as exc:
        return "error", exc.errors(include_url=False)


def _comparable(value: Any, name: str) -> Any:
    if name in NUMERIC and type(value) is int:
        return float(value)  # what pydantic makes of an integer sent for a number: the same float
    if isinstance(value, float) and math.isnan(value):
        return "NaN"  # equal to itself
    return value


def _numbers_as_floats(request: dict[str, Any]) -> dict[str, Any]:
    out = dict(request)
    out["students"] = [{k: _comparable(v, k) for k, v in student.items()} for student in request["students"]]
    return out


def _bodies() -> list[tuple[str, bytes]]:
    good = _student(1)
    cases: list[tuple[str, Any]] = [
        ("plain", {"students": [good], "task": "dropout"}),
        (
            "several, every option",
            {
                "students": [_student(2), _student(3)],
                "task": "dropout",
                "stage": "semester_1",
                "explain": True,
                "top_k": 5,
                "event_id": "e-1",
            },
        ),
        ("empty student", {"students": [{}]}),
        ("code as text", {"students": [{**good, "course": "9254"}]}),
        ("number as integer", {"students": [{**good, "admission_grade": 140}]}),
        ("null values", {"students": [{**good, "admission_grade": None, "course": None}]}),
        ("code as float", {"students": [{**good, "course": 9254.0}]}),
        ("code as fractional float", {"students": [{**good, "course": 9254.5}]}),
        ("code as boolean", {"students": [{**good, "course": True}]}),
        ("number as text", {"students": [{**good, "admission_grade": "140"}]}),
        ("number as word", {"students": [{**good, "admission_grade": "high"}]}),
        ("number as boolean", {"students": [{**good, "admission_grade": False}]}),
        ("number as list", {"students": [{**good, "admission_grade": [1]}]}),
        ("flag as boolean", {"students": [{**good, "debtor": True}]}),
        ("flag as float", {"students": [{**good, "debtor": 1.0}]}),
        ("unknown field", {"students": [{**good, "shoe_size": 42}]}),
        ("unknown envelope field", {"students": [good], "students2": []}),
        ("no students", {"task": "dropout"}),
        ("empty list", {"students": []}),
        ("too many", {"students": [good] * (MAX_BATCH + 1)}),
        ("students not a list", {"students": good}),
        ("student not an object", {"students": [[1, 2]]}),
        ("long id", {"students": [{**good, "student_id": "x" * 201}]}),
        ("id as integer", {"students": [{**good, "student_id": 12}]}),
        ("long event id", {"students": [good], "event_id": "e" * 201}),
        ("top_k out of range", {"students": [good], "top_k": 11}),
        ("top_k as boolean", {"students": [good], "top_k": True}),
        ("top_k as float", {"students": [good], "top_k": 3.0}),
        ("explain as integer", {"students": [good], "explain": 1}),
        ("task as integer", {"students": [good], "task": 7}),
        ("not an object", [good]),
    ]
    bodies = [(name, json.dumps(body).encode()) for name, body in cases]
    bodies += [
        ("not JSON", b"{not json"),
        ("empty", b""),
        ("huge number", b'{"students": [{"admission_grade": 1e999}]}'),
        ("NaN literal", b'{"students": [{"admission_grade": NaN}]}'),
        ("big integer", b'{"students": [{"course": 123456789012345678901234567890}]}'),
        ("duplicate key", b'{"students": [{"course": "1", "course": 9254}]}'),
        ("not UTF-8", b'{"students": [{"course": "\xff"}]}'),
    ]
    return bodies


PLAIN = {
    "plain",
    "several, every option",
    "empty student",
    "code as text",
    "number as integer",
    "null values",
    "flag as boolean",
    "duplicate key",
}


class _Counting:
    """The pydantic parser, counting the bodies handed to it."""

    def __init__(self) -> None:
        self.inner = predict_request_parser(SPEC, MAX_BATCH)
        self.calls = 0

    def validate_json(self, body: bytes) -> Any:
        self.calls += 1
        return self.inner.validate_json(body)


@pytest.mark.parametrize(("name", "body"), _bodies(), ids=[n for n, _ in _bodies()])
def test_the_reader_gives_pydantics_outcome(name: str, body: bytes) -> None:
    counting = _Counting()
    reader = predict_request_reader(SPEC, MAX_BATCH, parser=counting)  # type: ignore[arg-type]
    parser = predict_request_parser(SPEC, MAX_BATCH)
    got_kind, got = _outcome(reader, body)
    assert counting.calls == (0 if name in PLAIN else 1)  # plain JSON is read in one pass
    want_kind, want = _outcome(parser.validate_json, body)
    assert got_kind == want_kind
    if want_kind == "error":
        assert got == want  # the same fields and messages: the reader handed it to pydantic
    else:
        assert _numbers_as_floats(got) == _numbers_as_floats(want)
