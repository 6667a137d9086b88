"""The Elasticsearch search backend, through the real client.

Tests taking ``es_target`` run against the test double, against noida-db and, when
``CHATSYS_ELASTICSEARCH_URL`` is set, against a real Elasticsearch; a known noida gap makes its
test a strict xfail on noida.  The others need the double's fault injection or request log.
"""

from __future__ import annotations

import html
import re
import threading
from datetime import datetime, timedelta

import pytest
from elasticsearch import ApiError, Elasticsearch

from chatsys.domain import messages
from chatsys.runtime.settings import SettingsError, resolve_settings
from chatsys.search.cursor import encode as encode_cursor
from chatsys.search.elasticsearch import ElasticsearchSearch, _search_hit, merge_highlights, search_body
from chatsys.search.interfaces import (
    SORT_NEWEST,
    SORT_RELEVANCE,
    ChatScope,
    IndexOutcome,
    InvalidCursor,
    MessageDocument,
    SearchPage,
    SearchRequest,
    SearchUnavailable,
)
from chatsys.search.mapping import index_mappings
from chatsys.search.query import words
from tests.support.es_targets import ENGINES, EsTarget
from tests.support.noida_gaps import ALIAS_NAME, BY_NAME, SCORE_SEARCH_AFTER
from tests.support.search_cases import (
    ASKED_APP_TOKEN,
    ASKED_CHAT_NUMBER,
    HIGHLIGHT_CASES,
    SEARCH_CASES,
    HighlightCase,
    SearchCase,
    document,
)

AT = datetime(2026, 11, 27, 12, 0, 0)
CHAT = ChatScope(ASKED_APP_TOKEN, ASKED_CHAT_NUMBER, chat_id=0)


def message(
    number: int,
    body: str,
    *,
    version: int = 1,
    deleted: bool = False,
    app_token: str = ASKED_APP_TOKEN,
    chat_number: int = ASKED_CHAT_NUMBER,
) -> MessageDocument:
    created_at = AT + timedelta(minutes=number, microseconds=number)
    updated_at = created_at + timedelta(seconds=version - 1)
    return document(app_token, chat_number, number, body, version, created_at, updated_at, deleted)


def request(text: str, *, limit: int = 20, cursor: str | None = None, sort: str = SORT_NEWEST) -> SearchRequest:
    return SearchRequest(chat=CHAT, text=text, words=words(text), limit=limit, cursor=cursor, sort=sort)


def numbers(page: SearchPage) -> list[int]:
    return [hit.message_number for hit in page.hits]


def index_and_refresh(backend: ElasticsearchSearch, target: EsTarget, documents: list[MessageDocument]) -> None:
    results = backend.index(documents)
    assert [r.outcome for r in results] == [IndexOutcome.APPLIED] * len(documents), results
    target.refresh()


def all_pages(backend: ElasticsearchSearch, text: str, limit: int, sort: str) -> list[SearchPage]:
    pages = [backend.search(request(text, limit=limit, sort=sort))]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 100, "pagination does not end"
        pages.append(backend.search(request(text, limit=limit, sort=sort, cursor=pages[-1].next_cursor)))
    return pages


@pytest.fixture
def backend(es_target: EsTarget) -> ElasticsearchSearch:
    backend = es_target.backend()
    backend.ensure_index()
    return backend


