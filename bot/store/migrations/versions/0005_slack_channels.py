"""slack_channels: a channel's default repository

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_channels",
        sa.Column("channel", sa.String(length=50), nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("set_by", sa.String(length=50), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel"),
    )


def downgrade() -> None:
    op.drop_table("slack_channels")
