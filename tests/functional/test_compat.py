"""The older API's routes: same bodies and status codes as it had, same implementation as ours."""

from sqlalchemy import text

from tests.support.api import create_application, create_chat, create_message


def test_chat_routes(testapp):
    token = create_application(testapp)["app_token"]
    created = testapp.post_json("/chats", {"name": "lobby", "app_token": token}, status=201).json
    assert created["chat_number"] == 1 and created["name"] == "lobby"
    assert testapp.get(f"/chats/{token}/1").json == testapp.get(f"/applications/{token}/chats/1").json
    res = testapp.patch_json("/chats/1", {"name": "hall", "app_token": token}, status=204)
    assert res.body == b""
    assert testapp.get(f"/chats/{token}/1").json["name"] == "hall"


def test_message_routes(testapp, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    created = testapp.post_json(
        "/messages", {"body": "hi there", "chat_number": 1, "app_token": token}, status=201
    ).json
    assert created["message_number"] == 1
    assert testapp.get(f"/messages/{token}/1/1").json == created
    listed = testapp.get(f"/chats/{token}/1/messages").json
    assert [m["body"] for m in listed["data"]] == ["hi there"]
    testapp.patch_json("/messages/1", {"body": "edited", "chat_number": 1, "app_token": token}, status=204)
    fetched = testapp.get(f"/messages/{token}/1/1").json
    assert (fetched["body"], fetched["version"]) == ("edited", 2)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 1


def test_search_routes(testapp):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_message(testapp, token, 1, "hello world")
    create_message(testapp, token, 1, "goodbye")
    for url in (f"/messages/{token}/1/search/wor", f"/chats/{token}/1/search/wor"):
        hits = testapp.get(url).json["data"]
        assert [h["message_number"] for h in hits] == [1]


def test_compat_errors(testapp):
    token = create_application(testapp)["app_token"]
    testapp.post_json("/chats", {"name": "x", "app_token": "unknown"}, status=404)
    testapp.post_json("/chats", {"name": "x"}, status=422)
    testapp.post_json("/messages", {"body": "x", "chat_number": 1, "app_token": token}, status=404)
    res = testapp.post_json("/messages", {"body": "x", "chat_number": "1", "app_token": token}, status=422)
    assert res.json["error"]["details"][0]["field"] == "chat_number"
    testapp.patch_json("/messages/abc", {"body": "x", "chat_number": 1, "app_token": token}, status=404)
    res = testapp.get("/chats/1", status=405)
    assert res.headers["Allow"] == "PATCH"
