"""Predictions: drop the indexes no query uses, which every stored prediction paid for.

``ix_predictions_student_key`` put one random page of its own into every insert (a pseudonym is a
random key) while every per-student query names the dataset too and uses
``ix_predictions_dataset_student_created``; ``risk_band``, ``programme`` and ``cohort`` are only
filtered after the caseload's window function, where no index applies. Erasure and export across
datasets go dataset by dataset on the composite index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = ("student_key", "risk_band", "programme", "cohort")


def upgrade() -> None:
    """Apply this revision."""
    for column in _DROPPED:
        op.drop_index(op.f(f"ix_predictions_{column}"), table_name="predictions")


def downgrade() -> None:
    """Revert this revision."""
    for column in reversed(_DROPPED):
        op.create_index(op.f(f"ix_predictions_{column}"), "predictions", [column], unique=False)
