"""The search engine inside the Elasticsearch test double: analysis, mappings, queries, highlights.

Pure Python, no HTTP (that is :mod:`tests.support.es_double`).  It emulates the Elasticsearch 8
behaviour that chatsys relies on, closely enough to test the backend's requests against, and it
refuses — with a 400 error shaped like Elasticsearch's — every setting, mapping parameter, query
or option it does not emulate, so that a test can never pass because the double silently
ignored something.

What is emulated, and how closely, is listed in the docstring of :mod:`tests.support.es_double`.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

INTEGER_RANGES = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
FLOAT_TYPES = frozenset({"float", "double"})
SORTABLE_TYPES = frozenset({"keyword", "boolean", "date", *INTEGER_RANGES, *FLOAT_TYPES})
FIELD_TYPES = frozenset({"text", *SORTABLE_TYPES})

# Lucene's BM25 defaults.
BM25_K1 = 1.2
BM25_B = 0.75
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Gap between the values of a multi-valued text field, as Elasticsearch's default.
POSITION_INCREMENT_GAP = 100


class EsError(Exception):
    """An error response: ``status`` and the ``{"error": {...}, "status": ...}`` body."""

    def __init__(self, status: int, error_type: str, reason: str, **extra: Any) -> None:
        super().__init__(f"{status} {error_type}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.extra = extra

    def error(self) -> dict[str, Any]:
        cause = {"type": self.error_type, "reason": self.reason, **self.extra}
        return {"root_cause": [dict(cause)], **cause}

    def body(self) -> dict[str, Any]:
        return {"error": self.error(), "status": self.status}


def bad_request(error_type: str, reason: str, **extra: Any) -> EsError:
    return EsError(400, error_type, reason, **extra)


def not_emulated(what: str) -> EsError:
    return bad_request("illegal_argument_exception", f"{what} is not emulated by the Elasticsearch test double")


# -- analysis ----------------------------------------------------------------------------------


class Token(NamedTuple):  # a tuple: an indexed message makes a few hundred of them
    term: str
    position: int
    start: int  # character offsets in the analysed text
    end: int


_FOLD_SPECIAL = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH",
    "ı": "i", "ħ": "h",  # noqa: RUF001 - letters to fold, not look-alikes "Ħ": "H", "ŀ": "l", "Ŀ": "L", "ŧ": "t", "Ŧ": "T", "ŋ": "n", "Ŋ": "N",
    "ĸ": "q", "ſ": "s",  # noqa: RUF001
}  # fmt: skip


@functools.lru_cache(maxsize=4096)
def fold_char(char: str) -> str:
    """ASCII folding of one character, like Lucene's ASCIIFoldingFilter for Latin text: the
    compatibility decomposition without its marks when that is ASCII, else the character."""
    if char.isascii():
        return char
    if char in _FOLD_SPECIAL:
        return _FOLD_SPECIAL[char]
    stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return stripped if stripped and stripped.isascii() else char


def ascii_fold(text: str) -> str:
    if text.isascii():  # every character folds to itself; the bench's indexing is mostly this
        return text
    return "".join(fold_char(char) for char in text)


_TOKEN_CHAR_CLASSES: dict[str, Callable[[str], bool]] = {
    # As Elasticsearch's CharMatcher.Basic, on Unicode general categories.
    "letter": lambda c: unicodedata.category(c) in ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "digit": lambda c: unicodedata.category(c) == "Nd",
    "whitespace": str.isspace,
    "punctuation": lambda c: unicodedata.category(c).startswith("P"),
    "symbol": lambda c: unicodedata.category(c).startswith("S"),
}

# Standard tokenizer (Unicode UAX #29 word breaks), approximated: runs of word characters, kept
# together across a single apostrophe or period between them ("don't", "3.14", "e.g").
_STANDARD_WORD = re.compile(r"\w+(?:['\u2019.]\w+)*")
_MAX_TOKEN_LENGTH = 255

Tokenizer = Callable[[str], list[tuple[str, int, int]]]


def _runs(text: str, is_token_char: Callable[[str], bool] | None) -> Iterable[tuple[int, int]]:
    """(start, end) of the runs of token characters; the whole text when every char is one."""
    if is_token_char is None:
        if text:
            yield 0, len(text)
        return
    start = None
    for index, char in enumerate(text):
        if is_token_char(char):
            if start is None:
                start = index
        elif start is not None:
            yield start, index
            start = None
    if start is not None:
        yield start, len(text)


def _ngram_tokenizer(min_gram: int, max_gram: int, edge: bool, is_token_char) -> Tokenizer:
    def tokenize(text: str) -> list[tuple[str, int, int]]:
        grams = []
        for run_start, run_end in _runs(text, is_token_char):
            starts = [run_start] if edge else range(run_start, run_end)
            # Lucene order: by start offset, then by length.
            for start in starts:
                for size in range(min_gram, max_gram + 1):
                    if start + size <= run_end:
                        grams.append((text[start : start + size], start, start + size))
        return grams

    return tokenize


def _standard_tokenizer(text: str) -> list[tuple[str, int, int]]:
    tokens = []
    for match in _STANDARD_WORD.finditer(text):
        if any(c.isalnum() for c in match.group()):
            for start in range(match.start(), match.end(), _MAX_TOKEN_LENGTH):
                end = min(start + _MAX_TOKEN_LENGTH, match.end())
                tokens.append((text[start:end], start, end))
    return tokens


def _keyword_tokenizer(text: str) -> list[tuple[str, int, int]]:
    return [(text, 0, len(text))] if text else []


def _whitespace_tokenizer(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


BUILTIN_TOKENIZERS: dict[str, Tokenizer] = {
    "standard": _standard_tokenizer,
    "keyword": _keyword_tokenizer,
    "whitespace": _whitespace_tokenizer,
}
BUILTIN_FILTERS: dict[str, Callable[[str], str]] = {"lowercase": str.lower, "asciifolding": ascii_fold}
# Filters that map each character of ASCII text to exactly one character, named one by one: a
# filter added to BUILTIN_FILTERS later (trim, stop, a stemmer) must not join the shortcut.
_ONE_FOR_ONE_ON_ASCII = frozenset({str.lower, ascii_fold})


@dataclass(frozen=True)
class Analyzer:
    name: str
    tokenizer: Tokenizer
    filters: tuple[Callable[[str], str], ...] = ()

    def analyze(self, text: str, first_position: int = 0) -> list[Token]:
        grams = self.tokenizer(text)
        if text.isascii() and all(f in _ONE_FOR_ONE_ON_ASCII for f in self.filters):
            # Each character filters to one character: filter the text once and slice it (an
            # n-gram field has ~100 tokens per message, each filtered on its own otherwise).
            for token_filter in self.filters:
                text = token_filter(text)
            return [
                Token(text[start:end], position, start, end)
                for position, (_, start, end) in enumerate(grams, start=first_position)
            ]
        tokens = []
        for position, (term, start, end) in enumerate(grams, start=first_position):
            for token_filter in self.filters:
                term = token_filter(term)
            tokens.append(Token(term, position, start, end))
        return tokens


BUILTIN_ANALYZERS = {
    "standard": Analyzer("standard", _standard_tokenizer, (str.lower,)),
    "keyword": Analyzer("keyword", _keyword_tokenizer),
    "whitespace": Analyzer("whitespace", _whitespace_tokenizer),
}


def _int_param(config: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = config.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(
            "illegal_argument_exception", f"Failed to parse value [{value}] for setting [{where}.{key}]"
        ) from None


def build_analyzers(analysis: Mapping[str, Any], max_ngram_diff: int) -> dict[str, Analyzer]:
    """The analyzers of an index from its ``analysis`` settings (built-ins included)."""
    for section in analysis:
        if section not in ("analyzer", "tokenizer", "filter"):
            raise not_emulated(f"analysis section [{section}]")
    tokenizers: dict[str, Tokenizer] = dict(BUILTIN_TOKENIZERS)
    for name, config in (analysis.get("tokenizer") or {}).items():
        tokenizers[name] = _build_tokenizer(name, config, max_ngram_diff)
    filters: dict[str, Callable[[str], str]] = dict(BUILTIN_FILTERS)
    for name, config in (analysis.get("filter") or {}).items():
        kind = config.get("type")
        if kind not in BUILTIN_FILTERS or set(config) - {"type"}:
            raise not_emulated(f"token filter [{name}] of type [{kind}] with {sorted(set(config) - {'type'})}")
        filters[name] = BUILTIN_FILTERS[kind]
    analyzers = dict(BUILTIN_ANALYZERS)
    for name, config in (analysis.get("analyzer") or {}).items():
        kind = config.get("type", "custom")
        if kind != "custom":
            if kind not in BUILTIN_ANALYZERS or set(config) - {"type"}:
                raise not_emulated(f"analyzer [{name}] of type [{kind}]")
            analyzers[name] = BUILTIN_ANALYZERS[kind]
            continue
        unknown = set(config) - {"type", "tokenizer", "filter"}
        if unknown:
            raise not_emulated(f"analyzer parameters {sorted(unknown)} of [{name}]")
        tokenizer_name = config.get("tokenizer")
        if tokenizer_name not in tokenizers:
            raise bad_request(
                "illegal_argument_exception",
                f"Custom Analyzer [{name}] failed to find tokenizer under name [{tokenizer_name}]",
            )
        chain = []
        filter_names = config.get("filter", [])
        for filter_name in [filter_names] if isinstance(filter_names, str) else filter_names:
            if filter_name not in filters:
                raise bad_request(
                    "illegal_argument_exception",
                    f"Custom Analyzer [{name}] failed to find filter under name [{filter_name}]",
                )
            chain.append(filters[filter_name])
        analyzers[name] = Analyzer(name, tokenizers[tokenizer_name], tuple(chain))
    return analyzers


def _build_tokenizer(name: str, config: Mapping[str, Any], max_ngram_diff: int) -> Tokenizer:
    kind = config.get("type")
    if kind not in ("ngram", "edge_ngram"):
        if kind in BUILTIN_TOKENIZERS and not set(config) - {"type"}:
            return BUILTIN_TOKENIZERS[kind]
        raise not_emulated(f"tokenizer [{name}] of type [{kind}]")
    unknown = set(config) - {"type", "min_gram", "max_gram", "token_chars", "custom_token_chars"}
    if unknown:
        raise not_emulated(f"tokenizer parameters {sorted(unknown)} of [{name}]")
    where = f"index.analysis.tokenizer.{name}"
    min_gram = _int_param(config, "min_gram", 1, where)
    max_gram = _int_param(config, "max_gram", 2, where)
    if min_gram < 1 or max_gram < min_gram:
        raise bad_request(
            "illegal_argument_exception",
            f"min_gram [{min_gram}] and max_gram [{max_gram}] of [{name}] are not valid",
        )
    if kind == "ngram" and max_gram - min_gram > max_ngram_diff:
        raise bad_request(
            "illegal_argument_exception",
            "The difference between max_gram and min_gram in NGram Tokenizer must be less than or equal to: "
            f"[{max_ngram_diff}] but was [{max_gram - min_gram}]. This limit can be set by changing the "
            "[index.max_ngram_diff] index level setting.",
        )
    classes = config.get("token_chars", [])
    classes = [classes] if isinstance(classes, str) else list(classes)
    matchers = []
    for class_name in classes:
        if class_name == "custom":
            custom = config.get("custom_token_chars")
            if not custom:
                raise bad_request(
                    "illegal_argument_exception", "Token type: 'custom' requires setting `custom_token_chars`"
                )
            matchers.append(lambda c, chars=str(custom): c in chars)
        elif class_name in _TOKEN_CHAR_CLASSES:
            matchers.append(_TOKEN_CHAR_CLASSES[class_name])
        else:
            raise bad_request(
                "illegal_argument_exception",
                f"Unknown token type: '{class_name}', must be one of [custom, digit, letter, punctuation, "
                "symbol, whitespace]",
            )
    # A pure function of one character, asked for every character of every indexed text.
    is_token_char = functools.lru_cache(maxsize=4096)(lambda c: any(m(c) for m in matchers)) if matchers else None
    return _ngram_tokenizer(min_gram, max_gram, kind == "edge_ngram", is_token_char)


# -- mappings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    path: str  # "body.trigram"
    type: str
    source_path: str  # where the value is in _source: "body"
    analyzer: Analyzer | None = None  # text fields
    search_analyzer: Analyzer | None = None


@dataclass(frozen=True)
class IndexMapping:
    """A parsed mapping: what the index stores and how (the raw JSON stays in ``definition``)."""

    definition: dict[str, Any]
    dynamic: str
    routing_required: bool
    fields: dict[str, FieldSpec]
    top_level: frozenset[str]


_FIELD_PARAMS = {"text": {"type", "analyzer", "search_analyzer", "fields"}}


def parse_mappings(raw: Any, analyzers: Mapping[str, Analyzer]) -> IndexMapping:
    """Validate and parse a ``mappings`` object of a create-index request."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise bad_request("mapper_parsing_exception", "Failed to parse mapping: mappings must be an object")
    unknown = set(raw) - {"dynamic", "_routing", "properties", "_meta"}
    if unknown:
        raise not_emulated(f"mapping parameters {sorted(unknown)}")
    dynamic = str(raw.get("dynamic", "true")).lower()
    if dynamic not in ("true", "false", "strict"):
        raise not_emulated(f"dynamic [{dynamic}]")
    routing = raw.get("_routing", {})
    if not isinstance(routing, dict) or set(routing) - {"required"}:
        raise not_emulated(f"_routing {routing}")
    fields: dict[str, FieldSpec] = {}
    properties = raw.get("properties", {})
    for name, spec in properties.items():
        _parse_field(name, name, spec, analyzers, fields, multi_field=False)
    return IndexMapping(
        definition=copy.deepcopy(raw),
        dynamic=dynamic,
        routing_required=routing.get("required") in (True, "true"),
        fields=fields,
        top_level=frozenset(properties),
    )


def _parse_field(path, source_path, spec, analyzers, fields, multi_field) -> None:
    if not isinstance(spec, dict) or "type" not in spec:
        if isinstance(spec, dict) and "properties" in spec:
            raise not_emulated(f"object field [{path}]")
        raise bad_request("mapper_parsing_exception", f"No type specified for field [{path}]")
    kind = spec["type"]
    if kind not in FIELD_TYPES:
        raise bad_request("mapper_parsing_exception", f"No handler for type [{kind}] declared on field [{path}]")
    allowed = _FIELD_PARAMS.get(kind, {"type"})
    if multi_field:
        allowed = allowed - {"fields"}
    for param in spec:
        if param not in allowed:
            if param in (
                "fields",
                "index",
                "store",
                "doc_values",
                "norms",
                "format",
                "ignore_above",
                "index_options",
                "copy_to",
            ):
                raise not_emulated(f"parameter [{param}] on mapper [{path}] of type [{kind}]")
            raise bad_request(
                "mapper_parsing_exception", f"unknown parameter [{param}] on mapper [{path}] of type [{kind}]"
            )
    analyzer = search_analyzer = None
    if kind == "text":
        analyzer = _analyzer(spec.get("analyzer", "standard"), analyzers)
        search_analyzer = _analyzer(spec["search_analyzer"], analyzers) if "search_analyzer" in spec else analyzer
    fields[path] = FieldSpec(path, kind, source_path, analyzer, search_analyzer)
    for sub_name, sub_spec in (spec.get("fields") or {}).items():
        _parse_field(f"{path}.{sub_name}", source_path, sub_spec, analyzers, fields, multi_field=True)


def _analyzer(name: str, analyzers: Mapping[str, Analyzer]) -> Analyzer:
    if name not in analyzers:
        raise bad_request(
            "mapper_parsing_exception",
            f"Failed to parse mapping: analyzer [{name}] has not been configured in mappings",
        )
    return analyzers[name]


# -- documents ---------------------------------------------------------------------------------


@dataclass
class IndexedDoc:
    """A document as the engine sees it: typed values and analysed tokens per field."""

    doc_id: str
    source: dict[str, Any]
    routing: str | None
    seq_no: int
    values: dict[str, list[Any]] = field(default_factory=dict)  # non-text fields
    tokens: dict[str, list[Token]] = field(default_factory=dict)  # text fields

    @functools.cached_property
    def postings(self) -> dict[str, dict[str, list[int]]]:
        """field → term → positions."""
        result: dict[str, dict[str, list[int]]] = {}
        for path, tokens in self.tokens.items():
            terms: dict[str, list[int]] = {}
            for token in tokens:
                terms.setdefault(token.term, []).append(token.position)
            result[path] = terms
        return result


def parse_document(mapping: IndexMapping, doc_id: str, source: Any, routing: str | None, seq_no: int) -> IndexedDoc:
    """Validate ``source`` against the mapping and analyse it; raise like Elasticsearch."""
    if not isinstance(source, dict):
        raise bad_request(
            "document_parsing_exception",
            f"[1:1] failed to parse: document with id '{doc_id}' is not an object",
        )
    doc = IndexedDoc(doc_id, source, routing, seq_no)
    for key, value in source.items():
        if key not in mapping.top_level:
            if mapping.dynamic == "strict":
                raise bad_request(
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{key}] within [_doc] is not allowed",
                )
            if mapping.dynamic == "true":
                raise not_emulated(f"dynamic mapping of new field [{key}]")
            continue  # dynamic: false — kept in _source, not indexed
        for spec in mapping.fields.values():
            if spec.source_path == key:
                _index_value(doc, spec, value)
    return doc


def _index_value(doc: IndexedDoc, spec: FieldSpec, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if spec.type == "text":
        tokens: list[Token] = []
        position = 0
        for item in values:
            if item is None:
                continue
            text = _scalar_text(doc, spec, item)
            analysed = spec.analyzer.analyze(text, first_position=position)
            tokens.extend(analysed)
            if analysed:
                position = analysed[-1].position + POSITION_INCREMENT_GAP + 1
        doc.tokens[spec.path] = tokens
        return
    doc.values[spec.path] = [coerce(spec, item, doc.doc_id) for item in values if item is not None]


def _scalar_text(doc: IndexedDoc, spec: FieldSpec, item: Any) -> str:
    if isinstance(item, dict | list):
        raise _parse_failure(spec, item, doc.doc_id)
    return item if isinstance(item, str) else json_scalar(item)


def json_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_failure(spec: FieldSpec, value: Any, doc_id: str | None, cause: str | None = None) -> EsError:
    where = f" in document with id '{doc_id}'" if doc_id is not None else ""
    extra = {"caused_by": {"type": "illegal_argument_exception", "reason": cause}} if cause else {}
    return bad_request(
        "document_parsing_exception",
        f"[1:2] failed to parse field [{spec.path}] of type [{spec.type}]{where}. Preview of field's value: '{value}'",
        **extra,
    )


def coerce(spec: FieldSpec, value: Any, doc_id: str | None = None) -> Any:
    """A value of a non-text field, as Elasticsearch would index it (or raise)."""
    kind = spec.type
    if isinstance(value, dict | list):
        raise _parse_failure(spec, value, doc_id)
    if kind == "keyword":
        return json_scalar(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise _parse_failure(
            spec, value, doc_id, f"Failed to parse value [{value}] as only [true] or [false] are allowed."
        )
    if kind in INTEGER_RANGES:
        number = _number(spec, value, doc_id)
        if not math.isfinite(number):
            raise _parse_failure(spec, value, doc_id)
        low, high = INTEGER_RANGES[kind]
        if not low <= number <= high:
            raise _parse_failure(
                spec,
                value,
                doc_id,
                f"Value [{value}] is out of range for {'an' if kind == 'integer' else 'a'} {kind}",
            )
        return int(number)  # coerce: 5.9 → 5, "7" → 7
    if kind in FLOAT_TYPES:
        return float(_number(spec, value, doc_id))
    if kind == "date":
        return _epoch_millis(spec, value, doc_id)
    raise AssertionError(kind)


def _number(spec: FieldSpec, value: Any, doc_id: str | None) -> int | float:
    if isinstance(value, bool):
        raise _parse_failure(spec, value, doc_id)
    if isinstance(value, int | float):
        return value
    try:
        text = str(value).strip()
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    except ValueError:
        raise _parse_failure(spec, value, doc_id, f'For input string: "{value}"') from None


def _epoch_millis(spec: FieldSpec, value: Any, doc_id: str | None) -> int:
    """``strict_date_optional_time||epoch_millis``, the default date format."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        if re.fullmatch(r"\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)?)?(Z|[+-]\d{2}:?\d{2})?)?)?", value):
            try:
                parsed = datetime.fromisoformat(_pad_date(value))
            except ValueError:
                pass
            else:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                return (parsed - _EPOCH) // timedelta(milliseconds=1)
    raise _parse_failure(
        spec,
        value,
        doc_id,
        f"failed to parse date field [{value}] with format [strict_date_optional_time||epoch_millis]",
    )


def _pad_date(value: str) -> str:
    # fromisoformat needs a full date and at most 6 fraction digits.
    date, _, rest = value.partition("T")
    parts = date.split("-")
    date = "-".join(parts + ["01"] * (3 - len(parts)))
    if not rest:
        return date
    rest = re.sub(r"\.(\d{6})\d+", r".\1", rest)
    return f"{date}T{rest}"


# -- field statistics (BM25) -------------------------------------------------------------------


@dataclass
class FieldStats:
    doc_count: int = 0
    total_length: int = 0
    doc_freq: Counter = field(default_factory=Counter)

    @property
    def average_length(self) -> float:
        return self.total_length / self.doc_count if self.doc_count else 1.0

    def idf(self, term: str) -> float:
        df = self.doc_freq.get(term, 0)
        return math.log(1 + (self.doc_count - df + 0.5) / (df + 0.5))


def field_stats(docs: Iterable[IndexedDoc]) -> dict[str, FieldStats]:
    stats: dict[str, FieldStats] = {}
    for doc in docs:
        for path, terms in doc.postings.items():
            if not terms:
                continue
            entry = stats.setdefault(path, FieldStats())
            entry.doc_count += 1
            entry.total_length += len(doc.tokens[path])
            entry.doc_freq.update(terms.keys())
    return stats


def _bm25(stats: FieldStats | None, idf: float, freq: int, length: int) -> float:
    if stats is None or freq == 0:
        return 0.0
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / stats.average_length)
    return idf * freq / (freq + norm)


# -- queries -----------------------------------------------------------------------------------


class Context:
    """What a query needs to run against one index: its fields and their statistics."""

    def __init__(self, mapping: IndexMapping, docs: Sequence[IndexedDoc]) -> None:
        self.mapping = mapping
        self.stats = field_stats(docs)

    def field(self, path: str) -> FieldSpec | None:
        return self.mapping.fields.get(path)


class Query:
    """A compiled query: ``score(doc)`` is None when ``doc`` does not match."""

    def score(self, doc: IndexedDoc, ctx: Context) -> float | None:
        raise NotImplementedError

    def highlight_terms(self, path: str, ctx: Context) -> list[list[tuple[str, int]]]:
        """Term sequences (term, relative position) that the highlighter marks in ``path``."""
        return []


@dataclass
class MatchAll(Query):
    boost: float = 1.0

    def score(self, doc, ctx):
        return self.boost


class MatchNone(Query):
    def score(self, doc, ctx):
        return None


@dataclass
class ValueQuery(Query):
    """term / terms / match on a non-text field: constant score when a value is equal."""

    path: str
    values: list[Any]
    boost: float = 1.0

    def score(self, doc, ctx):
        present = doc.values.get(self.path, ())
        return self.boost if any(value in present for value in self.values) else None


@dataclass
class TermsQuery(Query):
    """Terms on a text field; ``require_all`` for match with operator "and"."""

    path: str
    terms: list[str]
    require_all: bool = False
    boost: float = 1.0

    def score(self, doc, ctx):
        postings = doc.postings.get(self.path, {})
        matched = [term for term in self.terms if term in postings]
        if not matched or (self.require_all and set(matched) != set(self.terms)):
            return None
        stats = ctx.stats.get(self.path)
        length = len(doc.tokens.get(self.path, ()))
        return self.boost * sum(_bm25(stats, stats.idf(t) if stats else 0, len(postings[t]), length) for t in matched)

    def highlight_terms(self, path, ctx):
        return [[(term, 0)] for term in self.terms] if path == self.path else []


@dataclass
class PhraseQuery(Query):
    path: str
    terms: list[tuple[str, int]]  # (term, position relative to the first)
    boost: float = 1.0

    def score(self, doc, ctx):
        postings = doc.postings.get(self.path, {})
        if any(term not in postings for term, _ in self.terms):
            return None
        first, _ = self.terms[0]
        others = [(set(postings[term]), offset) for term, offset in self.terms[1:]]
        freq = sum(1 for p in postings[first] if all(p + offset in positions for positions, offset in others))
        if not freq:
            return None
        stats = ctx.stats.get(self.path)
        idf = sum(stats.idf(term) for term, _ in self.terms) if stats else 0.0
        return self.boost * _bm25(stats, idf, freq, len(doc.tokens.get(self.path, ())))

    def highlight_terms(self, path, ctx):
        return [self.terms] if path == self.path else []


@dataclass
class BoolQuery(Query):
    must: list[Query]
    filter: list[Query]
    should: list[Query]
    must_not: list[Query]
    minimum_should_match: int
    boost: float = 1.0

    def score(self, doc, ctx):
        total = 0.0
        for clause in self.must:
            score = clause.score(doc, ctx)
            if score is None:
                return None
            total += score
        if any(clause.score(doc, ctx) is None for clause in self.filter):
            return None
        if any(clause.score(doc, ctx) is not None for clause in self.must_not):
            return None
        matched = 0
        for clause in self.should:
            score = clause.score(doc, ctx)
            if score is not None:
                matched += 1
                total += score
        if matched < self.minimum_should_match:
            return None
        return total * self.boost

    def highlight_terms(self, path, ctx):
        # Like the unified highlighter: every clause but must_not.
        return [seq for clause in (*self.must, *self.filter, *self.should) for seq in clause.highlight_terms(path, ctx)]


_QUERY_NAMES = ("bool", "term", "terms", "match", "match_phrase", "match_all", "match_none")


def compile_query(raw: Any, ctx: Context) -> Query:
    """Parse a query of the DSL; anything outside the emulated subset is a 400."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise bad_request(
            "parsing_exception",
            f"query malformed, must be an object with exactly one query name, got {raw!r}",
        )
    ((name, body),) = raw.items()
    if name not in _QUERY_NAMES:
        raise bad_request(
            "parsing_exception",
            f"unknown query [{name}] (the test double emulates {', '.join(_QUERY_NAMES)})",
        )
    if not isinstance(body, dict):
        raise bad_request("parsing_exception", f"[{name}] query malformed, no start_object after query name")
    if name == "bool":
        return _compile_bool(body, ctx)
    if name in ("match_all", "match_none"):
        _check_keys(name, body, {"boost"})
        return MatchAll(float(body.get("boost", 1.0))) if name == "match_all" else MatchNone()
    if name == "terms":
        return _compile_terms(body, ctx)
    path, params = _single_field(name, body)
    if name == "term":
        return _compile_term(path, params, ctx)
    if name == "match":
        return _compile_match(path, params, ctx)
    return _compile_phrase(path, params, ctx)


def _check_keys(name: str, body: Mapping[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_request("parsing_exception", f"[{name}] query does not support [{key}]")


def _single_field(name: str, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if len(body) != 1:
        raise bad_request("parsing_exception", f"[{name}] query doesn't support multiple fields, found {sorted(body)}")
    ((path, params),) = body.items()
    return path, params if isinstance(params, dict) else {"query" if name.startswith("match") else "value": params}


def _compile_bool(body: Mapping[str, Any], ctx: Context) -> Query:
    _check_keys("bool", body, {"must", "filter", "should", "must_not", "minimum_should_match", "boost"})

    def clauses(key: str) -> list[Query]:
        value = body.get(key, [])
        return [compile_query(item, ctx) for item in ([value] if isinstance(value, dict) else value)]

    must, filter_, should, must_not = (
        clauses("must"),
        clauses("filter"),
        clauses("should"),
        clauses("must_not"),
    )
    if "minimum_should_match" in body:
        raw = body["minimum_should_match"]
        if isinstance(raw, bool) or not re.fullmatch(r"\d+", str(raw)):
            raise not_emulated(f"minimum_should_match [{raw}]")
        minimum = int(raw)
    else:
        # Without required clauses, at least one should clause must match.
        minimum = 0 if (must or filter_) else min(1, len(should))
    return BoolQuery(must, filter_, should, must_not, minimum, float(body.get("boost", 1.0)))


def _compile_term(path: str, params: Mapping[str, Any], ctx: Context) -> Query:
    _check_keys("term", params, {"value", "boost"})
    if "value" not in params:
        raise bad_request("parsing_exception", "[term] query requires a value")
    boost = float(params.get("boost", 1.0))
    spec = ctx.field(path)
    if spec is None:
        return MatchNone()
    if spec.type == "text":
        return TermsQuery(path, [json_scalar(params["value"])], boost=boost)
    return ValueQuery(path, [_query_value(spec, params["value"])], boost)


def _compile_terms(body: Mapping[str, Any], ctx: Context) -> Query:
    boost = float(body.get("boost", 1.0))
    fields = {key: value for key, value in body.items() if key != "boost"}
    if len(fields) != 1 or not isinstance(next(iter(fields.values())), list):
        raise bad_request("parsing_exception", "[terms] query requires one field with an array of values")
    ((path, values),) = fields.items()
    spec = ctx.field(path)
    if spec is None:
        return MatchNone()
    if spec.type == "text":
        return TermsQuery(path, [json_scalar(v) for v in values], boost=boost)
    return ValueQuery(path, [_query_value(spec, v) for v in values], boost)


def _query_value(spec: FieldSpec, value: Any) -> Any:
    try:
        return coerce(spec, value)
    except EsError as exc:
        raise bad_request("query_shard_exception", f"failed to create query: {exc.reason}") from None


def _compile_match(path: str, params: Mapping[str, Any], ctx: Context) -> Query:
    _check_keys("match", params, {"query", "operator", "boost"})
    if "query" not in params:
        raise bad_request("parsing_exception", "No text specified for text query")
    operator = str(params.get("operator", "or")).lower()
    if operator not in ("or", "and"):
        raise bad_request("parsing_exception", f"[match] query does not support operator [{operator}]")
    boost = float(params.get("boost", 1.0))
    spec = ctx.field(path)
    if spec is None:
        return MatchNone()
    if spec.type != "text":
        return ValueQuery(path, [_query_value(spec, params["query"])], boost)
    terms = [token.term for token in spec.search_analyzer.analyze(json_scalar(params["query"]))]
    if not terms:
        return MatchNone()  # zero_terms_query: none
    return TermsQuery(path, terms, require_all=operator == "and", boost=boost)


def _compile_phrase(path: str, params: Mapping[str, Any], ctx: Context) -> Query:
    _check_keys("match_phrase", params, {"query", "boost", "slop"})
    if "query" not in params:
        raise bad_request("parsing_exception", "No text specified for text query")
    if int(params.get("slop", 0)) != 0:
        raise not_emulated("match_phrase with slop")
    boost = float(params.get("boost", 1.0))
    spec = ctx.field(path)
    if spec is None:
        return MatchNone()
    if spec.type != "text":
        return ValueQuery(path, [_query_value(spec, params["query"])], boost)
    tokens = spec.search_analyzer.analyze(json_scalar(params["query"]))
    if not tokens:
        return MatchNone()
    if len({token.position for token in tokens}) != len(tokens):
        raise not_emulated("match_phrase whose analysis stacks tokens at one position")
    first = tokens[0].position
    return PhraseQuery(path, [(token.term, token.position - first) for token in tokens], boost)


# -- sorting and search_after ------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    path: str  # a field, "_score" or "_doc"
    descending: bool
    spec: FieldSpec | None


def parse_sort(raw: Any, ctx: Context) -> list[SortKey]:
    items = raw if isinstance(raw, list) else [raw]
    keys = []
    for item in items:
        if isinstance(item, str):
            path, order = item, None
        elif isinstance(item, dict) and len(item) == 1:
            ((path, value),) = item.items()
            if isinstance(value, str):
                order = value
            elif isinstance(value, dict):
                unknown = set(value) - {"order"}
                if unknown:
                    raise not_emulated(f"sort options {sorted(unknown)}")
                order = value.get("order")
            else:
                raise bad_request("parsing_exception", f"malformed sort [{item!r}]")
        else:
            raise bad_request("parsing_exception", f"malformed sort [{item!r}]")
        if order is not None and order not in ("asc", "desc"):
            raise bad_request("parsing_exception", f"sort order [{order}] must be asc or desc")
        if path in ("_score", "_doc"):
            keys.append(SortKey(path, (order or ("desc" if path == "_score" else "asc")) == "desc", None))
            continue
        spec = ctx.field(path)
        if spec is None:
            raise bad_request("query_shard_exception", f"No mapping found for [{path}] in order to sort on")
        if spec.type == "text":
            raise bad_request(
                "illegal_argument_exception",
                "Text fields are not optimised for operations that require per-document field data like "
                "aggregations and sorting, so these operations are disabled by default. Please use a keyword "
                f"field instead. Alternatively, set fielddata=true on [{path}] in order to load field data "
                "by "
                "uninverting the inverted index. Note that this can use significant memory.",
            )
        keys.append(SortKey(path, order == "desc", spec))
    return keys


def sort_values(keys: Sequence[SortKey], doc: IndexedDoc, score: float) -> list[Any]:
    values = []
    for key in keys:
        if key.path == "_score":
            values.append(score)
        elif key.path == "_doc":
            values.append(doc.seq_no)
        else:
            present = doc.values.get(key.path) or []
            value = (max(present) if key.descending else min(present)) if present else None
            values.append(int(value) if isinstance(value, bool) else value)
    return values


def compare_sort_values(keys: Sequence[SortKey], left: Sequence[Any], right: Sequence[Any]) -> int:
    """<0 when ``left`` comes first; missing values come last in either order."""
    for key, a, b in zip(keys, left, right, strict=True):
        if a == b:
            continue
        if a is None or b is None:
            return 1 if a is None else -1
        result = -1 if a < b else 1
        return -result if key.descending else result
    return 0


def parse_search_after(raw: Any, keys: Sequence[SortKey]) -> list[Any]:
    if not isinstance(raw, list):
        raise bad_request("parsing_exception", "[search_after] must be an array")
    if not keys:
        raise bad_request(
            "action_request_validation_exception", "Validation Failed: 1: [search_after] requires a [sort];"
        )
    if len(raw) != len(keys):
        raise bad_request(
            "illegal_argument_exception", f"search_after has {len(raw)} value(s) but sort has {len(keys)}."
        )
    values = []
    for key, value in zip(keys, raw, strict=True):
        try:
            if key.path == "_score":
                if isinstance(value, bool):
                    raise ValueError
                values.append(float(value))
            elif key.path == "_doc":
                values.append(int(value))
            else:
                coerced = coerce(key.spec, value)
                values.append(int(coerced) if isinstance(coerced, bool) else coerced)
        except (TypeError, ValueError, EsError):
            raise bad_request(
                "illegal_argument_exception", f"Failed to parse search_after value for field [{key.path}]."
            ) from None
    return values


# -- highlighting ------------------------------------------------------------------------------

_HIGHLIGHT_OPTIONS = {
    "type", "pre_tags", "post_tags", "number_of_fragments", "fragment_size", "no_match_size",
    "require_field_match", "highlight_query", "order",
}  # fmt: skip
_HIGHLIGHT_DEFAULTS = {
    "type": "unified", "pre_tags": ["<em>"], "post_tags": ["</em>"], "number_of_fragments": 5,
    "fragment_size": 100, "no_match_size": 0, "require_field_match": True, "order": "none",
}  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?]\s+")


def html_encode(text: str) -> str:
    """Lucene's SimpleHTMLEncoder."""
    replacements = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "/": "&#x2F;"}
    return "".join(replacements.get(char, char) for char in text)


@dataclass(frozen=True)
class HighlightField:
    path: str
    options: dict[str, Any]
    query: Query | None  # highlight_query, compiled


@dataclass(frozen=True)
class Highlighter:
    encoder: Callable[[str], str]
    fields: list[HighlightField]

    def highlight(self, doc: IndexedDoc, query: Query, ctx: Context) -> dict[str, list[str]]:
        result = {}
        for hl in self.fields:
            spec = ctx.field(hl.path)
            if spec is None or spec.type not in ("text", "keyword"):
                continue
            value = doc.source.get(spec.source_path)
            if value is None:
                continue
            text = value if isinstance(value, str) else json_scalar(value)
            fragment = self._fragment(hl, spec, text, hl.query or query, ctx)
            if fragment is not None:
                result[hl.path] = [fragment]
        return result

    def _fragment(self, hl: HighlightField, spec: FieldSpec, text: str, query: Query, ctx: Context) -> str | None:
        options = hl.options
        spans = _matched_spans(spec, text, query.highlight_terms(hl.path, ctx))
        if not spans:
            size = int(options["no_match_size"])
            return self.encoder(text[:size]) if size > 0 else None
        start, end = 0, len(text)
        size = int(options["fragment_size"])
        if int(options["number_of_fragments"]) > 0 and len(text) > size:
            # One passage, as the unified highlighter's sentence passages, roughly: from the start
            # of the sentence holding the first match, about fragment_size characters long.
            first_start, first_end = spans[0]
            start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, first_start)), default=0)
            end = max(first_end, start + size)
            while end < len(text) and not text[end].isspace():
                end += 1
        out, position = [], start
        pre, post = options["pre_tags"][0], options["post_tags"][0]
        for span_start, span_end in spans:
            if span_end <= start or span_start >= end:
                continue
            span_start, span_end = max(span_start, start), min(span_end, end)
            out.extend((self.encoder(text[position:span_start]), pre, self.encoder(text[span_start:span_end]), post))
            position = span_end
        out.append(self.encoder(text[position:end]))
        return "".join(out)


def _matched_spans(spec: FieldSpec, text: str, sequences: list[list[tuple[str, int]]]) -> list[tuple[int, int]]:
    if not sequences:
        return []
    tokens = [Token(text, 0, 0, len(text))] if spec.type == "keyword" else spec.analyzer.analyze(text)
    by_position: dict[int, list[Token]] = {}
    for token in tokens:
        by_position.setdefault(token.position, []).append(token)
    offsets: list[tuple[int, int]] = []
    for sequence in sequences:
        first_term, _ = sequence[0]
        for token in tokens:
            if token.term != first_term:
                continue
            matched = [token]
            for term, relative in sequence[1:]:
                candidates = [t for t in by_position.get(token.position + relative, ()) if t.term == term]
                if not candidates:
                    break
                matched.append(candidates[0])
            else:
                offsets.extend((t.start, t.end) for t in matched)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(offsets):
        # Overlapping matches (the grams of one word) make one highlighted span.
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def parse_highlight(raw: Any, ctx: Context) -> Highlighter:
    if not isinstance(raw, dict):
        raise bad_request("parsing_exception", "[highlight] must be an object")
    encoder = raw.get("encoder", "default")
    if encoder not in ("default", "html"):
        raise bad_request("illegal_argument_exception", f"Unknown encoder [{encoder}]")
    unknown = set(raw) - _HIGHLIGHT_OPTIONS - {"fields", "encoder"}
    if unknown:
        raise not_emulated(f"highlight options {sorted(unknown)}")
    top = {**_HIGHLIGHT_DEFAULTS, **{k: v for k, v in raw.items() if k in _HIGHLIGHT_OPTIONS}}
    raw_fields = raw.get("fields")
    if isinstance(raw_fields, list):
        pairs = [item for entry in raw_fields for item in entry.items()]
    elif isinstance(raw_fields, dict):
        pairs = list(raw_fields.items())
    else:
        raise bad_request("parsing_exception", "[highlight] requires [fields]")
    fields = []
    for path, options in pairs:
        if any(char in path for char in "*?"):
            raise not_emulated("highlighting fields by wildcard")
        options = options or {}
        unknown = set(options) - _HIGHLIGHT_OPTIONS
        if unknown:
            raise not_emulated(f"highlight options {sorted(unknown)} of field [{path}]")
        merged = {**top, **options}
        if merged["type"] != "unified":
            raise not_emulated(f"the [{merged['type']}] highlighter")
        if merged["require_field_match"] is not True:
            raise not_emulated("require_field_match: false")
        if not merged["pre_tags"] or not merged["post_tags"]:
            raise bad_request("illegal_argument_exception", "pre_tags and post_tags must not be empty")
        highlight_query = merged.get("highlight_query")
        compiled = compile_query(highlight_query, ctx) if highlight_query is not None else None
        fields.append(HighlightField(path, merged, compiled))
    return Highlighter(html_encode if encoder == "html" else (lambda text: text), fields)


# -- _source filtering -------------------------------------------------------------------------


def filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    """``_source`` of a hit: ``true``/``false``, a pattern, a list of them, or includes/excludes."""
    if spec is True or spec is None:
        return source
    if spec is False:
        return None
    if isinstance(spec, str | list):
        includes, excludes = ([spec] if isinstance(spec, str) else spec), []
    elif isinstance(spec, dict) and not set(spec) - {"includes", "excludes"}:
        includes, excludes = spec.get("includes") or ["*"], spec.get("excludes") or []
    else:
        raise bad_request("parsing_exception", f"malformed [_source] {spec!r}")
    return {
        key: value
        for key, value in source.items()
        if any(fnmatch.fnmatchcase(key, p) for p in includes) and not any(fnmatch.fnmatchcase(key, p) for p in excludes)
    }
