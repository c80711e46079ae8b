"""The worker with in-memory streams and fake processors: micro-batches, step order, retries,
graceful shutdown, backpressure and metrics."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy.exc import OperationalError

from retain.monitoring.metrics import StreamMetrics
from retain.streaming.base import Message
from retain.streaming.memory import MemorySink, MemorySource, MemoryStream
from retain.streaming.processor import BatchResult
from retain.streaming.worker import WorkerStats, run_worker


class Journal:
    """Records the order of every step across the fakes."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def add(self, step: str, n: int) -> None:
        with self.lock:
            self.steps.append((step, n))


class EchoProcessor:
    """Outputs each message's body; bodies starting with ``bad`` become dead letters."""

    def __init__(self, journal: Journal, before: Callable[[Sequence[Message]], None] | None = None) -> None:
        self.journal = journal
        self.before = before
        self.sizes: list[int] = []

    def process(self, messages: Sequence[Message]) -> BatchResult:
        if self.before is not None:
            self.before(messages)
        self.sizes.append(len(messages))
        result = BatchResult()
        for m in messages:
            if m.data.startswith(b"bad"):
                result.dead_letters.append(b"dead:" + m.data)
                result.dead_lettered["not_json"] += 1
            else:
                result.outputs.append(b"out:" + m.data)
                result.keys.append("k")
                result.latencies_s.append(0.01)
                result.created += 1
        self.journal.add("store", len(messages))
        return result


