"""The stream workload: what the event-stream gateway (``chatsys-stream``) costs and how fast it
delivers, on its own database, Redis prefix and RabbitMQ namespace (``chatsys_bench_stream``).

``python -m bench.stream`` (or ``python -m bench --stream``) starts the web, the relay, the
counters worker and the gateway from a generated ini and measures:

- **idle**: N idle subscribers (10,000; ``--idle``) spread over 100 chats: the gateway's RSS
  (target <= 400 MB) and its CPU over ``--idle-window`` seconds (two keepalive rounds by default),
  beside what as many clients polling every 2 s would cost the web (its CPU per ``GET`` of a
  chat's newest messages, measured with wrk, times N / 2 requests a second);
- **fan-out**: 1,000 subscribers of one chat (``--fanout``) while messages are posted to it at
  50/s (``--rate``): the latency from each 201 to each subscriber's receipt, p50/p99 (target
  p99 <= 250 ms);
- **fan-out during W1**: the same while wrk runs the W1 create load against other chats, with W1's
  throughput reported beside W1 run alone.

The load clients speak HTTP/1.0 and parse no JSON beyond a regular expression, so that they cost
the 2-core machine as little as possible: the idle ones are asyncio protocols, the fan-out's run in
a process of their own (:func:`listen`) and are stamped with the kernel's receive time.  Each
fan-out is also taken apart into stages (:func:`stages`), with the gateway's CPU and run-queue
wait and how busy the whole machine was.  Results:
``bench/results/stream-<UTC timestamp>/report.json``.  Run under ``flock /tmp/chatsys-bench.lock``
beside other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plaster
import psutil
import pymysql
from sqlalchemy.engine import make_url

from bench.stats import percentile
from bench.wrk import Wrk, ensure_wrk, write_script
from chatsys.runtime.settings import resolve_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NAME = "chatsys_bench_stream"
CREATED = re.compile(rb'event: message\.created\ndata: \{[^\n]*?"message_number":(\d+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the stack ----------------------------------------------------------------------------------


class Stack:
    def __init__(self, out: Path, base_ini: str, workers: int):
        self.out = out
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.web_port, self.stream_port = free_port(), free_port()
        base = resolve_settings(plaster.get_settings(str(ROOT / base_ini), "app:main"))
        self.db_url = make_url(base["sqlalchemy.url"]).set(database=NAME)
        self.settings = {
            "sqlalchemy.url": self.db_url.render_as_string(hide_password=False),
            "redis.url": base["redis.url"],
            "redis.key_prefix": NAME,
            "amqp.url": base["amqp.url"],
            "amqp.namespace": NAME,
            "search.backend": "database",
            "stream.port": str(self.stream_port),
        }
        self.ini = self._write_ini(ROOT / base_ini)
        self.workers = workers
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
        self.env["PYTHONPATH"] = str(ROOT)

    def _write_ini(self, base: Path) -> Path:
        config = configparser.RawConfigParser()
        config.optionxform = str
        config.read(base)
        for key, value in self.settings.items():
            config.set("app:main", key, str(value).replace("%", "%%"))
        config.set("server:main", "listen", f"127.0.0.1:{self.web_port}")
        path = self.out / "stream-bench.ini"
        with open(path, "w") as handle:
            config.write(handle)
        return path

    def recreate_database(self) -> None:
        """An empty database, and no numbers left in Redis from an earlier run."""
        from redis import Redis

        redis = Redis.from_url(self.settings["redis.url"])
        for key in redis.scan_iter(f"{NAME}:*", count=1000):
            redis.delete(key)
        redis.close()
        self._sql(f"DROP DATABASE IF EXISTS `{NAME}`")
        subprocess.run(
            [str(BIN / "alembic"), "-c", str(self.ini), "upgrade", "head"],
            check=True,
            env=self.env,
            capture_output=True,
        )

    def drop_database(self) -> None:
        self._sql(f"DROP DATABASE IF EXISTS `{NAME}`")

    def _sql(self, statement: str) -> None:
        url = self.db_url
        conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "")
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
        finally:
            conn.close()

    def start(self, name: str, *argv: str) -> psutil.Process:
        log = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [str(BIN / argv[0]), str(self.ini), *argv[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        return psutil.Process(self.procs[name].pid)

    def stop_all(self) -> None:
        for popen in self.procs.values():
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen in self.procs.values():
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                popen.kill()

    def delete_topology(self) -> None:
        from chatsys.broker import blocking_channel, connection_parameters
        from chatsys.runtime.services import Services

        settings = resolve_settings(self.settings, environ={})
        with blocking_channel(connection_parameters(settings, "chatsys-bench")) as channel:
            Services(settings).topology.delete(channel)


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def post(url: str, body: dict) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as res:
        return json.loads(res.read())


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


# -- the load clients ---------------------------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """One idle SSE stream over HTTP/1.0: counts it open at its ``retry:``."""

    def __init__(self) -> None:
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.opened.done() and (b"retry:" in data or b"\r\n\r\n" in data):
            self.opened.set_result(data.split(b"\r\n", 1)[0])

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the stream opened"))


def request_line(path: str) -> bytes:
    return f"GET {path} HTTP/1.0\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()


async def subscribe(port: int, path: str) -> Subscriber:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Subscriber, "127.0.0.1", port)
    proto.transport.write(request_line(path))
    status = await asyncio.wait_for(proto.opened, 60)
    if b" 200 " not in status:
        raise RuntimeError(f"{path}: {status!r}")
    return proto


async def open_many(port: int, paths: list[str], concurrency: int = 200) -> list[Subscriber]:
    slots = asyncio.Semaphore(concurrency)

    async def one(path: str) -> Subscriber:
        async with slots:
            return await subscribe(port, path)

    return list(await asyncio.gather(*(one(p) for p in paths)))


# SO_TIMESTAMPNS: the kernel stamps each received segment as it reaches the socket, and recvmsg
# returns the stamp of the last segment read.  On loopback that is the moment the gateway's send()
# handed the bytes over: when they reached the client's host.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def listen(port: int, path: str, count: int, poll_interval: float, pipe) -> None:
    """In a process of its own: ``count`` subscribers of ``path`` on raw non-blocking sockets and
    one epoll loop, stamping every message.created each of them hears twice: with the kernel's
    receive stamp (when the bytes reached this host: the headline figure) and with the time this
    process read them.

    Real clients are each a machine of their own; here 1,000 of them share the gateway's 2 cores.
    So that they take as little from the server path as they can, the loop sleeps
    ``poll_interval`` after each round, reading every socket that became readable meanwhile in one
    go, instead of waking up once per socket and event (50,000 times a second).  The kernel's stamp
    is not moved by that; how long the bytes waited to be read is reported beside it.

    Commands on ``pipe``: ``"count"`` answers the deliveries so far; ``"stop"`` answers
    ``{"received": {number: (kernel stamps, read stamps)}, "opened": n, "closed": n}`` and ends."""
    import select
    from array import array

    epoll = select.epoll()
    socks: dict[int, socket.socket] = {}
    buffers: dict[int, bytes] = {}
    opened: set[int] = set()
    closed = 0
    received: dict[int, tuple[array, array]] = {}
    deliveries = 0
    request = request_line(path)
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.sendall(request)
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        buffers[sock.fileno()] = b""
        epoll.register(sock.fileno(), select.EPOLLIN)
    announced = False
    while True:
        if pipe.poll():
            command = pipe.recv()
            if command == "stop":
                break
            pipe.send(deliveries)
        for fd, _ in epoll.poll(0.05):
            sock = socks[fd]
            try:
                data, ancillary, _flags, _addr = sock.recvmsg(65536, 64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data, ancillary = b"", []
            now = time.time()
            if not data:
                epoll.unregister(fd)
                sock.close()
                del socks[fd]
                closed += 1
                continue
            kernel = now
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    kernel = sec + nsec / 1e9
            buffer = buffers[fd] + data
            if fd not in opened:
                if b"retry:" not in buffer:
                    buffers[fd] = buffer
                    continue
                if b" 200 " not in buffer.split(b"\r\n", 1)[0]:
                    raise RuntimeError(f"{path}: {buffer[:200]!r}")
                opened.add(fd)
            end = buffer.rfind(b"\n\n")
            if end < 0:
                buffers[fd] = buffer
                continue
            buffers[fd] = buffer[end + 2 :]
            for match in CREATED.finditer(buffer, 0, end + 2):
                stamps = received.get(int(match.group(1)))
                if stamps is None:
                    stamps = received[int(match.group(1))] = (array("d"), array("d"))
                stamps[0].append(kernel)
                stamps[1].append(now)
                deliveries += 1
        if not announced and len(opened) == count:
            announced = True
            pipe.send(("open", count))
        if poll_interval:
            time.sleep(poll_interval)
    pipe.send(
        {
            "received": {n: (k.tobytes(), r.tobytes()) for n, (k, r) in received.items()},
            "opened": len(opened),
            "closed": closed,
        }
    )
    for sock in socks.values():
        sock.close()


def close_all(subs: list[Subscriber]) -> None:
    for sub in subs:
        if sub.transport is not None:
            sub.transport.close()


def post_at_rate(url: str, rate: float, seconds: float, results) -> None:
    """In a process of its own: post to ``url`` at ``rate`` a second for ``seconds`` over
    keep-alive connections, and put ``{number: time of its 201}`` on ``results``.  A process of
    its own, so that the 201 is stamped when it arrives, not when the harness's event loop (1,000
    sockets) lets a thread have the GIL."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    target = urlsplit(url)
    local = threading.local()
    acked: dict[int, float] = {}
    errors = [0]

    def one(n: int) -> None:
        body = json.dumps({"body": f"stream bench message {n}"}).encode()
        for _ in range(3):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            try:
                conn.request("POST", target.path, body, {"Content-Type": "application/json"})
                res = conn.getresponse()
                data = res.read()
                now = time.time()
                if res.status == 201:
                    acked[json.loads(data)["message_number"]] = now
                    return
                errors[0] += 1
                return
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
        errors[0] += 1

    interval = 1.0 / rate
    with ThreadPoolExecutor(16) as pool:
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            pool.submit(one, i)
            i += 1
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
    results.put({"acked": acked, "errors": errors[0], "sent": i})


