"""Chats: numbered per application, listed by cursor, renamed; counts come from the pipeline."""

from sqlalchemy import text

from tests.support.api import chat_url, create_application, create_chat

FIELDS = {"chat_number", "name", "messages_count", "created_at", "updated_at"}


def test_chats_are_numbered_per_application(testapp):
    a = create_application(testapp)["app_token"]
    b = create_application(testapp)["app_token"]
    assert [create_chat(testapp, a)["chat_number"] for _ in range(3)] == [1, 2, 3]
    assert create_chat(testapp, b)["chat_number"] == 1


def test_create_with_and_without_name(testapp):
    token = create_application(testapp)["app_token"]
    named = create_chat(testapp, token, "random")
    assert set(named) == FIELDS
    assert named["name"] == "random" and named["messages_count"] == 0
    res = testapp.post(f"/v1/applications/{token}/chats", status=201)  # no body at all
    assert res.json["chat_number"] == 2 and res.json["name"] is None


def test_get_and_patch(testapp):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token, "a")
    assert testapp.get(chat_url(token, 1)).json["name"] == "a"
    assert testapp.patch_json(chat_url(token, 1), {"name": "b"}).json["name"] == "b"
    assert testapp.get(chat_url(token, 1)).json["name"] == "b"


def test_unknown_chat_is_404(testapp):
    token = create_application(testapp)["app_token"]
    testapp.get(chat_url(token, 1), status=404)
    testapp.get(f"/v1/applications/{token}/chats/abc", status=404)
    testapp.get(f"/v1/applications/{token}/chats/0", status=404)
    testapp.get(f"/v1/applications/{token}/chats/99999999999999999999999", status=404)


def test_chat_is_committed_before_its_201(testapp):
    # A message posted right after its chat was created must find the chat.
    token = create_application(testapp)["app_token"]
    for _ in range(5):
        number = create_chat(testapp, token)["chat_number"]
        testapp.post_json(chat_url(token, number) + "/messages", {"body": "hi"}, status=201)


def test_list_pages_cover_every_chat_once(testapp):
    token = create_application(testapp)["app_token"]
    for _ in range(7):
        create_chat(testapp, token)
    seen, url = [], f"/v1/applications/{token}/chats?limit=3"
    while url:
        res = testapp.get(url)
        seen += [c["chat_number"] for c in res.json["data"]]
        url = res.json["pagination"]["next"]
        if url:
            assert res.headers["Link"] == f'<{url}>; rel="next"'
    assert seen == [1, 2, 3, 4, 5, 6, 7]


def test_chats_of_another_application_are_invisible(testapp, engine):
    a = create_application(testapp)["app_token"]
    b = create_application(testapp)["app_token"]
    create_chat(testapp, a, "secret")
    assert testapp.get(f"/v1/applications/{b}/chats").json["data"] == []
    testapp.get(chat_url(b, 1), status=404)
    testapp.patch_json(chat_url(b, 1), {"name": "hijack"}, status=404)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM chats")).scalar_one() == "secret"
