"""The asynchronous half end to end: relay and workers as real processes on the real broker.

Counts (I5), nothing stuck (I2), redelivery and crashes absorbed, poison parked (I6).
"""

from __future__ import annotations

import json
import shutil
import threading

import pika
import pytest
from sqlalchemy import text

from chatsys.broker import connection_parameters
from chatsys.runtime import faults
from tests.conftest import amqp_channel
from tests.support.api import create_application, create_chat, create_message, messages_url
from tests.support.pipeline import count_drift, outbox_status, queue_depth, wait_drained
from tests.support.wait import wait_for


def seed(testapp, apps=2, chats=3, messages=5):
    tokens = []
    for a in range(apps):
        token = create_application(testapp, f"app{a}")["app_token"]
        tokens.append(token)
        for c in range(1, chats + 1):
            create_chat(testapp, token)
            for m in range(messages):
                create_message(testapp, token, c, f"message {m} of chat {c}")
    return tokens


def counts(testapp, token):
    app = testapp.get(f"/v1/applications/{token}").json
    chats = testapp.get(f"/v1/applications/{token}/chats?limit=100").json["data"]
    return app["chats_count"], [c["messages_count"] for c in chats]


def all_counted(engine) -> bool:
    with engine.connect() as conn:
        return not conn.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM chats WHERE counted = 0) "
                "+ (SELECT COUNT(*) FROM messages WHERE counted = 0)"
            )
        ).scalar_one()


def test_counts_reach_the_truth_and_the_outbox_drains(testapp, procs, engine):
    procs.relay()
    procs.worker("all")
    tokens = seed(testapp)
    wait_drained(engine)
    for token in tokens:
        assert counts(testapp, token) == (3, [5, 5, 5])
    assert outbox_status(engine) == {"published": 2 + 2 * 3 + 2 * 3 * 5}  # applications, chats, messages
    assert all_counted(engine)


def test_same_event_published_twice_changes_no_count(testapp, procs, engine, settings, broker):
    procs.relay()
    procs.worker("counters")
    token = seed(testapp, apps=1, chats=1, messages=3)[0]
    wait_drained(engine)
    with engine.connect() as conn:
        payloads = conn.execute(text("SELECT type, payload FROM outbox_events")).all()
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for event_type, payload in payloads * 2:  # every event, twice more, out of order
            body = payload.encode() if isinstance(payload, str) else payload
            channel.basic_publish(
                broker.events_exchange,
                event_type,
                body,
                pika.BasicProperties(message_id=json.loads(body)["event_id"], delivery_mode=2),
            )
    # A sentinel behind the duplicates in the same FIFO queue: once it is counted, so were they.
    create_chat(testapp, token)
    wait_for(lambda: counts(testapp, token)[0] == 2, message="sentinel counted")
    assert counts(testapp, token) == (2, [3, 0])
    assert count_drift(engine) == []


def test_relay_killed_between_confirm_and_commit_loses_and_doubles_nothing(testapp, procs, engine):
    worker = procs.worker("all")
    seed(testapp, apps=1, chats=2, messages=10)
    doomed = procs.relay(env={"CHATSYS_FAULT": faults.RELAY_AFTER_CONFIRM})
    assert doomed.wait_exit(30) == -9  # it published, got confirms, and died before committing
    assert outbox_status(engine).get("pending") == 23  # the claim was rolled back
    procs.relay()  # publishes the same events again: the consumers see duplicates
    wait_drained(engine)
    assert worker.alive
    assert count_drift(engine) == [] and all_counted(engine)


def test_worker_killed_between_commit_and_ack_loses_and_doubles_nothing(testapp, procs, engine):
    procs.relay()
    seed(testapp, apps=1, chats=2, messages=10)
    wait_for(lambda: outbox_status(engine).get("pending", 0) == 0, message="all published")
    doomed = procs.worker("counters", env={"CHATSYS_FAULT": faults.WORKER_AFTER_COMMIT})
    assert doomed.wait_exit(30) == -9  # committed its counts, died before acking
    procs.worker("counters")  # the unacked events are redelivered to it
    wait_drained(engine)
    assert count_drift(engine) == []


