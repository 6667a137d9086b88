"""The benchmark's sampling threads (monitor, service watch, probe client, lag pollers) share
their life cycle: a daemon thread runs ``_loop`` until ``_stop`` is set."""

from __future__ import annotations

import threading


class Background:
    """``start()`` runs ``self._loop`` on a daemon thread; ``stop()`` sets ``self._stop`` and joins.

    Subclasses provide ``_loop``, a ``_stop`` event and a ``_thread`` attribute (dataclass fields
    or set in ``__init__``), and may name the thread with ``thread_name``."""

    thread_name = "bench"
    _stop: threading.Event
    _thread: threading.Thread | None

    def _loop(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        return self