# -- semantics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SEARCH_CASES, ids=lambda case: case.name)
def test_search_semantics(case: SearchCase, backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    if case.noida_gap:
        es_target.known_gap(BY_NAME[case.noida_gap])
    documents = [message(m.number, m.body, app_token=m.app_token, chat_number=m.chat_number) for m in case.messages]
    index_and_refresh(backend, es_target, documents)

    page = backend.search(request(case.query, limit=100))

    assert numbers(page) == list(case.expected)
    assert page.next_cursor is None


@pytest.mark.parametrize("sort", [SORT_NEWEST, SORT_RELEVANCE])
def test_pages_cover_every_hit_exactly_once(sort: str, backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    if sort == SORT_RELEVANCE:
        es_target.known_gap(SCORE_SEARCH_AFTER)
    # 23 matches of varied length (varied scores) among 30 messages.
    documents = [message(n, f"hello {'filler ' * (n % 4)}{n}" if n % 4 else f"goodbye {n}") for n in range(1, 31)] + [
        message(n, f"hello {n}") for n in range(31, 39)
    ]
    expected = [d.message_number for d in documents if d.body.startswith("hello")]
    index_and_refresh(backend, es_target, documents)

    pages = all_pages(backend, "hello", limit=5, sort=sort)

    seen = [n for page in pages for n in numbers(page)]
    assert sorted(seen) == sorted(expected)  # every hit, none twice
    assert [len(page.hits) for page in pages] == [5, 5, 5, 5, 5, 5, 1]
    if sort == SORT_NEWEST:
        assert seen == sorted(expected, reverse=True)


def test_a_last_full_page_has_no_cursor(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    index_and_refresh(backend, es_target, [message(n, "hello") for n in range(1, 11)])

    pages = all_pages(backend, "hello", limit=5, sort=SORT_NEWEST)

    assert [numbers(page) for page in pages] == [[10, 9, 8, 7, 6], [5, 4, 3, 2, 1]]
    assert pages[-1].next_cursor is None


def test_an_edited_message_is_found_by_its_new_text_only(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    index_and_refresh(backend, es_target, [message(1, "original wording"), message(2, "other")])
    index_and_refresh(backend, es_target, [message(1, "edited phrasing", version=2)])

    assert numbers(backend.search(request("original"))) == []
    hits = backend.search(request("phras")).hits
    assert [(h.message_number, h.message["version"], h.message["body"]) for h in hits] == [(1, 2, "edited phrasing")]


def test_redelivered_and_reordered_batches_keep_the_newest_version(
    backend: ElasticsearchSearch, es_target: EsTarget
) -> None:
    a = {v: message(1, f"alpha version{v}", version=v) for v in (1, 2, 3)}
    b = {v: message(2, f"bravo version{v}", version=v) for v in (1, 2)}
    batches = [[a[3], b[1]], [a[1], a[2], b[2]], [a[3]], [b[1]]]

    outcomes = [[r.outcome.name for r in backend.index(batch)] for batch in batches]

    assert outcomes == [["APPLIED", "APPLIED"], ["STALE", "STALE", "APPLIED"], ["STALE"], ["STALE"]]
    for newest in (a[3], b[2]):
        stored = es_target.stored(newest.doc_id, newest.chat_key)
        assert (stored.version, stored.routing, stored.source["body"]) == (
            newest.version,
            newest.chat_key,
            newest.body,
        )
    es_target.refresh()
    assert numbers(backend.search(request("version3"))) == [1]
    assert numbers(backend.search(request("version1"))) == []


def test_a_deleted_message_is_not_found_even_after_a_stale_redelivery(
    backend: ElasticsearchSearch, es_target: EsTarget
) -> None:
    index_and_refresh(backend, es_target, [message(1, "hello there"), message(2, "hello again")])
    index_and_refresh(backend, es_target, [message(1, "hello there", version=2, deleted=True)])

    assert [r.outcome for r in backend.index([message(1, "hello there", version=1)])] == [IndexOutcome.STALE]
    es_target.refresh()

    assert numbers(backend.search(request("hello"))) == [2]


@pytest.mark.parametrize("es_target", ENGINES, indirect=True)  # the double scores every hit 1.0
def test_relevance_ranks_whole_words_then_word_starts(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    index_and_refresh(backend, es_target, [message(1, "hello"), message(2, "othello"), message(3, "hellos")])

    assert numbers(backend.search(request("hello", sort=SORT_RELEVANCE))) == [1, 3, 2]
    assert numbers(backend.search(request("hello", sort=SORT_NEWEST))) == [3, 2, 1]


def test_relevance_ties_are_newest_first(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    es_target.known_gap(SCORE_SEARCH_AFTER)
    index_and_refresh(backend, es_target, [message(n, "same words here") for n in (1, 2, 3)])

    pages = all_pages(backend, "words", limit=2, sort=SORT_RELEVANCE)

    assert [numbers(page) for page in pages] == [[3, 2], [1]]


def test_hits_carry_the_message(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    document = message(7, "hello there", version=3)
    index_and_refresh(backend, es_target, [document])

    (hit,) = backend.search(request("there")).hits

    assert hit.message == {key: document.source[key] for key in messages.KEYS}
    assert (hit.message["chat_number"], hit.message_number, hit.message["body"]) == (1, 7, "hello there")


# -- highlights --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text", "highlight"),
    [
        ("hello world", "ell", "h<em>ell</em>o world"),
        ("hello world", "hello", "<em>hello</em> world"),
        ("hello world", "he wor", "<em>he</em>llo <em>wor</em>ld"),
        ("Hello, World!", "world", "Hello, <em>World</em>!"),
        ("café crème", "cafe", "<em>café</em> crème"),
    ],
)
def test_highlight_marks_the_matched_characters(
    body: str, text: str, highlight: str, backend: ElasticsearchSearch, es_target: EsTarget
) -> None:
    index_and_refresh(backend, es_target, [message(1, body)])

    assert [hit.highlight for hit in backend.search(request(text)).hits] == [highlight]


@pytest.mark.parametrize("case", HIGHLIGHT_CASES, ids=lambda case: case.name)
def test_highlight_passages(case: HighlightCase, backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    if case.noida_gap:
        es_target.known_gap(BY_NAME[case.noida_gap])
    index_and_refresh(backend, es_target, [message(1, case.body), message(2, "nothing to see")])

    assert [hit.highlight for hit in backend.search(request(case.query)).hits] == [case.expected]


def test_each_subfield_has_its_own_passage(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    """Elasticsearch starts each subfield's passage at the sentence of its own first match."""
    index_and_refresh(backend, es_target, [message(1, "He left. Then the world ended.")])

    body = search_body(request("he wor"))
    (hit,) = es_target.client.search(index=es_target.alias, routing=CHAT.key, body=body)["hits"]["hits"]

    assert hit["highlight"] == {
        "body.prefix": ["<em>He</em> left. Then the world ended."],
        "body.trigram": ["Then the <em>wor</em>ld ended."],
    }


def test_highlight_escapes_the_body(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    body = '<b>Fish</b> & "chips" <script>x</script>'
    index_and_refresh(backend, es_target, [message(1, body)])

    (hit,) = backend.search(request("fish")).hits

    assert "<em>Fish</em>" in hit.highlight
    assert "<b>" not in hit.highlight and "<script>" not in hit.highlight
    assert html.unescape(re.sub("</?em>", "", hit.highlight)) == body


def test_highlight_merge_and_fallback() -> None:
    assert merge_highlights([]) is None
    assert (
        merge_highlights(["<em>he</em>llo <em>w</em>orld", "hello <em>wor</em>ld"]) == "<em>he</em>llo <em>wor</em>ld"
    )
    # One passage holds the other (the subfields' passages start at different sentences): its
    # marks are carried over, whichever order the fragments come in.
    for fragments in (
        ["<em>He</em> left. Then the world ended.", "Then the <em>wor</em>ld ended."],
        ["Then the <em>wor</em>ld ended.", "<em>He</em> left. Then the world ended."],
    ):
        assert merge_highlights(fragments) == "<em>He</em> left. Then the <em>wor</em>ld ended."
    # Text compared decoded, shown encoded as Elasticsearch encodes it.
    assert merge_highlights(["a&#x2F;<em>b</em> &amp; c", "<em>c</em>"]) == "a&#x2F;<em>b</em> &amp; <em>c</em>"
    # Different passages of a long body: the one with more highlighted text wins.
    assert merge_highlights(["a <em>b</em> c", "x <em>yyy</em> z"]) == "x <em>yyy</em> z"
    source = {
        "chat_number": 1,
        "message_number": 2,
        "body": "<i>" + "x" * 300,
        "version": 1,
        "created_at": "2026-11-27T12:00:00.000001Z",
        "updated_at": "2026-11-27T12:00:00.000001Z",
    }
    hit = _search_hit({"_source": source, "sort": [2]})
    assert hit.highlight == "&lt;i&gt;" + "x" * 147
    # The hit's message is its source, with every key a message has (a field the document
    # predates shows as null until the next reindex).
    assert {key: hit.message[key] for key in source} == source
    assert set(hit.message) == set(messages.KEYS)


# -- cursors -----------------------------------------------------------------------------------


def cursor_for(
    text: str = "hello", values: list | None = None, *, sort: str = SORT_NEWEST, chat: ChatScope = CHAT
) -> str:
    search = SearchRequest(chat=chat, text=text, words=words(text), limit=20, sort=sort)
    return encode_cursor(search, [7] if values is None else values)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "bm90IGpzb24",  # "not json"
        cursor_for(sort=SORT_RELEVANCE, values=[1.5, 3]),  # made for another sort
        cursor_for("goodbye"),  # another query
        cursor_for(chat=ChatScope(ASKED_APP_TOKEN, 2, chat_id=0)),  # another chat
        cursor_for(values=[]),
        cursor_for(values=[3, 4]),
        cursor_for(values=["3"]),
        cursor_for(values=[True]),
        cursor_for(values=[-1]),
        cursor_for(values=[2**31]),
        cursor_for(values=[None]),
        "A" * 600,
    ],
)
def test_an_invalid_cursor_is_refused_before_any_request(cursor: str, es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()

    with pytest.raises(InvalidCursor):
        backend.search(request("hello", cursor=cursor))

    assert es_double.requests_to("POST", "/messages/_search") == []


def test_a_relevance_cursor_with_a_non_finite_score_is_invalid(es_client) -> None:
    cursor = cursor_for(sort=SORT_RELEVANCE, values=[float("nan"), 3])

    with pytest.raises(InvalidCursor):
        ElasticsearchSearch(es_client, "messages").search(request("hello", cursor=cursor, sort=SORT_RELEVANCE))


def test_a_cursor_ignores_how_the_words_were_typed(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    index_and_refresh(backend, es_target, [message(n, "hello world") for n in (1, 2, 3)])
    first = backend.search(request("Hello, world", limit=2))

    second = backend.search(request("hello   WORLD!", limit=2, cursor=first.next_cursor))

    assert (numbers(first), numbers(second)) == ([3, 2], [1])


def test_a_query_without_words_asks_nothing(es_double, es_client) -> None:
    page = ElasticsearchSearch(es_client, "messages").search(request("?!"))

    assert page == SearchPage(hits=[], next_cursor=None)
    assert es_double.requests == []


# -- indexing outcomes -------------------------------------------------------------------------


def test_a_batch_is_one_bulk_request_with_per_document_outcomes(es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()
    backend.index([message(2, "already there", version=5)])
    es_double.fail_bulk_item("case-app-asked:1:3", status=429)
    es_double.fail_bulk_item("case-app-asked:1:4", status=503, error_type="unavailable_shards_exception")
    es_double.clear_requests()

    results = backend.index(
        [
            message(1, "new"),
            message(2, "redelivered", version=4),
            message(3, "rejected for now"),
            message(4, "shard unavailable"),
            message(2**31, "number out of the mapping's range"),
        ]
    )

    assert [(r.outcome, r.error is None) for r in results] == [
        (IndexOutcome.APPLIED, True),
        (IndexOutcome.STALE, True),
        (IndexOutcome.RETRY, False),
        (IndexOutcome.RETRY, False),
        (IndexOutcome.REJECTED, False),
    ]
    assert results[4].error.startswith("document_parsing_exception: ")
    assert len(es_double.requests) == 1
    (bulk,) = es_double.requests_to("PUT", "/messages/_bulk")
    assert bulk.params == {"require_alias": "true"}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (503, "unavailable_shards_exception"),
        (429, "es_rejected_execution_exception"),
        (500, "illegal_state_exception"),
    ],
)
def test_a_bulk_request_the_cluster_cannot_serve_now_is_unavailable(status, error_type, es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()
    es_double.inject_error("PUT", "/messages/_bulk", status=status, error_type=error_type)

    with pytest.raises(SearchUnavailable, match=error_type):
        backend.index([message(1, "one"), message(2, "two")])


@pytest.mark.parametrize(
    ("status", "error_type", "outcome"),
    [(400, "illegal_argument_exception", IndexOutcome.REJECTED)],
)
def test_a_refused_bulk_request_rejects_every_document(status, error_type, outcome, es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()
    es_double.inject_error("PUT", "/messages/_bulk", status=status, error_type=error_type)

    results = backend.index([message(1, "one"), message(2, "two")])

    assert [(r.doc_id, r.outcome) for r in results] == [
        ("case-app-asked:1:1", outcome),
        ("case-app-asked:1:2", outcome),
    ]
    assert all(error_type in r.error for r in results)


def test_indexing_without_the_alias_waits_and_creates_nothing(es_target: EsTarget) -> None:
    with pytest.raises(SearchUnavailable, match="does not exist"):
        es_target.backend().index([message(1, "hello")])

    assert not es_target.client.indices.exists(index=es_target.alias)


def test_a_document_the_mapping_refuses_is_rejected_alone(backend: ElasticsearchSearch, es_target: EsTarget) -> None:
    results = backend.index([message(1, "fine"), message(2**31, "too big a number"), message(2, "fine too")])

    assert [r.outcome for r in results] == [IndexOutcome.APPLIED, IndexOutcome.REJECTED, IndexOutcome.APPLIED]
    es_target.refresh()
    assert numbers(backend.search(request("fine"))) == [2, 1]


# -- availability ------------------------------------------------------------------------------


def test_an_unreachable_elasticsearch_is_unavailable_and_writes_are_retried(es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()
    backend.check()
    es_double.stop()

    with pytest.raises(SearchUnavailable):
        backend.search(request("hello"))
    with pytest.raises(SearchUnavailable):
        backend.check()
    with pytest.raises(SearchUnavailable):
        backend.ensure_index()
    with pytest.raises(SearchUnavailable):
        backend.index([message(1, "a"), message(2, "b")])


def test_timeouts_are_unavailable_and_retried(es_double) -> None:
    client = Elasticsearch(es_double.url, request_timeout=0.2, max_retries=0)
    backend = ElasticsearchSearch(client, "messages")
    backend.ensure_index()
    es_double.inject_delay("POST", "/messages/_search", 30)
    es_double.inject_delay("PUT", "/messages/_bulk", 30)

    with pytest.raises(SearchUnavailable):
        backend.search(request("hello"))
    with pytest.raises(SearchUnavailable):
        backend.index([message(1, "a")])


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(503, "unavailable_shards_exception"), (429, "es_rejected_execution_exception")],
)
def test_a_search_the_cluster_cannot_serve_is_unavailable(status, error_type, es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()
    es_double.inject_error("POST", "/messages/_search", status=status, error_type=error_type)

    with pytest.raises(SearchUnavailable, match=error_type):
        backend.search(request("hello"))


def test_a_search_without_the_alias_is_unavailable(es_client) -> None:
    with pytest.raises(SearchUnavailable, match="index_not_found_exception"):
        ElasticsearchSearch(es_client, "messages").search(request("hello"))


def test_a_search_the_cluster_refuses_is_a_bug_not_an_outage(es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    backend.ensure_index()
    es_double.inject_error("POST", "/messages/_search", status=400, error_type="parsing_exception")

    with pytest.raises(ApiError):
        backend.search(request("hello"))


def test_check_needs_the_alias_and_a_healthy_index(es_double, es_client) -> None:
    backend = ElasticsearchSearch(es_client, "messages")
    with pytest.raises(SearchUnavailable, match="does not exist"):
        backend.check()
    backend.ensure_index()
    backend.check()
    es_double.health_status = "red"
    with pytest.raises(SearchUnavailable, match="red"):
        backend.check()


# -- the index ---------------------------------------------------------------------------------


def test_ensure_index_creates_a_versioned_index_behind_the_alias_once(es_target: EsTarget) -> None:
    backend = es_target.backend()

    backend.ensure_index()
    backend.ensure_index()

    aliases = es_target.client.indices.get_alias(name=es_target.alias).body
    assert len(aliases) == 1
    ((index, body),) = aliases.items()
    assert re.fullmatch(re.escape(es_target.alias) + r"-v\d{20}", index)
    assert body == {"aliases": {es_target.alias: {"is_write_index": True}}}
    mapping = es_target.client.indices.get_mapping(index=es_target.alias).body
    assert mapping == {index: {"mappings": index_mappings()}}


def test_ensure_index_refuses_an_index_named_like_the_alias(es_target: EsTarget) -> None:
    es_target.known_gap(ALIAS_NAME)
    es_target.client.indices.create(index=es_target.alias)

    with pytest.raises(ApiError, match="invalid_alias_name_exception"):
        es_target.backend().ensure_index()


def test_ensure_index_lets_a_concurrent_process_win(es_double, es_client) -> None:
    # The other process creates the alias between our existence check and our create.
    competitor = ElasticsearchSearch(Elasticsearch(es_double.url, request_timeout=5), "messages")
    es_double.before("PUT", r"/messages-v\d+", lambda _: competitor.ensure_index())

    ElasticsearchSearch(es_client, "messages").ensure_index()

    creates = es_double.requests_to("PUT", r"/messages-v\d+")
    assert len(creates) == 2
    assert es_double.index_names() == [creates[1].path.lstrip("/")]  # the competitor's, alone
    assert es_double.aliases() == {"messages": es_double.index_names()}


def test_concurrent_ensure_index_calls_create_one_index(es_double) -> None:
    backends = [ElasticsearchSearch(Elasticsearch(es_double.url, request_timeout=5), "messages") for _ in range(4)]
    errors: list[BaseException] = []

    def run(backend: ElasticsearchSearch) -> None:
        try:
            backend.ensure_index()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert len(es_double.index_names()) == 1
    assert es_double.aliases() == {"messages": es_double.index_names()}


def test_from_settings(es_double) -> None:
    settings = {
        "elasticsearch.url": es_double.url,
        "elasticsearch.index": "chat-messages",
        "elasticsearch.timeout": "2.5",
    }

    backend = ElasticsearchSearch.from_settings(resolve_settings(settings, environ={}))
    backend.ensure_index()
    backend.check()

    assert backend.alias == "chat-messages"
    assert es_double.aliases() == {"chat-messages": es_double.index_names()}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("elasticsearch.index", "Messages"),
        ("elasticsearch.index", "_messages"),
        ("elasticsearch.index", "mes sages"),
        ("elasticsearch.timeout", "0"),
        ("elasticsearch.timeout", "soon"),
    ],
)
def test_from_settings_names_the_wrong_key(key: str, value: str) -> None:
    settings = {
        "elasticsearch.url": "http://127.0.0.1:9",
        "elasticsearch.index": "messages",
        "elasticsearch.timeout": "5",
    }

    with pytest.raises(SettingsError, match=re.escape(key)):
        ElasticsearchSearch.from_settings(resolve_settings({**settings, key: value}, environ={}))