def probe_stream(amqp_url: str, queue: str, token: str, chat: int, ready, stop, results) -> None:
    """In a process of its own: a plain consumer of the stream queue beside the gateway's live
    tail, stamping when the broker delivers each message.created of the chat: where the relay's
    and the broker's share of the latency ends and the gateway's begins."""
    import pika
    import pika.exceptions

    for attempt in range(10):  # the broker may be busy with other sessions' runs
        try:
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            break
        except pika.exceptions.AMQPConnectionError:
            if attempt == 9:
                raise
            time.sleep(2)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1000)
    seen: dict[int, float] = {}
    count = [0]

    def on_message(ch, method, properties, body) -> None:
        now = time.time()
        try:
            envelope = json.loads(body)
            data = envelope["data"]
            if envelope["type"] == "message.created" and data["app_token"] == token and data["chat_number"] == chat:
                seen[data["message_number"]] = now
        except (ValueError, KeyError, TypeError):
            pass  # the gateways' markers
        count[0] += 1
        if count[0] % 100 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)  # credit only

    channel.basic_consume(queue, on_message, arguments={"x-stream-offset": "next"})
    ready.set()
    while not stop.is_set():
        connection.process_data_events(time_limit=0.05)
    results.put(seen)
    connection.close()


def histogram_buckets(url: str) -> dict[str, list[tuple[float, float]]]:
    """Every histogram of a Prometheus /metrics page: name -> [(le, cumulative count)]."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as res:
        text = res.read().decode()
    out: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                out.setdefault(family.name, []).append((float(sample.labels["le"]), sample.value))
    return out


def histogram_quantiles(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> dict[str, Any]:
    """p50/p99 (ms) of what a histogram observed between two scrapes, interpolated within buckets."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1] if counts else 0
    result: dict[str, Any] = {"count": int(total)}
    for q in (50, 90, 99):
        if not total:
            result[f"p{q}_ms"] = None
            continue
        rank, low, below = q / 100 * total, 0.0, 0.0
        value = None
        for le, cumulative in counts:
            if cumulative >= rank:
                if le == float("inf"):
                    value = low
                else:
                    width = cumulative - below
                    value = low + (le - low) * ((rank - below) / width if width else 1.0)
                break
            low, below = le, cumulative
        result[f"p{q}_ms"] = round(value * 1000, 1) if value is not None else None
    return result


def summary(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 50), 1) if ordered else None,
        "p90_ms": round(percentile(ordered, 90), 1) if ordered else None,
        "p99_ms": round(percentile(ordered, 99), 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
    }


def latencies(
    acked: dict[int, float], received: dict[int, list[tuple[float, float]]], subscribers: int
) -> dict[str, Any]:
    """201 -> receipt over every (message, subscriber): at the subscriber's socket (the kernel's
    receive stamp, the headline figure) and as the harness read it."""
    at_socket = sorted((k - acked[n]) * 1000 for n, times in received.items() if n in acked for k, _ in times)
    read = sorted((r - acked[n]) * 1000 for n, times in received.items() if n in acked for _, r in times)
    expected = len(acked) * subscribers
    return {
        "messages": len(acked),
        "subscribers": subscribers,
        "deliveries": len(at_socket),
        "deliveries_expected": expected,
        "p50_ms": round(percentile(at_socket, 50), 1) if at_socket else None,
        "p90_ms": round(percentile(at_socket, 90), 1) if at_socket else None,
        "p99_ms": round(percentile(at_socket, 99), 1) if at_socket else None,
        "max_ms": round(at_socket[-1], 1) if at_socket else None,
        "read_by_harness": summary(read),
    }


def stages(
    acked: dict[int, float],
    published: dict[int, float],
    probed: dict[int, float],
    received: dict[int, list[tuple[float, float]]],
) -> dict[str, Any]:
    """Where the 201 -> receipt time goes, message by message (ms, p50/p90/p99 over messages):

    - ``201_to_published``: the relay's claim, publish and confirm, to its recording the row as
      published (outbox ``published_at``, after the broker's confirm);
    - ``201_to_stream``: to a plain consumer of the stream queue receiving it (relay + broker);
    - ``stream_to_first_socket``: from there to the first subscriber's socket receiving the bytes
      (the gateway's live tail, decoding, its first write);
    - ``first_to_last_socket``: the spread of one event's 1,000 writes (the fan-out);
    - ``socket_to_read`` (per delivery): how long the bytes waited for the harness to read them.
    """
    to_published, to_stream, to_first, spread, waited = [], [], [], [], []
    for n, t201 in acked.items():
        if n in published:
            to_published.append((published[n] - t201) * 1000)
        if n in probed:
            to_stream.append((probed[n] - t201) * 1000)
        times = received.get(n)
        if not times:
            continue
        kernel = [k for k, _ in times]
        if n in probed:
            to_first.append((min(kernel) - probed[n]) * 1000)
        spread.append((max(kernel) - min(kernel)) * 1000)
        waited.extend((r - k) * 1000 for k, r in times)
    return {
        "201_to_published": summary(to_published),
        "201_to_stream": summary(to_stream),
        "stream_to_first_socket": summary(to_first),
        "first_to_last_socket": summary(spread),
        "socket_to_read": summary(waited),
    }


