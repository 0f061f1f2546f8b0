"""skipped_outputs: entries of a run's outputs directory that were not read, and why

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "skipped_outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("skipped_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_skipped_outputs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("skipped_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_skipped_outputs_run_id"))
    op.drop_table("skipped_outputs")
