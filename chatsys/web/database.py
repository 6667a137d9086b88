"""``request.dbsession``: a pyramid_tm transaction for requests that may write, an autocommit
session for those that only read.

Requests that change something run in one pyramid_tm transaction (zope.sqlalchemy joins the
session to it), which commits after the view returns or aborts on an error: a row and its outbox
event are committed together or not at all (I1).  GET and HEAD requests change nothing, so they
skip the transaction machinery: theirs is a Core connection of the autocommit engine, each SELECT
one round trip, returned to the pool when the request finishes.  Reads run Core statements only,
which a Connection executes as a Session does (``execute``), without the Session's unit of work
and its transaction states around every statement: 45–75 µs a read request, about 7 % of one.
(docs/decisions.md, "Read-only requests run outside pyramid_tm, on an autocommit engine".)
"""

from __future__ import annotations

import zope.sqlalchemy
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def transactional(request) -> bool:
    """pyramid_tm's activation hook: a transaction for every request that may change something."""
    return request.method not in SAFE_METHODS


def dbsession(request) -> Session | Connection:
    # Scripts and tests can inject their own session with request.environ["app.dbsession"].
    session = request.environ.get("app.dbsession")
    if session is not None:
        return session
    if request.environ.get("tm.active"):
        return request.registry["dbsession_factory"](info={"request": request})
    connection = request.registry["services"].read_engine.connect()
    request.add_finished_callback(lambda request: connection.close())
    return connection


def includeme(config) -> None:
    settings = config.get_settings()
    settings["tm.activate_hook"] = transactional
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    services = config.registry["services"]
    # Registered once on the factory with pyramid_tm's thread-local manager (waitress serves a
    # request on one thread), rather than per session: per-session registration attached event
    # listeners to every new session, ~7 % of a request.
    factory = sessionmaker(bind=services.engine, expire_on_commit=False)
    zope.sqlalchemy.register(factory)
    config.registry["dbsession_factory"] = factory
    config.add_request_method(dbsession, reify=True)