def published_times(stack: Stack, token: str, chat: int) -> dict[int, float]:
    """When the relay recorded each message.created of the chat as published (after its confirm)."""
    url = stack.db_url
    conn = pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "", database=NAME
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT JSON_EXTRACT(payload, '$.data.message_number'), published_at FROM outbox_events "
                "WHERE type = 'message.created' AND published_at IS NOT NULL "
                "AND JSON_UNQUOTE(JSON_EXTRACT(payload, '$.data.app_token')) = %s "
                "AND JSON_EXTRACT(payload, '$.data.chat_number') = %s",
                (token, chat),
            )
            return {int(n): at.replace(tzinfo=UTC).timestamp() for n, at in cursor.fetchall()}
    finally:
        conn.close()


def runqueue_wait(procs: list[psutil.Process]) -> float:
    """Seconds the threads of ``procs`` have spent runnable but waiting for a core
    (/proc/<pid>/task/<tid>/schedstat, second field): how much a process was starved of CPU."""
    total = 0
    for proc in procs:
        try:
            for task in os.listdir(f"/proc/{proc.pid}/task"):
                with open(f"/proc/{proc.pid}/task/{task}/schedstat") as handle:
                    total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy (every process, ours or not), and the time."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0), time.monotonic()


async def fan_out(
    stack: Stack,
    gateways: list[psutil.Process],
    token: str,
    subscribers: int,
    rate: float,
    seconds: float,
    w1: Wrk | None,
    poll_interval: float,
):
    import multiprocessing

    from chatsys.runtime.services import Services

    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    pipe, child_pipe = spawn.Pipe()
    path = f"/v1/applications/{token}/chats/1/events"
    listener = spawn.Process(target=listen, args=(stack.stream_port, path, subscribers, poll_interval, child_pipe))
    listener.start()
    ready, stop, probe_results, post_results = spawn.Event(), spawn.Event(), spawn.Queue(), spawn.Queue()
    queue = Services(resolve_settings(stack.settings, environ={})).topology.stream
    probe = spawn.Process(
        target=probe_stream, args=(stack.settings["amqp.url"], queue, token, 1, ready, stop, probe_results)
    )
    try:
        if not await loop.run_in_executor(None, pipe.poll, 120):
            raise RuntimeError("the subscribers did not open")
        assert pipe.recv() == ("open", subscribers)
        probe.start()
        if not await loop.run_in_executor(None, ready.wait, 60):
            raise RuntimeError("the stream probe did not attach")
        url = f"http://127.0.0.1:{stack.web_port}/v1/applications/{token}/chats/1/messages"
        metrics_url = f"http://127.0.0.1:{stack.stream_port}/metrics"
        before = await loop.run_in_executor(None, histogram_buckets, metrics_url)
        poster = spawn.Process(target=post_at_rate, args=(url, rate, seconds, post_results))
        if w1 is not None:
            w1.start()
        clients = psutil.Process(listener.pid)
        cpu0 = (cpu_seconds(gateways), sum(clients.cpu_times()[:2]), machine_busy(), runqueue_wait(gateways))
        poster.start()
        posted = await loop.run_in_executor(None, post_results.get, True, seconds + 120)
        cpu1 = (cpu_seconds(gateways), sum(clients.cpu_times()[:2]), machine_busy(), runqueue_wait(gateways))
        await loop.run_in_executor(None, poster.join)
        acked = posted["acked"]
        w1_result = await loop.run_in_executor(None, w1.wait) if w1 is not None else None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pipe.send("count")
            if await loop.run_in_executor(None, pipe.recv) >= len(acked) * subscribers:
                break
            await asyncio.sleep(0.2)
        after = await loop.run_in_executor(None, histogram_buckets, metrics_url)
        pipe.send("stop")
        heard = await loop.run_in_executor(None, pipe.recv)
        stop.set()
        probed = await loop.run_in_executor(None, probe_results.get, True, 30)
        received = {n: list(zip(doubles(k), doubles(r), strict=True)) for n, (k, r) in heard["received"].items()}
        result = latencies(acked, received, subscribers)
        result["post_errors"] = posted["errors"]
        result["disconnected"] = heard["closed"]
        result["stages"] = stages(acked, published_times(stack, token, 1), probed, received)
        # With several gateways, /metrics answers from whichever the kernel picks: skip them then.
        result["gateway_metrics"] = (
            {}
            if len(gateways) > 1
            else {
                name: histogram_quantiles(before.get(name, []), after[name])
                for name in (
                    "chatsys_stream_tail_lag_seconds",
                    "chatsys_stream_fanout_seconds",
                    "chatsys_stream_delivery_lag_seconds",
                )
                if name in after
            }
        )
        # Who used the cores while posting: the gateway, the subscribers' process, and the whole
        # machine (other sessions' work included: the 2 cores are shared).
        elapsed = cpu1[2][1] - cpu0[2][1]
        result["gateways"] = len(gateways)
        result["gateway_cpu_cores"] = round((cpu1[0] - cpu0[0]) / elapsed, 2)
        # Time the gateways were ready to run but waited for a core, per second: starved of CPU.
        result["gateway_runqueue_wait"] = round((cpu1[3] - cpu0[3]) / elapsed, 2)
        result["subscribers_cpu_cores"] = round((cpu1[1] - cpu0[1]) / elapsed, 2)
        result["machine_busy_cores"] = round((cpu1[2][0] - cpu0[2][0]) / elapsed, 2)
        result["subscribers_poll_interval_ms"] = poll_interval * 1000
        if w1_result is not None:
            result["w1"] = {
                "throughput_rps": round(w1_result.throughput, 1),
                "latency_ms": {k: w1_result.latency_ms.get(k) for k in ("p50", "p99")},
                "non2xx": w1_result.non2xx,
            }
        return result
    finally:
        stop.set()
        for process in (probe, listener):
            if process.pid is not None:
                process.join(10)
                if process.is_alive():
                    process.kill()


