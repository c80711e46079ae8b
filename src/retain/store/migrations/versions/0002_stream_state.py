"""Stream state: per-shard checkpoints and leases (Kinesis consumers).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "stream_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("stream", sa.String(length=300), nullable=False),
        sa.Column("shard", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.String(length=200), nullable=True),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_checkpoints")),
        sa.UniqueConstraint(
            "consumer", "stream", "shard", name="uq_stream_checkpoints_consumer_stream_shard"
        ),
    )
    op.create_table(
        "stream_leases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("stream", sa.String(length=300), nullable=False),
        sa.Column("shard", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_leases")),
        sa.UniqueConstraint("consumer", "stream", "shard", name="uq_stream_leases_consumer_stream_shard"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("stream_leases")
    op.drop_table("stream_checkpoints")
