"""RabbitMQ: connection parameters and short-lived channels for admin work.

pika is imported where it is used: the web process only needs it for /readyz's probe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pika
    from pika.adapters.blocking_connection import BlockingChannel


def connection_parameters(settings: Mapping[str, Any], connection_name: str) -> pika.URLParameters:
    """Parameters of a connection to ``amqp.url``, named for the management UI."""
    import pika

    params = pika.URLParameters(settings["amqp.url"])
    params.heartbeat = settings["amqp.heartbeat"]
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": connection_name}
    return params


@contextlib.contextmanager
def blocking_channel(parameters: pika.ConnectionParameters) -> Iterator[BlockingChannel]:
    """A channel on a connection of its own, both closed on the way out (for short admin work)."""
    import pika

    connection = pika.BlockingConnection(parameters)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()
