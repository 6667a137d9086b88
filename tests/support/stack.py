"""The real processes a test talks to over HTTP: chatsys-web on a free port and, when asked, the
relay and every consumer, as `make run` starts them, on this run's database, Redis prefix and
RabbitMQ namespace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3

from testkit.processes import Processes, write_ini
from tests.conftest import process_overrides
from tests.support.db import TESTING_INI
from tests.support.net import free_port
from tests.support.wait import wait_for


@dataclass
class Stack:
    base: str
    procs: Processes
    http: urllib3.PoolManager

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """A call that must succeed; its JSON body."""
        response = self.http.request(method, self.base + path, json=body)
        assert response.status < 300, (response.status, response.data[:300])
        return response.json() if response.data else {}


def start_stack(
    tmp: Path,
    settings: dict,
    *,
    pipeline: bool = True,
    workers: int = 1,
    probe: str = "/readyz",
    timeout: float = 5,
    edit_ini: Callable[[Path], None] | None = None,
    **web_settings: str,
) -> Stack:
    """Start the web (``workers`` processes) and, with ``pipeline``, the relay and a worker of
    every consumer; return once ``probe`` answers 200.  ``edit_ini`` may change the generated ini
    first (its logging, say)."""
    port = free_port()
    ini = write_ini(
        tmp / "stack.ini", TESTING_INI, process_overrides(settings, **web_settings), listen=f"127.0.0.1:{port}"
    )
    if edit_ini is not None:
        edit_ini(ini)
    procs = Processes(ini, tmp)
    procs.spawn("web", "chatsys-web", "--workers", str(workers))
    if pipeline:
        procs.relay()
        procs.worker("all")
    base = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False, timeout=timeout)

    def ready() -> bool:
        try:
            return http.request("GET", base + probe).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    try:
        wait_for(ready, 60, interval=0.1, message=f"chatsys-web {probe}")
    except AssertionError:
        procs.stop_all()
        raise AssertionError("the web did not start:\n" + procs.dump()) from None
    return Stack(base, procs, http)
