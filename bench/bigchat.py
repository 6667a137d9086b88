"""``python -m bench --bigchat``: create latency beside maintenance on a chat of a million messages
(issue 27).

On its own database (``<name>_bigchat``), Redis prefix and RabbitMQ namespace, with web, relay and
the counters worker running:

1. seed, by multi-row INSERTs (not the API): one chat of ``--bigchat-messages`` (1,000,000)
   messages whose ``counted`` flags are all 0 and count 0, as if the counters consumer had never
   seen them: the recount's worst case, a flag to set on every row, in chunks, under the chat's
   lock each time; and nine small chats;
2. ``quiet``: wrk POSTs for ``--duration`` seconds (half into the big chat, half into the others)
   at ``--connections`` (4: a load the machine carries, so the p99 shows stalls rather than queueing);
3. ``recount``: the same, while ``chatsys-recount`` runs (started just before; the report says
   whether it was still running at the end of the window, and its own figures);
4. ``quiet`` again;
5. ``purge``: the relay stopped, ``--bigchat-outbox`` (1,000,000) published outbox rows two hours
   old inserted, the relay started again (its purge thread starts at once), and the same load
   while it purges; the report says how many rows were left at the end of the window and when the
   purge finished;
6. ``quiet`` again.

Every phase is repeated ``--repeats`` times (default 1) in that order, so each maintenance run
has quiet runs just before and after it; report.json has every run and the medians.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import random
import re
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import wrk as wrkmod
from bench.seed import ChatInfo, create_via_api, resolve, sentence
from bench.services import mysql_connect
from bench.stack import (
    BIN,
    ROOT,
    Stack,
    bench_settings,
    child_env,
    delete_redis_keys,
    delete_topology,
    drop_database,
    free_port,
    generate_ini,
    recreate_database,
    reset_queues,
    wait_http,
)

log = logging.getLogger("bench.bigchat")
DONE = re.compile(
    r"recount done: (\d+) counts repaired, (\d+) flags set with their counts, a parent locked ([\d.]+) ms at "
    r"most \((\d+) short transactions; 99th percentile ([\d.]+) ms, median ([\d.]+) ms\)"
)


def set_app_options(path: Path, **options: str) -> None:
    config = configparser.RawConfigParser()
    config.optionxform = str
    config.read(path)
    for key, value in options.items():
        config.set("app:main", key, value)
    with open(path, "w") as handle:
        config.write(handle)


def insert_big_chat(conn, chat: ChatInfo, count: int, chunk: int = 5000) -> float:
    """``count`` messages, uncounted (flags 0, count 0): multi-row INSERTs.  Returns seconds."""
    started = time.monotonic()
    rng = random.Random(3)
    sql = (
        "INSERT INTO messages (chat_id, number, body, version, counted, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)"
    )
    at = datetime.now(UTC).replace(tzinfo=None)
    with conn.cursor() as cur:
        for first in range(1, count + 1, chunk):
            numbers = range(first, min(first + chunk, count + 1))
            cur.executemany(sql, [(chat.chat_id, n, sentence(rng), 1, 0, at, at) for n in numbers])
            conn.commit()
            if first // chunk % 40 == 0:
                log.info("  big chat: %d of %d messages", min(first + chunk - 1, count), count)
        mark = "UPDATE chats SET last_message_number = %s, messages_count = 0 WHERE id = %s"
        cur.execute(mark, (count, chat.chat_id))
        cur.execute("ANALYZE TABLE messages")
        cur.fetchall()
    conn.commit()
    return time.monotonic() - started


def insert_published(conn, count: int, chunk: int = 5000) -> tuple[int, int, float]:
    """``count`` published outbox rows two hours old; returns their id range and the seconds taken."""
    started = time.monotonic()
    payload = json.dumps({"type": "message.created", "data": {"body": "x" * 120}})
    sql = (
        "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, next_attempt_at, "
        "created_at, published_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with conn.cursor() as cur:
        cur.execute("SELECT UTC_TIMESTAMP(6) - INTERVAL 2 HOUR")
        (old,) = cur.fetchone()
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM outbox_events")
        (before,) = cur.fetchone()
        tag = f"{time.time_ns():x}"
        for first in range(0, count, chunk):
            rows = [
                (f"bigchat-{tag}-{i}", "message.created", "bench:old", payload, "published", 0, old, old, old)
                for i in range(first, min(first + chunk, count))
            ]
            cur.executemany(sql, rows)
            conn.commit()
        cur.execute(
            "SELECT MIN(id), MAX(id) FROM outbox_events WHERE id > %s AND aggregate_key = 'bench:old'", [before]
        )
        low, high = cur.fetchone()
    conn.commit()
    return low, high, time.monotonic() - started


class BigChatRun:
    def __init__(self, args, out: Path):
        self.args = args
        self.out = out
        self.name = f"{args.name or 'chatsys_bench'}_bigchat"
        self.settings = bench_settings(args.base_ini or "development.ini", self.name)
        self.messages = args.bigchat_messages
        self.outbox_rows = args.bigchat_outbox
        self.duration = args.duration or 30.0
        self.connections = args.connections or 4
        self.repeats = args.repeats or 1
        self.results: dict[str, Any] = {
            "meta": {
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "messages": self.messages,
                "outbox_rows": self.outbox_rows,
                "duration_s": self.duration,
                "connections": self.connections,
                "repeats": self.repeats,
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            },
            "runs": {"quiet": [], "recount": [], "purge": []},
        }
        self.stack: Stack | None = None

    def db(self):
        return mysql_connect(self.settings["sqlalchemy.url"])

    # -- phases -------------------------------------------------------------------------------

    def prepare(self) -> None:
        wrkmod.ensure_wrk(install=True)
        port = free_port()
        base = self.args.base_ini or "development.ini"
        self.ini = generate_ini(self.out / "bigchat.ini", base, self.settings, port, None)
        # The purge checks for due rows every second, so it starts as soon as the backlog is in.
        set_app_options(self.ini, **{"relay.purge_interval": "1"})
        self.url = f"http://127.0.0.1:{port}"
        log.info("database %s: recreating and migrating", self.name)
        recreate_database(self.settings, self.ini)
        delete_redis_keys(self.settings)
        reset_queues(self.settings)
        self.stack = Stack(self.ini, self.out / "logs", self.args.workers or os.cpu_count() or 2)
        (self.out / "logs").mkdir(exist_ok=True)
        self.stack.start("web", "relay", "counters")
        wait_http(f"{self.url}/readyz", 60, list(self.stack.procs.values()))

    def seed(self) -> None:
        pairs = create_via_api(self.url, "bigchat", 10)
        conn = self.db()
        try:
            chats = resolve(conn, pairs)
            self.big, self.others = chats[0], chats[1:]
            log.info("seeding %d messages into one chat (multi-row INSERTs)", self.messages)
            self.results["meta"]["seed_messages_s"] = round(insert_big_chat(conn, self.big, self.messages), 1)
        finally:
            conn.close()
        rng = random.Random(11)
        requests = []
        for i in range(1000):
            chat = self.big if i % 2 == 0 else self.others[i // 2 % len(self.others)]
            requests.append(("POST", f"{chat.path}/messages", json.dumps({"body": sentence(rng)})))
        self.script = wrkmod.write_script(self.out / "creates.lua", "bigchat creates", requests)
        self.load("warm-up", 5)

    def load(self, label: str, duration: float | None = None) -> dict:
        result = (
            wrkmod.Wrk(f"{self.url}", self.script, label, duration or self.duration, self.connections, 1, 2.0)
            .start()
            .wait()
        )
        run = result.as_dict()
        log.info(
            "  %-10s %6.0f creates/s  p50 %6.1f  p99 %7.1f  max %7.1f ms  errors %d",
            label,
            run["throughput"],
            run["latency_ms"]["p50"],
            run["latency_ms"]["p99"],
            run["latency_ms"]["max"],
            run["error_total"],
        )
        return run

    def quiet(self) -> None:
        self.results["runs"]["quiet"].append(self.load("quiet"))

    def first_flag(self) -> int:
        """The flag of the big chat's first message, which no event ever sets: the recount's."""
        conn = self.db()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT counted FROM messages WHERE chat_id = %s AND number = 1", (self.big.chat_id,))
                return int(cur.fetchone()[0])
        finally:
            conn.close()

    def recount(self) -> None:
        if self.results["runs"]["recount"]:
            # The worst case again: every flag of the big chat stale (count 0 with them, so the
            # state is one the counters consumer, still running, can go on from).
            conn = self.db()
            try:
                with conn.cursor() as cur:
                    log.info("resetting the big chat's flags (the recount's worst case)")
                    cur.execute("UPDATE messages SET counted = 0 WHERE chat_id = %s", (self.big.chat_id,))
                    cur.execute("UPDATE chats SET messages_count = 0 WHERE id = %s", (self.big.chat_id,))
                conn.commit()
            finally:
                conn.close()
        log_path = self.out / "logs" / f"recount-{len(self.results['runs']['recount'])}.log"
        with open(log_path, "w") as handle:
            started = time.monotonic()
            recount = subprocess.Popen(
                [str(BIN / "chatsys-recount"), str(self.ini), "--no-progress"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=child_env(),
                cwd=ROOT,
            )
            # Under way before the window opens: its first chunk (the chat's first messages) is set.
            deadline = time.monotonic() + 120
            while not self.first_flag() and recount.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            run = self.load("recount")
            running_at_end = recount.poll() is None
            recount.wait(timeout=3600)
            took = time.monotonic() - started
        found = DONE.search(log_path.read_text())
        run["recount"] = {
            "seconds": round(took, 1),
            "still_running_when_the_window_closed": running_at_end,
            "flags_set": int(found.group(2)) if found else None,
            "longest_parent_lock_ms": float(found.group(3)) if found else None,
            "parent_lock_transactions": int(found.group(4)) if found else None,
            "parent_lock_p99_ms": float(found.group(5)) if found else None,
            "parent_lock_median_ms": float(found.group(6)) if found else None,
            "exit_status": recount.returncode,
        }
        log.info("  recount: %s", run["recount"])
        self.results["runs"]["recount"].append(run)

    def purge(self) -> None:
        self.stack.stop("relay")
        conn = self.db()
        try:
            log.info("inserting %d published outbox rows, two hours old", self.outbox_rows)
            low, high, seconds = insert_published(conn, self.outbox_rows)
        finally:
            conn.close()
        remaining: list[tuple[float, int]] = []
        stop = threading.Event()
        started = time.monotonic()

        # The rows are consecutive ids (one multi-row INSERT after another, nothing else inserting)
        # that share one next_attempt_at, and the purge deletes in (next_attempt_at, id) order, so
        # what is left is the range above the lowest id still there: one index dive.  A COUNT(*)
        # of the range, every 2 s, read up to the whole million rows (300 MB through a 128 MB
        # buffer pool on the development server): ~6,000 page reads a second, load of its own
        # that the creates' p99 was charged with.
        assert high - low + 1 == self.outbox_rows, (low, high)

        def watch() -> None:
            watcher = self.db()
            try:
                while not stop.is_set():
                    with watcher.cursor() as cur:
                        cur.execute("SELECT MIN(id) FROM outbox_events WHERE id BETWEEN %s AND %s", (low, high))
                        (lowest,) = cur.fetchone()
                    watcher.commit()
                    left = 0 if lowest is None else high - lowest + 1
                    remaining.append((round(time.monotonic() - started, 1), left))
                    if not left:
                        return
                    stop.wait(0.5)
            finally:
                watcher.close()

        self.stack.start("relay")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        deadline = time.monotonic() + 120  # the relay started and its purge under way
        while not (remaining and remaining[-1][1] < self.outbox_rows) and time.monotonic() < deadline:
            time.sleep(0.2)
        window_start = time.monotonic() - started
        run = self.load("purge")
        window_end = time.monotonic() - started
        watcher.join(timeout=1800)
        stop.set()
        left_at_start = next((n for t, n in reversed(remaining) if t <= window_start), None)
        left_at_end = next((n for t, n in reversed(remaining) if t <= window_end), None)
        finished = next((t for t, n in remaining if n == 0), None)
        in_window = None
        if left_at_start is not None and left_at_end is not None:
            in_window = round((left_at_start - left_at_end) / (window_end - window_start))
        run["purge"] = {
            "rows": self.outbox_rows,
            "insert_seconds": round(seconds, 1),
            "left_when_the_window_opened": left_at_start,
            "left_when_the_window_closed": left_at_end,
            "rows_per_second_in_the_window": in_window,
            "finished_after_s": finished,
            "rows_per_second": round(self.outbox_rows / finished) if finished else None,
        }
        log.info("  purge: %s", run["purge"])
        self.results["runs"]["purge"].append(run)

    def teardown(self) -> None:
        if self.stack is not None:
            self.stack.stop_all()
        if not self.args.keep_db:
            drop_database(self.settings)
        delete_redis_keys(self.settings)
        delete_topology(self.settings)

    def execute(self) -> dict:
        try:
            self.prepare()
            self.seed()
            for _ in range(self.repeats):
                self.quiet()
                self.recount()
                self.quiet()
                self.purge()
                self.quiet()
        except BaseException as exc:
            self.results["aborted"] = f"{exc.__class__.__name__}: {exc}"
            log.exception("bigchat run aborted")
        finally:
            self.teardown()
        self.results["summary"] = summary(self.results["runs"])
        (self.out / "report.json").write_text(json.dumps(self.results, indent=1, default=str))
        return self.results


def summary(runs: dict[str, list[dict]]) -> dict:
    def med(values):
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        phase: {
            "runs": len(items),
            "create_p99_ms": med([r["latency_ms"]["p99"] for r in items]),
            "create_p50_ms": med([r["latency_ms"]["p50"] for r in items]),
            "create_max_ms": med([r["latency_ms"]["max"] for r in items]),
            "creates_per_s": med([r["throughput"] for r in items]),
            "errors": sum(r["error_total"] for r in items),
        }
        for phase, items in runs.items()
    }


def main(args, out: Path) -> int:
    results = BigChatRun(args, out).execute()
    print(json.dumps(results["summary"], indent=1))
    print(f"report: {out / 'report.json'}")
    if results.get("aborted"):
        print(f"ABORTED: {results['aborted']}")
        return 1
    return 0
