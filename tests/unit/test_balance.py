"""chatsys-web's workers share their open connections out evenly (chatsys.balance)."""

from __future__ import annotations

import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from waitress import wasyncore

from chatsys.balance import SLACK, Balance
from chatsys.serving import BalancedServer, make_server

STALE = 3.0


def woken(balance: Balance, slot: int) -> bool:
    """Whether a wake-up byte waits on ``slot``'s socket (and take it)."""
    waker = balance.waker(slot)
    if not select.select([waker], [], [], 0)[0]:
        return False
    waker.recv(4096)
    return True


def test_a_worker_well_ahead_of_a_listening_peer_stands_back():
    balance = Balance(2)
    assert balance.listen(1, 3, True, STALE)
    assert balance.listen(0, 3 + SLACK, True, STALE)  # within the slack
    assert not balance.listen(0, 3 + SLACK + 1, True, STALE)
    assert balance.slots()[0][:2] == (3 + SLACK + 1, False)
    assert not woken(balance, 1)  # the peer is listening: nothing to wake
    assert balance.listen(1, 3, True, STALE)  # the one behind never stands back


def test_standing_back_wakes_a_peer_that_is_not_listening():
    balance = Balance(3)
    assert not balance.listen(1, 5, False, STALE)  # at its own limit, say: recorded as not listening
    assert balance.listen(2, 5 + SLACK, True, STALE)
    assert not balance.listen(0, 9, True, STALE)  # ahead of both by more than the slack
    assert woken(balance, 1) and not woken(balance, 2) and not woken(balance, 0)


def test_gone_and_silent_workers_are_left_out():
    balance = Balance(3)
    balance.listen(1, 0, True, STALE)
    balance.listen(2, 0, True, STALE)
    balance.clear(1)
    # slot 2 spoke 0.05 s ago: with a 0.01 s staleness limit it counts as hung.
    time.sleep(0.05)
    assert balance.listen(0, 40, True, 0.01)
    assert not balance.listen(0, 40, True, STALE)  # but not with the real limit
    assert [beat > 0 for _, _, beat in balance.slots()] == [True, False, True]


def test_a_worker_that_leaves_wakes_the_others():
    """A peer may be standing back for the worker that went: it must look again at once."""
    balance = Balance(3)
    balance.listen(0, 2, True, STALE)
    assert not balance.listen(1, 9, True, STALE)
    balance.clear(0)
    assert woken(balance, 1) and woken(balance, 2) and not woken(balance, 0)
    assert balance.listen(1, 9, True, STALE)  # nobody left to stand back for


def test_a_worker_that_does_not_want_to_listen_is_never_told_to():
    balance = Balance(2)
    balance.listen(1, 50, True, STALE)
    assert not balance.listen(0, 0, False, STALE)


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def workers():
    """Balanced servers on one listening socket, each with its own loop thread, as chatsys-web's
    forked workers are.  The loop timeout is long, so a connection left waiting on a loop that
    nobody woke would show as a stall of 30 s."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    balance = Balance(2)
    running = []

    def start(slot: int) -> BalancedServer:
        socket_map: dict = {}
        srv = make_server(
            ok, map=socket_map, sockets=[listener.dup()], balance=balance, slot=slot, asyncore_loop_timeout=30
        )
        thread = threading.Thread(target=srv.run, name=f"balanced-{slot}", daemon=True)
        thread.start()
        running.append((srv, socket_map, thread))
        return srv

    yield listener.getsockname()[1], start
    for srv, socket_map, thread in running:
        srv.trigger.pull_trigger(lambda socket_map=socket_map: wasyncore.close_all(socket_map))
        thread.join(10)
        srv.task_dispatcher.shutdown()
        assert not thread.is_alive()
    listener.close()


def open_and_ask(port: int) -> tuple[socket.socket, float]:
    """A keep-alive connection that has had one answer; and how long that took."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while not data.endswith(b"ok"):
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")
    return sock, time.monotonic() - started


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_burst_of_connections_is_split_evenly_and_none_waits(workers):
    port, start = workers
    second = start(1)
    # The second worker already holds three idle connections when the first one starts.
    held = [open_and_ask(port)[0] for _ in range(3)]
    first = start(0)
    wait_for(lambda: first.balance.slots()[0][2] > 0)
    try:
        with ThreadPoolExecutor(30) as pool:
            burst = list(pool.map(lambda _: open_and_ask(port), range(30)))
        held += [sock for sock, _ in burst]
        slowest = max(took for _, took in burst)
        assert slowest < 5, f"a connection waited {slowest:.1f} s to be accepted"
        counts = (len(first.active_channels), len(second.active_channels))
        assert sum(counts) == 33
        assert abs(counts[0] - counts[1]) <= SLACK + 1, counts
    finally:
        for sock in held:
            sock.close()
