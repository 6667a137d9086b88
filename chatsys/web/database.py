"""``request.dbsession``: a pyramid_tm transaction for requests that may write, an autocommit
session for those that only read.

Requests that change something run in one pyramid_tm transaction (zope.sqlalchemy joins the
session to it), which commits after the view returns or aborts on an error: a row and its outbox
event are committed together or not at all (I1).  GET and HEAD requests change nothing, so they
skip the transaction machinery: their session is bound to the autocommit engine, each SELECT is
one round trip, and the session is closed when the request finishes.
(docs/decisions.md, "Read-only requests run outside pyramid_tm, on an autocommit engine".)
"""

from __future__ import annotations

import zope.sqlalchemy
from sqlalchemy.orm import Session, sessionmaker

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def transactional(request) -> bool:
    """pyramid_tm's activation hook: a transaction for every request that may change something."""
    return request.method not in SAFE_METHODS


def dbsession(request) -> Session:
    # Scripts and tests can inject their own session with request.environ["app.dbsession"].
    session = request.environ.get("app.dbsession")
    if session is not None:
        return session
    if request.environ.get("tm.active"):
        return request.registry["dbsession_factory"](info={"request": request})
    session = request.registry["read_session_factory"]()
    request.add_finished_callback(lambda request: session.close())
    return session


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
    config.registry["read_session_factory"] = sessionmaker(bind=services.read_engine)
    config.add_request_method(dbsession, reify=True)
