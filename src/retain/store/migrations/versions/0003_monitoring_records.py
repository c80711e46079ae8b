"""Monitoring records: stored drift results, gate decisions and background jobs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "drift_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("model_name", sa.String(length=300), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("window", sa.String(length=100), nullable=False),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.Column("enough_data", sa.Boolean(), nullable=False),
        sa.Column("share_drifted", sa.Float(), nullable=True),
        sa.Column("dataset_drift", sa.Boolean(), nullable=False),
        sa.Column("prediction_drift", sa.Boolean(), nullable=False),
        sa.Column("drifted", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_results")),
    )
    op.create_index(
        "ix_drift_results_dataset_model_at", "drift_results", ["dataset", "model_name", "at"], unique=False
    )
    op.create_table(
        "gate_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("model_name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("challenger_version", sa.Integer(), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("champion_score", sa.Float(), nullable=True),
        sa.Column("challenger_score", sa.Float(), nullable=True),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_decisions")),
    )
    op.create_index("ix_gate_decisions_dataset_at", "gate_decisions", ["dataset", "at"], unique=False)
    op.create_index(op.f("ix_gate_decisions_model_name"), "gate_decisions", ["model_name"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"], unique=False)
    op.create_index(op.f("ix_jobs_created_at"), "jobs", ["created_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_jobs_created_at"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_status"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_gate_decisions_model_name"), table_name="gate_decisions")
    op.drop_index("ix_gate_decisions_dataset_at", table_name="gate_decisions")
    op.drop_table("gate_decisions")
    op.drop_index("ix_drift_results_dataset_model_at", table_name="drift_results")
    op.drop_table("drift_results")
