"""Every acknowledged create or edit leaves exactly one outbox row describing it (I1)."""

import json

import pytest
from sqlalchemy import text

from chatsys.outbox import writer
from tests.support.api import create_application, create_chat, create_message, messages_url


def outbox(engine):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, type, status, payload FROM outbox_events ORDER BY id")).all()
    return [(r.type, r.status, json.loads(r.payload), r.event_id) for r in rows]


def test_each_create_and_edit_writes_one_event_with_full_state(testapp, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token, "room")
    create_message(testapp, token, 1, "hello")
    testapp.patch_json(messages_url(token, 1) + "/1", {"body": "hello again"})
    testapp.patch_json(f"/v1/applications/{token}/chats/1", {"name": "hall"})
    testapp.patch_json(f"/v1/applications/{token}", {"name": "renamed"})

    events = outbox(engine)
    assert [(t, s) for t, s, _, _ in events] == [
        ("application.created", "pending"),
        ("chat.created", "pending"),
        ("message.created", "pending"),
        ("message.updated", "pending"),
        ("chat.updated", "pending"),
        ("application.updated", "pending"),
    ]
    data = [payload["data"] for _, _, payload, _ in events]
    assert data[0]["app_token"] == token and data[0]["name"] == "acme"
    assert data[1]["app_token"] == token and (data[1]["chat_number"], data[1]["name"]) == (1, "room")
    created, updated = data[2], data[3]
    assert (created["body"], created["version"]) == ("hello", 1)
    assert (updated["body"], updated["version"]) == ("hello again", 2)
    assert updated["message_number"] == created["message_number"] == 1
    assert (data[4]["chat_number"], data[4]["name"]) == (1, "hall")
    assert data[5]["name"] == "renamed"
    # Each event's data is what a client sees of the aggregate, plus the keys consumers need.
    message = testapp.get(messages_url(token, 1) + "/1").json
    assert {k: updated[k] for k in message} == message
    for _, _, payload, event_id in events:
        assert payload["event_id"] == event_id


def test_reads_and_failed_requests_write_no_event(testapp, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    before = len(outbox(engine))
    testapp.get(messages_url(token, 1))
    testapp.post_json(messages_url(token, 1), {"body": ""}, status=422)
    testapp.post_json(messages_url(token, 2), {"body": "x"}, status=404)
    assert len(outbox(engine)) == before


def test_failure_after_allocation_leaves_no_row_and_no_event(testapp, engine, monkeypatch):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_message(testapp, token, 1, "kept")

    def explode(dbsession, event):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writer, "record", explode)
    res = testapp.post_json(messages_url(token, 1), {"body": "lost"}, status=500)
    assert res.json["error"]["code"] == "internal_error"
    assert "disk" not in res.text and "Traceback" not in res.text
    monkeypatch.undo()

    with engine.connect() as conn:
        bodies = conn.execute(text("SELECT body FROM messages ORDER BY number")).scalars().all()
        types = conn.execute(text("SELECT type FROM outbox_events")).scalars().all()
    assert bodies == ["kept"]
    assert types.count("message.created") == 1
    # The number taken by the failed request is a gap; numbering goes on above it.
    assert create_message(testapp, token, 1, "next")["message_number"] == 3


@pytest.mark.parametrize("compat", [False, True])
def test_edit_through_either_route_writes_the_event(testapp, engine, compat):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_message(testapp, token, 1, "a")
    if compat:
        testapp.patch_json("/messages/1", {"body": "b", "chat_number": 1, "app_token": token}, status=204)
    else:
        testapp.patch_json(messages_url(token, 1) + "/1", {"body": "b"})
    last = outbox(engine)[-1]
    assert last[0] == "message.updated" and last[2]["data"]["body"] == "b"


def test_the_public_part_of_every_event_is_the_v1_representation(testapp, engine):
    """What the stream gateway sends of an event is what /v1 answers for that aggregate."""
    from chatsys.domain.public import public_data

    token = create_application(testapp)["app_token"]
    create_chat(testapp, token, "room")
    create_message(testapp, token, 1, "hello")
    shown = {
        "application": testapp.get(f"/v1/applications/{token}").json,
        "chat": testapp.get(f"/v1/applications/{token}/chats/1").json,
        "message": testapp.get(messages_url(token, 1) + "/1").json,
    }
    for event_type, _, payload, _ in outbox(engine):
        assert public_data(event_type, payload["data"]) == shown[event_type.split(".")[0]]
