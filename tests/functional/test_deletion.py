"""Deleting messages, chats and applications (/v1 only): content gone from MySQL, out of every
read and of both search backends, counts exact, numbers never handed out again."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.api import create_application, create_chat, create_message, messages_url
from tests.support.pipeline import count_drift, wait_drained
from tests.support.wait import wait_for


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


def error_code(res) -> str:
    return res.json["error"]["code"]


def counts(testapp, token) -> tuple[int, list[int]]:
    app = testapp.get(f"/v1/applications/{token}").json
    chats = testapp.get(f"/v1/applications/{token}/chats?limit=100").json["data"]
    return app["chats_count"], [c["messages_count"] for c in chats]


def chat_with_messages(testapp, bodies=("alpha one", "beta two", "gamma three")) -> str:
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    for body in bodies:
        create_message(testapp, token, 1, body)
    return token


# -- a message -----------------------------------------------------------------------------------


def test_a_deleted_message_is_erased_and_gone_from_every_read(testapp, engine):
    token = chat_with_messages(testapp)
    url = messages_url(token, 1)
    testapp.delete(f"{url}/2", status=204)

    body, version, deleted = rows(
        engine, "SELECT body, version, deleted_at IS NOT NULL FROM messages WHERE number = 2"
    )[0]
    assert (body, version, deleted) == ("", 2, 1)  # a tombstone: number, version, when; no text
    assert error_code(testapp.get(f"{url}/2", status=404)) == "deleted"
    assert error_code(testapp.patch_json(f"{url}/2", {"body": "back"}, status=404)) == "deleted"
    assert error_code(testapp.delete(f"{url}/2", status=404)) == "deleted"
    assert error_code(testapp.get(f"{url}/9", status=404)) == "not_found"
    assert [m["message_number"] for m in testapp.get(url).json["data"]] == [1, 3]
    assert testapp.get(f"{url}/search", {"q": "beta"}).json["data"] == []
    assert [h["message_number"] for h in testapp.get(f"{url}/search", {"q": "three"}).json["data"]] == [3]
    # The original API: a 404 in its shape, and gone from its list and search.
    assert testapp.get(f"/messages/{token}/1/2", status=404).json == {"message": "Couldn't find Message"}
    assert [m["number"] for m in testapp.get(f"/chats/{token}/1/messages").json] == [1, 3]
    assert testapp.get(f"/chats/{token}/1/search/beta").json == []
    assert rows(engine, "SELECT type FROM outbox_events ORDER BY id")[-1] == ("message.deleted",)


def test_a_deleted_message_number_is_never_handed_out_again(testapp, engine, redis_client, settings):
    token = chat_with_messages(testapp)
    url = messages_url(token, 1)
    testapp.delete(f"{url}/3", status=204)  # the newest: MAX(number) of live rows is now 2
    assert create_message(testapp, token, 1, "after")["message_number"] == 4
    testapp.delete(f"{url}/4", status=204)
    redis_client.flushdb()  # every counter of this run lost (its own database: see conftest)
    assert create_message(testapp, token, 1, "after the flush")["message_number"] == 5


def test_an_idempotent_replay_of_a_deleted_message_answers_deleted(testapp):
    token = chat_with_messages(testapp, bodies=())
    url = messages_url(token, 1)
    headers = {"Idempotency-Key": "once"}
    created = testapp.post_json(url, {"body": "hello"}, headers=headers, status=201).json
    testapp.delete(f"{url}/{created['message_number']}", status=204)
    res = testapp.post_json(url, {"body": "hello"}, headers=headers, status=404)
    assert error_code(res) == "deleted"


def test_the_count_goes_down_once_however_often_the_event_comes(testapp, procs, engine, settings, broker):
    from tests.conftest import amqp_channel

    procs.relay()
    procs.worker("counters")
    token = chat_with_messages(testapp)
    wait_drained(engine)
    testapp.delete(f"{messages_url(token, 1)}/1", status=204)
    wait_drained(engine)
    assert counts(testapp, token) == (1, [2])
    with engine.connect() as conn:
        payloads = conn.execute(text("SELECT type, payload FROM outbox_events ORDER BY id DESC")).all()
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for event_type, payload in payloads * 2:  # every event twice more, the deletion first
            body = payload.encode() if isinstance(payload, str) else payload
            channel.basic_publish(broker.events_exchange, event_type, body)
    wait_for(lambda: count_drift(engine) == [], message="counts settle")
    wait_drained(engine)
    assert counts(testapp, token) == (1, [2])


# -- a chat ---------------------------------------------------------------------------------------


def test_a_deleted_chat_is_gone_at_once_and_purged_in_the_background(testapp, procs, engine, redis_client):
    procs.relay()
    procs.worker("all")
    token = chat_with_messages(testapp)
    create_chat(testapp, token, "kept")
    wait_drained(engine)
    assert counts(testapp, token) == (2, [3, 0])

    testapp.delete(f"/v1/applications/{token}/chats/1", status=204)
    # At once: no route reaches the chat or its messages, and nothing can be added to it.
    assert error_code(testapp.get(f"/v1/applications/{token}/chats/1", status=404)) == "deleted"
    assert error_code(testapp.get(f"{messages_url(token, 1)}/1", status=404)) == "deleted"
    assert error_code(testapp.post_json(messages_url(token, 1), {"body": "late"}, status=404)) == "deleted"
    assert error_code(testapp.get(f"{messages_url(token, 1)}/search", {"q": "alpha"}, status=404)) == "deleted"
    assert testapp.get(f"/chats/{token}/1", status=404).json == {"message": "Couldn't find Chat"}
    assert [c["chat_number"] for c in testapp.get(f"/v1/applications/{token}/chats").json["data"]] == [2]
    assert rows(engine, "SELECT name FROM chats WHERE number = 1") == [(None,)]

    # In the background: the messages' bodies are erased and the chat is marked purged.
    wait_for(
        lambda: rows(engine, "SELECT purged_at IS NOT NULL FROM chats WHERE number = 1") == [(1,)],
        message="the chat purged",
    )
    assert rows(engine, "SELECT COUNT(*) FROM messages WHERE body <> '' OR deleted_at IS NULL") == [(0,)]
    wait_drained(engine)
    assert counts(testapp, token) == (1, [0])

    redis_client.flushdb()
    assert create_chat(testapp, token)["chat_number"] == 3  # 1 is never handed out again


# -- an application -------------------------------------------------------------------------------


def test_a_deleted_application_stops_working_at_once_and_is_purged(testapp, procs, engine, process_ini):
    import subprocess

    from testkit.processes import BIN

    token = chat_with_messages(testapp)
    create_chat(testapp, token, "second")
    create_message(testapp, token, 2, "delta four")
    other = chat_with_messages(testapp, bodies=("unrelated",))
    procs.relay()  # no purger yet: the purge waits, and shows as in progress

    res = testapp.delete(f"/v1/applications/{token}", status=202)
    assert res.json["app_token"] == token and res.json["purge"] == "in progress"
    for path in (
        f"/v1/applications/{token}",
        f"/v1/applications/{token}/chats",
        f"/v1/applications/{token}/chats/1",
        f"{messages_url(token, 1)}/1",
        f"{messages_url(token, 2)}/search?q=delta",
    ):
        assert error_code(testapp.get(path, status=404)) == "deleted", path
    assert error_code(testapp.post_json(f"/v1/applications/{token}/chats", {}, status=404)) == "deleted"
    assert testapp.get(f"/applications/{token}", status=404).json == {"message": "Couldn't find Application"}
    assert testapp.post_json("/chats", {"name": "x", "app_token": token}, status=404).json == {
        "message": "Couldn't find Application"
    }
    assert rows(engine, "SELECT name FROM applications WHERE token = :t", t=token) == [("",)]

    def purges() -> list[str]:
        listing = subprocess.run(
            [str(BIN / "chatsys-deadletters"), str(process_ini), "list", "--outbox-only"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return [line for line in listing.stdout.splitlines() if line.startswith("  application ")]

    wait_for(lambda: rows(engine, "SELECT COUNT(*) FROM outbox_events WHERE status = 'pending'") == [(0,)])
    (line,) = purges()
    assert "messages_left=4" in line and token not in line
    assert 'chatsys_purges_pending{kind="application"} 1.0' in testapp.get("/metrics").text

    procs.worker("all")
    wait_for(
        lambda: rows(engine, "SELECT purged_at IS NOT NULL FROM applications WHERE token = :t", t=token) == [(1,)],
        message="the application purged",
    )
    assert purges() == []
    gone = rows(
        engine,
        "SELECT COUNT(*) FROM messages m JOIN chats c ON c.id = m.chat_id "
        "JOIN applications a ON a.id = c.application_id "
        "WHERE a.token = :t AND (m.body <> '' OR m.deleted_at IS NULL)",
        t=token,
    )
    assert gone == [(0,)]
    assert rows(engine, "SELECT COUNT(*) FROM chats c JOIN applications a ON a.id = c.application_id "
                "WHERE a.token = :t AND (c.deleted_at IS NULL OR c.purged_at IS NULL)", t=token) == [(0,)]  # fmt: skip
    # Nothing else was touched.
    assert testapp.get(f"{messages_url(other, 1)}/1").json["body"] == "unrelated"


def test_the_original_api_has_no_delete_routes(testapp):
    token = chat_with_messages(testapp)
    for path in (f"/applications/{token}", f"/chats/{token}/1", f"/messages/{token}/1/1"):
        assert set(testapp.delete(path, status=405).json) == {"message"}
    assert testapp.get(f"{messages_url(token, 1)}/1").json["body"] == "alpha one"
