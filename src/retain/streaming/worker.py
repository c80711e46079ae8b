"""The stream worker: a reader thread, a bounded queue of micro-batches, and a processing loop.

``run_worker`` reads events from a ``Source`` into micro-batches (up to ``batch_size`` events, or
whatever arrived within ``max_wait_ms`` of a batch's first event) and hands them to the
processing loop through a queue of at most ``queue_size`` batches: when processing falls behind,
the reader blocks (backpressure) instead of reading the stream into memory. For each batch, in
this order: predictions stored (``StreamProcessor.process``), outputs sent, dead letters sent,
and only then the batch acknowledged. A failure of any step that is not the events' fault (the
database is down, a stream cannot be reached) is retried with backoff and never acknowledged
early; since stored predictions are idempotent by event id, a retry or a redelivery after a
crash never stores a prediction twice (at-least-once delivery, exactly-once effect).

SIGTERM or SIGINT stops reading; the batches already read are finished and acknowledged, then
``run_worker`` returns (a second signal ends the process at once).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol, TypeVar

from retain.monitoring.metrics import StreamMetrics
from retain.settings import Settings, get_settings
from retain.streaming.base import Message, ReportsBacklog, Sink, Source
from retain.streaming.processor import BatchResult

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_END = object()
_POLL_S = 0.2
_BACKLOG_EVERY_S = 5.0


class BatchProcessor(Protocol):
    """What the worker needs of ``StreamProcessor``."""

    def process(self, messages: Sequence[Message]) -> BatchResult: ...


@dataclass
class WorkerStats:
    """What a worker run did."""

    batches: int = 0
    events: int = 0
    outputs: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    retries: int = 0
    abandoned: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        """Events acknowledged per second of the run."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _AbandonError(Exception):
    """Shutting down while a step keeps failing: leave the batch unacknowledged."""


