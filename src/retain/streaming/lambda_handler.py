"""AWS Lambda handler for Kinesis event batches: the stream worker's core without the worker.

Deploy with handler ``retain.streaming.lambda_handler.handler`` behind a Kinesis event source
mapping with ``FunctionResponseTypes=["ReportBatchItemFailures"]``. Each invocation gets a batch of
records from one shard; every record becomes a :class:`~retain.streaming.base.Message` (``data``
base64-decoded, ``position`` the sequence number, ``partition`` the shard) and goes through the
same :class:`~retain.streaming.processor.StreamProcessor` as the worker, in micro-batches of
``RETAIN_STREAM_BATCH_SIZE``: predictions stored idempotently by event id, outputs sent to
``RETAIN_STREAM_OUTPUT_URL``, dead letters to ``RETAIN_STREAM_DEAD_LETTER_URL`` (either may be
unset: predictions then only reach the store, and dead letters only the log, as counts).

The response is ``{"batchItemFailures": [{"itemIdentifier": SEQUENCE_NUMBER}, ...]}``. Bad events
are dead-lettered and count as handled. When a micro-batch fails for a reason that is not its
events' (the store is down, a sink cannot be reached), its records and every later record of the
same shard are reported, so Lambda retries from the first of them (it checkpoints at the lowest
reported sequence number); records already handled and retried again store nothing twice.

The processor, the store and the sinks are built once per container, on the first invocation.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from retain.streaming.base import Message, Sink
from retain.streaming.processor import BatchResult

logger = logging.getLogger(__name__)

OUTPUT_URL_ENV = "RETAIN_STREAM_OUTPUT_URL"
DEAD_LETTER_URL_ENV = "RETAIN_STREAM_DEAD_LETTER_URL"
TIME_MARGIN_MS = 3_000
"""Stop starting micro-batches when the invocation has less time left than this."""

Response = dict[str, list[dict[str, str]]]


class BatchProcessor(Protocol):
    """What the handler needs of :class:`~retain.streaming.processor.StreamProcessor`."""

    def process(self, messages: Sequence[Message]) -> BatchResult: ...


class LambdaContext(Protocol):
    """The part of the Lambda context object the handler reads."""

    def get_remaining_time_in_millis(self) -> int: ...


# ------------------------------------------------------------------------------------ pure logic


def shard_of(record: Mapping[str, Any]) -> str:
    """The shard a Kinesis event record came from (``eventID`` is ``SHARD_ID:SEQUENCE``)."""
    event_id = str(record.get("eventID") or "")
    if ":" in event_id:
        return event_id.split(":", 1)[0]
    return str(record.get("eventSourceARN") or "")


def messages_from_event(event: Mapping[str, Any]) -> list[Message]:
    """The Kinesis records of a Lambda event as messages, in the event's order.

    Data that is not valid base64 is passed on as its text, so the processor dead-letters it
    (``not_json``) instead of the batch failing.

    Raises
    ------
    ValueError
        The event is not a Kinesis batch (a record without ``kinesis.sequenceNumber``).
    """
    messages: list[Message] = []
    for record in event.get("Records") or []:
        kinesis = record.get("kinesis") if isinstance(record, Mapping) else None
        if not isinstance(kinesis, Mapping) or "sequenceNumber" not in kinesis:
            raise ValueError("not a Kinesis event record (no kinesis.sequenceNumber)")
        raw = str(kinesis.get("data") or "")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            data = raw.encode("utf-8", "replace")
        messages.append(
            Message(position=str(kinesis["sequenceNumber"]), data=data, partition=shard_of(record))
        )
    return messages


def failure_response(positions: Sequence[str]) -> Response:
    """The partial-batch response that makes Lambda retry from these records."""
    return {"batchItemFailures": [{"itemIdentifier": p} for p in positions]}


def handle_in_order(
    messages: Sequence[Message],
    step: Callable[[Sequence[Message]], object],
    *,
    chunk_size: int,
    time_left_ms: Callable[[], int | None] = lambda: None,
    margin_ms: int = TIME_MARGIN_MS,
) -> list[str]:
    """Run ``step`` over each shard's messages in chunks, in order; the positions to retry.

    A chunk whose ``step`` raises fails together with every later message of its shard (Lambda
    resumes a shard from its lowest reported sequence number, so later ones must come again);
    other shards go on. Once ``time_left_ms()`` drops below ``margin_ms`` no chunk is started and
    the rest are reported, rather than letting the invocation time out.

    Returns
    -------
    list of str
        Positions of the messages to report as failed, in input order per shard.
    """
    by_shard: dict[str, list[Message]] = {}
    for m in messages:
        by_shard.setdefault(m.partition, []).append(m)
    failed: list[str] = []
    for shard, items in by_shard.items():
        for start in range(0, len(items), max(1, chunk_size)):
            left = time_left_ms()
            if left is not None and left < margin_ms:
                logger.warning(
                    "%d ms left: leaving %d records of %s to a retry", left, len(items) - start, shard
                )
                failed.extend(m.position for m in items[start:])
                break
            try:
                step(items[start : start + chunk_size])
            except Exception as exc:
                logger.warning(
                    "%d records of %s not handled (%s); Lambda retries them",
                    len(items) - start,
                    shard,
                    _describe(exc),
                )
                failed.extend(m.position for m in items[start:])
                break
    return failed


def _describe(exc: BaseException) -> str:
    """An exception for the log without statement parameters (SQLAlchemy errors carry them)."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return f"{type(exc).__name__}: {text[:300]}"


