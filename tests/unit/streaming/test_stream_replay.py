"""Replaying records as events: columns per stage, deterministic event ids, pacing, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.data.spec import load_spec
from retain.data.synth import synthesize_to_file
from retain.streaming.memory import MEMORY_STREAMS, MemorySink, MemoryStream
from retain.streaming.messages import parse_event
from retain.streaming.replay import events, load_records, record_columns, replay


def test_records_carry_what_is_known_at_the_stage() -> None:
    spec = load_spec("dropout")
    enrolment = record_columns(spec, "dropout", "enrolment")
    everything = record_columns(spec, "dropout")
    assert "target" not in everything and "student_id" in enrolment
    assert set(spec.features("dropout", "enrolment")) <= set(enrolment)
    assert not any(c.startswith("units_1st") for c in enrolment)
    assert set(spec.features("dropout", "semester_2")) <= set(everything)


def test_event_ids_are_unique_and_the_same_for_a_seed() -> None:
    spec = load_spec("dropout")
    records = load_records(spec, count=5, seed=3)
    first = [e["event_id"] for e in events(spec, records, count=12, seed=3)]
    again = [e["event_id"] for e in events(spec, load_records(spec, count=5, seed=3), count=12, seed=3)]
    other = [e["event_id"] for e in events(spec, records, count=12, seed=4)]
    assert first == again and len(set(first)) == 12 and not set(first) & set(other)
    assert load_records(spec, count=5, seed=3) == records


def test_replayed_events_are_valid_and_paced() -> None:
    spec = load_spec("dropout")
    sink = MemorySink(MemoryStream("replay"))
    ticks = {"now": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        ticks["now"] += seconds

    stats = replay(
        events(spec, load_records(spec, count=50, seed=1), count=50, seed=1, task="dropout"),
        sink,
        rate=100,
        clock=lambda: ticks["now"],
        sleep=sleep,
        now=lambda: datetime(2026, 11, 23, tzinfo=UTC),
    )
    assert stats.sent == 50
    assert sum(slept) == pytest.approx(0.49)  # 50 events at 100/s: the last one is due at 0.49 s
    entries = sink.stream.entries()
    event = parse_event(entries[0].data)
    assert event.task == "dropout" and event.sent_at == datetime(2026, 11, 23, tzinfo=UTC)
    assert entries[0].key and entries[0].key != event.student["student_id"]


def test_records_from_a_file_go_through_the_loaders(tmp_path: Path) -> None:
    spec = load_spec("dropout")
    path = synthesize_to_file(spec, 20, tmp_path / "students.csv", seed=2)  # source headers, ';'
    records = load_records(spec, file=path, seed=1, task="dropout", stage="semester_1")
    assert len(records) == 20
    assert isinstance(records[0]["admission_grade"], float) and isinstance(records[0]["course"], str)
    assert set(records[0]) == set(record_columns(spec, "dropout", "semester_1"))


def test_the_replay_command_sends_to_a_stream(tmp_path: Path) -> None:
    MEMORY_STREAMS.drop("cli-replay")
    result = CliRunner().invoke(
        app,
        [
            "stream",
            "replay",
            "--dataset",
            "dropout",
            "--to",
            "memory://cli-replay",
            "--rate",
            "0",
            "--count",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    entries = MEMORY_STREAMS.get("cli-replay").entries()
    assert len(entries) == 30
    assert json.loads(entries[0].data)["event_id"] == "dropout-s42-00000000"
    MEMORY_STREAMS.drop("cli-replay")


def test_the_schema_command_prints_the_event_schema() -> None:
    result = CliRunner().invoke(app, ["stream", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "Retain stream event"


def test_the_worker_command_refuses_a_bad_url_with_a_message() -> None:
    result = CliRunner().invoke(app, ["stream", "worker", "--source", "foo://x", "--sink", "memory://out"])
    assert result.exit_code == 2
    assert "unsupported stream URL scheme" in result.output
