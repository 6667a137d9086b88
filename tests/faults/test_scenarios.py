"""Fault-injection scenarios (issue 6): the real web, relay and workers on the real MariaDB,
Redis and RabbitMQ, with the Elasticsearch test double as the search backend.  Each scenario
injects its fault under load, lets the system settle and checks every invariant.

Run one on its own:  make test PYTEST_ARGS="tests/faults -k broker_stopped"
"""

from __future__ import annotations

import json
import time

import pytest
from redis import Redis
from sqlalchemy import text

from chatsys.broker.topology import CONSUMERS
from chatsys.runtime import faults
from testkit.processes import write_ini
from tests.faults.harness import (
    Load,
    check_invariants,
    memory_alarm,
    publish,
    queues_refusing_publishes,
    services,
)
from tests.support.pipeline import outbox_status, queue_depth
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults


def settle_and_check(s, load, **kwargs):
    report = check_invariants(s.report, s.engine, load, s.double, s.alias, s.tap, s.channel, s.topology, **kwargs)
    failed = [name for name, held in report.invariants.items() if not held]
    assert not failed, f"invariants broken: {failed}\n{report.line()}"
    return report


def hold(seconds: float) -> None:
    """Keep an injected fault in place for ``seconds`` — the fault's duration is the experiment,
    not a wait for an outcome (those poll with deadlines)."""
    time.sleep(seconds)


def test_relay_killed_after_confirm_before_commit(scenario):
    s = scenario
    s.system.start(relays=0)
    load = Load(s.system.base, s.system.seed()).start()
    load.wait_for_requests(150)
    doomed = s.procs.relay(env={"CHATSYS_FAULT": faults.RELAY_AFTER_CONFIRM})
    assert doomed.wait_exit(30) == -9
    s.report.fault("relay kill -9 after the broker confirmed its batch, before the commit")
    s.procs.relay()
    load.wait_for_requests(150)
    load.stop()
    report = settle_and_check(s, load)
    assert report.duplicates_on_wire > 0  # the confirmed batch went out twice, harmlessly


def test_relay_killed_after_claim_second_relay_takes_over(scenario):
    s = scenario
    s.system.start(relays=0)
    load = Load(s.system.base, s.system.seed()).start()
    load.wait_for_requests(150)
    survivor = s.procs.relay()
    doomed = s.procs.relay(env={"CHATSYS_FAULT": faults.RELAY_AFTER_CLAIM})
    assert doomed.wait_exit(30) == -9
    s.report.fault("relay kill -9 holding claimed rows, before publishing; a second relay running")
    load.wait_for_requests(150)
    load.stop()
    settle_and_check(s, load)
    assert survivor.alive


def test_three_relays_under_load(scenario):
    s = scenario
    s.system.start(relays=3)
    load = Load(s.system.base, s.system.seed(), threads=6).start()
    load.wait_for_requests(600, timeout=120)
    load.stop()
    s.report.fault("three relays claiming concurrently")
    report = settle_and_check(s, load)
    assert report.duplicates_on_wire == 0  # SKIP LOCKED: no row claimed twice


def test_worker_killed_after_commit_before_ack(scenario):
    s = scenario
    s.system.start(workers=("indexer",))
    load = Load(s.system.base, s.system.seed()).start()
    load.wait_for_requests(150)
    doomed = s.procs.worker("counters", env={"CHATSYS_FAULT": faults.WORKER_AFTER_COMMIT})
    assert doomed.wait_exit(30) == -9
    s.report.fault("counters worker kill -9 after committing a batch, before acking it")
    s.procs.worker("counters")
    load.wait_for_requests(150)
    load.stop()
    settle_and_check(s, load)


def test_worker_killed_with_a_full_prefetch_window(scenario):
    s = scenario
    s.system.start(workers=("counters",))
    load = Load(s.system.base, s.system.seed()).start()
    with s.channel() as channel:
        wait_for(lambda: queue_depth(channel, s.topology.queue("indexer")) > 250, 60, message="a backlog")
    # The index hangs on the worker's first bulk request: its whole window stays unacknowledged.
    s.double.inject_delay("PUT", rf"/{s.alias}/_bulk", 60)
    doomed = s.procs.worker("indexer", "--prefetch", "200")
    wait_for(lambda: s.double.requests_to("PUT", rf"/{s.alias}/_bulk"), 30, message="the bulk in flight")
    with s.channel() as channel:
        s.report.measured["ready_before_kill"] = queue_depth(channel, s.topology.queue("indexer"))
    doomed.kill()
    s.report.fault("indexer worker kill -9 with 200 deliveries unacknowledged (index stalled)")
    s.procs.worker("indexer")
    load.wait_for_requests(100)
    load.stop()
    settle_and_check(s, load)


