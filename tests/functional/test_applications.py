"""Applications: create, read, rename, and what a client may never see."""

import re

from sqlalchemy import text

from tests.support.api import create_application

FIELDS = {"app_token", "name", "chats_count", "created_at", "updated_at"}


def test_create_returns_token_and_representation(testapp, engine):
    res = testapp.post_json("/applications", {"name": "Acme"}, status=201)
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
    assert testapp.get(f"/applications/{token}").json["name"] == "old"
    res = testapp.patch_json(f"/applications/{token}", {"name": "new"})
    assert res.json["name"] == "new"
    assert res.json["updated_at"] >= res.json["created_at"]
    assert testapp.get(f"/applications/{token}").json["name"] == "new"


def test_unknown_token_is_404(testapp):
    res = testapp.get("/applications/nope", status=404)
    assert res.json["error"]["code"] == "not_found"
    testapp.patch_json("/applications/nope", {"name": "x"}, status=404)


def test_unicode_name_round_trips(testapp):
    name = "Café ☕ 𝄞 — 日本"
    token = create_application(testapp, name)["app_token"]
    assert testapp.get(f"/applications/{token}").json["name"] == name