def doubles(raw: bytes) -> list[float]:
    from array import array

    values = array("d")
    values.frombytes(raw)
    return values.tolist()


# -- the run ------------------------------------------------------------------------------------


def w1_script(out: Path, token: str, chats: int) -> Path:
    requests = [
        ("POST", f"/v1/applications/{token}/chats/{c}/messages", json.dumps({"body": f"w1 message {i}"}))
        for i, c in enumerate([2 + i % chats for i in range(1000)])
    ]
    return write_script(out / "w1_create.lua", "W1 create", requests)


def poll_script(out: Path, token: str, chats: int) -> Path:
    requests = [
        ("GET", f"/v1/applications/{token}/chats/{c}/messages?order=newest&limit=50", None) for c in range(1, chats + 1)
    ]
    return write_script(out / "poll.lua", "poll newest", requests)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out or ROOT / "bench" / "results" / ("stream-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    limit = raise_fd_limit()
    ensure_wrk(install=True)
    stack = Stack(out, args.base_ini, args.workers)
    report: dict[str, Any] = {
        "meta": {"fd_limit": limit, "cores": os.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()}}
    }
    stack.recreate_database()
    try:
        web = stack.start("web", "chatsys-web", "--workers", str(args.workers))
        stack.start("relay", "chatsys-relay")
        stack.start("counters", "chatsys-worker", "--consumer", "counters")
        # Several gateways share the port (SO_REUSEPORT), as they would behind one address.
        gateways = [stack.start(f"stream{i or ''}", "chatsys-stream") for i in range(args.gateways)]
        gateway = gateways[0]
        wait_http(f"http://127.0.0.1:{stack.web_port}/readyz")
        wait_http(f"http://127.0.0.1:{stack.stream_port}/readyz")
        base = f"http://127.0.0.1:{stack.web_port}"
        token = post(f"{base}/v1/applications", {"name": "stream bench"})["app_token"]
        chats = 100
        for _ in range(chats):
            post(f"{base}/v1/applications/{token}/chats", {"name": "c"})
        for c in range(1, chats + 1):  # something to poll
            for i in range(5):
                post(f"{base}/v1/applications/{token}/chats/{c}/messages", {"body": f"seed {i}"})
        if not args.fanout_only:
            report["idle"] = asyncio.run(idle(stack, gateway, token, chats, args))
            print("idle:", json.dumps(report["idle"]), flush=True)
            report["polling"] = polling(stack, web, out, token, chats, args)
            print("polling:", json.dumps(report["polling"]), flush=True)
        report["fanout"] = asyncio.run(
            fan_out(stack, gateways, token, args.fanout, args.rate, args.seconds, None, args.poll_interval)
        )
        print("fanout:", json.dumps(report["fanout"]), flush=True)
        script = w1_script(out, token, chats - 1)
        w1_alone = Wrk(f"{base}", script, "W1 create", args.seconds, args.connections).start().wait()
        report["w1_alone"] = {
            "throughput_rps": round(w1_alone.throughput, 1),
            "latency_ms": {k: w1_alone.latency_ms.get(k) for k in ("p50", "p99")},
        }
        print("w1 alone:", json.dumps(report["w1_alone"]), flush=True)
        w1 = Wrk(f"{base}", script, "W1 create", args.seconds, args.connections)
        report["fanout_during_w1"] = asyncio.run(
            fan_out(stack, gateways, token, args.fanout, args.rate, args.seconds, w1, args.poll_interval)
        )
        print("fanout during W1:", json.dumps(report["fanout_during_w1"]), flush=True)
        report["gateway_rss_mb_end"] = round(gateway.memory_info().rss / 2**20, 1)
        report["targets"] = {
            "idle_rss_le_400mb": report["idle"]["gateway_rss_mb"] <= 400 if "idle" in report else None,
            "fanout_p99_le_250ms": (report["fanout"]["p99_ms"] or 1e9) <= 250,
            "fanout_during_w1_p99_le_250ms": (report["fanout_during_w1"]["p99_ms"] or 1e9) <= 250,
        }
    finally:
        stack.stop_all()
        try:
            stack.delete_topology()
        finally:
            stack.drop_database()
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print(f"report: {out / 'report.json'}")
    return report


