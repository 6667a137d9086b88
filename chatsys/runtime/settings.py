"""Every setting of every chatsys process, in one table: its default, its type and its check.

The web, the relay, the workers, the maintenance scripts and Alembic all read their settings
through :func:`resolve_settings`: defaults for the local machine, then the ini's ``[app:main]``,
then the ``CHATSYS_*`` environment overrides (URLs and the search backend only, the
configuration contract).  Each value is parsed here, once, into its Python type; a wrong value, or
an unknown key under one of chatsys's own prefixes (a typo that would otherwise be ignored), stops
the process at start with a message that names the key, and the environment variable when the
value came from one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Environment variables may override URLs and the search backend only (the configuration contract).
ENV_OVERRIDES = {
    "CHATSYS_DATABASE_URL": "sqlalchemy.url",
    "CHATSYS_REDIS_URL": "redis.url",
    "CHATSYS_AMQP_URL": "amqp.url",
    "CHATSYS_ELASTICSEARCH_URL": "elasticsearch.url",
    "CHATSYS_SEARCH_BACKEND": "search.backend",
}

# Keys under these prefixes belong to chatsys: one that is not in SETTINGS is a mistake.
OWN_PREFIXES = (
    "sqlalchemy.",
    "db.",
    "redis.",
    "amqp.",
    "elasticsearch.",
    "search.",
    "chatsys.",
    "relay.",
    "worker.",
    "stream.",
)

SEARCH_BACKENDS = ("database", "elasticsearch")
DB_TLS_MODES = ("off", "preferred")


class SettingsError(ValueError):
    """A setting is unknown, missing or malformed; the message names the key."""


Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Setting:
    default: str
    parse: Parser
    help: str = ""


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be an integer") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def seconds(minimum: float = 0.0, maximum: float | None = None, allow_zero: bool = False) -> Parser:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number of seconds") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number of seconds")
        if value < minimum or (value == minimum and not allow_zero):
            raise ValueError(f"must be more than {minimum:g}" if not allow_zero else f"must be at least {minimum:g}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum:g}")
        return value

    return parse


def fraction(raw: str) -> float:
    """A share: more than 0, at most 1."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number more than 0 and at most 1") from None
    if not 0.0 < value <= 1.0:  # NaN fails too
        raise ValueError("must be more than 0 and at most 1")
    return value


