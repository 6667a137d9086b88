"""The event-stream gateway end to end: the real relay, the real broker's stream queue and a real
``chatsys-stream`` process, heard through a Server-Sent Events client (tests/support/sse.py)."""

from __future__ import annotations

import http.client
import secrets
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from chatsys.broker import blocking_channel, connection_parameters
from chatsys.runtime.services import Services
from testkit.processes import Proc, Processes, write_ini
from tests.conftest import process_overrides
from tests.support.api import create_application, create_chat, create_message
from tests.support.db import TESTING_INI
from tests.support.net import free_port
from tests.support.sse import SSEStream
from tests.support.wait import wait_for


class Gateway:
    def __init__(self, procs: Processes, ini: Path):
        self.procs = procs
        self.ini = ini
        self.port = 0
        self.proc: Proc | None = None

    def start(self) -> Gateway:
        self.port = free_port()
        self.proc = self.procs.spawn("stream", "chatsys-stream", "--port", str(self.port), ini=self.ini)
        wait_for(self.ready, 30, interval=0.05, message="gateway ready")
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as res:
                return res.status == 200
        except OSError:
            return False

    def stop(self) -> int | None:
        return self.proc.stop()

    def open(self, token: str, chat: int | None = None, last_event_id: str | None = None, query: bool = False):
        path = f"/v1/applications/{token}" + (f"/chats/{chat}" if chat is not None else "") + "/events"
        stream = SSEStream("127.0.0.1", self.port, path, last_event_id, query_last_event_id=query).start()
        assert stream.opened.wait(10)
        return stream

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as res:
            return res.read().decode()


def events_read(gateway: Gateway) -> int:
    """How many stream messages the gateway's live tail has read (its /metrics)."""
    (line,) = [line for line in gateway.metrics().splitlines() if line.startswith("chatsys_stream_events_total ")]
    return int(float(line.split()[1]))


def stream_ini(settings, tmp_path: Path, **extra) -> Path:
    return write_ini(tmp_path / "stream.ini", TESTING_INI, process_overrides(settings, **extra))


@pytest.fixture
def gateway(procs, settings, tmp_path) -> Gateway:
    procs.relay()
    return Gateway(procs, stream_ini(settings, tmp_path)).start()


def numbers_arrived(stream: SSEStream, count: int, chat: int | None = None):
    return lambda: len(stream.message_numbers(chat)) >= count


def test_a_subscriber_hears_a_message_within_a_second_of_its_201(testapp, gateway):
    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    chat_stream = gateway.open(token, 1)
    app_stream = gateway.open(token)
    assert chat_stream.status == app_stream.status == 200
    assert chat_stream.retry == 2000 or wait_for(lambda: chat_stream.retry == 2000, 5)
    created = create_message(testapp, token, 1, "hello world")
    acknowledged = time.monotonic()
    wait_for(numbers_arrived(chat_stream, 1), 1.0, interval=0.005, message="the message on the chat's stream")
    assert time.monotonic() - acknowledged < 1.0
    wait_for(numbers_arrived(app_stream, 1), 5)
    (event,) = chat_stream.of_type("message.created")
    assert event.data == created  # the /v1 representation, version included
    assert event.id is not None and event.id.isdigit()
    # The application's stream hears its chats too.
    create_chat(testapp, token, "second")
    # (chat 1's own chat.created may or may not reach the streams: the relay may publish it after
    # they opened.)
    wait_for(lambda: [e for e in app_stream.of_type("chat.created") if e.data["chat_number"] == 2], 5)
    assert {e.data["chat_number"] for e in chat_stream.events} == {1}  # the chat's stream: that chat only
    chat_stream.close()
    app_stream.close()


@pytest.mark.parametrize("via", ["header", "query"])
def test_a_resumed_subscriber_gets_exactly_what_it_missed_in_order(testapp, gateway, via):
    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    create_chat(testapp, token)
    stream = gateway.open(token, 1)
    create_message(testapp, token, 1, "before")
    wait_for(numbers_arrived(stream, 1), 5)
    stream.close()
    last = stream.last_event_id
    for i in range(100):
        create_message(testapp, token, 1, f"missed {i}")
        create_message(testapp, token, 2, f"other chat {i}")  # not this stream's
    resumed = gateway.open(token, 1, last_event_id=last, query=(via == "query"))
    wait_for(numbers_arrived(resumed, 100), 30, message="the 100 missed messages")
    create_message(testapp, token, 1, "live again")
    wait_for(numbers_arrived(resumed, 101), 10)
    assert resumed.message_numbers() == list(range(2, 103))
    assert {e.data["chat_number"] for e in resumed.events} == {1}
    resumed.close()


