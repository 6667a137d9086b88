"""Messages: numbered per chat, edited with a rising version, listed by cursor."""

import json
from datetime import datetime

import pytest
from sqlalchemy import text

from chatsys.domain import messages
from tests.support.api import create_application, create_chat, create_message, messages_url

FIELDS = set(messages.KEYS)  # chat_number, message_number and the shown columns: no internal id


def setup_chat(testapp, chats=1):
    token = create_application(testapp)["app_token"]
    for _ in range(chats):
        create_chat(testapp, token)
    return token


def test_messages_are_numbered_per_chat(testapp):
    token = setup_chat(testapp, chats=2)
    assert [create_message(testapp, token, 1, f"m{i}")["message_number"] for i in range(3)] == [1, 2, 3]
    assert create_message(testapp, token, 2, "other")["message_number"] == 1


def test_create_and_get(testapp):
    token = setup_chat(testapp)
    created = create_message(testapp, token, 1, "hello")
    assert set(created) == FIELDS
    assert created["chat_number"] == 1 and created["version"] == 1
    fetched = testapp.get(messages_url(token, 1) + "/1").json
    assert fetched == created


TRICKY_BODIES = [
    "plain",
    'quotes " and \\ backslashes \\" and / slashes',
    "line\nbreaks\r\nand\ttabs",
    "controls \x01\x1f\x7f and separators \u2028\u2029",
    "emoji 🙂👍🏽 and CJK 漢字 and RTL שלום",
    "</script><b>markup</b> &amp; entities",
    "x" * 10_000,
]


def test_a_listed_message_is_the_message_as_created_read_and_edited(testapp):
    """The /v1 list reads each row as JSON that MySQL builds (chatsys.domain.packed); the
    create, the single read and the edit build it in Python from the columns: the same JSON."""
    token = setup_chat(testapp)
    created = [create_message(testapp, token, 1, body) for body in TRICKY_BODIES]
    edited = testapp.patch_json(messages_url(token, 1) + "/2", {"body": "edited \u00e9"}).json
    created[1] = edited
    listed = testapp.get(messages_url(token, 1), {"limit": 100}).json["data"]
    read = [testapp.get(f"{messages_url(token, 1)}/{m['message_number']}").json for m in created]
    assert listed == created == read
    assert [list(m) for m in listed] == [list(m) for m in read]  # the same keys in the same order


def test_patch_raises_version_and_changes_body(testapp, engine):
    token = setup_chat(testapp)
    create_message(testapp, token, 1, "first")
    res = testapp.patch_json(messages_url(token, 1) + "/1", {"body": "second"})
    assert res.json["body"] == "second" and res.json["version"] == 2
    res = testapp.patch_json(messages_url(token, 1) + "/1", {"body": "third"})
    assert res.json["version"] == 3
    with engine.connect() as conn:
        assert conn.execute(text("SELECT body, version FROM messages")).one() == ("third", 3)


def test_unknown_message_is_404(testapp):
    token = setup_chat(testapp)
    testapp.get(messages_url(token, 1) + "/1", status=404)
    testapp.get(messages_url(token, 1) + "/x1", status=404)
    testapp.patch_json(messages_url(token, 1) + "/1", {"body": "x"}, status=404)
    testapp.post_json(messages_url(token, 9), {"body": "x"}, status=404)


def test_reads_tell_a_missing_or_deleted_chat_from_an_empty_one(testapp):
    """A read names its chat inside its own statement; when it finds nothing, the answer still
    says which of the application, the chat and the message is missing, or deleted."""
    token = setup_chat(testapp, chats=3)
    create_message(testapp, token, 1, "kept")
    create_message(testapp, token, 1, "deleted")
    testapp.delete(messages_url(token, 1) + "/2", status=204)
    testapp.delete(f"/v1/applications/{token}/chats/2", status=204)
    gone = create_application(testapp)["app_token"]
    create_chat(testapp, gone)
    create_message(testapp, gone, 1, "in a deleted application")
    testapp.delete(f"/v1/applications/{gone}", status=202)

    def code(path: str) -> str:
        return testapp.get(path, status=404).json["error"]["code"]

    def original(path: str) -> str:
        return testapp.get(path, status=404).json["message"]

    empty = {"data": [], "pagination": {"limit": 50, "next_cursor": None, "next": None}}
    assert testapp.get(messages_url(token, 3)).json == empty  # a chat with no messages
    assert testapp.get(messages_url(token, 1), {"after": 1}).json == empty  # past the last one
    assert testapp.get(f"/chats/{token}/3/messages").json == []
    assert [m["body"] for m in testapp.get(messages_url(token, 1)).json["data"]] == ["kept"]
    for path, expected in [
        (messages_url(token, 1) + "/2", "deleted"),
        (messages_url(token, 1) + "/3", "not_found"),
        (messages_url(token, 2), "deleted"),
        (messages_url(token, 2) + "/1", "deleted"),
        (messages_url(token, 9), "not_found"),
        (messages_url(token, 9) + "/1", "not_found"),
        (messages_url(gone, 1), "deleted"),
        (messages_url(gone, 1) + "/1", "deleted"),
        (messages_url("nope", 1), "not_found"),
        (messages_url("nope", 1) + "/1", "not_found"),
        # The token column's collation ignores trailing spaces: such a token names nothing.
        (messages_url(token + "%20", 1), "not_found"),
        (messages_url(token + "%20", 1) + "/1", "not_found"),
    ]:
        assert code(path) == expected, path
    assert original(f"/messages/{token}/1/2") == "Couldn't find Message"
    assert original(f"/messages/{token}/2/1") == "Couldn't find Chat"
    assert original(f"/chats/{token}/2/messages") == "Couldn't find Chat"
    assert original(f"/chats/{gone}/1/messages") == "Couldn't find Application"
    assert original(f"/messages/{gone}/1/1") == "Couldn't find Application"
    assert original(f"/chats/{token}%20/1/messages") == "Couldn't find Application"
    # A missing chat answers 404 before a bad parameter's 422, as where the chat is looked up first.
    assert code(messages_url("nope", 1) + "?after=0&before=1") == "not_found"
    assert code(messages_url(token, 2) + "?limit=0") == "deleted"
    assert original(f"/chats/{token}/9/messages?limit=0") == "Couldn't find Chat"
    testapp.get(messages_url(token, 1) + "?after=0&before=1", status=422)


