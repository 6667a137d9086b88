"""Server-Sent Events on the wire (the WHATWG HTML standard's ``text/event-stream``).

An event is built once and its bytes are shared by every subscriber that hears it.  A keepalive
is a comment; it may carry an ``id:`` with no data, which moves a browser's ``lastEventId``
forward without firing an event, so that a client of a quiet chat resumes from a recent position
rather than from its last event, hours back.
"""

from __future__ import annotations

from typing import Any

import orjson


def event(event_type: str, event_id: int | None, data: Any) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    # orjson never writes a raw newline (they are escaped in strings), so data is one line.
    return f"{head}event: {event_type}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


def keepalive(event_id: int | None) -> bytes:
    return b": keepalive\n" + (f"id: {event_id}\n\n".encode() if event_id is not None else b"\n")


def reset(event_id: int) -> bytes:
    """The position asked for is no longer kept: reload through REST, then go on from here."""
    return event("reset", event_id, {"reason": "position_expired", "position": event_id})
