"""production.ini: the settings every process of the docker-compose stack reads.

The stack cannot be started on these machines, so what would fail at its start is checked here:
waitress accepts every server setting, the app settings validate, logging says one line per
request, and Alembic finds its scripts.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import plaster
import pytest
from waitress.adjustments import Adjustments

from chatsys.runtime.settings import resolve_settings
from chatsys.scripts.web import NOT_ADJUSTMENTS

ROOT = Path(__file__).resolve().parents[3]
INI = str(ROOT / "production.ini")


@pytest.fixture(scope="module")
def server() -> Adjustments:
    """The waitress adjustments chatsys-web builds from [server:main]; a typo raises here."""
    settings = plaster.get_settings(INI, "server:main")
    return Adjustments(**{k: v for k, v in settings.items() if k not in NOT_ADJUSTMENTS})


@pytest.fixture(scope="module")
def ini() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(INI)
    return config


def test_waitress_trusts_exactly_one_proxy_hop_and_shows_no_tracebacks(server):
    assert server.trusted_proxy == "*"
    assert server.trusted_proxy_count == 1
    assert server.trusted_proxy_headers == {"x-forwarded-for", "x-forwarded-proto"}
    assert server.clear_untrusted_proxy_headers is True
    assert server.expose_tracebacks is False


def test_waitress_is_tuned_for_the_container(server, ini):
    assert ini["server:main"]["listen"] == "0.0.0.0:6543"  # the proxy reaches it over the network
    assert server.threads == 8
    assert server.connection_limit == 200
    assert server.channel_timeout == 60
    assert server.max_request_body_size == 1024 * 1024


def test_the_app_defaults_to_the_compose_services_and_elasticsearch():
    settings = resolve_settings(plaster.get_settings(INI, "app:main"), environ={})
    assert settings["sqlalchemy.url"] == "mysql+pymysql://chatsys@mysql:3306/chatsys?charset=utf8mb4"
    assert settings["redis.url"] == "redis://redis:6379/0"
    assert settings["amqp.url"] == "amqp://chatsys@rabbitmq:5672/%2F"
    assert settings["elasticsearch.url"] == "http://elasticsearch:9200"
    assert settings["search.backend"] == "elasticsearch"


def test_the_environment_still_overrides_the_ini():
    url = "mysql+pymysql://chatsys:pw@db:3306/chatsys?charset=utf8mb4"
    settings = resolve_settings(
        plaster.get_settings(INI, "app:main"),
        environ={"CHATSYS_DATABASE_URL": url, "CHATSYS_SEARCH_BACKEND": "database"},
    )
    assert settings["sqlalchemy.url"] == url
    assert settings["search.backend"] == "database"


def test_every_waitress_thread_gets_a_pooled_connection(server):
    settings = plaster.get_settings(INI, "app:main")
    assert int(settings["sqlalchemy.pool_size"]) >= server.threads


def test_no_debugging_aids(ini):
    app = ini["app:main"]
    for key in ("reload_templates", "debug_authorization", "debug_notfound", "debug_routematch"):
        assert app[f"pyramid.{key}"] == "false", key
    assert "pyramid.includes" not in app  # no debug toolbar


def effective_level(ini: configparser.ConfigParser, logger: str) -> str:
    """The level logging.config.fileConfig would give `logger` (nearest configured ancestor)."""
    levels = {"": ini["logger_root"]["level"]}
    for key in ini["loggers"]["keys"].replace(" ", "").split(","):
        if key != "root":
            levels[ini[f"logger_{key}"]["qualname"]] = ini[f"logger_{key}"]["level"]
    name = logger
    while name not in levels:
        name = name.rpartition(".")[0]
    return levels[name]


def test_logging_is_one_line_per_request_and_quiet_libraries(ini):
    assert effective_level(ini, "chatsys.access") == "INFO"
    assert effective_level(ini, "chatsys.outbox.relay") == "INFO"
    assert effective_level(ini, "alembic.runtime.migration") == "INFO"
    for library in ("pika", "sqlalchemy.engine", "elastic_transport.transport", "alembic.runtime.plugins"):
        assert effective_level(ini, library) == "WARN", library


def test_alembic_finds_the_migrations_from_any_working_directory():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(INI)
    assert config.get_main_option("script_location") == str(ROOT / "alembic")
    assert ScriptDirectory.from_config(config).get_current_head()
