"""slack_links: a Slack user's verified GitHub login

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_links",
        sa.Column("slack_user", sa.String(length=50), nullable=False),
        sa.Column("github_login", sa.String(length=100), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slack_user"),
    )


def downgrade() -> None:
    op.drop_table("slack_links")