def _describe(exc: BaseException) -> str:
    """An exception for the log without statement parameters (SQLAlchemy errors carry them)."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return f"{type(exc).__name__}: {text[:300]}"


class _Worker:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        dead_letter: Sink,
        processor: BatchProcessor,
        *,
        batch_size: int,
        max_wait_ms: int,
        queue_size: int,
        metrics: StreamMetrics,
        stop: threading.Event,
        shutdown_grace_s: float,
        backoff_s: tuple[float, float],
    ) -> None:
        self.source = source
        self.sink = sink
        self.dead_letter = dead_letter
        self.processor = processor
        self.batch_size = batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.batches: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.metrics = metrics
        self.stop = stop
        self.shutdown_grace_s = shutdown_grace_s
        self.backoff_s = backoff_s
        self.stats = WorkerStats()
        self.processing_ended = threading.Event()
        self._abandoning = False
        self._next_backlog = 0.0

    # ------------------------------------------------------------------------------ reader

    def read_forever(self) -> None:
        """Fill micro-batches until asked to stop; always ends the queue with ``_END``."""
        delay = self.backoff_s[0]
        try:
            while not self.stop.is_set():
                batch: list[Message] = []
                deadline: float | None = None
                while len(batch) < self.batch_size and not self.stop.is_set():
                    if deadline is None:
                        block_ms = max(1, int(self.max_wait_s * 1000))
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        block_ms = max(1, int(remaining * 1000))
                    try:
                        got = self.source.read(self.batch_size - len(batch), block_ms)
                    except Exception as exc:
                        logger.warning("reading failed (%s); retrying in %.1fs", _describe(exc), delay)
                        self.metrics.retries.labels("read").inc()
                        if self.stop.wait(delay):
                            break
                        delay = min(delay * 2, self.backoff_s[1])
                        continue
                    delay = self.backoff_s[0]
                    if got:
                        batch.extend(got)
                        if deadline is None:
                            deadline = time.monotonic() + self.max_wait_s
                if batch:
                    self.metrics.events_in.inc(len(batch))
                    if not self._put(batch):
                        return
        finally:
            self._put(_END)

    def _put(self, item: object) -> bool:
        """Queue an item, blocking while the queue is full (backpressure)."""
        while not self.processing_ended.is_set():
            try:
                self.batches.put(item, timeout=_POLL_S)
                self.metrics.queued_batches.set(self.batches.qsize())
                return True
            except queue.Full:
                continue
        return False

    # ---------------------------------------------------------------------------- process

    def process_until_end(self, reader: threading.Thread) -> None:
        """Handle queued batches until the reader's ``_END``."""
        try:
            while True:
                try:
                    item = self.batches.get(timeout=_POLL_S)
                except queue.Empty:
                    self._report_backlog()
                    if not reader.is_alive() and self.batches.empty():
                        return
                    continue
                self.metrics.queued_batches.set(self.batches.qsize())
                if item is _END:
                    return
                assert isinstance(item, list)
                self._handle(item)
                self._report_backlog()
        finally:
            self.processing_ended.set()

    def _handle(self, batch: list[Message]) -> None:
        if self._abandoning:
            self.stats.abandoned += len(batch)
            return
        started = time.perf_counter()
        try:
            result = self._attempt("process", lambda: self.processor.process(batch))
            if result.outputs:
                self._attempt("output", lambda: self.sink.send(result.outputs, result.keys))
            if result.dead_letters:
                self._attempt("dead_letter", lambda: self.dead_letter.send(result.dead_letters))
            self._attempt("ack", lambda: self.source.ack(batch))
        except _AbandonError:
            self._abandoning = True
            self.stats.abandoned += len(batch)
            logger.error("shutting down with %d events unacknowledged; they will be redelivered", len(batch))
            return
        m = self.metrics
        m.batches.inc()
        m.batch_size.observe(len(batch))
        m.events_out.inc(len(result.outputs))
        m.duplicates.inc(result.duplicates)
        for reason, count in result.dead_lettered.items():
            m.dead_letters.labels(reason).inc(count)
        for latency in result.latencies_s:
            m.end_to_end_latency.observe(max(latency, 0.0))
        m.batch_latency.observe(time.perf_counter() - started)
        s = self.stats
        s.batches += 1
        s.events += len(batch)
        s.outputs += len(result.outputs)
        s.duplicates += result.duplicates
        s.dead_letters += len(result.dead_letters)

    def _attempt(self, step: str, operation: Callable[[], _T]) -> _T:
        """Run a step; retry with backoff on failure (while shutting down, for a grace period only)."""
        delay = self.backoff_s[0]
        give_up_at: float | None = None
        while True:
            try:
                return operation()
            except Exception as exc:
                if self.stop.is_set():
                    now = time.monotonic()
                    give_up_at = give_up_at if give_up_at is not None else now + self.shutdown_grace_s
                    if now >= give_up_at:
                        raise _AbandonError from exc
                logger.warning("%s failed (%s); retrying in %.1fs", step, _describe(exc), delay)
                self.metrics.retries.labels(step).inc()
                self.stats.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, self.backoff_s[1])

    def _report_backlog(self) -> None:
        now = time.monotonic()
        if now < self._next_backlog or not isinstance(self.source, ReportsBacklog):
            return
        self._next_backlog = now + _BACKLOG_EVERY_S
        try:
            backlog = self.source.backlog()
        except Exception as exc:
            logger.debug("backlog unavailable: %s", _describe(exc))
            return
        if backlog.unread is not None:
            self.metrics.lag.set(backlog.unread)
        if backlog.pending is not None:
            self.metrics.pending.set(backlog.pending)


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop`` (once; a second signal acts as usual). Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s: stopping; finishing the batches already read", signal.Signals(signum).name)
        stop.set()
        restore()

    for sig in signals:
        signal.signal(sig, on_signal)
    return restore


