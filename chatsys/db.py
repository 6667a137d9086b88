"""Engines, sessions and ``request.dbsession`` (pyramid_tm + zope.sqlalchemy for writes).

Two engines per process, built once and kept in the registry, both at READ COMMITTED semantics:

- the *write* engine: requests that change something run in one pyramid_tm transaction, which
  commits or aborts the session together with everything else (READ COMMITTED: the relay's
  ``SKIP LOCKED`` claims and the allocator's ``MAX(number)`` reads must see the latest committed
  rows, and inserts avoid the gap locks of REPEATABLE READ);
- the *read* engine, in autocommit: GET and HEAD requests change nothing, so they skip the
  transaction machinery entirely — each SELECT is one round trip, with no BEGIN, no ROLLBACK when
  the connection goes back to the pool, and no zope data manager (the benchmark showed those
  costing more than the query itself).  Their ``request.dbsession`` is a :class:`Reader`, not an
  ORM session.

There is no pre-ping on checkout and no reset on check-in (a round trip each, per request): a
connection that died with its server fails once, SQLAlchemy then invalidates the whole pool, and
the next requests reconnect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import zope.sqlalchemy
from sqlalchemy import engine_from_config, make_url
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.orm import Session, sessionmaker

from chatsys.settings import as_int

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def connect_args(settings: Mapping[str, Any], url: str) -> dict[str, Any]:
    """PyMySQL's connection arguments beyond the URL's."""
    args: dict[str, Any] = {
        "connect_timeout": as_int(settings, "db.connect_timeout", minimum=1),
        # A server that vanishes mid-query must not hang a request thread forever.
        "read_timeout": 30,
        "write_timeout": 30,
    }
    # Left alone, PyMySQL tries unverified TLS on every connection and builds an SSL context
    # from the system's CA bundle each time: 36 ms of CPU per connection instead of 0.4 ms, paid
    # by every request thread of a starting worker and on every reconnect after an outage. TLS
    # is asked for in the URL (ssl_ca=…, verified and required); db.tls = preferred restores
    # PyMySQL's default.
    wants_tls = any(key.startswith("ssl") for key in make_url(url).query)
    if settings.get("db.tls", "off") == "off" and not wants_tls:
        args["ssl_disabled"] = True
    return args


def get_engine(settings: Mapping[str, Any], prefix: str = "sqlalchemy.", **options: Any) -> Engine:
    """Build an engine from the ``sqlalchemy.*`` settings (``options`` override the defaults)."""
    config = {k: v for k, v in settings.items() if k.startswith(prefix)}
    return engine_from_config(
        config,
        prefix=prefix,
        **{
            "isolation_level": "READ COMMITTED",
            # Connection.close() already rolls back a transaction left open, so the pool's own
            # ROLLBACK on every check-in (after each commit, too) is a round trip for nothing.
            "pool_reset_on_return": None,
            "connect_args": connect_args(settings, config[prefix + "url"]),
            **options,
        },
    )


def get_read_engine(settings: Mapping[str, Any]) -> Engine:
    """The autocommit engine of read-only requests.

    No transaction is ever open on its connections, so the ROLLBACK that SQLAlchemy would send
    when a :class:`Reader` closes its connection and it goes back to the pool is a round trip for nothing:
    this engine's dialect (its own instance) skips it.
    """
    engine = get_engine(settings, isolation_level="AUTOCOMMIT")
    engine.dialect.do_rollback = lambda dbapi_connection: None
    return engine


class Reader:
    """A read-only request's ``request.dbsession``: Core statements on one autocommit connection.

    Reads run column selects only, so they need neither the ORM session's identity map nor its
    transaction states: opening a session, taking its connection and closing it cost 22 µs,
    against 5 µs for the connection alone (timeit), about 5 % of a read.  It offers the part of
    ``Session`` that reads use, ``execute`` and ``connection``; ORM methods (``get``, ``add``,
    ``flush``) are absent on purpose, since a read has nothing to load into a session or flush.
    The connection is checked out on first use and returned by :meth:`close`.
    """

    __slots__ = ("_engine", "_connection")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def execute(self, statement, params=None) -> Result:
        return self.connection().execute(statement, params)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def get_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session_factory(engine: Engine) -> sessionmaker:
    """Sessions that join the thread's current transaction (pyramid_tm's default manager).

    Registered once on the factory rather than on every session: attaching zope.sqlalchemy's
    event listeners per session was a measurable share of each request.
    """
    factory = get_session_factory(engine)
    zope.sqlalchemy.register(factory)
    return factory


def transactional(request) -> bool:
    """pyramid_tm's activation hook: a transaction for every request that may change something."""
    return request.method not in SAFE_METHODS


def includeme(config) -> None:
    settings = config.get_settings()
    settings["tm.activate_hook"] = transactional
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    engine = get_engine(settings)
    read_engine = get_read_engine(settings)
    config.registry["db_engine"] = engine
    config.registry["db_read_engine"] = read_engine
    config.registry["dbsession_factory"] = get_tm_session_factory(engine)

    def dbsession(request) -> Session | Reader:
        # Scripts and tests can inject their own session with request.environ["app.dbsession"].
        session = request.environ.get("app.dbsession")
        if session is not None:
            return session
        if request.environ.get("tm.active"):
            return request.registry["dbsession_factory"](info={"request": request})
        reader = Reader(request.registry["db_read_engine"])
        request.add_finished_callback(lambda request: reader.close())
        return reader

    config.add_request_method(dbsession, reify=True)
