"""The Lambda handler for Kinesis batches: partial batch failures, dead letters, lazy init.

Most tests use a fake processor and sinks; the last ones go through the real processor, store and
a small trained model (``dropout.dropout.semester_1`` on 800 synthetic rows), built by the
handler itself from the environment, as in a Lambda container.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.settings import get_settings
from retain.store.db import make_engine
from retain.store.repository import Store
from retain.streaming import lambda_handler
from retain.streaming.base import Message
from retain.streaming.lambda_handler import (
    LambdaRuntime,
    handle_in_order,
    handler,
    messages_from_event,
    set_runtime,
)
from retain.streaming.memory import MEMORY_STREAMS
from retain.streaming.processor import BatchResult, StreamProcessor

SHARD = "shardId-000000000003"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/events"


def kinesis_event(payloads: Sequence[bytes], *, shard: str = SHARD, start: int = 1000) -> dict[str, Any]:
    """A Kinesis event as Lambda delivers it."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"key-{i}",
                    "sequenceNumber": str(start + i),
                    "data": base64.b64encode(p).decode("ascii"),
                    "approximateArrivalTimestamp": 1_790_000_000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{start + i}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": ARN,
            }
            for i, p in enumerate(payloads)
        ]
    }


class FakeProcessor:
    """Outputs ``out:DATA``; ``bad...`` becomes a dead letter; ``down...`` raises (store down)."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def process(self, messages: Sequence[Message]) -> BatchResult:
        self.batches.append([m.data for m in messages])
        if any(m.data.startswith(b"down") for m in messages):
            raise ConnectionError("database is down")
        result = BatchResult()
        for m in messages:
            if m.data.startswith(b"bad"):
                result.dead_letters.append(b"dead:" + m.data)
                result.dead_lettered["not_json"] += 1
            else:
                result.outputs.append(b"out:" + m.data)
                result.keys.append("pseudonym")
        return result


class FakeSink:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[bytes] = []
        self.keys: list[str] = []
        self.fail = fail

    def send(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        if self.fail:
            raise ConnectionError("stream unreachable")
        self.sent.extend(payloads)
        self.keys.extend(keys or [])

    def close(self) -> None:
        pass


class Context:
    def __init__(self, millis: list[int]) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis.pop(0) if len(self.millis) > 1 else self.millis[0]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeProcessor, FakeSink, FakeSink]]:
    processor, output, dead = FakeProcessor(), FakeSink(), FakeSink()
    set_runtime(LambdaRuntime(processor, output, dead, chunk_size=2))
    yield processor, output, dead
    set_runtime(None)


# ------------------------------------------------------------------------------------ parsing


def test_messages_from_event() -> None:
    messages = messages_from_event(kinesis_event([b'{"a": 1}', b"x"], start=7))
    assert messages == [
        Message(position="7", data=b'{"a": 1}', partition=SHARD),
        Message(position="8", data=b"x", partition=SHARD),
    ]
    assert messages_from_event({"Records": []}) == []


def test_undecodable_data_is_passed_on_as_text() -> None:
    event = kinesis_event([b"ok"])
    event["Records"][0]["kinesis"]["data"] = "not base64!"
    assert messages_from_event(event)[0].data == b"not base64!"


def test_not_a_kinesis_event() -> None:
    with pytest.raises(ValueError, match="Kinesis"):
        messages_from_event({"Records": [{"body": "an SQS message"}]})


# -------------------------------------------------------------------------- partial failures


def test_every_record_handled(fakes: tuple[FakeProcessor, FakeSink, FakeSink]) -> None:
    processor, output, dead = fakes
    assert handler(kinesis_event([b"a", b"b", b"c"]), None) == {"batchItemFailures": []}
    assert processor.batches == [[b"a", b"b"], [b"c"]]  # micro-batches of chunk_size
    assert output.sent == [b"out:a", b"out:b", b"out:c"] and output.keys == ["pseudonym"] * 3
    assert dead.sent == []


def test_bad_records_are_dead_lettered_and_count_as_handled(
    fakes: tuple[FakeProcessor, FakeSink, FakeSink],
) -> None:
    _, output, dead = fakes
    assert handler(kinesis_event([b"a", b"bad-1", b"bad-2"]), None) == {"batchItemFailures": []}
    assert output.sent == [b"out:a"]
    assert dead.sent == [b"dead:bad-1", b"dead:bad-2"]


def test_transient_failure_reports_it_and_everything_after(
    fakes: tuple[FakeProcessor, FakeSink, FakeSink],
) -> None:
    processor, output, _ = fakes
    response = handler(kinesis_event([b"a", b"b", b"c", b"down", b"e", b"f"], start=100), None)
    # chunks [a b] [c down] [e f]: the second fails, so 102.. are retried; [e f] is not even tried
    assert response == {"batchItemFailures": [{"itemIdentifier": str(s)} for s in (102, 103, 104, 105)]}
    assert output.sent == [b"out:a", b"out:b"]
    assert len(processor.batches) == 2


def test_shards_fail_independently() -> None:
    event = kinesis_event([b"down", b"b"], shard="shardId-1", start=1)
    event["Records"] += kinesis_event([b"c", b"d"], shard="shardId-2", start=1)["Records"]
    failed = handle_in_order(messages_from_event(event), FakeProcessor().process, chunk_size=1)
    assert failed == ["1", "2"]  # shardId-1 from its first record; shardId-2 untouched


def test_sink_failure_is_transient(fakes: tuple[FakeProcessor, FakeSink, FakeSink]) -> None:
    processor, _, _ = fakes
    set_runtime(LambdaRuntime(processor, FakeSink(), FakeSink(fail=True), chunk_size=10))
    response = handler(kinesis_event([b"a", b"bad"]), None)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["1000", "1001"]


def test_no_sinks_configured_still_stores() -> None:
    processor = FakeProcessor()
    set_runtime(LambdaRuntime(processor, None, None))
    try:
        assert handler(kinesis_event([b"a", b"bad"]), None) == {"batchItemFailures": []}
        assert processor.batches == [[b"a", b"bad"]]
    finally:
        set_runtime(None)


def test_running_out_of_time_leaves_the_rest_to_a_retry(
    fakes: tuple[FakeProcessor, FakeSink, FakeSink],
) -> None:
    processor, _, _ = fakes
    context = Context([60_000, 1_000])
    response = handler(kinesis_event([b"a", b"b", b"c", b"d"], start=1), context)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["3", "4"]
    assert processor.batches == [[b"a", b"b"]]


def test_cold_start_failure_retries_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    set_runtime(None)

    def broken() -> LambdaRuntime:
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(LambdaRuntime, "from_environment", staticmethod(broken))
    response = handler(kinesis_event([b"a", b"b"], start=5), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "5"}, {"itemIdentifier": "6"}]}
    set_runtime(None)


def test_runtime_is_built_once_per_container(monkeypatch: pytest.MonkeyPatch) -> None:
    set_runtime(None)
    built: list[int] = []

    def build() -> LambdaRuntime:
        built.append(1)
        return LambdaRuntime(FakeProcessor())

    monkeypatch.setattr(LambdaRuntime, "from_environment", staticmethod(build))
    handler(kinesis_event([b"a"]), None)
    handler(kinesis_event([b"b"]), None)
    assert len(built) == 1
    set_runtime(None)


# ----------------------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dropout.dropout.semester_1`` trained on 800 synthetic rows (seed 31): this module's copy."""
    return copy_trained_home(
        tmp_path_factory.mktemp("lambda-home"), ("dropout", "dropout", "semester_1", 800), data_dir=True
    )


