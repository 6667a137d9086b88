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
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from chatsys.domain.fields import parse_time
from chatsys.domain.public import public_data
from chatsys.stream import STREAMED, metrics, sse

log = logging.getLogger(__name__)


# At most one flush (a write to every subscriber that has something) per this many seconds.  A
# flush to 1,000 sockets is 1,000 send() calls, ~6 ms of CPU here; the live tail meanwhile takes
# only a few messages per loop tick (aiormq hands a channel's frames over through a buffer of
# ten), so with a flush in every tick a gateway short of CPU wrote each event on its own, fell
# behind and never caught up (seconds behind during W1).  Waiting this long after a flush lets the
# tail read what has arrived, so one flush carries all of it; after a quiet spell (the usual
# case) an event is written at once.
FLUSH_INTERVAL = 0.005


class Subscriber:
    """One open stream.  Frames are written straight to its socket's transport by the hub, in one
    write per subscriber per loop tick however many events the tick brought: no task wakes up
    per event and subscriber, which is what lets one process feed thousands of streams."""

    __slots__ = (
        "token",
        "chat",
        "position",
        "limit",
        "chunked",
        "staged",
        "pending",
        "pending_bytes",
        "catching_up",
        "wake",
        "closed",
        "reason",
        "transport",
        "sent_position",
    )

    def __init__(self, token: str, chat: int | None, position: int, limit: int):
        self.token = token
        self.chat = chat
        self.position = position
        self.limit = limit
        self.chunked = True  # HTTP/1.1: the body is chunked; HTTP/1.0: raw until the close
        self.staged: list[bytes] = []
        self.pending: list[tuple[int, bytes]] = []
        self.pending_bytes = 0
        self.catching_up = False
        self.wake = asyncio.Event()
        self.closed = False
        self.reason = ""
        self.transport: asyncio.WriteTransport | None = None
        self.sent_position = position

    @property
    def scope(self) -> str:
        return "application" if self.chat is None else "chat"

    def hears(self, token: str | None, chat: int | None) -> bool:
        return token == self.token and (self.chat is None or chat == self.chat)

    def push(self, offset: int, frame: bytes) -> bool:
        """Stage one event (unless it is at or behind the position); True when staged for writing
        (the caller then calls :meth:`flush`), False when held or dropped."""
        if self.closed or offset <= self.position:
            return False
        if self.catching_up:
            self.pending.append((offset, frame))
            self.pending_bytes += len(frame)
            if self.pending_bytes > self.limit:
                self.close("slow")
            return False
        self.position = offset
        self.staged.append(frame)
        return True

    def write(self, data: bytes) -> None:
        """Hand bytes to the socket.  What the kernel does not take waits in the transport; past
        ``limit`` bytes waiting, the client is too slow and is cut off."""
        transport = self.transport
        if transport is None:
            return
        if transport.is_closing():
            self.close("client")
            return
        transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)
        self.sent_position = self.position
        if transport.get_write_buffer_size() > self.limit:
            self.close("slow")

    def flush(self) -> None:
        if self.staged:
            data = b"".join(self.staged) if len(self.staged) > 1 else self.staged[0]
            self.staged = []
            self.write(data)

    def push_control(self, offset: int, frame: bytes) -> None:
        """A frame that moves the position wherever it is (``reset``)."""
        self.position = offset
        self.staged.append(frame)
        self.flush()

    def caught_up(self) -> None:
        """The history is read: send the live events held meanwhile, then take them as they come."""
        held, self.pending, self.pending_bytes = self.pending, [], 0
        self.catching_up = False
        for offset, frame in held:
            self.push(offset, frame)
        self.flush()

    def close(self, reason: str) -> None:
        """End this stream: its handler returns.  A slow client's socket is aborted, since it
        would not take a last frame either."""
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

    def __init__(self, client_buffer_bytes: int, loop: asyncio.AbstractEventLoop | None = None):
        self.limit = client_buffer_bytes
        self.loop = loop  # None: the running loop
        self.head: int | None = None  # the last offset the live tail has read
        self.ready = asyncio.Event()  # set once the head is known
        self.by_app: dict[str, set[Subscriber]] = {}
        self.by_chat: dict[tuple[str, int], set[Subscriber]] = {}
        self.dirty: set[Subscriber] = set()
        self.committed: list[float] = []  # commit times of the events of this tick (delivery lag)
        self.tick_started: float | None = None  # when the tail read this tick's first event (fan-out time)
        self.flush_scheduled = False
        self.flushed_at = float("-inf")  # time.monotonic() when the last flush ended

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
        now = time.time()
        if event.committed is not None:
            metrics.TAIL_LAG.observe(max(0.0, now - event.committed))
            self.committed.append(event.committed)
        if self.tick_started is None:
            self.tick_started = now
        dirty = self.dirty
        for sub in self.by_app.get(event.token, ()):
            if sub.push(offset, event.frame):
                dirty.add(sub)
        if event.chat is not None:
            for sub in self.by_chat.get((event.token, event.chat), ()):
                if sub.push(offset, event.frame):
                    dirty.add(sub)
        if not self.flush_scheduled:
            # Everything the tail reads until the flush goes out in one write per subscriber: at
            # once after a quiet spell, else FLUSH_INTERVAL after the previous flush ended.
            self.flush_scheduled = True
            loop = self.loop or asyncio.get_running_loop()
            delay = self.flushed_at + FLUSH_INTERVAL - time.monotonic()
            if delay > 0:
                loop.call_later(delay, self.flush)
            else:
                loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        dirty, self.dirty = self.dirty, set()
        for sub in dirty:
            sub.flush()
        now = time.time()
        for committed in self.committed:
            metrics.LAG.observe(max(0.0, now - committed))
        self.committed = []
        if self.tick_started is not None:
            metrics.FANOUT.observe(now - self.tick_started)
            self.tick_started = None
        self.flushed_at = time.monotonic()

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