class JournalSink(MemorySink):
    def __init__(self, name: str, journal: Journal, fail: int = 0) -> None:
        super().__init__(MemoryStream(name))
        self.name = name
        self.journal = journal
        self.fail = fail

    def send(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("sink unreachable")
        super().send(payloads, keys)
        self.journal.add(self.name, len(payloads))


class JournalSource(MemorySource):
    def __init__(self, stream: MemoryStream, journal: Journal) -> None:
        super().__init__(stream)
        self.journal = journal
        self.read_total = 0

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        got = super().read(max_count, block_ms)
        self.read_total += len(got)
        return got

    def ack(self, messages: Sequence[Message]) -> None:
        super().ack(messages)
        self.journal.add("ack", len(messages))


def _stream(n: int, bad_every: int = 0) -> MemoryStream:
    stream = MemoryStream("events")
    stream.append([(b"bad-%d" if bad_every and i % bad_every == 0 else b"ok-%d") % i for i in range(n)])
    return stream


def _run_in_thread(**kwargs: object) -> tuple[threading.Thread, threading.Event, dict[str, WorkerStats]]:
    stop = threading.Event()
    box: dict[str, WorkerStats] = {}

    def target() -> None:
        box["stats"] = run_worker(stop=stop, handle_signals=False, **kwargs)  # type: ignore[arg-type]

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, stop, box


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_batches_are_stored_then_sent_then_dead_lettered_then_acked() -> None:
    journal = Journal()
    stream = _stream(250, bad_every=10)
    source = JournalSource(stream, journal)
    out, dead = JournalSink("output", journal), JournalSink("dead_letter", journal)
    processor = EchoProcessor(journal)
    metrics = StreamMetrics()
    thread, stop, box = _run_in_thread(
        source=source,
        sink=out,
        dead_letter=dead,
        processor=processor,
        batch_size=100,
        max_wait_ms=20,
        metrics=metrics,
    )
    _wait(
        lambda: stream.backlog().pending == 0 and stream.backlog().unread == 0 and len(processor.sizes) >= 3
    )
    stop.set()
    thread.join(5)
    assert max(processor.sizes) <= 100 and sum(processor.sizes) == 250
    steps = [s for s, _ in journal.steps]
    for i in range(0, len(steps), 4):
        assert steps[i : i + 4] == ["store", "output", "dead_letter", "ack"]
    assert len(out.stream.entries()) == 225 and len(dead.stream.entries()) == 25
    stats = box["stats"]
    assert stats.events == 250 and stats.dead_letters == 25
    registry = metrics.registry
    assert registry.get_sample_value("retain_stream_events_in_total") == 250
    assert registry.get_sample_value("retain_stream_events_out_total") == 225
    assert registry.get_sample_value("retain_stream_dead_letters_total", {"reason": "not_json"}) == 25
    assert registry.get_sample_value("retain_stream_end_to_end_latency_seconds_count") == 225
    assert registry.get_sample_value("retain_stream_batch_duration_seconds_count") == len(processor.sizes)
    assert registry.get_sample_value("retain_stream_lag") is not None  # the memory source tells its backlog


def test_a_small_trickle_is_batched_by_time() -> None:
    journal = Journal()
    stream = MemoryStream("events")
    processor = EchoProcessor(journal)
    thread, stop, _ = _run_in_thread(
        source=MemorySource(stream),
        sink=MemorySink(MemoryStream("out")),
        dead_letter=MemorySink(MemoryStream("dead")),
        processor=processor,
        batch_size=1000,
        max_wait_ms=200,
    )
    for i in range(5):
        stream.append([b"ok-%d" % i])
        time.sleep(0.01)
    _wait(lambda: sum(processor.sizes) == 5)
    stop.set()
    thread.join(5)
    assert len(processor.sizes) <= 2  # five events within the wait make one (or two) batches


def test_a_transient_failure_is_retried_and_nothing_is_acked_before() -> None:
    journal = Journal()
    stream = _stream(10)
    calls = {"n": 0}

    def database_down_twice(messages: Sequence[Message]) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            assert stream.backlog().pending == 10  # delivered, not acknowledged
            raise OperationalError("INSERT", {}, Exception("database is down"))

    processor = EchoProcessor(journal, before=database_down_twice)
    out = JournalSink("output", journal, fail=1)
    thread, stop, box = _run_in_thread(
        source=JournalSource(stream, journal),
        sink=out,
        dead_letter=JournalSink("dead_letter", journal),
        processor=processor,
        batch_size=10,
        max_wait_ms=10,
        backoff_s=(0.01, 0.02),
    )
    _wait(lambda: ("ack", 10) in journal.steps)
    stop.set()
    thread.join(5)
    assert calls["n"] == 3
    assert [s for s, _ in journal.steps] == ["store", "output", "ack"]  # the output send was retried
    assert len(out.stream.entries()) == 10
    assert box["stats"].retries == 3


def test_shutdown_finishes_the_batch_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal()
    stream = _stream(10_000)
    in_flight = threading.Event()
    release = threading.Event()

    def slow_first(messages: Sequence[Message]) -> None:
        if not in_flight.is_set():
            in_flight.set()
            assert release.wait(5)

    processor = EchoProcessor(journal, before=slow_first)
    source = JournalSource(stream, journal)

    def terminate() -> None:
        assert in_flight.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        release.set()

    killer = threading.Thread(target=terminate, daemon=True)
    killer.start()
    previous = signal.getsignal(signal.SIGTERM)
    stats = run_worker(
        source,
        MemorySink(MemoryStream("out")),
        MemorySink(MemoryStream("dead")),
        processor,
        batch_size=100,
        max_wait_ms=10,
        queue_size=2,
    )
    killer.join(5)
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert stats.events == sum(processor.sizes) >= 100
    backlog = stream.backlog()
    assert backlog.pending == 0  # everything read was finished and acknowledged
    assert backlog.unread == 10_000 - stats.events > 0  # and reading stopped
    assert stats.abandoned == 0


def test_shutdown_leaves_a_batch_unacked_when_the_database_stays_down() -> None:
    stream = _stream(20)

    def always_down(messages: Sequence[Message]) -> None:
        raise OperationalError("INSERT", {}, Exception("database is down"))

    thread, stop, box = _run_in_thread(
        source=MemorySource(stream),
        sink=MemorySink(MemoryStream("out")),
        dead_letter=MemorySink(MemoryStream("dead")),
        processor=EchoProcessor(Journal(), before=always_down),
        batch_size=20,
        max_wait_ms=10,
        shutdown_grace_s=0.2,
        backoff_s=(0.01, 0.05),
    )
    _wait(lambda: stream.backlog().pending == 20)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert stream.backlog().pending == 20  # left for redelivery
    assert box["stats"].abandoned == 20


def test_backpressure_bounds_what_is_read_ahead() -> None:
    journal = Journal()
    stream = _stream(50_000)
    source = JournalSource(stream, journal)
    gate = threading.Event()
    processor = EchoProcessor(journal, before=lambda _: gate.wait(10) and None)
    thread, stop, _ = _run_in_thread(
        source=source,
        sink=MemorySink(MemoryStream("out")),
        dead_letter=MemorySink(MemoryStream("dead")),
        processor=processor,
        batch_size=100,
        max_wait_ms=5,
        queue_size=3,
    )
    time.sleep(0.5)  # the processor is stuck on its first batch
    read_while_stuck = source.read_total
    # one batch in processing, three queued, one more read and waiting for room
    assert read_while_stuck <= (3 + 2) * 100
    time.sleep(0.2)
    assert source.read_total == read_while_stuck  # the reader is blocked, not reading on
    stop.set()
    gate.set()
    thread.join(10)
    assert stream.backlog().pending == 0


def test_a_failing_read_is_retried() -> None:
    stream = _stream(5)

    class Flaky(MemorySource):
        failures = 2

        def read(self, max_count: int, block_ms: int) -> list[Message]:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("redis restarting")
            return super().read(max_count, block_ms)

    processor = EchoProcessor(Journal())
    thread, stop, _ = _run_in_thread(
        source=Flaky(stream),
        sink=MemorySink(MemoryStream("out")),
        dead_letter=MemorySink(MemoryStream("dead")),
        processor=processor,
        batch_size=5,
        max_wait_ms=5,
        backoff_s=(0.01, 0.02),
    )
    _wait(lambda: sum(processor.sizes) == 5)
    stop.set()
    thread.join(5)
    assert stream.backlog().pending == 0


def test_serve_exposes_metrics_on_a_port() -> None:
    import socket
    import urllib.request

    from retain.streaming.memory import MEMORY_STREAMS
    from retain.streaming.worker import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    MEMORY_STREAMS.get("serve-in").append([b"not json"])
    stop = threading.Event()
    thread = threading.Thread(
        target=serve,
        args=("memory://serve-in", "memory://serve-out"),
        kwargs={"metrics_port": port, "stop": stop},
    )
    thread.start()
    try:
        _wait(lambda: len(MEMORY_STREAMS.get("serve-in-dead-letter").entries()) == 1)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        stop.set()
        thread.join(10)
        for name in ("serve-in", "serve-out", "serve-in-dead-letter"):
            MEMORY_STREAMS.drop(name)
    assert 'retain_stream_dead_letters_total{reason="not_json"} 1.0' in body
    assert "retain_stream_events_in_total 1.0" in body
