"""Numbering under concurrency, across independent app instances, and after Redis loses data (I3)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from chatsys.domain import chats
from chatsys.numbering import chat_sequence, message_sequence
from tests.conftest import make_app
from tests.support.api import create_application, create_chat
from tests.support.http import Client, serve

THREADS = 16
CREATES = 500


@pytest.fixture
def two_servers(settings, clean):
    """Two web instances with their own engines, Redis pools and caches, like two processes."""
    with serve(make_app(settings)) as a, serve(make_app(settings)) as b:
        yield a, b


def numbers(engine, sql: str, **params) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(text(sql), params).scalars().all())


def message_key(engine, settings) -> str:
    """The allocator's Redis key for the only chat of the test."""
    with engine.connect() as conn:
        chat_id = conn.execute(text("SELECT id FROM chats")).scalar_one()
    return message_sequence(chat_id).key(settings["redis.key_prefix"])


def fire(urls: list[str], payload: dict, count: int, during=None) -> list:
    """POST ``count`` times from THREADS threads, alternating between ``urls``."""
    client = Client(maxsize=THREADS)
    halfway = threading.Event()

    def one(i: int):
        if i == count // 2:
            halfway.set()
        return client.post(urls[i % len(urls)], payload)

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        if during is not None:
            halfway.wait(30)
            during()
        return [f.result() for f in futures]


def test_concurrent_message_creates_through_two_instances(testapp, two_servers, engine):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    urls = [f"{base}/v1/applications/{token}/chats/1/messages" for base in two_servers]

    replies = fire(urls, {"body": "hi"}, CREATES)

    assert [r.status for r in replies] == [201] * CREATES
    returned = sorted(r.json["message_number"] for r in replies)
    assert returned == list(range(1, CREATES + 1))
    assert numbers(engine, "SELECT number FROM messages") == returned


def test_concurrent_chat_creates_through_two_instances(testapp, two_servers, engine):
    token = create_application(testapp)["app_token"]
    urls = [f"{base}/v1/applications/{token}/chats" for base in two_servers]

    replies = fire(urls, {"name": "c"}, CREATES)

    assert [r.status for r in replies] == [201] * CREATES
    returned = sorted(r.json["chat_number"] for r in replies)
    assert returned == list(range(1, CREATES + 1))
    assert numbers(engine, "SELECT number FROM chats") == returned


def test_flushall_mid_stream_loses_nothing_and_repeats_nothing(testapp, two_servers, engine, redis_client):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    urls = [f"{base}/v1/applications/{token}/chats/1/messages" for base in two_servers]

    replies = fire(urls, {"body": "hi"}, CREATES, during=redis_client.flushdb)  # this run's database

    assert [r.status for r in replies] == [201] * CREATES, {r.status for r in replies}
    returned = [r.json["message_number"] for r in replies]
    assert len(set(returned)) == CREATES  # no duplicate handed out
    stored = numbers(engine, "SELECT number FROM messages")
    assert stored == sorted(returned)  # every 201 is stored, nothing else is
    # Numbering continues above the existing maximum.
    after = Client().post(urls[0], {"body": "after"}).json["message_number"]
    assert after > max(stored)


def lagging_counter(testapp, engine, redis_client, settings) -> str:
    """A chat with messages 1…10 whose Redis counter says 2; returns its messages URL."""
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    url = f"/v1/applications/{token}/chats/1/messages"
    for _ in range(10):
        testapp.post_json(url, {"body": "x"}, status=201)
    redis_client.set(message_key(engine, settings), 2)
    return url


def test_counter_below_database_maximum_is_repaired(testapp, engine, redis_client, settings):
    """As after a failover to a lagging replica: Redis says 2 while MySQL has 10."""
    url = lagging_counter(testapp, engine, redis_client, settings)

    assert testapp.post_json(url, {"body": "y"}, status=201).json["message_number"] == 11
    assert numbers(engine, "SELECT number FROM messages") == list(range(1, 12))


def test_a_taken_number_is_repaired_for_a_create_with_an_idempotency_key(testapp, engine, redis_client, settings):
    """The number's duplicate is told from a concurrent Idempotency-Key's (both are a duplicate
    primary key to MySQL since messages are keyed by (chat_id, number)): reseed, not replay."""
    url = lagging_counter(testapp, engine, redis_client, settings)

    reply = testapp.post_json(url, {"body": "y"}, headers={"Idempotency-Key": "k-1"}, status=201)
    assert reply.json["message_number"] == 11
    again = testapp.post_json(url, {"body": "y"}, headers={"Idempotency-Key": "k-1"}, status=201)
    assert (again.json["message_number"], again.headers["Idempotent-Replayed"]) == (11, "true")
    assert numbers(engine, "SELECT number FROM messages") == list(range(1, 12))


