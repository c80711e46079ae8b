"""SQLAlchemy 2 models of the store.

Student ids never reach these tables: every row names its student by ``student_key``, the keyed
HMAC from :func:`retain.privacy.pseudonymize`. The roster keeps names, contacts and the institution's
own id encrypted (Fernet) so they can be shown to allowed callers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names are fixed so migrations stay identical on SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY_LENGTH = 64
"""Room for the pseudonym (16 hex digits today; room for a longer digest later)."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_uuid() -> str:
    """A random UUID as text (the primary key of a prediction)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC on every backend and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive on SQLite, which has no time zones)."""
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to naive values (SQLite) and normalise aware ones."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a fixed naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Roster(Base):
    """One student on the roster; personal fields are encrypted at rest.

    ``dataset`` is ``""`` for a roster entry that applies to every dataset.
    """

    __tablename__ = "roster"
    __table_args__ = (UniqueConstraint("dataset", "student_key", name="uq_roster_dataset_student_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(100), default="")
    student_key: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    student_id_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    programme: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    advisor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Prediction(Base):
    """One stored prediction; idempotent by ``(dataset, event_id)``.

    Every index costs each insert a page or more; only what queries use is kept (the per-student
    composite, the time for windows and retention, the event id for idempotency).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("dataset", "event_id", name="uq_predictions_dataset_event_id"),
        Index("ix_predictions_dataset_student_created", "dataset", "student_key", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    event_id: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(100))
    student_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    task: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(300))
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    risk_score: Mapped[float] = mapped_column(Float)
    risk_band: Mapped[str] = mapped_column(String(20))
    prediction: Mapped[str | None] = mapped_column(String(200), nullable=True)
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    interval_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    interval_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    programme: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cohort: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Outcome(Base):
    """The real outcome of a student, joined later with predictions to measure the model."""

    __tablename__ = "outcomes"
    __table_args__ = (UniqueConstraint("dataset", "event_id", name="uq_outcomes_dataset_event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dataset: Mapped[str] = mapped_column(String(100))
    student_key: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    task: Mapped[str | None] = mapped_column(String(100), nullable=True)
    outcome: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Intervention(Base):
    """An action taken for a student (a meeting, a referral, ...)."""

    __tablename__ = "interventions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(100))
    student_key: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    type: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Feedback(Base):
    """An advisor's judgement of one prediction (e.g. ``wrong: student already withdrew``)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    dataset: Mapped[str] = mapped_column(String(100))
    student_key: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    reason: Mapped[str] = mapped_column(Text)
    useful: Mapped[bool | None] = mapped_column(nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditLog(Base):
    """Who did what, when; students appear only by pseudonym."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    dataset: Mapped[str | None] = mapped_column(String(100), nullable=True)
    student_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH), nullable=True, index=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ApiKey(Base):
    """An API key; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(20))
    programmes: Mapped[list[str]] = mapped_column(JSON, default=list)
    caseload: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    rotated_from: Mapped[str | None] = mapped_column(String(40), nullable=True)


class StreamCheckpoint(Base):
    """How far a consumer has durably processed one shard of a stream (e.g. a Kinesis shard).

    ``sequence`` is the last acknowledged position (a Kinesis sequence number); ``finished`` marks
    a closed shard that was read to its end, so its children may be read.
    """

    __tablename__ = "stream_checkpoints"
    __table_args__ = (
        UniqueConstraint("consumer", "stream", "shard", name="uq_stream_checkpoints_consumer_stream_shard"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(200))
    stream: Mapped[str] = mapped_column(String(300))
    shard: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[str | None] = mapped_column(String(200), nullable=True)
    finished: Mapped[bool] = mapped_column(default=False)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StreamLease(Base):
    """Which worker reads one shard; a lease whose ``expires_at`` has passed may be taken over."""

    __tablename__ = "stream_leases"
    __table_args__ = (
        UniqueConstraint("consumer", "stream", "shard", name="uq_stream_leases_consumer_stream_shard"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(200))
    stream: Mapped[str] = mapped_column(String(300))
    shard: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftResult(Base):
    """One drift check of a model's recent traffic against its training reference."""

    __tablename__ = "drift_results"
    __table_args__ = (Index("ix_drift_results_dataset_model_at", "dataset", "model_name", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    dataset: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(300))
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window: Mapped[str] = mapped_column(String(100))
    n_reference: Mapped[int] = mapped_column(Integer)
    n_current: Mapped[int] = mapped_column(Integer)
    enough_data: Mapped[bool] = mapped_column()
    share_drifted: Mapped[float | None] = mapped_column(Float, nullable=True)
    dataset_drift: Mapped[bool] = mapped_column()
    prediction_drift: Mapped[bool] = mapped_column()
    drifted: Mapped[list[str]] = mapped_column(JSON, default=list)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class GateDecisionRow(Base):
    """A promotion decision (retrain, manual promote, override) with the numbers behind it."""

    __tablename__ = "gate_decisions"
    __table_args__ = (Index("ix_gate_decisions_dataset_at", "dataset", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    dataset: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    champion_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    challenger_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    promoted: Mapped[bool] = mapped_column()
    metric: Mapped[str] = mapped_column(String(100))
    champion_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    challenger_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    margin: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Job(Base):
    """A background job (a retrain started through the API) and how it ended."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), index=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