@pytest.mark.services
def test_broker_stopped_for_twenty_seconds(scenario):
    s = scenario
    s.system.start()
    # Two threads: enough to show the web answering throughout, and a backlog the Elasticsearch
    # test double (pure Python, in the test process) indexes in well under the settle deadline.
    load = Load(s.system.base, s.system.seed(), threads=2).start()
    load.wait_for_requests(100)
    services("stop", "rabbitmq")
    mark = len(load.ops)
    try:
        hold(20)
        s.report.fault("rabbitmqctl stop_app for 20 s under load")
        acked_while_down = load.acknowledged_since(mark)
        s.report.measured["acknowledged_while_broker_down"] = acked_while_down
        s.report.measured["pending_while_broker_down"] = outbox_status(s.engine).get("pending", 0)
        assert acked_while_down > 0 and load.ops[-1].ok  # the web never needed it
    finally:
        services("start", "rabbitmq")
    load.wait_for_requests(100, timeout=120)
    load.stop()
    settle_and_check(s, load, settle_timeout=300)
    assert {op.status for op in load.ops} == {201, 200}  # no request failed at all


@pytest.mark.services
def test_broker_nacks_then_blocks_for_two_minutes(scenario):
    """Two minutes of a broker in trouble, then it recovers, and nobody runs anything.

    For 45 s the broker nacks every event: both consumer queues are at a length limit (a policy
    caps them at 0; the topology's overflow is ``reject-publish``) while their workers are down.
    The workers must be down: a quorum queue counts ready messages only, and with consumers
    attached nothing stays ready, so the limit is never reached.  Then, workers back, for 75 s a
    memory alarm blocks every publishing connection: confirms stop, and once blocked for 60 s
    pika drops the connection and the relay connects again, into the same alarm.  Throughout, no
    outbox row spends an attempt or is parked, with the production attempt budget; afterwards
    counts and the index converge."""
    s = scenario
    s.system.start(relays=0)
    relay = s.procs.relay(ini=write_ini(s.ini.with_name("relay.ini"), str(s.ini), {"relay.max_attempts": "10"}))
    wait_for(lambda: "connected to the broker" in relay.output(), 30, message="relay connected")
    # Two threads at a steady pace: a backlog of a few thousand events, which the Elasticsearch
    # test double (in this process) indexes well within the settle deadline.
    load = Load(s.system.base, s.system.seed(), threads=2, pause=0.05).start()
    load.wait_for_requests(100)
    seen = {"parked": 0, "attempts": 0, "pending": 0}

    def watch(until: float) -> None:
        """Hold the fault until ``until`` (its length is the experiment), sampling the outbox."""
        while time.monotonic() < until:
            with s.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT COALESCE(SUM(status = 'parked'), 0) AS parked, COALESCE(MAX(attempts), 0) AS attempts, "
                        "COALESCE(SUM(status = 'pending'), 0) AS pending FROM outbox_events"
                    )
                ).one()
            for key in seen:
                seen[key] = max(seen[key], int(getattr(row, key)))
            time.sleep(0.5)

    started = time.monotonic()
    workers = [proc for proc in s.procs.procs if proc.name.startswith("worker-")]
    with queues_refusing_publishes([s.topology.queue(c) for c in CONSUMERS]):
        for worker in workers:
            assert worker.stop() == 0
        wait_for(lambda: "nacked by the broker" in relay.output(), 30, message="the relay nacked")
        s.report.fault("workers down, both queues at a length limit (reject-publish): every event nacked for 45 s")
        watch(started + 45)
    assert seen["parked"] == 0 and seen["attempts"] == 0, f"after the nacks: {seen}"
    for consumer in CONSUMERS:
        worker = s.procs.worker(consumer)
        wait_for(lambda w=worker: "consuming" in w.output(), 30, message=f"{worker.name} started")
    alarm = time.monotonic()
    with memory_alarm():
        wait_for(lambda: "blocked the connection" in relay.output(), 30, message="the relay blocked")
        s.report.fault("memory alarm: publishing connections blocked for 75 s (pika drops them after 60 s)")
        watch(alarm + 75)
    s.report.measured["fault_seconds"] = round(time.monotonic() - started, 1)
    s.report.measured.update({f"max_{key}_during_fault": value for key, value in seen.items()})
    output = relay.output()
    s.report.measured["relay_blocked"] = output.count("blocked the connection")
    s.report.measured["relay_connections"] = output.count("connected to the broker")
    assert seen["parked"] == 0 and seen["attempts"] == 0, f"after the block: {seen}"  # nothing spent
    assert seen["pending"] > 0  # the fault held events back
    load.wait_for_requests(100, timeout=120)
    load.stop()
    settle_and_check(s, load, settle_timeout=180)
    assert all(op.ok for op in load.ops)  # the web never needed the broker


