"""An in-process HTTP test double of Elasticsearch 8, for the real ``elasticsearch`` client.

No Elasticsearch server can run on the development and CI machines, so the search backend is
tested against this double over HTTP, with the real client library: product header, media-type
negotiation and serialization are the client's own.  The double is a test tool only.

Emulated (single node, one shard per index):

* ``GET /`` (version 8.x) and ``HEAD /``; ``X-Elastic-Product: Elasticsearch`` on every response;
  a ``compatible-with=N`` media type with N != 8 is refused with 400 like a real 8.x server (which
  also accepts 7: the double is stricter on purpose, chatsys pins the 8.x client).
* Indices: create (settings, mappings, aliases), exists, get, delete; ``_settings`` (get, update
  of dynamic settings), ``_mapping`` (get); ``_cluster/health``.
* Aliases: in the create body, ``POST /_aliases`` (add, remove, remove_index — validated as a
  whole, then applied at once), ``GET|HEAD /_alias/<name>``, ``GET|HEAD /<index>/_alias[/<name>]``,
  one write index per alias.
* Documents: ``_bulk`` (index, create, delete; NDJSON; per-item status and ``errors``), single
  document PUT/POST/GET/HEAD/DELETE; internal, ``external`` and ``external_gte`` versioning with
  409 ``version_conflict_engine_exception``; required routing; ``dynamic: strict`` and field types.
* Refresh: documents become searchable only at a refresh (``_refresh`` or ``?refresh=true|wait_for``);
  GET by id is realtime.
* ``_search`` / ``_count``: the query, sort, highlight and source subset of :mod:`tests.support.es_engine`.
* Everything it receives is kept: :attr:`ElasticsearchDouble.requests` (method, path, params,
  headers, parsed body) and the stored documents with version and routing.
* Faults for tests: injected errors and delays per request, failures of single bulk items, a
  hook before a request, red health, and :meth:`ElasticsearchDouble.stop` (connections cut).

Not emulated (a request that needs it gets a 400 saying so, never a silent approximation, except
where noted): automatic refresh by ``refresh_interval`` (stored and validated only); automatic
index creation on write; dynamic mapping (``dynamic: true`` with a new field); shards, replicas and
routing-to-shard (routing is required and stored, never used to pick documents, so a missing
chat filter is visible); ``gc_deletes`` (delete tombstones are kept forever); object fields,
multi-index and wildcard expressions; scroll, PIT, aggregations, other queries and highlighters.
Approximations: the standard tokenizer (word characters joined by ``'`` or ``.``), ASCII folding
(Unicode decomposition plus a table), BM25 scores (no norm quantisation), and the highlighter's
passage (one fragment from the sentence holding the first match).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fnmatch
import functools
import gzip
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.support.es_engine import (
    Context,
    EsError,
    IndexedDoc,
    IndexMapping,
    bad_request,
    build_analyzers,
    compare_sort_values,
    compile_query,
    filter_source,
    not_emulated,
    parse_document,
    parse_highlight,
    parse_mappings,
    parse_search_after,
    parse_sort,
    sort_values,
)

log = logging.getLogger(__name__)

SUPPORTED_MAJOR = 8
GLOBAL_PARAMS = frozenset({"pretty", "human", "error_trace"})
MAX_VERSION = 2**63 - 1
MAX_RESULT_WINDOW = 10_000
DEFAULT_TRACK_TOTAL_HITS = 10_000

_COMPAT = re.compile(r"compatible-with\s*=\s*(\d+)")
_DURATION = re.compile(r"-1|\d+(nanos|micros|ms|s|m|h|d)")
_INVALID_NAME_CHARS = '\\/*?"<>| ,#:'
_DYNAMIC_SETTINGS = {"refresh_interval", "number_of_replicas", "max_result_window"}
_STATIC_SETTINGS = {"number_of_shards", "max_ngram_diff"}
_SEARCH_KEYS = {
    "query",
    "sort",
    "search_after",
    "size",
    "from",
    "highlight",
    "track_total_hits",
    "_source",
    "track_scores",
}
_BULK_META = {"_index", "_id", "routing", "version", "version_type", "require_alias"}


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
    """What the double holds for one ``_id`` of an index."""

    doc_id: str
    source: dict[str, Any] | None  # None: deleted (the tombstone keeps the version)
    version: int
    routing: str | None
    seq_no: int
    indexed: IndexedDoc | None = field(default=None, repr=False)


@dataclass
class _Index:
    name: str
    uuid: str
    created_ms: int
    settings: dict[str, Any]  # flat, without the "index." prefix
    mapping: IndexMapping
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)  # alias → {"is_write_index": …}
    live: dict[str, StoredDocument] = field(default_factory=dict)
    searchable: list[IndexedDoc] = field(default_factory=list)
    seq_no: int = -1

    def refresh(self) -> None:
        self.searchable = [doc.indexed for doc in self.live.values() if doc.source is not None]

    def settings_body(self) -> dict[str, Any]:
        flat = {
            "number_of_shards": "1",
            "number_of_replicas": "1",
            **{key: _setting_text(value) for key, value in self.settings.items()},
            "uuid": self.uuid,
            "provided_name": self.name,
            "creation_date": str(self.created_ms),
        }
        return {"index": _unflatten(flat)}


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

    def __init__(self, *, version: str = "8.19.3", product_header: bool = True) -> None:
        if int(version.split(".")[0]) != SUPPORTED_MAJOR:
            raise ValueError(f"the double emulates Elasticsearch {SUPPORTED_MAJOR}.x, not {version}")
        self.version = version
        self.product_header = product_header
        self.health_status = "green"
        self._lock = threading.RLock()
        self._indices: dict[str, _Index] = {}
        self._requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._item_failures: dict[str, list[tuple[EsError, list[int]]]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

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
        """Every request received so far, oldest first."""
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
            for index in sorted(self._indices.values(), key=lambda i: i.name):
                for alias in index.aliases:
                    result.setdefault(alias, []).append(index.name)
            return result

    def documents(self, target: str) -> dict[str, StoredDocument]:
        """The live documents (not deleted) of an index or of the indices of an alias."""
        with self._lock:
            return {
                doc_id: copy.deepcopy(doc)
                for index in self._resolve(target)
                for doc_id, doc in index.live.items()
                if doc.source is not None
            }

    def document(self, target: str, doc_id: str) -> StoredDocument | None:
        """One document, a delete tombstone included (``source`` None)."""
        with self._lock:
            for index in self._resolve(target):
                if doc_id in index.live:
                    return copy.deepcopy(index.live[doc_id])
            return None

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

    def before(
        self, method: str | None, path: str, callback: Callable[[RecordedRequest], None], *, times: int = 1
    ) -> None:
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

    # -- HTTP ----------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        parts = [unquote(part) for part in split.path.split("/") if part]
        headers = {name.lower(): value for name, value in handler.headers.items()}
        raw = handler.rfile.read(int(headers.get("content-length") or 0))
        if headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        record = RecordedRequest(
            method=handler.command,
            path="/" + "/".join(parts),
            params=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            raw=raw,
        )
        with self._lock:
            self._requests.append(record)
        try:
            _check_media_types(headers, bool(raw))
            record.body = _parse_body(raw, bulk=bool(parts) and parts[-1] == "_bulk")
            self._apply_rules(record)
            status, payload = self._dispatch(record.method, parts, record.params, record.body)
        except EsError as exc:
            status, payload = exc.status, exc.body()
        compat = any(_COMPAT.search(headers.get(name, "")) for name in ("accept", "content-type"))
        self._respond(handler, status, payload, compat)

    def _respond(self, handler: BaseHTTPRequestHandler, status: int, payload: Any, compat: bool) -> None:
        body = b"" if handler.command == "HEAD" or payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        if self.product_header:
            handler.send_header("X-Elastic-Product", "Elasticsearch")
        media = (
            f"application/vnd.elasticsearch+json;compatible-with={SUPPORTED_MAJOR}" if compat else "application/json"
        )
        handler.send_header("Content-Type", media)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if body:
            handler.wfile.write(body)

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

    # -- routing -------------------------------------------------------------------------------

    def _dispatch(self, method: str, parts: list[str], params: dict[str, str], body: Any) -> tuple[int, Any]:
        n = len(parts)
        routes: dict[str, Callable[[], tuple[int, Any]]]
        allowed: set[str] = set()
        if n == 0:
            routes = {"GET": self._info, "HEAD": lambda: (200, None)}
        elif parts[0] == "_cluster" and n in (2, 3) and parts[1] == "health":
            routes = {"GET": lambda: self._health(parts[2] if n == 3 else None)}
            allowed = {"timeout", "master_timeout", "local"}
        elif parts == ["_aliases"]:
            routes = {"POST": lambda: self._update_aliases(body), "PUT": lambda: self._update_aliases(body)}
            allowed = {"timeout", "master_timeout"}
        elif parts[0] == "_alias" and n <= 2:
            name = parts[1] if n == 2 else None
            routes = {
                "GET": lambda: self._get_alias(None, name, head=False),
                "HEAD": lambda: self._get_alias(None, name, head=True),
            }
        elif parts == ["_bulk"] or (n == 2 and parts[1] == "_bulk"):
            index = parts[0] if n == 2 else None
            routes = {
                "POST": lambda: self._bulk(index, params, body),
                "PUT": lambda: self._bulk(index, params, body),
            }
            allowed = {"refresh", "routing", "require_alias", "timeout", "wait_for_active_shards"}
        elif parts == ["_refresh"] or (n == 2 and parts[1] == "_refresh"):
            targets = [parts[0]] if n == 2 else None
            routes = {"POST": lambda: self._refresh(targets), "GET": lambda: self._refresh(targets)}
        elif parts[0].startswith("_") and n > 1:
            routes = {}
        elif n == 1:  # an index, even a "_name" that creating will refuse, as a real server does
            name = parts[0]
            routes = {
                "PUT": lambda: self._create_index(name, body),
                "HEAD": lambda: (200 if self._exists(name) else 404, None),
                "GET": lambda: self._get_index(name),
                "DELETE": lambda: self._delete_index(name),
            }
            allowed = {"timeout", "master_timeout", "wait_for_active_shards"}
        elif parts[1] == "_alias" and n <= 3:
            name = parts[2] if n == 3 else None
            routes = {
                "GET": lambda: self._get_alias(parts[0], name, head=False),
                "HEAD": lambda: self._get_alias(parts[0], name, head=True),
            }
        elif n == 2 and parts[1] in ("_search", "_count"):
            count = parts[1] == "_count"
            routes = {
                "GET": lambda: self._search(parts[0], body, count),
                "POST": lambda: self._search(parts[0], body, count),
            }
            allowed = {"routing", "timeout"}
        elif n == 2 and parts[1] == "_settings":
            routes = {
                "GET": lambda: self._get_settings(parts[0]),
                "PUT": lambda: self._put_settings(parts[0], body),
            }
            allowed = {"timeout", "master_timeout"}
        elif n == 2 and parts[1] == "_mapping":
            routes = {"GET": lambda: self._get_mapping(parts[0])}
        elif n == 3 and parts[1] in ("_doc", "_create"):
            index, doc_id = parts[0], parts[2]
            op_type = "create" if parts[1] == "_create" or params.get("op_type") == "create" else "index"

            def write() -> tuple[int, Any]:
                return self._write_one(index, doc_id, body, params, op_type)

            routes = {"PUT": write, "POST": write}
            allowed = {
                "routing",
                "version",
                "version_type",
                "refresh",
                "require_alias",
                "timeout",
                "wait_for_active_shards",
            }
            if parts[1] == "_doc":
                allowed.add("op_type")
                routes.update(
                    {
                        "GET": lambda: self._get_doc(index, doc_id, params, head=False),
                        "HEAD": lambda: self._get_doc(index, doc_id, params, head=True),
                        "DELETE": lambda: self._delete_doc(index, doc_id, params),
                    }
                )
                if method in ("GET", "HEAD"):
                    allowed = {"routing", "realtime", "refresh"}
                elif method == "DELETE":
                    allowed = {
                        "routing",
                        "version",
                        "version_type",
                        "refresh",
                        "timeout",
                        "wait_for_active_shards",
                    }
        else:
            routes = {}
        if not routes:
            raise bad_request(
                "illegal_argument_exception",
                f"no handler found for uri [/{'/'.join(parts)}] and method [{method}]",
            )
        if method not in routes:
            raise EsError(
                405,
                "method_not_allowed",
                f"Incorrect HTTP method for uri [/{'/'.join(parts)}] and method [{method}], allowed: {sorted(routes)}",
            )
        for name in params:
            if name not in allowed and name not in GLOBAL_PARAMS:
                raise bad_request(
                    "illegal_argument_exception",
                    f"request [/{'/'.join(parts)}] contains unrecognized parameter: [{name}] (or one the "
                    "test double does not emulate)",
                )
        with self._lock:
            return routes[method]()

    # -- cluster -------------------------------------------------------------------------------

    def _info(self) -> tuple[int, Any]:
        return 200, {
            "name": "es-double",
            "cluster_name": "chatsys-test-double",
            "cluster_uuid": "es-double-cluster",
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2025-01-01T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": "9.12.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _health(self, target: str | None) -> tuple[int, Any]:
        status, code = self.health_status, 200
        if target is not None and not self._exists(target):
            # A real cluster waits for the index until the timeout, then answers 408 and red.
            status, code = "red", 408
        shards = len(self._indices)
        return code, {
            "cluster_name": "chatsys-test-double",
            "status": status,
            "timed_out": code == 408,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": shards,
            "active_shards": shards,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }

    # -- indices -------------------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        return name in self._indices or any(name in index.aliases for index in self._indices.values())

    def _resolve(self, name: str) -> list[_Index]:
        """The indices an index or alias name stands for."""
        if any(char in name for char in ",*"):
            raise not_emulated(f"multi-target expression [{name}]")
        if name in self._indices:
            return [self._indices[name]]
        members = [index for index in self._indices.values() if name in index.aliases]
        if not members:
            raise _index_not_found(name)
        return sorted(members, key=lambda index: index.name)

    def _create_index(self, name: str, body: Any) -> tuple[int, Any]:
        body = body or {}
        for key in body:
            if key not in ("settings", "mappings", "aliases"):
                raise bad_request("parse_exception", f"unknown key [{key}] for create index")
        _validate_name(name, "invalid_index_name_exception", "index")
        if name in self._indices:
            existing = self._indices[name]
            raise bad_request(
                "resource_already_exists_exception",
                f"index [{name}/{existing.uuid}] already exists",
                index_uuid=existing.uuid,
                index=name,
            )
        if self._exists(name):
            raise bad_request(
                "invalid_index_name_exception",
                f"Invalid index name [{name}], already exists as alias",
                index=name,
            )
        settings = _flatten(body.get("settings") or {})
        for key, value in settings.items():
            _validate_setting(key, value, creating=True)
        analysis = _unflatten({k[len("analysis.") :]: v for k, v in settings.items() if k.startswith("analysis.")})
        analyzers = build_analyzers(analysis, int(settings.get("max_ngram_diff", 1)))
        mapping = parse_mappings(body.get("mappings"), analyzers)
        aliases: dict[str, dict[str, Any]] = {}
        for alias, props in (body.get("aliases") or {}).items():
            props = props or {}
            unknown = set(props) - {"is_write_index"}
            if unknown:
                raise not_emulated(f"alias options {sorted(unknown)}")
            _validate_name(alias, "invalid_alias_name_exception", "alias")
            if alias == name or alias in self._indices:
                raise bad_request(
                    "invalid_alias_name_exception",
                    f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
                )
            aliases[alias] = dict(props)
        index = _Index(name, uuid.uuid4().hex[:22], int(time.time() * 1000), settings, mapping, aliases)
        _check_write_indices({**self._indices, name: index})
        self._indices[name] = index
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _get_index(self, name: str) -> tuple[int, Any]:
        if "*" in name and "," not in name:
            # A wildcard pattern over index names (what the reindex uses to find leftovers);
            # like a real server's default allow_no_indices, no match is an empty answer.
            matched = [i for n, i in sorted(self._indices.items()) if fnmatch.fnmatchcase(n, name)]
            return 200, {index.name: self._index_body(index) for index in matched}
        return 200, {index.name: self._index_body(index) for index in self._resolve(name)}

    def _index_body(self, index: _Index) -> dict[str, Any]:
        return {
            "aliases": {alias: _alias_body(props) for alias, props in index.aliases.items()},
            "mappings": copy.deepcopy(index.mapping.definition),
            "settings": index.settings_body(),
        }

    def _delete_index(self, name: str) -> tuple[int, Any]:
        if name not in self._indices:
            if self._exists(name):
                raise bad_request(
                    "illegal_argument_exception",
                    f"The provided expression [{name}] matches an alias, specify the corresponding concrete "
                    "indices instead.",
                )
            raise _index_not_found(name)
        del self._indices[name]
        return 200, {"acknowledged": True}

    def _get_settings(self, name: str) -> tuple[int, Any]:
        return 200, {index.name: {"settings": index.settings_body()} for index in self._resolve(name)}

    def _put_settings(self, name: str, body: Any) -> tuple[int, Any]:
        indices = self._resolve(name)
        settings = _flatten(body or {})
        for key, value in settings.items():
            if key in _STATIC_SETTINGS or key.startswith("analysis."):
                index = indices[0]
                raise bad_request(
                    "illegal_argument_exception",
                    f"Can't update non dynamic settings [[index.{key}]] for open indices [[{index.name}/{index.uuid}]]",
                )
            _validate_setting(key, value, creating=False)
        for index in indices:
            index.settings.update(settings)
        return 200, {"acknowledged": True}

    def _get_mapping(self, name: str) -> tuple[int, Any]:
        return 200, {index.name: {"mappings": copy.deepcopy(index.mapping.definition)} for index in self._resolve(name)}

    def _refresh(self, targets: list[str] | None) -> tuple[int, Any]:
        indices = list(self._indices.values()) if targets is None else [i for t in targets for i in self._resolve(t)]
        for index in indices:
            index.refresh()
        return 200, {"_shards": {"total": len(indices), "successful": len(indices), "failed": 0}}

    # -- aliases -------------------------------------------------------------------------------

    def _update_aliases(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("actions"):
            raise bad_request("action_request_validation_exception", "Validation Failed: 1: no aliases actions found;")
        if set(body) != {"actions"}:
            raise bad_request("parsing_exception", f"[aliases] unknown field {sorted(set(body) - {'actions'})}")
        # Plan on copies, check, then commit: all actions apply or none does.
        planned = {name: copy.deepcopy(index.aliases) for name, index in self._indices.items()}
        removed: set[str] = set()
        for action in body["actions"]:
            if not isinstance(action, dict) or len(action) != 1:
                raise bad_request("parsing_exception", "Too many operations declared on operation entry")
            ((kind, spec),) = action.items()
            allowed = {
                "add": {"index", "indices", "alias", "aliases", "is_write_index"},
                "remove": {"index", "indices", "alias", "aliases", "must_exist"},
                "remove_index": {"index", "indices"},
            }.get(kind)
            if allowed is None:
                raise bad_request("parsing_exception", f"[aliases] unknown field [{kind}]")
            unknown = set(spec) - allowed
            if unknown:
                raise not_emulated(f"alias action options {sorted(unknown)}")
            indices = spec.get("indices") or ([spec["index"]] if "index" in spec else [])
            if not indices:
                raise bad_request(
                    "action_request_validation_exception",
                    "Validation Failed: 1: One of [index] or [indices] is required;",
                )
            for index_name in indices:
                if any(char in index_name for char in ",*"):
                    raise not_emulated(f"multi-target expression [{index_name}]")
                if index_name not in planned or index_name in removed:
                    raise _index_not_found(index_name)
            if kind == "remove_index":
                removed.update(indices)
                continue
            aliases = spec.get("aliases") or ([spec["alias"]] if "alias" in spec else [])
            if not aliases:
                raise bad_request(
                    "action_request_validation_exception",
                    "Validation Failed: 1: One of [alias] or [aliases] is required;",
                )
            for index_name in indices:
                for alias in aliases:
                    if kind == "add":
                        _validate_name(alias, "invalid_alias_name_exception", "alias")
                        if alias in self._indices and alias not in removed:
                            raise bad_request(
                                "invalid_alias_name_exception",
                                f"Invalid alias name [{alias}]: an index or data stream exists with the same "
                                "name as the alias",
                            )
                        props = {"is_write_index": spec["is_write_index"]} if "is_write_index" in spec else {}
                        planned[index_name][alias] = props
                    elif alias in planned[index_name]:
                        del planned[index_name][alias]
                    elif spec.get("must_exist", True) is not False:
                        raise EsError(
                            404,
                            "aliases_not_found_exception",
                            f"aliases [{alias}] missing",
                            **{"resource.type": "aliases", "resource.id": alias},
                        )
        survivors = {name: index for name, index in self._indices.items() if name not in removed}
        previous = {name: index.aliases for name, index in survivors.items()}
        for name, index in survivors.items():
            index.aliases = planned[name]
        try:
            _check_write_indices(survivors)
        except EsError:
            for name, index in survivors.items():
                index.aliases = previous[name]
            raise
        self._indices = survivors
        return 200, {"acknowledged": True, "errors": False}

    def _get_alias(self, index_name: str | None, alias: str | None, head: bool) -> tuple[int, Any]:
        indices = self._resolve(index_name) if index_name else sorted(self._indices.values(), key=lambda i: i.name)
        result = {}
        for index in indices:
            aliases = {a: _alias_body(p) for a, p in index.aliases.items() if alias is None or a == alias}
            if aliases or (alias is None and index_name is not None):
                result[index.name] = {"aliases": aliases}
        if alias is not None and not result:
            return 404, None if head else {"error": f"alias [{alias}] missing", "status": 404}
        return 200, None if head else result

    # -- documents -----------------------------------------------------------------------------

    def _write_index(self, name: str, require_alias: bool) -> _Index:
        members = [index for index in self._indices.values() if name in index.aliases]
        if not members:
            if name in self._indices and not require_alias:
                return self._indices[name]
            if require_alias:
                raise _index_not_found(
                    name,
                    f"no such index [{name}] and [require_alias] request flag is [true] and [{name}] is not an alias",
                )
            raise _index_not_found(name, f"no such index [{name}] (the test double does not create indices on write)")
        explicit = [index for index in members if index.aliases[name].get("is_write_index") is True]
        if len(explicit) == 1:
            return explicit[0]
        if len(members) == 1 and members[0].aliases[name].get("is_write_index") is not False:
            return members[0]
        raise bad_request(
            "illegal_argument_exception",
            f"no write index is defined for alias [{name}]. The write index may be explicitly disabled using "
            "is_write_index=false or the alias points to multiple indices without one being designated as a "
            "write index",
        )

    def _write(
        self,
        target: str,
        doc_id: str | None,
        source: Any,
        *,
        op_type: str,
        routing: str | None,
        version: Any,
        version_type: str | None,
        require_alias: bool,
    ) -> tuple[int, dict[str, Any]]:
        index = self._write_index(target, require_alias)
        if doc_id is None:
            doc_id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:15]).decode()
        self._check_doc_request(index, doc_id, routing)
        version_type = version_type or "internal"
        version = _parse_version(version, version_type, op_type)
        existing = index.live.get(doc_id)
        exists = existing is not None and existing.source is not None
        if op_type == "create" and exists:
            raise _conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, document already exists (current version [{existing.version}])",
            )
        if existing is not None and version_type == "external" and version <= existing.version:
            raise _conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, current version [{existing.version}] is higher or equal to "
                f"the one provided [{version}]",
            )
        if existing is not None and version_type == "external_gte" and version < existing.version:
            raise _conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, current version [{existing.version}] is higher than the one "
                f"provided [{version}]",
            )
        indexed = parse_document(index.mapping, doc_id, source, routing, index.seq_no + 1)
        new_version = version if version is not None else (existing.version + 1 if existing else 1)
        index.seq_no += 1
        index.live[doc_id] = StoredDocument(doc_id, copy.deepcopy(source), new_version, routing, index.seq_no, indexed)
        return (200 if exists else 201), _write_result(index, doc_id, new_version, "updated" if exists else "created")

    def _check_doc_request(self, index: _Index, doc_id: str, routing: str | None) -> None:
        if doc_id == "":
            raise bad_request(
                "action_request_validation_exception",
                "Validation Failed: 1: if _id is specified it must not be empty;",
            )
        if len(doc_id.encode()) > 512:
            raise bad_request(
                "action_request_validation_exception",
                f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than 512 bytes but was: "
                f"{len(doc_id.encode())};",
            )
        if index.mapping.routing_required and routing is None:
            raise bad_request(
                "routing_missing_exception",
                f"routing is required for [{index.name}]/[{doc_id}]",
                index_uuid="_na_",
                index=index.name,
            )

    def _write_one(self, target: str, doc_id: str, body: Any, params: dict[str, str], op_type: str) -> tuple[int, Any]:
        status, result = self._write(
            target,
            doc_id,
            body,
            op_type=op_type,
            routing=params.get("routing"),
            version=params.get("version"),
            version_type=params.get("version_type"),
            require_alias=_flag(params.get("require_alias")),
        )
        if _refresh_requested(params.get("refresh")):
            self._resolve(result["_index"])[0].refresh()
            result["forced_refresh"] = True
        return status, result

    def _get_doc(self, target: str, doc_id: str, params: dict[str, str], head: bool) -> tuple[int, Any]:
        indices = self._resolve(target)
        if len(indices) != 1:
            raise bad_request(
                "illegal_argument_exception",
                f"alias [{target}] has more than one index associated with it, can't execute a single index op",
            )
        index = indices[0]
        routing = params.get("routing")
        self._check_doc_request(index, doc_id, routing)
        if _flag(params.get("refresh")):
            index.refresh()
        doc = index.live.get(doc_id)  # realtime: no refresh needed
        if doc is None or doc.source is None:
            return 404, None if head else {"_index": index.name, "_id": doc_id, "found": False}
        body = {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
            "_source": copy.deepcopy(doc.source),
        }
        if doc.routing is not None:
            body["_routing"] = doc.routing
        return 200, None if head else body

    def _delete_doc(self, target: str, doc_id: str, params: dict[str, str]) -> tuple[int, Any]:
        index = self._write_index(target, require_alias=False)
        routing = params.get("routing")
        self._check_doc_request(index, doc_id, routing)
        version_type = params.get("version_type") or "internal"
        version = _parse_version(params.get("version"), version_type, "delete")
        existing = index.live.get(doc_id)
        if existing is not None and version_type == "external" and version <= existing.version:
            raise _conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, current version [{existing.version}] is higher or equal to "
                f"the one provided [{version}]",
            )
        found = existing is not None and existing.source is not None
        new_version = version if version is not None else (existing.version + 1 if existing else 1)
        index.seq_no += 1
        index.live[doc_id] = StoredDocument(doc_id, None, new_version, routing, index.seq_no)
        if _refresh_requested(params.get("refresh")):
            index.refresh()
        return (200 if found else 404), _write_result(index, doc_id, new_version, "deleted" if found else "not_found")

    def _bulk(self, url_index: str | None, params: dict[str, str], operations: list[Any]) -> tuple[int, Any]:
        actions = _parse_bulk(operations)
        items = []
        touched: set[str] = set()
        for line, (op, meta, source) in actions:
            target = meta.get("_index", url_index)
            if target is None:
                raise bad_request(
                    "action_request_validation_exception",
                    f"Validation Failed: 1: index is missing (action on line [{line}]);",
                )
            doc_id = meta.get("_id")
            try:
                self._injected_item_failure(doc_id)
                kwargs = {
                    "routing": meta.get("routing", params.get("routing")),
                    "version": meta.get("version"),
                    "version_type": meta.get("version_type"),
                }
                if op == "delete":
                    delete_params = {k: str(v) for k, v in kwargs.items() if v is not None}
                    status, result = self._delete_doc(target, doc_id, delete_params)
                else:
                    require_alias = meta.get("require_alias", _flag(params.get("require_alias")))
                    status, result = self._write(
                        target, doc_id, source, op_type=op, require_alias=require_alias, **kwargs
                    )
                touched.add(result["_index"])
                items.append({op: {**result, "status": status}})
            except EsError as exc:
                error = {"type": exc.error_type, "reason": exc.reason, **exc.extra}
                items.append({op: {"_index": target, "_id": doc_id, "status": exc.status, "error": error}})
        if _refresh_requested(params.get("refresh")):
            for name in touched:
                self._indices[name].refresh()
        return 200, {
            "errors": any("error" in next(iter(item.values())) for item in items),
            "took": 1,
            "items": items,
        }

    def _injected_item_failure(self, doc_id: str | None) -> None:
        for error, remaining in self._item_failures.get(doc_id, ()):
            if remaining[0] > 0:
                remaining[0] -= 1
                raise error

    # -- search --------------------------------------------------------------------------------

    def _search(self, target: str, body: Any, count_only: bool) -> tuple[int, Any]:
        body = body or {}
        allowed = {"query"} if count_only else _SEARCH_KEYS
        for key, value in body.items():
            if key not in allowed:
                raise bad_request("parsing_exception", f"Unknown key for a {_token_kind(value)} in [{key}].")
        indices = self._resolve(target)
        size, from_ = _non_negative(body, "size", 10), _non_negative(body, "from", 0)
        window = min(int(index.settings.get("max_result_window", MAX_RESULT_WINDOW)) for index in indices)
        if from_ + size > window:
            raise bad_request(
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: [{window}] but was "
                f"[{from_ + size}]. "
                "See the scroll api for a more efficient way to request large data sets. This limit can be "
                "set by "
                "changing the [index.max_result_window] index level setting.",
            )
        if "search_after" in body and from_ > 0:
            raise bad_request(
                "illegal_argument_exception", "`from` parameter must be set to 0 when `search_after` is used."
            )
        matches = []  # (sort values or None, score, index position, doc, ctx, query, highlighter)
        keys = None
        for position, index in enumerate(indices):
            ctx = Context(index.mapping, index.searchable)
            query = compile_query(body.get("query", {"match_all": {}}), ctx)
            keys = parse_sort(body["sort"], ctx) if "sort" in body else None
            after = parse_search_after(body["search_after"], keys or []) if "search_after" in body else None
            highlighter = parse_highlight(body["highlight"], ctx) if "highlight" in body else None
            for doc in index.searchable:
                score = query.score(doc, ctx)
                if score is None:
                    continue
                values = sort_values(keys, doc, score) if keys else None
                if after is not None and compare_sort_values(keys, values, after) <= 0:
                    continue
                matches.append((values, score, position, doc, ctx, query, highlighter, index))
        if count_only:
            return 200, {"count": len(matches), "_shards": _shards(len(indices))}
        if keys:
            matches.sort(key=lambda m: (m[2], m[3].seq_no))  # ties keep index order
            matches.sort(key=_cmp_key(keys))
        else:
            matches.sort(key=lambda m: (-m[1], m[2], m[3].seq_no))
        with_scores = not keys or any(k.path == "_score" for k in keys) or body.get("track_scores") is True
        hits = [self._hit(match, body, with_scores) for match in matches[from_ : from_ + size]]
        result: dict[str, Any] = {
            "max_score": max((m[1] for m in matches), default=None) if with_scores else None,
            "hits": hits,
        }
        total = _total_hits(body.get("track_total_hits", DEFAULT_TRACK_TOTAL_HITS), len(matches))
        if total is not None:
            result = {"total": total, **result}
        return 200, {"took": 1, "timed_out": False, "_shards": _shards(len(indices)), "hits": result}

    def _hit(self, match: tuple, body: dict[str, Any], with_scores: bool) -> dict[str, Any]:
        values, score, _, doc, ctx, query, highlighter, index = match
        hit: dict[str, Any] = {
            "_index": index.name,
            "_id": doc.doc_id,
            "_score": score if with_scores else None,
        }
        if doc.routing is not None:
            hit["_routing"] = doc.routing
        source = filter_source(doc.source, body.get("_source", True))
        if source is not None:
            hit["_source"] = copy.deepcopy(source)
        if highlighter is not None:
            highlight = highlighter.highlight(doc, query, ctx)
            if highlight:
                hit["highlight"] = highlight
        if values is not None:
            hit["sort"] = values
        return hit


# -- HTTP server -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # Headers and body go out in two writes: without this, Nagle's algorithm and the client's
    # delayed ACK add tens of milliseconds to every response.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        self.server.double._serve(self)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
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


def _check_media_types(headers: dict[str, str], has_body: bool) -> None:
    versions = {}
    for name in ("accept", "content-type"):
        match = _COMPAT.search(headers.get(name, ""))
        if match:
            versions[name] = int(match.group(1))
    for name, version in versions.items():
        if version != SUPPORTED_MAJOR:
            label = "Accept" if name == "accept" else "Content-Type"
            raise _media_type_error(
                f"{label} version must be version {SUPPORTED_MAJOR} (the test double refuses 7 too), "
                f"but found {version}. {label}={headers[name]}"
            )
    if has_body:
        content_type = headers.get("content-type", "")
        if not re.match(r"application/(vnd\.elasticsearch\+)?(json|x-ndjson)\b", content_type):
            raise EsError(406, "media_type_header_exception", f"Content-Type header [{content_type}] is not supported")
        if "accept" in headers and len(versions) == 1:
            raise _media_type_error(
                "A compatible version is required on both Content-Type and Accept headers if either one "
                f"has requested a compatible version. Accept={headers.get('accept')}, "
                f"Content-Type={content_type}"
            )


def _media_type_error(cause: str) -> EsError:
    return bad_request(
        "media_type_header_exception",
        "Invalid media-type value on headers [Accept, Content-Type]",
        caused_by={"type": "status_exception", "reason": cause},
    )


def _parse_body(raw: bytes, bulk: bool) -> Any:
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("parsing_exception", "request body is not UTF-8") from None
    if bulk:
        if not text.endswith("\n"):
            raise bad_request("illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
        lines = text.split("\n")[:-1]
        try:
            return [json.loads(line) for line in lines]
        except json.JSONDecodeError as exc:
            raise bad_request("x_content_parse_exception", f"bulk line is not JSON: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request("x_content_parse_exception", f"request body is not JSON: {exc}") from None


def _parse_bulk(operations: Any) -> list[tuple[int, tuple[str, dict[str, Any], Any]]]:
    """(line number, (op, metadata, source)) of each action; the whole request fails on a bad line."""
    if not operations:
        raise bad_request("action_request_validation_exception", "Validation Failed: 1: no requests added;")
    actions = []
    line = 0
    while line < len(operations):
        action = operations[line]
        line += 1
        if not isinstance(action, dict) or len(action) != 1:
            raise bad_request(
                "illegal_argument_exception",
                f"Malformed action/metadata line [{line}], expected a simple object",
            )
        ((op, meta),) = action.items()
        if op == "update":
            raise not_emulated("bulk action [update]")
        if op not in ("index", "create", "delete"):
            raise bad_request(
                "illegal_argument_exception",
                f"Malformed action/metadata line [{line}], expected one of [create, delete, index, update] "
                f"but found [{op}]",
            )
        for key in meta:
            if key not in _BULK_META:
                raise bad_request(
                    "illegal_argument_exception",
                    f"Action/metadata line [{line}] contains an unknown parameter [{key}] (or one the test "
                    "double does not emulate)",
                )
        if op == "delete" and meta.get("_id") is None:
            raise bad_request(
                "action_request_validation_exception", f"Validation Failed: 1: id is missing (line [{line}]);"
            )
        source = None
        if op != "delete":
            if line >= len(operations):
                raise bad_request("illegal_argument_exception", f"Action/metadata line [{line}] is missing its source")
            source = operations[line]
            line += 1
        actions.append((line, (op, meta, source)))
    return actions


def _parse_version(raw: Any, version_type: str, op_type: str) -> int | None:
    if version_type not in ("internal", "external", "external_gte"):
        raise bad_request("illegal_argument_exception", f"No version type match [{version_type}]")
    if version_type == "internal":
        if raw is not None:
            raise bad_request(
                "action_request_validation_exception",
                "Validation Failed: 1: internal versioning can not be used for optimistic concurrency "
                "control. "
                "Please use `if_seq_no` and `if_primary_term` instead;",
            )
        return None
    if op_type == "create":
        raise bad_request(
            "action_request_validation_exception",
            "Validation Failed: 1: create operations only support internal versioning. use index instead;",
        )
    try:
        version = int(raw) if raw is not None and not isinstance(raw, bool) else -3  # MATCH_ANY
    except (TypeError, ValueError):
        raise bad_request("illegal_argument_exception", f"Failed to parse version [{raw}]") from None
    if not 0 <= version <= MAX_VERSION:
        raise bad_request(
            "action_request_validation_exception",
            f"Validation Failed: 1: illegal version value [{version}] for version type [{version_type.upper()}];",
        )
    return version


def _conflict(index: _Index, doc_id: str, reason: str) -> EsError:
    return EsError(409, "version_conflict_engine_exception", reason, index_uuid=index.uuid, shard="0", index=index.name)


def _index_not_found(name: str, reason: str | None = None) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        reason or f"no such index [{name}]",
        **{"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_", "index": name},
    )


def _write_result(index: _Index, doc_id: str, version: int, result: str) -> dict[str, Any]:
    return {
        "_index": index.name,
        "_id": doc_id,
        "_version": version,
        "result": result,
        "_shards": {"total": 2, "successful": 1, "failed": 0},
        "_seq_no": index.seq_no,
        "_primary_term": 1,
    }


def _validate_name(name: str, error_type: str, what: str) -> None:
    problem = None
    if name != name.lower():
        problem = "must be lowercase"
    elif name[:1] in ("_", "-", "+"):
        problem = "must not start with '_', '-', or '+'"
    elif any(char in name for char in _INVALID_NAME_CHARS):
        problem = f"must not contain the following characters {list(_INVALID_NAME_CHARS)}"
    elif name in (".", ".."):
        problem = "must not be '.' or '..'"
    elif len(name.encode()) > 255:
        problem = "index name is too long"
    if problem:
        raise bad_request(error_type, f"Invalid {what} name [{name}], {problem}", index=name, index_uuid="_na_")


def _validate_setting(key: str, value: Any, creating: bool) -> None:
    if key.startswith("analysis.") and creating:
        return
    if key == "refresh_interval":
        if not _DURATION.fullmatch(str(value)):
            raise bad_request(
                "illegal_argument_exception",
                f"failed to parse setting [index.refresh_interval] with value [{value}] as a time value: "
                "unit is missing or unrecognized",
            )
        return
    bounds = {"number_of_replicas": 0, "max_result_window": 1, "number_of_shards": 1, "max_ngram_diff": 0}
    if key in bounds and (key in _DYNAMIC_SETTINGS or creating):
        if not re.fullmatch(r"\d+", str(value)) or int(value) < bounds[key]:
            raise bad_request(
                "illegal_argument_exception",
                f"Failed to parse value [{value}] for setting [index.{key}] must be >= {bounds[key]}",
            )
        return
    raise bad_request(
        "illegal_argument_exception",
        f"unknown setting [index.{key}] please check that any required plugins are installed, or check the "
        "breaking changes documentation for removed settings (or the test double does not emulate it)",
    )


def _check_write_indices(indices: dict[str, _Index]) -> None:
    writers: dict[str, list[str]] = {}
    for index in indices.values():
        for alias, props in index.aliases.items():
            if props.get("is_write_index") is True:
                writers.setdefault(alias, []).append(index.name)
    for alias, names in writers.items():
        if len(names) > 1:
            raise EsError(
                500,
                "illegal_state_exception",
                f"alias [{alias}] has more than one write index [{','.join(names)}]",
            )


def _alias_body(props: dict[str, Any]) -> dict[str, Any]:
    return {"is_write_index": props["is_write_index"]} if "is_write_index" in props else {}


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested or dotted settings → flat dotted keys without the leading "index."."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        else:
            flat[path[len("index.") :] if path.startswith("index.") else path] = value
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


def _setting_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _flag(value: Any) -> bool:
    return value in ("", "true", True)


def _refresh_requested(value: str | None) -> bool:
    if value in (None, "false"):
        return False
    if value in ("", "true", "wait_for"):
        return True  # wait_for: the double refreshes at once, which is what the caller waits for
    raise bad_request("illegal_argument_exception", f"Unknown value for refresh: [{value}].")


def _non_negative(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(
            "illegal_argument_exception",
            f"[{key}] parameter cannot be negative or a non-integer, found [{value}]",
        )
    return value


def _total_hits(track: Any, count: int) -> dict[str, Any] | None:
    if track is False:
        return None
    if track is True:
        return {"value": count, "relation": "eq"}
    if isinstance(track, int):
        return {"value": min(count, track), "relation": "gte" if count > track else "eq"}
    raise bad_request(
        "illegal_argument_exception", f"[track_total_hits] must be a boolean or an integer, found [{track}]"
    )


def _shards(count: int) -> dict[str, int]:
    return {"total": count, "successful": count, "skipped": 0, "failed": 0}


def _token_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    return "VALUE_STRING"


def _cmp_key(keys: list) -> Callable[[tuple], Any]:
    return functools.cmp_to_key(lambda a, b: compare_sort_values(keys, a[0], b[0]))
