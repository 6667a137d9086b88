"""The local services (MariaDB/MySQL, Redis, RabbitMQ): waiting for them, and noticing blips.

Another suite may restart a service or load the CPU while the benchmark runs.  A run that
overlaps a restart or an outage measures the outage, not chatsys, so :class:`ServiceWatch`
records both kinds of evidence — a service process that changed (new pid / start time) and
failed pings from a background thread — and the orchestrator repeats such a run.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pika
import psutil
import pymysql
from redis import Redis
from sqlalchemy.engine import make_url

from bench.background import Background

log = logging.getLogger(__name__)

# Process names of the services on this machine (psutil's name()).
SERVICE_PROCESSES = {
    "mysql": ("mariadbd", "mysqld"),
    "redis": ("redis-server",),
    "rabbitmq": ("beam.smp",),
}


class ServiceDown(RuntimeError):
    """A service stayed unreachable past the deadline: the run cannot go on."""


def mysql_connect(url: str, database: bool = True, timeout: float = 3.0, **kwargs) -> pymysql.Connection:
    """A PyMySQL connection from a ``mysql+pymysql://`` URL (the database optional)."""
    parsed = make_url(url)
    # No TLS unless the URL names ssl options, like chatsys.runtime.services.connect_args with db.tls = off:
    # PyMySQL would otherwise build an SSL context from the system's CA bundle for every
    # connection, about 36 ms of CPU, and the service watch connects once a second while the
    # workloads run.  (This helper does not pass the URL's ssl options on: with them, PyMySQL
    # keeps its own default, TLS when the server offers it, as before.)
    if not any(key.startswith("ssl") for key in parsed.query):
        kwargs.setdefault("ssl_disabled", True)
    return pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database if database else None,
        charset="utf8mb4",
        connect_timeout=timeout,
        read_timeout=30,
        write_timeout=30,
        **kwargs,
    )


@dataclass
class Pings:
    """How to reach each service, and a one-shot check of each."""

    mysql_url: str
    redis_url: str
    amqp_url: str

    def mysql(self) -> None:
        conn = mysql_connect(self.mysql_url, database=False, timeout=2.0)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    def redis(self) -> None:
        client = Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    def rabbitmq(self) -> None:
        params = pika.URLParameters(self.amqp_url)
        params.socket_timeout = 2
        params.stack_timeout = 3
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()

    def check(self) -> dict[str, str | None]:
        """``{service: None if reachable else the error}``."""
        result: dict[str, str | None] = {}
        for name in ("mysql", "redis", "rabbitmq"):
            try:
                getattr(self, name)()
                result[name] = None
            except Exception as exc:  # any failure means "not usable now"
                result[name] = f"{exc.__class__.__name__}: {exc}"[:200]
        return result

    def wait(self, timeout: float) -> float:
        """Block until every service answers; returns the seconds waited, or raises ServiceDown."""
        start = time.monotonic()
        announced = False
        while True:
            down = {k: v for k, v in self.check().items() if v}
            if not down:
                if announced:
                    log.warning("services back after %.1fs", time.monotonic() - start)
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise ServiceDown(
                    f"still unreachable after {timeout:.0f}s: " + "; ".join(f"{k} ({v})" for k, v in down.items())
                )
            if not announced:
                log.warning("waiting for %s: %s", ", ".join(down), "; ".join(down.values()))
                announced = True
            time.sleep(1.0)


def service_processes() -> dict[str, list[psutil.Process]]:
    """The running processes of each local service (possibly none if it is not local)."""
    found: dict[str, list[psutil.Process]] = {name: [] for name in SERVICE_PROCESSES}
    for proc in psutil.process_iter(["name"]):
        for service, names in SERVICE_PROCESSES.items():
            if proc.info["name"] in names:
                found[service].append(proc)
    return found


def fingerprint() -> dict[str, tuple[int, float] | None]:
    """(pid, start time) of each service's oldest process: a restart changes it.

    The oldest, because command-line tools come and go beside the server (``rabbitmqctl`` and
    ``rabbitmq-diagnostics`` run in a ``beam.smp`` of their own).
    """
    result: dict[str, tuple[int, float] | None] = {}
    for service, procs in service_processes().items():
        entries = []
        for proc in procs:
            try:
                entries.append((proc.create_time(), proc.pid))
            except psutil.Error:
                continue
        result[service] = (min(entries)[1], min(entries)[0]) if entries else None
    return result


@dataclass
class Blip:
    service: str
    at: float  # time.time()
    what: str


@dataclass
class ServiceWatch(Background):
    """Pings the services in the background; :meth:`window` reports what went wrong in a span."""

    thread_name = "service-watch"

    pings: Pings
    interval: float = 1.0
    blips: list[Blip] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        last = fingerprint()
        while not self._stop.wait(self.interval):
            now = time.time()
            for service, error in self.pings.check().items():
                if error:
                    self.blips.append(Blip(service, now, f"unreachable: {error}"))
            current = fingerprint()
            for service, oldest in current.items():
                if oldest != last.get(service):
                    self.blips.append(Blip(service, now, f"server process changed {last.get(service)} -> {oldest}"))
            last = current

    def window(self, start: float, end: float) -> list[str]:
        """What happened to the services between two ``time.time()`` instants (with a margin)."""
        return [
            f"{b.service} at +{b.at - start:.1f}s: {b.what}"
            for b in list(self.blips)
            if start - self.interval <= b.at <= end + self.interval
        ]
