"""The Elasticsearch test double's own behaviour, through the real client (and raw HTTP where
the client would not send what a test needs)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from elasticsearch import (
    ApiError,
    BadRequestError,
    ConflictError,
    ConnectionError,
    Elasticsearch,
    NotFoundError,
    UnsupportedProductError,
)

from chatsys.search.mapping import index_body
from tests.support.es_double import ElasticsearchDouble
from tests.support.es_engine import Analyzer, build_analyzers

SIMPLE = {
    "mappings": {
        "dynamic": "strict",
        "_routing": {"required": True},
        "properties": {"n": {"type": "integer"}, "tag": {"type": "keyword"}, "text": {"type": "text"}},
    }
}


def error_type(exc: ApiError) -> str:
    return exc.body["error"]["type"]


def raw_request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a request the client would not send as is."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def simple(es_client: Elasticsearch) -> Elasticsearch:
    """An index ``idx`` with a strict mapping and required routing."""
    es_client.indices.create(index="idx", **SIMPLE)
    return es_client


# -- protocol ----------------------------------------------------------------------------------


def test_every_response_carries_the_product_header(es_double: ElasticsearchDouble) -> None:
    for path, status in (("/", 200), ("/missing-index", 404), ("/idx/_nope", 400)):
        code, headers, _ = raw_request(es_double.url + path)
        assert (code, headers.get("X-Elastic-Product")) == (status, "Elasticsearch")


def test_the_client_refuses_a_server_without_the_product_header() -> None:
    with ElasticsearchDouble(product_header=False) as double, pytest.raises(UnsupportedProductError):
        Elasticsearch(double.url, max_retries=0).info()


def test_info_is_an_8x_server(es_double: ElasticsearchDouble, es_client: Elasticsearch) -> None:
    assert es_client.info()["version"]["number"].startswith("8.")
    (request,) = es_double.requests
    assert request.headers["accept"] == "application/vnd.elasticsearch+json; compatible-with=8"


@pytest.mark.parametrize("header", ["accept", "content-type"])
@pytest.mark.parametrize("major", [7, 9])
def test_another_compatible_with_major_is_refused(header: str, major: int, es_client: Elasticsearch) -> None:
    # The client sets both headers to its own major; here one says another major.
    headers = {"accept": "application/json", "content-type": "application/json"}
    headers[header] = f"application/vnd.elasticsearch+json; compatible-with={major}"

    with pytest.raises(BadRequestError) as caught:
        es_client.perform_request("PUT", "/idx", body=SIMPLE, headers=headers)

    assert error_type(caught.value) == "media_type_header_exception"
    assert f"found {major}" in caught.value.body["error"]["caused_by"]["reason"]


def test_compatible_with_is_needed_on_both_headers_or_none(es_double: ElasticsearchDouble) -> None:
    compat = "application/vnd.elasticsearch+json; compatible-with=8"
    body = json.dumps(SIMPLE).encode()

    status, _, text = raw_request(
        es_double.url + "/idx", "PUT", body, {"content-type": compat, "accept": "application/json"}
    )
    assert (status, json.loads(text)["error"]["type"]) == (400, "media_type_header_exception")
    status, _, _ = raw_request(es_double.url + "/idx", "PUT", body, {"content-type": "application/json"})
    assert status == 200
    status, _, _ = raw_request(es_double.url + "/other", "PUT", body, {"content-type": "text/plain"})
    assert status == 406


def test_unknown_endpoints_parameters_and_keys_are_refused(es_client: Elasticsearch, simple) -> None:
    with pytest.raises(BadRequestError, match="illegal_argument_exception"):
        es_client.perform_request("GET", "/_cat/indices")
    with pytest.raises(BadRequestError, match="illegal_argument_exception"):
        es_client.search(index="idx", q="hello")  # a parameter the double does not emulate
    with pytest.raises(BadRequestError, match="parsing_exception"):
        es_client.search(index="idx", body={"query": {"match_all": {}}, "aggs": {}})


@pytest.mark.parametrize(
    "query",
    [
        {"query_string": {"query": "hello*"}},
        {"simple_query_string": {"query": "hello"}},
        {"wildcard": {"tag": "a*"}},
        {"match": {"text": {"query": "a", "fuzziness": "AUTO"}}},
        {"bool": {"must": [], "unknown": []}},
        {"term": {"tag": "a", "n": 1}},
    ],
)
def test_unemulated_queries_are_refused_never_matched_all(query, es_client: Elasticsearch, simple) -> None:
    simple.index(index="idx", id="1", routing="r", document={"tag": "a", "n": 1, "text": "a"}, refresh=True)

    with pytest.raises(BadRequestError, match=r"parsing_exception|illegal_argument_exception"):
        es_client.search(index="idx", query=query)


def test_stop_cuts_kept_alive_connections(es_double: ElasticsearchDouble, es_client: Elasticsearch) -> None:
    es_client.info()
    es_double.stop()

    with pytest.raises(ConnectionError):
        es_client.info()


# -- indices, settings, mappings ---------------------------------------------------------------


def test_index_create_get_exists_delete(es_client: Elasticsearch) -> None:
    es_client.indices.create(index="idx", settings={"index": {"refresh_interval": "5s"}}, **SIMPLE)

    assert es_client.indices.exists(index="idx")
    body = es_client.indices.get(index="idx")["idx"]
    assert body["mappings"] == SIMPLE["mappings"]
    assert body["settings"]["index"]["refresh_interval"] == "5s"
    with pytest.raises(BadRequestError, match="resource_already_exists_exception"):
        es_client.indices.create(index="idx")
    es_client.indices.delete(index="idx")
    assert not es_client.indices.exists(index="idx")
    with pytest.raises(NotFoundError, match="index_not_found_exception"):
        es_client.indices.delete(index="idx")


@pytest.mark.parametrize("name", ["Upper", "_under", "with space", "a*b", "a:b"])
def test_invalid_index_names_are_refused(name: str, es_client: Elasticsearch) -> None:
    with pytest.raises(BadRequestError, match="invalid_index_name_exception"):
        es_client.indices.create(index=name)


def test_settings_updates_are_limited_to_dynamic_settings(es_client: Elasticsearch, simple) -> None:
    es_client.indices.put_settings(index="idx", settings={"index": {"refresh_interval": "-1"}})
    assert es_client.indices.get_settings(index="idx")["idx"]["settings"]["index"]["refresh_interval"] == "-1"

    with pytest.raises(BadRequestError, match="non dynamic settings"):
        es_client.indices.put_settings(index="idx", settings={"number_of_shards": 2})
    with pytest.raises(BadRequestError, match="unknown setting"):
        es_client.indices.put_settings(index="idx", settings={"index.refresh_intervall": "1s"})


def test_analysis_is_validated(es_client: Elasticsearch) -> None:
    wide_ngram = {"analysis": {"tokenizer": {"t": {"type": "ngram", "min_gram": 1, "max_gram": 3}}}}
    with pytest.raises(BadRequestError, match=r"must be less than or equal to: \[1\] but was \[2\]"):
        es_client.indices.create(index="idx", settings=wide_ngram)
    es_client.indices.create(index="idx", settings={**wide_ngram, "index.max_ngram_diff": 2})

    with pytest.raises(BadRequestError, match="not emulated"):
        es_client.indices.create(index="other", settings={"analysis": {"char_filter": {"c": {"type": "html_strip"}}}})
    with pytest.raises(BadRequestError, match="failed to find tokenizer"):
        es_client.indices.create(index="other", settings={"analysis": {"analyzer": {"a": {"tokenizer": "nope"}}}})
    with pytest.raises(BadRequestError, match="mapper_parsing_exception"):
        es_client.indices.create(index="other", mappings={"properties": {"t": {"type": "text", "analyzer": "nope"}}})


def test_the_chatsys_mapping_is_accepted(es_client: Elasticsearch) -> None:
    es_client.indices.create(index="chat-v1", **index_body("chat"))

    assert es_client.indices.exists_alias(name="chat")


# -- aliases -----------------------------------------------------------------------------------


def test_alias_get_and_exists(es_client: Elasticsearch) -> None:
    es_client.indices.create(index="idx-1", aliases={"live": {"is_write_index": True}})

    assert es_client.indices.exists_alias(name="live")
    assert not es_client.indices.exists_alias(name="dead")
    assert es_client.indices.get_alias(name="live").body == {"idx-1": {"aliases": {"live": {"is_write_index": True}}}}
    with pytest.raises(NotFoundError):
        es_client.indices.get_alias(name="dead")


def test_aliases_swap_atomically(es_double: ElasticsearchDouble, es_client: Elasticsearch) -> None:
    es_client.indices.create(index="idx-1", aliases={"live": {"is_write_index": True}})
    es_client.indices.create(index="idx-2")

    with pytest.raises(NotFoundError, match="index_not_found_exception"):
        es_client.indices.update_aliases(
            actions=[
                {"remove": {"index": "idx-1", "alias": "live"}},
                {"add": {"index": "idx-3", "alias": "live", "is_write_index": True}},
            ]
        )
    assert es_double.aliases() == {"live": ["idx-1"]}  # the valid first action was not applied

    with pytest.raises(ApiError, match="illegal_state_exception"):  # two write indices
        es_client.indices.update_aliases(actions=[{"add": {"index": "idx-2", "alias": "live", "is_write_index": True}}])
    assert es_double.aliases() == {"live": ["idx-1"]}

    es_client.indices.update_aliases(
        actions=[
            {"remove": {"index": "idx-1", "alias": "live"}},
            {"add": {"index": "idx-2", "alias": "live", "is_write_index": True}},
        ]
    )
    assert es_double.aliases() == {"live": ["idx-2"]}


def test_an_alias_cannot_take_an_index_name_nor_be_deleted_as_one(es_client: Elasticsearch) -> None:
    es_client.indices.create(index="taken")
    with pytest.raises(BadRequestError, match="invalid_alias_name_exception"):
        es_client.indices.create(index="idx", aliases={"taken": {}})

    es_client.indices.create(index="idx", aliases={"live": {}})
    with pytest.raises(BadRequestError, match="matches an alias"):
        es_client.indices.delete(index="live")


# -- documents ---------------------------------------------------------------------------------


def test_external_versioning(es_client: Elasticsearch, simple) -> None:
    def put(version: int, n: int, version_type: str = "external"):
        return es_client.index(
            index="idx", id="d", routing="r", version=version, version_type=version_type, document={"n": n}
        )

    assert put(2, 2)["result"] == "created"
    for stale in (2, 1):
        with pytest.raises(ConflictError) as caught:
            put(stale, stale)
        assert error_type(caught.value) == "version_conflict_engine_exception"
    assert put(3, 3)["result"] == "updated"
    assert put(3, 33, "external_gte")["_version"] == 3
    got = es_client.get(index="idx", id="d", routing="r")
    assert (got["_version"], got["_source"], got["_routing"]) == (3, {"n": 33}, "r")


def test_internal_versioning_refuses_a_version(es_client: Elasticsearch, simple) -> None:
    assert es_client.index(index="idx", id="d", routing="r", document={"n": 1})["_version"] == 1
    assert es_client.index(index="idx", id="d", routing="r", document={"n": 2})["_version"] == 2
    with pytest.raises(BadRequestError, match="action_request_validation_exception"):
        es_client.index(index="idx", id="d", routing="r", version=5, document={"n": 3})


def test_routing_is_required(es_client: Elasticsearch, simple) -> None:
    with pytest.raises(BadRequestError, match="routing_missing_exception"):
        es_client.index(index="idx", id="d", document={"n": 1})
    with pytest.raises(BadRequestError, match="routing_missing_exception"):
        es_client.get(index="idx", id="d")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"n": 1, "surprise": True}, "strict_dynamic_mapping_exception"),
        ({"n": "one"}, "document_parsing_exception"),
        ({"n": 2**31}, "document_parsing_exception"),
        ({"n": {"a": 1}}, "document_parsing_exception"),
    ],
)
def test_the_mapping_is_enforced(document, expected, es_client: Elasticsearch, simple) -> None:
    with pytest.raises(BadRequestError) as caught:
        es_client.index(index="idx", id="d", routing="r", document=document)

    assert error_type(caught.value) == expected


def test_bulk_reports_each_item(es_double: ElasticsearchDouble, es_client: Elasticsearch, simple) -> None:
    es_client.index(index="idx", id="old", routing="r", version=5, version_type="external", document={"n": 5})

    response = es_client.bulk(index="idx", operations=[
        {"index": {"_id": "a", "routing": "r", "version": 1, "version_type": "external"}}, {"n": 1},
        {"index": {"_id": "old", "routing": "r", "version": 4, "version_type": "external"}}, {"n": 4},
        {"index": {"_id": "old", "routing": "r", "version": 6, "version_type": "external"}}, {"n": 6},
        {"index": {"_id": "b"}}, {"n": 2},
        {"index": {"_id": "c", "routing": "r"}}, {"n": 3, "surprise": 1},
        {"create": {"_id": "a", "routing": "r"}}, {"n": 1},
        {"delete": {"_id": "a", "routing": "r"}},
        {"delete": {"_id": "nothing", "routing": "r"}},
    ])  # fmt: skip

    statuses = [
        (op, item["status"], item.get("error", {}).get("type"))
        for entry in response["items"]
        for op, item in entry.items()
    ]
    assert response["errors"] is True
    assert statuses == [
        ("index", 201, None),
        ("index", 409, "version_conflict_engine_exception"),
        ("index", 200, None),
        ("index", 400, "routing_missing_exception"),
        ("index", 400, "strict_dynamic_mapping_exception"),
        ("create", 409, "version_conflict_engine_exception"),
        ("delete", 200, None),
        ("delete", 404, None),
    ]
    assert {doc_id: (d.version, d.routing) for doc_id, d in es_double.documents("idx").items()} == {"old": (6, "r")}
    (bulk,) = es_double.requests_to("PUT", "/idx/_bulk")
    assert bulk.body[:2] == [
        {"index": {"_id": "a", "routing": "r", "version": 1, "version_type": "external"}},
        {"n": 1},
    ]


def test_bulk_needs_a_final_newline(es_double: ElasticsearchDouble, simple) -> None:
    # The client always ends NDJSON with a newline, so this goes around it.
    body = b'{"delete": {"_id": "a", "routing": "r"}}'

    status, _, text = raw_request(es_double.url + "/idx/_bulk", "POST", body, {"content-type": "application/x-ndjson"})

    assert status == 400
    assert "terminated by a newline" in json.loads(text)["error"]["reason"]


def test_require_alias_refuses_a_missing_alias(es_client: Elasticsearch, simple) -> None:
    response = es_client.bulk(
        index="idx", require_alias=True, operations=[{"index": {"_id": "a", "routing": "r"}}, {"n": 1}]
    )

    (item,) = response["items"]
    assert (item["index"]["status"], item["index"]["error"]["type"]) == (404, "index_not_found_exception")


def test_writes_through_an_alias_go_to_its_write_index(
    es_double: ElasticsearchDouble, es_client: Elasticsearch
) -> None:
    mappings = {"properties": {"x": {"type": "integer"}}}
    es_client.indices.create(index="idx-1", aliases={"live": {}}, mappings=mappings)
    es_client.indices.create(index="idx-2", aliases={"live": {"is_write_index": True}}, mappings=mappings)

    es_client.index(index="live", id="a", document={"x": 1})

    assert list(es_double.documents("idx-2")) == ["a"]
    es_client.indices.update_aliases(actions=[{"add": {"index": "idx-2", "alias": "live", "is_write_index": False}}])
    with pytest.raises(BadRequestError, match="no write index is defined"):
        es_client.index(index="live", id="b", document={"x": 1})


# -- refresh and search ------------------------------------------------------------------------


def test_documents_are_searchable_after_a_refresh_only(es_client: Elasticsearch, simple) -> None:
    es_client.index(index="idx", id="a", routing="r", document={"n": 1, "text": "hello"})

    assert es_client.get(index="idx", id="a", routing="r")["found"]  # realtime
    assert es_client.count(index="idx")["count"] == 0
    assert es_client.search(index="idx")["hits"]["hits"] == []
    es_client.indices.refresh(index="idx")
    assert es_client.count(index="idx", query={"match": {"text": "HELLO"}})["count"] == 1

    es_client.index(index="idx", id="b", routing="r", document={"n": 2}, refresh="wait_for")
    es_client.index(index="idx", id="c", routing="r", document={"n": 3}, refresh=True)
    assert es_client.count(index="idx")["count"] == 3


def test_search_after_pages_through_sorted_hits(es_client: Elasticsearch, simple) -> None:
    for n in range(1, 8):
        es_client.index(index="idx", id=str(n), routing="r", document={"n": n, "tag": "odd" if n % 2 else "even"})
    es_client.indices.refresh(index="idx")
    seen, after = [], None
    while True:
        extra = {"search_after": after} if after else {}
        hits = es_client.search(index="idx", sort=[{"n": "desc"}], size=3, track_total_hits=False, **extra)["hits"][
            "hits"
        ]
        if not hits:
            break
        seen += [hit["_source"]["n"] for hit in hits]
        after = hits[-1]["sort"]

    assert seen == [7, 6, 5, 4, 3, 2, 1]
    with pytest.raises(BadRequestError, match="search_after has 1 value"):
        es_client.search(index="idx", sort=[{"n": "desc"}, "_score"], search_after=[3])
    with pytest.raises(BadRequestError, match="Text fields are not optimised"):
        es_client.search(index="idx", sort=["text"])


def test_search_options(es_client: Elasticsearch, simple) -> None:
    for n in range(1, 4):
        es_client.index(index="idx", id=str(n), routing=f"r{n}", document={"n": n, "tag": "t", "text": "x"})
    es_client.indices.refresh(index="idx")

    hits = es_client.search(
        index="idx", query={"terms": {"n": [1, 3]}}, sort=["n"], source=["n"], track_total_hits=True
    )["hits"]
    assert hits["total"] == {"value": 2, "relation": "eq"}
    assert [(h["_source"], h["_routing"], h["sort"], h["_score"]) for h in hits["hits"]] == [
        ({"n": 1}, "r1", [1], None),
        ({"n": 3}, "r3", [3], None),
    ]
    routed = es_client.search(index="idx", routing="r2", query={"bool": {"filter": [{"term": {"tag": "t"}}]}})
    assert len(routed["hits"]["hits"]) == 3  # routing picks a shard, it does not filter
    assert "total" not in es_client.search(index="idx", track_total_hits=False)["hits"]


def test_trigram_phrases_match_substrings_within_words(es_client: Elasticsearch) -> None:
    es_client.indices.create(index="chat-v1", **index_body("chat"))
    for n, body in enumerate(["xabc bcdy", "zabcdz", "ABCD"], start=1):
        es_client.index(index="chat", id=str(n), routing="r", document={"message_number": n, "body": body})
    es_client.indices.refresh(index="chat")

    hits = es_client.search(index="chat", query={"match_phrase": {"body.trigram": "abcd"}}, sort=["message_number"])

    assert [hit["_id"] for hit in hits["hits"]["hits"]] == ["2", "3"]


@pytest.mark.parametrize(
    "text", ["Don't PANIC: 42 towels_v2.", "MiXeD-case 3.14 e.g. snake_CASE", "x", "   ", "Straße ÆON Ⅻ café"]
)
def test_ascii_text_is_analysed_as_if_each_term_were_filtered(text: str) -> None:
    """The analyzers' shortcut for ASCII text (filter the whole text once, then slice the terms
    out of it) gives exactly the tokens that filtering each term on its own gives; text whose
    folding changes its length ("ß" → "ss") must not take it."""
    analyzers = build_analyzers(index_body("chat")["settings"]["analysis"], max_ngram_diff=1)
    assert [t.term for t in analyzers["chatsys_trigram"].analyze("ABCd")] == ["abc", "bcd"]
    for name, analyzer in analyzers.items():
        # Wrapped filters are not known to map one character to one: they take the long way.
        term_by_term = Analyzer(name, analyzer.tokenizer, tuple(lambda t, f=f: f(t) for f in analyzer.filters))
        assert analyzer.analyze(text, 3) == term_by_term.analyze(text, 3), name


def test_highlights(es_client: Elasticsearch) -> None:
    es_client.indices.create(index="chat-v1", **index_body("chat"))
    es_client.index(
        index="chat",
        id="1",
        routing="r",
        document={"body": "<p>Hello</p> yellow", "message_number": 1},
        refresh=True,
    )
    options = {"encoder": "html", "pre_tags": ["<em>"], "post_tags": ["</em>"], "number_of_fragments": 1}

    def highlight(query, fields):
        hits = es_client.search(index="chat", query=query, highlight={**options, "fields": fields})["hits"]["hits"]
        return hits[0].get("highlight")

    assert highlight({"match_phrase": {"body.trigram": "ello"}}, {"body.trigram": {}}) == {
        "body.trigram": ["&lt;p&gt;H<em>ello</em>&lt;&#x2F;p&gt; y<em>ello</em>w"]
    }
    assert highlight({"match": {"body.prefix": "he"}}, {"body.prefix": {}}) == {
        "body.prefix": ["&lt;p&gt;<em>He</em>llo&lt;&#x2F;p&gt; yellow"]
    }
    # No match in a field: nothing, or its start with no_match_size.
    assert highlight({"match": {"body.prefix": "he"}}, {"body.trigram": {}}) is None
    assert highlight({"match": {"body.prefix": "he"}}, {"body.trigram": {"no_match_size": 8}}) == {
        "body.trigram": ["&lt;p&gt;Hello"]
    }


def test_the_request_log_keeps_the_exact_json(es_double: ElasticsearchDouble, es_client: Elasticsearch, simple) -> None:
    query = {"bool": {"filter": [{"term": {"tag": "a"}}], "must": [{"match": {"text": "hi"}}]}}

    es_client.search(index="idx", routing="r", query=query, size=3)

    (request,) = es_double.requests_to("POST", "/idx/_search")
    assert (request.params, request.body) == ({"routing": "r"}, {"query": query, "size": 3})
    assert json.loads(request.raw) == request.body


def test_health(es_double: ElasticsearchDouble, es_client: Elasticsearch, simple) -> None:
    assert es_client.cluster.health()["status"] == "green"
    es_double.health_status = "yellow"
    assert es_client.cluster.health(index="idx")["status"] == "yellow"
    with pytest.raises(ApiError) as caught:
        es_client.cluster.health(index="missing")
    assert caught.value.meta.status == 408
