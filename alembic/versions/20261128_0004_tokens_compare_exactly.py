"""Application tokens compare case-sensitively: ``applications.token`` becomes ``utf8mb4_bin``.

Under the tables' ``utf8mb4_unicode_ci`` collation, ``/applications/<TOKEN>`` in another case
found the application.  The token a request spelled then went into the events, and from there
into Elasticsearch's document id, routing and chat key: a message created through a variant was
indexed under a chat key that searches with the real token never match (invariant I4), and a
token was easier to guess than its 192 bits.  Tokens are generated URL-safe, so no two existing
tokens can collide under the new collation.

``utf8mb4_bin`` still ignores trailing spaces (PAD SPACE, on MariaDB and MySQL alike): what keeps
``<token>%20`` out is the lookup's shape check (``chatsys.lookups.TOKEN_SHAPE``), which takes
URL-safe characters only.

Messages indexed under a variant spelling before this change are repaired by ``chatsys-reindex``:
it builds a new index from MySQL, every message under its stored token, and swaps the alias, so
the copies under a variant's chat key go with the old index.

The applications table holds one row per tenant: the column change rebuilds it, quickly.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column(
        "applications",
        "token",
        existing_type=sa.String(64),
        type_=sa.String(64, collation="utf8mb4_bin"),
        existing_nullable=False,
    )


def downgrade() -> None:
    op.alter_column(
        "applications",
        "token",
        existing_type=sa.String(64, collation="utf8mb4_bin"),
        type_=sa.String(64, collation="utf8mb4_unicode_ci"),
        existing_nullable=False,
    )
