"""The gateway's fan-out without a broker: who hears what, positions, buffers, the wire format."""

from __future__ import annotations

import asyncio
import json

import pytest

from chatsys.stream import sse
from chatsys.stream.hub import Hub, decode


def envelope(event_type: str, token: str, chat: int, number: int | None = None, version: int = 1) -> bytes:
    data = {"app_token": token, "chat_number": chat, "application_id": 7, "chat_id": 9}
    if event_type.startswith("message."):
        data.update(message_id=3, message_number=number, body="hi", version=version)
        data.update(created_at="2026-01-01T00:00:00.000000Z", updated_at="2026-01-01T00:00:00.000000Z")
        if event_type == "message.deleted":
            data["deleted_at"] = "2026-01-01T00:00:01.000000Z"
    else:
        data.update(name="general", messages_count=0)
        data.update(created_at="2026-01-01T00:00:00.000000Z", updated_at="2026-01-01T00:00:00.000000Z")
    body = {"event_id": "e", "type": event_type, "occurred_at": "2026-01-01T00:00:00.000000Z", "data": data}
    return json.dumps(body).encode()


class Transport:
    """What a subscriber writes to: records the bytes; ``kernel`` bytes are taken at once, the rest
    waits in the buffer (a client that does not read)."""

    def __init__(self, reads: bool = True):
        self.reads = reads
        self.written: list[bytes] = []
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if not self.reads:
            self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def subscribe(hub, token, chat, position, reads=True):
    sub = hub.add(token, chat, position)
    sub.transport = Transport(reads)
    sub.chunked = False
    return sub


def frames(sub) -> list[dict]:
    """The events written to ``sub`` since the last call (after the hub's end-of-tick flush)."""
    sub_hub_flush()
    out = []
    data = b"".join(sub.transport.written).decode()
    sub.transport.written.clear()
    for frame in data.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.strip().split("\n") if ": " in line)
        if "event" in lines:
            out.append({"id": int(lines["id"]), "event": lines["event"], "data": json.loads(lines["data"])})
    return out


HUBS: list[Hub] = []


def sub_hub_flush() -> None:
    for hub in HUBS:
        hub.flush()


@pytest.fixture
def hub():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    hub = Hub(client_buffer_bytes=4096, loop=loop)
    hub.publish(10, b"")  # the marker: the head is known
    HUBS[:] = [hub]
    yield hub
    asyncio.set_event_loop(None)
    loop.close()


def test_a_chat_stream_hears_its_chat_and_an_application_stream_every_chat(hub):
    chat1 = subscribe(hub, "T", 1, None)
    app = subscribe(hub, "T", None, None)
    other = subscribe(hub, "U", None, None)
    hub.publish(11, envelope("message.created", "T", 1, 1))
    hub.publish(12, envelope("message.created", "T", 2, 1))
    hub.publish(13, envelope("chat.updated", "T", 1))
    hub.publish(14, envelope("application.updated", "T", 0))
    assert [f["id"] for f in frames(chat1)] == [11, 13]
    assert [f["id"] for f in frames(app)] == [11, 12, 13]
    assert frames(other) == []


def test_events_carry_the_public_representation_only(hub):
    sub = subscribe(hub, "T", 1, None)
    hub.publish(11, envelope("message.created", "T", 1, 5, version=3))
    hub.publish(12, envelope("message.deleted", "T", 1, 5, version=4))
    created, deleted = frames(sub)
    assert created["event"] == "message.created"
    assert created["data"]["version"] == 3 and created["data"]["message_number"] == 5
    assert not {"application_id", "chat_id", "message_id", "app_token"} & set(created["data"])
    assert deleted["data"] == {
        "chat_number": 1,
        "message_number": 5,
        "version": 4,
        "deleted_at": "2026-01-01T00:00:01.000000Z",
    }


def test_nothing_at_or_before_the_position_is_queued_again(hub):
    sub = subscribe(hub, "T", 1, 12)
    assert not sub.catching_up  # ahead of this gateway's head: nothing to read back
    hub.publish(11, envelope("message.created", "T", 1, 1))
    hub.publish(12, envelope("message.created", "T", 1, 2))
    hub.publish(13, envelope("message.created", "T", 1, 3))
    assert [f["id"] for f in frames(sub)] == [13]


def test_live_events_wait_while_the_history_is_read(hub):
    sub = subscribe(hub, "T", 1, 5)
    assert sub.catching_up
    hub.publish(11, envelope("message.created", "T", 1, 9))
    assert frames(sub) == []  # held
    sub.catching_up = False
    sub.push(7, decode(7, envelope("message.created", "T", 1, 8)).frame)  # from the history
    sub.catching_up = True
    sub.caught_up()
    assert [f["id"] for f in frames(sub)] == [7, 11]


def test_a_subscriber_over_its_buffer_is_closed_as_slow_and_the_others_go_on(hub):
    slow = subscribe(hub, "T", 1, None, reads=False)
    fast = subscribe(hub, "T", 1, None)
    for offset in range(11, 40):
        hub.publish(offset, envelope("message.created", "T", 1, offset))
        assert len(frames(fast)) == 1  # this one keeps up
    assert slow.closed and slow.reason == "slow" and slow.transport.aborted
    assert not fast.closed
    hub.remove(slow)
    hub.publish(40, envelope("message.created", "T", 1, 40))
    assert [f["id"] for f in frames(fast)] == [40]


def test_wire_format():
    assert sse.retry(2000) == b"retry: 2000\n\n"
    assert sse.keepalive(None) == b": keepalive\n\n"
    assert sse.keepalive(42) == b": keepalive\nid: 42\n\n"
    assert (
        sse.event("message.created", 5, {"body": "a\nb"})
        == b'id: 5\nevent: message.created\ndata: {"body":"a\\nb"}\n\n'
    )
    assert sse.reset(9).startswith(b"id: 9\nevent: reset\n")


def test_anything_but_an_event_is_ignored():
    assert decode(1, b"") is None
    assert decode(1, b"not json") is None
    assert decode(1, b'{"type": "x"}') is None
