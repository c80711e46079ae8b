"""Operational records of the feedback loop: stored drift results, gate decisions and jobs.

A mixin of :class:`retain.store.repository.Store` (it uses the store's sessions). None of these
rows names a student: drift results describe traffic, decisions describe models.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from retain.store.models import (
    DriftResult,
    GateDecisionRow,
    Job,
    Outcome,
    Prediction,
    StreamCheckpoint,
    new_uuid,
    utcnow,
)

JobStatus = Literal["queued", "running", "succeeded", "failed"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True)
class DriftRecord:
    """A stored drift check (``report`` is the full JSON report)."""

    id: int
    at: datetime
    dataset: str
    model_name: str
    model_version: int | None
    window: str
    n_reference: int
    n_current: int
    enough_data: bool
    share_drifted: float | None
    dataset_drift: bool
    prediction_drift: bool
    drifted: list[str]
    report: dict[str, Any]

    def to_dict(self, *, with_report: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "report"}
        out["at"] = self.at.isoformat()
        if with_report:
            out["report"] = self.report
        return out


@dataclass(frozen=True)
class DecisionRecord:
    """A stored promotion decision with its numbers."""

    id: int
    at: datetime
    dataset: str
    model_name: str
    kind: str
    champion_version: int | None
    challenger_version: int | None
    promoted: bool
    metric: str
    champion_score: float | None
    challenger_score: float | None
    margin: float
    reason: str
    details: dict[str, Any] | None
    actor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat()}


@dataclass(frozen=True)
class JobRecord:
    """A background job and its state."""

    id: str
    kind: str
    target: str
    status: JobStatus
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    actor: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("created_at", "started_at", "finished_at"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        return out


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value or value in (float("inf"), float("-inf")) else value


class MonitoringRecords:
    """Drift results, gate decisions and jobs (mixed into ``Store``)."""

    def _read(self) -> AbstractContextManager[Session]:  # provided by Store
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Session]:  # provided by Store
        raise NotImplementedError

    # ------------------------------------------------------------------------- drift

    def record_drift(
        self,
        dataset: str,
        model_name: str,
        model_version: int | None,
        window: str,
        report: Mapping[str, Any],
        *,
        at: datetime | None = None,
    ) -> int:
        """Store a drift report (``DriftReport.to_dict()``); returns its id."""
        share = report.get("share_drifted")
        row = DriftResult(
            at=at or utcnow(),
            dataset=dataset,
            model_name=model_name,
            model_version=model_version,
            window=window,
            n_reference=int(report.get("n_reference", 0)),
            n_current=int(report.get("n_current", 0)),
            enough_data=bool(report.get("enough_data", False)),
            share_drifted=_finite(float(share)) if share is not None else None,
            dataset_drift=bool(report.get("dataset_drift", False)),
            prediction_drift=bool(report.get("prediction_drift", False)),
            drifted=[str(f) for f in report.get("drifted", [])],
            report=dict(report),
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            return int(row.id)

    def drift_results(
        self, dataset: str, *, model_name: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[DriftRecord]:
        """Stored drift checks of a dataset, newest first."""
        stmt = select(DriftResult).where(DriftResult.dataset == dataset)
        if model_name is not None:
            stmt = stmt.where(DriftResult.model_name == model_name)
        if since is not None:
            stmt = stmt.where(DriftResult.at >= since)
        stmt = stmt.order_by(DriftResult.at.desc(), DriftResult.id.desc()).limit(max(0, limit))
        with self._read() as session:
            return [_drift(r) for r in session.scalars(stmt)]

    # --------------------------------------------------------------------- decisions

    def record_decision(
        self,
        model_name: str,
        kind: str,
        *,
        promoted: bool,
        metric: str,
        reason: str,
        margin: float,
        champion_version: int | None = None,
        challenger_version: int | None = None,
        champion_score: float | None = None,
        challenger_score: float | None = None,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> int:
        """Store a gate decision (``kind``: retrain, promote, override); returns its id."""
        row = GateDecisionRow(
            dataset=model_name.split(".", 1)[0],
            model_name=model_name,
            kind=kind,
            champion_version=champion_version,
            challenger_version=challenger_version,
            promoted=promoted,
            metric=metric,
            champion_score=_finite(champion_score),
            challenger_score=_finite(challenger_score),
            margin=float(margin),
            reason=reason,
            details=dict(details) if details is not None else None,
            actor=actor,
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            return int(row.id)

    def decisions(
        self, dataset: str, *, model_name: str | None = None, limit: int = 100
    ) -> list[DecisionRecord]:
        """Stored gate decisions of a dataset, newest first."""
        stmt = select(GateDecisionRow).where(GateDecisionRow.dataset == dataset)
        if model_name is not None:
            stmt = stmt.where(GateDecisionRow.model_name == model_name)
        stmt = stmt.order_by(GateDecisionRow.at.desc(), GateDecisionRow.id.desc()).limit(max(0, limit))
        with self._read() as session:
            return [_decision(r) for r in session.scalars(stmt)]

    # -------------------------------------------------------------------------- jobs

    def create_job(
        self, kind: str, target: str, *, params: Mapping[str, Any] | None = None, actor: str | None = None
    ) -> JobRecord:
        """A new ``queued`` job."""
        row = Job(
            id=new_uuid(),
            kind=kind,
            target=target,
            status="queued",
            params=dict(params) if params is not None else None,
            actor=actor,
            created_at=utcnow(),
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            return _job(row)

    def start_job(self, job_id: str) -> bool:
        """Mark a queued job running; ``False`` when it is not queued (someone else took it)."""
        with self._write() as session:
            done = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(status="running", started_at=utcnow())
            )
            return bool(getattr(done, "rowcount", 0))

    def finish_job(
        self, job_id: str, *, result: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Mark a job ``succeeded`` (with its result) or ``failed`` (with the error)."""
        with self._write() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status="failed" if error is not None else "succeeded",
                    result=dict(result) if result is not None else None,
                    error=error,
                    finished_at=utcnow(),
                )
            )

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._read() as session:
            row = session.get(Job, job_id)
            return None if row is None else _job(row)

    def jobs(self, *, status: JobStatus | None = None, limit: int = 100) -> list[JobRecord]:
        """Jobs, newest first."""
        stmt = select(Job)
        if status is not None:
            stmt = stmt.where(Job.status == status)
        stmt = stmt.order_by(Job.created_at.desc()).limit(max(0, limit))
        with self._read() as session:
            return [_job(r) for r in session.scalars(stmt)]

    def activity(self, dataset: str, *, since: datetime) -> dict[str, Any]:
        """When the loop last moved, for an operations view (aggregates only, no student).

        ``last_prediction_at`` and ``predictions_since`` (every front end: API, stream, batch),
        ``last_outcome_at``, ``last_drift_check_at``, ``last_decision_at``, and each stream shard's
        last checkpoint with its owner (a live stream worker checkpoints as it goes).
        """
        with self._read() as session:
            last_prediction = session.scalar(
                select(func.max(Prediction.created_at)).where(Prediction.dataset == dataset)
            )
            recent = session.scalar(
                select(func.count())
                .select_from(Prediction)
                .where(Prediction.dataset == dataset, Prediction.created_at >= since)
            )
            last_outcome = session.scalar(
                select(func.max(Outcome.recorded_at)).where(Outcome.dataset == dataset)
            )
            last_drift = session.scalar(
                select(func.max(DriftResult.at)).where(DriftResult.dataset == dataset)
            )
            last_decision = session.scalar(
                select(func.max(GateDecisionRow.at)).where(GateDecisionRow.dataset == dataset)
            )
            shards = [
                {
                    "stream": c.stream,
                    "shard": c.shard,
                    "owner": c.owner,
                    "finished": c.finished,
                    "updated_at": c.updated_at.isoformat(),
                }
                for c in session.scalars(
                    select(StreamCheckpoint).order_by(StreamCheckpoint.updated_at.desc()).limit(50)
                )
            ]

        def stamp(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "dataset": dataset,
            "last_prediction_at": stamp(last_prediction),
            "predictions_since": int(recent or 0),
            "since": since.isoformat(),
            "last_outcome_at": stamp(last_outcome),
            "last_drift_check_at": stamp(last_drift),
            "last_decision_at": stamp(last_decision),
            "stream_checkpoints": shards,
        }

    def fail_unfinished_jobs(self, reason: str = "the service stopped before the job finished") -> int:
        """Mark jobs left queued or running by a stopped process as failed; returns how many."""
        with self._write() as session:
            done = session.execute(
                update(Job)
                .where(Job.status.in_(("queued", "running")))
                .values(status="failed", error=reason, finished_at=utcnow())
            )
            return int(getattr(done, "rowcount", 0) or 0)


def _columns(row: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _drift(row: DriftResult) -> DriftRecord:
    values = _columns(row, tuple(DriftRecord.__dataclass_fields__))
    return DriftRecord(**{**values, "drifted": list(row.drifted or []), "report": dict(row.report or {})})


def _decision(row: GateDecisionRow) -> DecisionRecord:
    return DecisionRecord(**_columns(row, tuple(DecisionRecord.__dataclass_fields__)))


def _job(row: Job) -> JobRecord:
    values = _columns(row, tuple(JobRecord.__dataclass_fields__))
    values["status"] = row.status if row.status in JOB_STATUSES else "failed"
    return JobRecord(**values)


__all__ = ["DecisionRecord", "DriftRecord", "JobRecord", "JobStatus", "MonitoringRecords"]