def test_chat_counter_below_database_maximum_is_repaired(testapp, engine, redis_client, settings):
    """The same for chats, whose (application_id, number) is a UNIQUE key, not the primary key."""
    token = create_application(testapp)["app_token"]
    for _ in range(5):
        create_chat(testapp, token)
    with engine.connect() as conn:
        app_id = conn.execute(text("SELECT id FROM applications")).scalar_one()
    redis_client.set(chat_sequence(app_id).key(settings["redis.key_prefix"]), 1)

    assert create_chat(testapp, token)["chat_number"] == 6
    assert numbers(engine, "SELECT number FROM chats") == list(range(1, 7))


def test_counter_is_never_lowered_by_a_seed(testapp, engine, redis_client, settings):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    url = f"/v1/applications/{token}/chats/1/messages"
    testapp.post_json(url, {"body": "x"}, status=201)
    redis_client.set(message_key(engine, settings), 40)  # ahead of MySQL, e.g. numbers taken by failed requests
    assert testapp.post_json(url, {"body": "y"}, status=201).json["message_number"] == 41


def test_a_redis_behind_mysql_never_hands_out_a_gap_below_the_newest_number(testapp, engine, redis_client, settings):
    """Numbers 41 and 42 were taken by requests that failed (gaps), 43 was committed; then Redis
    comes back from an older snapshot, at 40.  The next message must be 44: 41 or 42 now would be
    a message numbered below one that exists, which a reader paging with after=43 never sees."""
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    url = f"/v1/applications/{token}/chats/1/messages"
    key = message_key(engine, settings)
    testapp.post_json(url, {"body": "first"}, status=201)
    redis_client.set(key, 42)  # 2…42 handed out to requests that then failed
    assert testapp.post_json(url, {"body": "newest"}, status=201).json["message_number"] == 43
    redis_client.set(key, 40)  # the snapshot

    assert testapp.post_json(url, {"body": "next"}, status=201).json["message_number"] == 44
    assert numbers(engine, "SELECT number FROM messages") == [1, 43, 44]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT last_message_number FROM chats")).scalar_one() == 44


def test_the_high_water_mark_is_raised_with_every_create(testapp, engine):
    token = create_application(testapp)["app_token"]
    for _ in range(3):
        create_chat(testapp, token)
    for _ in range(5):
        testapp.post_json(f"/v1/applications/{token}/chats/2/messages", {"body": "x"}, status=201)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT last_chat_number FROM applications")).scalar_one() == 3
        marks = conn.execute(text("SELECT number, last_message_number FROM chats ORDER BY number")).all()
    assert [tuple(m) for m in marks] == [(1, 0), (2, 5), (3, 0)]


def test_a_message_create_locks_its_chat_and_nothing_else(testapp, engine):
    """A create finds its chat and locks the chat's row in one statement (the fence above); its
    application is read in a subquery and stays unlocked, so creates in the application's other
    chats, and a create of a chat, do not wait for it."""
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_chat(testapp, token)
    with engine.connect() as holder, engine.connect() as other:
        holder.execution_options(isolation_level="READ COMMITTED")  # the web's
        holder_id = holder.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        locked = holder.execute(chats.LOCK_BY_KEYS, chats.ChatKeys(token, 1).params).one()
        assert locked.last_message_number == 0

        def lock_nowait(table: str, where: str, **params):
            return other.execute(text(f"SELECT id FROM {table} WHERE {where} FOR UPDATE NOWAIT"), params).one()

        lock_nowait("applications", "id = :id", id=locked.application_id)
        lock_nowait("chats", "application_id = :app AND number = 2", app=locked.application_id)
        with pytest.raises(OperationalError):  # ER_LOCK_WAIT_TIMEOUT at once: chat 1 is held
            lock_nowait("chats", "id = :id", id=locked.id)
        other.rollback()
        # Through the API, while chat 1 stays locked: a message in chat 2 and a new chat.
        testapp.post_json(f"/v1/applications/{token}/chats/2/messages", {"body": "x"}, status=201)
        assert create_chat(testapp, token)["chat_number"] == 3
        # A message in chat 1 waits for the lock (well within db.lock_wait_timeout), then goes in.
        with ThreadPoolExecutor(1) as pool:
            posted = pool.submit(testapp.post_json, f"/v1/applications/{token}/chats/1/messages", {"body": "y"})
            assert wait_for_a_lock_wait(other, holder_id), "the create did not wait for its chat's lock"
            assert not posted.done()
            holder.rollback()
            assert posted.result(timeout=30).json["message_number"] == 1


def wait_for_a_lock_wait(conn, holder_id: int, deadline: float = 3.0) -> bool:
    """Whether some transaction comes to wait for a row lock that connection ``holder_id`` holds.

    InnoDB refreshes these tables from a cache only once it has gone 0.1 s unread, so the polls
    are further apart than that: polled faster, the first answer would be the only one."""
    waiting = text(
        "SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_TRX t"
        " ON t.trx_id = w.blocking_trx_id WHERE t.trx_mysql_thread_id = :holder"
    )
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if conn.execute(waiting, {"holder": holder_id}).scalar_one():
            return True
        time.sleep(0.15)
    return False
