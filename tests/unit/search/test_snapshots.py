"""Snapshots of exactly what the backend sends to Elasticsearch: the index it creates, a bulk
write, and search requests.  A change to any of them fails here until the snapshot is
regenerated on purpose (``CHATSYS_UPDATE_SNAPSHOTS=1``) and the diff reviewed.

The message's own fields are defined once, in ``chatsys.domain.messages`` (and their index
types in ``chatsys.search.mapping``); the snapshots show them as a placeholder where the list of
them appears, so a new field of a message changes its own module, not these files."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from chatsys.domain import messages
from chatsys.search.cursor import encode as encode_cursor
from chatsys.search.elasticsearch import ElasticsearchSearch
from chatsys.search.interfaces import SORT_NEWEST, SORT_RELEVANCE, ChatScope, SearchRequest
from chatsys.search.query import words
from testkit.es_double import RecordedRequest
from tests.support.search_cases import document
from tests.support.snapshots import assert_snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"
ALIAS = "chatsys-messages"
CHAT = ChatScope("app-token", 7, chat_id=0)
AT = datetime(2026, 11, 27, 12, 30, 45, 123456)


MESSAGE_FIELDS = "<the fields of chatsys.domain.messages.KEYS>"


def without_message_fields(value):
    """``value`` with each list of the message's fields (a search's ``_source``) and each object
    holding them (a stored document, the mapping's properties) showing the placeholder instead."""
    keys = list(messages.KEYS)
    if value == keys:
        return MESSAGE_FIELDS
    if isinstance(value, dict):
        if set(keys) - {"body"} <= set(value):  # a document, or the mapping's properties
            rest = {k: without_message_fields(v) for k, v in value.items() if k not in keys or k == "body"}
            return {MESSAGE_FIELDS: "...", **rest}
        return {k: without_message_fields(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_message_fields(v) for v in value]
    return value


def sent(request: RecordedRequest) -> dict:
    body = without_message_fields(request.body)
    return {"method": request.method, "path": request.path, "params": request.params, "body": body}


@pytest.fixture
def backend(es_client) -> ElasticsearchSearch:
    backend = ElasticsearchSearch(es_client, ALIAS)
    backend.ensure_index()
    return backend


def test_create_index_request(es_double, es_client) -> None:
    ElasticsearchSearch(es_client, ALIAS).ensure_index()

    (create,) = es_double.requests_to("PUT", f"/{re.escape(ALIAS)}-v\\d{{20}}")
    assert_snapshot(SNAPSHOTS / "create_index.json", {**sent(create), "path": f"/{ALIAS}-v<timestamp>"})


def test_bulk_request(es_double, backend) -> None:
    es_double.clear_requests()

    backend.index(
        [
            document("app-token", 7, 41, "Hello, world!", 1, AT, AT),
            document("app-token", 7, 42, "", 3, AT, AT, deleted=True),
        ]
    )

    (bulk,) = es_double.requests
    assert_snapshot(SNAPSHOTS / "bulk.json", sent(bulk))


@pytest.mark.parametrize(
    ("name", "text", "sort", "after"),
    [
        ("search_short_word", "he", SORT_NEWEST, None),
        ("search_long_word", "Hello!", SORT_NEWEST, None),
        ("search_mixed_words_relevance", "He wor supercalifragilistic", SORT_RELEVANCE, None),
        ("search_next_page", "hello", SORT_NEWEST, [42]),
        ("search_next_page_relevance", "hello", SORT_RELEVANCE, [1.25, 42]),
    ],
)
def test_search_request(name: str, text: str, sort: str, after: list | None, es_double, backend) -> None:
    search = SearchRequest(chat=CHAT, text=text, words=words(text), limit=20, sort=sort)
    if after is not None:
        search = replace(search, cursor=encode_cursor(search, after))
    es_double.clear_requests()

    backend.search(search)

    (search,) = es_double.requests
    assert_snapshot(SNAPSHOTS / f"{name}.json", sent(search))
