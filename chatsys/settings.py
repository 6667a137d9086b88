"""Settings: defaults for the local machine, ``CHATSYS_*`` environment overrides, validation.

Every process (web, relay, workers, maintenance scripts, Alembic) reads its settings through
:func:`resolve_settings`, so the same ini plus the same environment always mean the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Environment variables may override URLs and secrets only (the configuration contract).
ENV_OVERRIDES = {
    "CHATSYS_DATABASE_URL": "sqlalchemy.url",
    "CHATSYS_REDIS_URL": "redis.url",
    "CHATSYS_AMQP_URL": "amqp.url",
    "CHATSYS_ELASTICSEARCH_URL": "elasticsearch.url",
    "CHATSYS_SEARCH_BACKEND": "search.backend",
}

DEFAULTS: dict[str, Any] = {
    "sqlalchemy.url": "mysql+pymysql://root@127.0.0.1:3306/chatsys?charset=utf8mb4",
    "sqlalchemy.pool_size": "10",
    "sqlalchemy.max_overflow": "10",
    "sqlalchemy.pool_recycle": "3600",
    "sqlalchemy.pool_timeout": "5",
    "db.connect_timeout": "3",
    # "off": plain connections unless the URL asks for TLS (ssl_ca=…: verified, required);
    # "preferred": PyMySQL's own default, unverified TLS when the server offers it.
    "db.tls": "off",
    "redis.url": "redis://127.0.0.1:6379/0",
    "redis.key_prefix": "chatsys",
    "redis.socket_timeout": "2",
    "amqp.url": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "amqp.namespace": "chatsys",
    "elasticsearch.url": "http://127.0.0.1:9200",
    "elasticsearch.index": "chatsys-messages",
    "elasticsearch.timeout": "5",
    "search.backend": "database",
    "chatsys.max_body_bytes": "65536",
    "chatsys.lookup_cache_size": "100000",
    # Seconds between the writes of a web worker's access-log lines (chatsys.accesslog).
    "chatsys.access_log_interval": "0.2",
    "retry.attempts": "5",
}

SEARCH_BACKENDS = ("database", "elasticsearch")
DB_TLS_MODES = ("off", "preferred")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


def resolve_settings(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict:
    """Return a new settings dict: defaults, then the ini, then ``CHATSYS_*`` overrides."""
    environ = os.environ if environ is None else environ
    resolved = dict(DEFAULTS)
    resolved.update({k: v for k, v in settings.items() if v is not None})
    for env_name, key in ENV_OVERRIDES.items():
        value = environ.get(env_name)
        if value:
            resolved[key] = value
    validate(resolved)
    return resolved


def as_int(settings: Mapping[str, Any], key: str, minimum: int | None = None) -> int:
    """Read an integer setting, raising :class:`SettingsError` naming ``key`` if it is wrong."""
    raw = settings.get(key)
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise SettingsError(f"setting {key!r} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"setting {key!r} must be >= {minimum}, got {value}")
    return value


def as_float(settings: Mapping[str, Any], key: str) -> float:
    raw = settings.get(key)
    try:
        return float(str(raw).strip())
    except (TypeError, ValueError):
        raise SettingsError(f"setting {key!r} must be a number, got {raw!r}") from None


def validate(settings: Mapping[str, Any]) -> None:
    url = str(settings.get("sqlalchemy.url", ""))
    if not url.startswith("mysql+pymysql://"):
        raise SettingsError(f"setting 'sqlalchemy.url' must be a mysql+pymysql:// URL, got {url!r}")
    for key, schemes in (
        ("redis.url", ("redis://", "rediss://", "unix://")),
        ("amqp.url", ("amqp://", "amqps://")),
        ("elasticsearch.url", ("http://", "https://")),
    ):
        value = str(settings.get(key, ""))
        if not value.startswith(schemes):
            raise SettingsError(f"setting {key!r} must start with one of {schemes}, got {value!r}")
    backend = settings.get("search.backend")
    if backend not in SEARCH_BACKENDS:
        raise SettingsError(f"setting 'search.backend' must be one of {SEARCH_BACKENDS}, got {backend!r}")
    if settings.get("db.tls") not in DB_TLS_MODES:
        raise SettingsError(f"setting 'db.tls' must be one of {DB_TLS_MODES}, got {settings.get('db.tls')!r}")
    as_int(settings, "chatsys.max_body_bytes", minimum=1024)
    as_int(settings, "chatsys.lookup_cache_size", minimum=0)
    as_int(settings, "retry.attempts", minimum=1)
    if not 0 < as_float(settings, "chatsys.access_log_interval") <= 60:
        raise SettingsError("setting 'chatsys.access_log_interval' must be more than 0 and at most 60 seconds")
    as_int(settings, "sqlalchemy.pool_size", minimum=1)
    for key in ("amqp.namespace", "redis.key_prefix", "elasticsearch.index"):
        value = str(settings.get(key, ""))
        if not value or not all(c.isalnum() or c in "-_." for c in value):
            raise SettingsError(f"setting {key!r} must be a non-empty name of letters, digits, '-', '_', '.'")
