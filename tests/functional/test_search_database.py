"""The database search backend on the shared table of search cases, and through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from chatsys.search.database import DatabaseSearch
from chatsys.search.interfaces import ChatScope, InvalidCursor, SearchRequest
from chatsys.search.query import words
from tests.support import seed
from tests.support.api import create_application, create_chat, create_message
from tests.support.search_cases import ASKED_APP_TOKEN, ASKED_CHAT_NUMBER, HIGHLIGHT_CASES, SEARCH_CASES


def load(engine, messages) -> dict[tuple[str, int], int]:
    """Insert the case's applications, chats and messages; return chat ids by (token, number)."""
    chats: dict[tuple[str, int], int] = {}
    apps: dict[str, int] = {}
    with engine.begin() as conn:
        for m in messages:
            if m.app_token not in apps:
                apps[m.app_token] = seed.application(conn, m.app_token)
            key = (m.app_token, m.chat_number)
            if key not in chats:
                chats[key] = seed.chat(conn, apps[m.app_token], m.chat_number)
        seed.messages(
            conn,
            [{"chat_id": chats[(m.app_token, m.chat_number)], "number": m.number, "body": m.body} for m in messages],
        )
    return chats


def request_for(chats, query: str, limit: int = 20, cursor=None) -> SearchRequest:
    scope = ChatScope(ASKED_APP_TOKEN, ASKED_CHAT_NUMBER, chats.get((ASKED_APP_TOKEN, ASKED_CHAT_NUMBER), 0))
    return SearchRequest(chat=scope, text=query, words=words(query), limit=limit, cursor=cursor)


@pytest.mark.parametrize("case", SEARCH_CASES, ids=[c.name for c in SEARCH_CASES])
def test_search_cases(engine, clean, case):
    chats = load(engine, case.messages)
    with Session(engine) as session:
        page = DatabaseSearch(session).search(request_for(chats, case.query))
    assert tuple(hit.message_number for hit in page.hits) == case.expected


@pytest.mark.parametrize("case", HIGHLIGHT_CASES, ids=[c.name for c in HIGHLIGHT_CASES])
def test_highlights_are_elasticsearchs(engine, clean, case):
    """The fragments Elasticsearch shows (tests/support/search_cases.py): here, noida's gaps
    are not in the way."""
    from tests.support.search_cases import CaseMessage

    chats = load(engine, [CaseMessage(1, case.body), CaseMessage(2, "nothing to see")])
    with Session(engine) as session:
        page = DatabaseSearch(session).search(request_for(chats, case.query))
    assert [hit.highlight for hit in page.hits] == [case.expected]


def test_pages_cover_every_hit_once_and_cursors_are_checked(engine, clean):
    from tests.support.search_cases import CaseMessage

    bodies = [CaseMessage(n, f"item {n} {'ab' if n % 3 else 'zz'}") for n in range(1, 48)]
    chats = load(engine, bodies)
    expected = [m.number for m in reversed(bodies) if m.number % 3]
    with Session(engine) as session:
        backend = DatabaseSearch(session)
        seen, cursor = [], None
        while True:
            page = backend.search(request_for(chats, "ab item", limit=7, cursor=cursor))
            seen += [h.message_number for h in page.hits]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected
        with pytest.raises(InvalidCursor):
            backend.search(
                request_for(chats, "other words", cursor=backend.search(request_for(chats, "ab", limit=1)).next_cursor)
            )


