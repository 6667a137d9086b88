"""The gateway's HTTP side (aiohttp) and its process: ``chatsys-stream <ini>``.

    GET /v1/applications/{token}/events            every chat of an application
    GET /v1/applications/{token}/chats/{n}/events   one chat
    GET /healthz   GET /readyz   GET /metrics

An unknown (or deleted) application or chat is a 404 in the /v1 error shape, before the stream
starts.  A stream starts with a ``retry:`` hint, then sends events (``id:`` the stream offset,
``event:`` the event type, ``data:`` the /v1 representation) and every ``stream.keepalive`` seconds
a comment.  On SIGTERM the gateway stops accepting, tells every client ``retry:`` and closes the
streams after what they have been sent; clients resume elsewhere from their last id.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import orjson
from aiohttp import HttpVersion11, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatsys.domain import applications, chats
from chatsys.domain.errors import NotFound
from chatsys.runtime.redact import fingerprint
from chatsys.runtime.services import Services
from chatsys.stream import StreamSettings, metrics, sse
from chatsys.stream.hub import Hub, Subscriber
from chatsys.stream.source import BrokerUnavailable, StreamSource

log = logging.getLogger(__name__)

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
SOURCE: web.AppKey[StreamSource] = web.AppKey("source", StreamSource)
SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
SETTINGS: web.AppKey[StreamSettings] = web.AppKey("settings", StreamSettings)
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("stopping", asyncio.Event)

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies that buffer responses must not hold events back
}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
        headers=headers,
    )


def lookup(services: Services, token: str, chat: int | None) -> None:
    """Raise NotFound unless the application (and chat) exists and is not deleted (a thread)."""
    from sqlalchemy.orm import Session

    if not applications.TOKEN_SHAPE.fullmatch(token):
        raise NotFound("application")  # no query for what cannot be a token
    with Session(services.read_engine) as session:
        if chat is None:
            applications.find(session, token)
        else:
            chats.find(session, token, chat)


def last_event_id(request: web.Request) -> int | None | str:
    """The position to resume from: Last-Event-ID, else ?last_event_id=; 'bad' when malformed."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 19:
        return "bad"
    return int(raw)


def cors(request: web.Request, settings: StreamSettings) -> dict[str, str]:
    """The CORS headers of an answer to a page on an allowed origin (an EventSource's request
    needs no preflight), else none."""
    origin = request.headers.get("Origin")
    if origin is not None and origin in settings.allow_origins.split():
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


@web.middleware
async def allowed_origins(request: web.Request, handler) -> web.StreamResponse:
    """Every answer of the gateway (streams, their 404s and 503s) carries the CORS headers."""
    response = await handler(request)
    if not response.prepared:
        response.headers.update(cors(request, request.app[SETTINGS]))
    return response