# -------------------------------------------------------------------------------------- runtime


@dataclass
class LambdaRuntime:
    """What one container keeps between invocations.

    Parameters
    ----------
    processor : BatchProcessor
        Scores and stores a micro-batch (a :class:`StreamProcessor`).
    output, dead_letter : Sink, optional
        Where predictions and dead letters go (``None``: not sent).
    chunk_size : int, default 500
        Events per micro-batch.
    """

    processor: BatchProcessor
    output: Sink | None = None
    dead_letter: Sink | None = None
    chunk_size: int = 500

    @classmethod
    def from_environment(cls) -> LambdaRuntime:
        """The store, model cache and sinks that the settings and environment describe."""
        from retain.settings import get_settings
        from retain.store.repository import Store
        from retain.streaming.processor import StreamProcessor
        from retain.streaming.urls import open_sink

        settings = get_settings()
        store = Store.from_settings(settings)
        output_url = os.environ.get(OUTPUT_URL_ENV)
        dead_url = os.environ.get(DEAD_LETTER_URL_ENV)
        return cls(
            processor=StreamProcessor(store, max_deliveries=settings.stream_max_deliveries),
            output=open_sink(output_url) if output_url else None,
            dead_letter=open_sink(dead_url) if dead_url else None,
            chunk_size=settings.stream_batch_size,
        )

    def _step(self, chunk: Sequence[Message]) -> None:
        """Process one micro-batch and send what it produced; raises on anything transient."""
        result = self.processor.process(chunk)
        if result.outputs and self.output is not None:
            self.output.send(result.outputs, result.keys)
        if result.dead_letters:
            if self.dead_letter is not None:
                self.dead_letter.send(result.dead_letters)
            else:
                logger.warning(
                    "dropped %d dead letters (no %s): %s",
                    len(result.dead_letters),
                    DEAD_LETTER_URL_ENV,
                    dict(result.dead_lettered),
                )

    def handle(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> Response:
        """Handle one Kinesis event batch (see the module docstring)."""
        messages = messages_from_event(event)

        def time_left() -> int | None:
            return context.get_remaining_time_in_millis() if context is not None else None

        failed = handle_in_order(messages, self._step, chunk_size=self.chunk_size, time_left_ms=time_left)
        logger.info("handled %d of %d records", len(messages) - len(failed), len(messages))
        return failure_response(failed)


_runtime: LambdaRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> LambdaRuntime:
    """This container's runtime, built on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = LambdaRuntime.from_environment()
        return _runtime


def set_runtime(value: LambdaRuntime | None) -> None:
    """Install a runtime (tests, custom wiring), or ``None`` to build one again on the next call."""
    global _runtime
    with _runtime_lock:
        _runtime = value


def handler(event: Mapping[str, Any], context: LambdaContext | None = None) -> Response:
    """The Lambda entry point: ``retain.streaming.lambda_handler.handler``.

    Parameters
    ----------
    event : mapping
        A Kinesis event (``Records[i].kinesis.{data, sequenceNumber, partitionKey}``,
        ``eventID``, ``eventSourceARN``).
    context : LambdaContext, optional
        The Lambda context (its remaining time stops the batch early).

    Returns
    -------
    dict
        ``{"batchItemFailures": [{"itemIdentifier": sequence_number}, ...]}``.
    """
    try:
        current = runtime()
    except Exception as exc:  # e.g. the store is unreachable at cold start: retry the whole batch
        logger.error("cannot start (%s); Lambda retries the batch", _describe(exc))
        return failure_response([m.position for m in messages_from_event(event)])
    return current.handle(event, context)