def test_missing_binding_returns_then_delivers(scenario):
    s = scenario
    s.system.start()
    chats = s.system.seed(apps=1, chats=1)
    wait_for(lambda: outbox_status(s.engine).get("pending", 0) == 0, message="seed published")
    with s.channel() as channel:  # chat.created now reaches no queue: the broker returns it
        channel.queue_unbind(s.topology.queue("counters"), s.topology.events_exchange, routing_key="chat.created")
        channel.queue_unbind(s.tap.name, s.topology.events_exchange, routing_key="#")
        channel.queue_unbind(s.topology.stream, s.topology.events_exchange, routing_key="#")
    s.report.fault("binding of chat.created removed: publishes returned (mandatory)")
    token = chats[0][0]
    import urllib3

    http = urllib3.PoolManager()
    for _ in range(5):
        assert http.request("POST", f"{s.system.base}/v1/applications/{token}/chats", json={}).status == 201

    def returned_and_waiting() -> bool:
        with s.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT attempts, last_error FROM outbox_events WHERE status = 'pending' AND type = 'chat.created'"
                )
            ).all()
        return len(rows) == 5 and all(r.attempts > 0 and "NO_ROUTE" in (r.last_error or "") for r in rows)

    wait_for(returned_and_waiting, 30, message="returned rows pending with their error")
    metrics = http.request("GET", f"{s.system.base}/metrics").data.decode()
    s.report.measured["pending_in_metrics"] = float(
        next(line.split()[1] for line in metrics.splitlines() if line.startswith("chatsys_outbox_pending "))
    )
    assert s.report.measured["pending_in_metrics"] >= 5
    with s.channel() as channel:
        s.topology.declare(channel)  # the binding is back
        channel.queue_bind(s.tap.name, s.topology.events_exchange, routing_key="#")
    settle_and_check(s, None)


def test_poison_is_dead_lettered_without_blocking(scenario):
    s = scenario
    s.system.start()
    chats = s.system.seed()
    token, chat = chats[-1]
    import urllib3

    # One message the index refuses every time (a document-level 500): dead-lettered by the
    # delivery limit.  One undecodable event: dead-lettered at once by both consumers.
    doomed_doc = f"{token}:{chat}:1"
    s.double.fail_bulk_item(doomed_doc, status=500, error_type="internal", times=100_000)
    urllib3.PoolManager().request(
        "POST", f"{s.system.base}/v1/applications/{token}/chats/{chat}/messages", json={"body": "doomed"}
    )
    publish(s.channel, s.topology.events_exchange, "message.created", b"\x00garbage", "poison-garbage")
    s.report.fault("an undecodable event; a document the index rejects with 500 forever")
    load = Load(s.system.base, chats[:-1]).start()
    load.wait_for_requests(200)
    load.stop()
    with s.engine.connect() as conn:
        doomed_event = conn.execute(
            text(
                "SELECT event_id FROM outbox_events "
                "WHERE type = 'message.created' AND JSON_VALUE(payload, '$.data.body') = 'doomed'"
            )
        ).scalar_one()

    settle_and_check(
        s,
        load,
        expect_dead={"counters": {"poison-garbage"}, "indexer": {"poison-garbage", doomed_event}},
        unindexable={doomed_doc},
    )


def test_out_of_order_edits_leave_the_newest_version(scenario):
    s = scenario
    s.system.start(relays=0, workers=("counters",))
    load = Load(s.system.base, s.system.seed(), edit_share=0.5).start()
    load.wait_for_requests(200)
    load.stop()
    with s.engine.connect() as conn:
        events = [
            json.loads(p)
            for (p,) in conn.execute(
                text("SELECT payload FROM outbox_events WHERE type LIKE 'message.%' ORDER BY id DESC")
            )
        ]
    for event in events:  # every message event, newest first, before the relay sends them in order
        publish(s.channel, s.topology.events_exchange, event["type"], json.dumps(event).encode(), event["event_id"])
    s.report.fault(f"{len(events)} message events delivered newest first, then again in order")
    s.procs.relay()
    s.procs.worker("indexer")
    settle_and_check(s, load)


