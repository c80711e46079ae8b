"""The stream processor with a real model and store: outputs, grouping, dead letters, duplicates,
pseudonymisation and transient failures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from retain.data.spec import load_spec
from retain.predictor import Predictor
from retain.scoring import Record, ScoredBatch, ScoringError, score_records
from retain.store.models import Prediction
from retain.store.repository import PredictionRecord, Store, StoredPrediction
from retain.streaming.base import Message
from retain.streaming.messages import DeadLetter, DeadLetterReason, StreamPrediction
from retain.streaming.processor import StaticModels, StreamProcessor
from retain.streaming.replay import load_records

SENT_AT = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SCORED_AT = SENT_AT + timedelta(milliseconds=42)


def _students(n: int, stage: str = "semester_1", seed: int = 5) -> list[dict[str, Any]]:
    return load_records(load_spec("dropout"), count=n, seed=seed, task="dropout", stage=stage)[:n]


def _event(
    student: dict[str, Any], event_id: str, *, stage: str | None = "semester_1", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": event_id, "dataset": "dropout", "task": "dropout"}
    if stage is not None:
        body["stage"] = stage
    body.update(student=student, sent_at=SENT_AT.isoformat())
    body.update(extra)
    return body


def _message(body: dict[str, Any] | bytes, position: int, deliveries: int = 1) -> Message:
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    return Message(f"{position}-0", data, "events", deliveries)


def _messages(bodies: Sequence[dict[str, Any] | bytes]) -> list[Message]:
    return [_message(b, i + 1) for i, b in enumerate(bodies)]


class CountingScorer:
    """The real scoring core, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, predictor: Predictor, records: Sequence[Record]) -> ScoredBatch:
        self.calls.append(len(records))
        return score_records(predictor, records)


@pytest.fixture
def scorer() -> CountingScorer:
    return CountingScorer()


@pytest.fixture
def processor(
    stream_predictors: dict[str, Predictor], store: Store, scorer: CountingScorer
) -> StreamProcessor:
    return StreamProcessor(
        store,
        StaticModels(stream_predictors.values()),
        specs={"dropout": load_spec("dropout")},
        max_deliveries=5,
        scorer=scorer,
        clock=lambda: SCORED_AT,
    )


def _rows(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(Prediction.event_id)))).scalar_one()
    return int(total), int(distinct)


def _letters(result_bytes: list[bytes]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(b) for b in result_bytes]


# --------------------------------------------------------------------------------- good events


def test_outputs_have_the_prediction_fields_and_timing(processor: StreamProcessor, store: Store) -> None:
    students = _students(5)
    result = processor.process(_messages([_event(s, f"e{i}") for i, s in enumerate(students)]))
    assert len(result.outputs) == 5 and not result.dead_letters
    assert result.created == 5 and result.duplicates == 0
    for raw, student, key in zip(result.outputs, students, result.keys, strict=True):
        out = StreamPrediction.model_validate_json(raw)
        assert out.student_id == student["student_id"]
        assert out.model_name == "dropout.dropout.semester_1" and out.stage == "semester_1"
        assert out.probabilities is not None and set(out.probabilities) == {"Not dropout", "Dropout"}
        assert out.risk_band in {"low", "medium", "high"} and out.prediction_id
        assert out.latency_ms == pytest.approx(42.0)
        assert out.duplicate is None and "duplicate" not in json.loads(raw)
        assert key == store.key(student["student_id"]) and key != student["student_id"]
    assert result.latencies_s == pytest.approx([0.042] * 5)
    assert _rows(store) == (5, 5)


def test_the_stage_is_inferred_per_event_and_groups_are_scored_once(
    processor: StreamProcessor, scorer: CountingScorer
) -> None:
    semester = _students(6, "semester_1")
    enrolment = _students(4, "enrolment", seed=9)
    bodies = []
    for i in range(6):  # interleaved: the groups are not contiguous in the batch
        bodies.append(_event(semester[i], f"s{i}", stage=None))
        if i < 4:
            bodies.append(_event(enrolment[i], f"n{i}", stage=None))
    result = processor.process(_messages(bodies))
    assert not result.dead_letters
    stages = [json.loads(o)["stage"] for o in result.outputs]
    assert sorted(stages) == ["enrolment"] * 4 + ["semester_1"] * 6
    assert sorted(scorer.calls) == [4, 6]


def test_scores_match_the_scoring_core(
    processor: StreamProcessor, stream_predictors: dict[str, Predictor]
) -> None:
    students = _students(3)
    expected = score_records(stream_predictors["semester_1"], students).outputs
    result = processor.process(_messages([_event(s, f"e{i}") for i, s in enumerate(students)]))
    got = [json.loads(o) for o in result.outputs]
    for g, e in zip(got, expected, strict=True):
        assert g["risk_score"] == pytest.approx(e["risk_score"]) and g["risk_band"] == e["risk_band"]


