"""Messages are stored in (chat_id, number) order: that pair becomes the primary key.

InnoDB keeps a table's rows in its primary key's order.  Every read the API makes of messages is
within one chat (a page, one message, a search), and with ``id`` as the key a chat's rows were
spread over the table in insertion order, reached through the (chat_id, number) index and one
more B-tree lookup per row.  ``id`` stays, AUTO_INCREMENT and UNIQUE: events carry it and the counters consumer flags
messages by it.  See docs/decisions.md, "Messages are stored by chat".

The change rebuilds the table in place with concurrent reads and writes allowed (InnoDB can change
a primary key online, and the foreign key on chat_id keeps an index that starts with chat_id at
every moment); ALGORITHM/LOCK make the server refuse rather than lock the table if it cannot.
It still takes the table's metadata lock for a moment at its start and end, and writes queue
behind it while it waits for that lock: a long transaction that has read messages would stall
them all, so the wait is bounded (LOCK_WAIT seconds, then the migration fails and can be run
again).  Writes made during the rebuild are logged for replay, up to
``innodb_online_alter_log_max_size`` (the ALTER fails past it): run it off-peak on a busy table.

Deploy this revision's code before migrating (either order works with it): a create tells a taken
number by the error code, while older code looked for the key name ``uq_messages_chat_id_number``
and answers a taken message number with a 500 once the key is ``PRIMARY``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LOCK_WAIT = 10


def upgrade() -> None:
    op.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT}")
    op.execute(
        "ALTER TABLE messages DROP PRIMARY KEY, ADD CONSTRAINT pk_messages PRIMARY KEY (chat_id, number), "
        "DROP INDEX uq_messages_chat_id_number, ADD CONSTRAINT uq_messages_id UNIQUE (id), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )


def downgrade() -> None:
    op.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT}")
    op.execute(
        "ALTER TABLE messages DROP PRIMARY KEY, ADD CONSTRAINT pk_messages PRIMARY KEY (id), "
        "DROP INDEX uq_messages_id, ADD CONSTRAINT uq_messages_chat_id_number UNIQUE (chat_id, number), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )
