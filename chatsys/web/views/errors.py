"""Exception views: every error leaves in the shape of the surface it was asked on.

- /v1 (and any path no route matched): ``{"error": {"code", "message", "details"?}}``.
- The original API: ``{"message": "…"}``, and for invalid fields ``{"field": ["message"]}``, the
  two bodies its controllers rendered (``ExceptionHandler``, ``model.errors``).

Exception views run outside the request transaction (pyramid_tm has aborted it already), so a
failed request leaves no row and no outbox record behind.  Nothing internal (SQL, stack traces,
hosts) is ever put in a response; unexpected errors are logged with an incident id instead, and
log lines name the route's pattern, never the path with its application token.
"""

import logging
import uuid
from urllib.parse import unquote_to_bytes

import redis.exceptions
from pyramid.exceptions import PredicateMismatch
from pyramid.httpexceptions import HTTPException, HTTPNotFound
from pyramid.view import exception_view_config, notfound_view_config

from chatsys.domain import errors as domain
from chatsys.numbering import NumberConflict
from chatsys.runtime.process import transient_errors
from chatsys.web.errors import ChatsysError, MalformedURL, MethodNotAllowed, NotFound, ServiceUnavailable
from chatsys.web.metrics import route_of

log = logging.getLogger(__name__)

# What the original API's 404s said: ActiveRecord::RecordNotFound from find_by!.
ORIGINAL_NOT_FOUND = {
    "application": "Couldn't find Application",
    "chat": "Couldn't find Chat",
    "message": "Couldn't find Message",
}


# Where the original API's paths start: a request there that no route takes (a method Rails
# did not route, a path that is not UTF-8) is answered in the original's shape too.
ORIGINAL_ROOTS = ("/applications", "/chats", "/messages")


def is_original(request) -> bool:
    route = request.matched_route
    if route is not None:
        return route.name.startswith("original.")
    path = request.environ.get("PATH_INFO", "")
    return any(path == root or path.startswith(root + "/") for root in ORIGINAL_ROOTS)


def render(request, error: ChatsysError):
    response = request.response
    response.status = error.status
    response.headers.update(error.headers)
    response.content_type = "application/json"
    if not is_original(request):
        response.json_body = error.as_json()
    elif error.details and error.status == 422:
        fields: dict[str, list[str]] = {}
        for detail in error.details:
            fields.setdefault(detail["field"], []).append(detail["message"])
        response.json_body = fields
    else:
        response.json_body = {"message": error.message}
    return response


@exception_view_config(ChatsysError)
def web_error(exc, request):
    return render(request, exc)


@exception_view_config(domain.NotFound)
def domain_not_found(exc, request):
    """404; on /v1 the code says whether the item never existed (``not_found``) or was deleted."""
    if is_original(request):
        return render(request, NotFound(ORIGINAL_NOT_FOUND[exc.kind]))
    error = NotFound(str(exc))
    error.code = exc.code
    return render(request, error)


@exception_view_config(domain.IdempotencyKeyReused)
def idempotency_key_reused(exc, request):
    error = ChatsysError(str(exc))
    error.status, error.code = 422, exc.code
    return render(request, error)


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
    log.warning("dependency unavailable on %s %s: %s", request.method, route_of(request), exc.__class__.__name__)
    return render(request, ServiceUnavailable())


# MySQL, Redis or RabbitMQ busy or unreachable (a lock wait past db.lock_wait_timeout included),
# and a number that stayed taken through every retry: "retry later", not "your request is wrong".
for _kind in (*transient_errors(), NumberConflict):
    unavailable = exception_view_config(_kind)(unavailable)

# Redis answering but refusing for now: at its memory limit under ``noeviction``, a replica
# after a failover, a failed disk write (MISCONF), a long script (BUSY), too few replicas.
# redis-py gives some their own classes (MASTERDOWN is a ClusterDownError; LOADING is a
# ConnectionError, already transient); the others arrive as a plain ResponseError.
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
    log.exception("unhandled error %s on %s %s", incident, request.method, route_of(request))
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
