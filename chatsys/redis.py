"""The process-wide Redis client (one connection pool), kept in the registry."""

from __future__ import annotations

from redis import Redis

from chatsys.settings import as_float


def make_redis(settings) -> Redis:
    timeout = as_float(settings, "redis.socket_timeout")
    return Redis.from_url(
        settings["redis.url"],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        max_connections=int(settings.get("redis.max_connections", 64)),
        decode_responses=False,
    )


def get_redis(registry) -> Redis:
    client = registry.get("redis")
    if client is None:
        client = registry["redis"] = make_redis(registry.settings)
    return client
