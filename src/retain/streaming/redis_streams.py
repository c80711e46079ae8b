"""Redis Streams: a consumer-group source and an ``XADD`` sink.

URL: ``redis://[user:password@]host:port/db?stream=NAME&group=GROUP[&consumer=C]`` (``rediss://``
for TLS). Source options: ``start`` (where a new group starts: ``0``, the default, or ``$`` for
new entries only) and ``claim_idle_ms`` (default ``RETAIN_STREAM_CLAIM_IDLE_MS``). Sink option:
``maxlen`` (trim the stream to about that many entries, ``MAXLEN ~``).

The source creates its group if needed (``XGROUP CREATE ... MKSTREAM``), reads with
``XREADGROUP`` (``COUNT``/``BLOCK``) and acknowledges with ``XACK`` only when the worker says the
effects are durable. Entries a consumer read and never acknowledged (it crashed) stay pending;
every consumer periodically takes over entries idle longer than ``claim_idle_ms`` with
``XAUTOCLAIM`` (on start and then every half idle period), with their delivery counts (from
``XPENDING``) so the worker can dead-letter an event that keeps failing instead of looping.
An entry's body is its ``data`` field; the sink also writes ``key`` (the partition key).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.exceptions import RedisError, ResponseError

from retain.streaming.base import Backlog, Message, StreamError

logger = logging.getLogger(__name__)

DATA_FIELD = b"data"
KEY_FIELD = b"key"
_OPTIONS = ("stream", "group", "consumer", "start", "maxlen", "claim_idle_ms")
_SOCKET_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 5.0
_PIPELINE_CHUNK = 1000


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``redis://`` stream URL."""

    connection_url: str
    stream: str
    group: str | None = None
    consumer: str | None = None
    start: str = "0"
    maxlen: int | None = None
    claim_idle_ms: int | None = None

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """Split a stream URL into the server's URL and the stream options.

        Raises
        ------
        StreamError
            Not a ``redis://``/``rediss://`` URL, no ``stream``, or a malformed option.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise StreamError(f"not a Redis URL: {parts.scheme}://...")
        query = parse_qsl(parts.query, keep_blank_values=True)
        options = {k: v for k, v in query if k in _OPTIONS}
        rest = [(k, v) for k, v in query if k not in _OPTIONS]
        stream = options.get("stream", "").strip()
        if not stream:
            raise StreamError(
                "a Redis stream URL needs ?stream=NAME (e.g. redis://localhost:6379/0?stream=events)"
            )
        try:
            maxlen = int(options["maxlen"]) if options.get("maxlen") else None
            idle = int(options["claim_idle_ms"]) if options.get("claim_idle_ms") else None
        except ValueError:
            raise StreamError("maxlen and claim_idle_ms must be whole numbers") from None
        return cls(
            connection_url=urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), "")),
            stream=stream,
            group=options.get("group") or None,
            consumer=options.get("consumer") or None,
            start=options.get("start") or "0",
            maxlen=maxlen,
            claim_idle_ms=idle,
        )

    def client(self) -> redis.Redis:
        """A client for the server (bytes in and out), checked with ``PING``."""
        client = redis.Redis.from_url(
            self.connection_url,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            health_check_interval=30,
            protocol=2,
        )
        try:
            client.ping()
        except RedisError as exc:
            client.close()
            where = urlsplit(self.connection_url)
            raise StreamError(f"cannot reach Redis at {where.hostname}:{where.port or 6379}: {exc}") from None
        return client


def default_consumer() -> str:
    """A consumer name unique to this process: ``{hostname}-{pid}``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
    """``XREADGROUP``'s entries (RESP2 reply: ``[[stream, [(id, fields), ...]]]``)."""
    if not response:
        return []
    return [entry for _, entries in response for entry in entries]


