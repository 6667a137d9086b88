"""chatsys-web as it runs: stock waitress workers, each with its own SO_REUSEPORT socket; the
kernel spreads connections over them, a worker killed under load is replaced, and a stop lets
the requests in progress finish."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testkit.processes import Processes
from tests.support.net import free_port
from tests.support.wait import wait_for

SLOW_INI = """\
[app:main]
use = call:tests.support.slow_app:factory

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
threads = 4

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s
"""


def workers_of(pid: int) -> list[int]:
    return sorted(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def ready(master) -> set[int]:
    return {int(pid) for pid in re.findall(r"web worker (\d+) ready", master.output())}


def connections_held(pid: int, port: int) -> int:
    """Established connections to ``port`` whose socket ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
            held += 1
    return held


def ask(port: int, path: str = "/") -> socket.socket:
    """A kept-alive connection that has had its answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    head, body = read_answer(sock)
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    return sock


def read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP answer off a kept-alive connection: head, and a body of its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 16)
        assert chunk, "closed before the answer's head"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(1 << 16)
        assert chunk, f"closed after {len(body)} of {length} bytes"
        body += chunk
    return head, body


@pytest.fixture
def slow_web(tmp_path):
    port = free_port()
    ini = tmp_path / "slow.ini"
    ini.write_text(SLOW_INI.format(port=port))
    procs = Processes(ini, tmp_path)
    yield procs, port
    procs.stop_all()


def start(procs: Processes, workers: int = 2):
    master = procs.spawn("web", "chatsys-web", "--workers", str(workers))
    wait_for(lambda: len(ready(master)) == workers, 60, message="workers ready")
    return master


def test_the_kernel_spreads_connections_and_a_killed_worker_is_replaced(slow_web):
    procs, port = slow_web
    master = start(procs)
    first, second = workers_of(master.popen.pid)
    with ThreadPoolExecutor(20) as pool:
        opened = list(pool.map(lambda _: ask(port), range(20)))
    try:
        held = {pid: connections_held(pid, port) for pid in (first, second)}
        # Each new connection lands on one of the two sockets by a hash of its addresses: both
        # get some (all 20 on one would happen once in half a million runs).
        assert sum(held.values()) == 20 and all(held.values()), held

        os.kill(first, signal.SIGKILL)
        replacement = wait_for(lambda: next(iter(ready(master) - {first, second}), None), 60, message="replaced")
        with ThreadPoolExecutor(20) as pool:
            opened += list(pool.map(lambda _: ask(port), range(20)))
        assert connections_held(replacement, port) > 0
    finally:
        for sock in opened:
            sock.close()
    assert master.stop(timeout=15) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in (second, replacement))


def test_a_stop_lets_a_request_in_progress_finish(slow_web):
    from tests.support.slow_app import body

    procs, port = slow_web
    master = start(procs, workers=1)
    size = 1024 * 1024
    with socket.create_connection(("127.0.0.1", port), timeout=20) as busy:
        busy.sendall(f"GET /slow/1/{size} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        time.sleep(0.3)  # the request is in the application (it takes 1 s) when the stop comes
        stopped = time.monotonic()
        master.popen.send_signal(signal.SIGTERM)
        head, got = read_answer(busy)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert got == body(size)
    assert master.popen.wait(15) == 0
    assert time.monotonic() - stopped < 4  # done when the request is, not at the 5 s limit


def test_a_stop_while_the_workers_start_is_not_lost(slow_web):
    procs, port = slow_web
    master = procs.spawn("web", "chatsys-web", "--workers", "2")
    wait_for(lambda: len(workers_of(master.popen.pid)) == 2, 30, message="workers forked")
    workers = workers_of(master.popen.pid)
    master.popen.send_signal(signal.SIGTERM)  # before they have built the app
    assert master.popen.wait(15) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_port_in_use_stops_the_launcher_at_once(slow_web):
    procs, port = slow_web
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        master = procs.spawn("web", "chatsys-web", "--workers", "2")
        assert master.wait_exit(30) != 0
        assert "Address already in use" in master.output()
