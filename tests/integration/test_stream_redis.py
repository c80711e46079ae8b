"""The stream worker against a real Redis: a crash midway (SIGKILL, restart as a new consumer that
claims the dead one's pending events), poison events, and two workers sharing a consumer group.

Redis: 127.0.0.1:6379 when reachable (or ``RETAIN_TEST_REDIS_URL``), else a ``redis-server``
started on a free loopback port. Without either the tests skip (fail when ``CI`` is set). Every
test uses its own stream names and deletes them afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from retain.data.spec import load_spec
from retain.predictor import Predictor
from retain.settings import get_settings
from retain.store.models import Prediction
from retain.store.repository import Store
from retain.streaming.messages import DeadLetter
from retain.streaming.processor import StaticModels, StreamProcessor
from retain.streaming.redis_streams import RedisStreamSink, RedisStreamSource
from retain.streaming.replay import events, load_records, replay
from retain.streaming.worker import WorkerStats, run_worker

pytestmark = pytest.mark.integration

DEFAULT_URL = os.environ.get("RETAIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reachable Redis: the default one, else a throwaway ``redis-server``."""
    try:
        redis.Redis.from_url(DEFAULT_URL, socket_connect_timeout=1).ping()
        yield DEFAULT_URL
        return
    except redis.RedisError as exc:
        first = f"{DEFAULT_URL}: {exc}"
    server = shutil.which("redis-server")
    if server is None:
        _unavailable(f"Redis not reachable ({first}) and redis-server is not installed")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or process.poll() is not None:
                    _unavailable(
                        f"Redis not reachable ({first}) and redis-server on port {port} did not start"
                    )
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Streams:
    """One test's stream names on the server."""

    url: str
    events: str
    output: str
    dead: str
    group: str
    client: redis.Redis

    def source_url(self, consumer: str, **options: object) -> str:
        extra = "".join(f"&{k}={v}" for k, v in options.items())
        return f"{self.url}?stream={self.events}&group={self.group}&consumer={consumer}{extra}"

    def sink_url(self, stream: str) -> str:
        return f"{self.url}?stream={stream}"

    def source(self, consumer: str, **kwargs: Any) -> RedisStreamSource:
        return RedisStreamSource(self.client, self.events, self.group, consumer, **kwargs)

    def sink(self, stream: str) -> RedisStreamSink:
        return RedisStreamSink(self.client, stream)

    def backlog(self) -> tuple[int, int]:
        for info in self.client.xinfo_groups(self.events):
            if info["name"].decode() == self.group:
                return int(info["lag"] or 0), int(info["pending"])
        return -1, -1

    def outputs(self, stream: str) -> list[dict[str, Any]]:
        return [json.loads(fields[b"data"]) for _, fields in self.client.xrange(stream)]


@pytest.fixture
def streams(redis_url: str) -> Iterator[Streams]:
    client = redis.Redis.from_url(redis_url, protocol=2)
    tag = uuid.uuid4().hex[:10]
    s = Streams(
        redis_url,
        f"retain-test-{tag}-events",
        f"retain-test-{tag}-out",
        f"retain-test-{tag}-dead",
        "scoring",
        client,
    )
    try:
        yield s
    finally:
        client.delete(s.events, s.output, s.dead)
        client.close()


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with ``dropout.dropout.semester_1`` registered (800 synthetic rows): this module's copy."""
    home = tmp_path_factory.mktemp("stream-redis-home")
    return copy_trained_home(home, ("dropout", "dropout", "semester_1", 800), data_dir=True)


@pytest.fixture(scope="module")
def predictor(trained_home: Path) -> Predictor:
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(trained_home))
    get_settings.cache_clear()
    try:
        return Predictor.from_registry("dropout", "dropout", "semester_1")
    finally:
        mp.undo()
        get_settings.cache_clear()


