"""The original API's contract, as its Rails controllers answered (KhaledMosaad/
instabug_chat_system, app/controllers and config/routes.rb): paths, statuses, shapes, keys,
empty 204 bodies, bare arrays, string numbers, form bodies, ignored fields and error bodies.

Objects may carry more keys than the original's; every test checks the original's keys are there
with the original's types, and no list or error has a shape the original did not have.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.support.api import create_application

RAILS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def call(testapp, method: str, path: str, body: dict | None, status: int):
    if body is None:
        return testapp.request(path, method=method, status=status)
    return getattr(testapp, f"{method.lower()}_json")(path, body, status=status)


def assert_keys(obj: dict, **types) -> None:
    for key, kind in types.items():
        assert key in obj, (key, obj)
        if kind is RAILS_TIME:
            assert RAILS_TIME.match(obj[key]), (key, obj[key])
        elif kind is not None:
            assert isinstance(obj[key], kind) and not isinstance(obj[key], bool), (key, obj[key])


@pytest.fixture
def app_token(testapp) -> str:
    res = testapp.post_json("/applications", {"name": "acme"}, status=201)
    return res.json["app_token"]


@pytest.fixture
def chat(testapp, app_token) -> str:
    testapp.post_json("/chats", {"name": "general", "app_token": app_token}, status=201)
    return app_token


# -- ApplicationsController ------------------------------------------------------------------------


def test_create_application(testapp, engine):
    res = testapp.post_json("/applications", {"name": "acme"}, status=201)
    assert_keys(res.json, app_token=str, name=str, created_at=RAILS_TIME, updated_at=RAILS_TIME, chats_count=int)
    assert res.json["name"] == "acme" and res.json["chats_count"] == 0
    assert rows(engine, "SELECT name FROM applications WHERE token = :t", t=res.json["app_token"]) == [("acme",)]


def test_show_application(testapp, app_token):
    res = testapp.get(f"/applications/{app_token}", status=200)
    assert_keys(res.json, app_token=str, name=str, created_at=RAILS_TIME, updated_at=RAILS_TIME, chats_count=int)
    assert res.json["app_token"] == app_token


def test_update_application_is_204_with_no_body(testapp, engine, app_token):
    res = testapp.patch_json(f"/applications/{app_token}", {"name": "renamed"}, status=204)
    assert res.body == b""
    assert rows(engine, "SELECT name FROM applications WHERE token = :t", t=app_token) == [("renamed",)]


def test_index_lists_the_chats_as_a_bare_array_with_number(testapp, app_token):
    for name in ("one", "two"):
        testapp.post_json("/chats", {"name": name, "app_token": app_token}, status=201)
    res = testapp.get(f"/applications/{app_token}/chats", status=200)
    assert isinstance(res.json, list) and [c["number"] for c in res.json] == [1, 2]
    for item in res.json:
        assert set(item) == {"number", "name", "created_at", "updated_at", "messages_count"}
        assert_keys(item, number=int, name=str, created_at=RAILS_TIME, updated_at=RAILS_TIME, messages_count=int)
    assert [c["name"] for c in res.json] == ["one", "two"]


# -- ChatsController --------------------------------------------------------------------------------


def test_create_chat(testapp, engine, app_token):
    res = testapp.post_json("/chats", {"name": "general", "app_token": app_token}, status=201)
    assert_keys(res.json, name=str, messages_count=int, chat_number=int)
    assert (res.json["name"], res.json["chat_number"], res.json["messages_count"]) == ("general", 1, 0)
    assert rows(engine, "SELECT number, name FROM chats") == [(1, "general")]


def test_show_chat(testapp, chat):
    res = testapp.get(f"/chats/{chat}/1", status=200)
    assert_keys(res.json, name=str, created_at=RAILS_TIME, updated_at=RAILS_TIME, messages_count=int, chat_number=int)
    assert res.json["chat_number"] == 1


def test_update_chat_is_204_with_no_body(testapp, engine, chat):
    res = testapp.patch_json("/chats/1", {"name": "renamed", "app_token": chat}, status=204)
    assert res.body == b""
    assert rows(engine, "SELECT name FROM chats") == [("renamed",)]


def test_chat_messages_are_a_bare_array_with_number(testapp, chat):
    for body in ("first", "second"):
        testapp.post_json("/messages", {"body": body, "chat_number": 1, "app_token": chat}, status=201)
    res = testapp.get(f"/chats/{chat}/1/messages", status=200)
    assert [m["number"] for m in res.json] == [1, 2] and [m["body"] for m in res.json] == ["first", "second"]
    for item in res.json:
        assert set(item) == {"number", "body", "created_at", "updated_at"}
        assert_keys(item, number=int, body=str, created_at=RAILS_TIME, updated_at=RAILS_TIME)


# -- MessagesController -----------------------------------------------------------------------------


def test_the_original_readme_request_creates_a_message(testapp, engine, chat):
    """POST /messages exactly as the original README shows it: chat_number a string."""
    res = testapp.post_json("/messages", {"body": "first_message", "chat_number": "1", "app_token": chat}, status=201)
    assert_keys(res.json, chat_number=int, message_number=int, body=str)
    assert (res.json["chat_number"], res.json["message_number"], res.json["body"]) == (1, 1, "first_message")
    assert rows(engine, "SELECT number, body FROM messages") == [(1, "first_message")]


def test_show_message(testapp, chat):
    testapp.post_json("/messages", {"body": "hello", "chat_number": "1", "app_token": chat}, status=201)
    res = testapp.get(f"/messages/{chat}/1/1", status=200)
    assert_keys(res.json, chat_number=int, message_number=int, body=str, created_at=RAILS_TIME, updated_at=RAILS_TIME)
    assert (res.json["message_number"], res.json["body"]) == (1, "hello")


def test_update_message_is_204_with_no_body(testapp, engine, chat):
    testapp.post_json("/messages", {"body": "hello", "chat_number": "1", "app_token": chat}, status=201)
    res = testapp.patch_json("/messages/1", {"body": "edited", "chat_number": "1", "app_token": chat}, status=204)
    assert res.body == b""
    assert rows(engine, "SELECT body, version FROM messages") == [("edited", 2)]


@pytest.mark.parametrize("path", ["/messages/{t}/1/search/{q}", "/chats/{t}/1/search/{q}"])
def test_search_is_a_bare_array_of_hits_with_number_and_body(testapp, chat, path):
    for body in ("hello world", "the worst day", "nothing here"):
        testapp.post_json("/messages", {"body": body, "chat_number": "1", "app_token": chat}, status=201)
    res = testapp.get(path.replace("{t}", chat).replace("{q}", "wor"), status=200)
    assert isinstance(res.json, list)
    assert sorted((h["number"], h["body"]) for h in res.json) == [(1, "hello world"), (2, "the worst day")]
    for hit in res.json:
        assert_keys(hit, number=int, body=str)


# -- Rails parameters --------------------------------------------------------------------------------


def test_form_encoded_bodies_work(testapp, engine, app_token):
    res = testapp.post("/chats", {"name": "form chat", "app_token": app_token}, status=201)
    assert res.json["chat_number"] == 1
    testapp.post("/messages", {"body": "a form message", "chat_number": "1", "app_token": app_token}, status=201)
    testapp.patch("/messages/1", {"body": "edited by form", "chat_number": "1", "app_token": app_token}, status=204)
    assert rows(engine, "SELECT body FROM messages") == [("edited by form",)]


def test_multipart_bodies_work(testapp, engine, app_token):
    testapp.post("/chats", {"name": "multi", "app_token": app_token}, content_type="multipart/form-data", status=201)
    assert rows(engine, "SELECT name FROM chats") == [("multi",)]


def test_query_string_parameters_work(testapp, engine, app_token):
    testapp.post(f"/chats?name=from%20query&app_token={app_token}", status=201)
    testapp.post(f"/messages?body=q%20body&chat_number=1&app_token={app_token}", status=201)
    assert rows(engine, "SELECT body FROM messages") == [("q body",)]


def test_the_body_wins_over_the_query_and_the_path_over_the_body(testapp, engine, chat):
    testapp.post_json(f"/messages?body=from-query&app_token={chat}", {"body": "from-body", "chat_number": 1})
    assert rows(engine, "SELECT body FROM messages") == [("from-body",)]
    # PATCH /messages/:number: the path's number, not the body's.
    testapp.patch_json("/messages/1", {"body": "edited", "chat_number": 1, "app_token": chat, "number": 7}, status=204)
    assert rows(engine, "SELECT number, body FROM messages") == [(1, "edited")]


def test_unknown_fields_are_ignored(testapp, engine, chat):
    testapp.post_json(
        "/messages",
        {"body": "hi", "chat_number": "1", "app_token": chat, "id": 99, "number": 42, "sender": {"x": 1}},
        status=201,
    )
    testapp.patch_json(f"/applications/{chat}", {"name": "n", "chats_count": 1000, "app_token": "other"}, status=204)
    assert rows(engine, "SELECT number, body FROM messages") == [(1, "hi")]
    assert rows(engine, "SELECT name, chats_count FROM applications") == [("n", 0)]


def test_a_number_given_as_a_json_integer_works_too(testapp, chat):
    res = testapp.post_json("/messages", {"body": "x", "chat_number": 1, "app_token": chat}, status=201)
    assert res.json["chat_number"] == 1


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,body,message",
    [
        ("GET", "/applications/nope", None, "Couldn't find Application"),
        ("PATCH", "/applications/nope", {"name": "x"}, "Couldn't find Application"),
        ("GET", "/applications/nope/chats", None, "Couldn't find Application"),
        ("POST", "/chats", {"name": "x", "app_token": "nope"}, "Couldn't find Application"),
        ("POST", "/chats", {"name": "x"}, "Couldn't find Application"),
        ("GET", "/chats/{t}/9", None, "Couldn't find Chat"),
        ("GET", "/chats/{t}/abc", None, "Couldn't find Chat"),
        ("PATCH", "/chats/9", {"name": "x", "app_token": "{t}"}, "Couldn't find Chat"),
        ("GET", "/chats/{t}/9/messages", None, "Couldn't find Chat"),
        ("POST", "/messages", {"body": "x", "chat_number": "9", "app_token": "{t}"}, "Couldn't find Chat"),
        ("POST", "/messages", {"body": "x", "chat_number": "one", "app_token": "{t}"}, "Couldn't find Chat"),
        ("GET", "/messages/{t}/1/9", None, "Couldn't find Message"),
        ("PATCH", "/messages/9", {"body": "x", "chat_number": "1", "app_token": "{t}"}, "Couldn't find Message"),
        ("GET", "/messages/{t}/9/search/abc", None, "Couldn't find Chat"),
    ],
)
def test_not_found_is_404_with_a_message(testapp, engine, chat, method, path, body, message):
    before = rows(engine, "SELECT COUNT(*) FROM outbox_events")
    path = path.replace("{t}", chat)
    if body is not None:
        body = {k: v.replace("{t}", chat) if isinstance(v, str) else v for k, v in body.items()}
    res = call(testapp, method, path, body, 404)
    assert res.json == {"message": message}
    assert rows(engine, "SELECT COUNT(*) FROM outbox_events") == before


@pytest.mark.parametrize(
    "method,path,body,errors",
    [
        ("POST", "/applications", {}, {"name": ["can't be blank"]}),
        ("POST", "/applications", {"name": "   "}, {"name": ["can't be blank"]}),
        ("POST", "/applications", {"name": ["a", "list"]}, {"name": ["can't be blank"]}),
        ("PATCH", "/applications/{t}", {"name": ""}, {"name": ["can't be blank"]}),
        ("POST", "/chats", {"app_token": "{t}"}, {"name": ["can't be blank"]}),
        (
            "POST",
            "/chats",
            {"app_token": "{t}", "name": "x" * 256},
            {"name": ["is too long (maximum is 255 characters)"]},
        ),
        ("PATCH", "/chats/1", {"app_token": "{t}"}, {"name": ["can't be blank"]}),
        ("POST", "/messages", {"chat_number": "1", "app_token": "{t}"}, {"body": ["can't be blank"]}),
        ("POST", "/messages", {"chat_number": "1", "app_token": "{t}", "body": "a\u0000b"}, {"body": ["is invalid"]}),
        ("PATCH", "/messages/1", {"chat_number": "1", "app_token": "{t}", "body": " "}, {"body": ["can't be blank"]}),
    ],
)
def test_a_missing_or_blank_field_is_422_with_the_field_errors(testapp, engine, chat, method, path, body, errors):
    testapp.post_json("/messages", {"body": "existing", "chat_number": "1", "app_token": chat}, status=201)
    before = rows(engine, "SELECT COUNT(*), MAX(version) FROM messages")
    body = {k: v.replace("{t}", chat) if isinstance(v, str) else v for k, v in body.items()}
    res = call(testapp, method, path.replace("{t}", chat), body, 422)
    assert res.json == errors
    assert rows(engine, "SELECT COUNT(*), MAX(version) FROM messages") == before


def test_malformed_json_is_400_with_a_message(testapp, app_token):
    res = testapp.post("/chats", b'{"name": ', content_type="application/json", status=400)
    assert set(res.json) == {"message"}


def test_a_method_the_original_did_not_route_is_405_in_its_shape(testapp, app_token):
    """Rails answered 404 for a method it did not route; HTTP (and schemathesis) say 405 with
    Allow, and the body keeps the original's error shape."""
    res = testapp.delete(f"/applications/{app_token}", status=405)
    assert res.headers["Allow"] == "GET, HEAD, PATCH" and set(res.json) == {"message"}
    assert testapp.get("/chats/1", status=405).headers["Allow"] == "PATCH"


