"""Group commit: predictions from concurrent requests share one transaction.

Each request hands its rows to ``GroupCommitWriter.submit`` and waits on the returned future; a
single writer thread takes everything queued (up to ``max_rows``, waiting at most ``max_wait_s``
for more once it has work), stores it in one transaction, and resolves every future only after
the commit. Nothing is acknowledged before it is durable; a failed commit fails every request in
the group (each can be retried: writes are idempotent by event id).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import NamedTuple

from retain.store.repository import (
    PredictionRecord,
    PredictionWriter,
    PreparedPredictions,
    Store,
    StoredPrediction,
)

_STOP = object()


class _Pending(NamedTuple):
    """One caller's prepared rows and the future its caller waits on."""

    prepared: PreparedPredictions
    future: Future[list[StoredPrediction]]


class GroupCommitWriter:
    """A writer thread that batches ``Store.record_predictions`` calls across callers."""

    def __init__(self, store: Store, max_rows: int = 5000, max_wait_s: float = 0.0) -> None:
        self.store = store
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Pending | object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="retain-group-commit", daemon=True)
        self._thread.start()
        self.groups = 0
        self.rows = 0

    def submit(self, rows: Sequence[PredictionRecord]) -> Future[list[StoredPrediction]]:
        """Queue rows; the future resolves to their stored predictions after the commit.

        The rows are made ready for the insert here, in the caller's thread (pseudonyms, ids,
        JSON): the writer thread, through which every stored prediction passes, only inserts
        and commits. A row that cannot be prepared fails this call's future alone.
        """
        future: Future[list[StoredPrediction]] = Future()
        if not rows:
            future.set_result([])
            return future
        try:
            prepared = self.store.prepare_predictions(rows)
        except Exception as exc:
            future.set_exception(exc)
            return future
        self._queue.put(_Pending(prepared, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        # one connection for the thread's life: no pool checkout or liveness probe per group
        writer = self.store.prediction_writer()
        try:
            self._loop(writer)
        finally:
            writer.close()

    def _loop(self, writer: PredictionWriter) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if not isinstance(first, _Pending):  # _STOP
                return
            batch = [first]
            count = len(first.prepared.rows)
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_rows:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(remaining, 0.0))
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if not isinstance(item, _Pending):  # _STOP
                    stopping = True
                    break
                batch.append(item)
                count += len(item.prepared.rows)
            self._commit(batch, writer)

    def _commit(self, batch: list[_Pending], writer: PredictionWriter) -> None:
        group = PreparedPredictions.joined([item.prepared for item in batch])
        try:
            stored = writer.write_prepared(group)
        except BaseException as exc:  # every waiting request learns the commit failed
            for item in batch:
                item.future.set_exception(exc)
            return
        self.groups += 1
        self.rows += len(group.rows)
        start = 0
        for item in batch:
            n = len(item.prepared.rows)
            item.future.set_result(stored[start : start + n])
            start += n
