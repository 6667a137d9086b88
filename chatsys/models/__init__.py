"""The declarative base, and the tables of the machinery around the aggregates: the outbox, the
idempotency keys and the consumers' failure records.  The aggregates' own tables live in their
domain modules (``chatsys.domain``); :func:`metadata` returns the metadata with every table."""

from chatsys.models.failure import ConsumerFailure
from chatsys.models.idempotency import IdempotencyKey
from chatsys.models.meta import Base, utcnow
from chatsys.models.outbox import OutboxEvent

__all__ = ["Base", "ConsumerFailure", "IdempotencyKey", "OutboxEvent", "metadata", "utcnow"]


def metadata():
    """Every table of the schema (Alembic's target, the schema test)."""
    import chatsys.domain.messages  # noqa: F401  (imports the chats and applications tables too)

    return Base.metadata
