"""The Elasticsearch test double's own rules: what it refuses, and when documents become visible.

Everything else it does is checked by the backend's tests, which run on noida-db as well: a
difference between the two fails there.
"""

from __future__ import annotations

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from chatsys.search.mapping import index_body


@pytest.fixture
def chat(es_client: Elasticsearch) -> Elasticsearch:
    es_client.indices.create(index="chat-v1", **index_body("chat"))
    action = {"index": {"_id": "1", "routing": "r", "version": 1, "version_type": "external"}}
    es_client.bulk(index="chat", operations=[action, {"chat_key": "r", "message_number": 1, "body": "hello world"}])
    return es_client


@pytest.mark.parametrize(
    "request_body",
    [
        {"query": {"query_string": {"query": "hello*"}}},
        {"query": {"match": {"body.prefix": {"query": "he", "fuzziness": "AUTO"}}}},
        {"query": {"bool": {"must_not": [{"term": {"chat_key": "r"}}]}}},
        {"query": {"match_all": {}}, "aggs": {}},
        {"query": {"match_all": {}}, "highlight": {"type": "plain", "fields": {"body.prefix": {}}}},
    ],
)
def test_what_it_does_not_emulate_is_refused_never_approximated(request_body, chat: Elasticsearch) -> None:
    with pytest.raises(BadRequestError, match="not emulated"):
        chat.search(index="chat", body=request_body)


def test_documents_are_searchable_after_a_refresh_only(chat: Elasticsearch) -> None:
    assert chat.get(index="chat", id="1", routing="r")["found"]  # realtime
    assert chat.search(index="chat", query={"match": {"body.prefix": "he"}})["hits"]["hits"] == []

    chat.indices.refresh(index="chat")

    (hit,) = chat.search(index="chat", query={"match": {"body.prefix": "he"}})["hits"]["hits"]
    assert hit["_id"] == "1"
