"""The service's database connections, as PyMySQL makes them."""

from sqlalchemy import text

from chatsys.db import get_engine


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
