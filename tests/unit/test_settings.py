import pytest

from chatsys.settings import SettingsError, resolve_settings


def test_defaults_match_the_local_machine():
    s = resolve_settings({}, environ={})
    assert s["sqlalchemy.url"].startswith("mysql+pymysql://root@127.0.0.1:3306/")
    assert s["redis.url"] == "redis://127.0.0.1:6379/0"
    assert s["amqp.url"].startswith("amqp://guest:guest@127.0.0.1:5672/")
    assert s["search.backend"] == "database"


def test_environment_overrides_urls():
    env = {
        "CHATSYS_DATABASE_URL": "mysql+pymysql://u@db/x",
        "CHATSYS_REDIS_URL": "redis://r:6379/1",
        "CHATSYS_AMQP_URL": "amqp://q",
        "CHATSYS_ELASTICSEARCH_URL": "http://es:9200",
        "CHATSYS_SEARCH_BACKEND": "elasticsearch",
    }
    s = resolve_settings({"redis.url": "redis://ini:6379/0"}, environ=env)
    assert s["sqlalchemy.url"] == "mysql+pymysql://u@db/x"
    assert s["redis.url"] == "redis://r:6379/1"
    assert s["elasticsearch.url"] == "http://es:9200"
    assert s["search.backend"] == "elasticsearch"


@pytest.mark.parametrize(
    "key,value",
    [
        ("search.backend", "solr"),
        ("sqlalchemy.url", "postgresql://x"),
        ("redis.url", "http://x"),
        ("chatsys.max_body_bytes", "lots"),
        ("chatsys.access_log_interval", "0"),
        ("chatsys.access_log_interval", "soon"),
        ("amqp.namespace", "has space"),
    ],
)
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        resolve_settings({key: value}, environ={})


def test_database_connections_skip_tls_unless_the_url_or_db_tls_asks_for_it():
    from chatsys.db import connect_args

    plain = resolve_settings({}, environ={})
    assert connect_args(plain, plain["sqlalchemy.url"])["ssl_disabled"] is True
    # TLS named in the URL (verified, required by PyMySQL) is never switched off.
    with_ca = "mysql+pymysql://u@db/x?charset=utf8mb4&ssl_ca=/etc/ssl/ca.pem"
    assert "ssl_disabled" not in connect_args(plain, with_ca)
    preferred = resolve_settings({"db.tls": "preferred"}, environ={})
    assert "ssl_disabled" not in connect_args(preferred, preferred["sqlalchemy.url"])
    with pytest.raises(SettingsError, match=r"db\.tls"):
        resolve_settings({"db.tls": "maybe"}, environ={})
