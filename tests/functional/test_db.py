"""The service's database connections, as PyMySQL makes them."""

from sqlalchemy import text

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
    pool = wsgi_app.registry["db_read_engine"].pool
    for url, status in [
        (messages_url(token, 1), 200),
        (messages_url(token, 1) + "/1", 200),
        (messages_url(token, 1) + "/9", 404),
        (messages_url(token, 1) + "/search?q=hello", 200),
        (f"/applications/{token}/chats", 200),
    ]:
        res = testapp.get(url, status=status)
        assert "error" in res.json if status == 404 else res.json
        assert pool.checkedout() == 0, url

    request = wsgi_app.request_factory.blank("/")
    request.registry = wsgi_app.registry
    reader = request.dbsession
    assert isinstance(reader, Reader)
    assert reader.execute(text("SELECT 1")).scalar() == 1
    assert reader.connection() is reader.connection()
    assert pool.checkedout() == 1
    reader.close()
    assert pool.checkedout() == 0
