"""pull_comments: the id of each comment the bot keeps on a pull request (its sticky comments, its replies)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("pull_request", sa.Integer(), nullable=False),
        sa.Column("marker", sa.String(length=300), nullable=False),
        sa.Column("comment_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository", "pull_request", "marker"),
    )


def downgrade() -> None:
    op.drop_table("pull_comments")
