"""The relay under broker trouble (issue 20): only a refusal by the broker spends an attempt;
nacks and lost channels are retried for as long as they last; parked rows are retried on their
own and stay visible as parked until the broker takes them.  Real relay and worker processes on
the real broker and MariaDB."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest
from sqlalchemy import text

from chatsys.models import utcnow
from testkit.processes import BIN, write_ini
from tests.conftest import amqp_channel, process_overrides
from tests.support.api import create_application, create_chat, create_message
from tests.support.db import TESTING_INI
from tests.support.pipeline import count_drift, outbox_status, wait_drained
from tests.support.wait import wait_for


def relay_ini(settings, tmp_path, **extra):
    fast = {"relay.backoff_base": "0.05", "relay.backoff_max": "0.2", "relay.transient_backoff_max": "0.2"}
    return write_ini(tmp_path / "relay.ini", TESTING_INI, process_overrides(settings, **{**fast, **extra}))


def outbox_rows(engine, event_type: str | None = None) -> list:
    query = "SELECT event_id, status, attempts, last_error FROM outbox_events"
    query += " WHERE type = :type ORDER BY id" if event_type else " ORDER BY id"
    with engine.connect() as conn:
        return conn.execute(text(query), {"type": event_type}).all()


def counts(testapp, token):
    app = testapp.get(f"/v1/applications/{token}").json
    chats = testapp.get(f"/v1/applications/{token}/chats?limit=100").json["data"]
    return app["chats_count"], [c["messages_count"] for c in chats]


def metric(testapp, name: str) -> float:
    line = next(line for line in testapp.get("/metrics").text.splitlines() if line.startswith(f"{name} "))
    return float(line.split()[1])


class Tap:
    """A queue bound to every event type: how many times the relay put each event on the wire."""

    def __init__(self, channel, exchange: str):
        self.channel = channel
        self.queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(self.queue, exchange, "#")
        self.seen: Counter = Counter()

    def drain(self) -> Counter:
        while True:
            method, properties, _ = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return self.seen
            self.seen[properties.message_id] += 1


def test_nacks_spend_no_attempt_and_the_events_go_out_once_the_broker_takes_them(
    testapp, procs, engine, settings, broker, tmp_path
):
    """A queue that refuses every publish (full, ``reject-publish``) makes the broker nack every
    event routed to it: back-pressure, not a fault of the events.  With ``max_attempts`` 2, each
    event is published again and again and never parked; once the queue is gone, all go out."""
    full = f"{broker.namespace}.full"
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        tap = Tap(channel, broker.events_exchange)
        channel.queue_declare(full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        try:
            channel.queue_bind(full, broker.events_exchange, "#")
            procs.relay(ini=relay_ini(settings, tmp_path, **{"relay.max_attempts": "2"}))
            procs.worker("counters")
            token = create_application(testapp, "nacked")["app_token"]
            create_chat(testapp, token)
            for i in range(3):
                create_message(testapp, token, 1, f"nacked {i}")
            with engine.connect() as conn:
                events = set(conn.execute(text("SELECT event_id FROM outbox_events")).scalars())
            assert len(events) == 5  # application, chat, three messages

            # Each event on the wire four times or more: twice the attempt budget, all nacked.
            wait_for(
                lambda: set(tap.drain()) == events and min(tap.seen.values()) >= 4,
                message="every event published and nacked at least 4 times",
            )
            rows = outbox_rows(engine)
            assert {(r.status, r.attempts) for r in rows} == {("pending", 0)}
            assert all("nacked by the broker" in r.last_error for r in rows)
            assert metric(testapp, "chatsys_outbox_parked") == 0
        finally:
            channel.queue_delete(full)  # the broker takes them again

    wait_drained(engine)
    assert outbox_status(engine) == {"published": 5}
    assert {r.attempts for r in outbox_rows(engine)} == {0}
    assert counts(testapp, token) == (1, [3])
    assert count_drift(engine) == []


def test_a_channel_the_broker_closes_spends_no_attempt(testapp, procs, engine, settings, broker, tmp_path):
    """The events exchange deleted under the relay: its next publish makes the broker close the
    channel (404).  The relay connects again, declares the topology afresh and publishes the
    same rows; with ``max_attempts`` 1 a counted attempt would have parked every one of them."""
    relay = procs.relay(ini=relay_ini(settings, tmp_path, **{"relay.max_attempts": "1"}))
    worker = procs.worker("counters")
    # Both have declared the topology (a late start would declare the exchange again).
    wait_for(lambda: "connected to the broker" in relay.output(), message="relay connected")
    wait_for(lambda: "consuming" in worker.output(), message="worker consuming")
    with amqp_channel(settings) as channel:
        channel.exchange_delete(broker.events_exchange)
    token = create_application(testapp, "closed")["app_token"]
    create_chat(testapp, token)
    for i in range(3):
        create_message(testapp, token, 1, f"closed {i}")
    wait_for(lambda: outbox_status(engine) == {"published": 5}, message="all published after the reconnect")
    assert "NOT_FOUND" in relay.output()  # the channel really was closed under it
    assert {r.attempts for r in outbox_rows(engine)} == {0}
    wait_for(lambda: counts(testapp, token) == (1, [3]), message="counted")


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl on the broker's host")
def test_a_channel_left_nacking_after_a_queue_limit_is_cleared_is_replaced(
    testapp, procs, engine, settings, broker, tmp_path
):
    """A quorum queue with ``reject-publish`` that reaches a ``max-length`` policy tells the
    channels publishing to it to reject.  When the policy is then cleared, RabbitMQ 3.x never
    tells them to stop (rabbitmq-server#12206): every later publish on such a channel is nacked,
    for ever.  The relay, nacked whole for ``nacked_reconnect`` seconds, opens a new connection,
    and the queue takes the new channel's publishes.  (The policy matches this run's queue only.
    On a broker where clearing the policy unblocks the channel, the relay no longer needs the
    reconnect and the first assertion after the clear says so.)"""
    policy = f"{broker.namespace}-full"
    relay = procs.relay(ini=relay_ini(settings, tmp_path, **{"relay.nacked_reconnect": "3"}))
    wait_for(lambda: "connected to the broker" in relay.output(), message="relay connected")
    pattern = "^" + broker.queue("counters").replace(".", "\\.") + "$"
    rabbitmqctl("set_policy", "--apply-to", "queues", "--priority", "100", policy, pattern, '{"max-length": 0}')
    try:
        # No worker yet: what the queue takes stays ready.  It takes the chat's event and is then
        # over its limit, which it tells the relay's channel; the messages' events are nacked.
        # (The application's event goes to the event stream only.)
        token = create_application(testapp, "left-nacking")["app_token"]
        create_chat(testapp, token)
        wait_for(lambda: outbox_status(engine) == {"published": 2}, message="the chat's event taken")
        for i in range(3):
            create_message(testapp, token, 1, f"left nacking {i}")
        wait_for(lambda: "nacked by the broker" in relay.output(), message="the relay nacked")
    finally:
        rabbitmqctl("clear_policy", policy)  # the operator lifts the limit
    wait_for(lambda: outbox_status(engine) == {"published": 5}, message="all published after the limit was lifted")
    assert "every publish nacked for 3s: opening a new connection" in relay.output()
    assert {r.attempts for r in outbox_rows(engine)} == {0}
    procs.worker("counters")
    wait_for(lambda: counts(testapp, token) == (1, [3]), message="counted")


def test_parked_rows_are_retried_by_themselves_and_stay_parked_until_published(
    testapp, procs, engine, settings, broker, tmp_path, process_ini
):
    """An event nobody is bound to is returned (NO_ROUTE): that refusal counts, and after
    ``max_attempts`` the row is parked.  The relay keeps trying it every ``parked_retry``
    seconds; meanwhile the row stays ``parked`` (never pending again), the gauge and
    ``chatsys-deadletters list`` show it, and once a binding is back it is published with no one
    running anything."""
    relay = procs.relay(ini=relay_ini(settings, tmp_path, **{"relay.max_attempts": "2", "relay.parked_retry": "0.5"}))
    worker = procs.worker("counters")
    # Both have declared the topology (a late start would bind chat.created again).
    wait_for(lambda: "connected to the broker" in relay.output(), message="relay connected")
    wait_for(lambda: "consuming" in worker.output(), message="worker consuming")
    token = create_application(testapp, "parked")["app_token"]
    wait_for(lambda: outbox_status(engine) == {"published": 1}, message="the application's event published")
    with amqp_channel(settings) as channel:  # no queue takes chat.created any more
        channel.queue_unbind(broker.queue("counters"), broker.events_exchange, routing_key="chat.created")
        channel.queue_unbind(broker.stream, broker.events_exchange, routing_key="#")
    create_chat(testapp, token)

    statuses = []

    def retried_while_parked() -> bool:
        (row,) = outbox_rows(engine, "chat.created")
        statuses.append(row.status)
        return row.status == "parked" and row.attempts >= 5

    wait_for(retried_while_parked, message="a parked row tried again three times")
    assert set(statuses[statuses.index("parked") :]) == {"parked"}  # never shown as pending meanwhile
    (row,) = outbox_rows(engine, "chat.created")
    assert "NO_ROUTE" in row.last_error
    assert metric(testapp, "chatsys_outbox_parked") == 1
    listing = subprocess.run(
        [str(BIN / "chatsys-deadletters"), str(process_ini), "list", "--outbox-only"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "parked outbox rows: 1" in listing.stdout, listing.stderr
    assert row.event_id in listing.stdout and "next_try=" in listing.stdout

    with amqp_channel(settings) as channel:
        broker.declare(channel)  # the binding is back; nobody runs chatsys-deadletters
    wait_for(lambda: outbox_status(engine) == {"published": 2}, message="the parked row published by itself")
    wait_for(lambda: counts(testapp, token) == (1, [0]), message="the chat counted")
    assert metric(testapp, "chatsys_outbox_parked") == 0


def test_each_claim_reads_one_range_of_the_outbox_index_without_sorting(engine, clean):
    """Pending and parked rows are claimed by two statements, each one range of the
    (status, next_attempt_at, id) index in index order: a claim costs its own rows, not a sort of
    every due row (which ``status IN ('pending', 'parked')`` would need)."""
    from chatsys.outbox.relay import CLAIM, CLAIM_PARKED

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, "
                "next_attempt_at, created_at) VALUES (:e, 'chat.created', 'k', '{}', :s, 0, "
                "UTC_TIMESTAMP(6) - INTERVAL :age SECOND, UTC_TIMESTAMP(6))"
            ),
            [{"e": f"e{i}", "s": ("pending", "parked", "published")[i % 3], "age": i % 500 - 250} for i in range(3000)],
        )
        conn.execute(text("ANALYZE TABLE outbox_events"))
    with engine.connect() as conn:
        for statement in (CLAIM, CLAIM_PARKED):
            plan = conn.execute(text(f"EXPLAIN {statement.text}"), {"now": utcnow(), "limit": 100}).mappings().all()
            assert len(plan) == 1
            assert (plan[0]["type"], plan[0]["key"]) == ("range", "ix_outbox_events_status_next_attempt_at_id")
            assert "filesort" not in (plan[0]["Extra"] or "")
