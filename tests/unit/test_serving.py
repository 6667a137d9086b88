"""chatsys.serving: waitress's channel without the busy loop, and every byte still delivered."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser

from chatsys.serving import Channel, make_server

WATERMARK = 256 * 1024
CHUNK = 64 * 1024


def payload(size: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * (CHUNK // 32)
    return (block * (size // len(block) + 1))[:size]


def app(environ, start_response):
    """``/one/<size>``: the body in one write; ``/stream/<size>``: in 64 KiB chunks."""
    _, kind, size = environ["PATH_INFO"].split("/")
    body = payload(int(size), environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", size)])
    if kind == "one":
        return [body]
    return (body[i : i + CHUNK] for i in range(0, len(body), CHUNK))


@pytest.fixture
def serve():
    """Start chatsys.serving servers on free ports (``app`` unless given), each loop in a thread."""
    running = []

    def start(application=app, **adjustments):
        socket_map: dict = {}
        settings = {"threads": 4, "outbuf_high_watermark": WATERMARK, **adjustments}
        srv = make_server(application, map=socket_map, listen="127.0.0.1:0", **settings)
        thread = threading.Thread(target=srv.run, name="waitress-test-loop", daemon=True)
        thread.start()
        running.append((srv, socket_map, thread))
        return srv

    yield start
    for srv, socket_map, thread in running:
        # Closed by the loop itself (a trigger thunk), so it leaves select() and returns at once.
        srv.trigger.pull_trigger(lambda socket_map=socket_map: wasyncore.close_all(socket_map))
        thread.join(10)
        srv.task_dispatcher.shutdown()
        assert not thread.is_alive()


@pytest.fixture
def server(serve):
    return serve()


def fetch(port: int, path: str, rcvbuf: int | None = None) -> tuple[bytes, bytes]:
    """GET ``path`` on a raw socket (optionally with a small receive buffer); head and body."""
    return exchange(port, f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode(), rcvbuf)


def exchange(port: int, request: bytes, rcvbuf: int | None = None) -> tuple[bytes, bytes]:
    """Send raw bytes; read until the server closes (after ``Connection: close``, or after one of
    waitress's own errors); head and body."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    "kind, watermark",
    [
        ("one", 16 * 1024 * 1024),  # below the watermark while the request runs: Channel's path
        ("one", WATERMARK),
        ("stream", WATERMARK),  # past the watermark again and again: the thread waits for the loop
    ],
)
def test_responses_larger_than_the_socket_buffers_arrive_whole(serve, kind, watermark):
    # 8 MiB through a 4 KiB receive buffer: request threads cannot flush it all themselves, so the
    # event loop must finish the job.
    srv = serve(outbuf_high_watermark=watermark)
    size = 8 * 1024 * 1024
    path = f"/{kind}/{size}"
    head, body = fetch(int(srv.effective_port), path, rcvbuf=4096)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert len(body) == size
    assert body == payload(size, path)


def test_output_left_over_while_the_app_pauses_is_still_sent(serve):
    """A chunk the socket cannot take at once must reach the client while the app is paused.

    waitress wakes the loop from inside ``write_soon`` while the request thread still holds the
    output lock; ``Channel.writable`` turns that wake-up down, so ``Channel.write_soon`` must wake
    the loop again.  Each wake-up from a request thread is followed by a pause here, which makes
    the loop see the lock held every time; the loop's own timeout is an hour, so a lost wake-up
    is never rescued by it.  The app then waits until the client has the whole chunk.
    """
    first = 4 * 1024 * 1024
    delivered = threading.Event()
    outcomes = []

    def pausing(environ, start_response):
        start_response("200 OK", [("Content-Length", str(first + 3))])

        def body():
            delivered.clear()
            yield b"a" * first
            outcomes.append(delivered.wait(10))  # the pause: until the client has the chunk
            yield b"end"

        return body()

    srv = serve(pausing, outbuf_high_watermark=16 * 1024 * 1024, asyncore_loop_timeout=3600)
    pull = srv.pull_trigger

    def slow_pull(*args):
        pull(*args)
        if threading.current_thread().name != "waitress-test-loop":
            threading.Event().wait(0.003)  # keep the lock a moment, as a thread losing the GIL does

    srv.pull_trigger = slow_pull
    for _ in range(5):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(30)
            sock.connect(("127.0.0.1", int(srv.effective_port)))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            data = bytearray()
            while len(data.partition(b"\r\n\r\n")[2]) < first:
                data += sock.recv(65536)
            delivered.set()
            while chunk := sock.recv(65536):
                data += chunk
        assert data.endswith(b"end")
        assert outcomes.pop(), "the chunk reached the client only after the app went on"