def test_creates_tell_a_missing_or_deleted_chat_before_a_bad_body(testapp, engine):
    """A create finds and locks its chat in one statement, after reading its body; a chat that is
    not there is still its 404, before a bad body's or header's 4xx, and nothing is written."""
    token = setup_chat(testapp, chats=2)
    testapp.delete(f"/v1/applications/{token}/chats/2", status=204)
    gone = create_application(testapp)["app_token"]
    create_chat(testapp, gone)
    testapp.delete(f"/v1/applications/{gone}", status=202)

    def code(url: str, body=None, **kwargs) -> str:
        if body is None:
            return testapp.post_json(url, {"body": "hi"}, status=404, **kwargs).json["error"]["code"]
        return testapp.post(url, body, status=404, **kwargs).json["error"]["code"]

    def original(app_token: str, chat_number, **fields) -> str:
        params = {"app_token": app_token, "chat_number": chat_number, **fields}
        return testapp.post_json("/messages", params, status=404).json["message"]

    for url, expected in [
        (messages_url(token, 2), "deleted"),
        (messages_url(token, 9), "not_found"),
        (messages_url(gone, 1), "deleted"),
        (messages_url("nope", 1), "not_found"),
        (messages_url(token + "%20", 1), "not_found"),
    ]:
        assert code(url) == expected, url
        assert code(url, '{"body": ""}', content_type="application/json") == expected, url  # a 422 body
        assert code(url, "{", content_type="application/json") == expected, url  # a 400 body
        assert code(url, "body=hi", content_type="text/plain") == expected, url  # a 415 body
        assert code(url, headers={"Idempotency-Key": "with space"}) == expected, url
    assert original(token, 2, body="hi") == "Couldn't find Chat"
    assert original(token, 9) == "Couldn't find Chat"  # and no body
    assert original(gone, 1, body="hi") == "Couldn't find Application"
    # The chat is there: the body's own answer, and a message once the body is good.
    testapp.post_json(messages_url(token, 1), {"body": ""}, status=422)
    testapp.post(messages_url(token, 1), "{", content_type="application/json", status=400)
    testapp.post_json("/messages", {"app_token": token, "chat_number": 1}, status=422)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 0
    assert create_message(testapp, token, 1, "hi")["message_number"] == 1


def test_list_ascending_after_and_descending_before(testapp):
    token = setup_chat(testapp)
    for i in range(1, 8):
        create_message(testapp, token, 1, f"m{i}")
    seen, url = [], messages_url(token, 1) + "?limit=3"
    while url:
        res = testapp.get(url).json
        seen += [m["message_number"] for m in res["data"]]
        url = res["pagination"]["next"]
    assert seen == [1, 2, 3, 4, 5, 6, 7]

    newest, url = [], messages_url(token, 1) + "?limit=4&before=2147483647"
    while url:
        res = testapp.get(url).json
        newest += [m["message_number"] for m in res["data"]]
        url = res["pagination"]["next"]
    assert newest == [7, 6, 5, 4, 3, 2, 1]


def test_pages_are_stable_while_messages_arrive(testapp):
    token = setup_chat(testapp)
    for i in range(5):
        create_message(testapp, token, 1, f"m{i}")
    first = testapp.get(messages_url(token, 1) + "?limit=3").json
    create_message(testapp, token, 1, "late arrival")
    second = testapp.get(first["pagination"]["next"]).json
    numbers = [m["message_number"] for m in first["data"] + second["data"]]
    assert numbers == [1, 2, 3, 4, 5, 6]


