"""Dynamic batching: concurrent predict requests for one model are scored and stored together.

Under load, many single-student requests reach scoring in the same turn of the event loop. Each
would pay the whole fixed cost of a scoring call (validation set-up, the feature matrix, the
trees' machine code brought back into the caches, calibration) and a trip to the group-commit
writer for one row. ``PredictionBatcher`` collects the requests that arrive for a model in one
turn, scores them in one call of the fast path, hands all their rows to the writer as one group,
and answers each request with its own part.

Nothing waits for company: the batch is flushed on the loop's next turn, so a lone request costs
one turn more, not a timer. Results are exactly those of scoring each request alone: the fast
path scores rows independently, and when it declines the combined batch (a record it doubts),
each request is scored on its own, so one request's bad student never fails another's. A failed
commit fails every request of the group, as group commit does; nothing is acknowledged before
it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from retain.predictor import Predictor
from retain.scoring import Record, ScoredBatch, score_fast, score_records
from retain.store.group_commit import GroupCommitWriter
from retain.store.repository import StoredPrediction

logger = logging.getLogger(__name__)

Answer = tuple[ScoredBatch, list[StoredPrediction]]


@dataclass
class _Request:
    records: list[Record]
    event_ids: list[str | None]
    future: asyncio.Future[Answer]


def _settle(future: asyncio.Future[Answer], result: Answer | None, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


class PredictionBatcher:
    """Scores and stores the predict requests of one event-loop turn together, per model.

    Parameters
    ----------
    writer : GroupCommitWriter
        Where the rows go; one group per batch.
    """

    def __init__(self, writer: GroupCommitWriter) -> None:
        self.writer = writer
        self._pending: dict[int, tuple[Predictor, list[_Request]]] = {}
        self.batches = 0
        self.requests = 0

    async def predict(
        self, predictor: Predictor, records: list[Record], event_ids: list[str | None]
    ) -> Answer:
        """This request's scores and stored predictions (raises ``ScoringError`` for its own bad
        records, the store's error when the commit fails)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        key = id(predictor)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = (predictor, [])
            loop.call_soon(self._flush, key)
        pending[1].append(_Request(records, event_ids, future))
        return await future

    def _flush(self, key: int) -> None:
        predictor, requests = self._pending.pop(key)
        try:
            self._score_and_store(predictor, requests)
        except BaseException as exc:  # never leave a request waiting
            for request in requests:
                _settle(request.future, None, exc)

    def _score_and_store(self, predictor: Predictor, requests: list[_Request]) -> None:
        self.batches += 1
        self.requests += len(requests)
        ready: list[tuple[_Request, ScoredBatch, int]] = []
        rows = []
        for request, part in zip(requests, _score(predictor, requests), strict=True):
            if isinstance(part, BaseException):
                _settle(request.future, None, part)
                continue
            try:
                own = part.store_records(request.event_ids)
            except Exception as exc:
                _settle(request.future, None, exc)
                continue
            rows.extend(own)
            ready.append((request, part, len(own)))
        if not ready:
            return
        loop = asyncio.get_running_loop()
        done = self.writer.submit(rows)

        def committed(finished: Future[list[StoredPrediction]]) -> None:
            try:
                loop.call_soon_threadsafe(_answer, finished, ready)
            except RuntimeError:  # the loop has closed (shutdown): nobody is waiting any more
                logger.debug("a commit finished after the event loop closed")

        done.add_done_callback(committed)


def _score(predictor: Predictor, requests: Sequence[_Request]) -> list[ScoredBatch | BaseException]:
    """Each request's scores: from one fast-path call when it takes every record, else one by one."""
    if len(requests) > 1:
        combined = [record for request in requests for record in request.records]
        try:
            together = score_fast(predictor, combined)
        except Exception:  # scored one by one below, where each request gets its own error
            together = None
        if together is not None:
            return list(together.split([len(request.records) for request in requests]))
    parts: list[ScoredBatch | BaseException] = []
    for request in requests:
        try:
            parts.append(score_records(predictor, request.records))
        except Exception as exc:
            parts.append(exc)
    return parts


def _answer(done: Future[list[StoredPrediction]], ready: list[tuple[_Request, ScoredBatch, int]]) -> None:
    try:
        stored = done.result()
    except BaseException as exc:
        for request, _, _ in ready:
            _settle(request.future, None, exc)
        return
    start = 0
    for request, part, n in ready:
        _settle(request.future, (part, stored[start : start + n]), None)
        start += n
