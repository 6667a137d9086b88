"""Messages are stored in (chat_id, number) order: that pair becomes the primary key.

InnoDB keeps a table's rows in its primary key's order.  Every read of messages is within one chat
(a page, one message, a search), and with ``id`` as the key a chat's rows were spread over the
table in insertion order, reached through the (chat_id, number) index and one more B-tree lookup
per row.  ``id`` stays, AUTO_INCREMENT and UNIQUE: events carry it and the counters consumer flags
messages by it.  See docs/decisions.md, "Messages are stored by chat".

The change rebuilds the table in place with concurrent reads and writes allowed (InnoDB can change
a primary key online, and the foreign key on chat_id keeps an index that starts with chat_id at
every moment); ALGORITHM/LOCK make the server refuse rather than lock the table if it cannot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE messages DROP PRIMARY KEY, ADD CONSTRAINT pk_messages PRIMARY KEY (chat_id, number), "
        "DROP INDEX uq_messages_chat_id_number, ADD CONSTRAINT uq_messages_id UNIQUE (id), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE messages DROP PRIMARY KEY, ADD CONSTRAINT pk_messages PRIMARY KEY (id), "
        "DROP INDEX uq_messages_id, ADD CONSTRAINT uq_messages_chat_id_number UNIQUE (chat_id, number), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )
