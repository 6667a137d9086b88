"""The search engine inside the Elasticsearch test double: mappings, analysis, queries, highlights.

Only what chatsys sends is emulated (its mapping, the bool/term/match/match_phrase queries of
:func:`chatsys.search.elasticsearch.search_body`, sort, ``search_after``, ``_source`` and its
highlight options); anything else is refused with a 400 shaped like Elasticsearch's, so that a
test never passes because the double ignored something.  Text is analysed with chatsys's own
definitions (:mod:`chatsys.search.query`: word characters, folding) and highlighted with
:mod:`chatsys.search.highlight`: the double agrees with the database backend by construction,
and noida-db, which runs the same tests, is the check that both agree with an engine.

Scores are all 1.0: relevance is checked on noida and on Elasticsearch, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chatsys.search.highlight import FRAGMENT, POST_TAG, PRE_TAG, best_fragment, encode, word_boundaries
from chatsys.search.query import fold_char, lower_char, word_spans

INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
FIELD_TYPES = frozenset({"text", "keyword", "boolean", "date", *INTEGER_RANGES})


class EsError(Exception):
    """An error response: ``status`` and the ``{"error": {...}, "status": ...}`` body."""

    def __init__(self, status: int, error_type: str, reason: str, **extra: Any) -> None:
        super().__init__(f"{status} {error_type}: {reason}")
        self.status, self.error_type, self.reason, self.extra = status, error_type, reason, extra

    def error(self) -> dict[str, Any]:
        cause = {"type": self.error_type, "reason": self.reason, **self.extra}
        return {"root_cause": [dict(cause)], **cause}

    def body(self) -> dict[str, Any]:
        return {"error": self.error(), "status": self.status}


def bad_request(error_type: str, reason: str, **extra: Any) -> EsError:
    return EsError(400, error_type, reason, **extra)


def not_emulated(what: str) -> EsError:
    return bad_request("illegal_argument_exception", f"{what} is not emulated by the Elasticsearch test double")


def check_keys(where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(given) - allowed
    if unknown:
        raise not_emulated(f"{where} {sorted(unknown)}")


# -- analysis ----------------------------------------------------------------------------------

Token = tuple[str, int, int, int]  # term, position, start, end
Analyzer = Callable[[str], list[Token]]
_FILTERS = {"lowercase": lower_char, "asciifolding": fold_char}
_TOKEN_CHARS = {"letter": str.isalpha, "digit": str.isdecimal}


def _grams(text: str, spans: list[tuple[int, int]], sizes: range, edge: bool) -> list[tuple[int, int]]:
    """(start, end) of the n-grams of each span, in Lucene's order (by start, then length)."""
    return [
        (start, start + size)
        for run_start, run_end in spans
        for start in ([run_start] if edge else range(run_start, run_end))
        for size in sizes
        if start + size <= run_end
    ]


def _tokenizer(config: Mapping[str, Any]) -> Callable[[str], list[tuple[int, int]]]:
    kind = config.get("type")
    if kind == "keyword" and len(config) == 1:
        return lambda text: [(0, len(text))] if text else []
    if kind == "standard" and len(config) == 1:
        return word_spans  # an approximation: the double only needs it to accept the mapping
    if kind not in ("ngram", "edge_ngram"):
        raise not_emulated(f"tokenizer {dict(config)}")
    check_keys("tokenizer parameters", config, {"type", "min_gram", "max_gram", "token_chars", "custom_token_chars"})
    sizes = range(int(config.get("min_gram", 1)), int(config.get("max_gram", 2)) + 1)
    classes = list(config.get("token_chars", []))
    custom = str(config.get("custom_token_chars", "")) if "custom" in classes else ""
    if set(classes) - {"letter", "digit", "custom"}:
        raise not_emulated(f"token_chars {classes}")

    def is_token_char(char: str) -> bool:
        return char in custom or any(_TOKEN_CHARS[name](char) for name in classes if name != "custom")

    if classes == ["letter", "digit", "custom"] and custom == "_":
        runs = word_spans  # chatsys's word characters, at C speed for ASCII text
    elif classes:

        def runs(text: str) -> list[tuple[int, int]]:
            spans, start = [], None
            for index, char in enumerate(text + "\0"):
                if index < len(text) and is_token_char(char):
                    start = index if start is None else start
                elif start is not None:
                    spans.append((start, index))
                    start = None
            return spans

    else:

        def runs(text: str) -> list[tuple[int, int]]:
            return [(0, len(text))] if text else []

    return lambda text: _grams(text, runs(text), sizes, kind == "edge_ngram")


def build_analyzers(analysis: Mapping[str, Any]) -> dict[str, Analyzer]:
    """The analyzers an index's ``analysis`` settings define, and the built-in ``keyword``."""
    check_keys("analysis sections", analysis, {"tokenizer", "analyzer"})
    tokenizers = {"keyword": _tokenizer({"type": "keyword"}), "standard": _tokenizer({"type": "standard"})}
    tokenizers |= {name: _tokenizer(config) for name, config in (analysis.get("tokenizer") or {}).items()}
    analyzers: dict[str, Analyzer] = {"keyword": _analyzer(tokenizers["keyword"], [])}
    for name, config in (analysis.get("analyzer") or {}).items():
        check_keys(f"analyzer [{name}] parameters", config, {"type", "tokenizer", "filter"})
        if config.get("type", "custom") != "custom" or config.get("tokenizer") not in tokenizers:
            raise bad_request(
                "illegal_argument_exception", f"analyzer [{name}] is not a custom analyzer the double knows"
            )
        filters = config.get("filter", [])
        if set(filters) - set(_FILTERS):
            raise not_emulated(f"token filters {filters}")
        analyzers[name] = _analyzer(tokenizers[config["tokenizer"]], [_FILTERS[f] for f in filters])
    return analyzers


def _analyzer(tokenize: Callable[[str], list[tuple[int, int]]], filters: list[Callable[[str], str]]) -> Analyzer:
    def per_char(char: str) -> str:
        for token_filter in filters:
            char = "".join(map(token_filter, char))
        return char

    def analyze(text: str) -> list[Token]:
        if not filters or (text.isascii() and lower_char in filters):
            folded = text.lower() if filters else text  # one character for one: slice the terms
            return [(folded[s:e], n, s, e) for n, (s, e) in enumerate(tokenize(text))]
        folded_chars = [per_char(c) for c in text]
        return [("".join(folded_chars[s:e]), n, s, e) for n, (s, e) in enumerate(tokenize(text))]

    return analyze


# -- mappings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    path: str  # "body.trigram"
    type: str
    source_path: str  # where the value is in _source: "body"
    analyzer: Analyzer | None = None
    search_analyzer: Analyzer | None = None


@dataclass(frozen=True)
class IndexMapping:
    definition: dict[str, Any]
    strict: bool
    routing_required: bool
    fields: dict[str, FieldSpec] = field(default_factory=dict)


def parse_mappings(raw: Any, analyzers: Mapping[str, Analyzer]) -> IndexMapping:
    raw = raw or {}
    check_keys("mapping parameters", raw, {"dynamic", "_routing", "properties"})
    if str(raw.get("dynamic", "strict")) != "strict" and raw.get("properties"):
        raise not_emulated("dynamic mappings")
    fields: dict[str, FieldSpec] = {}
    for name, spec in (raw.get("properties") or {}).items():
        _parse_field(name, name, spec, analyzers, fields)
    routing = raw.get("_routing") or {}
    return IndexMapping(raw, str(raw.get("dynamic", "true")) == "strict", bool(routing.get("required")), fields)


def _parse_field(path: str, source: str, spec: Mapping[str, Any], analyzers, fields: dict[str, FieldSpec]) -> None:
    kind = spec.get("type")
    if kind not in FIELD_TYPES:
        raise bad_request("mapper_parsing_exception", f"No handler for type [{kind}] declared on field [{path}]")
    if kind != "text":
        check_keys(f"parameters of [{path}]", spec, {"type"})
        fields[path] = FieldSpec(path, kind, source)
        return
    check_keys(f"parameters of [{path}]", spec, {"type", "analyzer", "search_analyzer", "fields"})
    names = (spec.get("analyzer", "keyword"), spec.get("search_analyzer", spec.get("analyzer", "keyword")))
    for name in names:
        if name not in analyzers:
            raise bad_request("mapper_parsing_exception", f"analyzer [{name}] has not been configured in mappings")
    fields[path] = FieldSpec(path, kind, source, analyzers[names[0]], analyzers[names[1]])
    for sub, sub_spec in (spec.get("fields") or {}).items():
        _parse_field(f"{path}.{sub}", source, sub_spec, analyzers, fields)


def parse_document(mapping: IndexMapping, source: Any) -> dict[str, Any]:
    """Validate ``source`` against the mapping; the values by field path, as indexed."""
    if not isinstance(source, dict):
        raise bad_request("document_parsing_exception", "failed to parse: the document is not an object")
    values: dict[str, Any] = {}
    for key, value in source.items():
        spec = mapping.fields.get(key)
        if spec is None:
            if mapping.strict:
                raise bad_request(
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{key}] within [_doc] is not allowed",
                )
            continue
        if value is not None:
            values[key] = _coerce(spec, value)
    return values


def _coerce(spec: FieldSpec, value: Any) -> Any:
    try:
        if spec.type in INTEGER_RANGES:
            low, high = INTEGER_RANGES[spec.type]
            if isinstance(value, bool) or not low <= int(value) <= high or int(value) != float(value):
                raise ValueError(value)
            return int(value)
        if spec.type == "boolean":
            if value not in (True, False, "true", "false"):
                raise ValueError(value)
            return value in (True, "true")
        if spec.type == "date":
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        raise bad_request(
            "document_parsing_exception", f"[1:2] failed to parse field [{spec.path}] of type [{spec.type}]"
        ) from None


# -- queries -----------------------------------------------------------------------------------


class Doc:
    """A searchable document; its fields are analysed on first use (indexing stays cheap)."""

    def __init__(self, doc_id: str, source: dict[str, Any], values: dict[str, Any], routing: str | None, seq: int):
        self.doc_id, self.source, self.values, self.routing, self.seq = doc_id, source, values, routing, seq
        self._tokens: dict[str, list[Token]] = {}

    def tokens(self, spec: FieldSpec) -> list[Token]:
        if spec.path not in self._tokens:
            text = self.values.get(spec.source_path)
            self._tokens[spec.path] = spec.analyzer(text) if isinstance(text, str) else []
        return self._tokens[spec.path]


# A compiled query: the matches of a document as (field, start, end, term) spans, or None.
Query = Callable[[Doc], list[tuple[str, int, int, str]] | None]


def compile_query(raw: Any, fields: Mapping[str, FieldSpec]) -> Query:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise bad_request("parsing_exception", "a query is an object with one key")
    ((kind, body),) = raw.items()
    if kind == "match_all":
        return lambda doc: []
    if kind == "bool":
        check_keys("bool clauses", body, {"filter", "must", "should"})
        required = [compile_query(q, fields) for key in ("filter", "must") for q in _as_list(body.get(key))]
        optional = [compile_query(q, fields) for q in _as_list(body.get("should"))]

        def match_bool(doc: Doc):
            found = []
            for query in required:
                spans = query(doc)
                if spans is None:
                    return None
                found += spans
            spans = [query(doc) for query in optional]
            if optional and not required and all(s is None for s in spans):
                return None
            return found + [span for s in spans if s for span in s]

        return match_bool
    if kind not in ("term", "match", "match_phrase") or not isinstance(body, dict) or len(body) != 1:
        raise not_emulated(f"query [{kind}]")
    ((path, params),) = body.items()
    params = params if isinstance(params, dict) else {"value" if kind == "term" else "query": params}
    check_keys(f"[{kind}] parameters", params, {"value"} if kind == "term" else {"query", "boost"})
    spec = fields.get(path)
    if spec is None:
        return lambda doc: None
    if kind == "term":
        value = _coerce(spec, params["value"])
        return lambda doc: [] if doc.values.get(spec.source_path) == value else None
    tokens = spec.search_analyzer(str(params["query"]))
    if kind == "match" or len(tokens) < 2:
        terms = {term for term, *_ in tokens}
        return lambda doc: [(path, s, e, t) for t, _, s, e in doc.tokens(spec) if t in terms] or None
    phrase = [term for term, *_ in tokens]

    def match_phrase(doc: Doc):
        indexed = doc.tokens(spec)
        terms = [t for t, *_ in indexed]
        found = []
        for at in range(len(terms) - len(phrase) + 1):
            if terms[at : at + len(phrase)] == phrase:
                found.append((path, indexed[at][2], indexed[at + len(phrase) - 1][3], str(params["query"])))
        return found or None

    return match_phrase


def _as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


# -- sort, source, highlight ------------------------------------------------------------------


def sort_keys(raw: Any, fields: Mapping[str, FieldSpec]) -> list[tuple[str, bool]]:
    """(field or "_score", descending) of each sort clause."""
    keys = []
    for item in _as_list(raw):
        ((path, order),) = item.items() if isinstance(item, dict) else [(item, {})]
        order = order.get("order", "desc" if path == "_score" else "asc") if isinstance(order, dict) else order
        if path != "_score" and (path not in fields or fields[path].type == "text"):
            raise bad_request("illegal_argument_exception", f"cannot sort on [{path}] in the test double")
        keys.append((path, order == "desc"))
    return keys


def sort_values(keys: list[tuple[str, bool]], doc: Doc) -> list[Any]:
    return [1.0 if path == "_score" else doc.values.get(path) for path, _ in keys]


def filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is True or spec is None:
        return source
    if not isinstance(spec, list):
        raise not_emulated(f"_source {spec!r}")
    return {key: value for key, value in source.items() if key in spec}


HIGHLIGHT_OPTIONS = {
    "type": "unified", "encoder": "html", "pre_tags": [PRE_TAG], "post_tags": [POST_TAG],
    "number_of_fragments": 1, "fragment_size": FRAGMENT,
}  # fmt: skip


def parse_highlight(raw: Any, fields: Mapping[str, FieldSpec]) -> tuple[list[str], int]:
    """The fields to highlight and ``no_match_size``: chatsys's options, and only those."""
    given = {k: v for k, v in raw.items() if k not in ("fields", "no_match_size")}
    if given != HIGHLIGHT_OPTIONS or any(options for options in raw.get("fields", {}).values()):
        raise not_emulated(f"highlight options other than chatsys's: {raw}")
    return list(raw["fields"]), int(raw.get("no_match_size", 0))


def highlight(doc: Doc, paths: list[str], no_match: int, spans, fields: Mapping[str, FieldSpec]) -> dict:
    result = {}
    for path in paths:
        spec = fields.get(path)
        text = doc.values.get(spec.source_path) if spec else None
        if not isinstance(text, str):
            continue
        fragment = best_fragment(text, [(s, e, t) for p, s, e, t in spans if p == path])
        if fragment is None and no_match > 0:
            end = len(text)
            if no_match < end:  # up to the first word boundary after no_match_size
                end = next((b for b in word_boundaries(text) if b > no_match), end)
            fragment = encode(text[:end]).strip()
        if fragment:
            result[path] = [fragment]
    return result
