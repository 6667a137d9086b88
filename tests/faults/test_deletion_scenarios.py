"""Fault scenarios of deletion (issue 24): a delete racing an edit, a delete whose event comes
again after an older index write, the relay or the purger killed in the middle of a purge, and a
chat deleted while messages are created in it.  Each checks I1–I6 (the harness) and what the
deletion promises: the content is gone from MySQL, the counts are exact, the index holds
tombstones only."""

from __future__ import annotations

import json
import threading
import uuid

import pika
import pytest
import urllib3
from sqlalchemy import text

from chatsys.runtime import faults
from tests.faults.harness import Load, Op, check_invariants
from tests.support.pipeline import outbox_status
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults

WORKERS = ("counters", "indexer", "purger")


def settle_and_check(s, load, **kwargs):
    report = check_invariants(s.report, s.engine, load, s.double, s.alias, s.tap, s.channel, s.topology, **kwargs)
    failed = [name for name, held in report.invariants.items() if not held]
    assert not failed, f"invariants broken: {failed}\n{report.line()}"
    return report


def rows(s, sql: str, **params) -> list:
    with s.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


def message_url(s, token: str, chat: int, number: int | None = None) -> str:
    url = f"{s.system.base}/v1/applications/{token}/chats/{chat}/messages"
    return url if number is None else f"{url}/{number}"


def create(http, s, token: str, chat: int, body: str) -> int:
    res = http.request("POST", message_url(s, token, chat), json={"body": body})
    assert res.status == 201, res.data
    return res.json()["message_number"]


