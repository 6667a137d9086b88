"""W4 pipeline lag: time from a 201 to "counted" and to "indexed", on sampled messages.

While wrk drives W1, :class:`ProbeClient` POSTs its own messages at a steady rate (a few percent
of the load) over one keep-alive connection and notes when each 201 arrived.  Then:

* :class:`CountedPoller` polls MySQL every ``interval`` for the probes not yet counted
  (``messages.counted`` becomes 1 in the counters consumer's transaction).  The lag is taken at the
  end of the poll that first sees the flag, so it is never under-estimated and over-estimated by
  at most one poll interval plus a query.
* :class:`IndexedPoller` reads the file where :mod:`bench.esdouble` writes the time each document
  was applied by a bulk request (exact, no polling of Elasticsearch).

Both keep ``(seconds since the run started, lag)`` pairs for the lag-over-time plot.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.background import Background
from bench.seed import ChatInfo
from bench.services import mysql_connect
from bench.stats import distribution

log = logging.getLogger(__name__)


@dataclass
class Probe:
    chat: ChatInfo
    number: int
    acked: float  # time.time() when the 201 was read
    latency: float  # seconds the POST took
    counted: float | None = None
    indexed: float | None = None

    @property
    def doc_id(self) -> str:
        return f"{self.chat.token}:{self.chat.number}:{self.number}"


@dataclass
class ProbeClient(Background):
    thread_name = "probe-client"
    host: str
    port: int
    chats: list[ChatInfo]
    rate: float
    probes: list[Probe] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Probe]:
        with self._lock:
            return list(self.probes)

    def _loop(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        i = 0
        while not self._stop.is_set():
            chat = self.chats[i % len(self.chats)]
            i += 1
            body = json.dumps({"body": f"lag probe {i} sent at {time.time():.6f}"})
            t0 = time.time()
            try:
                conn.request("POST", f"{chat.path}/messages", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                acked = time.time()
                if response.status == 201:
                    number = json.loads(payload)["message_number"]
                    with self._lock:
                        self.probes.append(Probe(chat, number, acked, acked - t0))
                else:
                    self.errors.append(f"{response.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.errors.append(f"{exc.__class__.__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()


class _Poller(Background):
    """Base: a thread that marks probes done until stopped and nothing is pending (or a deadline)."""

    attribute = ""

    def __init__(self, client: ProbeClient, interval: float):
        self.client = client
        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

    def finish(self, timeout: float) -> None:
        """Keep polling until every probe is done or ``timeout`` seconds pass, then stop."""
        self._deadline = time.monotonic() + timeout
        self.stop(timeout=timeout + 30)

    def pending(self) -> list[Probe]:
        return [p for p in self.client.snapshot() if getattr(p, self.attribute) is None]

    def _loop(self) -> None:
        while True:
            pending = self.pending()
            if pending:
                try:
                    self.check(pending)
                except Exception as exc:  # a blip: note it and poll again
                    self.errors.append(f"{exc.__class__.__name__}: {exc}"[:300])
                    self.reset()
                    time.sleep(0.5)
            if self._stop.is_set() and (not self.pending() or time.monotonic() > (self._deadline or 0)):
                break
            time.sleep(self.interval)
        self.close()

    def check(self, pending: list[Probe]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class CountedPoller(_Poller):
    attribute = "counted"
    thread_name = "poll-counted"

    def __init__(self, client: ProbeClient, interval: float, mysql_url: str):
        super().__init__(client, interval)
        self.mysql_url = mysql_url
        self.conn = None

    def check(self, pending: list[Probe]) -> None:
        if self.conn is None:
            self.conn = mysql_connect(self.mysql_url, autocommit=True)
            with self.conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        for start in range(0, len(pending), 200):
            chunk = pending[start : start + 200]
            placeholders = ",".join(["(%s,%s)"] * len(chunk))
            params = [x for p in chunk for x in (p.chat.chat_id, p.number)]
            with self.conn.cursor() as cur:
                cur.execute(
                    f"SELECT chat_id, number FROM messages WHERE counted = 1 AND (chat_id, number) IN ({placeholders})",
                    params,
                )
                done = set(cur.fetchall())
            now = time.time()
            for probe in chunk:
                if (probe.chat.chat_id, probe.number) in done:
                    probe.counted = now

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


class IndexedPoller(_Poller):
    """Reads ``doc_id<TAB>unix time`` lines appended by :mod:`bench.esdouble`."""

    attribute = "indexed"
    thread_name = "poll-indexed"

    def __init__(self, client: ProbeClient, interval: float, record: Path):
        super().__init__(client, interval)
        self.record = record
        self.offset = 0
        self.seen: dict[str, float] = {}
        self.buffer = b""

    def check(self, pending: list[Probe]) -> None:
        with open(self.record, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()  # an incomplete last line waits for the next read
        for line in lines:
            doc_id, _, at = line.decode().partition("\t")
            self.seen.setdefault(doc_id, float(at))
        for probe in pending:
            at = self.seen.get(probe.doc_id)
            if at is not None:
                probe.indexed = at


def lag_summary(probes: list[Probe], attribute: str, origin: float) -> dict:
    """Lag distribution (ms) of the probes that completed, the ones that did not, the series.

    ``lag_ms`` runs from the moment the harness read the 201.  On a saturated machine that read
    can itself be late, so a few lags come out at or below zero (the pipeline finished before the
    harness thread ran); ``lag_from_send_ms`` runs from the moment the POST was sent, an upper
    bound that includes the request's own latency.  The truth lies between the two.
    """
    done = [p for p in probes if getattr(p, attribute) is not None]
    lags = sorted((getattr(p, attribute) - p.acked) * 1000 for p in done)
    return {
        "samples": len(lags),
        "missing": len(probes) - len(done),
        "lag_ms": distribution(lags),
        "lag_from_send_ms": distribution((getattr(p, attribute) - (p.acked - p.latency)) * 1000 for p in done),
        "non_positive": sum(1 for x in lags if x <= 0),
        "series": [[round(p.acked - origin, 3), round((getattr(p, attribute) - p.acked) * 1000, 1)] for p in done],
        "lags_ms": [round(x, 1) for x in lags],
    }