async def idle(stack: Stack, gateway: psutil.Process, token: str, chats: int, args) -> dict[str, Any]:
    rss_before = gateway.memory_info().rss
    paths = [f"/v1/applications/{token}/chats/{1 + i % chats}/events" for i in range(args.idle)]
    started = time.monotonic()
    subs = await open_many(stack.stream_port, paths)
    opened_s = time.monotonic() - started
    await asyncio.sleep(2)  # let the gateway settle after the burst of connections (then measure)
    cpu0, t0 = cpu_seconds([gateway]), time.monotonic()
    await asyncio.sleep(args.idle_window)  # the measurement window itself
    cpu1, t1 = cpu_seconds([gateway]), time.monotonic()
    rss = gateway.memory_info().rss
    result = {
        "subscribers": len(subs),
        "still_open": sum(not s.closed for s in subs),
        "open_seconds": round(opened_s, 1),
        "gateway_rss_mb_before": round(rss_before / 2**20, 1),
        "gateway_rss_mb": round(rss / 2**20, 1),
        "gateway_kb_per_stream": round((rss - rss_before) / 1024 / max(1, len(subs)), 1),
        "gateway_cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 4),
        "window_s": round(t1 - t0, 1),
    }
    close_all(subs)
    await asyncio.sleep(1)
    return result