def _fill(
    s: Streams,
    count: int,
    seed: int = 7,
    corrupt: Callable[[int, dict[str, Any]], bytes | None] | None = None,
) -> None:
    """Send ``count`` semester-1 events to the events stream (``corrupt`` may replace some)."""
    spec = load_spec("dropout")
    records = load_records(spec, count=min(count, 5000), seed=seed, task="dropout", stage="semester_1")
    stream = events(spec, records, count=count, seed=seed, task="dropout", stage="semester_1")
    if corrupt is None:
        replay(stream, s.sink(s.events), rate=0)
        return
    payloads = []
    for n, event in enumerate(stream):
        event["sent_at"] = "2026-11-23T12:00:00Z"
        payloads.append(corrupt(n, event) or json.dumps(event).encode())
    s.sink(s.events).send(payloads)


def _counts(url: str) -> tuple[int, int]:
    store = Store.open(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
            distinct = conn.execute(select(func.count(func.distinct(Prediction.event_id)))).scalar_one()
        return int(total), int(distinct)
    finally:
        store.close()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------- crash


def _worker(s: Streams, consumer: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "from retain.cli import main; main()",
        "stream",
        "worker",
        "--source",
        s.source_url(consumer),
        "--sink",
        s.sink_url(s.output),
        "--dead-letter",
        s.sink_url(s.dead),
        "--batch-size",
        "1000",
        "--max-wait-ms",
        "20",
    ]
    handle = log.open("ab")
    return subprocess.Popen(command, env=env, stdout=handle, stderr=handle)


def test_a_killed_worker_loses_nothing_and_stores_nothing_twice(
    streams: Streams, trained_home: Path, tmp_path: Path
) -> None:
    total = 20_000
    _fill(streams, total)
    database = f"sqlite:///{tmp_path / 'stream.db'}"
    Store.open(database).close()  # migrate once, before the workers
    env = {
        **os.environ,
        "RETAIN_HOME": str(trained_home),
        "RETAIN_DATABASE_URL": database,
        "RETAIN_STREAM_CLAIM_IDLE_MS": "1000",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    log = tmp_path / "workers.log"
    first = _worker(streams, "worker-a", env, log)
    try:
        _wait(
            lambda: _counts(database)[0] >= 3000 or first.poll() is not None,
            120,
            "the first worker to get going",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    stored_at_kill = _counts(database)[0]
    summary = streams.client.xpending(streams.events, streams.group)
    held_by_dead = {c["name"].decode(): int(c["pending"]) for c in summary["consumers"]}.get("worker-a", 0)
    assert stored_at_kill < total, "the first worker finished before it could be killed"
    assert held_by_dead > 0, "the killed worker held no pending events: nothing to recover"

    second = _worker(streams, "worker-b", env, log)
    try:
        _wait(
            lambda: streams.backlog() == (0, 0) and _counts(database)[0] >= total, 120, "the restarted worker"
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    assert _counts(database) == (total, total)  # every event exactly one stored prediction
    assert "claimed" in log.read_text(errors="replace")  # the new consumer took over the dead one's events
    outputs = streams.outputs(streams.output)
    assert len({o["event_id"] for o in outputs}) == total
    assert (
        len({o["prediction_id"] for o in outputs}) == total
    )  # a repeated output repeats the stored prediction
    assert streams.client.xlen(streams.dead) == 0


# -------------------------------------------------------------------------------------- poison


def _run(
    s: Streams, consumer: str, processor: StreamProcessor, stop: threading.Event, box: dict[str, WorkerStats]
) -> threading.Thread:
    def target() -> None:
        box[consumer] = run_worker(
            s.source(consumer, claim_idle_ms=60_000),
            s.sink(s.output),
            s.sink(s.dead),
            processor,
            batch_size=250,
            max_wait_ms=20,
            stop=stop,
            handle_signals=False,
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_poison_events_are_dead_lettered_and_the_rest_scored(
    streams: Streams, predictor: Predictor, tmp_path: Path
) -> None:
    total = 5000
    kinds = ["not json", "no event id", "unknown dataset", "bad code", "not utf-8"]
    poisoned: dict[str, str] = {}

    def corrupt(n: int, event: dict[str, Any]) -> bytes | None:
        if n % 100 != 50:
            return None
        kind = kinds[(n // 100) % len(kinds)]
        poisoned[event["event_id"]] = kind
        if kind == "not json":
            return json.dumps(event).encode()[:-40]
        if kind == "no event id":
            del event["event_id"]
        elif kind == "unknown dataset":
            event["dataset"] = "astrology"
        elif kind == "bad code":
            event["student"]["course"] = "123456"
        else:
            return json.dumps(event).encode() + b"\xff"
        return json.dumps(event).encode()

    _fill(streams, total, corrupt=corrupt)
    assert len(poisoned) == total // 100
    store = Store.open(f"sqlite:///{tmp_path / 'poison.db'}")
    processor = StreamProcessor(store, StaticModels([predictor]), max_deliveries=5)
    stop = threading.Event()
    box: dict[str, WorkerStats] = {}
    thread = _run(streams, "poison", processor, stop, box)
    try:
        _wait(lambda: streams.backlog() == (0, 0), 120, "the worker to drain the stream")
    finally:
        stop.set()
        thread.join(30)
    letters = [DeadLetter.model_validate(d) for d in streams.outputs(streams.dead)]
    assert len(letters) == len(poisoned)
    reasons = {letter.reason.value for letter in letters}
    assert reasons == {
        "not_json",
        "schema_violation",
        "unknown_dataset",
        "invalid_student_fields",
        "not_utf8",
    }
    assert all(letter.detail for letter in letters)
    good = {o["event_id"] for o in streams.outputs(streams.output)}
    assert len(good) == total - len(poisoned) and not good & set(poisoned)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == total - len(
            poisoned
        )
    store.close()


# ----------------------------------------------------------------------------------- scale out


def test_two_workers_share_a_group_and_each_event_counts_once(
    streams: Streams, predictor: Predictor, tmp_path: Path
) -> None:
    total = 6000
    _fill(streams, total, seed=11)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store.open(url).close()
    stores = [Store.open(url, migrate=False) for _ in range(2)]
    stop = threading.Event()
    box: dict[str, WorkerStats] = {}
    threads = [
        _run(streams, name, StreamProcessor(store, StaticModels([predictor]), max_deliveries=5), stop, box)
        for name, store in zip(("w1", "w2"), stores, strict=True)
    ]
    try:
        _wait(lambda: streams.backlog() == (0, 0), 120, "both workers to drain the stream")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for store in stores:
            store.close()
    assert box["w1"].events > 0 and box["w2"].events > 0
    assert box["w1"].events + box["w2"].events == total
    assert _counts(url) == (total, total)
    outputs = streams.outputs(streams.output)
    assert len(outputs) == total and len({o["event_id"] for o in outputs}) == total


# ---------------------------------------------------------------------------- redelivery limit


def test_an_event_delivered_too_often_goes_to_the_dead_letters(
    streams: Streams, predictor: Predictor
) -> None:
    _fill(streams, 3)
    ghost = streams.source("ghost", claim_idle_ms=60_000)
    assert len(ghost.read(10, 10)) == 3  # delivered once to a consumer that never acks
    for _ in range(5):  # five more consumers claim them and die too
        streams.client.xautoclaim(streams.events, streams.group, "ghost", min_idle_time=0, start_id="0-0")
    time.sleep(0.01)
    worker = streams.source("survivor", claim_idle_ms=1)
    claimed = worker.read(10, 10)
    assert sorted(m.deliveries for m in claimed) == [7, 7, 7]
    store = Store.open("sqlite://")
    result = StreamProcessor(store, StaticModels([predictor]), max_deliveries=5).process(claimed)
    letters = [DeadLetter.model_validate_json(d) for d in result.dead_letters]
    assert [letter.reason.value for letter in letters] == ["too_many_deliveries"] * 3
    assert letters[0].detail == "delivered 7 times (limit 5)" and not result.outputs
    worker.ack(claimed)
    assert streams.backlog() == (0, 0)
    store.close()


def test_a_deleted_stream_is_recreated_not_fatal(streams: Streams) -> None:
    source = streams.source("reader", claim_idle_ms=60_000)
    streams.client.delete(streams.events)
    assert source.read(10, 10) == []  # NOGROUP: the group is created again
    streams.sink(streams.events).send([b"{}"])
    assert [m.data for m in source.read(10, 10)] == [b"{}"]