# ------------------------------------------------------------------------------- dead letters


def test_every_dead_letter_reason(processor: StreamProcessor, store: Store) -> None:
    s = _students(12)
    no_id = {k: v for k, v in s[9].items() if k != "student_id"}
    bad_code = {**s[6], "course": "123456"}
    cases: list[tuple[dict[str, Any] | bytes, DeadLetterReason]] = [
        (b"\xff\xfe not utf-8", DeadLetterReason.not_utf8),
        (
            b'{"event_id": "x", "student": {"student_id": "' + s[1]["student_id"].encode() + b'"',
            DeadLetterReason.not_json,
        ),
        ({"event_id": "x", "dataset": "dropout", "student": s[2]}, DeadLetterReason.schema_violation),
        (_event(s[3], "x3", dataset="nope"), DeadLetterReason.unknown_dataset),
        (_event(s[4], "x4", task="nope"), DeadLetterReason.unknown_task),
        (_event(s[5], "x5", stage="semester_9"), DeadLetterReason.unknown_stage),
        (_event(bad_code, "x6"), DeadLetterReason.invalid_student_fields),
        (_event({**s[7], "shoe_size": 44}, "x7"), DeadLetterReason.invalid_student_fields),
        (_event(_students(1, "enrolment", seed=3)[0], "x8"), DeadLetterReason.missing_student_fields),
        (_event(no_id, "x9"), DeadLetterReason.missing_student_fields),
        (_event(_students(1, "semester_2")[0], "x10", stage=None), DeadLetterReason.no_model),
    ]
    good = _event(s[11], "good")
    messages = [*_messages([c for c, _ in cases]), _message(good, 99)]
    messages.append(_message(_event(s[0], "again"), 100, deliveries=6))
    result = processor.process(messages)
    letters = _letters(result.dead_letters)
    by_position = {letter.source.position: letter for letter in letters}
    for i, (_, reason) in enumerate(cases):
        assert by_position[f"{i + 1}-0"].reason is reason, (i, by_position[f"{i + 1}-0"].detail)
    assert by_position["100-0"].reason is DeadLetterReason.too_many_deliveries
    assert by_position["100-0"].detail == "delivered 6 times (limit 5)"
    assert by_position["100-0"].deliveries == 6
    assert len(result.outputs) == 1 and json.loads(result.outputs[0])["event_id"] == "good"
    assert sum(result.dead_lettered.values()) == len(cases) + 1
    named = json.dumps([letter.detail for letter in letters])
    assert "student.course" in named and "student.shoe_size" in named and "student.student_id" in named
    assert _rows(store) == (1, 1)


