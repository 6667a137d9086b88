"""Numbering: chats 1, 2, 3… per application and messages 1, 2, 3… per chat, from Redis.

The interface is :class:`IAllocator`; :class:`RedisAllocator` is the implementation, one per
process (``chatsys.runtime.services.Services.allocator``), which views hand to the domain layer.
"""

from chatsys.numbering.allocator import (
    IAllocator,
    NumberConflict,
    ParentGone,
    RedisAllocator,
    Sequence,
    chat_sequence,
    lock_parent,
    message_sequence,
    record_number,
)

__all__ = [
    "IAllocator",
    "NumberConflict",
    "ParentGone",
    "RedisAllocator",
    "Sequence",
    "chat_sequence",
    "lock_parent",
    "message_sequence",
    "record_number",
]
