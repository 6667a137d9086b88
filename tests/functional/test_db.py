"""The service's database connections, as PyMySQL makes them."""

from sqlalchemy import event, text

from chatsys.db import Reader, get_engine
from tests.support.api import create_application, create_chat, create_message, messages_url


def test_connections_are_plain_and_work_without_tls_settings(settings):
    engine = get_engine(settings)
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
    engine = wsgi_app.registry["db_read_engine"]
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
            ("GET", f"/messages/{token}/1/1", 200),  # the older API's route
            ("GET", f"/applications/{token}/chats", 200),
        ]:
            seen.clear()
            testapp.request(url, method=method, status=status)
            # Exactly one connection, from the read engine's pool, and back in it at the end.
            assert seen == ["checkout", "checkin"], (method, url)
            assert engine.pool.checkedout() == 0, (method, url)
    finally:
        for target, name, fn in listen:
            event.remove(target, name, fn)

    request = wsgi_app.request_factory.blank("/")
    request.registry = wsgi_app.registry
    reader = request.dbsession
    assert isinstance(reader, Reader)
    try:
        assert reader.execute(text("SELECT 1")).scalar() == 1
        assert reader.connection() is reader.connection()
        assert engine.pool.checkedout() == 1
    finally:
        reader.close()
    assert engine.pool.checkedout() == 0