@pytest.fixture
def lambda_env(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A container's environment: the trained home, a fresh store, memory output streams."""
    monkeypatch.setenv("RETAIN_HOME", str(trained_home))
    monkeypatch.setenv("RETAIN_DATABASE_URL", f"sqlite:///{trained_home / 'lambda-test.db'}")
    monkeypatch.setenv(lambda_handler.OUTPUT_URL_ENV, "memory://lambda-out")
    monkeypatch.setenv(lambda_handler.DEAD_LETTER_URL_ENV, "memory://lambda-dead")
    get_settings.cache_clear()
    MEMORY_STREAMS.drop()
    set_runtime(None)
    yield trained_home
    set_runtime(None)
    MEMORY_STREAMS.drop()
    (trained_home / "lambda-test.db").unlink(missing_ok=True)
    get_settings.cache_clear()


def student_events(n: int, *, prefix: str) -> list[bytes]:
    frame = synthesize(load_spec("dropout"), n, seed=9).drop(columns=["target"])
    frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    events = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        student = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        student["student_id"] = f"{prefix}-student-{i}"
        event = {
            "event_id": f"{prefix}-{i}",
            "dataset": "dropout",
            "task": "dropout",
            "student": student,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        events.append(json.dumps(event).encode())
    return events


def stored_predictions(db: Path) -> int:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM predictions")).scalar_one())
    finally:
        engine.dispose()


def test_real_model_scores_stores_and_dead_letters(lambda_env: Path) -> None:
    events = [*student_events(5, prefix="ok"), b"{not json", b'{"event_id": "x"}']
    response = handler(kinesis_event(events), None)
    assert response == {"batchItemFailures": []}
    outputs = [json.loads(e.data) for e in MEMORY_STREAMS.get("lambda-out").entries()]
    assert [o["event_id"] for o in outputs] == [f"ok-{i}" for i in range(5)]
    assert all(o["model_name"] == "dropout.dropout.semester_1" and 0 <= o["risk_score"] <= 1 for o in outputs)
    keys = [e.key for e in MEMORY_STREAMS.get("lambda-out").entries()]
    assert all(k and "student" not in k for k in keys)  # partition keys are pseudonyms
    dead = [json.loads(e.data) for e in MEMORY_STREAMS.get("lambda-dead").entries()]
    assert [d["reason"] for d in dead] == ["not_json", "schema_violation"]
    assert stored_predictions(lambda_env / "lambda-test.db") == 5

    # Lambda retries a batch (or a part of it): nothing is stored twice
    again = handler(kinesis_event(events[:3]), None)
    assert again == {"batchItemFailures": []}
    assert stored_predictions(lambda_env / "lambda-test.db") == 5
    repeated = [json.loads(e.data) for e in MEMORY_STREAMS.get("lambda-out").entries()][5:]
    assert [o.get("duplicate") for o in repeated] == [True, True, True]


def test_real_model_with_the_store_down_reports_the_batch(lambda_env: Path) -> None:
    runtime = lambda_handler.runtime()  # built from the environment on first use
    assert isinstance(runtime.processor, StreamProcessor)
    down = Store(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"))
    runtime.processor.store = down
    events = student_events(3, prefix="down")
    response = handler(kinesis_event(events, start=50), None)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["50", "51", "52"]
    assert MEMORY_STREAMS.get("lambda-out").entries() == []
    down.close()
