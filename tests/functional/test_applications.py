"""Applications: create, read, rename, and what a client may never see."""

import re

from sqlalchemy import text

from tests.support.api import chat_url, create_application, create_chat, create_message, messages_url

FIELDS = {"app_token", "name", "chats_count", "created_at", "updated_at"}


def test_create_returns_token_and_representation(testapp, engine):
    res = testapp.post_json("/v1/applications", {"name": "Acme"}, status=201)
    assert set(res.json) == FIELDS
    assert res.json["name"] == "Acme"
    assert res.json["chats_count"] == 0
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, token FROM applications")).one()
    assert row == ("Acme", res.json["app_token"])


def test_tokens_are_long_random_and_url_safe(testapp):
    tokens = {create_application(testapp)["app_token"] for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        # 32 URL-safe base64 characters = 192 bits from secrets.token_urlsafe.
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)


def test_get_and_patch(testapp):
    token = create_application(testapp, "old")["app_token"]
    assert testapp.get(f"/v1/applications/{token}").json["name"] == "old"
    res = testapp.patch_json(f"/v1/applications/{token}", {"name": "new"})
    assert res.json["name"] == "new"
    assert res.json["updated_at"] >= res.json["created_at"]
    assert testapp.get(f"/v1/applications/{token}").json["name"] == "new"


def test_unknown_token_is_404(testapp):
    res = testapp.get("/v1/applications/nope", status=404)
    assert res.json["error"]["code"] == "not_found"
    testapp.patch_json("/v1/applications/nope", {"name": "x"}, status=404)


def spellings_of(token: str) -> list[str]:
    """Near misses of a token that a case- or pad-insensitive comparison would take for it."""
    cases = [token.swapcase(), token.lower(), token.upper()]
    return cases + [f"{token}%20", f"{token}%20%20", f"%20{token}", f"{token}%09"]


def test_a_token_matches_only_as_generated(testapp, engine):
    token = create_application(testapp)["app_token"]
    assert token.swapcase() != token
    create_chat(testapp, token)
    create_message(testapp, token, 1, "hello")
    for other in spellings_of(token):
        assert testapp.get(f"/v1/applications/{other}", status=404).json["error"]["code"] == "not_found"
        testapp.post_json(f"/v1/applications/{other}/chats", {"name": "x"}, status=404)
        testapp.get(chat_url(other, 1), status=404)
        testapp.post_json(messages_url(other, 1), {"body": "through a variant"}, status=404)
        testapp.get(f"{messages_url(other, 1)}/1", status=404)
        testapp.get(f"{messages_url(other, 1)}/search", {"q": "hello"}, status=404)
    for other in (token.swapcase(), f"{token} ", f"{token}\t"):
        testapp.post_json("/chats", {"name": "x", "app_token": other}, status=404)
        testapp.post_json("/messages", {"body": "x", "chat_number": 1, "app_token": other}, status=404)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM chats")).scalar() == 1
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar() == 1
        keys = conn.execute(text("SELECT aggregate_key FROM outbox_events")).scalars().all()
    # Every event names the application by its token exactly as generated.
    assert keys and all(key == token or key.startswith(f"{token}:") for key in keys)


def test_unicode_name_round_trips(testapp):
    name = "Café ☕ 𝄞 — 日本"
    token = create_application(testapp, name)["app_token"]
    assert testapp.get(f"/v1/applications/{token}").json["name"] == name