def test_a_delete_racing_edits_of_the_same_message(scenario):
    s = scenario
    s.system.start(workers=WORKERS)
    ((token, chat),) = s.system.seed(apps=1, chats=1)
    http = urllib3.PoolManager(maxsize=8)
    load = Load(s.system.base, [(token, chat)], threads=1, edit_share=0)
    numbers = []
    for i in range(30):  # the creates are the load's ops: the harness checks they were stored
        numbers.append(create(http, s, token, chat, f"racing {i}"))
        load.ops.append(Op("create", token, chat, f"racing {i}", 201, numbers[-1], 1))
    s.report.fault("each of 30 messages edited from two threads while a third deletes it")
    outcomes: dict[str, list[int]] = {"edit": [], "delete": []}

    def edit(number: int) -> None:
        for i in range(5):
            res = http.request("PATCH", message_url(s, token, chat, number), json={"body": f"edit {i} {uuid.uuid4()}"})
            outcomes["edit"].append(res.status)

    def delete(number: int) -> None:
        outcomes["delete"].append(http.request("DELETE", message_url(s, token, chat, number)).status)

    threads = [threading.Thread(target=f, args=(n,)) for n in numbers for f in (edit, edit, delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(set(outcomes["delete"])) == [204] and set(outcomes["edit"]) <= {200, 404}
    report = settle_and_check(s, load)
    # Every message deleted, whatever order the edits and the delete took: no text left, the
    # version above every acknowledged edit's, the index a tombstone, the count 0.
    assert rows(s, "SELECT COUNT(*) FROM messages WHERE body <> '' OR deleted_at IS NULL") == [(0,)]
    assert rows(s, "SELECT messages_count FROM chats") == [(0,)]
    report.measured["edits_after_the_delete"] = outcomes["edit"].count(404)


def test_a_delete_event_redelivered_after_an_older_index_write(scenario):
    s = scenario
    s.system.start(workers=WORKERS)
    chats = s.system.seed(apps=1, chats=2)
    http = urllib3.PoolManager()
    for token, chat in chats:
        for i in range(5):
            number = create(http, s, token, chat, f"message {i}")
            http.request("PATCH", message_url(s, token, chat, number), json={"body": f"edited {i}"})
            http.request("DELETE", message_url(s, token, chat, number))
    wait_for(lambda: outbox_status(s.engine).get("pending", 0) == 0, message="published")
    with s.engine.connect() as conn:
        events = [json.loads(p) for (p,) in conn.execute(text("SELECT payload FROM outbox_events ORDER BY id"))]
    message_events = [e for e in events if e["type"].startswith("message.")]
    # Once the tombstones are written: every older write again, then the deletions again.
    wait_for(lambda: rows(s, "SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL") == [(0,)])
    replayed = [e for e in message_events if e["type"] != "message.deleted"]
    replayed += [e for e in message_events if e["type"] == "message.deleted"]
    with s.channel() as channel:
        channel.confirm_delivery()
        for event in replayed:
            channel.basic_publish(
                s.topology.events_exchange,
                event["type"],
                json.dumps(event).encode(),
                pika.BasicProperties(message_id=event["event_id"], delivery_mode=2),
            )
    s.report.fault(f"{len(replayed)} older creates, edits, then the deletions, delivered again after the tombstones")
    report = settle_and_check(s, None)
    assert rows(s, "SELECT COUNT(*) FROM messages WHERE body <> ''") == [(0,)]
    assert rows(s, "SELECT SUM(messages_count) FROM chats") == [(0,)]
    report.measured["events_replayed"] = len(replayed)


def test_the_purger_and_the_relay_killed_in_the_middle_of_purges(scenario):
    s = scenario
    s.system.start(relays=0, workers=("counters", "indexer"))
    relay = s.procs.relay()
    chats = s.system.seed(apps=2, chats=2)
    load = Load(s.system.base, chats, threads=4, edit_share=0.1).start()
    load.wait_for_requests(600)
    load.stop()
    (gone_chat_token, gone_chat), (app_token, _) = chats[0], chats[2]
    http = urllib3.PoolManager()
    assert http.request("DELETE", f"{s.system.base}/v1/applications/{gone_chat_token}/chats/{gone_chat}").status == 204
    assert http.request("DELETE", f"{s.system.base}/v1/applications/{app_token}").status == 202
    wait_for(lambda: outbox_status(s.engine).get("pending", 0) == 0, message="deletions published")
    relay.kill()
    s.report.fault("relay kill -9 after the deletions went out")
    doomed = s.procs.worker("purger", env={"CHATSYS_FAULT": faults.PURGER_AFTER_BATCH})
    assert doomed.wait_exit(60) == -9  # erased a batch, died before its tombstones
    s.report.fault("purger kill -9 after erasing a batch, before writing its tombstones")
    doomed = s.procs.worker("purger", env={"CHATSYS_FAULT": faults.PURGER_AFTER_BATCH})
    assert doomed.wait_exit(60) == -9
    s.report.fault("again, on the redelivered event")
    s.procs.relay()
    s.procs.worker("purger")
    wait_for(
        lambda: (
            rows(s, "SELECT COUNT(*) FROM chats WHERE deleted_at IS NOT NULL AND purged_at IS NULL") == [(0,)]
            and rows(s, "SELECT COUNT(*) FROM applications WHERE deleted_at IS NOT NULL AND purged_at IS NULL")
            == [(0,)]
        ),
        60,
        message="both purges finished",
    )
    settle_and_check(s, load)
    erased = rows(
        s,
        "SELECT COUNT(*) FROM messages m JOIN chats c ON c.id = m.chat_id JOIN applications a "
        "ON a.id = c.application_id WHERE (c.deleted_at IS NOT NULL OR a.deleted_at IS NOT NULL) "
        "AND (m.body <> '' OR m.deleted_at IS NULL)",
    )
    assert erased == [(0,)]
    assert rows(s, "SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL")[0][0] > 0  # the rest lives on


def test_a_chat_deleted_while_messages_are_created_in_it(scenario):
    s = scenario
    s.system.start(workers=WORKERS)
    chats = s.system.seed(apps=1, chats=2)
    doomed, kept = chats
    load = Load(s.system.base, chats, threads=6, edit_share=0).start()
    load.wait_for_requests(200)
    http = urllib3.PoolManager()
    deleted = http.request("DELETE", f"{s.system.base}/v1/applications/{doomed[0]}/chats/{doomed[1]}")
    assert deleted.status == 204
    after_delete = len(load.ops)
    s.report.fault("chat deleted while six threads create messages in it and in another")
    load.wait_for_requests(200)
    load.stop()
    settle_and_check(s, load)
    # Creates that committed before the delete are erased with the chat; those after it are 404s.
    # (Six threads: at most six requests were in flight when the delete answered.)
    before = [op for op in load.ops[:after_delete] if (op.token, op.chat) == doomed]
    later = [op for op in load.ops[after_delete + 6 :] if (op.token, op.chat) == doomed]
    assert any(op.status == 201 for op in before) and later and all(op.status == 404 for op in later)
    assert rows(
        s,
        "SELECT COUNT(*) FROM messages m JOIN chats c ON c.id = m.chat_id "
        "WHERE c.number = :n AND (m.body <> '' OR m.deleted_at IS NULL)",
        n=doomed[1],
    ) == [(0,)]
    assert all(op.status == 201 for op in load.ops if (op.token, op.chat) == kept)
