"""Idempotency-Key: a retried POST returns the original resource and creates nothing new."""

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from tests.conftest import make_app
from tests.support.api import create_application, create_chat, messages_url
from tests.support.http import Client, serve


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_retried_message_create_returns_the_first(testapp, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    headers = {"Idempotency-Key": "req-42"}
    first = testapp.post_json(messages_url(token, 1), {"body": "once"}, headers=headers, status=201)
    again = testapp.post_json(messages_url(token, 1), {"body": "once"}, headers=headers, status=201)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count(engine, "messages") == 1
    # application.created, chat.created and one message.created
    assert count(engine, "outbox_events") == 3


def test_a_replay_shows_the_body_exactly_as_created(testapp):
    """Replays read the message back from MySQL (the packed SHOWN column): spaces, tabs and
    newlines at either end of the body, and the timestamps, must come back as the create said."""
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    headers = {"Idempotency-Key": "spaces"}
    body = {"body": " \t leading, inner  and trailing \n "}
    first = testapp.post_json(messages_url(token, 1), body, headers=headers, status=201)
    again = testapp.post_json(messages_url(token, 1), body, headers=headers, status=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
    assert again.json["body"] == body["body"]


def test_retried_chat_create_returns_the_first(testapp, engine):
    token = create_application(testapp)["app_token"]
    headers = {"Idempotency-Key": "chat-1"}
    first = testapp.post_json(f"/v1/applications/{token}/chats", {"name": "a"}, headers=headers, status=201)
    again = testapp.post_json(f"/v1/applications/{token}/chats", {"name": "a"}, headers=headers, status=201)
    assert again.json == first.json
    assert count(engine, "chats") == 1


def test_same_key_different_body_is_rejected(testapp, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    headers = {"Idempotency-Key": "k"}
    testapp.post_json(messages_url(token, 1), {"body": "a"}, headers=headers, status=201)
    res = testapp.post_json(messages_url(token, 1), {"body": "b"}, headers=headers, status=422)
    assert res.json["error"]["code"] == "idempotency_key_reused"
    assert count(engine, "messages") == 1


def test_keys_are_scoped_to_their_parent(testapp, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_chat(testapp, token)
    headers = {"Idempotency-Key": "same"}
    a = testapp.post_json(messages_url(token, 1), {"body": "x"}, headers=headers, status=201).json
    b = testapp.post_json(messages_url(token, 2), {"body": "x"}, headers=headers, status=201).json
    assert (a["chat_number"], b["chat_number"]) == (1, 2)
    assert count(engine, "messages") == 2


def test_concurrent_retries_create_one_message(testapp, engine, settings):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    with serve(make_app(settings)) as a, serve(make_app(settings)) as b:
        client = Client()
        urls = [f"{base}{messages_url(token, 1)}" for base in (a, b)]
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(
                    lambda i: client.post(urls[i % 2], {"body": "dup"}, {"Idempotency-Key": "burst"}),
                    range(16),
                )
            )
    assert {r.status for r in replies} == {201}
    assert len({r.json["message_number"] for r in replies}) == 1
    assert count(engine, "messages") == 1
