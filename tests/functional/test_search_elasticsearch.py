"""Search with the Elasticsearch backend end to end: API → outbox → relay → indexer worker →
Elasticsearch (the test double and noida-db, through the real client) → the search endpoint (I4)."""

from __future__ import annotations

import json

import pika
import pytest
from sqlalchemy import text

from testkit.processes import write_ini
from tests.conftest import amqp_channel, make_app, process_overrides
from tests.support.api import create_application, create_chat, create_message, messages_url
from tests.support.db import TESTING_INI
from tests.support.es_targets import DOUBLE_ONLY, EsTarget
from tests.support.pipeline import message_truth, queue_depth, wait_drained
from tests.support.wait import wait_for
from tests.support.webapp import CheckedTestApp


@pytest.fixture
def es(settings, es_target: EsTarget, tmp_path):
    """App settings and a child-process ini that search through ``es_target`` under its alias."""
    search = {
        "search.backend": "elasticsearch",
        "elasticsearch.url": es_target.url,
        "elasticsearch.index": es_target.alias,
    }
    ini = write_ini(
        tmp_path / "es.ini",
        TESTING_INI,
        process_overrides(settings, **search, **{"worker.retry_pause": "0.05", "worker.max_rounds": "2"}),
    )
    return {"settings": {**settings, **search}, "ini": ini, "target": es_target, "double": es_target.double}


@pytest.fixture
def es_app(es, clean):
    return CheckedTestApp(make_app(es["settings"]))


def refresh(es) -> None:
    """What Elasticsearch does every second by itself (the double waits to be told)."""
    es["target"].refresh()


def indexed(es) -> dict[str, tuple[int, str]]:
    return es["target"].indexed()


def search(app, token, chat, q):
    return [h["message_number"] for h in app.get(f"{messages_url(token, chat)}/search", {"q": q}).json["data"]]


def test_messages_and_edits_reach_the_index_and_the_search_endpoint(es, es_app, procs, engine, broker):
    procs.relay(ini=es["ini"])
    procs.worker("all", ini=es["ini"])
    token = create_application(es_app)["app_token"]
    create_chat(es_app, token)
    create_message(es_app, token, 1, "hello world")
    create_message(es_app, token, 1, "goodbye moon")
    es_app.patch_json(messages_url(token, 1) + "/2", {"body": "goodbye sun"})
    wait_drained(engine)
    wait_for(lambda: indexed(es) == message_truth(engine), message="index equals MySQL")
    refresh(es)
    assert search(es_app, token, 1, "ell") == [1]
    assert search(es_app, token, 1, "sun") == [2]
    assert search(es_app, token, 1, "moon") == []  # the old text is gone
    hit = es_app.get(f"{messages_url(token, 1)}/search", {"q": "wor"}).json["data"][0]
    assert hit["highlight"] == "hello <em>wor</em>ld" and hit["version"] == 1


def test_redelivered_and_reordered_events_leave_the_newest_version(es, es_app, procs, engine, settings, broker):
    procs.relay(ini=es["ini"])
    procs.worker("indexer", ini=es["ini"])
    token = create_application(es_app)["app_token"]
    create_chat(es_app, token)
    create_message(es_app, token, 1, "v1")
    for body in ("v2", "v3"):
        es_app.patch_json(messages_url(token, 1) + "/1", {"body": body})
    wait_for(lambda: indexed(es) == message_truth(engine), message="index at v3")
    with engine.connect() as conn:
        events = [
            json.loads(p)
            for (p,) in conn.execute(text("SELECT payload FROM outbox_events WHERE type LIKE 'message.%' ORDER BY id"))
        ]
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for event in reversed(events * 2):  # every version again, newest first: stale all
            channel.basic_publish(
                broker.events_exchange,
                event["type"],
                json.dumps(event).encode(),
                pika.BasicProperties(message_id=event["event_id"]),
            )
        wait_for(lambda: queue_depth(channel, broker.queue("indexer")) == 0, message="redeliveries taken")
    # A sentinel message behind them in the queue: once it is indexed, they were all applied.
    create_message(es_app, token, 1, "sentinel")
    wait_for(lambda: len(indexed(es)) == 2, message="sentinel indexed")
    doc = es["target"].stored(f"{token}:1:1", routing=f"{token}:1")
    assert (doc.version, doc.source["body"]) == (3, "v3")