def test_resume_across_a_gateway_restart(testapp, procs, settings, tmp_path):
    procs.relay()
    ini = stream_ini(settings, tmp_path)
    first = Gateway(procs, ini).start()
    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    stream = first.open(token, 1)
    for i in range(5):
        create_message(testapp, token, 1, f"first {i}")
    wait_for(numbers_arrived(stream, 5), 10)
    assert first.stop() == 0  # a clean stop: SIGTERM drains
    assert stream.ended.wait(10) and stream.error is None  # closed cleanly, not cut
    assert stream.retry == 2000
    for i in range(20):
        create_message(testapp, token, 1, f"while down {i}")
    second = Gateway(procs, ini).start()
    resumed = second.open(token, 1, last_event_id=stream.last_event_id)
    wait_for(numbers_arrived(resumed, 20), 30)
    assert resumed.message_numbers() == list(range(6, 26))
    resumed.close()


def test_unknown_or_deleted_application_or_chat_is_a_404_before_the_stream(testapp, gateway):
    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    create_chat(testapp, token)
    testapp.delete(f"/v1/applications/{token}/chats/2", status=204)
    for path, code in [
        (f"/v1/applications/{secrets.token_urlsafe(24)}/events", "not_found"),
        (f"/v1/applications/{secrets.token_urlsafe(24)}/chats/1/events", "not_found"),
        ("/v1/applications/not%20a%20token/events", "not_found"),
        (f"/v1/applications/{token}/chats/3/events", "not_found"),
        (f"/v1/applications/{token}/chats/x/events", "not_found"),
        (f"/v1/applications/{token}/chats/2/events", "deleted"),
    ]:
        stream = SSEStream("127.0.0.1", gateway.port, path).start()
        assert stream.ended.wait(10)
        assert stream.status == 404, path
        import json

        assert json.loads(stream.body)["error"]["code"] == code, path
    ok = gateway.open(token, 1)
    assert ok.status == 200
    ok.close()


