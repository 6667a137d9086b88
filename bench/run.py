"""The orchestration of one benchmark run: prepare, seed, baselines and workloads, report, clean up.

Order (each measured run is preceded by a check that the services answer and the stack is alive):

1. wrk present (installed from Debian if missing and we are root); services reachable;
   database ``<name>`` recreated and migrated with Alembic; Redis keys and queues of the
   namespace cleared; web, relay, both workers and the HTTP-baseline server started.
2. Seed (API for applications and chats, multi-row INSERTs for messages).
3. ``repeats`` × [DB baseline, HTTP baseline POST, W1 with lag probes and memory sampling],
   interleaved so that each W1 run has baselines measured moments before it; the outbox is
   allowed to drain between repetitions.
4. ``repeats`` × [HTTP baseline GET, W2]; then W3 on the small and on the large chat; then
   ``repeats`` × W1D (W1 with every tenth request a DELETE of a message W1 created).
5. ``--profile``: one extra W1 run under py-spy (not in the medians).
6. W4 with Elasticsearch: web and indexer restarted on the ES backend, pointed at the test double
   (its own process); ``repeats`` × W1-shaped load with probes measuring 201 → indexed.
7. W5: web and consumers stopped; ``drain_repeats`` × N pending rows drained by the relay alone.
8. Stop everything (also on Ctrl-C or an error), delete the Redis keys and the queues, drop the
   database (unless ``--keep-db``); write ``report.json`` and ``plot.png``, even for an aborted run.

A run whose window overlaps a service restart or outage (:class:`bench.services.ServiceWatch`)
is discarded and repeated, up to ``retries`` times; discarded runs stay in the report.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import drain as w5
from bench import monitor as mon
from bench import profiling
from bench import seed as seeding
from bench import wrk as wrkmod
from bench.plan import Plan
from bench.probes import CountedPoller, IndexedPoller, ProbeClient, lag_summary
from bench.services import Pings, ServiceDown, ServiceWatch, mysql_connect
from bench.stack import (
    ROOT,
    Stack,
    bench_settings,
    child_env,
    delete_redis_keys,
    delete_topology,
    drop_database,
    free_port,
    generate_ini,
    purge_queues,
    recreate_database,
    reset_queues,
    server_options,
    trivial_ini,
    wait_http,
)
from bench.stats import distribution

log = logging.getLogger("bench")

DB_STATUS = (
    "Com_commit",
    "Com_insert",
    "Com_select",
    "Com_update",
    "Innodb_row_lock_waits",
    "Innodb_row_lock_time",
    "Innodb_deadlocks",
    "Innodb_data_fsyncs",
    "Innodb_os_log_fsyncs",
    "Innodb_buffer_pool_reads",
)
DB_VARIABLES = (
    "version",
    "innodb_flush_log_at_trx_commit",
    "sync_binlog",
    "log_bin",
    "innodb_buffer_pool_size",
    "innodb_log_file_size",
    "max_connections",
    "transaction_isolation",
)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop the stack and write what was measured."""


