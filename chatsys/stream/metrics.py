"""The gateway's Prometheus metrics, in a registry of its own (served at its ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

OPEN = Gauge("chatsys_stream_connections", "Open event streams", ["scope"], registry=registry)
ACCEPTED = Counter("chatsys_stream_opened_total", "Event streams opened", ["scope"], registry=registry)
DISCONNECTS = Counter(
    "chatsys_stream_disconnects_total",
    "Event streams ended, by reason (client, slow, stopping, broker)",
    ["reason"],
    registry=registry,
)
# Fine below 0.5 s, where the fan-out latency target (p99 <= 250 ms) lies: the benchmark reads
# its stage breakdown from these buckets.
LAG_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1, 2.5, 5, 10, 30, 60)
LAG = Histogram(
    "chatsys_stream_delivery_lag_seconds",
    "From an event's commit (its occurred_at) to its bytes being handed to the last client's socket",
    buckets=LAG_BUCKETS,
    registry=registry,
)
TAIL_LAG = Histogram(
    "chatsys_stream_tail_lag_seconds",
    "From an event's commit (its occurred_at) to the live tail reading it from the stream queue "
    "(the outbox relay and the broker)",
    buckets=LAG_BUCKETS,
    registry=registry,
)
FANOUT = Histogram(
    "chatsys_stream_fanout_seconds",
    "From the live tail reading an event to its bytes being handed to the last subscriber's socket "
    "(the gateway's own share of the delivery lag)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1),
    registry=registry,
)
EVENTS = Counter("chatsys_stream_events_total", "Stream messages read by the live tail", registry=registry)
CATCHUPS = Counter(
    "chatsys_stream_catchups_total",
    "Resumes that read the stream's history, by outcome",
    ["outcome"],
    registry=registry,
)
RESETS = Counter("chatsys_stream_resets_total", "reset events sent (position past retention)", registry=registry)
HEAD = Gauge("chatsys_stream_head_offset", "The last stream offset the live tail has read", registry=registry)
BROKER_UP = Gauge(
    "chatsys_stream_broker_connected", "1 while the live tail is attached to the stream", registry=registry
)