async def events(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings, hub, source = app[SETTINGS], app[HUB], app[SOURCE]
    token = request.match_info["token"]
    chat: int | None = None
    if "chat" in request.match_info:
        raw = request.match_info["chat"]
        if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
            return error(404, "not_found", NotFound.MESSAGES["chat"])
        chat = int(raw)
    position = last_event_id(request)
    if position == "bad":
        return error(400, "invalid_last_event_id", "Last-Event-ID must be an event id this stream sent.")
    if app[STOPPING].is_set():
        return error(503, "unavailable", "The gateway is stopping.", {"Retry-After": "1"})
    try:
        await asyncio.get_running_loop().run_in_executor(None, lookup, app[SERVICES], token, chat)
    except NotFound as exc:
        return error(404, exc.code, str(exc))
    except Exception as exc:  # MySQL unreachable: the client retries
        log.warning("events: lookup failed: %s", exc.__class__.__name__)
        return error(503, "unavailable", "A dependency is unavailable.", {"Retry-After": "1"})
    if not hub.ready.is_set():
        try:
            await asyncio.wait_for(hub.ready.wait(), settings.ready_timeout)
        except TimeoutError:
            return error(503, "unavailable", "The event stream is not reachable.", {"Retry-After": "1"})

    response = web.StreamResponse(status=200, headers={**HEADERS, **cors(request, settings)})
    await response.prepare(request)
    sub = hub.add(token, chat, position)  # type: ignore[arg-type]
    sub.transport = request.transport  # type: ignore[assignment]
    sub.chunked = request.version >= HttpVersion11  # as aiohttp chose for a body of no set length
    log.info("stream open %s chat=%s from=%s", fingerprint(token), chat if chat is not None else "*", position)
    catch_up: asyncio.Task | None = None
    try:
        sub.write(sse.retry(settings.retry_ms))
        if sub.catching_up:
            catch_up = asyncio.create_task(source.catch_up(sub, hub.head))  # type: ignore[arg-type]
            catch_up.add_done_callback(lambda task: _catch_up_done(sub, task))
        await idle(sub, hub, settings)
    except (ConnectionError, asyncio.CancelledError):
        if not sub.reason:
            sub.reason = "client"
    finally:
        if catch_up is not None and not catch_up.done():
            catch_up.cancel()
        hub.remove(sub)
        log.info("stream closed %s reason=%s", fingerprint(token), sub.reason or "client")
    return response


def _catch_up_done(sub: Subscriber, task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        if isinstance(exc, BrokerUnavailable):
            log.warning("catch-up: the broker is unavailable (%s); the client will retry", exc)
        else:
            log.error("catch-up failed", exc_info=exc)
        sub.close("broker")  # the client retries from its last id


async def idle(sub: Subscriber, hub: Hub, settings: StreamSettings) -> None:
    """Until the stream is closed: a keepalive whenever it has been quiet for ``keepalive``
    seconds.  (Events are written by the hub, not here.)"""
    while not sub.closed:
        sub.wake.clear()
        try:
            await asyncio.wait_for(sub.wake.wait(), settings.keepalive)
        except TimeoutError:
            # A comment for the proxies, and the head as the position to resume from, so that a
            # quiet stream's client does not resume from hours back.
            moved = None
            if not sub.catching_up and hub.head is not None and hub.head > sub.position:
                sub.position = hub.head
            if not sub.catching_up and sub.position != sub.sent_position:
                moved = sub.position
            sub.write(sse.keepalive(moved))
    if sub.reason == "stopping":
        sub.write(sse.retry(settings.retry_ms))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    up = request.app[SOURCE].connected.is_set()
    return web.json_response(
        {"status": "ok" if up else "unavailable", "checks": {"rabbitmq": "ok" if up else "unavailable"}},
        status=200 if up else 503,
    )


async def metrics_view(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(services: Services, settings: StreamSettings) -> web.Application:
    app = web.Application(middlewares=[allowed_origins])
    hub = Hub(settings.client_buffer_bytes)
    app[HUB] = hub
    app[SERVICES] = services
    app[SETTINGS] = settings
    app[STOPPING] = asyncio.Event()
    app[SOURCE] = StreamSource(
        services.settings["amqp.url"],
        services.settings["amqp.heartbeat"],
        services.topology,
        hub,
        settings.prefetch,
        settings.catchup_concurrency,
    )
    app.router.add_get("/v1/applications/{token}/events", events, name="stream.application")
    app.router.add_get("/v1/applications/{token}/chats/{chat}/events", events, name="stream.chat")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


def raise_open_files_limit() -> int:
    """Every stream is a socket: take the hard limit of open files as the soft one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


async def serve(services: Services, settings: StreamSettings) -> None:
    """Run the gateway until SIGTERM or SIGINT; then drain and return."""
    log.info("open files limit %s", raise_open_files_limit())
    app = make_app(services, settings)
    source = app[SOURCE]
    tail = asyncio.create_task(source.run(), name="stream-tail")
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=4096, reuse_port=True)
    await site.start()
    log.info("chatsys-stream listening on http://%s:%d", settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping: %d streams to close", len(app[HUB]))
    app[STOPPING].set()
    await site.stop()  # no new connections
    app[HUB].close_all("stopping")
    deadline = time.monotonic() + 5
    while len(app[HUB]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await source.stop()
    tail.cancel()
    try:
        await tail
    except (asyncio.CancelledError, Exception):
        pass
    await runner.cleanup()
    log.info("stopped")