def polling(stack: Stack, web: psutil.Process, out: Path, token: str, chats: int, args) -> dict[str, Any]:
    """What N clients polling every 2 s would cost the web: its CPU per poll, times N/2 a second."""
    script = poll_script(out, token, chats)
    base = f"http://127.0.0.1:{stack.web_port}"
    cpu0 = cpu_seconds([web])
    result = Wrk(base, script, "poll", args.seconds, args.connections).start().wait()
    cpu = cpu_seconds([web]) - cpu0
    per_request_ms = cpu / max(1, result.ok) * 1000
    rate = args.idle / 2
    return {
        "requests": result.ok,
        "throughput_rps": round(result.throughput, 1),
        "web_cpu_ms_per_poll": round(per_request_ms, 3),
        "polls_per_second_needed": rate,
        "web_cores_needed": round(per_request_ms * rate / 1000, 2),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.stream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--idle", type=int, default=10_000, help="idle subscribers (default 10,000)")
    p.add_argument("--idle-window", type=float, default=31.0, help="seconds the idle CPU is measured over")
    p.add_argument("--fanout", type=int, default=1000, help="subscribers of the one chat (default 1,000)")
    p.add_argument("--rate", type=float, default=50.0, help="messages a second posted to it (default 50)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of each fan-out, W1 and poll run")
    p.add_argument("--connections", type=int, default=32, help="wrk connections for W1 and polling")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="chatsys-web workers")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.002,
        help="seconds the fan-out's subscribers sleep between reading rounds (default 0.002; 0: wake per socket)",
    )
    p.add_argument("--gateways", type=int, default=1, help="chatsys-stream processes sharing the port (default 1)")
    p.add_argument("--fanout-only", action="store_true", help="skip the idle and polling parts")
    p.add_argument("--base-ini", default="development.ini")
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
