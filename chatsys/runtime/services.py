"""``configure(settings)``: the engines and clients of any chatsys process, built one way.

The web keeps its :class:`Services` in the registry; the relay, the workers and the maintenance
scripts build theirs from the ini directly (:func:`chatsys.runtime.process.load`), without a WSGI
application.  Each client is built on first use, so a process pays only for what it touches (a
counters worker never connects to Elasticsearch).  Build what a threaded process needs before its
threads start: the web does, in :func:`chatsys.web.includeme`.

Both MySQL engines run at READ COMMITTED: the relay's ``SKIP LOCKED`` claims and the allocator's
reads of the numbering high-water marks must see the latest committed rows, and inserts avoid the
gap locks of REPEATABLE READ.  Every connection's lock waits are bounded by
``db.lock_wait_timeout`` (``SET SESSION innodb_lock_wait_timeout`` when it connects).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine, create_engine

from chatsys.runtime.settings import resolve_settings

if TYPE_CHECKING:
    import pika
    from redis import Redis

    from chatsys.broker.topology import Topology
    from chatsys.numbering import RedisAllocator
    from chatsys.search.interfaces import ISearch

ENGINE_KEYS = ("pool_size", "max_overflow", "pool_recycle", "pool_timeout")


def connect_args(settings: Mapping[str, Any]) -> dict[str, Any]:
    """PyMySQL's connection arguments beyond the URL's."""
    args: dict[str, Any] = {
        "connect_timeout": settings["db.connect_timeout"],
        "read_timeout": settings["db.read_timeout"],
        "write_timeout": settings["db.read_timeout"],
    }
    # Left alone, PyMySQL tries unverified TLS on every connection and builds an SSL context
    # from the system's CA bundle each time: 36 ms of CPU per connection instead of 0.4 ms.
    # TLS is asked for in the URL (ssl_ca=…, verified and required); db.tls = preferred restores
    # PyMySQL's default.  (docs/decisions.md, "Database connections are plain unless TLS is asked for".)
    wants_tls = any(key.startswith("ssl") for key in make_url(settings["sqlalchemy.url"]).query)
    if settings["db.tls"] == "off" and not wants_tls:
        args["ssl_disabled"] = True
    return args


def make_engine(settings: Mapping[str, Any], **options: Any) -> Engine:
    """A MySQL engine from the ``sqlalchemy.*`` and ``db.*`` settings (``options`` override)."""
    engine = create_engine(
        settings["sqlalchemy.url"],
        **{
            **{key: settings[f"sqlalchemy.{key}"] for key in ENGINE_KEYS},
            "isolation_level": "READ COMMITTED",
            # Connection.close() already rolls back a transaction left open, so the pool's own
            # ROLLBACK on every check-in (after each commit, too) is a round trip for nothing
            # (docs/decisions.md, "No pre-ping, no pool reset on return").
            "pool_reset_on_return": None,
            "connect_args": connect_args(settings),
            **options,
        },
    )
    lock_wait = int(settings["db.lock_wait_timeout"])

    @event.listens_for(engine, "connect")
    def bound_lock_waits(dbapi_connection, connection_record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_wait}")

    return engine


class Services:
    """The clients of one process, each built once, on first use."""

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = settings

    @functools.cached_property
    def engine(self) -> Engine:
        """Transactions that write (the web's pyramid_tm, the relay, the consumers)."""
        return make_engine(self.settings)

    @functools.cached_property
    def read_engine(self) -> Engine:
        """Reads that change nothing: autocommit, so a SELECT is one round trip, with no BEGIN and
        no ROLLBACK when the session ends or the connection goes back to the pool
        (``skip_autocommit_rollback``: safe because no transaction is ever open on these
        connections)."""
        return make_engine(self.settings, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)

    @functools.cached_property
    def redis(self) -> Redis:
        from redis import Redis

        timeout = self.settings["redis.socket_timeout"]
        return Redis.from_url(
            self.settings["redis.url"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            max_connections=self.settings["redis.max_connections"],
        )

    @functools.cached_property
    def allocator(self) -> RedisAllocator:
        from chatsys.numbering import RedisAllocator

        return RedisAllocator(self.redis, self.engine, self.settings["redis.key_prefix"])

    @functools.cached_property
    def topology(self) -> Topology:
        from chatsys.broker.topology import Topology

        settings = self.settings
        return Topology(
            settings["amqp.namespace"],
            settings["amqp.delivery_limit"],
            settings["amqp.stream_max_age"],
            settings["amqp.stream_max_bytes"],
        )

    def amqp_parameters(self, connection_name: str) -> pika.URLParameters:
        """Parameters of a new broker connection, named for the management UI."""
        from chatsys.broker import connection_parameters

        return connection_parameters(self.settings, connection_name)

    @functools.cached_property
    def search(self) -> ISearch:
        if self.settings["search.backend"] == "elasticsearch":
            from chatsys.search.elasticsearch import ElasticsearchSearch

            return ElasticsearchSearch.from_settings(self.settings)
        from chatsys.search.database import DatabaseSearch

        return DatabaseSearch.from_settings(self.settings)  # searches through a session it is given

    def close(self) -> None:
        """Release pooled connections (engines, Redis) that were built."""
        for name in ("engine", "read_engine"):
            if name in self.__dict__:
                self.__dict__[name].dispose()
        if "redis" in self.__dict__:
            self.redis.close()


def configure(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Services:
    """Resolve and check ``settings`` (an ini's ``[app:main]``), then the process's services."""
    return Services(resolve_settings(settings, environ))
