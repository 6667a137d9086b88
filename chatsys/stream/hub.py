"""Subscribers and the fan-out of the live tail to them.

A subscriber is one open stream: an application's (``chat is None``) or one chat's.  Its
``position`` is the last stream offset it has been given (or skipped past): an event at or below it
is never queued again, which is what makes a resume, a catch-up and the live tail meet without a
gap or a repeat.  Events wait in the subscriber's own buffer, bounded in bytes; a subscriber that
lets it overflow is cut off (``slow``) and resumes from its last id, so one slow client costs only
itself.

While a resuming subscriber reads the stream's history (:meth:`Hub.subscribe` with a position
behind the head), live events that match it are held in ``pending`` and queued once the history
reaches the head the subscriber started at.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from chatsys.domain.fields import parse_time
from chatsys.domain.public import public_data
from chatsys.stream import STREAMED, metrics, sse

log = logging.getLogger(__name__)


class Subscriber:
    __slots__ = (
        "token",
        "chat",
        "position",
        "limit",
        "frames",
        "buffered",
        "pending",
        "catching_up",
        "wake",
        "closed",
        "reason",
        "transport",
    )

    def __init__(self, token: str, chat: int | None, position: int, limit: int):
        self.token = token
        self.chat = chat
        self.position = position
        self.limit = limit
        self.frames: deque[tuple[bytes, float | None]] = deque()  # (bytes, commit time for the lag)
        self.buffered = 0
        self.pending: list[tuple[int, bytes, float | None]] = []
        self.catching_up = False
        self.wake = asyncio.Event()
        self.closed = False
        self.reason = ""
        self.transport: asyncio.BaseTransport | None = None

    @property
    def scope(self) -> str:
        return "application" if self.chat is None else "chat"

    def hears(self, token: str | None, chat: int | None) -> bool:
        return token == self.token and (self.chat is None or chat == self.chat)

    def push(self, offset: int, frame: bytes, committed: float | None) -> None:
        """Queue one event (unless it is at or behind the position)."""
        if self.closed or offset <= self.position:
            return
        if self.catching_up:
            self.pending.append((offset, frame, committed))
        else:
            self.position = offset
            self.frames.append((frame, committed))
        self.buffered += len(frame)
        if self.buffered > self.limit:
            self.close("slow")
            return
        self.wake.set()

    def push_control(self, offset: int, frame: bytes) -> None:
        """A frame that moves the position wherever it is (``reset``)."""
        self.position = offset
        self.frames.append((frame, None))
        self.buffered += len(frame)
        self.wake.set()

    def caught_up(self) -> None:
        """The history is read: queue the live events held meanwhile, then take them as they come."""
        held, self.pending = self.pending, []
        self.catching_up = False
        self.buffered = sum(len(frame) for frame, _ in self.frames)
        for offset, frame, committed in held:
            self.push(offset, frame, committed)
        self.wake.set()

    def take(self) -> list[tuple[bytes, float | None]]:
        frames = list(self.frames)
        self.frames.clear()
        self.buffered = sum(len(frame) for _, frame, _ in self.pending)
        return frames

    def close(self, reason: str) -> None:
        """End this stream: its handler sends what it can and returns.  A slow client's socket is
        aborted, since it would not take a last frame either."""
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        self.wake.set()
        if reason == "slow" and self.transport is not None:
            self.transport.abort()


class Event:
    """One stream message, decoded once: the frame every subscriber of it shares."""

    __slots__ = ("offset", "type", "token", "chat", "committed", "_data", "_frame")

    def __init__(self, offset: int, envelope: dict[str, Any]):
        self.offset = offset
        self.type = envelope["type"]
        data = envelope["data"]
        self._data = data
        self.token = data.get("app_token")
        self.chat = data.get("chat_number")
        self._frame: bytes | None = None
        try:
            occurred = parse_time(envelope["occurred_at"]).replace(tzinfo=UTC)
            self.committed: float | None = occurred.timestamp()
        except (TypeError, ValueError):
            self.committed = None

    @property
    def streamed(self) -> bool:
        return self.type in STREAMED

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = sse.event(self.type, self.offset, public_data(self.type, self._data))
        return self._frame


def decode(offset: int, body: bytes) -> Event | None:
    """The event in a stream message, or None for anything else (the gateways' own markers)."""
    import orjson

    try:
        envelope = orjson.loads(body)
        if not isinstance(envelope, dict) or "type" not in envelope or not isinstance(envelope.get("data"), dict):
            return None
        return Event(offset, envelope)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class Hub:
    """The subscribers of one gateway, indexed by application and by chat."""

    def __init__(self, client_buffer_bytes: int):
        self.limit = client_buffer_bytes
        self.head: int | None = None  # the last offset the live tail has read
        self.ready = asyncio.Event()  # set once the head is known
        self.by_app: dict[str, set[Subscriber]] = {}
        self.by_chat: dict[tuple[str, int], set[Subscriber]] = {}

    def __len__(self) -> int:
        return sum(map(len, self.by_app.values())) + sum(map(len, self.by_chat.values()))

    def subscribers(self) -> Iterable[Subscriber]:
        for group in (*self.by_app.values(), *self.by_chat.values()):
            yield from group

    def add(self, token: str, chat: int | None, position: int | None) -> Subscriber:
        """A subscriber from ``position`` (None: from now on).  It is ``catching_up`` when the
        position is behind the head: the caller then reads the history up to ``head``."""
        assert self.head is not None, "subscribe only once the hub is ready"
        start = self.head if position is None else position
        sub = Subscriber(token, chat, start, self.limit)
        sub.catching_up = start < self.head
        group = self.by_app.setdefault(token, set()) if chat is None else self.by_chat.setdefault((token, chat), set())
        group.add(sub)
        metrics.OPEN.labels(sub.scope).inc()
        metrics.ACCEPTED.labels(sub.scope).inc()
        return sub

    def remove(self, sub: Subscriber) -> None:
        key: Any = sub.token if sub.chat is None else (sub.token, sub.chat)
        index: dict = self.by_app if sub.chat is None else self.by_chat
        group = index.get(key)
        if group is not None and sub in group:
            group.discard(sub)
            if not group:
                del index[key]
            metrics.OPEN.labels(sub.scope).dec()
            metrics.DISCONNECTS.labels(sub.reason or "client").inc()

    def publish(self, offset: int, body: bytes) -> None:
        """One message of the live tail: move the head, queue the event for whoever hears it."""
        self.head = offset
        metrics.HEAD.set(offset)
        metrics.EVENTS.inc()
        if not self.ready.is_set():
            self.ready.set()
        event = decode(offset, body)
        if event is None or not event.streamed or event.token is None:
            return
        for sub in self.by_app.get(event.token, ()):
            sub.push(offset, event.frame, event.committed)
        if event.chat is not None:
            for sub in self.by_chat.get((event.token, event.chat), ()):
                sub.push(offset, event.frame, event.committed)

    def resync(self, first: int) -> None:
        """The live tail came back and the stream no longer holds what followed the head (it was
        away longer than the retention): every subscriber is told to reload."""
        log.warning("stream resumed at %d after head %s: events lost to retention, resetting clients", first, self.head)
        for sub in list(self.subscribers()):
            metrics.RESETS.inc()
            sub.pending.clear()
            sub.catching_up = False
            sub.push_control(first - 1, sse.reset(first - 1))

    def close_all(self, reason: str) -> None:
        for sub in list(self.subscribers()):
            sub.close(reason)

    @staticmethod
    def lag(committed: float | None) -> None:
        if committed is not None:
            metrics.LAG.observe(max(0.0, time.time() - committed))
