"""Stream URLs: parsing, the factory (memory, Redis options, Kinesis imported lazily), dead-letter
defaults; and the in-memory stream."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from retain.streaming.base import ReportsBacklog, Sink, Source, StreamError
from retain.streaming.memory import MEMORY_STREAMS, MemoryStream
from retain.streaming.redis_streams import RedisTarget
from retain.streaming.urls import default_dead_letter_url, open_sink, open_source


def test_redis_url_options_are_split_from_the_connection() -> None:
    t = RedisTarget.parse(
        "redis://:pw@cache:6380/2?stream=events&group=scoring&consumer=w1&start=$&claim_idle_ms=500&socket_keepalive=true"
    )
    assert t.connection_url == "redis://:pw@cache:6380/2?socket_keepalive=true"
    assert (t.stream, t.group, t.consumer, t.start, t.claim_idle_ms, t.maxlen) == (
        "events",
        "scoring",
        "w1",
        "$",
        500,
        None,
    )
    sink = RedisTarget.parse("rediss://cache/0?stream=out&maxlen=100000")
    assert sink.maxlen == 100_000 and sink.group is None and sink.connection_url == "rediss://cache/0"


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://localhost/0?stream=",
        "redis://x/0?stream=s&maxlen=ten",
        "http://x/?stream=s",
    ],
)
def test_bad_redis_urls(url: str) -> None:
    with pytest.raises(StreamError):
        RedisTarget.parse(url)


def test_a_redis_source_needs_a_group() -> None:
    from retain.streaming.redis_streams import RedisStreamSource

    with pytest.raises(StreamError, match="group"):
        RedisStreamSource.from_url("redis://127.0.0.1:1/0?stream=events")


def test_an_unreachable_redis_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="cannot reach Redis"):
        open_sink("redis://127.0.0.1:1/0?stream=events")


def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(StreamError, match="scheme"):
        open_source("kafka://broker/events")
    with pytest.raises(StreamError, match="name"):
        open_sink("memory://")


def test_memory_urls_meet_the_same_stream() -> None:
    MEMORY_STREAMS.drop("url-test")
    sink = open_sink("memory://url-test")
    source = open_source("memory://url-test")
    assert isinstance(sink, Sink) and isinstance(source, Source) and isinstance(source, ReportsBacklog)
    sink.send([b"a", b"b"], ["k1", "k2"])
    got = source.read(10, 0)
    assert [m.data for m in got] == [b"a", b"b"] and got[0].partition == "url-test"
    source.ack(got)
    assert source.backlog().pending == 0
    MEMORY_STREAMS.drop("url-test")


def test_kinesis_is_imported_only_for_its_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    class FakeSource:
        @classmethod
        def from_url(cls, url: str, *, store: Any = None) -> str:
            calls.append((url, store))
            return "source"

    class FakeSink:
        @classmethod
        def from_url(cls, url: str) -> str:
            calls.append((url, None))
            return "sink"

    fake = types.ModuleType("retain.streaming.kinesis")
    fake.KinesisSource = FakeSource  # type: ignore[attr-defined]
    fake.KinesisSink = FakeSink  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "retain.streaming.kinesis", fake)
    store = object()
    assert open_source("kinesis://events?region=eu-west-1", store=store) == "source"  # type: ignore[arg-type,comparison-overlap]
    assert open_sink("kinesis://predictions") == "sink"  # type: ignore[comparison-overlap]
    assert calls == [("kinesis://events?region=eu-west-1", store), ("kinesis://predictions", None)]


def test_default_dead_letter_urls() -> None:
    assert (
        default_dead_letter_url("redis://h:6379/0?stream=events&group=g&consumer=c&claim_idle_ms=5")
        == "redis://h:6379/0?stream=events-dead-letter"
    )
    assert default_dead_letter_url("memory://events") == "memory://events-dead-letter"
    with pytest.raises(StreamError, match="dead-letter"):
        default_dead_letter_url("kinesis://events")


# ------------------------------------------------------------------------------- memory stream


def test_memory_stream_reads_acks_and_redelivers() -> None:
    stream = MemoryStream("m")
    stream.append([b"1", b"2", b"3"], ["a", "b", "c"])
    first = stream.read(2, 0)
    assert [m.position for m in first] == ["1", "2"] and all(m.deliveries == 1 for m in first)
    assert stream.backlog().unread == 1 and stream.backlog().pending == 2
    stream.ack(["1"])
    again = stream.redeliver()
    assert [(m.position, m.deliveries) for m in again] == [("2", 2)]
    assert stream.read(5, 0)[0].position == "3"
    assert stream.read(5, 20) == []  # waits, then nothing
    assert [e.key for e in stream.entries()] == ["a", "b", "c"]


def test_memory_read_wakes_up_on_append() -> None:
    import threading

    stream = MemoryStream("m")
    timer = threading.Timer(0.05, lambda: stream.append([b"late"]))
    timer.start()
    got = stream.read(1, 2000)
    timer.join()
    assert [m.data for m in got] == [b"late"]
