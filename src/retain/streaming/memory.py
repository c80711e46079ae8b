"""In-process streams (``memory://NAME``): for unit tests, demos and benchmarks without a server.

A ``MemoryStream`` is an append-only list of entries read by one consumer group: ``read`` hands out
unread entries and keeps them pending until ``ack``; ``redeliver`` hands the pending ones out
again (what a consumer group does for a dead consumer), counting deliveries. Nothing survives
the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from retain.streaming.base import Backlog, Message


@dataclass(frozen=True)
class MemoryEntry:
    """One entry: its position (1-based), body and partition key."""

    position: str
    data: bytes
    key: str | None


class MemoryStream:
    """An append-only in-process stream with one consumer group (thread-safe)."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._entries: list[MemoryEntry] = []
        self._next = 0
        self._pending: dict[str, int] = {}  # position -> deliveries
        self._index: dict[str, int] = {}
        self._changed = threading.Condition()

    def append(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        """Add entries at the end and wake waiting readers."""
        if keys is not None and len(keys) != len(payloads):
            raise ValueError(f"{len(keys)} keys for {len(payloads)} payloads")
        with self._changed:
            for i, data in enumerate(payloads):
                position = str(len(self._entries) + 1)
                self._index[position] = len(self._entries)
                self._entries.append(
                    MemoryEntry(position, bytes(data), keys[i] if keys is not None else None)
                )
            self._changed.notify_all()

    def entries(self) -> list[MemoryEntry]:
        """Every entry so far, oldest first."""
        with self._changed:
            return list(self._entries)

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        """Up to ``max_count`` unread entries, waiting up to ``block_ms`` when there are none."""
        deadline = time.monotonic() + max(block_ms, 0) / 1000.0
        with self._changed:
            while self._next >= len(self._entries):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._changed.wait(remaining)
            chosen = self._entries[self._next : self._next + max(max_count, 1)]
            self._next += len(chosen)
            for entry in chosen:
                self._pending[entry.position] = 1
            return [Message(e.position, e.data, self.name, 1) for e in chosen]

    def redeliver(self, max_count: int | None = None) -> list[Message]:
        """Hand out pending (delivered, unacknowledged) entries again, one more delivery each."""
        with self._changed:
            positions = list(self._pending)[:max_count] if max_count is not None else list(self._pending)
            out = []
            for position in positions:
                self._pending[position] += 1
                entry = self._entries[self._index[position]]
                out.append(Message(position, entry.data, self.name, self._pending[position]))
            return out

    def ack(self, positions: Sequence[str]) -> None:
        """Forget pending entries."""
        with self._changed:
            for position in positions:
                self._pending.pop(position, None)

    def backlog(self) -> Backlog:
        """Unread and pending counts."""
        with self._changed:
            return Backlog(unread=len(self._entries) - self._next, pending=len(self._pending))


class MemorySource:
    """A ``Source`` over a ``MemoryStream``."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        return self.stream.read(max_count, block_ms)

    def ack(self, messages: Sequence[Message]) -> None:
        self.stream.ack([m.position for m in messages])

    def backlog(self) -> Backlog:
        return self.stream.backlog()

    def close(self) -> None:
        """Nothing to release."""


class MemorySink:
    """A ``Sink`` that appends to a ``MemoryStream``."""

    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream

    def send(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        self.stream.append(payloads, keys)

    def close(self) -> None:
        """Nothing to release."""


class MemoryStreams:
    """Named in-process streams, so ``memory://NAME`` URLs opened apart meet the same stream."""

    def __init__(self) -> None:
        self._streams: dict[str, MemoryStream] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> MemoryStream:
        """The stream called ``name`` (created on first use)."""
        with self._lock:
            if name not in self._streams:
                self._streams[name] = MemoryStream(name)
            return self._streams[name]

    def drop(self, name: str | None = None) -> None:
        """Forget one stream (or all)."""
        with self._lock:
            if name is None:
                self._streams.clear()
            else:
                self._streams.pop(name, None)


#: The process's named memory streams (``memory://NAME``).
MEMORY_STREAMS = MemoryStreams()
