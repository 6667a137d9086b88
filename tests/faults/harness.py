"""The fault-injection harness: the real system, a load client that remembers every answer, and
the invariant checks of ARCHITECTURE.md (I1–I6) run after the system settles.

A scenario: ``system.start(...)``; ``load.start()``; inject faults (``report.fault(...)``);
``load.stop()``; ``check_invariants(...)`` — which waits for the pipeline to settle, measures
how long that took, asserts every invariant and returns the scenario's report line.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pika
import urllib3
from sqlalchemy import text

from testkit.processes import Proc, Processes
from tests.support.pipeline import count_drift, indexed, message_truth, outbox_status
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"


def services(action: str, name: str) -> None:
    subprocess.run([str(SERVICES), action, name], check=True, capture_output=True, timeout=180)


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60).stdout


def restore(*args: str, timeout: float = 180.0) -> None:
    """``rabbitmqctl`` for undoing a fault: retried until it works, so that a broker that is
    briefly unreachable (restarted by someone else's test) does not keep this run's fault."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rabbitmqctl(*args)
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@contextlib.contextmanager
def queues_refusing_publishes(queues: list[str]):
    """A policy that caps these queues (this run's only) at 0 messages: with the topology's
    ``reject-publish`` overflow, the broker nacks the publishes routed to them, as it does when a
    queue is full.  Undone even on failure, the limit raised before the policy is cleared: a
    quorum queue whose limit is cleared while it rejects never tells the channels it told to
    reject that they may publish again (rabbitmq-server#12206; the relay copes, see its
    ``nacked_reconnect``, but the next scenario should not start with that)."""
    name = f"chatsys-faults-{uuid.uuid4().hex[:8]}"
    pattern = "^(" + "|".join(re.escape(q) for q in queues) + ")$"
    policy = ("set_policy", "--apply-to", "queues", "--priority", "100", name, pattern)
    rabbitmqctl(*policy, '{"max-length": 0}')
    try:
        yield
    finally:
        try:
            restore(*policy, '{"max-length": 1000000000}')
        finally:
            restore("clear_policy", name)


def _alarms() -> str:
    return rabbitmqctl("eval", "rabbit_alarm:get_alarms().").strip()


@contextlib.contextmanager
def memory_alarm():
    """Sets the node's memory watermark so low that its memory alarm goes off: RabbitMQ then blocks
    every connection that publishes (``connection.blocked``) and reads nothing more from it.
    Node-wide, so run it under ``flock /tmp/chatsys-services.lock``.  The watermark read before
    is restored even on failure, and the alarm waited out."""
    alarms = _alarms()
    if alarms != "[]":
        raise AssertionError(
            f"the broker already has an alarm ({alarms}); if a run was killed inside this scenario, "
            "restore the watermark: rabbitmqctl set_vm_memory_high_watermark 0.4"
        )
    before = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    absolute = re.fullmatch(r"\{absolute,(\d+)\}", before)
    relative = re.fullmatch(r"(?:\{relative,)?([0-9.]+)\}?", before)
    if absolute:
        watermark = ["absolute", absolute.group(1)]
    elif relative:
        watermark = [relative.group(1)]
    else:
        raise AssertionError(f"cannot read the memory watermark to restore it later: {before!r}")
    rabbitmqctl("set_vm_memory_high_watermark", "0.000001")
    try:
        yield
    finally:
        restore("set_vm_memory_high_watermark", *watermark)
        wait_for(lambda: _alarms() == "[]", 30, interval=0.5, message="the memory alarm cleared")


@dataclass
class Op:
    kind: str  # create | edit
    token: str
    chat: int
    body: str
    status: int | None = None  # None: no answer (timeout, connection refused or reset)
    number: int | None = None
    version: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Report:
    scenario: str
    faults: list[str] = field(default_factory=list)
    requests: int = 0
    acknowledged: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    events_on_wire: int = 0
    duplicates_on_wire: int = 0
    parked: int = 0
    dead_letters: int = 0
    settle_seconds: float = 0.0
    invariants: dict[str, bool] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)

    def fault(self, description: str) -> None:
        self.faults.append(description)

    def line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class Load:
    """Threads that create messages (and edit acknowledged ones) until stopped, recording every
    request and its answer.  Bodies are unique, so any row can be traced to its request."""

    def __init__(
        self,
        base: str,
        chats: list[tuple[str, int]],
        threads: int = 4,
        edit_share: float = 0.2,
        pause: float = 0.0,
    ):
        self.base = base
        self.chats = chats
        self.threads = threads
        self.edit_share = edit_share
        self.pause = pause  # seconds each thread waits between requests: a steady rate for long scenarios
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.http = urllib3.PoolManager(maxsize=threads, retries=False, timeout=urllib3.Timeout(total=5))

    def start(self) -> Load:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(random.Random(i),), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def wait_for_requests(self, more: int, timeout: float = 60.0) -> None:
        target = len(self.ops) + more
        wait_for(lambda: len(self.ops) >= target, timeout, message=f"{more} more requests")

    def acknowledged_since(self, index: int) -> int:
        return sum(op.ok for op in self.ops[index:])

    def _run(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            created = [op for op in self.ops if op.kind == "create" and op.ok]
            if created and rng.random() < self.edit_share:
                target = rng.choice(created)
                op = Op("edit", target.token, target.chat, f"edit-{uuid.uuid4().hex}", number=target.number)
                url = f"{self.base}/v1/applications/{op.token}/chats/{op.chat}/messages/{op.number}"
                method = "PATCH"
            else:
                token, chat = rng.choice(self.chats)
                op = Op("create", token, chat, f"create-{uuid.uuid4().hex}")
                url = f"{self.base}/v1/applications/{token}/chats/{chat}/messages"
                method = "POST"
            try:
                res = self.http.request(method, url, json={"body": op.body})
                op.status = res.status
                if op.ok:
                    reply = res.json()
                    op.number, op.version = reply["message_number"], reply["version"]
            except (urllib3.exceptions.HTTPError, OSError):
                op.status = None
            with self._lock:
                self.ops.append(op)
            if op.status is None or op.status >= 500:
                self._stop.wait(0.05)  # a dead server: do not spin
            elif self.pause:
                self._stop.wait(self.pause)


class System:
    """Web, relay and workers as real processes, on the run's database, Redis and broker names."""

    def __init__(self, procs: Processes, ini: Path, base: str):
        self.procs = procs
        self.ini = ini
        self.base = base
        self.web: Proc | None = None

    def start(self, relays: int = 1, workers: tuple[str, ...] = ("counters", "indexer")) -> System:
        self.web = self.procs.spawn("web", "chatsys-web", "--workers", "2")
        self.wait_ready()
        started = [(self.procs.relay(), "connected to the broker") for _ in range(relays)]
        started += [(self.procs.worker(consumer), "consuming") for consumer in workers]
        # Every process has declared the topology and is serving before a scenario starts, so
        # a scenario that changes the topology is not undone by a late starter.
        for proc, marker in started:
            wait_for(lambda p=proc, m=marker: m in p.output(), 30, message=f"{proc.name} started")
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        http = urllib3.PoolManager(retries=False, timeout=2)

        def ready() -> bool:
            try:
                return http.request("GET", f"{self.base}/healthz").status == 200
            except urllib3.exceptions.HTTPError:
                return False

        wait_for(ready, timeout, interval=0.1, message="web up")

    def seed(self, apps: int = 2, chats: int = 3) -> list[tuple[str, int]]:
        http = urllib3.PoolManager(retries=False, timeout=10)
        result = []
        for a in range(apps):
            token = http.request("POST", f"{self.base}/v1/applications", json={"name": f"app{a}"}).json()["app_token"]
            for _ in range(chats):
                chat = http.request("POST", f"{self.base}/v1/applications/{token}/chats", json={}).json()
                result.append((token, chat["chat_number"]))
        return result


class WireTap:
    """A queue bound to every event type: counts what the relay put on the wire, duplicates too."""

    def __init__(self, channel_factory, topology):
        self.channel_factory = channel_factory
        self.topology = topology
        self.name = f"{topology.namespace}.tap"
        with channel_factory() as channel:
            # A run killed before drain() would leave the queue behind: the broker drops it
            # after half an hour unused, far longer than any scenario.
            channel.queue_declare(self.name, durable=True, arguments={"x-expires": 30 * 60 * 1000})
            channel.queue_purge(self.name)
            channel.queue_bind(self.name, topology.events_exchange, routing_key="#")

    def drain(self) -> Counter:
        seen: Counter = Counter()
        with self.channel_factory() as channel:
            while True:
                method, properties, _ = channel.basic_get(self.name, auto_ack=True)
                if method is None:
                    break
                seen[properties.message_id] += 1
            channel.queue_delete(self.name)
        return seen


def dead_letter_ids(channel_factory, topology) -> dict[str, list[str]]:
    """message ids in each consumer's dead-letter queue (peeked, left in place)."""
    from chatsys.broker.topology import CONSUMERS

    found: dict[str, list[str]] = {}
    with channel_factory() as channel:
        for consumer in CONSUMERS:
            ids = []
            while True:
                method, properties, _ = channel.basic_get(topology.dead_queue(consumer))
                if method is None:
                    break
                ids.append(properties.message_id)
            found[consumer] = ids
    return found  # closing the channel returned the peeked messages to their queues


def expected_index(engine, unindexable: set[str]) -> dict[str, tuple[int, str]]:
    """What the index must hold: every message once, at its newest version and body."""
    return {k: v for k, v in message_truth(engine).items() if k not in unindexable}


def check_invariants(
    report: Report,
    engine,
    load: Load | None,
    es_double,
    alias: str,
    tap: WireTap | None,
    channel_factory,
    topology,
    expect_parked: int = 0,
    expect_dead: dict[str, set[str]] | None = None,
    unindexable: set[str] = frozenset(),
    settle_timeout: float = 90.0,
    failed_allocations: dict[tuple[str, int], int] | None = None,
) -> Report:
    """Wait for the pipeline to settle, then check I1–I6; fills and returns ``report``."""
    started = time.monotonic()
    ops = load.ops if load else []
    want_dead = expect_dead or {}

    def dead_letters_in_place() -> bool:
        with channel_factory() as channel:
            return all(
                channel.queue_declare(topology.dead_queue(c), passive=True).method.message_count == len(ids)
                for c, ids in want_dead.items()
            )

    def settled() -> bool:
        status = outbox_status(engine)
        if status.get("pending", 0) or status.get("parked", 0) != expect_parked:
            return False
        if count_drift(engine) or not dead_letters_in_place():
            return False
        return indexed(es_double, alias) == expected_index(engine, unindexable)

    wait_for(settled, settle_timeout, interval=0.2, message=f"{report.scenario}: the pipeline to settle")
    report.settle_seconds = round(time.monotonic() - started, 2)
    inv = report.invariants

    # I1: every acknowledged create and edit is in MySQL; failed ones are absent or there once.
    rows = message_truth(engine)
    by_key = {key: value for key, value in rows.items()}
    with engine.connect() as conn:
        bodies = Counter(conn.execute(text("SELECT body FROM messages")).scalars())
        original = Counter(
            json.loads(p)["data"]["body"]
            for (p,) in conn.execute(text("SELECT payload FROM outbox_events WHERE type = 'message.created'"))
        )
    creates = [op for op in ops if op.kind == "create"]
    acked_creates = [op for op in creates if op.ok]
    inv["acknowledged_creates_stored"] = all(f"{op.token}:{op.chat}:{op.number}" in by_key for op in acked_creates)
    inv["acknowledged_creates_once"] = all(original[op.body] == 1 for op in acked_creates)
    inv["failed_creates_at_most_once"] = all(
        original[op.body] <= 1 and bodies[op.body] <= 1 for op in creates if not op.ok
    )
    edits = defaultdict(list)
    for op in ops:
        if op.kind == "edit" and op.ok:
            edits[f"{op.token}:{op.chat}:{op.number}"].append(op)
    newest_ok = True
    for key, acked in edits.items():
        latest = max(acked, key=lambda op: op.version)
        version, body = by_key[key]
        newest_ok &= version >= latest.version and (version != latest.version or body == latest.body)
    inv["acknowledged_edits_stored"] = newest_ok

    # I3: no duplicate numbers; gaps only where a request failed.
    with engine.connect() as conn:
        dupes = conn.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT chat_id, number FROM messages "
                "GROUP BY chat_id, number HAVING COUNT(*) > 1) d"
            )
        ).scalar_one()
        gaps = conn.execute(
            text(
                "SELECT a.token, c.number AS chat, COALESCE(MAX(m.number), 0) - COUNT(m.id) AS gaps FROM chats c "
                "JOIN applications a ON a.id = c.application_id LEFT JOIN messages m ON m.chat_id = c.id "
                "GROUP BY a.token, c.number"
            )
        ).all()
    failed_per_chat = Counter((op.token, op.chat) for op in creates if not op.ok)
    failed_per_chat.update(failed_allocations or {})  # numbers a scenario took as a failed request would
    inv["no_duplicate_numbers"] = dupes == 0
    inv["gaps_only_where_requests_failed"] = all(g.gaps <= failed_per_chat[(g.token, g.chat)] for g in gaps)

    # I2: nothing pending; parked only what the scenario parked.
    status = outbox_status(engine)
    report.parked = status.get("parked", 0)
    inv["outbox_drained"] = status.get("pending", 0) == 0 and report.parked == expect_parked

    # I5 and I4: counts and the index equal the rows.
    inv["counts_equal_rows"] = not count_drift(engine)
    inv["index_equals_rows"] = indexed(es_double, alias) == expected_index(engine, unindexable)

    # I6: the dead-letter queues hold exactly the injected poison.
    dead = dead_letter_ids(channel_factory, topology)
    report.dead_letters = sum(len(v) for v in dead.values())
    inv["dead_letters_exactly_the_poison"] = all(
        sorted(dead.get(c, [])) == sorted(want_dead.get(c, set())) for c in dead
    )

    report.requests = len(ops)
    report.acknowledged = sum(op.ok for op in ops)
    report.failed = dict(Counter(str(op.status) for op in ops if not op.ok))
    if tap is not None:
        seen = tap.drain()
        report.events_on_wire = sum(seen.values())
        report.duplicates_on_wire = sum(n - 1 for n in seen.values())
    return report


def publish(channel_factory, exchange: str, routing_key: str, body: bytes, message_id: str) -> None:
    with channel_factory() as channel:
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(message_id=message_id, delivery_mode=2))
