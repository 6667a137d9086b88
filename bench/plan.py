"""What a benchmark run does (durations, sizes, repetitions) and the targets it is judged by.

Two presets: :func:`full` (the measured run, under 10 minutes on a 2-core machine) and
:func:`quick` (one short run per workload with small seeds, under 90 seconds, for CI).  Every
field can be overridden from the command line.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Plan:
    quick: bool = False
    name: str = "chatsys_bench"  # database, Redis key prefix and RabbitMQ namespace
    workers: int = os.cpu_count() or 2  # chatsys-web --workers (and the HTTP baseline's)
    threads: int | None = None  # waitress threads per worker; None: the base ini's value
    base_ini: str = "development.ini"
    connections: int = 32  # concurrent connections of every load (and of the DB baseline)
    wrk_threads: int = 1  # one event loop drives 32 connections at these rates; fewer cores taken
    timeout_s: float = 2.0  # a request slower than this is a timeout error (wrk --timeout)
    # W3 on the large chat may legitimately take seconds: a longer timeout keeps its tail in the
    # latency percentiles (wrk leaves timed-out requests out of them).
    search_timeout_s: float = 10.0
    repeats: int = 3
    warmup_s: float = 3.0
    # seconds per measured run
    w1_s: float = 20.0
    w2_s: float = 15.0
    w3_s: float = 10.0
    w4_es_s: float = 15.0
    baseline_s: float = 10.0
    # data
    applications: int = 10
    write_chats: int = 10  # per application: W1 spreads over applications × write_chats chats
    read_chats: int = 10  # per application: seeded for W2
    read_messages: int = 200  # per read chat
    search_small: int = 1_000
    search_large: int = 100_000
    drain_rows: int = 100_000
    drain_repeats: int = 3
    drain_timeout_s: float = 150.0
    # lag probes: POSTs sent by the harness at this rate during W1, polled until counted/indexed
    probe_rate: float = 20.0
    probe_timeout_s: float = 30.0
    poll_interval_s: float = 0.02
    # The whole run must end within this many seconds: W5 (the last phase) does as many of its
    # repetitions as fit, and the report says if it did fewer.
    budget_s: float = 570.0
    # robustness
    retries: int = 2  # extra attempts of a run spoiled by a service restart or outage
    service_timeout_s: float = 120.0
    drain_wait_s: float = 60.0
    profile: bool = False
    profile_rate: int = 50  # Hz per py-spy: the profilers share the two cores with everything else
    keep_db: bool = False
    skip: list[str] = field(default_factory=list)  # workloads to leave out, e.g. ["W5"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def runs(self, workload: str) -> int:
        return self.drain_repeats if workload == "W5" else self.repeats


def full(**overrides: Any) -> Plan:
    return Plan(**overrides)


def quick(**overrides: Any) -> Plan:
    values: dict[str, Any] = dict(
        quick=True,
        repeats=1,
        warmup_s=1.0,
        w1_s=4.0,
        w2_s=2.0,
        w3_s=2.0,
        w4_es_s=3.0,
        baseline_s=2.0,
        read_messages=60,
        search_large=10_000,
        drain_rows=5_000,
        drain_repeats=1,
        drain_timeout_s=60.0,
        probe_timeout_s=20.0,
        retries=1,
        drain_wait_s=30.0,
        # The smoke run checks that everything works, not how fast: a slow (shared, busy) CI
        # machine must not turn a slow answer into an error.
        timeout_s=10.0,
        budget_s=85.0,
    )
    values.update(overrides)
    return Plan(**values)


@dataclass(frozen=True)
class Target:
    """One target of the issue: ``measured <op> threshold``."""

    id: str
    description: str
    op: str  # ">=", "<=", "=="
    threshold: float
    unit: str

    def check(self, measured: float | None) -> bool | None:
        if measured is None:
            return None
        if self.op == ">=":
            return measured >= self.threshold
        if self.op == "<=":
            return measured <= self.threshold
        return measured == self.threshold


# The targets on this 2-core machine (load generator included).
TARGETS: tuple[Target, ...] = (
    Target("W1.throughput", "W1 creates/s (median)", ">=", 1000, "req/s"),
    Target("W1.p99", "W1 p99 latency (median of runs)", "<=", 60, "ms"),
    Target("W1.errors", "W1 errors: non-2xx, timeouts, socket errors (all runs)", "==", 0, "requests"),
    Target("W1.vs_db", "W1 throughput / raw database baseline", ">=", 0.25, "ratio"),
    Target("W2.throughput", "W2 reads/s (median)", ">=", 2000, "req/s"),
    Target("W2.p99", "W2 p99 latency (median of runs)", "<=", 30, "ms"),
    Target("W3.small.p99", "W3 p99 on the 1,000-message chat (median of runs)", "<=", 50, "ms"),
    Target("W4.counted.p99", "W4 201 → counted, p99 of all probes", "<=", 2000, "ms"),
    Target("W4.indexed.p99", "W4 201 → indexed (ES test double), p99 of all probes", "<=", 2000, "ms"),
    Target("W5.events_per_s", "W5 relay drain, events/s (median)", ">=", 5000, "events/s"),
    Target("W6.web_rss", "W6 web peak RSS, all processes summed", "<=", 200, "MB"),
)
