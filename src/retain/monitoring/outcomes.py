"""Outcomes from a file: the feedback loop's labels when they come from the registry office.

Pure: a frame in, checked rows out (``OutcomeFileError`` names what is wrong). The CLI stores
them with ``Store.record_outcome`` (idempotent by event id, so a file can be imported twice).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from retain.data.spec import DatasetSpec


class OutcomeFileError(ValueError):
    """An outcomes file that cannot be imported (the message says why)."""


@dataclass(frozen=True)
class OutcomeRow:
    student_id: str
    outcome: str | float
    task: str | None
    recorded_at: datetime | None
    event_id: str


def outcome_rows(frame: pd.DataFrame, spec: DatasetSpec) -> list[OutcomeRow]:
    """Check an outcomes table: ``student_id`` and ``outcome`` columns, optional ``task``,
    ``recorded_at`` (a date or time; default: now) and ``event_id`` (default: a hash of the row,
    so importing the same file twice records nothing twice)."""
    if frame.empty:
        raise OutcomeFileError("the outcomes file has no rows")
    missing = [c for c in ("student_id", "outcome") if c not in frame.columns]
    if missing:
        raise OutcomeFileError(
            f"the outcomes file lacks column(s) {missing}; expected student_id, outcome "
            "and optionally task, recorded_at, event_id"
        )
    tasks = {t.name for t in spec.tasks}
    out: list[OutcomeRow] = []
    for position, row in enumerate(frame.to_dict(orient="records"), start=2):  # line 1: header
        sid, outcome = row.get("student_id"), row.get("outcome")
        if sid is None or pd.isna(sid) or str(sid).strip() == "":
            raise OutcomeFileError(f"line {position}: student_id is empty")
        if outcome is None or pd.isna(outcome) or str(outcome).strip() == "":
            raise OutcomeFileError(f"line {position}: outcome is empty")
        task = row.get("task")
        task = None if task is None or pd.isna(task) or str(task).strip() == "" else str(task).strip()
        if task is not None and task not in tasks:
            raise OutcomeFileError(f"line {position}: unknown task {task!r}; tasks: {sorted(tasks)}")
        recorded = row.get("recorded_at")
        when: datetime | None = None
        if recorded is not None and not pd.isna(recorded) and str(recorded).strip():
            try:
                stamp = pd.Timestamp(str(recorded))
            except (ValueError, TypeError):
                raise OutcomeFileError(f"line {position}: recorded_at {recorded!r} is not a date") from None
            when = (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()
        value: str | float = (
            outcome
            if isinstance(outcome, float | int) and not isinstance(outcome, bool)
            else str(outcome).strip()
        )
        given = row.get("event_id")
        event_id = (
            str(given)
            if given is not None and not pd.isna(given) and str(given).strip()
            else "file-" + hashlib.sha256(f"{sid}|{value}|{task}|{recorded}".encode()).hexdigest()[:24]
        )
        out.append(OutcomeRow(str(sid).strip(), value, task, when, event_id))
    return out