@pytest.mark.parametrize("es_target", DOUBLE_ONLY, indirect=True)  # an injected fault
def test_a_document_the_index_keeps_failing_is_dead_lettered_after_the_delivery_limit(
    es, es_app, procs, engine, settings, broker
):
    procs.relay(ini=es["ini"])
    procs.worker("indexer", ini=es["ini"])
    token = create_application(es_app)["app_token"]
    create_chat(es_app, token)
    es["double"].fail_bulk_item(f"{token}:1:2", status=500, error_type="internal", times=10_000)
    for i in range(1, 4):
        create_message(es_app, token, 1, f"message {i}")
    with amqp_channel(settings) as channel:
        wait_for(
            lambda: queue_depth(channel, broker.dead_queue("indexer")) == 1,
            timeout=60,
            message="dead-lettered after the delivery limit",
        )
        method, properties, _ = channel.basic_get(broker.dead_queue("indexer"))
        channel.basic_nack(method.delivery_tag, requeue=True)
    deaths = properties.headers["x-death"]
    assert deaths[0]["reason"] == "delivery_limit"
    # The others were not blocked behind it.
    assert set(indexed(es)) == {f"{token}:1:1", f"{token}:1:3"}


@pytest.mark.parametrize("es_target", DOUBLE_ONLY, indirect=True)  # a server that goes away
def test_readyz_checks_elasticsearch_when_it_is_the_backend(es, es_app):
    assert es_app.get("/readyz").json["checks"]["elasticsearch"] == "ok"
    es["double"].stop()
    res = es_app.get("/readyz", status=503)
    assert res.json["checks"]["elasticsearch"] == "unavailable"
    token = create_application(es_app)["app_token"]
    create_chat(es_app, token)
    res = es_app.get(f"{messages_url(token, 1)}/search", {"q": "x"}, status=503)
    assert res.json["error"]["code"] == "service_unavailable"


def test_concurrent_edits_of_one_message_end_with_matching_row_and_index(es, es_app, procs, engine, settings):
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.http import Client, serve

    procs.relay(ini=es["ini"])
    procs.worker("indexer", ini=es["ini"])
    token = create_application(es_app)["app_token"]
    create_chat(es_app, token)
    create_message(es_app, token, 1, "original")
    edits = 24
    with serve(make_app(es["settings"])) as a, serve(make_app(es["settings"])) as b:
        client = Client()
        urls = [f"{base}{messages_url(token, 1)}/1" for base in (a, b)]
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(lambda i: client.request("PATCH", urls[i % 2], {"body": f"edit {i}"}), range(edits))
            )
    assert {r.status for r in replies} == {200}
    versions = sorted(r.json["version"] for r in replies)
    assert versions == list(range(2, edits + 2))  # every edit got its own version
    last = max(replies, key=lambda r: r.json["version"]).json
    wait_for(lambda: indexed(es) == message_truth(engine), message="index at the last edit")
    assert message_truth(engine)[f"{token}:1:1"] == (edits + 1, last["body"])


def test_deleted_messages_leave_the_index_and_stale_writes_cannot_bring_them_back(
    es, es_app, procs, engine, settings, broker
):
    """A message's deletion writes a tombstone at its new version; the events of its creation and
    edits, delivered again afterwards, are older and change nothing.  A deleted chat's messages
    get tombstones from the purger."""
    procs.relay(ini=es["ini"])
    procs.worker("all", ini=es["ini"])
    token = create_application(es_app)["app_token"]
    create_chat(es_app, token)
    create_chat(es_app, token)
    create_message(es_app, token, 1, "keep this needle")
    create_message(es_app, token, 1, "drop this needle")
    es_app.patch_json(messages_url(token, 1) + "/2", {"body": "drop this needle now"})
    create_message(es_app, token, 2, "a needle in a chat that goes")
    wait_for(lambda: indexed(es) == message_truth(engine), message="indexed")
    refresh(es)
    assert search(es_app, token, 1, "needle") == [2, 1]

    es_app.delete(messages_url(token, 1) + "/2", status=204)
    es_app.delete(f"/v1/applications/{token}/chats/2", status=204)
    wait_drained(engine)

    def purged() -> bool:
        with engine.connect() as conn:
            return conn.execute(text("SELECT purged_at IS NOT NULL FROM chats WHERE number = 2")).scalar()

    wait_for(purged, message="the chat purged")
    wait_for(lambda: indexed(es) == message_truth(engine), message="tombstones indexed")
    assert {doc: body for doc, (_, body) in indexed(es).items() if doc.endswith((":1:2", ":2:1"))} == {
        f"{token}:1:2": "",
        f"{token}:2:1": "",
    }
    refresh(es)
    assert search(es_app, token, 1, "needle") == [1]

    with engine.connect() as conn:
        stale = [
            json.loads(p)
            for (p,) in conn.execute(
                text("SELECT payload FROM outbox_events WHERE type IN ('message.created', 'message.updated')")
            )
        ]
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for event in stale:
            channel.basic_publish(
                broker.events_exchange,
                event["type"],
                json.dumps(event).encode(),
                pika.BasicProperties(message_id=event["event_id"]),
            )
        wait_for(lambda: queue_depth(channel, broker.queue("indexer")) == 0, message="stale events taken")
    create_message(es_app, token, 1, "sentinel")
    wait_for(lambda: indexed(es) == message_truth(engine), message="sentinel indexed, stale ones refused")
    refresh(es)
    assert search(es_app, token, 1, "needle") == [1]
