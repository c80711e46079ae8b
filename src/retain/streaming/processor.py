"""A micro-batch of raw events in; stored predictions, output messages and dead letters out.

``StreamProcessor.process`` is the stream's core, free of threads and sockets (the worker does
those): it parses every event (:mod:`retain.streaming.messages`), groups the good ones by
``(dataset, task, stage)``, scores each group with one call to the shared scoring core
(:func:`retain.scoring.score_records`), and stores every prediction of the batch with one
``Store.record_predictions`` call, idempotent by ``(dataset, event_id)``: a redelivered event
stores nothing new and its output repeats the prediction stored the first time.

Bad events never stop the batch. Each is turned into a dead letter with its reason; when a
group's records fail validation together, the group is split in halves until the bad records are
isolated (so only they are dead-lettered and the rest are still scored in few calls). Failures
that are not the event's fault (the database is down, the model registry cannot be reached)
propagate: the caller must not acknowledge the batch, and retries it (the writes are idempotent).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from retain.data.spec import DatasetSpec, list_specs, load_spec
from retain.predictor import Predictor
from retain.scoring import Record, ScoredBatch, ScoringError, score_records
from retain.store.repository import PredictionRecord, StoredPrediction
from retain.streaming.base import Message
from retain.streaming.messages import (
    DeadLetterReason,
    MessageError,
    StreamEvent,
    dead_letter,
    ensure_student_id,
    parse_event,
    resolve_event,
    rfc3339,
    student_detail,
)

logger = logging.getLogger(__name__)

Scorer = Callable[[Predictor, Sequence[Record]], ScoredBatch]
_TARGET_CACHE_SIZE = 4096


class ModelProvider(Protocol):
    """Where predictors come from (``retain.serving.models.ModelCache``: the registry's champions)."""

    def get(self, spec: DatasetSpec, task: str, stage: str) -> Predictor:
        """The predictor for ``{dataset}.{task}.{stage}``; ``LookupError`` when there is none."""
        ...


class PredictionStore(Protocol):
    """What the processor needs of ``retain.store.repository.Store``."""

    def record_predictions(self, rows: Sequence[PredictionRecord]) -> list[StoredPrediction]: ...

    def key(self, student_id: str) -> str: ...


class StaticModels:
    """A fixed set of predictors by registered name (tests, benchmarks, pinned deployments)."""

    def __init__(self, predictors: Iterable[Predictor]) -> None:
        self._by_name = {p.model_name: p for p in predictors}

    def get(self, spec: DatasetSpec, task: str, stage: str) -> Predictor:
        name = spec.model_name(task, stage)
        try:
            return self._by_name[name]
        except KeyError:
            raise LookupError(f"no model {name!r}; loaded: {sorted(self._by_name)}") from None


@dataclass
class BatchResult:
    """What one micro-batch produced.

    Attributes
    ----------
    outputs : list of bytes
        One JSON prediction per scored event (:class:`retain.streaming.messages.StreamPrediction`).
    keys : list of str
        Partition key per output: the student's pseudonym.
    dead_letters : list of bytes
        One JSON dead letter per bad event (:class:`retain.streaming.messages.DeadLetter`).
    created : int
        Predictions newly stored.
    duplicates : int
        Events whose id had been stored before (their output repeats the stored prediction).
    dead_lettered : Counter
        Dead letters by reason.
    latencies_s : list of float
        End-to-end latency per output, from the event's ``sent_at`` to ``scored_at``.
    """

    outputs: list[bytes] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    dead_letters: list[bytes] = field(default_factory=list)
    created: int = 0
    duplicates: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Event:
    message: Message
    event: StreamEvent
    record: Record
    spec: DatasetSpec
    task: str
    stage: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


def id_fields(specs: Iterable[DatasetSpec]) -> frozenset[str]:
    """Field names that may hold a student id in any event: ``student_id`` and the specs' id columns."""
    names = {"student_id"}
    for spec in specs:
        names.add(spec.id.column)
        if spec.id.source:
            names.add(spec.id.source)
        names.update(c.name for c in spec.columns if c.role == "id")
    return frozenset(names)


class StreamProcessor:
    """Scores micro-batches of raw events and stores the predictions.

    Parameters
    ----------
    store : Store
        Where predictions are written (``record_predictions``) and ids pseudonymised (``key``).
    models : ModelProvider, optional
        Default: a ``ModelCache`` of the registry's champions, re-checked every
        ``RETAIN_MODEL_REFRESH_SECONDS`` (a promoted model is picked up without a restart).
    specs : mapping of name -> DatasetSpec, optional
        Known datasets (default: every spec in the spec folders, loaded on first use).
    max_deliveries : int, optional
        Events delivered more often than this are dead-lettered unprocessed (default:
        ``RETAIN_STREAM_MAX_DELIVERIES``).
    scorer : callable, default :func:`retain.scoring.score_records`
        Scores one group (the benchmark swaps in a model-free one).
    clock : callable, optional
        The current UTC time (tests pin it).
    """

    def __init__(
        self,
        store: PredictionStore,
        models: ModelProvider | None = None,
        *,
        specs: Mapping[str, DatasetSpec] | None = None,
        max_deliveries: int | None = None,
        scorer: Scorer = score_records,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        from retain.settings import get_settings

        settings = get_settings()
        if models is None:
            from retain.serving.models import ModelCache
            from retain.training import registry

            registry.configure(settings)
            models = ModelCache(settings.model_refresh_seconds)
        self.store = store
        self.models = models
        self.max_deliveries = max_deliveries if max_deliveries is not None else settings.stream_max_deliveries
        self._specs: dict[str, DatasetSpec] | None = dict(specs) if specs is not None else None
        self._id_fields: frozenset[str] | None = None
        self._scorer = scorer
        self._clock = clock
        self._targets: dict[
            tuple[str, str | None, str | None, frozenset[str]], tuple[str, str] | MessageError
        ] = {}

    # ------------------------------------------------------------------------------ public

    def process(self, messages: Sequence[Message]) -> BatchResult:
        """Score, store and answer one micro-batch.

        Parameters
        ----------
        messages : sequence of Message
            Raw events as the source delivered them.

        Returns
        -------
        BatchResult
            Outputs for the scored events and dead letters for the others; every message is
            accounted for by exactly one of them.

        Raises
        ------
        Exception
            Whatever the store or the model provider raise for reasons that are not the events'
            (``sqlalchemy.exc.OperationalError`` when the database is down): nothing may be
            acknowledged, the batch is to be retried.
        """
        result = BatchResult()
        now = self._clock()
        accepted: list[_Event] = []
        for message in messages:
            try:
                accepted.append(self._accept(message))
            except MessageError as exc:
                self._dead(result, message, exc, now)
        groups: dict[tuple[str, str, str], list[_Event]] = {}
        for item in accepted:
            groups.setdefault((item.spec.name, item.task, item.stage), []).append(item)
        scored: list[tuple[_Event, Record]] = []
        rows: list[PredictionRecord] = []
        for (_, task, stage), events in groups.items():
            try:
                predictor = self.models.get(events[0].spec, task, stage)
            except LookupError as exc:
                for item in events:
                    self._dead(result, item.message, MessageError(DeadLetterReason.no_model, str(exc)), now)
                continue
            for part, batch in self._score(predictor, events, result, now):
                rows.extend(batch.store_records([item.event.event_id for item in part]))
                scored.extend(zip(part, batch.outputs, strict=True))
        stored = self.store.record_predictions(rows) if rows else []
        scored_at = self._clock()
        stamps = {scored_at: rfc3339(scored_at)}
        for (item, output), saved in zip(scored, stored, strict=True):
            result.outputs.append(self._output(item, output, saved, scored_at, stamps, result))
            result.keys.append(saved.student_key)
        if result.dead_lettered:
            logger.warning(
                "dead-lettered %d of %d events: %s",
                sum(result.dead_lettered.values()),
                len(messages),
                dict(result.dead_lettered),
            )
        return result

    # ---------------------------------------------------------------------------- parsing

    @property
    def specs(self) -> dict[str, DatasetSpec]:
        """The known datasets."""
        if self._specs is None:
            self._specs = {name: load_spec(name) for name in list_specs()}
        return self._specs

    def _spec(self, name: str) -> DatasetSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise MessageError(
                DeadLetterReason.unknown_dataset, f"unknown dataset {name!r}; known: {sorted(self.specs)}"
            ) from None

    def _accept(self, message: Message) -> _Event:
        if message.deliveries > self.max_deliveries:
            raise MessageError(
                DeadLetterReason.too_many_deliveries,
                f"delivered {message.deliveries} times (limit {self.max_deliveries})",
            )
        event = parse_event(message.data)
        spec = self._spec(event.dataset)
        record = ensure_student_id(spec, event.student)
        task, stage = self._resolve(spec, event.task, event.stage, record)
        return _Event(message, event, record, spec, task, stage)

    def _resolve(
        self, spec: DatasetSpec, task: str | None, stage: str | None, record: Record
    ) -> tuple[str, str]:
        """``resolve_event``, cached by the record's field names (producers send the same shape)."""
        key = (spec.name, task, stage, frozenset(record))
        found = self._targets.get(key)
        if found is None:
            try:
                found = resolve_event(spec, task, stage, set(record))
            except MessageError as exc:
                found = exc
            if len(self._targets) >= _TARGET_CACHE_SIZE:
                self._targets.clear()
            self._targets[key] = found
        if isinstance(found, MessageError):
            raise MessageError(found.reason, found.detail)
        return found

    # ---------------------------------------------------------------------------- scoring

    def _score(
        self, predictor: Predictor, events: list[_Event], result: BatchResult, now: datetime
    ) -> list[tuple[list[_Event], ScoredBatch]]:
        """Score a group in one call; on failure set the bad events aside and score the rest.

        Validation names the bad rows: those are dead-lettered and the others scored again. When
        it cannot tell (or the scorer broke), the group is split in halves until the bad events
        are alone.
        """
        try:
            return [(events, self._scorer(predictor, [item.record for item in events]))]
        except ScoringError as exc:
            if len(events) == 1:
                error = MessageError(DeadLetterReason.invalid_student_fields, student_detail(exc))
                self._dead(result, events[0].message, error, now)
                return []
            named = _rows_named(exc, len(events))
            if named:
                for row, detail in named.items():
                    error = MessageError(DeadLetterReason.invalid_student_fields, detail)
                    self._dead(result, events[row].message, error, now)
                rest = [item for row, item in enumerate(events) if row not in named]
                return self._score(predictor, rest, result, now) if rest else []
        except Exception as exc:  # a record that breaks the scorer must not stop the stream
            if len(events) == 1:
                logger.warning(
                    "scoring failed for the event at %s: %s", events[0].message.position, type(exc).__name__
                )
                error = MessageError(DeadLetterReason.scoring_failed, f"{type(exc).__name__} while scoring")
                self._dead(result, events[0].message, error, now)
                return []
        middle = len(events) // 2
        return self._score(predictor, events[:middle], result, now) + self._score(
            predictor, events[middle:], result, now
        )

    # ---------------------------------------------------------------------------- outputs

    def _output(
        self,
        item: _Event,
        output: Record,
        saved: StoredPrediction,
        scored_at: datetime,
        stamps: dict[datetime, str],
        result: BatchResult,
    ) -> bytes:
        """One output message; ``stamps`` caches timestamp texts within the batch."""
        sent_at = item.event.sent_at
        sent_text = stamps.get(sent_at)
        if sent_text is None:
            sent_text = stamps[sent_at] = rfc3339(sent_at)
        latency_s = (scored_at - sent_at).total_seconds()
        result.latencies_s.append(latency_s)
        message: dict[str, Any] = {"event_id": item.event.event_id, "dataset": item.spec.name}
        if saved.created:
            result.created += 1
            message.update(output)
        else:  # a redelivered event: repeat what was stored the first time
            result.duplicates += 1
            message.update(_stored_output(saved, output["student_id"]))
        message["prediction_id"] = saved.id
        message["sent_at"] = sent_text
        message["scored_at"] = stamps[scored_at]
        message["latency_ms"] = round(latency_s * 1000.0, 3)
        return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)

    def _dead(self, result: BatchResult, message: Message, error: MessageError, now: datetime) -> None:
        if self._id_fields is None:
            self._id_fields = id_fields(self.specs.values())
        result.dead_letters.append(
            dead_letter(
                message.data,
                error.reason,
                error.detail,
                partition=message.partition,
                position=message.position,
                deliveries=message.deliveries,
                id_fields=self._id_fields,
                pseudonymize=self.store.key,
                at=now,
            )
        )
        result.dead_lettered[error.reason.value] += 1


def _rows_named(error: ScoringError, n: int) -> dict[int, list[dict[str, Any]]]:
    """The group rows (0-based) a validation error names, each with the issues about it."""
    if isinstance(error.detail, str):
        return {}
    named: dict[int, list[dict[str, Any]]] = {}
    for issue in error.detail:
        rows = [r for r in issue.get("students", ()) if isinstance(r, int) and 1 <= r <= n]
        for row in rows:
            about = {k: v for k, v in issue.items() if k not in ("field", "students")}
            if len(rows) > 1:  # the examples may be other students' values
                about.pop("found", None)
            named.setdefault(row - 1, []).append({"field": f"student.{issue.get('field')}", **about})
    return named


def _stored_output(saved: StoredPrediction, student_id: str) -> Record:
    """The output fields of a prediction stored earlier (the same shape as a fresh one)."""
    out: Record = {
        "student_id": student_id,
        "task": saved.task,
        "stage": saved.stage,
        "model_name": saved.model_name,
        "model_version": saved.model_version,
        "risk_score": saved.risk_score,
        "risk_band": saved.risk_band,
    }
    if saved.interval_low is not None and saved.interval_high is not None:
        out["prediction"] = float(saved.prediction) if saved.prediction is not None else None
        out["interval"] = (saved.interval_low, saved.interval_high)
    else:
        out["prediction"] = saved.prediction
        if saved.probabilities is not None:
            out["probabilities"] = saved.probabilities
    out["duplicate"] = True
    return out
