"""Every setting of every process is parsed in one place, and a wrong one is refused by name."""

import pytest

from chatsys.runtime.services import connect_args
from chatsys.runtime.settings import SETTINGS, SettingsError, resolve_settings


def test_defaults_match_the_local_machine():
    s = resolve_settings({}, environ={})
    assert s["sqlalchemy.url"].startswith("mysql+pymysql://root@127.0.0.1:3306/")
    assert s["redis.url"] == "redis://127.0.0.1:6379/0"
    assert s["amqp.url"].startswith("amqp://guest:guest@127.0.0.1:5672/")
    assert s["search.backend"] == "database"


def test_values_are_parsed_into_their_types():
    s = resolve_settings({"relay.batch_size": " 250 ", "relay.linger": "0", "worker.prefetch": "50"}, environ={})
    assert s["relay.batch_size"] == 250
    assert s["relay.linger"] == 0.0
    assert s["worker.prefetch"] == 50
    assert resolve_settings(s, environ={}) == s  # parsed settings handed back stay the same


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
        ("sqlalchemy.pool_size", "0"),
        ("redis.url", "http://x"),
        ("redis.socket_timeout", "soon"),
        ("chatsys.max_body_bytes", "lots"),
        ("amqp.namespace", "has space"),
        ("amqp.stream_max_age", "24 hours"),
        ("elasticsearch.index", "Upper"),
        ("elasticsearch.timeout", "0"),
        ("relay.batch_size", "0"),
        ("relay.confirm_timeout", "nan"),
        ("relay.linger", "-1"),
        ("worker.prefetch", "many"),
        ("worker.max_rounds", "1.5"),
        ("db.tls", "maybe"),
        ("retry.attempts", "0"),
    ],
)
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        resolve_settings({key: value}, environ={})


@pytest.mark.parametrize("key", ["relay.batchsize", "worker.prefech", "chatsys.lookup_cache_size", "db.timeout"])
def test_an_unknown_key_under_a_chatsys_prefix_is_refused(key):
    with pytest.raises(SettingsError, match=f"unknown setting '{key}'"):
        resolve_settings({key: "1"}, environ={})


def test_other_keys_pass_through():
    s = resolve_settings({"pyramid.reload_templates": "false", "tm.attempts": "1"}, environ={})
    assert s["pyramid.reload_templates"] == "false"


@pytest.mark.parametrize(
    "env_name,key,value",
    [
        ("CHATSYS_DATABASE_URL", "sqlalchemy.url", "postgresql://x"),
        ("CHATSYS_SEARCH_BACKEND", "search.backend", "solr"),
        ("CHATSYS_AMQP_URL", "amqp.url", "http://broker"),
    ],
)
def test_a_bad_value_from_the_environment_names_the_key_and_the_variable(env_name, key, value):
    with pytest.raises(SettingsError, match=rf"{key.replace('.', '[.]')}' \(from {env_name}\)"):
        resolve_settings({}, environ={env_name: value})


def test_every_setting_has_a_default_that_parses():
    for key, setting in SETTINGS.items():
        setting.parse(setting.default), key


def test_database_connections_skip_tls_unless_the_url_or_db_tls_asks_for_it():
    plain = resolve_settings({}, environ={})
    assert connect_args(plain)["ssl_disabled"] is True
    # TLS named in the URL (verified, required by PyMySQL) is never switched off.
    with_ca = resolve_settings({"sqlalchemy.url": "mysql+pymysql://u@db/x?charset=utf8mb4&ssl_ca=/ca.pem"}, environ={})
    assert "ssl_disabled" not in connect_args(with_ca)
    preferred = resolve_settings({"db.tls": "preferred"}, environ={})
    assert "ssl_disabled" not in connect_args(preferred)


@pytest.mark.parametrize(
    "raw,parsed",
    [
        ("", ""),
        ("  ", ""),
        ("/", "/"),
        ("/stream/", "/stream"),
        ("http://127.0.0.1:6545", "http://127.0.0.1:6545"),
        ("https://chat.example/stream/", "https://chat.example/stream"),
    ],
)
def test_the_demo_pages_stream_url_is_empty_a_path_or_an_http_origin(raw, parsed):
    s = resolve_settings({"chatsys.demo_events_url": raw}, environ={})
    assert s["chatsys.demo_events_url"] == parsed
    assert resolve_settings(s, environ={}) == s


@pytest.mark.parametrize(
    "raw",
    ["stream", "//host:1", "ws://host:1", "http://", "http://user:pw@host", "http://h/?a=1", "/events#x"],
)
def test_a_demo_stream_url_the_page_could_not_use_is_refused(raw):
    with pytest.raises(SettingsError, match=r"chatsys\.demo_events_url"):
        resolve_settings({"chatsys.demo_events_url": raw}, environ={})


def test_stream_allow_origins_keeps_origins_and_refuses_anything_else():
    settings = resolve_settings({"stream.allow_origins": " http://127.0.0.1:6543  https://chat.example "}, environ={})
    assert settings["stream.allow_origins"] == "http://127.0.0.1:6543 https://chat.example"
    for wrong in ("127.0.0.1:6543", "http://host/path", "http://host/", "ftp://host", "http://u:p@host"):
        with pytest.raises(SettingsError, match="stream.allow_origins"):
            resolve_settings({"stream.allow_origins": wrong}, environ={})