def test_two_relays_and_two_workers_give_exact_counts(settings, clean, procs, engine):
    from tests.conftest import make_app
    from tests.support.http import Client, serve

    for _ in range(2):
        procs.relay()
        procs.worker("counters")
    with serve(make_app(settings)) as base:
        client = Client()
        token = client.post(f"{base}/v1/applications", {"name": "busy"}).json["app_token"]
        for _ in range(4):
            client.post(f"{base}/v1/applications/{token}/chats", {})

        def load(worker: int) -> None:
            for i in range(60):
                chat = (worker + i) % 4 + 1
                assert client.post(f"{base}{messages_url(token, chat)}", {"body": "x"}).status == 201

        threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wait_drained(engine)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT SUM(messages_count) FROM chats")).scalar_one()
    assert total == 360
    assert count_drift(engine) == []


def test_poison_is_dead_lettered_and_the_rest_keeps_flowing(testapp, procs, engine, settings, broker):
    procs.relay()
    procs.worker("all")
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for body, mid in (
            (b"not json at all", "poison-1"),
            (b'{"event_id": "x", "type": "message.created", "data": {}}', "poison-2"),
        ):
            channel.basic_publish(broker.events_exchange, "message.created", body, pika.BasicProperties(message_id=mid))
        token = seed(testapp, apps=1, chats=1, messages=5)[0]
        wait_drained(engine)
        assert counts(testapp, token) == (1, [5])
        # Both consumers of message.created dead-letter both messages.
        wait_for(lambda: queue_depth(channel, broker.dead_queue("counters")) == 2, message="counters DLQ")
        wait_for(lambda: queue_depth(channel, broker.dead_queue("indexer")) == 2, message="indexer DLQ")
    with engine.connect() as conn:
        errors = dict(
            conn.execute(text("SELECT message_id, error FROM consumer_failures WHERE consumer='counters'")).all()
        )
    assert set(errors) == {"poison-1", "poison-2"}
    assert "not JSON" in errors["poison-1"]


def unsettled(broker) -> dict[str, tuple[int, int]]:
    """(ready, unacknowledged) of each consumer's queue in this test's namespace, from rabbitmqctl:
    a passive declare counts ready messages only."""
    out = rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
    queues = {broker.queue(c): c for c in ("counters", "indexer")}
    rows = [line.split() for line in out.splitlines()]
    return {queues[row[0]]: (int(row[1]), int(row[2])) for row in rows if len(row) == 3 and row[0] in queues}


def test_one_channel_for_both_queues_settles_each_delivery_once(testapp, procs, engine, settings, broker):
    """A backlog published in one batch reaches one worker's channel from both queues, interleaved,
    with poison inside it.  Acks cover whole batches where they can (one ``multiple`` ack), but never
    a delivery of the other queue still waiting in its buffer, nor one that is dead-lettered: the
    counts are exact, each dead-letter queue holds the poison alone, every delivery is settled, and
    the channel never fails (acking a tag twice closes it)."""
    worker = procs.worker("all")
    token = create_application(testapp, "interleaved")["app_token"]
    create_chat(testapp, token)
    create_chat(testapp, token)
    for i in range(80):
        if i % 20 == 10:  # poison in the outbox, so that it goes out inside the same batch
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, "
                        "next_attempt_at, created_at) VALUES (:e, 'message.created', 'poison', :payload, "
                        "'pending', 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                    ),
                    {"e": f"poison-{i}", "payload": json.dumps({"event_id": f"poison-{i}", "type": "message.created"})},
                )
        create_message(testapp, token, 1 + i % 2, f"message {i}")
    procs.relay()  # the whole backlog goes out at once, message events to both queues
    wait_drained(engine)
    assert counts(testapp, token) == (2, [40, 40])
    with amqp_channel(settings) as channel:
        wait_for(lambda: queue_depth(channel, broker.dead_queue("counters")) == 4, message="counters DLQ")
        wait_for(lambda: queue_depth(channel, broker.dead_queue("indexer")) == 4, message="indexer DLQ")
    if shutil.which("rabbitmqctl"):  # on the broker's host: unacknowledged deliveries show too
        done = {"counters": (0, 0), "indexer": (0, 0)}
        wait_for(lambda: unsettled(broker) == done, message="every delivery acknowledged")
    else:  # in a container: every delivery at least taken from its queue
        with amqp_channel(settings) as channel:
            for consumer in ("counters", "indexer"):
                wait_for(lambda c=consumer: queue_depth(channel, broker.queue(c)) == 0, message=f"{consumer} empty")
    assert worker.stop() == 0
    assert "connection lost" not in worker.output()
    assert all_counted(engine)


