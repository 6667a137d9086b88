"""ORM models: one module per table.  Importing this package registers every table on the metadata."""

from chatsys.models.application import Application
from chatsys.models.chat import Chat
from chatsys.models.failure import ConsumerFailure
from chatsys.models.idempotency import IdempotencyKey
from chatsys.models.message import Message
from chatsys.models.meta import Base, metadata, utcnow
from chatsys.models.outbox import OutboxEvent

__all__ = [
    "Application",
    "Base",
    "Chat",
    "ConsumerFailure",
    "IdempotencyKey",
    "Message",
    "OutboxEvent",
    "metadata",
    "utcnow",
]