@pytest.mark.services
def test_redis_flushall_and_restart_during_creates(scenario):
    s = scenario
    s.system.start()
    load = Load(s.system.base, s.system.seed(), threads=6, edit_share=0).start()
    load.wait_for_requests(200)
    Redis.from_url(s.settings["redis.url"]).flushall()
    s.report.fault("FLUSHALL")
    load.wait_for_requests(200)
    services("restart", "redis")
    s.report.fault("Redis restart (no persistence: every counter lost)")
    load.wait_for_requests(200)
    load.stop()
    settle_and_check(s, load)


def test_redis_counter_below_the_database_maximum(scenario):
    s = scenario
    s.system.start()
    load = Load(s.system.base, s.system.seed(), threads=6, edit_share=0).start()
    load.wait_for_requests(200)
    redis = Redis.from_url(s.settings["redis.url"])
    lowered = 0
    for key in redis.scan_iter(f"{s.settings['redis.key_prefix']}:seq:*"):
        redis.set(key, 1)
        lowered += 1
    s.report.fault(f"{lowered} Redis counters set to 1, below the database maximum (a lagging failover)")
    load.wait_for_requests(200)
    load.stop()
    settle_and_check(s, load)
    assert all(op.ok for op in load.ops)  # conflicts were retried inside the requests


def test_redis_restored_from_a_snapshot_taken_before_the_last_100_creates(scenario):
    """Redis comes back behind MySQL, as after a restore from an older snapshot (or an AOF
    ``everysec`` loss, a failover to a lagging replica): this run's keys are dumped, 100 more
    messages are created, and the dump is restored over them (keys made since are dropped).  No
    number may go backwards: every message created after the restore is numbered above every
    message of its chat created before it, and no number is taken twice.  Gaps make the
    difference: just after the snapshot, three requests per chat take a number and fail; after the
    restore, those numbers are next, below numbers that exist, and must not be handed out (a
    counter restored onto an existing number would only meet the UNIQUE key)."""
    s = scenario
    s.system.start()
    load = Load(s.system.base, s.system.seed(), threads=6, edit_share=0).start()
    load.wait_for_requests(150)
    redis = Redis.from_url(s.settings["redis.url"])
    pattern = f"{s.settings['redis.key_prefix']}:seq:*"
    snapshot = {key: redis.dump(key) for key in redis.scan_iter(pattern)}
    for key in snapshot:
        redis.incrby(key, 3)  # then three requests per chat took a number and failed: gaps
    at_snapshot = len(load.ops)
    wait_for(lambda: load.acknowledged_since(at_snapshot) >= 100, 60, message="100 creates after the snapshot")
    for key in redis.scan_iter(pattern):
        if key not in snapshot:
            redis.delete(key)
    for key, value in snapshot.items():
        redis.restore(key, 0, value, replace=True)
    restored = len(load.ops)
    s.report.fault(f"Redis restored from a snapshot of {len(snapshot)} counters taken 100+ creates earlier")
    load.wait_for_requests(200)
    load.stop()
    settle_and_check(s, load, failed_allocations={chat: 3 for chat in {(op.token, op.chat) for op in load.ops}})

    before, after = load.ops[:restored], load.ops[restored:]
    newest: dict[tuple[str, int], int] = {}
    for op in before:
        if op.ok:
            newest[(op.token, op.chat)] = max(newest.get((op.token, op.chat), 0), op.number)
    later = [op for op in after if op.ok]
    assert later and all(op.number > newest.get((op.token, op.chat), 0) for op in later)
    numbers = [(op.token, op.chat, op.number) for op in load.ops if op.ok]
    assert len(numbers) == len(set(numbers))
    s.report.measured["creates_after_the_restore"] = len(later)


@pytest.mark.services
def test_mariadb_restarted_during_load(scenario):
    s = scenario
    s.system.start()
    load = Load(s.system.base, s.system.seed()).start()
    load.wait_for_requests(150)
    mark = len(load.ops)
    services("stop", "mariadb")
    try:
        wait_for(lambda: any(op.status == 503 for op in load.ops[mark:]), 30, message="503 while MySQL is down")
        s.report.fault("MariaDB shut down under load, then started again")
    finally:
        services("start", "mariadb")
    down = [op for op in load.ops[mark:] if not op.ok]
    s.report.measured["answers_while_down"] = dict(sorted({str(op.status): 0 for op in down}.items()))
    for op in down:
        s.report.measured["answers_while_down"][str(op.status)] += 1
    recovered = len(load.ops)
    wait_for(lambda: load.acknowledged_since(recovered) >= 50, 60, message="the web recovers by itself")
    load.stop()
    settle_and_check(s, load, settle_timeout=120)
    assert {op.status for op in down} <= {503, None}