# -- big lists -----------------------------------------------------------------------------------


def test_a_long_list_holds_the_newest_items_and_links_to_the_older_ones(settings, clean):
    """Bare arrays are capped (chatsys.original_list_limit): the newest items, oldest first, and
    a Link header to the rest, which a client can follow to the very first."""
    from tests.conftest import make_app
    from tests.support.webapp import CheckedTestApp

    app = CheckedTestApp(make_app(settings, **{"chatsys.original_list_limit": "3"}))
    token = create_application(app)["app_token"]
    app.post_json("/chats", {"name": "big", "app_token": token}, status=201)
    for n in range(1, 8):
        app.post_json("/messages", {"body": f"m{n}", "chat_number": 1, "app_token": token}, status=201)
    res = app.get(f"/chats/{token}/1/messages", status=200)
    assert [m["number"] for m in res.json] == [5, 6, 7]
    seen = [m["number"] for m in res.json]
    while "Link" in res.headers:
        url = re.fullmatch(r'<([^>]+)>; rel="next"', res.headers["Link"]).group(1)
        assert url.startswith(f"/chats/{token}/1/messages?")
        res = app.get(url, status=200)
        seen = [m["number"] for m in res.json] + seen
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert [m["number"] for m in app.get(f"/chats/{token}/1/messages?limit=2").json] == [6, 7]
