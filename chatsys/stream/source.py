"""Reading the stream queue ``<ns>.stream`` with aio-pika.

The live tail is one consumer per gateway.  It attaches at ``next`` and then publishes a marker
(an empty message, type ``chatsys.stream.marker``) straight to the stream: the marker is the first
offset the tail is sure to see, so from then on the hub's head is a position before which
everything is history and after which everything comes live.  After a lost connection the tail
attaches again at head + 1, so nothing is skipped; if retention dropped that offset meanwhile,
every client is told to reset.

A resuming client reads the history with a consumer of its own, from its position + 1 up to the
head it started at, then takes the live events held for it meanwhile (:mod:`chatsys.stream.hub`).
A history that starts after position + 1 means the position is older than the stream keeps: the
client gets a ``reset`` and goes on from the head.

Stream consumers need a prefetch (basic.qos) and acknowledgements, which only return credit: they
are sent for many messages at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika
from yarl import URL

from chatsys.broker.topology import Topology
from chatsys.runtime.process import Backoff
from chatsys.stream import metrics, sse
from chatsys.stream.hub import Hub, Subscriber, decode

log = logging.getLogger(__name__)

MARKER_TYPE = "chatsys.stream.marker"
ACK_EVERY = 100


def offset_of(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    return int(message.headers["x-stream-offset"])


class Reader:
    """A consumer of the stream from an offset, its messages in order in a queue of our own.

    Not aio-pika's queue iterator: closing one nacks the messages it buffered, and a stream queue
    answers a nack by closing the whole connection (540 NOT_IMPLEMENTED).  Here what was not read
    is simply dropped with the channel (a stream keeps it).
    """

    def __init__(self, queue: aio_pika.abc.AbstractQueue):
        self.queue = queue
        self.messages: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage | None] = asyncio.Queue()
        self.tag: str | None = None

    async def start(self, offset: Any) -> Reader:
        async def deliver(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.messages.put_nowait(message)  # no await: tasks run in delivery order

        self.tag = await self.queue.consume(deliver, arguments={"x-stream-offset": offset})
        self.queue.channel.close_callbacks.add(lambda *args: self.messages.put_nowait(None))
        return self

    async def __anext__(self) -> aio_pika.abc.AbstractIncomingMessage:
        message = await self.messages.get()
        if message is None:
            self.messages.put_nowait(None)
            raise StopAsyncIteration
        return message

    def __aiter__(self) -> Reader:
        return self


class BrokerUnavailable(Exception):
    """The gateway cannot read the stream now (the client is asked to come back later)."""


class StreamSource:
    def __init__(self, amqp_url: str, heartbeat: int, topology: Topology, hub: Hub, prefetch: int, catchups: int):
        self.url = str(URL(amqp_url).update_query(heartbeat=heartbeat))
        self.topology = topology
        self.hub = hub
        self.prefetch = prefetch
        self.catchup_slots = asyncio.Semaphore(catchups)
        self.connection: aio_pika.abc.AbstractConnection | None = None
        # Resuming clients read on a connection of their own: a channel error of theirs never
        # takes the live tail down.
        self.history: aio_pika.abc.AbstractConnection | None = None
        self.history_lock = asyncio.Lock()
        self.connected = asyncio.Event()
        self.stopping = False

    async def _connect(self, name: str) -> aio_pika.abc.AbstractConnection:
        return await aio_pika.connect(self.url, client_properties={"connection_name": name}, timeout=10)

    async def _stream_queue(self, channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
        await channel.set_qos(prefetch_count=self.prefetch)
        topology = self.topology
        exchange = await channel.declare_exchange(topology.events_exchange, "topic", durable=True)
        queue = await channel.declare_queue(topology.stream, durable=True, arguments=topology.stream_arguments())
        await queue.bind(exchange, routing_key="#")
        return queue

    # -- the live tail ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the live tail attached until :meth:`stop`; reconnect after a backoff."""
        backoff = Backoff(0.5, 5.0)
        while not self.stopping:
            try:
                await self._tail()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure of the broker's connection is retried
                if self.stopping:
                    return
                delay = backoff.next()
                log.warning("stream tail: %s: %s; reconnecting in %.1fs", exc.__class__.__name__, exc, delay)
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()
                metrics.BROKER_UP.set(0)

    async def _tail(self) -> None:
        connection = await self._connect("chatsys-stream")
        self.connection = connection
        try:
            channel = await connection.channel()
            queue = await self._stream_queue(channel)
            resume = self.hub.head
            start: Any = "next" if resume is None else resume + 1
            iterator = await Reader(queue).start(start)
            connection.close_callbacks.add(lambda *args: iterator.messages.put_nowait(None))
            if resume is None:
                await channel.default_exchange.publish(
                    aio_pika.Message(b"", type=MARKER_TYPE), routing_key=self.topology.stream
                )
            self.connected.set()
            metrics.BROKER_UP.set(1)
            log.info("stream tail attached to %s at %s", self.topology.stream, start)
            first = True
            unacked = 0
            async for message in iterator:
                offset = offset_of(message)
                if self.hub.head is not None and offset <= self.hub.head:
                    pass  # delivered again from the start of a chunk
                else:
                    if first and resume is not None and offset > resume + 1:
                        self.hub.resync(offset)
                    first = False
                    self.hub.publish(offset, message.body)
                # Acknowledgements only give credit back: one for many messages keeps the broker
                # sending (ACK_EVERY < prefetch) without a frame per message.
                unacked += 1
                if unacked >= ACK_EVERY:
                    await message.ack(multiple=True)
                    unacked = 0
            raise ConnectionError("the stream consumer was cancelled by the broker")
        finally:
            self.connection = None
            if not connection.is_closed:
                await connection.close()

    async def stop(self) -> None:
        self.stopping = True
        for connection in (self.connection, self.history):
            if connection is not None and not connection.is_closed:
                await connection.close()

    async def _history_channel(self) -> aio_pika.abc.AbstractChannel:
        async with self.history_lock:
            if not self.connected.is_set():
                raise BrokerUnavailable("the live tail is not attached")
            if self.history is None or self.history.is_closed:
                self.history = await self._connect("chatsys-stream-history")
        channel = await self.history.channel()
        await channel.set_qos(prefetch_count=self.prefetch)  # streams require one
        return channel

    # -- resuming a client ----------------------------------------------------------------------

    async def catch_up(self, sub: Subscriber, until: int) -> None:
        """Queue for ``sub`` what the stream holds after its position, up to ``until`` (the head
        when it subscribed); then its held live events.  A position no longer kept: ``reset``."""
        start = sub.position + 1
        async with self.catchup_slots:
            if sub.closed:
                return
            try:
                channel = await self._history_channel()
            except Exception as exc:
                metrics.CATCHUPS.labels("broker").inc()
                raise BrokerUnavailable(str(exc)) from exc
            try:
                queue = await channel.get_queue(self.topology.stream, ensure=False)
                iterator = await Reader(queue).start(start)
                unacked = 0
                first = True
                async for message in iterator:
                    offset = offset_of(message)
                    if offset < start:
                        continue  # the broker starts at the chunk that holds ``start``
                    if first and offset > start:
                        # The first offset we get is past the one asked for: retention
                        # dropped it.  The client reloads; it goes on from the head.
                        metrics.CATCHUPS.labels("reset").inc()
                        metrics.RESETS.inc()
                        sub.pending = [p for p in sub.pending if p[0] > until]
                        sub.push_control(until, sse.reset(until))
                        break
                    first = False
                    event = decode(offset, message.body)
                    if event is not None and event.streamed and sub.hears(event.token, event.chat):
                        sub.catching_up = False  # history goes straight out; live events wait
                        if sub.push(offset, event.frame) and len(sub.staged) >= 64:
                            sub.flush()
                        sub.catching_up = True
                    sub.position = max(sub.position, offset)
                    unacked += 1
                    if unacked >= ACK_EVERY:
                        await message.ack(multiple=True)
                        unacked = 0
                    if offset >= until or sub.closed:
                        break
                else:
                    raise BrokerUnavailable("the history read ended early")
                metrics.CATCHUPS.labels("ok").inc()
            except BrokerUnavailable:
                metrics.CATCHUPS.labels("broker").inc()
                raise
            except Exception as exc:
                metrics.CATCHUPS.labels("broker").inc()
                raise BrokerUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
            finally:
                if not channel.is_closed:
                    try:
                        await channel.close()
                    except Exception:  # the connection may be gone already
                        pass
        sub.caught_up()
