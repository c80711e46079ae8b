"""A simulated student-information system: student records sent as stream events at a steady rate.

Records come from a data file (through the spec's loaders, typed by its validation) or, without
one, from :func:`retain.data.synth.synthesize`. Each event carries one student's record as of the
chosen stage (the columns known by then; targets left out) and an event id that is unique and
the same for the same dataset, seed and position, so replaying a run again stores nothing twice.
When more events are asked for than there are records, the records repeat (later updates of the
same students, with new event ids).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retain.data.spec import ColumnType, DatasetSpec
from retain.privacy import pseudonymize
from retain.streaming.base import Sink
from retain.streaming.messages import rfc3339

logger = logging.getLogger(__name__)

Record = dict[str, Any]
_MAX_SYNTHETIC_ROWS = 50_000
_DEFAULT_SYNTHETIC_COUNT = 1000
_MAX_CHUNK = 500


@dataclass(frozen=True)
class ReplayStats:
    """What a replay sent."""

    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events sent per second."""
        return self.sent / self.seconds if self.seconds > 0 else math.inf


def record_columns(spec: DatasetSpec, task: str | None = None, stage: str | None = None) -> list[str]:
    """The columns a record carries as of ``stage``: known by then, the task's target left out.

    Parameters
    ----------
    spec : DatasetSpec
    task : str, optional
        Default: the spec's first task.
    stage : str, optional
        Default: the task's last stage (everything known).
    """
    t = spec.task(task) if task else spec.tasks[0]
    rank = spec.stage_rank(stage or t.stages[-1])
    features = set(spec.features(t, stage or t.stages[-1]))
    columns = [spec.id.column]
    for col in spec.columns:
        if col.name == t.target or (col.role == "target" and col.name not in features):
            continue
        if col.stage is None or spec.stage_rank(col.stage) <= rank:
            columns.append(col.name)
    return columns


def _json_value(value: Any, integer: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if integer and value.is_integer():
            return int(value)
    return value


def frame_records(frame: pd.DataFrame, spec: DatasetSpec, columns: list[str]) -> list[Record]:
    """Rows of a canonical frame as JSON-ready records (missing values as ``None``)."""
    present = [c for c in columns if c in frame.columns]
    integer = {
        c.name
        for c in spec.columns
        if c.type in (ColumnType.integer, ColumnType.boolean) and c.name in present
    }
    values = frame[present].astype(object).where(frame[present].notna(), None)
    return [
        {c: _json_value(v, c in integer) for c, v in zip(present, row, strict=True)}
        for row in values.itertuples(index=False, name=None)
    ]


def load_records(
    spec: DatasetSpec,
    *,
    file: Path | None = None,
    count: int | None = None,
    seed: int = 42,
    task: str | None = None,
    stage: str | None = None,
) -> list[Record]:
    """Student records to replay: a file's rows (shuffled by ``seed``) or synthetic ones.

    Parameters
    ----------
    spec : DatasetSpec
    file : Path, optional
        CSV or Parquet, read with the spec's loaders (source headers or canonical names).
    count : int, optional
        Events wanted (limits how many synthetic records are drawn).
    seed : int, default 42
    task, stage : str, optional
        Which columns to keep (see :func:`record_columns`).
    """
    columns = record_columns(spec, task, stage)
    if file is not None:
        from retain.data.load import load_raw
        from retain.data.validate import validate_frame

        raw = load_raw(spec, file)
        typed, report = validate_frame(raw, spec, required=[c for c in columns if c != spec.id.column])
        if not report.ok:
            logger.warning("%s has values that fail validation; they are sent as missing", file)
        order = np.random.default_rng(seed).permutation(len(typed))
        return frame_records(typed.iloc[order], spec, columns)
    from retain.data.synth import synthesize

    rows = min(count if count is not None else _DEFAULT_SYNTHETIC_COUNT, _MAX_SYNTHETIC_ROWS)
    return frame_records(synthesize(spec, max(rows, 1), seed=seed), spec, columns)


def events(
    spec: DatasetSpec,
    records: list[Record],
    *,
    count: int | None = None,
    seed: int = 42,
    task: str | None = None,
    stage: str | None = None,
) -> Iterator[Record]:
    """Events (without ``sent_at``, stamped when sent) for ``count`` records, repeating them if needed.

    Event ids are ``{dataset}-s{seed}-{n:08d}``: unique within a run, the same on a rerun.
    """
    if not records:
        return
    total = count if count is not None else len(records)
    for n, record in zip(range(total), itertools.cycle(records), strict=False):
        event: Record = {"event_id": f"{spec.name}-s{seed}-{n:08d}", "dataset": spec.name}
        if task is not None:
            event["task"] = task
        if stage is not None:
            event["stage"] = stage
        event["student"] = record
        yield event


def replay(
    stream: Iterable[Record],
    sink: Sink,
    *,
    rate: float,
    id_column: str = "student_id",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReplayStats:
    """Send events at ``rate`` per second (``0``: as fast as the sink takes them).

    Events go out in small chunks (a hundredth of a second's worth, at most 500), each stamped
    with ``sent_at`` when it is sent and keyed by the student's pseudonym.
    """
    chunk = _MAX_CHUNK if rate <= 0 else max(1, min(_MAX_CHUNK, int(rate / 100)))
    started = clock()
    sent = 0
    iterator = iter(stream)
    while True:
        block = list(itertools.islice(iterator, chunk))
        if not block:
            break
        if rate > 0:
            wait = started + sent / rate - clock()
            if wait > 0:
                sleep(wait)
        stamp = rfc3339(now())
        payloads = [json.dumps({**e, "sent_at": stamp}, separators=(",", ":")).encode("utf-8") for e in block]
        keys = [pseudonymize(str(e["student"].get(id_column, ""))) for e in block]
        sink.send(payloads, keys)
        sent += len(block)
    return ReplayStats(sent=sent, seconds=clock() - started)
