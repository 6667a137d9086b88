"""The event-stream gateway (``chatsys-stream <ini>``): Server-Sent Events of one chat or of a whole
application, read from the RabbitMQ stream queue ``<ns>.stream`` that every outbox event is
published to.

    source.py   one live tail of the stream per gateway, and per resuming client a short read of
                its history from the client's position (an offset of the stream)
    hub.py      subscribers: who hears which event, their bounded buffers, resume bookkeeping
    app.py      the aiohttp application: the two events routes, /healthz, /metrics, and the
                process around them (signals, drain on stop)
    sse.py      the wire format
    metrics.py  the gateway's own Prometheus registry

The gateway keeps no state that another gateway lacks: a client's position is the stream's
offset, so any gateway resumes any client (docs/decisions.md, "Event streams").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The events a client hears; the application's own events (application.*) are not streamed.
STREAMED = frozenset(
    {"message.created", "message.updated", "message.deleted", "chat.created", "chat.updated", "chat.deleted"}
)


@dataclass(frozen=True)
class StreamSettings:
    host: str = "127.0.0.1"
    port: int = 6545
    keepalive: float = 15.0
    client_buffer_bytes: int = 1 << 20
    retry_ms: int = 2000
    prefetch: int = 1000
    catchup_concurrency: int = 16
    ready_timeout: float = 10.0
    allow_origins: str = ""  # space-separated

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> StreamSettings:
        return cls(**{name: settings[f"stream.{name}"] for name in cls.__dataclass_fields__})
