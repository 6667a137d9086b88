"""The HTTP baseline: a trivial WSGI app, served by the same launcher as the web.

``chatsys-web <trivial ini> --workers N`` loads it through PasteDeploy (``use =
call:bench.trivial:make_app``), so the baseline has the web's socket sharing, worker processes,
waitress threads and limits; only the application is gone.  It reads the request body (as a
POST handler must) and answers a small JSON document of the size of one message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

BODY = (
    b'{"chat_number":1,"message_number":1,"body":"the quick brown fox jumps over the lazy dog '
    b'and keeps running","version":1,"created_at":"2026-11-27T00:00:00.000000Z",'
    b'"updated_at":"2026-11-27T00:00:00.000000Z"}'
)


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    status = "201 Created" if environ["REQUEST_METHOD"] == "POST" else "200 OK"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def make_app(global_config: dict, **settings: str) -> Callable:
    """PasteDeploy ``call:`` factory."""
    return app
