"""Real HTTP for concurrency tests: apps served by waitress in threads, a pooled client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from webtest.http import StopableWSGIServer


@contextlib.contextmanager
def serve(app, threads: int = 8) -> Iterator[str]:
    """Serve ``app`` with waitress on a free port; yields its base URL."""
    server = StopableWSGIServer.create(app, threads=threads, expose_tracebacks=False)
    try:
        server.wait()
        yield server.application_url.rstrip("/")
    finally:
        server.shutdown()


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, timeout: float = 10.0, maxsize: int = 32):
        self.pool = urllib3.PoolManager(maxsize=maxsize, timeout=urllib3.Timeout(total=timeout), retries=False)

    def request(self, method: str, url: str, payload: Any = None, headers: dict | None = None) -> Reply:
        body = None if payload is None else json.dumps(payload).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        res = self.pool.request(method, url, body=body, headers=hdrs)
        return Reply(res.status, res.data, dict(res.headers))

    def post(self, url: str, payload: Any = None, headers: dict | None = None) -> Reply:
        return self.request("POST", url, payload, headers)

    def get(self, url: str) -> Reply:
        return self.request("GET", url)
