"""An in-process HTTP test double of Elasticsearch 8, for the real ``elasticsearch`` client.

It exists for what no engine on this machine can do: inject faults (errors and delays per request,
failures of single bulk items, a missing alias, red health, a server that goes away) and record
exactly what chatsys sends, with runs fast enough for unit tests.  Relevance, analysis and
highlighting are checked on noida-db (tests/support/noida.py), where the same tests run too.

Emulated, single node, for the calls chatsys and its tests make: indices (create with settings,
mappings and aliases; exists; get, also by ``*`` pattern; delete; ``_settings``; ``_mapping``),
aliases (``_aliases`` actions, applied all or nothing; ``_alias``; one write index per alias),
``_bulk`` index actions with external versioning, required routing, ``dynamic: strict`` and
``require_alias``, GET of a document, refresh (documents become searchable at a refresh only),
``_search`` (:mod:`testkit.es_engine`), ``_count`` of everything and ``_cluster/health``.  Every response carries
``X-Elastic-Product: Elasticsearch``.  A request the double does not emulate gets a 400 saying
so, never a silent approximation.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import logging
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from testkit.es_engine import (
    Doc,
    EsError,
    IndexMapping,
    bad_request,
    build_analyzers,
    check_keys,
    compile_query,
    filter_source,
    highlight,
    not_emulated,
    parse_document,
    parse_highlight,
    parse_mappings,
    sort_keys,
    sort_values,
)

log = logging.getLogger(__name__)

SETTINGS = {"refresh_interval", "number_of_shards", "number_of_replicas", "max_ngram_diff"}


@dataclass
class RecordedRequest:
    """One request as the double received it."""

    method: str
    path: str  # decoded, without the query string
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: Any = None  # parsed JSON; for _bulk, the list of NDJSON objects


@dataclass
class StoredDocument:
    doc_id: str
    source: dict[str, Any]
    version: int
    routing: str | None
    values: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass
class _Index:
    name: str
    settings: dict[str, Any]  # flat, without the "index." prefix
    mapping: IndexMapping
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    live: dict[str, StoredDocument] = field(default_factory=dict)
    searchable: list[Doc] = field(default_factory=list)
    seq: int = 0

    def refresh(self) -> None:
        self.searchable = [Doc(d.doc_id, d.source, d.values, d.routing, n) for n, d in enumerate(self.live.values())]


@dataclass
class _Rule:
    method: str | None
    path: re.Pattern[str]
    remaining: int
    error: EsError | None = None
    delay: float = 0.0
    callback: Callable[[RecordedRequest], None] | None = None


class ElasticsearchDouble:
    """The double: ``start()`` it, point a client at :attr:`url`, ``stop()`` it."""

    def __init__(self) -> None:
        self.health_status = "green"
        self._lock = threading.RLock()
        self._indices: dict[str, _Index] = {}
        self._requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._item_failures: dict[str, list[tuple[EsError, list[int]]]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ElasticsearchDouble:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="es-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections: the client sees a server that went away."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> ElasticsearchDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the double is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- inspection ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The requests with this method whose path matches the regular expression ``path``."""
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def index_names(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    def aliases(self) -> dict[str, list[str]]:
        """alias → the names of its indices."""
        with self._lock:
            result: dict[str, list[str]] = {}
            for name in sorted(self._indices):
                for alias in self._indices[name].aliases:
                    result.setdefault(alias, []).append(name)
            return result

    def documents(self, target: str) -> dict[str, StoredDocument]:
        """The documents of an index or of the indices of an alias, realtime."""
        with self._lock:
            return {i: copy.deepcopy(d) for index in self._resolve(target) for i, d in index.live.items()}

    def document(self, target: str, doc_id: str) -> StoredDocument | None:
        return self.documents(target).get(doc_id)

    # -- faults --------------------------------------------------------------------------------

    def inject_error(
        self,
        method: str | None,
        path: str,
        *,
        status: int = 503,
        error_type: str = "unavailable_shards_exception",
        reason: str = "injected by the test double",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with this error instead of handling them."""
        self._add_rule(_Rule(method, re.compile(path), times, error=EsError(status, error_type, reason)))

    def inject_delay(self, method: str | None, path: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` matching requests (e.g. past the client's timeout)."""
        self._add_rule(_Rule(method, re.compile(path), times, delay=seconds))

    def before(self, method: str | None, path: str, callback: Callable[[RecordedRequest], None], *, times=1) -> None:
        """Run ``callback`` before handling the next matching request (outside the double's lock,
        so it may itself send requests to the double)."""
        self._add_rule(_Rule(method, re.compile(path), times, callback=callback))

    def fail_bulk_item(
        self,
        doc_id: str,
        *,
        status: int = 429,
        error_type: str = "es_rejected_execution_exception",
        reason: str = "rejected execution (injected by the test double)",
        times: int = 1,
    ) -> None:
        """Fail the bulk item for ``doc_id`` (not applied) the next ``times`` times it comes."""
        with self._lock:
            self._item_failures.setdefault(doc_id, []).append((EsError(status, error_type, reason), [times]))

    def _add_rule(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _apply_rules(self, record: RecordedRequest) -> None:
        with self._lock:
            matched = []
            for rule in self._rules:
                if rule.remaining > 0 and rule.method in (None, record.method) and rule.path.fullmatch(record.path):
                    rule.remaining -= 1
                    matched.append(rule)
            self._rules = [rule for rule in self._rules if rule.remaining > 0]
        for rule in matched:
            if rule.callback is not None:
                rule.callback(record)
            if rule.delay:
                self._stopping.wait(rule.delay)
            if rule.error is not None:
                raise rule.error

    # -- HTTP ----------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        parts = [unquote(part) for part in split.path.split("/") if part]
        headers = {name.lower(): value for name, value in handler.headers.items()}
        raw = handler.rfile.read(int(headers.get("content-length") or 0))
        record = RecordedRequest(
            handler.command, "/" + "/".join(parts), dict(parse_qsl(split.query, keep_blank_values=True)), headers, raw
        )
        with self._lock:
            self._requests.append(record)
        try:
            record.body = _parse_body(raw, bulk=bool(parts) and parts[-1] == "_bulk")
            self._apply_rules(record)
            status, payload = self._dispatch(record.method, parts, record.params, record.body)
        except EsError as exc:
            status, payload = exc.status, exc.body()
        body = b"" if handler.command == "HEAD" or payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("X-Elastic-Product", "Elasticsearch")
        handler.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _dispatch(self, method: str, parts: list[str], params: dict[str, str], body: Any) -> tuple[int, Any]:
        path = "/".join(parts)
        name = parts[0] if parts else ""
        routes: dict[tuple[str, str], Callable[[], tuple[int, Any]]] = {
            ("GET", r"_cluster/health/[^/]+"): lambda: self._health(parts[2]),
            ("POST", "_aliases"): lambda: self._update_aliases(body),
            ("GET", "_alias/[^/_][^/]*"): lambda: self._get_alias(parts[1]),
            ("HEAD", "_alias/[^/_][^/]*"): lambda: (200 if self._resolve_alias(parts[1]) else 404, None),
            ("PUT", "[^/_][^/]*/_bulk"): lambda: self._bulk(name, params, body),
            ("POST", "[^/_][^/]*/_bulk"): lambda: self._bulk(name, params, body),
            ("POST", "[^/_][^/]*/_refresh"): lambda: self._refresh(name),
            ("POST", "[^/_][^/]*/_search"): lambda: self._search(name, body or {}),
            ("POST", "[^/_][^/]*/_count"): lambda: self._count(name, body),
            ("GET", "[^/_][^/]*/_settings"): lambda: self._get_settings(name),
            ("PUT", "[^/_][^/]*/_settings"): lambda: self._put_settings(name, body),
            ("GET", "[^/_][^/]*/_mapping"): lambda: self._get_mapping(name),
            ("GET", "[^/_][^/]*/_doc/[^/]+"): lambda: self._get_doc(name, parts[2], params),
            ("PUT", "[^/]+"): lambda: self._create_index(name, body or {}),
            ("HEAD", "[^/_][^/]*"): lambda: (200 if self._resolve(name, missing_ok=True) else 404, None),
            ("GET", "[^/_][^/]*"): lambda: self._get_index(name),
            ("DELETE", "[^/_][^/]*"): lambda: self._delete_index(name),
        }
        for (route_method, pattern), handle in routes.items():
            if route_method == method and re.fullmatch(pattern, path):
                with self._lock:
                    return handle()
        raise not_emulated(f"{method} /{path}")

    # -- indices and aliases -------------------------------------------------------------------

    def _resolve(self, target: str, missing_ok: bool = False) -> list[_Index]:
        """The indices an index name, an alias or a ``*`` pattern names."""
        if "*" in target:
            return [i for n, i in sorted(self._indices.items()) if fnmatch.fnmatchcase(n, target)]
        if target in self._indices:
            return [self._indices[target]]
        indices = self._resolve_alias(target)
        if not indices and not missing_ok:
            raise _index_not_found(target)
        return indices

    def _resolve_alias(self, alias: str) -> list[_Index]:
        return [i for n, i in sorted(self._indices.items()) if alias in i.aliases]

    def _write_index(self, target: str) -> _Index:
        if target in self._indices:
            return self._indices[target]
        indices = self._resolve_alias(target)
        writers = [i for i in indices if i.aliases[target].get("is_write_index") or len(indices) == 1]
        if not indices:
            raise _index_not_found(target)
        if len(writers) != 1:
            raise bad_request("illegal_argument_exception", f"no write index is defined for alias [{target}]")
        return writers[0]

    def _create_index(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        check_keys("create-index keys", body, {"settings", "mappings", "aliases"})
        if name != name.lower() or name[0] in "_-+" or any(c in name for c in '\\/*?"<>| ,#:'):
            raise bad_request("invalid_index_name_exception", f"Invalid index name [{name}]", index=name)
        if name in self._indices or self._resolve_alias(name):
            raise bad_request("resource_already_exists_exception", f"index [{name}] already exists", index=name)
        settings = _flatten(body.get("settings") or {})
        analysis = {k[len("analysis.") :]: v for k, v in settings.items() if k.startswith("analysis.")}
        unknown = {k for k in settings if not k.startswith("analysis.")} - SETTINGS
        if unknown:
            raise not_emulated(f"settings {sorted(unknown)}")
        analyzers = build_analyzers(_unflatten(analysis))
        index = _Index(name, settings, parse_mappings(body.get("mappings"), analyzers))
        for alias, props in (body.get("aliases") or {}).items():
            if alias in self._indices:
                raise bad_request(
                    "invalid_alias_name_exception",
                    f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
                )
            index.aliases[alias] = {k: v for k, v in (props or {}).items() if k == "is_write_index"}
        self._check_write_indices({**self._indices, name: index})
        self._indices[name] = index
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _check_write_indices(self, indices: dict[str, _Index]) -> None:
        writers: dict[str, list[str]] = {}
        for index in indices.values():
            for alias, props in index.aliases.items():
                if props.get("is_write_index"):
                    writers.setdefault(alias, []).append(index.name)
        for alias, names in writers.items():
            if len(names) > 1:
                raise EsError(500, "illegal_state_exception", f"alias [{alias}] has more than one write index {names}")

    def _get_index(self, target: str) -> tuple[int, Any]:
        return 200, {
            i.name: {"aliases": i.aliases, "mappings": i.mapping.definition, "settings": _settings_body(i)}
            for i in self._resolve(target, missing_ok="*" in target)
        }

    def _delete_index(self, name: str) -> tuple[int, Any]:
        if name not in self._indices:
            if self._resolve_alias(name):
                raise bad_request("illegal_argument_exception", f"The provided expression [{name}] matches an alias")
            raise _index_not_found(name)
        del self._indices[name]
        return 200, {"acknowledged": True}

    def _get_settings(self, target: str) -> tuple[int, Any]:
        return 200, {i.name: {"settings": _settings_body(i)} for i in self._resolve(target)}

    def _put_settings(self, target: str, body: Any) -> tuple[int, Any]:
        settings = _flatten(body or {})
        if set(settings) - {"refresh_interval"}:
            raise not_emulated(f"settings updates {sorted(settings)}")
        for index in self._resolve(target):
            index.settings.update(settings)
        return 200, {"acknowledged": True}

    def _get_mapping(self, target: str) -> tuple[int, Any]:
        return 200, {i.name: {"mappings": i.mapping.definition} for i in self._resolve(target)}

    def _get_alias(self, alias: str) -> tuple[int, Any]:
        indices = self._resolve_alias(alias)
        if not indices:
            return 404, {"error": f"alias [{alias}] missing", "status": 404}
        return 200, {i.name: {"aliases": {alias: i.aliases[alias]}} for i in indices}

    def _update_aliases(self, body: Any) -> tuple[int, Any]:
        """Every action is validated before any is applied: the swap is atomic."""
        changed = {name: copy.copy(index) for name, index in self._indices.items()}
        for index in changed.values():
            index.aliases = dict(index.aliases)
        for action in (body or {}).get("actions", []):
            ((kind, spec),) = action.items()
            if kind not in ("add", "remove") or spec.get("index") not in changed:
                raise _index_not_found(str(spec.get("index"))) if kind in ("add", "remove") else not_emulated(kind)
            aliases = changed[spec["index"]].aliases
            if kind == "add":
                aliases[spec["alias"]] = {k: v for k, v in spec.items() if k == "is_write_index"}
            elif aliases.pop(spec["alias"], None) is None:
                raise EsError(404, "aliases_not_found_exception", f"aliases [{spec['alias']}] missing")
        self._check_write_indices(changed)
        for name, index in changed.items():
            self._indices[name].aliases = index.aliases
        return 200, {"acknowledged": True}

    def _health(self, target: str) -> tuple[int, Any]:
        if not self._resolve(target, missing_ok=True):
            return 408, {"status": "red", "timed_out": True}
        return 200, {"cluster_name": "es-double", "status": self.health_status, "timed_out": False}

    # -- documents -----------------------------------------------------------------------------

    def _bulk(self, target: str, params: dict[str, str], operations: list[Any]) -> tuple[int, Any]:
        check_keys("bulk parameters", params, {"require_alias", "refresh"})
        items = []
        for line in range(0, len(operations), 2):
            ((op, meta),) = operations[line].items()
            if op != "index":
                raise not_emulated(f"bulk action [{op}]")
            check_keys("bulk action metadata", meta, {"_id", "routing", "version", "version_type"})
            try:
                items.append({"index": {"status": 201, **self._write(target, meta, operations[line + 1], params)}})
            except EsError as exc:
                items.append(
                    {"index": {"_index": target, "_id": meta.get("_id"), "status": exc.status, "error": exc.error()}}
                )
        if params.get("refresh") in ("", "true", "wait_for"):
            self._refresh(target)
        return 200, {"took": 1, "errors": any("error" in item["index"] for item in items), "items": items}

    def _write(self, target: str, meta: dict[str, Any], source: Any, params: dict[str, str]) -> dict[str, Any]:
        doc_id = str(meta["_id"])
        failures = self._item_failures.get(doc_id)
        if failures:
            error, remaining = failures[0]
            remaining[0] -= 1
            if remaining[0] <= 0:
                failures.pop(0)
            raise error
        if params.get("require_alias") == "true" and not self._resolve_alias(target):
            raise _index_not_found(target, f"no such index [{target}] and [require_alias] request flag is [true]")
        index = self._write_index(target)
        routing = meta.get("routing")
        if index.mapping.routing_required and routing is None:
            raise bad_request("routing_missing_exception", f"routing is required for [{index.name}]/[{doc_id}]")
        values = parse_document(index.mapping, source)
        if meta.get("version_type") != "external":
            raise not_emulated("versioning other than external")
        version = int(meta["version"])
        current = index.live.get(doc_id)
        if current is not None and current.version >= version:
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, current version [{current.version}] is higher or equal to the "
                f"one provided [{version}]",
                index=index.name,
            )
        index.live[doc_id] = StoredDocument(doc_id, source, version, routing, values)
        index.seq += 1
        return {"_index": index.name, "_id": doc_id, "_version": version, "result": "created"}

    def _get_doc(self, target: str, doc_id: str, params: dict[str, str]) -> tuple[int, Any]:
        index = self._write_index(target)
        stored = index.live.get(doc_id)
        if stored is None:
            return 404, {"_index": index.name, "_id": doc_id, "found": False}
        return 200, {
            "_index": index.name,
            "_id": doc_id,
            "_version": stored.version,
            "_routing": stored.routing,
            "found": True,
            "_source": stored.source,
        }

    def _refresh(self, target: str) -> tuple[int, Any]:
        for index in self._resolve(target):
            index.refresh()
        return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}

    # -- search --------------------------------------------------------------------------------

    def _count(self, target: str, body: Any) -> tuple[int, Any]:
        if body:
            raise not_emulated("_count with a query")
        return 200, {"count": sum(len(index.searchable) for index in self._resolve(target))}

    def _search(self, target: str, body: dict[str, Any]) -> tuple[int, Any]:
        check_keys(
            "search keys", body, {"query", "sort", "size", "search_after", "track_total_hits", "_source", "highlight"}
        )
        indices = self._resolve(target)
        fields = indices[0].mapping.fields if indices else {}
        query = compile_query(body.get("query", {"match_all": {}}), fields)
        keys = sort_keys(body.get("sort", []), fields)
        after = body.get("search_after")
        if after is not None and len(after) != len(keys):
            raise bad_request(
                "illegal_argument_exception", f"search_after has {len(after)} value(s) but sort has {len(keys)}."
            )
        paths, no_match = parse_highlight(body["highlight"], fields) if "highlight" in body else ([], 0)
        found = []
        for index in indices:
            for doc in index.searchable:
                spans = query(doc)
                if spans is not None:
                    found.append((_sort_key(keys, sort_values(keys, doc)), doc, spans, index.name))
        found.sort(key=lambda item: item[0])
        if after is not None:
            found = [item for item in found if item[0] > _sort_key(keys, after)]
        hits = []
        for _, doc, spans, name in found[: int(body.get("size", 10))]:
            hit = {"_index": name, "_id": doc.doc_id, "_score": 1.0, "_routing": doc.routing}
            source = filter_source(doc.source, body.get("_source", True))
            if source is not None:
                hit["_source"] = copy.deepcopy(source)
            marked = highlight(doc, paths, no_match, spans, fields) if paths else {}
            if marked:
                hit["highlight"] = marked
            if keys:
                hit["sort"] = sort_values(keys, doc)
            hits.append(hit)
        result: dict[str, Any] = {"hits": hits}
        if body.get("track_total_hits", True) is not False:
            result["total"] = {"value": len(found), "relation": "eq"}
        return 200, {"took": 1, "timed_out": False, "hits": result}


# -- HTTP server -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def _serve(self) -> None:
        self.server.double._serve(self)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("es-double: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, double: ElasticsearchDouble) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.double = double
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # Kept-alive connections would otherwise go on being served after stop().
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.double._stopping.is_set():
            log.exception("es-double: error while serving %s", client_address)


# -- helpers -----------------------------------------------------------------------------------


def _parse_body(raw: bytes, bulk: bool) -> Any:
    if not raw:
        return None
    try:
        if bulk:
            return [json.loads(line) for line in raw.decode().split("\n") if line.strip()]
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("x_content_parse_exception", f"request body is not JSON: {exc}") from None


def _index_not_found(name: str, reason: str | None = None) -> EsError:
    return EsError(404, "index_not_found_exception", reason or f"no such index [{name}]", index=name)


def _sort_key(keys: list[tuple[str, bool]], values: list[Any]) -> tuple:
    """Ascending order of the sort; a missing value comes last either way."""
    return tuple(
        (value is None, -value if desc and value is not None else value)
        for (_, desc), value in zip(keys, values, strict=True)
    )


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested or dotted settings → flat dotted keys without the leading "index."."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        else:
            flat[path.removeprefix("index.")] = value
    return flat


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _settings_body(index: _Index) -> dict[str, Any]:
    flat = {"number_of_shards": "1", "number_of_replicas": "1", **index.settings, "provided_name": index.name}
    flat["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, index.name))
    return {"index": _unflatten({k: v if isinstance(v, str) else json.dumps(v) for k, v in flat.items()})}
