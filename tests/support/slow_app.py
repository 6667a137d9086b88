"""A WSGI app for tests of chatsys-web itself: ``GET /slow/<seconds>/<bytes>`` waits, then
answers that many bytes; anything else answers ``ok``.  ``use = call:tests.support.slow_app:factory``."""

from __future__ import annotations

import time


def body(size: int) -> bytes:
    block = bytes(range(256))
    return (block * (size // len(block) + 1))[:size]


def factory(global_config, **settings):
    def app(environ, start_response):
        parts = environ["PATH_INFO"].strip("/").split("/")
        payload = b"ok"
        if parts[0] == "slow":
            time.sleep(float(parts[1]))
            payload = body(int(parts[2]))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(payload)))])
        return [payload]

    return app