def test_a_slow_reader_is_cut_off_while_others_keep_receiving(testapp, procs, settings, tmp_path):
    procs.relay()
    gateway = Gateway(procs, stream_ini(settings, tmp_path, **{"stream.client_buffer_bytes": 65536})).start()
    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    # A reader that never reads, with a small receive buffer: its bytes back up in the gateway.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", gateway.port))
    slow.sendall(f"GET /v1/applications/{token}/chats/1/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    fast = gateway.open(token, 1)
    wait_for(lambda: 'chatsys_stream_connections{scope="chat"} 2.0' in gateway.metrics(), 10)
    body = "\u20ac" * 9000  # 27 kB of UTF-8 a frame: the socket buffers fill in about 200
    sent = 0
    while 'disconnects_total{reason="slow"} 1.0' not in gateway.metrics():
        assert sent < 1000, "the slow reader was never cut off"
        for _ in range(20):
            create_message(testapp, token, 1, body)
            sent += 1
    # The fast reader heard every message, and goes on hearing.
    wait_for(numbers_arrived(fast, sent), 30)
    create_message(testapp, token, 1, "after")
    wait_for(numbers_arrived(fast, sent + 1), 10)
    assert fast.message_numbers() == list(range(1, sent + 2))
    slow.close()
    fast.close()


def first_kept_offset(settings, queue: str) -> int:
    """The first offset the stream still holds (read with a consumer of our own, then dropped:
    pika nacks what it holds on the way out, which a stream answers by closing the connection)."""
    import pika

    connection = pika.BlockingConnection(connection_parameters(settings, "chatsys-tests"))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        for _method, properties, _body in channel.consume(queue, arguments={"x-stream-offset": "first"}):
            return int(properties.headers["x-stream-offset"])
    finally:
        try:
            connection.close()
        except pika.exceptions.AMQPError:
            pass
    raise AssertionError("empty stream")


@pytest.fixture
def short_stream(settings, tmp_path):
    """An ini on a namespace of its own whose stream keeps 1 MiB, in 100 kB segments."""
    overrides = {
        "amqp.namespace": f"{settings['amqp.namespace']}_short",
        "amqp.stream_max_bytes": str(1 << 20),
        "amqp.stream_segment_bytes": "100000",
    }
    ini = stream_ini(settings, tmp_path, **overrides)
    yield ini
    topology = Services({**settings, **{k: (int(v) if v.isdigit() else v) for k, v in overrides.items()}}).topology
    with blocking_channel(connection_parameters(settings, "chatsys-tests")) as channel:
        topology.delete(channel)


def test_a_position_past_retention_gets_reset_then_goes_on_live(testapp, procs, settings, short_stream):
    procs.relay(ini=short_stream)
    gateway = Gateway(procs, short_stream).start()
    stream_queue = f"{settings['amqp.namespace']}_short.stream"
    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    stream = gateway.open(token, 1)
    create_message(testapp, token, 1, "soon forgotten")
    wait_for(numbers_arrived(stream, 1), 10)
    stream.close()
    position = int(stream.last_event_id)
    # 3 MB more than the stream keeps: retention drops the segments that held the position.  In
    # steps that the gateway's live tail reads before the next: what is tested is a client's
    # position past retention, not a tail overtaken by it (a burst of the whole retention at once
    # on a loaded machine left the tail stalled; see the stream section of docs/decisions.md).
    read = events_read(gateway)
    with blocking_channel(connection_parameters(settings, "chatsys-tests")) as channel:
        for _ in range(10):
            for _ in range(30):
                channel.basic_publish("", stream_queue, b"not an event " * 800)
            read += 30
            wait_for(lambda n=read: events_read(gateway) >= n, 10, message="the live tail kept up")
    wait_for(lambda: first_kept_offset(settings, stream_queue) > position + 1, 30, interval=0.2)

    resumed = gateway.open(token, 1, last_event_id=str(position))
    wait_for(lambda: resumed.of_type("reset"), 10, message="a reset event")
    (reset,) = resumed.of_type("reset")
    assert int(reset.id) > position
    assert resumed.message_numbers() == []
    create_message(testapp, token, 1, "after the reset")
    wait_for(numbers_arrived(resumed, 1), 10)
    assert resumed.message_numbers() == [2]
    resumed.close()


@pytest.mark.services
def test_streams_survive_and_resume_across_a_broker_restart(testapp, gateway):
    from tests.faults.harness import services

    token = create_application(testapp, "acme")["app_token"]
    create_chat(testapp, token)
    stay = gateway.open(token, 1)  # stays connected through the restart
    leave = gateway.open(token, 1)  # leaves during it, resumes after
    for i in range(5):
        create_message(testapp, token, 1, f"before {i}")
    wait_for(numbers_arrived(leave, 5), 10)
    leave.close()
    services("restart", "rabbitmq")
    for i in range(20):
        create_message(testapp, token, 1, f"after {i}")  # the outbox holds them until the relay is back
    wait_for(numbers_arrived(stay, 25), 90, interval=0.2, message="every message on the open stream")
    assert stay.message_numbers() == list(range(1, 26))
    resumed = gateway.open(token, 1, last_event_id=leave.last_event_id)
    wait_for(numbers_arrived(resumed, 20), 30)
    assert resumed.message_numbers() == list(range(6, 26))
    stay.close()
    resumed.close()


def test_pages_of_allowed_origins_may_open_streams_and_no_others(testapp, procs, settings, tmp_path):
    """CORS for the /demo page of `make run`, whose origin is the web's, not the gateway's: the
    stream and its refusals name an allowed origin back; another origin gets no such header."""
    allowed = "http://127.0.0.1:6543"
    ini = stream_ini(settings, tmp_path, **{"stream.allow_origins": f"{allowed} http://localhost:6543"})
    gateway = Gateway(procs, ini).start()
    token = testapp.post_json("/v1/applications", {"name": "cors"}).json["app_token"]
    testapp.post_json(f"/v1/applications/{token}/chats", {}, status=201)

    def headers(path: str, origin: str) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Origin": origin})
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}
        finally:
            conn.close()

    status, got = headers(f"/v1/applications/{token}/chats/1/events", allowed)
    assert status == 200 and got["access-control-allow-origin"] == allowed and got["vary"] == "Origin"
    status, got = headers(f"/v1/applications/{token}/chats/9/events", allowed)
    assert status == 404 and got["access-control-allow-origin"] == allowed
    status, got = headers(f"/v1/applications/{token}/chats/1/events", "http://evil.example")
    assert status == 200 and "access-control-allow-origin" not in got