class RedisStreamSource:
    """Reads a stream as one consumer of a consumer group.

    Parameters
    ----------
    client : redis.Redis
        A client returning bytes, speaking RESP2 (``protocol=2``).
    stream, group : str
        The stream and the consumer group (created from ``start_id`` when it does not exist).
    consumer : str, optional
        This consumer's name (default ``{hostname}-{pid}``: a restarted worker is a new consumer
        and recovers the old one's pending entries by claiming them).
    start_id : str, default "0"
        Where a newly created group starts: ``0`` (everything in the stream) or ``$`` (new entries).
    claim_idle_ms : int, optional
        Pending entries idle this long are claimed from their (presumably dead) consumer
        (default ``RETAIN_STREAM_CLAIM_IDLE_MS``).
    claim_interval_ms : int, optional
        How often to look for such entries (default: half of ``claim_idle_ms``); also on start.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        consumer: str | None = None,
        *,
        start_id: str = "0",
        claim_idle_ms: int | None = None,
        claim_interval_ms: int | None = None,
    ) -> None:
        if claim_idle_ms is None:
            from retain.settings import get_settings

            claim_idle_ms = get_settings().stream_claim_idle_ms
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer or default_consumer()
        self.claim_idle_ms = claim_idle_ms
        self.claim_interval_s = (
            claim_interval_ms if claim_interval_ms is not None else claim_idle_ms / 2
        ) / 1000
        self._claim_cursor = "0-0"
        self._next_claim = 0.0  # claim on the first read
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._start_id = start_id
        self._create_group(start_id)

    @classmethod
    def from_url(cls, url: str, *, claim_idle_ms: int | None = None) -> RedisStreamSource:
        """Open ``redis://host:port/db?stream=NAME&group=GROUP[&consumer=C]``."""
        target = RedisTarget.parse(url)
        if target.group is None:
            raise StreamError("a Redis source URL needs &group=GROUP (the consumer group)")
        return cls(
            target.client(),
            target.stream,
            target.group,
            target.consumer,
            start_id=target.start,
            claim_idle_ms=target.claim_idle_ms if target.claim_idle_ms is not None else claim_idle_ms,
        )

    def _create_group(self, start_id: str) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id=start_id, mkstream=True)
            logger.info("created consumer group %s on stream %s from %s", self.group, self.stream, start_id)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StreamError(f"cannot create consumer group {self.group!r}: {exc}") from None

    # ------------------------------------------------------------------------------- Source

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        """Claimed entries of dead consumers when a claim is due, else new entries.

        Parameters
        ----------
        max_count : int
            Most entries to return.
        block_ms : int
            Longest wait for new entries when none is ready (``0``: do not wait).
        """
        try:
            if time.monotonic() >= self._next_claim:
                claimed = self._claim(max_count)
                if claimed:
                    return claimed
            response = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=max(max_count, 1),
                block=block_ms if block_ms > 0 else None,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            logger.warning("stream %s or its group %s vanished; creating them again", self.stream, self.group)
            self._create_group(self._start_id)
            return []
        messages = []
        for entry_id, fields in _entries(response):
            position = _text(entry_id)
            messages.append(Message(position, (fields or {}).get(DATA_FIELD, b""), self.stream, 1))
        with self._lock:
            self._inflight.update(m.position for m in messages)
        return messages

    def _claim(self, max_count: int) -> list[Message]:
        """One ``XAUTOCLAIM`` page; schedules the next round once the whole list was scanned."""
        response = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=max(max_count, 1),
        )
        cursor, entries = _text(response[0]), response[1]
        self._claim_cursor = cursor
        if cursor == "0-0":
            self._next_claim = time.monotonic() + self.claim_interval_s
        gone = [entry_id for entry_id, fields in entries if fields is None]  # deleted (Redis < 7)
        if gone:
            self.client.xack(self.stream, self.group, *gone)
        live = [(_text(entry_id), fields) for entry_id, fields in entries if fields is not None]
        with self._lock:
            fresh = [(p, f) for p, f in live if p not in self._inflight]  # our own are queued already
            self._inflight.update(p for p, _ in fresh)
        if not fresh:
            return []
        counts = self._deliveries([p for p, _ in fresh])
        logger.info(
            "claimed %d pending entries of stream %s idle over %d ms",
            len(fresh),
            self.stream,
            self.claim_idle_ms,
        )
        return [Message(p, f.get(DATA_FIELD, b""), self.stream, counts.get(p, 2)) for p, f in fresh]

    def _deliveries(self, positions: list[str]) -> dict[str, int]:
        """Delivery counts of entries this consumer holds (from ``XPENDING``)."""
        with self._lock:
            slack = len(self._inflight)
        rows = self.client.xpending_range(
            self.stream,
            self.group,
            min=positions[0],
            max=positions[-1],
            count=len(positions) + slack + 16,
            consumername=self.consumer,
        )
        return {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}

    def ack(self, messages: Sequence[Message]) -> None:
        """``XACK`` the entries (their effects are durable); they are not delivered again."""
        positions = [m.position for m in messages]
        for start in range(0, len(positions), _PIPELINE_CHUNK):
            self.client.xack(self.stream, self.group, *positions[start : start + _PIPELINE_CHUNK])
        with self._lock:
            self._inflight.difference_update(positions)

    def backlog(self) -> Backlog:
        """The group's unread entries (``lag``, Redis 7+) and pending entries."""
        for info in self.client.xinfo_groups(self.stream):
            if _text(info.get("name", b"")) == self.group:
                lag = info.get("lag")
                pending = info.get("pending")
                return Backlog(
                    unread=int(lag) if lag is not None else None,
                    pending=int(pending) if pending is not None else None,
                )
        return Backlog()

    def close(self) -> None:
        """Release the connections."""
        self.client.close()


class RedisStreamSink:
    """Appends payloads to a stream with ``XADD`` (optionally trimmed to about ``maxlen``)."""

    def __init__(self, client: redis.Redis, stream: str, *, maxlen: int | None = None) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen

    @classmethod
    def from_url(cls, url: str) -> RedisStreamSink:
        """Open ``redis://host:port/db?stream=NAME[&maxlen=N]``."""
        target = RedisTarget.parse(url)
        return cls(target.client(), target.stream, maxlen=target.maxlen)

    def send(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        """Append every payload (one round trip per thousand); returns when Redis has them all."""
        if keys is not None and len(keys) != len(payloads):
            raise ValueError(f"{len(keys)} keys for {len(payloads)} payloads")
        for start in range(0, len(payloads), _PIPELINE_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for i in range(start, min(start + _PIPELINE_CHUNK, len(payloads))):
                fields: dict[bytes, bytes | str] = {DATA_FIELD: payloads[i]}
                if keys is not None:
                    fields[KEY_FIELD] = keys[i]
                pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.execute()

    def close(self) -> None:
        """Release the connections."""
        self.client.close()
