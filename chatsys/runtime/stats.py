"""Throughput and failure counts for long-running processes: logged periodically and exported
as Prometheus counters (served on ``metrics.port`` when that setting is given)."""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally

from prometheus_client import Counter

EVENTS = Counter(
    "chatsys_pipeline_events_total",
    "Events handled by the relay and the consumers, by process role and outcome.",
    ["role", "outcome"],
)


class RateLog:
    """Counts outcomes; every ``interval`` seconds logs the totals and rates since the last line."""

    def __init__(self, role: str, logger: logging.Logger, interval: float = 30.0):
        self.role = role
        self.log = logger
        self.interval = interval
        self.window: Tally[str] = Tally()
        self.total: Tally[str] = Tally()
        self.since = time.monotonic()

    def add(self, **outcomes: int) -> None:
        for outcome, count in outcomes.items():
            if count:
                self.window[outcome] += count
                self.total[outcome] += count
                EVENTS.labels(self.role, outcome).inc(count)
        now = time.monotonic()
        if now - self.since >= self.interval and self.window:
            elapsed = now - self.since
            rates = ", ".join(f"{k} {v} ({v / elapsed:.1f}/s)" for k, v in sorted(self.window.items()))
            self.log.info("%s: %s in the last %.0fs", self.role, rates, elapsed)
            self.window.clear()
            self.since = now
