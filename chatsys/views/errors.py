"""Exception views: every error leaves as ``{"error": {"code", "message", "details"?}}``.

Exception views run outside the request transaction (pyramid_tm has aborted it already), so a
failed request leaves no row and no outbox record behind.  Nothing internal (SQL, stack traces,
hosts) is ever put in a response; unexpected errors are logged with the request id instead.
"""

import logging
import uuid
from urllib.parse import unquote_to_bytes

import redis.exceptions
import sqlalchemy.exc
from pyramid.exceptions import PredicateMismatch
from pyramid.httpexceptions import HTTPException, HTTPNotFound
from pyramid.view import exception_view_config, notfound_view_config

from chatsys.accesslog import path_of
from chatsys.errors import ChatsysError, MalformedURL, MethodNotAllowed, NotFound, ServiceUnavailable
from chatsys.numbering import NumberConflict

log = logging.getLogger(__name__)

# MySQL errors that mean "busy or unreachable", not "your request is wrong".
UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    NumberConflict,
)


def render(request, error: ChatsysError):
    response = request.response
    response.status = error.status
    response.headers.update(error.headers)
    response.content_type = "application/json"
    response.json_body = error.as_json()
    return response


@exception_view_config(ChatsysError)
def domain_error(exc, request):
    return render(request, exc)


def allowed_methods(request) -> list[str]:
    """The methods some view accepts on the matched route (for 405's Allow header)."""
    cache = request.registry.setdefault("chatsys.allowed_methods", {})
    route = request.matched_route.name
    if route not in cache:
        methods: set[str] = set()
        for item in request.registry.introspector.get_category("views") or []:
            view = item["introspectable"]
            if view["route_name"] == route:
                declared = view["request_methods"] or ()
                methods.update((declared,) if isinstance(declared, str) else declared)
        if "GET" in methods:
            methods.add("HEAD")
        cache[route] = sorted(methods)
    return cache[route]


@notfound_view_config()
def not_found(exc, request):
    if isinstance(exc, PredicateMismatch) and request.matched_route is not None:
        allow = allowed_methods(request)
        error = MethodNotAllowed(f"{request.method} is not allowed here; use {', '.join(allow)}.")
        error.headers["Allow"] = ", ".join(allow)
        return render(request, error)
    return render(request, NotFound("No such resource."))


@exception_view_config(HTTPException)
def http_error(exc, request):
    if isinstance(exc, HTTPNotFound):
        return not_found(exc, request)
    error = ChatsysError(exc.title)
    error.status = exc.code
    error.code = exc.title.lower().replace(" ", "_")
    return render(request, error)


def unavailable(exc, request):
    log.warning("dependency unavailable on %s %s: %s", request.method, path_of(request), exc.__class__.__name__)
    return render(request, ServiceUnavailable())


for _kind in UNAVAILABLE:
    unavailable = exception_view_config(_kind)(unavailable)

# Redis answering but refusing for now: at its memory limit under ``noeviction``, a replica
# after a failover, a failed disk write (MISCONF), a long script (BUSY), too few replicas.
# redis-py gives some their own classes (MASTERDOWN is a ClusterDownError; LOADING is a
# ConnectionError, already in UNAVAILABLE); the others arrive as a plain ResponseError.
REDIS_REFUSALS = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
REDIS_REFUSAL_CODES = ("MISCONF ", "BUSY ", "NOREPLICAS ")


def redis_refused(exc: redis.exceptions.ResponseError) -> bool:
    return isinstance(exc, REDIS_REFUSALS) or str(exc).startswith(REDIS_REFUSAL_CODES)


@exception_view_config(redis.exceptions.ResponseError)
def redis_error(exc, request):
    if redis_refused(exc):
        return unavailable(exc, request)
    return internal_error(exc, request)


@exception_view_config(Exception)
def internal_error(exc, request):
    incident = uuid.uuid4().hex
    log.exception("unhandled error %s on %s %s", incident, request.method, path_of(request))
    return render(request, ChatsysError("Internal server error.", details={"incident": incident}))


def url_is_utf8(environ) -> bool:
    """Whether the path (which the server has percent-decoded) and the query string are UTF-8."""
    try:
        environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        # WSGI gives the query string as latin-1 text of its bytes, raw or percent-encoded.
        unquote_to_bytes(environ.get("QUERY_STRING", "").encode("latin-1")).decode("utf-8")
    except UnicodeError:
        return False
    return True


@exception_view_config(UnicodeDecodeError)
def undecodable(exc, request):
    """Routing (``URLDecodeError``) or reading the query fails on a URL that is not UTF-8: the
    client's mistake, so 400.  Any other decoding error is the service's own: 500."""
    if url_is_utf8(request.environ):
        return internal_error(exc, request)
    return render(request, MalformedURL())
