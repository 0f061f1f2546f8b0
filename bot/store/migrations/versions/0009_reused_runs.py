"""runs.reused_run_id: the run whose outcome a run took instead of running again

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The reference inline (`ADD COLUMN … REFERENCES runs`), which SQLite accepts for a column that
    # defaults to NULL: a batch rebuild of `runs` would drop the table under its foreign keys (SQLite
    # enforces them here), failing on comparisons and deleting outputs by cascade. No ON DELETE: SQLite's
    # reflection cannot read it back from an inline reference, and the models must match the schema.
    op.add_column(
        "runs",
        sa.Column("reused_run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        inline_references=True,
    )


def downgrade() -> None:
    # SQLite cannot drop a column that a foreign key uses; there the batch rebuild runs, which needs
    # `PRAGMA foreign_keys=OFF` around it when other tables refer to runs.
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("reused_run_id")