@pytest.mark.parametrize("limit", [1, 5, 100])
def test_sparse_short_word_hits_are_found_across_growing_chunks(engine, clean, limit):
    """A short word that SQL's LIKE finds in every row but that starts a word in few of them:
    the backend must keep scanning, in larger and larger chunks, and page through all of them."""
    from tests.support.search_cases import CaseMessage

    bodies = [CaseMessage(n, f"ab at the start {n}" if n % 97 == 0 else f"xab inside {n}") for n in range(1, 2501)]
    chats = load(engine, bodies)
    expected = [n for n in range(2500, 0, -1) if n % 97 == 0]
    with Session(engine) as session:
        backend = DatabaseSearch(session)
        seen, cursor, pages = [], None, 0
        while True:
            page = backend.search(request_for(chats, "AB", limit=limit, cursor=cursor))
            assert len(page.hits) <= limit
            assert all(hit.highlight.startswith("<em>ab</em> at the start") for hit in page.hits)
            seen += [h.message_number for h in page.hits]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == expected
    assert pages == -(-len(expected) // limit)  # every page full but the last, and no empty page


@pytest.mark.parametrize("sparse", [False, True], ids=["sql-decides", "python-checks"])
def test_a_request_examines_at_most_max_scan_messages_and_the_cursor_goes_on(engine, clean, sparse):
    """1,000 messages, hits only among the oldest 30, and a scan cap of 100: no request reads more
    than 100 messages, the first pages come back empty with a cursor, and following the cursors
    finds every hit once, newest first."""
    from tests.support.search_cases import CaseMessage

    hit, miss = ("ab at the start", "xab inside") if sparse else ("needle here", "hay only")
    bodies = [CaseMessage(n, f"{hit if n <= 30 else miss} {n}") for n in range(1, 1001)]
    chats = load(engine, bodies)
    query = "ab" if sparse else "needle"
    examined: list[int] = []

    def count_rows(conn, cursor, statement, parameters, context, executemany):
        if "REGEXP" in statement and isinstance(parameters, dict):
            examined.append(parameters["before"] - parameters["floor"])

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", count_rows)
    try:
        with Session(engine) as session:
            backend = DatabaseSearch(session, max_scan=100)
            seen, cursor, pages = [], None, []
            while True:
                page = backend.search(request_for(chats, query, limit=20, cursor=cursor))
                pages.append(len(page.hits))
                seen += [h.message_number for h in page.hits]
                cursor = page.next_cursor
                if cursor is None:
                    break
    finally:
        event.remove(engine, "before_cursor_execute", count_rows)
    assert seen == list(range(30, 0, -1))
    assert pages[:9] == [0] * 9  # numbers 1000 down to 101: nine windows of 100 without a hit
    assert examined and max(examined) <= 100


def test_every_statement_runs_under_the_time_limit_and_the_limit_is_lifted_after(engine, clean):
    """A statement past ``search.database_time_limit`` is stopped by the server (an
    OperationalError: the web's 503), and the connection goes back to the pool without it."""
    from sqlalchemy.exc import OperationalError

    from tests.support.search_cases import CaseMessage

    variable = "max_statement_time" if engine.dialect.is_mariadb else "max_execution_time"
    chats = load(engine, [CaseMessage(1, "nothing to see")])
    with Session(engine) as session:
        backend = DatabaseSearch(session, time_limit=0.2)
        with backend._time_limit():
            assert float(session.execute(text(f"SELECT @@SESSION.{variable}")).scalar()) in (0.2, 200)
            with pytest.raises(OperationalError):
                session.execute(text("SELECT SLEEP(5) FROM messages RIGHT JOIN (SELECT 1) one ON 1 = 1")).all()
        assert float(session.execute(text(f"SELECT @@SESSION.{variable}")).scalar()) == 0
        assert [hit.message_number for hit in backend.search(request_for(chats, "nothing")).hits] == [1]


def test_search_api_highlights_and_paginates(testapp):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_chat(testapp, token)
    for i in range(5):
        create_message(testapp, token, 1, f"Café <b>{i}</b> hello")
    create_message(testapp, token, 2, "hello from another chat")
    url = f"/v1/applications/{token}/chats/1/messages/search"
    first = testapp.get(url, {"q": "CAFE hel", "limit": 2}).json
    assert [h["message_number"] for h in first["data"]] == [5, 4]
    # Encoded as Elasticsearch encodes highlights (its HTML encoder escapes "/" too).
    assert first["data"][0]["highlight"] == "<em>Café</em> &lt;b&gt;4&lt;&#x2F;b&gt; <em>hel</em>lo"
    rest = testapp.get(first["pagination"]["next"]).json
    assert [h["message_number"] for h in rest["data"]] == [3, 2]
    assert testapp.get(url, {"q": "nothing"}).json["data"] == []


@pytest.mark.parametrize(
    "params,field",
    [
        ({}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 257}, "q"),
        ({"q": "a", "limit": "0"}, "limit"),
        ({"q": "a", "limit": "101"}, "limit"),
        ({"q": "a", "sort": "oldest"}, "sort"),
        ({"q": "a", "cursor": "garbage!"}, "cursor"),
    ],
)
def test_search_parameters_are_validated(testapp, params, field):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    res = testapp.get(f"/v1/applications/{token}/chats/1/messages/search", params, status=422)
    assert res.json["error"]["details"][0]["field"] == field


@pytest.mark.parametrize("q", ["*", '"', "\\", "OR", "{", "%", "_", "' OR 1=1 --", "a%b_c\\d", "){}[]"])
def test_query_syntax_is_plain_text(testapp, q):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_message(testapp, token, 1, "plain words only")
    hits = testapp.get(f"/v1/applications/{token}/chats/1/messages/search", {"q": q}).json["data"]
    assert hits == []


UNUSUAL_BODIES = [
    "Straße ÆBLE œuvre smørrebrød Łódź ĳssel ﬁne ＡＢＣ x²y ½ Ⅻ ① café Ça İstanbul ΟΔΟΣ Привет",
    "naïve coöperate façade ǅemal ǆ ŉ ħ ŀ ŧ ŋ ĸ ſ ı đ ð þ",
    "e\u0301cole cafe\u0301 a\u00adb snake_case don't 3.14 日本語 😀ok",
]


@pytest.mark.parametrize("body", UNUSUAL_BODIES)
def test_the_sql_patterns_let_through_every_body_the_semantics_accept(engine, body):
    """REGEXP only narrows the rows that Python then checks: a body matching a word must match
    its pattern (or the database backend would miss hits that Elasticsearch finds)."""
    from chatsys.search.database import pattern
    from chatsys.search.query import fold_text, matches_all, word_spans

    candidates = set()
    for start, end in word_spans(body):
        for i in range(start, end):
            for length in (1, 2, 3, 4):
                piece = body[i : i + length]
                candidates |= {piece, fold_text(piece)}
    query_words = sorted({w for piece in candidates for w in words(piece)})
    accepted = [w for w in query_words if matches_all(body, (w,))]
    assert len(accepted) > 30  # the check below means something
    with engine.connect() as conn:
        statement = text("SELECT CONVERT(:body USING utf8mb4) COLLATE utf8mb4_unicode_ci REGEXP :pattern")
        missed = [w for w in accepted if not conn.execute(statement, {"body": body, "pattern": pattern(w)}).scalar()]
    assert missed == []