def test_dead_letters_and_logs_never_hold_a_raw_student_id(
    processor: StreamProcessor, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    s = _students(4)
    bodies: list[dict[str, Any] | bytes] = [
        _event({**s[0], "course": "123456"}, "a"),
        _event({**s[1], "admission_grade": "high"}, "b", task="nope"),
        json.dumps(_event(s[2], "c"))[:-30].encode(),
        _event({**s[3], "student_id": "x" * 300}, "d"),
    ]
    result = processor.process(_messages(bodies))
    assert len(result.dead_letters) == 4
    blob = b"\n".join(result.dead_letters)
    for student in s[:3]:
        assert student["student_id"].encode() not in blob
        assert store.key(student["student_id"]).encode() in blob
    assert b"x" * 300 not in blob
    assert caplog.records and not any(student["student_id"] in caplog.text for student in s)


def test_bad_records_in_a_group_are_set_aside_and_the_rest_scored_once(
    processor: StreamProcessor, scorer: CountingScorer
) -> None:
    students = _students(64)
    for row, field, value in ((37, "course", "123456"), (3, "admission_grade", 999.0), (50, "course", "0")):
        students[row] = {**students[row], field: value}
    result = processor.process(_messages([_event(s, f"e{i}") for i, s in enumerate(students)]))
    assert len(result.outputs) == 61 and len(result.dead_letters) == 3
    letters = {letter.source.position: letter for letter in _letters(result.dead_letters)}
    assert set(letters) == {"4-0", "38-0", "51-0"}
    assert [d["field"] for d in letters["4-0"].detail] == ["student.admission_grade"]  # type: ignore[index]
    assert [d["field"] for d in letters["38-0"].detail] == ["student.course"]  # type: ignore[index]
    assert scorer.calls == [64, 61]  # validation names the rows: no record-by-record retries


def test_without_named_rows_a_group_is_bisected(
    stream_predictors: dict[str, Predictor], store: Store
) -> None:
    students = _students(32)
    poison = students[20]["student_id"]
    calls: list[int] = []

    def vague(predictor: Predictor, records: Sequence[Record]) -> ScoredBatch:
        calls.append(len(records))
        if any(r["student_id"] == poison for r in records):
            raise ScoringError("something is wrong somewhere")
        return score_records(predictor, records)

    processor = StreamProcessor(
        store,
        StaticModels(stream_predictors.values()),
        specs={"dropout": load_spec("dropout")},
        max_deliveries=5,
        scorer=vague,
    )
    result = processor.process(_messages([_event(s, f"e{i}") for i, s in enumerate(students)]))
    assert len(result.outputs) == 31
    (letter,) = _letters(result.dead_letters)
    assert letter.reason is DeadLetterReason.invalid_student_fields and letter.source.position == "21-0"
    assert len(calls) <= 2 * 5 + 1  # halving, not 32 single calls


def test_a_record_that_breaks_the_scorer_is_dead_lettered_alone(
    stream_predictors: dict[str, Predictor], store: Store
) -> None:
    students = _students(8)
    poison = students[5]["student_id"]

    def fragile(predictor: Predictor, records: Sequence[Record]) -> ScoredBatch:
        if any(r["student_id"] == poison for r in records):
            raise RuntimeError("boom")
        return score_records(predictor, records)

    processor = StreamProcessor(
        store,
        StaticModels(stream_predictors.values()),
        specs={"dropout": load_spec("dropout")},
        max_deliveries=5,
        scorer=fragile,
    )
    result = processor.process(_messages([_event(s, f"e{i}") for i, s in enumerate(students)]))
    assert len(result.outputs) == 7
    (letter,) = _letters(result.dead_letters)
    assert letter.reason is DeadLetterReason.scoring_failed and "RuntimeError" in str(letter.detail)


# --------------------------------------------------------------------------------- duplicates


def test_a_redelivered_event_is_not_stored_twice(processor: StreamProcessor, store: Store) -> None:
    students = _students(6)
    messages = _messages([_event(s, f"e{i}") for i, s in enumerate(students)])
    first = processor.process(messages)
    again = processor.process([*messages[2:], _message(_event(students[0], "e0"), 7)])
    assert again.created == 0 and again.duplicates == 5
    before = {json.loads(o)["event_id"]: json.loads(o) for o in first.outputs}
    for raw in again.outputs:
        out = json.loads(raw)
        original = before[out["event_id"]]
        assert out["duplicate"] is True
        for field in (
            "prediction_id",
            "risk_score",
            "risk_band",
            "prediction",
            "model_version",
            "probabilities",
        ):
            assert out[field] == original[field], field
        StreamPrediction.model_validate(out)
    assert _rows(store) == (6, 6)


def test_the_same_event_twice_in_one_batch_is_stored_once(processor: StreamProcessor, store: Store) -> None:
    student = _students(1)[0]
    result = processor.process(_messages([_event(student, "same"), _event(student, "same")]))
    first, second = (json.loads(o) for o in result.outputs)
    assert first["prediction_id"] == second["prediction_id"] and second["duplicate"] is True
    assert _rows(store) == (1, 1)


# ------------------------------------------------------------------------------ transient errors


class DownStore:
    """A store whose database is down."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = True

    def record_predictions(self, rows: Sequence[PredictionRecord]) -> list[StoredPrediction]:
        if self.down:
            raise OperationalError("INSERT", {}, Exception("database is down"))
        return self.store.record_predictions(rows)

    def key(self, student_id: str) -> str:
        return self.store.key(student_id)


def test_a_database_outage_raises_and_a_retry_stores_once(
    stream_predictors: dict[str, Predictor], store: Store
) -> None:
    flaky = DownStore(store)
    processor = StreamProcessor(
        flaky,
        StaticModels(stream_predictors.values()),
        specs={"dropout": load_spec("dropout")},
        max_deliveries=5,
    )
    messages = _messages([_event(s, f"e{i}") for i, s in enumerate(_students(4))])
    with pytest.raises(OperationalError):
        processor.process(messages)
    assert _rows(store) == (0, 0)
    flaky.down = False
    assert processor.process(messages).created == 4
    assert processor.process(messages).duplicates == 4
    assert _rows(store) == (4, 4)


def test_a_registry_outage_is_not_a_dead_letter(store: Store) -> None:
    class Unreachable:
        def get(self, spec: Any, task: str, stage: str) -> Predictor:
            raise ConnectionError("registry unreachable")

    processor = StreamProcessor(
        store, Unreachable(), specs={"dropout": load_spec("dropout")}, max_deliveries=5
    )
    with pytest.raises(ConnectionError):
        processor.process(_messages([_event(_students(1)[0], "e")]))