def url(*schemes: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value.startswith(schemes):
            raise ValueError(f"must start with one of {', '.join(schemes)}")
        return value

    return parse


def choice(*choices: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def name(raw: str) -> str:
    value = raw.strip()
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value):
        raise ValueError("must be a non-empty name of letters, digits, '-', '_' and '.'")
    return value


def _max_age(raw: str) -> str:
    """RabbitMQ's x-max-age: a positive whole number and one of the units Y M D h m s."""
    value = raw.strip()
    if len(value) < 2 or value[-1] not in "YMDhms" or not value[:-1].isdigit() or int(value[:-1]) < 1:
        raise ValueError("must be a positive whole number followed by Y, M, D, h, m or s (for example 24h)")
    return value


def events_base(raw: str) -> str:
    """Where a browser reaches the event-stream gateway: empty (no stream), a path on the page's
    own origin ("/" behind a proxy that routes …/events there) or an http(s) origin, with an
    optional path prefix; no query, fragment or credentials (the page appends the /v1 path)."""
    value = raw.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError("must name a host, e.g. http://127.0.0.1:6545")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold credentials: the browser's page would show them")
    elif parts.scheme or not value.startswith("/") or value.startswith("//"):
        raise ValueError("must be empty, a path starting with one '/', or an http:// or https:// URL")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("must have no query string or fragment")
    return value.rstrip("/") or "/"


def origins(raw: str) -> str:
    """Space-separated browser origins (``scheme://host[:port]``, nothing after it), checked."""
    found = []
    for value in raw.split():
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or value.rstrip("/") != value:
            raise ValueError(f"{value!r} is not an origin such as http://127.0.0.1:6543")
        if parts.path or parts.query or parts.fragment or parts.username is not None:
            raise ValueError(f"{value!r} is not an origin: nothing may follow the host and port")
        found.append(value)
    return " ".join(found)


def index_name(raw: str) -> str:
    """An Elasticsearch index or alias name: lower case, not starting with '-', '_', '+' or '.'."""
    value = name(raw)
    if value != value.lower() or value[0] in "-_+.":
        raise ValueError("must be lower case and not start with '-', '_', '+' or '.'")
    return value


SETTINGS: dict[str, Setting] = {
    # MySQL (MariaDB 10.6+ or MySQL 8): the URL and SQLAlchemy's pool, per engine.
    "sqlalchemy.url": Setting("mysql+pymysql://root@127.0.0.1:3306/chatsys?charset=utf8mb4", url("mysql+pymysql://")),
    "sqlalchemy.pool_size": Setting("10", integer(1)),
    "sqlalchemy.max_overflow": Setting("10", integer(0)),
    "sqlalchemy.pool_recycle": Setting("3600", integer(-1)),
    "sqlalchemy.pool_timeout": Setting("5", seconds()),
    "db.connect_timeout": Setting("3", integer(1)),
    # A request blocked on a row lock fails with a 503 after this long, well before a client or
    # PyMySQL's read timeout gives up on it, and the server abandons the statement too.
    "db.lock_wait_timeout": Setting("5", integer(1, 3600)),
    # How long PyMySQL waits for any answer from the server (a vanished server must not hang a
    # thread forever); longer than the lock wait, so a lock wait ends as MySQL's error, not ours.
    "db.read_timeout": Setting("30", integer(1)),
    # "off": plain connections unless the URL asks for TLS (ssl_ca=…: verified, required);
    # "preferred": PyMySQL's own default, unverified TLS when the server offers it.
    "db.tls": Setting("off", choice(*DB_TLS_MODES)),
    # Redis: the number allocator (and /readyz's write check).
    "redis.url": Setting("redis://127.0.0.1:6379/0", url("redis://", "rediss://", "unix://")),
    "redis.key_prefix": Setting("chatsys", name),
    "redis.socket_timeout": Setting("2", seconds()),
    "redis.max_connections": Setting("64", integer(1)),
    # RabbitMQ: the events exchange, the consumers' queues and their dead-letter queues.
    "amqp.url": Setting("amqp://guest:guest@127.0.0.1:5672/%2F", url("amqp://", "amqps://")),
    "amqp.namespace": Setting("chatsys", name),
    "amqp.delivery_limit": Setting("5", integer(1, 1000)),
    "amqp.heartbeat": Setting("30", integer(0, 3600)),
    # How long the event stream keeps events for clients to resume from (x-max-age), and its
    # size bound (x-max-length-bytes), whichever is reached first.
    "amqp.stream_max_age": Setting("24h", _max_age),
    "amqp.stream_max_bytes": Setting(str(1 << 30), integer(1 << 20)),
    # The stream's segment size (x-stream-max-segment-size-bytes); retention drops whole segments.
    # 0: not sent, RabbitMQ's default (500 MB).  Only a new stream takes it: RabbitMQ refuses to
    # redeclare an existing stream with other arguments.
    "amqp.stream_segment_bytes": Setting("0", integer(0)),
    # Search: where the search endpoint and the indexer go.
    "search.backend": Setting("database", choice(*SEARCH_BACKENDS)),
    "elasticsearch.url": Setting("http://127.0.0.1:9200", url("http://", "https://")),
    "elasticsearch.index": Setting("chatsys-messages", index_name),
    "elasticsearch.timeout": Setting("5", seconds()),
    # The database search backend's bounds: messages one request examines at most (a page may
    # come back short, with a cursor to go on), and the time one statement may take (MariaDB's
    # max_statement_time, MySQL's max_execution_time).
    "search.database_max_scan": Setting("20000", integer(100, 10_000_000)),
    "search.database_time_limit": Setting("2", seconds(minimum=0.01, maximum=300)),
    # The web.
    "chatsys.max_body_bytes": Setting("65536", integer(1024, 1 << 20)),
    # How many items a bare-array list of the original API holds at most (the rest: ?before=).
    "chatsys.original_list_limit": Setting("1000", integer(1, 100_000)),
    # Seconds a /readyz result is reused, however many probes ask.
    "chatsys.ready_cache_seconds": Setting("1", seconds(allow_zero=True, maximum=60)),
    # Seconds the outbox gauges of /metrics are reused, however many scrapers ask.
    "chatsys.metrics_cache_seconds": Setting("5", seconds(allow_zero=True, maximum=300)),
    # The /demo page's live updates: the event-stream gateway's base URL as the browser reaches it
    # (its …/events paths are appended); empty: the page polls the REST API instead.
    "chatsys.demo_events_url": Setting("", events_base),
    # The outbox relay.
    "relay.batch_size": Setting("1000", integer(1, 100_000)),
    "relay.in_flight": Setting("2", integer(1, 16)),
    "relay.max_attempts": Setting("10", integer(1)),
    "relay.confirm_timeout": Setting("10", seconds()),
    "relay.idle_max": Setting("0.05", seconds()),
    "relay.linger": Setting("0.02", seconds(allow_zero=True)),
    # The purge of published outbox rows (chatsys.outbox.purge, a thread of the relay): rows older
    # than relay.retention go, relay.purge_batch per short transaction, back to back while a full
    # batch is due, then every relay.purge_interval seconds.
    "relay.retention": Setting("3600", seconds(allow_zero=True)),
    "relay.purge_interval": Setting("10", seconds()),
    "relay.purge_batch": Setting("250", integer(1, 100_000)),
    # Through a backlog, the share of its time the purge spends deleting (it rests the rest)...
    "relay.purge_duty": Setting("0.5", fraction),
    # ... and the rows a second it deletes at most (0: no such bound): twice what 1,000 creates/s
    # publish, so a backlog shrinks by 1,000 rows/s even then (docs/decisions.md, issue 27).
    "relay.purge_rate": Setting("2000", integer(0, 10_000_000)),
    "relay.idempotency_retention": Setting("86400", seconds()),
    "relay.backoff_base": Setting("0.5", seconds()),
    "relay.backoff_max": Setting("300", seconds()),
    # Broker trouble (nacks, timeouts, a blocked or lost connection) never spends an attempt: the
    # relay pauses at most this long and tries again.
    "relay.transient_backoff_max": Setting("10", seconds()),
    # A parked row is tried again after this long (jittered: half to all of it), so that any outage
    # heals with no one acting.
    "relay.parked_retry": Setting("1800", seconds()),
    # Nothing but nacks for this long: open a new connection (rabbitmq-server#12206).
    "relay.nacked_reconnect": Setting("30", seconds()),
    # The consumers.
    "worker.prefetch": Setting("200", integer(1, 65535)),
    "worker.batch_size": Setting("100", integer(1, 10_000)),
    "worker.retry_pause": Setting("0.5", seconds()),
    "worker.max_pause": Setting("30", seconds()),
    "worker.max_rounds": Setting("5", integer(1)),
    # Messages the purger erases per transaction (and tombstones per bulk request).
    "worker.purge_batch": Setting("1000", integer(1, 10_000)),
    # The stream gateway (chatsys-stream): where it listens, and how it treats its clients.
    "stream.host": Setting("127.0.0.1", lambda raw: raw.strip() or "127.0.0.1"),
    "stream.port": Setting("6545", integer(0, 65535)),
    # A comment line (and the latest position) on every idle stream this often, for proxies.
    "stream.keepalive": Setting("15", seconds(maximum=3600)),
    # What a client may have waiting, unsent, before it is cut off as too slow (it resumes).
    "stream.client_buffer_bytes": Setting(str(1 << 20), integer(1024)),
    # The reconnection delay a client is told (SSE ``retry:``), in milliseconds.
    "stream.retry_ms": Setting("2000", integer(0, 3_600_000)),
    # Stream messages the broker may send ahead of the gateway's acknowledgement (basic.qos).
    "stream.prefetch": Setting("1000", integer(1, 65535)),
    # Resuming clients read the stream's history at most this many at a time.
    "stream.catchup_concurrency": Setting("16", integer(1, 1000)),
    # Seconds a new stream may wait for the gateway's first contact with the broker (else 503).
    "stream.ready_timeout": Setting("10", seconds()),
    # Pages on these origins may open streams from the browser (CORS): the web's own origin when
    # the gateway listens on another port (make run); empty behind a proxy that serves both.
    "stream.allow_origins": Setting("", origins),
    # pyramid_retry: how often a request that hit a real race (a taken number, a deadlock) runs.
    "retry.attempts": Setting("5", integer(1, 20)),
}


def resolve_settings(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A new dict: every key of ``settings`` plus every chatsys setting, parsed.

    Values from the environment override the ini.  Already parsed values (a dict this function
    returned, handed back with changes) are accepted as they are, after the same checks.
    """
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = dict(settings)
    sources: dict[str, str] = {}
    for env_name, key in ENV_OVERRIDES.items():
        value = environ.get(env_name)
        if value:
            resolved[key] = value
            sources[key] = env_name
    for key in resolved:
        if key.startswith(OWN_PREFIXES) and key not in SETTINGS:
            raise SettingsError(f"unknown setting {key!r}: see chatsys/runtime/settings.py for the settings there are")
    for key, setting in SETTINGS.items():
        raw = resolved.get(key)
        if raw is None or raw == "":
            raw = setting.default
        try:
            resolved[key] = setting.parse(str(raw))
        except ValueError as exc:
            where = f" (from {sources[key]})" if key in sources else ""
            raise SettingsError(f"setting {key!r}{where} {exc}, got {raw!r}") from None
    return resolved
