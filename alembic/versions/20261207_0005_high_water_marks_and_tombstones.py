"""Numbering high-water marks, and deletion tombstones.

- ``applications.last_chat_number`` and ``chats.last_message_number``: the highest number ever
  committed among the parent's children, raised in the same transaction as each create.  A create
  whose number is not above it (Redis came back behind MySQL: a restore from an older snapshot,
  an AOF ``everysec`` loss, a failover to a lagging replica) is refused and retried with a
  reseeded counter, so numbers only go up in commit order, and a number handed out once, even to
  a deleted item, is never handed out again.  Filled from ``MAX(number)`` here.
- ``deleted_at`` on applications, chats and messages: NULL while the row is live.  A deleted
  row stays as a tombstone (its number, its version, when it was deleted), never its text.
- ``purged_at`` on applications and chats: when the background purge of a deleted parent's
  children (their content, their search documents) finished; NULL while it has not.

ADD COLUMN with a default is instant on MariaDB 10.3+ and MySQL 8 (``ALGORITHM=INSTANT``); the
backfill of the marks is one UPDATE per parent table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import DATETIME

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LOCK_WAIT = 10


def upgrade() -> None:
    op.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT}")
    op.add_column("applications", sa.Column("last_chat_number", sa.Integer, nullable=False, server_default="0"))
    op.add_column("chats", sa.Column("last_message_number", sa.Integer, nullable=False, server_default="0"))
    for table in ("applications", "chats", "messages"):
        op.add_column(table, sa.Column("deleted_at", DATETIME(fsp=6), nullable=True))
    for table in ("applications", "chats"):
        op.add_column(table, sa.Column("purged_at", DATETIME(fsp=6), nullable=True))
    op.execute(
        "UPDATE applications a SET last_chat_number = "
        "(SELECT COALESCE(MAX(c.number), 0) FROM chats c WHERE c.application_id = a.id)"
    )
    op.execute(
        "UPDATE chats c SET last_message_number = "
        "(SELECT COALESCE(MAX(m.number), 0) FROM messages m WHERE m.chat_id = c.id)"
    )


def downgrade() -> None:
    op.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT}")
    for table in ("applications", "chats"):
        op.drop_column(table, "purged_at")
    for table in ("applications", "chats", "messages"):
        op.drop_column(table, "deleted_at")
    op.drop_column("chats", "last_message_number")
    op.drop_column("applications", "last_chat_number")
