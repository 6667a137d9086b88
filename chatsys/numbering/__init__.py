"""Numbering: chats 1, 2, 3… per application and messages 1, 2, 3… per chat, from Redis.

The interface is :class:`IAllocator`; :class:`RedisAllocator` is the implementation, registered as
a pyramid_services service so views look it up with ``request.find_service(IAllocator)``.
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
    config.register_service(allocator, IAllocator)
