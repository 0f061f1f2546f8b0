"""metric_history: a point per succeeded run of a branch that comparisons are made against

Written when the run's outputs are collected (`bot.history`); runs collected before this revision have
no point (their metrics files may be gone already), so a branch's history starts here.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("experiment", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
    )
    op.create_index(
        "ix_metric_history_branch",
        "metric_history",
        ["repository", "branch", "experiment", "tier", "run_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_metric_history_branch", table_name="metric_history")
    op.drop_table("metric_history")
