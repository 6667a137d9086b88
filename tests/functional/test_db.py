"""The service's database connections, as PyMySQL makes them."""

from sqlalchemy import event, text

from chatsys.runtime.services import make_engine
from tests.support.api import create_application, create_chat, create_message, messages_url


def test_connections_are_plain_and_work_without_tls_settings(settings):
    engine = make_engine(settings)
    try:
        raw = engine.raw_connection()
        try:
            # No SSL context is built for the connection (the costly part) and it works.
            assert raw.dbapi_connection.ssl is False
        finally:
            raw.close()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_reads_borrow_one_connection_and_give_it_back(wsgi_app, testapp):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_message(testapp, token, 1, "hello there")
    engine = wsgi_app.registry["services"].read_engine
    seen = []
    listen = [(engine.pool, name, lambda *args, name=name: seen.append(name)) for name in ("checkout", "checkin")]
    for target, name, fn in listen:
        event.listen(target, name, fn)
    try:
        for method, url, status in [
            ("GET", messages_url(token, 1), 200),
            ("GET", messages_url(token, 1) + "/1", 200),
            ("HEAD", messages_url(token, 1) + "/1", 200),
            ("GET", messages_url(token, 1) + "/9", 404),
            ("GET", messages_url(token, 1) + "/search?q=hello", 200),
            ("GET", f"/messages/{token}/1/1", 200),  # the original API's routes
            ("GET", f"/chats/{token}/1/messages", 200),
            ("GET", f"/chats/{token}/1/search/hello", 200),
            ("GET", f"/v1/applications/{token}/chats", 200),
        ]:
            seen.clear()
            testapp.request(url, method=method, status=status)
            # Exactly one connection, from the read engine's pool, and back in it at the end.
            assert seen == ["checkout", "checkin"], (method, url)
            assert engine.pool.checkedout() == 0, (method, url)
    finally:
        for target, name, fn in listen:
            event.remove(target, name, fn)


def test_lock_waits_end_before_a_client_gives_up(settings):
    """A statement blocked on a row lock fails after db.lock_wait_timeout seconds, with MySQL's
    own error, well inside PyMySQL's read timeout: the request answers 503 instead of hanging."""
    import pytest
    import sqlalchemy.exc

    engine = make_engine({**settings, "db.lock_wait_timeout": 1})
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT @@SESSION.innodb_lock_wait_timeout")).scalar() == 1
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO consumer_failures VALUES ('lock', 'x', 'held', NOW())"))
        holder = engine.connect()
        try:
            holder.begin()
            holder.execute(text("SELECT * FROM consumer_failures WHERE consumer = 'lock' FOR UPDATE"))
            with engine.connect() as waiter, pytest.raises(sqlalchemy.exc.OperationalError, match="1205"):
                waiter.execute(text("UPDATE consumer_failures SET error = 'waited' WHERE consumer = 'lock'"))
        finally:
            holder.rollback()
            holder.close()
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM consumer_failures WHERE consumer = 'lock'"))
    finally:
        engine.dispose()


def test_a_request_sends_no_rollback_it_does_not_need(testapp, monkeypatch):
    """A read (autocommit) needs no ROLLBACK at all, and a create's COMMIT leaves nothing to roll
    back when its connection goes back to the pool: a ROLLBACK there is a round trip per request."""
    import pymysql.connections

    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    rollbacks = []
    original = pymysql.connections.Connection.rollback
    monkeypatch.setattr(pymysql.connections.Connection, "rollback", lambda conn: rollbacks.append(1) or original(conn))
    create_message(testapp, token, 1, "hello")
    testapp.get(messages_url(token, 1))
    testapp.get(messages_url(token, 1) + "/1")
    assert rollbacks == []
    # A write that fails after its transaction began still rolls it back.
    testapp.post_json(messages_url(token, 99), {"body": "x"}, status=404)
    assert rollbacks
