"""Initial schema: roster, predictions, outcomes, interventions, feedback, audit log, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("programmes", sa.JSON(), nullable=False),
        sa.Column("caseload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_from", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=True),
        sa.Column("student_key", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(op.f("ix_audit_log_student_key"), "audit_log", ["student_key"], unique=False)
    op.create_table(
        "interventions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("student_key", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interventions")),
    )
    op.create_index(op.f("ix_interventions_at"), "interventions", ["at"], unique=False)
    op.create_index(op.f("ix_interventions_student_key"), "interventions", ["student_key"], unique=False)
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("student_key", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("dataset", "event_id", name="uq_outcomes_dataset_event_id"),
    )
    op.create_index(op.f("ix_outcomes_recorded_at"), "outcomes", ["recorded_at"], unique=False)
    op.create_index(op.f("ix_outcomes_student_key"), "outcomes", ["student_key"], unique=False)
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("student_key", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("model_name", sa.String(length=300), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("risk_score", sa.Float(), nullable=False),
        sa.Column("risk_band", sa.String(length=20), nullable=False),
        sa.Column("prediction", sa.String(length=200), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("interval_low", sa.Float(), nullable=True),
        sa.Column("interval_high", sa.Float(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("programme", sa.String(length=200), nullable=True),
        sa.Column("cohort", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("dataset", "event_id", name="uq_predictions_dataset_event_id"),
    )
    op.create_index(op.f("ix_predictions_cohort"), "predictions", ["cohort"], unique=False)
    op.create_index(op.f("ix_predictions_created_at"), "predictions", ["created_at"], unique=False)
    op.create_index(
        "ix_predictions_dataset_student_created",
        "predictions",
        ["dataset", "student_key", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_predictions_programme"), "predictions", ["programme"], unique=False)
    op.create_index(op.f("ix_predictions_risk_band"), "predictions", ["risk_band"], unique=False)
    op.create_index(op.f("ix_predictions_student_key"), "predictions", ["student_key"], unique=False)
    op.create_table(
        "roster",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("student_key", sa.String(length=64), nullable=False),
        sa.Column("student_id_enc", sa.LargeBinary(), nullable=False),
        sa.Column("name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("contact_enc", sa.LargeBinary(), nullable=True),
        sa.Column("programme", sa.String(length=200), nullable=True),
        sa.Column("advisor", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster")),
        sa.UniqueConstraint("dataset", "student_key", name="uq_roster_dataset_student_key"),
    )
    op.create_index(op.f("ix_roster_programme"), "roster", ["programme"], unique=False)
    op.create_index(op.f("ix_roster_student_key"), "roster", ["student_key"], unique=False)
    op.create_index(op.f("ix_roster_updated_at"), "roster", ["updated_at"], unique=False)
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prediction_id", sa.String(length=36), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("student_key", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("useful", sa.Boolean(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_feedback_prediction_id_predictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index(op.f("ix_feedback_at"), "feedback", ["at"], unique=False)
    op.create_index(op.f("ix_feedback_prediction_id"), "feedback", ["prediction_id"], unique=False)
    op.create_index(op.f("ix_feedback_student_key"), "feedback", ["student_key"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_feedback_student_key"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_prediction_id"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_at"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_index(op.f("ix_roster_updated_at"), table_name="roster")
    op.drop_index(op.f("ix_roster_student_key"), table_name="roster")
    op.drop_index(op.f("ix_roster_programme"), table_name="roster")
    op.drop_table("roster")
    op.drop_index(op.f("ix_predictions_student_key"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_risk_band"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_programme"), table_name="predictions")
    op.drop_index("ix_predictions_dataset_student_created", table_name="predictions")
    op.drop_index(op.f("ix_predictions_created_at"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_cohort"), table_name="predictions")
    op.drop_table("predictions")
    op.drop_index(op.f("ix_outcomes_student_key"), table_name="outcomes")
    op.drop_index(op.f("ix_outcomes_recorded_at"), table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_index(op.f("ix_interventions_student_key"), table_name="interventions")
    op.drop_index(op.f("ix_interventions_at"), table_name="interventions")
    op.drop_table("interventions")
    op.drop_index(op.f("ix_audit_log_student_key"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