def test_default_and_maximum_page_size(testapp, engine):
    token = setup_chat(testapp)
    with engine.begin() as conn:
        chat_id = conn.execute(text("SELECT id FROM chats")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO messages (chat_id, number, body, version, created_at, updated_at) "
                "VALUES (:c, :n, 'x', 1, NOW(6), NOW(6))"
            ),
            [{"c": chat_id, "n": n} for n in range(1, 121)],
        )
    assert len(testapp.get(messages_url(token, 1)).json["data"]) == 50
    assert len(testapp.get(messages_url(token, 1) + "?limit=100").json["data"]) == 100
    testapp.get(messages_url(token, 1) + "?limit=101", status=422)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, 0),  # isoformat keeps the zeros: timespec="microseconds"
        datetime(2026, 12, 31, 23, 59, 59, 999999),
        datetime(2024, 2, 29, 0, 0, 0, 1),
        datetime(1999, 9, 9, 9, 9, 9, 90000),
    ],
)
def test_reads_show_timestamps_exactly_as_writes_do(testapp, engine, moment):
    """Reads have MySQL format the timestamps; writes format them in Python: the same text."""
    token = setup_chat(testapp)
    create_message(testapp, token, 1, "x")
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET created_at = :t, updated_at = :t"), {"t": moment})
    expected = moment.isoformat(timespec="microseconds") + "Z"
    one = testapp.get(messages_url(token, 1) + "/1").json
    listed = testapp.get(messages_url(token, 1)).json["data"][0]
    edited = testapp.patch_json(messages_url(token, 1) + "/1", {"body": "y"}).json  # the locked row, in Python
    assert one["created_at"] == one["updated_at"] == listed["created_at"] == listed["updated_at"] == expected
    assert edited["created_at"] == expected


def test_every_read_shows_what_the_edit_returned(testapp, engine):
    """Single reads, pages and both database search paths (substring, short word) unpack the
    packed SHOWN column: each field must land where the write put it, and the body must come back
    whole, with the spaces that also separate the packed fields."""
    token = setup_chat(testapp)
    create_message(testapp, token, 1, "first words")
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET created_at = :t"), {"t": datetime(2025, 1, 2, 3, 4, 5, 6)})
    edited = testapp.patch_json(messages_url(token, 1) + "/1", {"body": "  second   words \t\n "}).json
    assert edited["version"] == 2
    assert edited["body"] == "  second   words \t\n "
    assert edited["created_at"] == "2025-01-02T03:04:05.000006Z" != edited["updated_at"]
    assert testapp.get(messages_url(token, 1) + "/1").json == edited
    assert testapp.get(messages_url(token, 1)).json["data"] == [edited]
    for q in ("words", "se"):
        hits = testapp.get(messages_url(token, 1) + "/search", {"q": q}).json["data"]
        assert [{k: v for k, v in hit.items() if k != "highlight"} for hit in hits] == [edited], q


def test_large_unicode_body_round_trips(testapp):
    token = setup_chat(testapp)
    body = "𝄞é" * 5000  # 10,000 characters, 4-byte code points included
    raw = json.dumps({"body": body}, ensure_ascii=False).encode()  # 30 KB of UTF-8
    created = testapp.post(messages_url(token, 1), raw, content_type="application/json").json
    assert testapp.get(messages_url(token, 1) + f"/{created['message_number']}").json["body"] == body


def test_responses_are_compact_utf8_json(testapp):
    token = setup_chat(testapp)
    created = create_message(testapp, token, 1, 'naïve 𝄞 "quoted"\n')
    res = testapp.get(messages_url(token, 1) + f"/{created['message_number']}")
    assert res.content_type == "application/json"
    # Non-ASCII text goes out as UTF-8, not \u escapes, and with no spaces between tokens.
    assert 'naïve 𝄞 \\"quoted\\"\\n"'.encode() in res.body
    assert res.body == json.dumps(res.json, ensure_ascii=False, separators=(",", ":")).encode()


def test_no_database_id_in_any_response(testapp, engine):
    token = setup_chat(testapp)
    create_message(testapp, token, 1, "x")
    bodies = [
        testapp.get(f"/v1/applications/{token}").json,
        testapp.get(f"/v1/applications/{token}/chats/1").json,
        testapp.get(messages_url(token, 1) + "/1").json,
        testapp.get(messages_url(token, 1)).json["data"][0],
    ]
    for body in bodies:
        assert "id" not in body and not any(k.endswith("_id") for k in body)


def test_the_newest_page_needs_no_magic_number(testapp):
    """?order=newest gives the newest messages first; its next link goes on to older ones."""
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    for n in range(1, 8):
        create_message(testapp, token, 1, f"m{n}")
    url = f"/v1/applications/{token}/chats/1/messages"
    first = testapp.get(url, {"order": "newest", "limit": 3}).json
    assert [m["message_number"] for m in first["data"]] == [7, 6, 5]
    second = testapp.get(first["pagination"]["next"]).json
    assert [m["message_number"] for m in second["data"]] == [4, 3, 2]
    last = testapp.get(second["pagination"]["next"]).json
    assert [m["message_number"] for m in last["data"]] == [1] and last["pagination"]["next"] is None
    oldest = testapp.get(url, {"limit": 3}).json
    assert [m["message_number"] for m in oldest["data"]] == [1, 2, 3]
    res = testapp.get(url, {"order": "newest", "after": 2}, status=422)
    assert res.json["error"]["details"][0]["field"] == "order"
