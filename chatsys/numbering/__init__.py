"""Numbering: chats 1, 2, 3… per application and messages 1, 2, 3… per chat, from Redis.

The interface is :class:`IAllocator`; :class:`RedisAllocator` is the implementation, registered as
the process-wide ``request.allocator`` (a request method: the pyramid_services container built per
request cost more than the allocation itself).
"""

from chatsys.numbering.allocator import (
    IAllocator,
    NumberConflict,
    RedisAllocator,
    Sequence,
    chat_sequence,
    message_sequence,
)

__all__ = [
    "IAllocator",
    "NumberConflict",
    "RedisAllocator",
    "Sequence",
    "chat_sequence",
    "message_sequence",
]


def includeme(config) -> None:
    from chatsys.redis import get_redis

    registry = config.registry
    allocator = RedisAllocator(
        redis=get_redis(registry),
        engine=registry["db_engine"],
        prefix=registry.settings["redis.key_prefix"],
    )
    config.registry["allocator"] = allocator
    config.add_request_method(lambda request: request.registry["allocator"], "allocator", reify=True)
