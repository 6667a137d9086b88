"""Consumer failures: the reason each dead-lettered message was rejected.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import DATETIME

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_failures",
        sa.Column("consumer", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("failed_at", DATETIME(fsp=6), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_consumer_failures"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )


def downgrade() -> None:
    op.drop_table("consumer_failures")
