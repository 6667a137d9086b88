"""The SQLAlchemy engine, session factory and ``request.dbsession`` (pyramid_tm + zope.sqlalchemy).

One engine per process, built once and kept in the registry.  Every connection runs at READ
COMMITTED: the relay's ``SKIP LOCKED`` claims and the allocator's ``MAX(number)`` reads need to see
the latest committed rows, and the web's inserts avoid the gap locks REPEATABLE READ would take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import transaction
import zope.sqlalchemy
from sqlalchemy import engine_from_config
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from chatsys.settings import as_int


def get_engine(settings: Mapping[str, Any], prefix: str = "sqlalchemy.") -> Engine:
    """Build the process-wide engine from the ``sqlalchemy.*`` settings."""
    options = {k: v for k, v in settings.items() if k.startswith(prefix)}
    return engine_from_config(
        options,
        prefix=prefix,
        isolation_level="READ COMMITTED",
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": as_int(settings, "db.connect_timeout", minimum=1),
            # A server that vanishes mid-query must not hang a request thread forever.
            "read_timeout": 30,
            "write_timeout": 30,
        },
    )


def get_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(session_factory: sessionmaker, transaction_manager, request=None) -> Session:
    """A session joined to ``transaction_manager``: it commits or aborts with the transaction."""
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config) -> None:
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    engine = settings.get("chatsys.engine") or get_engine(settings)
    config.registry["dbsession_factory"] = get_session_factory(engine)
    config.registry["db_engine"] = engine

    def dbsession(request) -> Session:
        # Scripts and tests can inject their own session with request.environ["app.dbsession"].
        session = request.environ.get("app.dbsession")
        if session is None:
            session = get_tm_session(request.registry["dbsession_factory"], request.tm, request=request)
        return session

    config.add_request_method(dbsession, reify=True)


def unit_of_work(session_factory: sessionmaker):
    """Context manager for long-running processes: one transaction, committed on success."""
    manager = transaction.TransactionManager(explicit=True)
    return _UnitOfWork(session_factory, manager)


class _UnitOfWork:
    def __init__(self, session_factory: sessionmaker, manager: transaction.TransactionManager):
        self.session_factory = session_factory
        self.manager = manager

    def __enter__(self) -> Session:
        self.manager.begin()
        self.session = get_tm_session(self.session_factory, self.manager)
        return self.session

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.manager.commit()
            else:
                self.manager.abort()
        finally:
            self.session.close()
