"""runs.estimated_cost and runs.actual_cost: what a run was expected to cost and what it cost

In the tiers file's currency (`bot.costs`); both NULL on a tier without `cost_per_hour` and on runs
from before this revision, which therefore count nothing toward a budget. `created_at` is indexed: a
month's spend reads the runs created in it.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain nullable columns, added in place: a batch rebuild of `runs` would drop it under the foreign
    # keys that refer to it (see 0009).
    op.add_column("runs", sa.Column("estimated_cost", sa.Double(), nullable=True))
    op.add_column("runs", sa.Column("actual_cost", sa.Double(), nullable=True))
    op.create_index("ix_runs_created_at", "runs", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_column("runs", "actual_cost")
    op.drop_column("runs", "estimated_cost")
