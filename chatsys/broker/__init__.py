"""RabbitMQ: connection parameters, the topology every process declares, and probes.

pika is imported where it is used: the web process only needs it for /readyz's probe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from chatsys.broker.topology import Topology

if TYPE_CHECKING:
    import pika


def connection_parameters(settings, heartbeat: int = 30) -> pika.URLParameters:
    import pika

    params = pika.URLParameters(settings["amqp.url"])
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": settings.get("amqp.connection_name", "chatsys")}
    return params


@contextlib.contextmanager
def blocking_channel(
    parameters: pika.ConnectionParameters,
) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A channel on a connection of its own, both closed on the way out (for short admin work)."""
    import pika

    connection = pika.BlockingConnection(parameters)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def topology_from_settings(settings) -> Topology:
    return Topology(
        namespace=settings["amqp.namespace"],
        delivery_limit=int(settings.get("amqp.delivery_limit", 5)),
    )


def probe(settings):
    """A callable that raises unless the broker accepts a connection (for /readyz)."""

    def check() -> None:
        import pika

        params = connection_parameters(settings)
        params.socket_timeout = 2
        params.stack_timeout = 3
        connection = pika.BlockingConnection(params)
        connection.close()

    return check


def includeme(config) -> None:
    config.registry["broker_probe"] = probe(config.get_settings())
