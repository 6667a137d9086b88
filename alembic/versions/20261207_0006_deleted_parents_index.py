"""Indexes on ``deleted_at`` of applications and chats: the purge's progress (``/metrics``,
``chatsys-deadletters list``) counts deleted parents not yet purged without a scan of the table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_applications_deleted_at", "applications", ["deleted_at"])
    op.create_index("ix_chats_deleted_at", "chats", ["deleted_at"])


def downgrade() -> None:
    op.drop_index("ix_chats_deleted_at", "chats")
    op.drop_index("ix_applications_deleted_at", "applications")
