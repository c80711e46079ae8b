"""The small protocol every stream source and sink implements.

A worker reads ``Message`` batches from a ``Source``, scores them, writes the predictions to the
store (idempotent by ``event_id``) and to an output ``Sink``, sends bad messages to a dead-letter
``Sink``, and only then ``ack``s the batch: delivery is at least once, the effect exactly once.
Sources and sinks are built from URLs (``redis://...``, ``kinesis://...``, ``memory://...``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    """One raw message from a source.

    ``position`` is where the source can find it again (a Redis entry id, a Kinesis sequence
    number); ``partition`` is the stream or shard it came from; ``deliveries`` counts how often
    the source has handed it out (1 on first delivery; sources that cannot tell leave it at 1).
    """

    position: str
    data: bytes
    partition: str = ""
    deliveries: int = 1


@runtime_checkable
class Source(Protocol):
    """Where events come from."""

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        """Up to ``max_count`` messages, waiting at most ``block_ms`` when none is ready."""
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """Mark messages done (after their effects are durable); they are not delivered again."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Where outputs or dead letters go; ``send`` returns only when they are accepted."""

    def send(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        """Write payloads (``keys``: partition keys, e.g. pseudonymous student keys)."""
        ...

    def close(self) -> None: ...


class StreamError(RuntimeError):
    """A source or sink cannot be reached or configured."""


@dataclass(frozen=True)
class Backlog:
    """How far a consumer is behind: ``unread`` entries not yet delivered to it, ``pending``
    entries delivered but not acknowledged (``None`` where the source cannot tell)."""

    unread: int | None = None
    pending: int | None = None


@runtime_checkable
class ReportsBacklog(Protocol):
    """A source that can tell its backlog (exported as the ``retain_stream_lag`` metrics)."""

    def backlog(self) -> Backlog: ...
