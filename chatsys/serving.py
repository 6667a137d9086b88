"""waitress for chatsys-web: the stock server with a channel that does not spin, and a TCP
server that takes only its share of connections (:mod:`chatsys.balance`).

waitress's event loop asks every connection ``writable()`` before each ``select()``.  A
connection answers yes whenever its output buffer holds bytes, even while a request thread is
in the middle of writing that output and holds the buffer's lock.  ``select()`` then reports
the socket writable at once, ``handle_write`` cannot take the lock and sends nothing, and the
loop goes round again: a busy loop that holds the GIL for as long as the request thread needs
to get it back and finish its ``send()``.  Under load the two feed each other.  With 32
connections and 8 threads on one process, the benchmark's read mix measured 300 ``select()``
calls and about 7 ms of the event loop's CPU per request, and throughput fell from 540/s (one
connection) to 70/s.

:class:`Channel` does not offer a connection for writing while a request thread holds its
output lock, unless the output is above ``outbuf_high_watermark``.  Nothing is left unsent:

- a request thread flushes its own output inside ``write_soon`` (waitress's ``send_bytes`` is
  1).  When the socket would not take everything, waitress wakes the loop while the thread still
  holds the lock, so ``writable()`` may turn that wake-up down; :meth:`Channel.write_soon` wakes
  the loop once more after the lock is released;
- when the thread's request ends, waitress always wakes the loop (``service`` pulls the trigger),
  and with no request running the channel is writable as before;
- above the high watermark a request thread *waits* for the loop to drain the buffer (it
  releases the lock to wait), so there the stock answer is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, TcpWSGIServer, create_server
from waitress.task import ErrorTask

from chatsys.balance import Balance

# What waitress answers itself, before the application sees a request, in the service's codes.
SERVER_ERROR_CODES = {
    400: "malformed_request",
    413: "payload_too_large",
    431: "request_header_fields_too_large",
    501: "not_implemented",
}


class JSONErrorTask(ErrorTask):
    """waitress's own error answers (a request line it cannot parse, a body over
    ``max_request_body_size``, headers over ``max_request_header_size``) in the service's one
    error shape, ``{"error": {"code", "message"}}``, instead of waitress's plain text."""

    def execute(self):
        error = self.request.error
        code = SERVER_ERROR_CODES.get(error.code, "internal_error")
        body = orjson.dumps({"error": {"code": code, "message": f"{error.reason}."}})
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Channel(HTTPChannel):
    draining = False  # set by drain(): the worker is stopping, read no further requests
    error_task_class = JSONErrorTask

    def readable(self):
        return not self.draining and super().readable()

    def writable(self):
        if (
            self.requests
            and 0 < self.total_outbufs_len <= self.adj.outbuf_high_watermark
            and not (self.will_close or self.close_when_flushed)
        ):
            # A request thread is writing: let it flush. Busy means it holds the lock now.
            if not self.outbuf_lock.acquire(blocking=False):
                return False
            self.outbuf_lock.release()
        return super().writable()

    def write_soon(self, data):
        written = super().write_soon(data)
        if self.total_outbufs_len and self.connected:
            # Bytes left over: the lock is free now, so the loop will take them (see writable).
            self.server.pull_trigger()
        return written


class Wakeup(wasyncore.dispatcher):
    """The worker's end of its :class:`~chatsys.balance.Balance` socket pair: a byte from another
    worker ends this worker's ``select()`` so that its server asks the balance again."""

    def readable(self):
        return True

    def writable(self):
        return False

    def handle_read(self):
        try:
            if not self.socket.recv(4096):
                self.close()  # the other end is gone (it cannot be while the launcher runs)
        except BlockingIOError:
            pass


class BalancedServer(TcpWSGIServer):
    """waitress's TCP server that listens only when :class:`Balance` says so."""

    balance: Balance
    slot: int
    stale_after: float  # seconds without a round after which a peer is left out

    def readable(self):
        willing = super().readable()  # waitress's own connection_limit comes first
        return self.balance.listen(self.slot, len(self.active_channels), willing, self.stale_after)


def drain(server: BaseWSGIServer, until: float, round_seconds: float) -> None:
    """After ``server`` stopped listening: answer the requests already received, read no others,
    and close each connection as soon as it is idle; return when none is left, or at ``until``.

    Answers not begun yet say ``Connection: close``; a connection that goes idle is closed by
    the server (a FIN after its last answer), as HTTP lets a server do with a kept-alive one.
    """
    while True:
        for channel in list(server.active_channels.values()):
            channel.draining = True
            for request in channel.requests:
                request.headers["CONNECTION"] = "close"
            if not channel.requests and not channel.total_outbufs_len:
                channel.handle_close()
        if not server.active_channels or time.monotonic() >= until:
            return
        wasyncore.loop(timeout=round_seconds, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)


def make_server(
    app: Callable,
    map: dict | None = None,
    balance: Balance | None = None,
    slot: int = 0,
    stale_after: float | None = None,
    **adjustments: Any,
):
    """``waitress.server.create_server`` whose listening servers open :class:`Channel`\\ s, and
    with ``balance``, a TCP server that shares connections with the other workers (``slot``)."""
    socket_map = {} if map is None else map
    server = create_server(app, map=socket_map, **adjustments)
    for dispatcher in list(socket_map.values()):
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = Channel
        if balance is not None and type(dispatcher) is TcpWSGIServer:
            # create_server built waitress's class; it gets the balance the way it got Channel.
            dispatcher.__class__ = BalancedServer
            dispatcher.balance, dispatcher.slot = balance, slot
            # A peer's loop goes round at least once a loop timeout: a few missed rounds mean hung.
            dispatcher.stale_after = stale_after or 3 * dispatcher.adj.asyncore_loop_timeout
            Wakeup(balance.waker(slot), map=socket_map)
    return server
