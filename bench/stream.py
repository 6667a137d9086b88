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

The load clients are raw asyncio protocols (HTTP/1.0, no JSON parsing beyond a regular
expression) so that the client costs the 2-core machine as little as possible.  Results:
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
    import socket

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
    """One SSE stream over HTTP/1.0: counts it open at its ``retry:``, and stamps every
    message.created it hears with the time the bytes arrived."""

    def __init__(self, received: dict[int, list[float]] | None):
        self.received = received
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = False
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.opened.done():
            if b"retry:" in data or b"\r\n\r\n" in data:
                self.opened.set_result(data.split(b"\r\n", 1)[0])
        if self.received is None:
            return
        self.buffer += data
        end = self.buffer.rfind(b"\n\n")
        if end < 0:
            return
        complete, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
        for match in CREATED.finditer(complete):
            self.received.setdefault(int(match.group(1)), []).append(now)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the stream opened"))


async def subscribe(port: int, path: str, received: dict[int, list[float]] | None) -> Subscriber:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: Subscriber(received), "127.0.0.1", port)
    proto.transport.write(f"GET {path} HTTP/1.0\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode())
    status = await asyncio.wait_for(proto.opened, 60)
    if b" 200 " not in status:
        raise RuntimeError(f"{path}: {status!r}")
    return proto


async def open_many(port: int, paths: list[str], received, concurrency: int = 200) -> list[Subscriber]:
    slots = asyncio.Semaphore(concurrency)

    async def one(path: str) -> Subscriber:
        async with slots:
            return await subscribe(port, path, received)

    return list(await asyncio.gather(*(one(p) for p in paths)))


def close_all(subs: list[Subscriber]) -> None:
    for sub in subs:
        if sub.transport is not None:
            sub.transport.close()


async def poster(url: str, rate: float, seconds: float) -> dict[int, float]:
    """Post to ``url`` at ``rate`` a second for ``seconds``; the time of each 201 by number."""
    loop = asyncio.get_running_loop()
    acked: dict[int, float] = {}
    interval = 1.0 / rate
    start = time.monotonic()
    i = 0
    pending = set()

    def one(n: int) -> None:
        reply = post(url, {"body": f"stream bench message {n}"})
        acked[reply["message_number"]] = time.time()

    while time.monotonic() - start < seconds:
        pending.add(loop.run_in_executor(None, one, i))
        i += 1
        await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
    await asyncio.gather(*pending)
    return acked


def latencies(acked: dict[int, float], received: dict[int, list[float]], subscribers: int) -> dict[str, Any]:
    values = sorted((t - acked[n]) * 1000 for n, times in received.items() if n in acked for t in times)
    expected = len(acked) * subscribers
    return {
        "messages": len(acked),
        "subscribers": subscribers,
        "deliveries": len(values),
        "deliveries_expected": expected,
        "p50_ms": round(percentile(values, 50), 1) if values else None,
        "p90_ms": round(percentile(values, 90), 1) if values else None,
        "p99_ms": round(percentile(values, 99), 1) if values else None,
        "max_ms": round(values[-1], 1) if values else None,
    }


async def fan_out(
    stack: Stack, gateway: psutil.Process, token: str, subscribers: int, rate: float, seconds: float, w1: Wrk | None
):
    received: dict[int, list[float]] = {}
    subs = await open_many(stack.stream_port, [f"/v1/applications/{token}/chats/1/events"] * subscribers, received)
    try:
        url = f"http://127.0.0.1:{stack.web_port}/v1/applications/{token}/chats/1/messages"
        if w1 is not None:
            w1.start()
        harness = psutil.Process()
        cpu0 = (cpu_seconds([gateway]), sum(harness.cpu_times()[:2]), time.monotonic())
        acked = await poster(url, rate, seconds)
        cpu1 = (cpu_seconds([gateway]), sum(harness.cpu_times()[:2]), time.monotonic())
        w1_result = await asyncio.get_running_loop().run_in_executor(None, w1.wait) if w1 is not None else None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(len(v) for v in received.values()) < len(acked) * subscribers:
            await asyncio.sleep(0.1)
        result = latencies(acked, received, subscribers)
        result["disconnected"] = sum(s.closed for s in subs)
        # Who used the cores while posting: the gateway, and this harness (subscribers + poster).
        result["gateway_cpu_cores"] = round((cpu1[0] - cpu0[0]) / (cpu1[2] - cpu0[2]), 2)
        result["harness_cpu_cores"] = round((cpu1[1] - cpu0[1]) / (cpu1[2] - cpu0[2]), 2)
        if w1_result is not None:
            result["w1"] = {
                "throughput_rps": round(w1_result.throughput, 1),
                "latency_ms": {k: w1_result.latency_ms.get(k) for k in ("p50", "p99")},
                "non2xx": w1_result.non2xx,
            }
        return result
    finally:
        close_all(subs)


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
        gateway = stack.start("stream", "chatsys-stream")
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
        report["idle"] = asyncio.run(idle(stack, gateway, token, chats, args))
        print("idle:", json.dumps(report["idle"]), flush=True)
        report["polling"] = polling(stack, web, out, token, chats, args)
        print("polling:", json.dumps(report["polling"]), flush=True)
        report["fanout"] = asyncio.run(fan_out(stack, gateway, token, args.fanout, args.rate, args.seconds, None))
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
            fan_out(stack, gateway, token, args.fanout, args.rate, args.seconds, w1)
        )
        print("fanout during W1:", json.dumps(report["fanout_during_w1"]), flush=True)
        report["gateway_rss_mb_end"] = round(gateway.memory_info().rss / 2**20, 1)
        report["targets"] = {
            "idle_rss_le_400mb": report["idle"]["gateway_rss_mb"] <= 400,
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
    subs = await open_many(stack.stream_port, paths, None)
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
    p.add_argument("--base-ini", default="development.ini")
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