class BenchRun:
    def __init__(self, plan: Plan, out_dir: Path):
        self.plan = plan
        self.out = out_dir
        self.logs = out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings = bench_settings(plan.base_ini, plan.name)
        self.pings = Pings(self.settings["sqlalchemy.url"], self.settings["redis.url"], self.settings["amqp.url"])
        self.watch: ServiceWatch | None = None
        self.stack: Stack | None = None
        self.es_double: subprocess.Popen | None = None
        self.es_record: Path | None = None
        self.trivial = None  # the HTTP baseline's chatsys-web (a testkit.processes.Proc)
        self.conn = None
        self.seed: seeding.Seed | None = None
        self.db_number_base = 0
        self.phase_started = time.monotonic()
        self.results: dict[str, Any] = {
            "meta": {},
            "runs": {},
            "lag": {"counted": [], "counted_w1d": [], "indexed": []},
            "memory": [],
            "discarded": [],
            "search_queries": {},
            "phases": {},
        }

    # -- life cycle ---------------------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        started = time.monotonic()
        try:
            self.prepare()
            self.phase("seed", self.do_seed)
            skip = set(self.plan.skip)
            if "W1" not in skip:
                self.phase("W1 + baselines", self.do_w1)
            if "W2" not in skip:
                self.phase("W2", self.do_w2)
            if "W3" not in skip:
                self.phase("W3", self.do_w3)
            if "W1D" not in skip:
                self.phase("W1D", self.do_w1_deletes)
            if self.plan.profile:
                self.phase("profile", self.do_profile)
            if "W4" not in skip:
                self.phase("W4 (Elasticsearch)", self.do_w4_es)
            if "W5" not in skip:
                self.phase("W5", self.do_w5)
        except KeyboardInterrupt:
            self.results["aborted"] = "interrupted (Ctrl-C or SIGTERM)"
            log.error("interrupted: stopping the stack and writing what was measured")
        except ServiceDown as exc:
            self.results["aborted"] = f"a service stayed down: {exc}"
            log.error("aborting: %s", exc)
        except Exception as exc:
            self.results["aborted"] = f"{exc.__class__.__name__}: {exc}"
            log.exception("aborting")
        finally:
            self.teardown()
            signal.signal(signal.SIGTERM, previous)
            self.results["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            self.results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
        return self.results

    def _on_sigterm(self, signum, frame) -> None:
        raise Interrupted()

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.monotonic()
        log.info("== %s", name)
        fn()
        self.results["phases"][name] = round(time.monotonic() - t0, 1)
        log.info(
            "== %s done in %.0fs (%.0fs since start)",
            name,
            time.monotonic() - t0,
            time.monotonic() - self.phase_started,
        )

    def prepare(self) -> None:
        t0 = time.monotonic()
        plan = self.plan
        meta = self.results["meta"]
        meta.update(
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            plan=plan.as_dict(),
            machine={
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            },
            git=git_describe(),
            caveats=[
                "The load generator (wrk), the services and chatsys share the same cores; "
                "cpu.cores_by_role says who used them, 'other' is load from outside the benchmark.",
                "MySQL status deltas are global: they include other clients of the server.",
                "Latency is measured by a closed-loop generator at fixed concurrency (wrk); requests that "
                "time out (errors.timeout) are left out of wrk's latency percentiles.",
            ],
        )
        wrkmod.ensure_wrk(install=True)
        meta["wrk"] = wrkmod.version()
        log.info("waiting for MySQL, Redis and RabbitMQ")
        self.pings.wait(plan.service_timeout_s)
        self.watch = ServiceWatch(self.pings).start()

        self.web_port, self.trivial_port = free_port(), free_port()
        self.ini = generate_ini(self.out / "bench.ini", plan.base_ini, self.settings, self.web_port, plan.threads)
        self.trivial_ini = trivial_ini(self.out / "trivial.ini", self.ini, self.trivial_port)
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.trivial_url = f"http://127.0.0.1:{self.trivial_port}"
        meta["ini"] = str(self.ini)
        meta["server"] = {k: v for k, v in server_options(self.ini).items() if k != "listen"}

        log.info("database %s: recreating and migrating (alembic upgrade head)", plan.name)
        meta["migrate_s"] = round(self.retry("migrating", lambda: recreate_database(self.settings, self.ini)), 1)
        meta["redis_keys_deleted"] = self.retry("deleting Redis keys", lambda: delete_redis_keys(self.settings))
        self.retry("resetting queues", lambda: reset_queues(self.settings))
        self.reconnect()
        meta["mysql"] = self.db_variables()

        self.stack = Stack(self.ini, self.logs, plan.workers)
        self.stack.start("web", "relay", "counters", "indexer")
        self.trivial = self.stack.processes.spawn(
            "trivial-web", "chatsys-web", "--workers", str(plan.workers), ini=self.trivial_ini, env=child_env()
        )
        wait_http(f"{self.web_url}/readyz", 60, list(self.stack.procs.values()))
        wait_http(f"{self.trivial_url}/", 60, [self.trivial])
        self.results["phases"]["prepare"] = round(time.monotonic() - t0, 1)
        log.info("stack up: web %s (%d workers), HTTP baseline %s", self.web_url, plan.workers, self.trivial_url)

    def teardown(self) -> None:
        if self.stack is not None:
            self.stack.stop_all()
            if self.trivial is not None:
                self.trivial.stop()
        self.stop_es_double()
        if self.watch is not None:
            self.watch.stop()
            self.results["service_blips"] = [
                {
                    "service": b.service,
                    "at": datetime.fromtimestamp(b.at, UTC).isoformat(timespec="seconds"),
                    "what": b.what,
                }
                for b in self.watch.blips
            ]
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        for what, fn in (
            ("Redis keys", lambda: delete_redis_keys(self.settings)),
            ("RabbitMQ queues", lambda: delete_topology(self.settings)),
            ("database", lambda: None if self.plan.keep_db else drop_database(self.settings)),
        ):
            try:
                fn()
            except Exception as exc:
                log.warning("could not clean up the %s: %s", what, exc)

    # -- helpers ------------------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        pids = self.stack.pids() if self.stack else {}
        if self.trivial is not None and self.trivial.alive:
            pids["trivial-web"] = self.trivial.popen.pid
        if self.es_double is not None and self.es_double.poll() is None:
            pids["es-double"] = self.es_double.pid
        return pids

    def reconnect(self) -> None:
        """(Re)open the harness's own MySQL connection.  Autocommit: every read sees the latest
        commits (a REPEATABLE READ snapshot would go stale while we poll)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = mysql_connect(self.settings["sqlalchemy.url"], autocommit=True)

    def retry(self, what: str, step: Callable[[], Any], attempts: int = 3) -> Any:
        """Run a step that is safe to repeat; after a failure wait for the services and try again."""
        for attempt in range(1, attempts + 1):
            try:
                return step()
            except Exception as exc:
                if attempt == attempts:
                    raise
                log.warning(
                    "%s failed (%s: %s); waiting for the services, then retrying",
                    what,
                    exc.__class__.__name__,
                    str(exc)[:200],
                )
                time.sleep(1.0)
                self.pings.wait(self.plan.service_timeout_s)
                if self.conn is not None and threading.current_thread() is threading.main_thread():
                    self.reconnect()
        raise AssertionError("unreachable")

    def down_now(self) -> list[str]:
        return [f"{name} unreachable: {error}" for name, error in self.pings.check().items() if error]

    def ready(self, web: bool = True) -> None:
        """Services reachable, every process of the stack alive, the web ready."""
        self.pings.wait(self.plan.service_timeout_s)
        self.stack.check_alive()
        if web and "web" in self.stack.procs:
            wait_http(f"{self.web_url}/readyz", self.plan.service_timeout_s, [self.stack.procs["web"]])

    def db_query(self, sql: str, args: Any = None) -> list[tuple]:
        """A query on the harness's connection, reconnecting once after a blip."""
        for attempt in (1, 2):
            try:
                with self.conn.cursor() as cur:
                    cur.execute(sql, args)
                    rows = cur.fetchall()
                self.conn.commit()
                return rows
            except Exception:
                if attempt == 2:
                    raise
                self.pings.wait(self.plan.service_timeout_s)
                self.reconnect()
        return []

    def db_status(self) -> dict[str, int]:
        names = ",".join(f"'{n}'" for n in DB_STATUS)
        rows = self.db_query(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        return {name: int(value) for name, value in rows}

    def db_variables(self) -> dict[str, str]:
        names = ",".join(f"'{n}'" for n in DB_VARIABLES)
        return {name: value for name, value in self.db_query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")}

    def outbox_pending(self) -> int:
        return int(self.db_query("SELECT COUNT(*) FROM outbox_events WHERE status = 'pending'")[0][0])

    def wait_drained(self) -> float | None:
        """Wait for the outbox to empty (the pipeline caught up); seconds waited, None on timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.plan.drain_wait_s:
            if self.outbox_pending() == 0:
                return round(time.monotonic() - t0, 2)
            time.sleep(0.2)
        log.warning("outbox not drained after %.0fs: %d pending", self.plan.drain_wait_s, self.outbox_pending())
        return None

    def record(self, key: str, run: dict) -> None:
        self.results["runs"].setdefault(key, []).append(run)

    def attempt(self, key: str, rep: int, measure: Callable[[], dict], web: bool = True) -> dict:
        """Measure one repetition; repeat it if the services blipped during it."""
        run: dict = {}
        last = self.plan.retries + 1
        for attempt in range(1, last + 1):
            self.ready(web=web)
            start = time.time()
            try:
                run = measure()
            except Exception as exc:
                # A failure during an outage is the outage's doing: repeat.  Otherwise it is real.
                time.sleep(1.5)  # let the watcher see what happened
                blips = self.watch.window(start, time.time()) or self.down_now()
                if not blips or attempt == last:
                    raise
                log.warning(
                    "%s run %d failed during a service blip (%s: %s); repeating",
                    key,
                    rep,
                    exc.__class__.__name__,
                    "; ".join(blips),
                )
                self.results["discarded"].append(
                    {
                        "workload": key,
                        "rep": rep,
                        "attempt": attempt,
                        "reason": blips,
                        "error": f"{exc.__class__.__name__}: {exc}"[:500],
                    }
                )
                self.pings.wait(self.plan.service_timeout_s)
                self.reconnect()
                continue
            blips = self.watch.window(start, time.time())
            run.update(rep=rep, attempt=attempt, services=blips)
            if not blips:
                return run
            log.warning("%s run %d: services blipped (%s); repeating", key, rep, "; ".join(blips))
            self.results["discarded"].append(
                {"workload": key, "rep": rep, "attempt": attempt, "reason": blips, "run": _brief(run)}
            )
        run["spoiled"] = True  # every attempt overlapped an outage: kept, flagged, left out of medians
        return run

    def http_run(
        self,
        url: str,
        script: Path,
        label: str,
        duration: float,
        *,
        monitor: bool = False,
        probes: tuple[str, ...] = (),
        timeout_s: float | None = None,
    ) -> dict:
        """One wrk run against ``url`` with CPU accounting; optionally RSS sampling and lag probes."""
        pids = self.pids()
        before = mon.cpu_snapshot(pids)
        status_before = self.db_status()
        generator = wrkmod.Wrk(
            url, script, label, duration, self.plan.connections, self.plan.wrk_threads, timeout_s or self.plan.timeout_s
        ).start()
        origin = time.time()
        sampler = mon.Monitor(self.pids, web_port=self.web_port).start() if monitor else None
        client = pollers = None
        if probes:
            parsed = urlsplit(url)
            client = ProbeClient(parsed.hostname, parsed.port, self.seed.write_chats, self.plan.probe_rate).start()
            pollers = []
            if "counted" in probes:
                pollers.append(
                    CountedPoller(client, self.plan.poll_interval_s, self.settings["sqlalchemy.url"]).start()
                )
            if "indexed" in probes:
                pollers.append(IndexedPoller(client, self.plan.poll_interval_s, self.es_record).start())
        try:
            result = generator.wait()
        finally:
            if client is not None:
                client.stop()
            if sampler is not None:
                sampler.stop()
        after = mon.cpu_snapshot(pids)
        status_after = self.db_status()
        cpu = mon.cpu_delta(before, after, {"wrk": result.cpu_s})
        run = result.as_dict()
        run.update(
            generator_cores=round(result.cpu_cores, 3),
            cpu=cpu,
            bottleneck=mon.bottleneck(cpu),
            db_status={k: status_after.get(k, 0) - status_before.get(k, 0) for k in status_after},
        )
        if sampler is not None:
            run["memory"] = sampler.result()
        if client is not None:
            for poller in pollers:
                poller.finish(self.plan.probe_timeout_s)
            probes_done = client.snapshot()
            run["probes"] = {
                "sent_ok": len(probes_done),
                "errors": len(client.errors),
                "first_error": client.errors[0] if client.errors else "",
                "post_latency_ms": distribution([p.latency * 1000 for p in probes_done]),
                "poll_errors": [e for p in pollers for e in p.errors][:5],
            }
            for poller in pollers:
                run[f"lag_{poller.attribute}"] = lag_summary(probes_done, poller.attribute, origin)
        log.info(
            "  %-22s %8.0f req/s  p50 %6.1f  p99 %7.1f ms  errors %d  "
            "(wrk %.2f cores, machine %.0f%% busy, other %.2f cores)",
            label,
            run["throughput"],
            run["latency_ms"]["p50"],
            run["latency_ms"]["p99"],
            run["error_total"],
            run["generator_cores"],
            cpu["machine_busy_share"] * 100,
            cpu["cores_by_role"].get("other", 0.0),
        )
        if run["error_total"]:
            log.warning(
                "  %s: %d errors %s; first: %s", label, run["error_total"], run["errors"], run["first_error"][:200]
            )
        return run

    def warmup(self, url: str, script: Path) -> None:
        """Unmeasured load first: pools filled, caches and allocator keys warm, code paths hot."""
        if self.plan.warmup_s > 0:
            self.retry(
                "warming up",
                lambda: (
                    wrkmod.Wrk(
                        url,
                        script,
                        "warmup",
                        self.plan.warmup_s,
                        self.plan.connections,
                        self.plan.wrk_threads,
                        self.plan.timeout_s,
                    )
                    .start()
                    .wait()
                ),
            )

    # -- phases -------------------------------------------------------------------------------------

    def do_seed(self) -> None:
        self.seed = seeding.seed(self.web_url, lambda: self.conn, self.plan, self.retry)
        self.results["seed"] = self.seed.summary()
        self.results["search_queries"]["mix"] = [{"kind": k, "q": q} for k, q in seeding.search_queries()]
        self.wait_drained()

    def db_baseline(self) -> dict:
        self.db_number_base += 1_000_000
        chats = [[c.chat_id, c.application_id, c.token, c.number] for c in self.seed.baseline_chats]
        pids = self.pids()
        before = mon.cpu_snapshot(pids)
        status_before = self.db_status()
        argv = [
            sys.executable,
            "-m",
            "bench.dbload",
            "--url",
            self.settings["sqlalchemy.url"],
            "--chats",
            json.dumps(chats),
            "--connections",
            str(self.plan.connections),
            "--processes",
            str(self.plan.workers),
            "--duration",
            str(self.plan.baseline_s),
            "--start",
            str(self.db_number_base),
        ]
        t0 = time.monotonic()
        done = subprocess.run(
            argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=self.plan.baseline_s + 180
        )
        with open(self.logs / "dbload.log", "a") as handle:
            handle.write(done.stderr)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH-JSON ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"DB baseline failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        run = json.loads(line[len("BENCH-JSON ") :])
        after = mon.cpu_snapshot(pids)
        # The window includes the clients' 1 s connect phase: scale CPU to the wall clock seen here.
        cpu = mon.cpu_delta(before, after, {"dbload": run["cpu_s"]})
        status_after = self.db_status()
        run.update(
            generator_cores=round(run["cpu_s"] / max(time.monotonic() - t0, 1e-6), 3),
            cpu=cpu,
            bottleneck=mon.bottleneck(cpu),
            db_status={k: status_after.get(k, 0) - status_before.get(k, 0) for k in status_after},
        )
        log.info(
            "  %-22s %8.0f txn/s  p50 %6.1f  p99 %7.1f ms  errors %d  (clients %.2f cores, machine %.0f%% busy)",
            "DB baseline",
            run["throughput"],
            run["latency_ms"]["p50"],
            run["latency_ms"]["p99"],
            run["error_total"],
            run["generator_cores"],
            cpu["machine_busy_share"] * 100,
        )
        if run["error_total"] or not run["requests"]:
            log.warning(
                "  DB baseline: %d errors, %d commits; first: %s",
                run["error_total"],
                run["requests"],
                run["first_error"],
            )
        return run

    def scripts(self) -> None:
        if getattr(self, "w1_script", None):
            return
        self.w1_script = wrkmod.write_script(
            self.out / "w1_create.lua", "W1 create", seeding.create_requests(self.seed.write_chats)
        )
        self.w2_script = wrkmod.write_script(
            self.out / "w2_read.lua", "W2 read", seeding.read_requests(self.seed.read_chats)
        )

    def do_w1(self) -> None:
        self.scripts()
        self.warmup(self.web_url, self.w1_script)
        self.warmup(self.trivial_url, self.w1_script)
        self.wait_drained()
        for rep in range(1, self.plan.repeats + 1):
            self.record("baseline.db", self.attempt("baseline.db", rep, self.db_baseline))
            self.record(
                "baseline.http_post",
                self.attempt(
                    "baseline.http_post",
                    rep,
                    lambda: self.http_run(self.trivial_url, self.w1_script, "HTTP baseline POST", self.plan.baseline_s),
                ),
            )
            run = self.attempt(
                "W1",
                rep,
                lambda: self.http_run(
                    self.web_url, self.w1_script, "W1 create", self.plan.w1_s, monitor=True, probes=("counted",)
                ),
            )
            run["drained_after_s"] = self.wait_drained()
            self.record("W1", run)
            if not run.get("spoiled"):
                self.results["lag"]["counted"].append({"rep": rep, **run.pop("lag_counted")})
                self.results["memory"].append(run["memory"])

    def do_w1_deletes(self) -> None:
        """W1 with every tenth request a DELETE of a message W1 created (W2's chats stay whole, so
        a seed kept for ``bench.paired`` still reads): throughput and latency beside W1's, the
        lag probes' 201 → counted, and how long after the run every chat's ``messages_count``
        equals its live messages (deletes are decrements).  Skipped when W1 made no messages."""
        self.scripts()
        chats = {chat.chat_id: chat for chat in self.seed.write_chats}
        rows = self.db_query(
            "SELECT chat_id, number FROM messages WHERE chat_id IN %s AND deleted_at IS NULL ORDER BY number, chat_id",
            (tuple(chats),),
        )
        targets = [(chats[chat_id], number) for chat_id, number in rows]
        per_attempt = len(targets) // (self.plan.repeats * (1 + self.plan.retries))
        if per_attempt < 10:
            log.info("W1D skipped: W1 left %d messages to delete", len(targets))
            self.results.setdefault("skipped", []).append("W1D: no messages of W1 to delete")
            return
        self.wait_drained()
        for rep in range(1, self.plan.repeats + 1):

            def measure() -> dict:
                taken, targets[:per_attempt] = targets[:per_attempt], []
                requests = seeding.create_delete_requests(self.seed.write_chats, taken)
                script = wrkmod.write_script(self.out / "w1d.lua", "W1D create + delete", requests)
                return self.http_run(self.web_url, script, "W1D create + delete", self.plan.w1_s, probes=("counted",))

            run = self.attempt("W1D", rep, measure)
            run["drained_after_s"] = self.wait_drained()
            run["counts_exact_after_s"] = self.wait_counts_exact(self.seed.write_chats)
            self.record("W1D", run)
            if not run.get("spoiled"):
                self.results["lag"]["counted_w1d"].append({"rep": rep, **run.pop("lag_counted")})

    def wait_counts_exact(self, chats: list[seeding.ChatInfo]) -> float | None:
        """Seconds until each of ``chats`` has a messages_count equal to its live messages (None:
        not within ``drain_wait_s``).  The DB baseline's chats are left out: its rows bypass the
        pipeline on purpose."""
        started = time.monotonic()
        ids = tuple(chat.chat_id for chat in chats)
        query = (
            "SELECT COUNT(*) FROM chats c WHERE c.id IN %s AND c.messages_count <> "
            "(SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id AND m.deleted_at IS NULL)"
        )
        while time.monotonic() - started < self.plan.drain_wait_s:
            if self.db_query(query, (ids,))[0][0] == 0:
                return round(time.monotonic() - started, 2)
            time.sleep(0.1)
        return None

    def do_w2(self) -> None:
        self.scripts()
        self.warmup(self.web_url, self.w2_script)
        for rep in range(1, self.plan.repeats + 1):
            self.record(
                "baseline.http_get",
                self.attempt(
                    "baseline.http_get",
                    rep,
                    lambda: self.http_run(self.trivial_url, self.w2_script, "HTTP baseline GET", self.plan.baseline_s),
                ),
            )
            self.record(
                "W2",
                self.attempt("W2", rep, lambda: self.http_run(self.web_url, self.w2_script, "W2 read", self.plan.w2_s)),
            )

    def do_w3(self) -> None:
        for key, chat in (("W3.small", self.seed.search_small), ("W3.large", self.seed.search_large)):
            script = wrkmod.write_script(
                self.out / f"{key.replace('.', '_')}.lua",
                f"{key} ({chat.messages} messages)",
                seeding.search_requests(chat),
            )
            self.warmup(self.web_url, script)
            for rep in range(1, self.plan.repeats + 1):
                self.record(
                    key,
                    self.attempt(
                        key,
                        rep,
                        lambda key=key, chat=chat, script=script: self.http_run(
                            self.web_url,
                            script,
                            f"{key} {chat.messages:,}",
                            self.plan.w3_s,
                            timeout_s=self.plan.search_timeout_s,
                        ),
                    ),
                )
            self.results["search_queries"][key] = self.unloaded_queries(chat)

    def unloaded_queries(self, chat: seeding.ChatInfo, times: int = 5) -> list[dict]:
        """Each query of the mix alone (no other load): which kind of query costs what."""
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=30)
        rows = []
        try:
            for (kind, q), (_, path, _) in zip(seeding.search_queries(), seeding.search_requests(chat), strict=True):
                latencies = []
                hits = None
                for _ in range(times):
                    t0 = time.perf_counter()
                    conn.request("GET", path)
                    response = conn.getresponse()
                    body = response.read()
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if response.status == 200:
                        hits = len(json.loads(body)["data"])
                rows.append({"kind": kind, "q": q, "hits_on_page": hits, "ms": distribution(latencies)})
        finally:
            conn.close()
        return rows

    def do_profile(self) -> None:
        self.scripts()
        self.ready()
        duration = self.plan.w1_s
        roles = mon.role_processes(self.stack.pids(), with_services=False)
        targets = [(role, procs[0].pid, True) for role, procs in roles.items() if role.startswith("web-worker")]
        targets += [(role, roles[role][0].pid, False) for role in ("relay", "counters") if role in roles]
        recordings = [
            profiling.record(
                role, pid, self.out / f"profile-{role}.speedscope.json", duration, self.plan.profile_rate, gil=gil
            )
            for role, pid, gil in targets
        ]
        time.sleep(1.0)  # py-spy attaches
        run = self.http_run(self.web_url, self.w1_script, "W1 under py-spy", duration)
        profile: dict[str, Any] = {
            "run": _brief(run),
            "cpu": run["cpu"],
            "rate_hz": self.plan.profile_rate,
            "files": {},
            "summaries": {},
            "errors": {},
        }
        done: dict[str, Path] = {}
        for recording in recordings:
            error = profiling.finish(recording)
            if error:
                profile["errors"][recording.name] = error
            else:
                done[recording.name] = recording.output
                profile["files"][recording.name] = recording.output.name
        web = [path for name, path in done.items() if name.startswith("web-worker")]
        if web:
            profile["summaries"]["web (workers, GIL holder)"] = profiling.summarize(web)
            profiling.flamegraph(web, self.out / "profile-web.svg", "chatsys-web workers during W1 (GIL holder)")
            profile["files"]["web flamegraph"] = "profile-web.svg"
        for name in ("relay", "counters"):
            if name in done:
                profile["summaries"][name] = profiling.summarize([done[name]])
        self.results["profile"] = profile
        self.wait_drained()

    def start_es_double(self) -> str:
        self.es_record = self.out / "es-indexed.tsv"
        self.es_record.touch()
        log_file = open(self.logs / "es-double.log", "ab")
        self.es_double = subprocess.Popen(
            [sys.executable, "-m", "bench.esdouble", "--record", str(self.es_record)],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
        log_file.close()
        url = self.es_double.stdout.readline().decode().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the Elasticsearch double did not start (see {self.logs / 'es-double.log'})")
        return url

    def stop_es_double(self) -> None:
        if self.es_double is not None and self.es_double.poll() is None:
            self.es_double.terminate()
            try:
                self.es_double.wait(10)
            except subprocess.TimeoutExpired:
                self.es_double.kill()
        self.es_double = None

    def do_w4_es(self) -> None:
        self.scripts()
        url = self.start_es_double()
        settings = bench_settings(
            self.plan.base_ini, self.plan.name, **{"search.backend": "elasticsearch", "elasticsearch.url": url}
        )
        es_ini = generate_ini(self.out / "bench-es.ini", self.plan.base_ini, settings, self.web_port, self.plan.threads)
        self.stack.stop("web", "indexer")
        self.stack.start("web", "indexer", ini=es_ini)
        self.ready()
        self.results["meta"]["es_double_url"] = url
        self.warmup(self.web_url, self.w1_script)
        self.wait_drained()
        for rep in range(1, self.plan.repeats + 1):
            run = self.attempt(
                "W4.es_load",
                rep,
                lambda: self.http_run(
                    self.web_url,
                    self.w1_script,
                    "W4 load, ES backend",
                    self.plan.w4_es_s,
                    probes=("counted", "indexed"),
                ),
            )
            run["drained_after_s"] = self.wait_drained()
            if not run.get("spoiled"):
                self.results["lag"]["indexed"].append({"rep": rep, **run.pop("lag_indexed")})
                run["lag_counted_es_run"] = run.pop("lag_counted")["lag_ms"]
            self.record("W4.es_load", run)
        self.stack.stop("web", "indexer")
        self.stop_es_double()

    def do_w5(self) -> None:
        self.stack.stop("web", "counters", "indexer")
        self.wait_drained()
        purge_queues(self.settings)
        chat = self.seed.write_chats[0]
        last_rep_s = 0.0
        for rep in range(1, self.plan.drain_repeats + 1):
            elapsed = time.monotonic() - self.phase_started
            reserve = 20.0  # stopping the stack, cleaning up, writing the report and plot
            if rep > 1 and elapsed + last_rep_s + reserve > self.plan.budget_s:
                note = (
                    f"W5: {rep - 1} of {self.plan.drain_repeats} runs: another ({last_rep_s:.0f}s) would end "
                    f"the benchmark past its {self.plan.budget_s:.0f}s budget ({elapsed:.0f}s elapsed)"
                )
                log.warning(note)
                self.results.setdefault("budget_cuts", []).append(note)
                break
            rep_started = time.monotonic()

            def measure(rep=rep) -> dict:
                tag = f"{rep}-{time.time_ns()}"
                pids = self.pids()
                before = mon.cpu_snapshot(pids)
                try:
                    result = w5.drain(self.conn, tag, self.plan.drain_rows, chat, self.plan.drain_timeout_s)
                    result["cpu"] = mon.cpu_delta(before, mon.cpu_snapshot(pids))
                    result["bottleneck"] = mon.bottleneck(result["cpu"])
                finally:
                    w5.delete_rows(self.conn, tag)
                    result_purged = purge_queues(self.settings)
                result["purged_from_queues"] = result_purged
                log.info(
                    "  %-22s %8.0f events/s (span rate %s) in %.1fs, complete %s, relay %.2f cores",
                    "W5 drain",
                    result["events_per_s"],
                    f"{result['events_per_s_span']:.0f}" if result["events_per_s_span"] else "–",
                    result["wall_s"],
                    result["complete"],
                    result["cpu"]["cores_by_role"].get("relay", 0.0),
                )
                return result

            self.record("W5", self.attempt("W5", rep, measure, web=False))
            last_rep_s = time.monotonic() - rep_started


def _brief(run: dict) -> dict:
    keys = ("throughput", "error_total", "latency_ms", "events_per_s", "first_error")
    return {k: run[k] for k in keys if k in run}


def git_describe() -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }
