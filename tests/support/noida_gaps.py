"""Where noida-db 0.2.3 does not behave as Elasticsearch 8 does, each with a reproduction.

A reproduction is a few raw HTTP requests that assert what Elasticsearch does (its reference
documentation, or its source where the documentation is silent).  Run against noida itself
(tests/unit/search/test_noida_gaps.py), each must fail: those tests are strict xfails, so a noida
release that fixes a gap turns its test red, and the gap, its workaround and the xfail marks that
name it are removed.  Run against the double, which follows Elasticsearch here, each must pass:
that shows a reproduction can pass at all.

Tests that meet a gap declare it with ``es_target.known_gap(GAP)``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatsys.search.mapping import index_body


@dataclass(frozen=True)
class Gap:
    name: str
    reason: str
    reproduce: Callable[[str], None]  # raises AssertionError where the gap is


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, parsed body) of one request; ``body`` a JSON value, or a list of NDJSON lines."""
    ndjson = isinstance(body, list)
    data = None
    if body is not None:
        data = ("".join(json.dumps(line) + "\n" for line in body) if ndjson else json.dumps(body)).encode()
    content_type = "application/x-ndjson" if ndjson else "application/json"
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    return status, json.loads(text) if text else None


def _name() -> str:
    return f"gap-{uuid.uuid4().hex[:10]}"


def _cleanup(url: str, *indices: str) -> None:
    for index in indices:
        call(url, "DELETE", f"/{index}")


def bulk_to_an_alias_with_require_alias(url: str) -> None:
    """``_bulk?require_alias=true`` to an existing alias writes through it.  The bulk API
    reference: "If true, the request's actions must target an index alias"."""
    alias = _name()
    try:
        assert call(url, "PUT", f"/{alias}-v1", index_body(alias))[0] == 200
        operations = [{"index": {"_id": "1", "routing": "r", "version": 1, "version_type": "external"}}]
        operations.append({"chat_key": "r", "message_number": 1, "body": "hello"})
        status, response = call(url, "POST", f"/{alias}/_bulk?require_alias=true", operations)
        (item,) = response["items"]
        assert (status, item["index"]["status"]) == (200, 201), item
    finally:
        _cleanup(url, f"{alias}-v1")


def alias_named_like_an_index(url: str) -> None:
    """An index whose alias would take the name of an existing index is refused with
    ``invalid_alias_name_exception``."""
    taken, other = _name(), _name()
    try:
        assert call(url, "PUT", f"/{taken}")[0] == 200
        status, response = call(url, "PUT", f"/{other}", {"aliases": {taken: {}}})
        assert (status, (response or {}).get("error", {}).get("type")) == (400, "invalid_alias_name_exception")
    finally:
        _cleanup(url, taken, other)


def second_write_index(url: str) -> None:
    """An alias has at most one write index: a second index claiming to be it is refused, which
    is what lets exactly one of two racing ``ensure_index`` calls win."""
    alias = _name()
    try:
        assert call(url, "PUT", f"/{alias}-v1", {"aliases": {alias: {"is_write_index": True}}})[0] == 200
        status, _ = call(url, "PUT", f"/{alias}-v2", {"aliases": {alias: {"is_write_index": True}}})
        assert status >= 400, "a second write index was accepted"
    finally:
        _cleanup(url, f"{alias}-v1", f"{alias}-v2")


def score_sort_values_page_exactly(url: str) -> None:
    """``search_after`` with the sort values of a page's last hit continues right after that hit.
    noida returns a ``_score`` rounded to float32 but compares unrounded ones, so on chatsys's
    relevance query hits tied on score come again on the next page without end (3 messages) or
    are skipped (7 messages), depending on which way the score was rounded."""
    failures = {}
    for messages in range(2, 8):
        seen = _relevance_pages(url, messages)
        if seen != list(range(messages, 0, -1)):
            failures[messages] = seen
    assert not failures, f"pages of tied hits (messages: numbers seen): {failures}"


def _relevance_pages(url: str, messages: int) -> list[int]:
    alias = _name()
    try:
        assert call(url, "PUT", f"/{alias}-v1", index_body(alias))[0] == 200
        operations: list[Any] = []
        for n in range(1, messages + 1):
            operations.append({"index": {"_id": str(n), "routing": "r", "version": 1, "version_type": "external"}})
            operations.append({"chat_key": "r", "message_number": n, "body": "same words here", "deleted": False})
        call(url, "POST", f"/{alias}-v1/_bulk?refresh=true", operations)
        query = {
            "filter": [{"term": {"chat_key": "r"}}, {"term": {"deleted": False}}],
            "must": [{"match_phrase": {"body.trigram": {"query": "words"}}}],
            "should": [
                {"match": {"body": {"query": "words", "boost": 3.0}}},
                {"match": {"body.prefix": {"query": "words", "boost": 1.5}}},
            ],
        }
        seen: list[int] = []
        after = None
        for _ in range(2 * messages):
            body: dict[str, Any] = {
                "query": {"bool": query},
                "sort": [{"_score": {"order": "desc"}}, {"message_number": {"order": "desc"}}],
                "size": 2,
            }
            if after is not None:
                body["search_after"] = after
            hits = call(url, "POST", f"/{alias}-v1/_search", body)[1]["hits"]["hits"]
            if not hits:
                break
            seen += [hit["_source"]["message_number"] for hit in hits]
            after = hits[-1]["sort"]
        return seen
    finally:
        _cleanup(url, f"{alias}-v1")


def numbers_that_are_not_digits_separate_words(url: str) -> None:
    """``token_chars: [letter, digit]`` keeps letters (Unicode L*) and decimal digits (Nd) only
    (Elasticsearch's CharMatcher: Character.isLetter, Character.isDigit): "½", "²" and "Ⅻ" end a
    word, so "b" starts a word of "a½b".  noida keeps them inside words."""
    alias = _name()
    try:
        assert call(url, "PUT", f"/{alias}-v1", index_body(alias))[0] == 200
        operations: list[Any] = []
        for n, body in enumerate(["a½b", "c²d", "eⅫf"], start=1):
            operations.append({"index": {"_id": str(n), "routing": "r", "version": 1, "version_type": "external"}})
            operations.append({"chat_key": "r", "message_number": n, "body": body})
        call(url, "POST", f"/{alias}-v1/_bulk?refresh=true", operations)
        found = {}
        for word in ("b", "d", "f"):
            query = {"query": {"match": {"body.prefix": {"query": word}}}}
            hits = call(url, "POST", f"/{alias}-v1/_search", query)[1]["hits"]["hits"]
            found[word] = [hit["_source"]["message_number"] for hit in hits]
        assert found == {"b": [1], "d": [2], "f": [3]}, found
    finally:
        _cleanup(url, f"{alias}-v1")


def _highlight(url: str, body: str, word: str) -> list[str] | None:
    alias = _name()
    try:
        assert call(url, "PUT", f"/{alias}-v1", index_body(alias))[0] == 200
        action = {"index": {"_id": "1", "routing": "r", "version": 1, "version_type": "external"}}
        call(url, "POST", f"/{alias}-v1/_bulk?refresh=true", [action, {"chat_key": "r", "body": body}])
        request = {
            "query": {"match_phrase": {"body.trigram": {"query": word}}},
            "highlight": {
                "type": "unified",
                "encoder": "html",
                "pre_tags": ["<em>"],
                "post_tags": ["</em>"],
                "number_of_fragments": 1,
                "fragment_size": 150,
                "fields": {"body.trigram": {}},
            },
        }
        (hit,) = call(url, "POST", f"/{alias}-v1/_search", request)[1]["hits"]["hits"]
        return hit.get("highlight", {}).get("body.trigram")
    finally:
        _cleanup(url, f"{alias}-v1")


def highlight_lengths_count_utf16_units(url: str) -> None:
    """Offsets and ``fragment_size`` count UTF-16 units (Java strings, Lucene offsets): an emoji
    counts 2.  So 50 emoji and "the needle is here" (168 units) are more than 150: the run-on
    sentence is cut at words to end at the match.  noida counts code points (118) and shows it all."""
    fragment = _highlight(url, "😀 " * 50 + "the needle is here", "needle")
    assert fragment == ["😀 " * 49 + "the <em>needle</em>"], fragment


def line_breaks_do_not_end_sentences(url: str) -> None:
    """Passages are the sentences of java.text.BreakIterator.getSentenceInstance, which ends a
    sentence after a terminator, not at a line break (checked with JDK 17).  noida ends one at
    every line break, so the passage starts at the line holding the match."""
    fragment = _highlight(url, "line one\nline two has the needle\nline three", "needle")
    assert fragment == ["line one\nline two has the <em>needle</em>\nline three"], fragment


REQUIRE_ALIAS = Gap(
    "bulk_to_an_alias_with_require_alias",
    "_bulk?require_alias=true to an existing alias answers 404 (worked around by tests/support/noida.py)",
    bulk_to_an_alias_with_require_alias,
)
ALIAS_NAME = Gap(
    "alias_named_like_an_index",
    "accepts an alias named like an existing index (Elasticsearch: invalid_alias_name_exception)",
    alias_named_like_an_index,
)
WRITE_INDEX = Gap(
    "second_write_index",
    "accepts a second write index for an alias (Elasticsearch refuses it)",
    second_write_index,
)
SCORE_SEARCH_AFTER = Gap(
    "score_sort_values_page_exactly",
    "search_after on _score repeats tied hits: the sort values it returns are rounded to float32",
    score_sort_values_page_exactly,
)
TOKEN_CHARS = Gap(
    "numbers_that_are_not_digits_separate_words",
    "token_chars letter/digit keep ½, ² and Ⅻ inside words (Elasticsearch: L* and Nd only)",
    numbers_that_are_not_digits_separate_words,
)
UTF16 = Gap(
    "highlight_lengths_count_utf16_units",
    "highlight offsets and fragment_size count code points, not UTF-16 units (an emoji counts 1, not 2)",
    highlight_lengths_count_utf16_units,
)
LINE_BREAKS = Gap(
    "line_breaks_do_not_end_sentences",
    "the highlighter's passages end at line breaks; Java's sentence BreakIterator does not end sentences there",
    line_breaks_do_not_end_sentences,
)
GAPS = (REQUIRE_ALIAS, ALIAS_NAME, WRITE_INDEX, SCORE_SEARCH_AFTER, TOKEN_CHARS, UTF16, LINE_BREAKS)
BY_NAME = {gap.name: gap for gap in GAPS}
