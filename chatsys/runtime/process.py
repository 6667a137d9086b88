"""The kit of every long-running chatsys process (relay, workers, recount, stream gateway):
loading the ini, stop signals, backoff, and which failures are an outage rather than a bug.

A process is started as ``chatsys-<name> <ini>``; :func:`load` sets up logging from the ini and
returns its :class:`~chatsys.runtime.services.Services` (no WSGI application is built).  The loop
of a process runs ``while not stopper.stopping`` and pauses with ``stopper.wait(seconds)``, which
a SIGTERM or SIGINT cuts short; a transient failure (:func:`is_transient`) is logged as a warning
and retried after ``backoff.next()`` seconds, anything else is a bug and is raised.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable

from chatsys.runtime.services import Services, configure
from chatsys.runtime.settings import SettingsError

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def load(config_uri: str) -> Services:
    """Logging from the ini, then the services from its ``[app:main]`` settings.

    A wrong setting ends the process at once, with the message that names it (exit status 2).
    """
    import plaster

    plaster.setup_logging(config_uri)
    try:
        return configure(plaster.get_settings(config_uri, "app:main"))
    except SettingsError as exc:
        print(f"{os.path.basename(sys.argv[0])}: {exc}", file=sys.stderr)
        sys.exit(2)


class Stopper:
    """Turns SIGTERM and SIGINT into a flag that a process's loop checks between units of work.

    ``on_stop`` callbacks run in the signal handler (keep them to waking a loop up).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []

    def install(self, signals: Iterable[int] = STOP_SIGNALS) -> Stopper:
        for signum in signals:
            signal.signal(signum, self._on_signal)
        return self

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    def stop(self) -> None:
        """Ask the process to stop (thread-safe; what a signal does)."""
        self._event.set()
        for callback in self._callbacks:
            callback()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, less if a stop is asked for; True when stopping."""
        return self._event.wait(max(seconds, 0.0))

    def _on_signal(self, signum, frame) -> None:
        log.info("signal %d: stopping after the work in hand", signum)
        self.stop()


class Backoff:
    """Exponential backoff with jitter: ``base``, doubling up to ``cap``; :meth:`reset` on success.

    The jitter (each delay drawn from the upper half of its step) keeps processes that failed
    together from retrying in lockstep.
    """

    def __init__(self, base: float = 0.5, cap: float = 5.0):
        self.base = base
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.failures))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that mean a dependency is unreachable or busy for now: MySQL
    (disconnects, lock wait timeouts, deadlocks), Redis connection trouble, and any error of the
    broker's connection or channel (reopened after a backoff), socket errors included."""
    import pika.exceptions
    import redis.exceptions
    import sqlalchemy.exc

    return (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.DisconnectionError,
        sqlalchemy.exc.TimeoutError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        pika.exceptions.AMQPError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, transient_errors())


def run_until_stopped(name: str, step: Callable[[], None], stopper: Stopper, backoff: Backoff | None = None) -> None:
    """Call ``step`` until a stop is asked for; a transient failure waits a backoff and retries.

    ``step`` runs a connection's worth of work (it returns or raises when the connection ends).
    """
    backoff = backoff or Backoff()
    while not stopper.stopping:
        try:
            step()
            backoff.reset()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = backoff.next()
            log.warning("%s: %s; retrying in %.1fs", name, exc.__class__.__name__, delay)
            stopper.wait(delay)
