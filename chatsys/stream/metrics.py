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
LAG = Histogram(
    "chatsys_stream_delivery_lag_seconds",
    "From an event's commit (its occurred_at) to its bytes being handed to a client's socket",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
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