def test_recount_during_traffic_then_late_events_change_nothing(testapp, procs, engine, process_ini):
    import subprocess

    from testkit.processes import BIN

    procs.relay()  # events are published but no worker consumes them yet: all "in flight"
    token = seed(testapp, apps=1, chats=2, messages=4)[0]
    wait_for(lambda: outbox_status(engine).get("pending", 0) == 0, message="all published")
    with engine.begin() as conn:  # drift to repair, too
        conn.execute(text("UPDATE applications SET chats_count = 7"))
    result = subprocess.run(
        [str(BIN / "chatsys-recount"), str(process_ini), "--no-progress"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert counts(testapp, token) == (2, [4, 4])
    procs.worker("counters")  # now the in-flight events arrive
    create_message(testapp, token, 1, "sentinel")  # queued behind them
    wait_for(lambda: counts(testapp, token)[1][0] == 5, message="sentinel counted")
    assert counts(testapp, token) == (2, [5, 4])
    assert count_drift(engine) == []


def rabbitmqctl(*args: str) -> str:
    import subprocess

    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.services
def test_broker_restart_while_creates_continue(testapp, procs, engine, settings):
    from tests.conftest import make_app
    from tests.support.http import Client, serve

    procs.relay()
    procs.worker("all")
    token = seed(testapp, apps=1, chats=2, messages=1)[0]
    statuses: list[int] = []
    stop = threading.Event()
    with serve(make_app(settings)) as base:
        client = Client()

        def load() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                statuses.append(client.post(f"{base}{messages_url(token, i % 2 + 1)}", {"body": f"m{i}"}).status)

        thread = threading.Thread(target=load)
        thread.start()
        try:
            wait_for(lambda: len(statuses) > 20, message="load running")
            rabbitmqctl("stop_app")
            during = len(statuses)
            wait_for(lambda: len(statuses) > during + 50, message="creates while the broker is down")
            assert outbox_status(engine).get("pending", 0) > 0  # piling up, not lost
        finally:
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
        wait_for(lambda: len(statuses) > during + 100, message="creates after the broker is back")
        stop.set()
        thread.join()
    assert set(statuses) == {201}
    wait_drained(engine, timeout=120)
    assert count_drift(engine) == [] and all_counted(engine)


def test_deadletters_cli_lists_and_replays_after_a_fix(testapp, procs, engine, settings, broker, process_ini):
    import subprocess

    from testkit.processes import BIN

    def cli(*args: str) -> str:
        result = subprocess.run(
            [str(BIN / "chatsys-deadletters"), str(process_ini), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    procs.relay()
    procs.worker("counters")
    token = seed(testapp, apps=1, chats=1, messages=1)[0]
    wait_drained(engine)
    with engine.connect() as conn:
        app_id, chat_id = conn.execute(text("SELECT application_id, id FROM chats")).one()
    # A chat.created event for a chat row that does not exist (yet): poison for the counters.
    ghost = {
        "event_id": "ghost-1",
        "type": "chat.created",
        "data": {"application_id": app_id, "chat_id": chat_id + 1000},
    }
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        channel.basic_publish(
            broker.events_exchange,
            "chat.created",
            json.dumps(ghost).encode(),
            pika.BasicProperties(message_id="ghost-1", type="chat.created"),
        )
        wait_for(lambda: queue_depth(channel, broker.dead_queue("counters")) == 1, message="dead-lettered")

    listing = cli("list", "--consumer", "counters")
    assert "dead letters of counters: 1" in listing
    assert "ghost-1" in listing and "reason=rejected" in listing and "does not exist" in listing

    # The fix: the missing row appears (say, restored from a backup); replay it.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO chats (id, application_id, number, messages_count, counted, created_at, updated_at) "
                "VALUES (:id, :app, 99, 0, 0, NOW(6), NOW(6))"
            ),
            {"id": chat_id + 1000, "app": app_id},
        )
    replay = cli("replay", "--consumer", "counters", "--queues-only", "--wait", "2")
    assert "moved back to counters: 1" in replay
    assert "left there: 0" in replay  # the fixed event did not come back
    wait_for(lambda: counts(testapp, token)[0] == 2, message="replayed event counted")
    assert "dead letters of counters: 0" in cli("list", "--consumer", "counters")


def test_replay_moves_each_dead_letter_once_and_reports_poison_that_comes_straight_back(
    procs, engine, settings, broker, process_ini
):
    """Replaying poison that is still poison: the consumer rejects it straight back into the
    dead queue.  Replay moves what the queue held when it started, each message once, reports
    those that came back and ends; it used to take them again and again until it happened to find
    the queue empty (thousands of re-dead-letterings, each a database row and an ERROR line)."""
    import subprocess

    from testkit.processes import BIN

    worker = procs.worker("counters")
    wait_for(lambda: "consuming" in worker.output(), message="worker consuming")
    poison = [f"poison-{i}" for i in range(20)]
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for message_id in poison:
            channel.basic_publish(
                broker.events_exchange,
                "chat.created",
                b"not json",
                pika.BasicProperties(message_id=message_id, type="chat.created", delivery_mode=2),
            )
        wait_for(lambda: queue_depth(channel, broker.dead_queue("counters")) == 20, message="dead-lettered")

    result = subprocess.run(
        [str(BIN / "chatsys-deadletters"), str(process_ini), "replay", "--consumer", "counters", "--queues-only"]
        + ["--wait", "30"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "dead letters moved back to counters: 20" in result.stdout
    assert f"rejected straight back to {broker.dead_queue('counters')} (within 30s), left there: 20" in result.stdout
    assert all(f" {message_id} reason=rejected" in result.stdout for message_id in poison)
    # Each was rejected twice in all: once before the replay, once after it.
    assert [worker.output().count(f"dead-lettering {message_id}: ") for message_id in poison] == [2] * 20
    with amqp_channel(settings) as channel:
        assert queue_depth(channel, broker.dead_queue("counters")) == 20
    listing = subprocess.run(
        [str(BIN / "chatsys-deadletters"), str(process_ini), "list", "--consumer", "counters", "--queues-only"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert listing.count(" replays=1 ") == 20


def test_unroutable_events_stay_visible_then_park_then_replay(testapp, procs, engine, settings, broker, tmp_path):
    import subprocess

    from testkit.processes import BIN, write_ini
    from tests.conftest import process_overrides
    from tests.support.db import TESTING_INI

    ini = write_ini(
        tmp_path / "impatient.ini",
        TESTING_INI,
        process_overrides(
            settings,
            **{"relay.max_attempts": "3", "relay.backoff_base": "0.05", "relay.backoff_max": "0.2"},
        ),
    )
    relay = procs.relay(ini=ini)
    wait_for(lambda: "connected to the broker" in relay.output(), message="relay connected")
    token = create_application(testapp)["app_token"]
    wait_for(lambda: outbox_status(engine) == {"published": 1}, message="application.created published")
    with amqp_channel(settings) as channel:  # no queue takes chat.created any more
        channel.queue_unbind(broker.queue("counters"), broker.events_exchange, routing_key="chat.created")
        channel.queue_unbind(broker.stream, broker.events_exchange, routing_key="#")
    create_chat(testapp, token)
    wait_for(lambda: outbox_status(engine).get("parked") == 1, message="parked after 3 returns")
    with engine.connect() as conn:
        attempts, error = conn.execute(
            text("SELECT attempts, last_error FROM outbox_events WHERE status = 'parked'")
        ).one()
    assert attempts == 3 and "returned" in error and "NO_ROUTE" in error
    metrics = testapp.get("/metrics").text
    assert "chatsys_outbox_parked 1.0" in metrics

    with amqp_channel(settings) as channel:
        broker.declare(channel)  # the binding is back
    out = subprocess.run(
        [str(BIN / "chatsys-deadletters"), str(ini), "replay", "--outbox-only"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "made pending: 1" in out.stdout, out.stderr
    wait_for(lambda: outbox_status(engine) == {"published": 2}, message="published after replay")


def test_relay_purges_old_published_rows_and_expired_idempotency_keys(procs, engine, settings, tmp_path):
    from testkit.processes import write_ini
    from tests.conftest import process_overrides
    from tests.support.db import TESTING_INI

    with engine.begin() as conn:
        for i, age in enumerate((7200, 7200, 10)):  # seconds ago
            conn.execute(
                text(
                    "INSERT INTO outbox_events (event_id, type, aggregate_key, payload, status, attempts, "
                    "next_attempt_at, created_at, published_at) VALUES (:e, 'chat.created', 'k', '{}', "
                    "'published', 0, UTC_TIMESTAMP(6) - INTERVAL :age SECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                ),
                {"e": f"old-{i}", "age": age},
            )
        for key, age in (("stale", 100_000), ("fresh", 10)):
            conn.execute(
                text(
                    "INSERT INTO idempotency_keys "
                    "(scope, parent_id, idem_key, fingerprint, resource_number, created_at) "
                    "VALUES ('message', 1, :k, 'f', 1, UTC_TIMESTAMP(6) - INTERVAL :age SECOND)"
                ),
                {"k": key, "age": age},
            )
    ini = write_ini(tmp_path / "purge.ini", TESTING_INI, process_overrides(settings, **{"relay.purge_interval": "0.1"}))
    procs.relay(ini=ini)

    def purged() -> bool:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT event_id FROM outbox_events")).scalars().all()
            keys = conn.execute(text("SELECT idem_key FROM idempotency_keys")).scalars().all()
        return events == ["old-2"] and keys == ["fresh"]

    wait_for(purged, message="old rows purged, recent ones kept")


def test_a_backlog_goes_out_in_overlapping_batches_each_event_once(testapp, procs, engine, settings, broker, tmp_path):
    """Small batches, two in flight: the broker's multiple-acks then span batch boundaries, and a
    batch is claimed while the one before it awaits its confirms.  Every event reaches the
    exchange exactly once (no fault was injected) and every count is right."""
    from testkit.processes import write_ini
    from tests.conftest import process_overrides
    from tests.support.db import TESTING_INI

    token = create_application(testapp, "backlog")["app_token"]
    for _ in range(3):
        create_chat(testapp, token)
    for i in range(240):
        create_message(testapp, token, i % 3 + 1, f"backlog message {i}")
    with engine.connect() as conn:
        event_ids = sorted(conn.execute(text("SELECT event_id FROM outbox_events")).scalars())
    assert len(event_ids) == 1 + 3 + 240  # application.created, chat.created, message.created
    with amqp_channel(settings) as channel:
        tap = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(tap, broker.events_exchange, "#")
        overrides = process_overrides(settings, **{"relay.batch_size": "4", "relay.in_flight": "2"})
        procs.relay(ini=write_ini(tmp_path / "small-batches.ini", TESTING_INI, overrides))
        procs.worker("counters")
        wait_drained(engine)
        seen = []
        wait_for(
            lambda: seen.extend(iter(lambda: _tap_get(channel, tap), None)) or len(seen) >= len(event_ids),
            message="every event on the tap queue",
        )
    assert sorted(seen) == event_ids
    assert outbox_status(engine) == {"published": len(event_ids)}
    wait_for(lambda: counts(testapp, token) == (3, [80, 80, 80]), message="counted")
    assert count_drift(engine) == []


def _tap_get(channel, queue):
    method, properties, _ = channel.basic_get(queue, auto_ack=True)
    return properties.message_id if method else None


def test_a_batch_ack_never_covers_a_delivery_still_in_hand(settings, broker):
    """The worker's ack rule on a real channel: one ``multiple`` ack when the batch is every
    unsettled delivery up to its highest tag, one ack per delivery when an earlier one is still
    in hand (kept for a retry, or waiting in another consumer's buffer), which must stay unacked."""
    from chatsys.consumers.runner import Runner

    def delivered(connection, tags):
        connection.process_data_events(time_limit=0.1)
        return len(tags) == 8

    queue = f"{broker.namespace}.ack-rule"
    try:
        with amqp_channel(settings) as channel:
            channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
            channel.confirm_delivery()
            for i in range(8):
                channel.basic_publish("", queue, f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
            tags = []
            channel.basic_qos(prefetch_count=8)
            channel.basic_consume(queue, lambda ch, method, props, body: tags.append(method.delivery_tag))
            wait_for(lambda: delivered(channel.connection, tags), message="8 deliveries")
            runner = Runner(parameters=None, topology=broker, consumers=[], engine=None)
            runner._channel, runner._unsettled = channel, dict.fromkeys(tags)
            acks = []
            real_ack = channel.basic_ack  # a spy: every ack still goes to the broker
            channel.basic_ack = lambda tag, multiple=False: (acks.append((tag, multiple)), real_ack(tag, multiple))

            runner._ack(tags[:3])  # 1, 2, 3: everything up to 3
            runner._ack(tags[4:6])  # 5, 6 while 4 is still in hand
            runner._ack(tags[3:4] + tags[6:7])  # 4 and 7: now everything up to 7

            assert acks == [(tags[2], True), (tags[4], False), (tags[5], False), (tags[6], True)]
            assert list(runner._unsettled) == tags[7:]
        # The channel is closed: the one delivery never acked went back to the queue, alone.
        with amqp_channel(settings) as channel:
            wait_for(lambda: queue_depth(channel, queue) == 1, message="the unacked delivery requeued")
            assert channel.basic_get(queue, auto_ack=True)[2] == b"m7"
    finally:
        with amqp_channel(settings) as channel:
            channel.queue_delete(queue)


def test_listing_dead_letters_spends_none_of_their_deliveries(settings, broker, engine):
    """A quorum queue counts a delivery handed back as a delivery, and on RabbitMQ 4.x dead
    queues have a default delivery limit (20): a listing that reads and hands back would, after
    enough listings, have the broker drop every dead letter.  Listing twenty-five times must leave
    them all, in order, with no delivery counted."""
    from chatsys.broker import connection_parameters
    from chatsys.consumers.deadletters import DeadLetterQueues

    queue = broker.dead_queue("counters")
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for i in range(3):
            channel.basic_publish(
                "", queue, b"{}", pika.BasicProperties(message_id=f"dead-{i}", delivery_mode=2, headers={"k": i})
            )
    queues = DeadLetterQueues(connection_parameters(settings, "chatsys-tests"), broker, engine)
    for _ in range(25):
        assert [d.message_id for d in queues.peek("counters", limit=100)] == ["dead-0", "dead-1", "dead-2"]
    assert [d.message_id for d in queues.peek("counters", limit=2)] == ["dead-0", "dead-1"]
    with amqp_channel(settings) as channel:
        assert queue_depth(channel, queue) == 3
        got = [channel.basic_get(queue, auto_ack=True)[1] for _ in range(3)]
    assert [p.message_id for p in got] == ["dead-2", "dead-0", "dead-1"]
    assert [p.headers["k"] for p in got] == [2, 0, 1]
    assert [p.headers.get("x-delivery-count", 0) for p in got] == [0, 0, 0]


def test_a_failed_delivery_goes_back_as_a_reject_that_counts(settings, broker):
    """RabbitMQ 4.3 counts ``basic.reject(requeue=True)`` towards the delivery limit and no longer
    ``basic.nack(requeue=True)``: the worker's retry must reject, or a message that always fails
    is never dead-lettered and loops forever."""
    from chatsys.consumers.runner import Runner

    queue = broker.queue("counters")
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"{}", pika.BasicProperties(message_id="failing", delivery_mode=2))
        method, _, _ = channel.basic_get(queue)
        runner = Runner(parameters=None, topology=broker, consumers=[], engine=None)
        runner._channel, runner._unsettled = channel, {method.delivery_tag: None}
        settled = []
        real_reject = channel.basic_reject  # a spy: the reject still goes to the broker
        channel.basic_reject = lambda tag, requeue=True: (settled.append((tag, requeue)), real_reject(tag, requeue))
        runner._requeue(method.delivery_tag)
        assert settled == [(method.delivery_tag, True)] and runner._unsettled == {}
        method, properties, _ = channel.basic_get(queue, auto_ack=True)
    assert method.redelivered and properties.headers["x-delivery-count"] == 1


def test_a_clean_stop_hands_back_what_is_in_hand_as_not_processed(settings, broker):
    """On a clean stop the worker cancels its consumers and nack-requeues every delivery still in
    hand before closing: from RabbitMQ 4.3 a return by closing the channel counts as a failed
    delivery, and restarts would spend the delivery limit on events that never failed."""
    from chatsys.consumers.runner import Runner

    queue = broker.queue("counters")
    with amqp_channel(settings) as channel:
        channel.confirm_delivery()
        for i in range(3):
            channel.basic_publish("", queue, b"{}", pika.BasicProperties(message_id=f"in-hand-{i}", delivery_mode=2))
    runner = Runner(parameters=None, topology=broker, consumers=[], engine=None)
    connection = pika.BlockingConnection(connection_parameters(settings, "chatsys-tests"))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=10)
    channel.basic_consume(queue, lambda ch, method, props, body: runner._unsettled.update({method.delivery_tag: None}))
    # The broker has sent all three, but pika has not handed them to the callback yet: a stop
    # must take them in, or cancelling the consumer would make pika reject them (which counts).
    with amqp_channel(settings) as check:
        wait_for(lambda: queue_depth(check, queue) == 0, message="3 sent to the consumer")
    assert runner._unsettled == {}
    runner._connection, runner._channel = connection, channel
    nacks = []
    real_nack = channel.basic_nack  # a spy: the nack still goes to the broker
    channel.basic_nack = lambda tag=0, multiple=False, requeue=True: (
        nacks.append((tag, multiple, requeue, len(runner._unsettled))),
        real_nack(tag, multiple, requeue),
    )
    runner.stop()
    runner._disconnect()
    assert nacks == [(0, True, True, 3)] and not channel.consumer_tags
    assert not connection.is_open
    with amqp_channel(settings) as check:
        wait_for(lambda: queue_depth(check, queue) == 3, message="all three back in the queue")
        check.queue_purge(queue)