def run_worker(
    source: Source,
    sink: Sink,
    dead_letter: Sink,
    processor: BatchProcessor,
    *,
    batch_size: int | None = None,
    max_wait_ms: int | None = None,
    queue_size: int | None = None,
    metrics: StreamMetrics | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    shutdown_grace_s: float = 30.0,
    backoff_s: tuple[float, float] = (0.05, 5.0),
) -> WorkerStats:
    """Score a stream until stopped (by ``stop``, SIGTERM or SIGINT).

    Parameters
    ----------
    source : Source
        Where events come from.
    sink, dead_letter : Sink
        Where predictions and dead letters go.
    processor : StreamProcessor
        Scores and stores a micro-batch.
    batch_size, max_wait_ms, queue_size : int, optional
        Micro-batch size and fill time, and batches read ahead (defaults: ``RETAIN_STREAM_*``).
    metrics : StreamMetrics, optional
        Where to count (default: a fresh registry).
    stop : threading.Event, optional
        Set it to stop the worker gracefully (tests; signals set it too).
    handle_signals : bool, default True
        Install SIGTERM/SIGINT handlers (only from the main thread).
    shutdown_grace_s : float, default 30
        While stopping, how long a failing step is retried before the batch is left
        unacknowledged (it is redelivered to another consumer).
    backoff_s : (float, float)
        First and longest wait between retries.

    Returns
    -------
    WorkerStats
    """
    s = get_settings()
    stop = stop or threading.Event()
    worker = _Worker(
        source,
        sink,
        dead_letter,
        processor,
        batch_size=batch_size or s.stream_batch_size,
        max_wait_ms=max_wait_ms or s.stream_max_wait_ms,
        queue_size=queue_size or s.stream_queue_size,
        metrics=metrics or StreamMetrics(),
        stop=stop,
        shutdown_grace_s=shutdown_grace_s,
        backoff_s=backoff_s,
    )
    restore = _install_signal_handlers(stop) if handle_signals else (lambda: None)
    started = time.perf_counter()
    reader = threading.Thread(target=worker.read_forever, name="retain-stream-reader", daemon=True)
    reader.start()
    try:
        worker.process_until_end(reader)
    finally:
        stop.set()
        reader.join(timeout=10)
        restore()
        worker.stats.seconds = time.perf_counter() - started
    stats = worker.stats
    logger.info(
        "worker stopped: %d events in %d batches, %d predictions (%d repeated), %d dead letters, %d left unacknowledged",
        stats.events,
        stats.batches,
        stats.outputs,
        stats.duplicates,
        stats.dead_letters,
        stats.abandoned,
    )
    return stats


def serve(
    source_url: str,
    sink_url: str,
    dead_letter_url: str | None = None,
    *,
    settings: Settings | None = None,
    batch_size: int | None = None,
    max_wait_ms: int | None = None,
    metrics_port: int | None = None,
    stop: threading.Event | None = None,
) -> WorkerStats:
    """Open the streams and the store from URLs and settings, and run the worker until stopped.

    Parameters
    ----------
    source_url, sink_url : str
        ``redis://...``, ``kinesis://...`` or ``memory://...`` (see :mod:`retain.streaming.urls`).
    dead_letter_url : str, optional
        Default: the source's stream with ``-dead-letter`` appended (Redis and memory sources).
    settings : Settings, optional
        Default: :func:`retain.settings.get_settings`.
    batch_size, max_wait_ms : int, optional
        Override the settings.
    metrics_port : int, optional
        Serve Prometheus metrics on this port.
    stop : threading.Event, optional
        Set it to stop (besides SIGTERM/SIGINT).
    """
    from prometheus_client import start_http_server

    from retain.store.repository import Store
    from retain.streaming.processor import StreamProcessor
    from retain.streaming.urls import default_dead_letter_url, open_sink, open_source

    s = settings or get_settings()
    store = Store.from_settings(s)
    closers: list[Callable[[], None]] = [store.close]
    try:
        source = open_source(source_url, store=store)
        closers.append(source.close)
        sink = open_sink(sink_url)
        closers.append(sink.close)
        dead = open_sink(dead_letter_url or default_dead_letter_url(source_url))
        closers.append(dead.close)
        metrics = StreamMetrics()
        if metrics_port is not None:
            server, _ = start_http_server(metrics_port, registry=metrics.registry)
            closers.append(server.shutdown)
        processor = StreamProcessor(store, max_deliveries=s.stream_max_deliveries)
        return run_worker(
            source,
            sink,
            dead,
            processor,
            batch_size=batch_size or s.stream_batch_size,
            max_wait_ms=max_wait_ms or s.stream_max_wait_ms,
            queue_size=s.stream_queue_size,
            metrics=metrics,
            stop=stop,
        )
    finally:
        for close in reversed(closers):
            try:
                close()
            except Exception as exc:
                logger.debug("closing failed: %s", _describe(exc))