def test_many_concurrent_clients_all_get_their_answers(server):
    paths = [f"/{'one' if i % 2 else 'stream'}/{1000 + 37 * i}" for i in range(200)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: fetch(int(server.effective_port), p), paths))
    for path, (head, body) in zip(paths, answers, strict=True):
        assert head.startswith(b"HTTP/1.1 200 OK"), path
        assert body == payload(len(body), path) and len(body) == int(path.rsplit("/", 1)[1])


@pytest.fixture
def busy_channel(server):
    """Make channels with a request in progress and ``queued`` bytes of output not yet sent."""
    opened = []

    def make(cls, queued: int) -> HTTPChannel:
        ours, theirs = socket.socketpair()
        channel = cls(server, ours, ("127.0.0.1", 0), server.adj, map={})
        channel.requests = [HTTPRequestParser(server.adj)]
        channel.outbufs[-1].append(b"x" * queued)
        channel.total_outbufs_len = queued
        opened.append((channel, theirs))
        return channel

    yield make
    for channel, peer in opened:
        channel.close()
        peer.close()


def held_by_another_thread(lock):
    """Context: ``lock`` held by a helper thread (an RLock is re-entrant for its own thread)."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold)

    class Held:
        def __enter__(self):
            thread.start()
            assert taken.wait(10)

        def __exit__(self, *exc):
            release.set()
            thread.join(10)

    return Held()


def test_a_channel_whose_request_thread_holds_its_output_is_not_offered_for_writing(busy_channel):
    stock = busy_channel(HTTPChannel, 100)
    ours = busy_channel(Channel, 100)
    with held_by_another_thread(stock.outbuf_lock):
        # waitress's own channel asks select() for writability it cannot use: the busy loop.
        assert stock.writable()
    with held_by_another_thread(ours.outbuf_lock):
        assert not ours.writable()
    # The lock free again (the thread finished writing, or waits for the loop): writable.
    assert ours.writable()
    # No request running: writable, as in waitress.
    ours.requests = []
    assert ours.writable()


def test_a_write_the_socket_cannot_take_wakes_the_loop_after_the_lock_is_released(server, busy_channel):
    channel = busy_channel(Channel, 0)
    woken_holding_lock = []
    server.pull_trigger = lambda *args: woken_holding_lock.append(channel.outbuf_lock._is_owned())
    # The peer reads nothing: the socket pair's buffers take far less than 4 MiB.
    channel.write_soon(b"x" * (4 * 1024 * 1024))
    assert channel.total_outbufs_len > 0
    # waitress's own wake-up comes with the lock held; Channel's comes after it is released.
    assert woken_holding_lock == [True, False]


def test_above_the_high_watermark_the_loop_drains_even_while_the_lock_is_held(busy_channel):
    # The request thread is about to wait for the loop to drain the buffer: keep offering it.
    channel = busy_channel(Channel, WATERMARK + 1)
    with held_by_another_thread(channel.outbuf_lock):
        assert channel.writable()


@pytest.mark.parametrize(
    "request_bytes, status, code",
    [
        (b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000, 413, "payload_too_large"),
        (b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + b"y" * 2000 + b"\r\n\r\n", 431, "request_header_fields_too_large"),
        (b"GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", 400, "malformed_request"),
        (b"GET /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    ],
    ids=["body too large", "headers too large", "bad content length", "unknown transfer coding"],
)
def test_the_servers_own_errors_are_json_in_the_service_shape(serve, request_bytes, status, code):
    def never(environ, start_response):  # pragma: no cover - waitress answers before the app
        raise AssertionError("the application saw the request")

    # Each request fits in one of waitress's reads (8 KiB): it closes after its error, and unread
    # bytes left behind would make the close a reset that can discard the answer.
    srv = serve(never, max_request_body_size=1024, max_request_header_size=1024)
    head, body = exchange(int(srv.effective_port), request_bytes)
    assert head.split(b"\r\n")[0].split(b" ")[1] == str(status).encode()
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert set(json.loads(body)) == {"error"}
