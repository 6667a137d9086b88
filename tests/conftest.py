"""Fixtures on the real MariaDB, Redis and RabbitMQ of the machine.

Each test run — and each xdist worker in it — gets its own database (migrated by Alembic), Redis
key prefix and RabbitMQ namespace.  Tables are emptied between tests.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import plaster
import pytest
from redis import Redis
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from tests.support.env import SERVER_ENV  # first: takes CHATSYS_* out of the environment  # isort: skip

from chatsys import main
from chatsys.runtime.settings import resolve_settings
from testkit.processes import PROCESS_KEYS, Processes, write_ini
from tests.support.db import TESTING_INI, create_database, drop_database, empty_tables
from tests.support.es_targets import TARGETS, make_target
from tests.support.webapp import CheckedTestApp

pytest_plugins = ["tests.faults.summary"]  # the fault scenarios' table, printed where xdist prints

RUN_ID = uuid.uuid4().hex[:8]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _redis_db(url: str) -> str:
    """This run's Redis database: the ini's for a run without xdist, 1, 2 … for workers gw0, gw1 …

    Keys are prefixed per run anyway; a database of its own lets a test empty all of Redis
    (``FLUSHDB``: every counter lost) without touching another worker's keys."""
    worker = _worker()
    if not worker.startswith("gw"):
        return url
    return urlsplit(url)._replace(path=f"/{int(worker[2:]) + 1}").geturl()


def pytest_collection_modifyitems(config, items):
    """Tests that stop and start the machine's services need its control commands."""
    if all(shutil.which(c) for c in ("rabbitmqctl", "mysqladmin", "redis-server", "start-stop-daemon")):
        return
    skip = pytest.mark.skip(reason="needs control of local MariaDB/Redis/RabbitMQ (not in a container)")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"test_{RUN_ID}_{_worker()}"


@pytest.fixture(scope="session")
def settings(namespace) -> dict:
    """Resolved settings of this run: testing.ini and CHATSYS_* overrides, with this run's names."""
    base = resolve_settings(plaster.get_settings(TESTING_INI, "app:main"), environ=SERVER_ENV)
    db_url = make_url(base["sqlalchemy.url"]).set(database=f"chatsys_{namespace}")
    resolved = resolve_settings(
        {
            **base,
            "sqlalchemy.url": db_url.render_as_string(hide_password=False),
            "redis.url": _redis_db(base["redis.url"]),
            "redis.key_prefix": namespace,
            "amqp.namespace": namespace,
        },
        environ={},
    )
    create_database(resolved)
    yield resolved
    drop_database(resolved["sqlalchemy.url"])


@pytest.fixture(scope="session")
def engine(settings):
    engine = create_engine(settings["sqlalchemy.url"], isolation_level="READ COMMITTED", pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_client(settings) -> Redis:
    client = Redis.from_url(settings["redis.url"])
    yield client
    client.close()


def make_app(settings, **overrides):
    """A fresh WSGI app: its own engine, Redis pool and caches, like another web process."""
    return main({}, **{**settings, **overrides})


@pytest.fixture(scope="session")
def wsgi_app(settings):
    return make_app(settings)


@pytest.fixture
def clean(engine, redis_client, settings):
    """Empty tables and this run's Redis keys before a test."""
    empty_tables(engine)
    for key in redis_client.scan_iter(f"{settings['redis.key_prefix']}:*", count=1000):
        redis_client.delete(key)
    yield


@pytest.fixture
def testapp(wsgi_app, clean) -> CheckedTestApp:
    return CheckedTestApp(wsgi_app)


@pytest.fixture
def es_double():
    """A running Elasticsearch test double (testkit/es_double.py) for this test."""
    from testkit.es_double import ElasticsearchDouble

    with ElasticsearchDouble() as double:
        yield double


@pytest.fixture(scope="session")
def noida(tmp_path_factory):
    """noida-db for the whole session, behind its require_alias shim (tests/support/noida.py).

    ``.url`` is the shim, for the backend; ``.direct_url`` noida itself, for the gaps'
    reproductions.  The executable comes with the test lock, so it is missing only from an
    installation without it, where these runs are skipped and say so.
    """
    from types import SimpleNamespace

    from tests.support import noida

    binary = noida.executable()
    if binary is None:
        pytest.skip("the noida-db executable is missing: install the test lock (make install)")
    with noida.running(binary, tmp_path_factory.mktemp("noida")) as (server, shim):
        yield SimpleNamespace(url=shim.url, direct_url=server.url, shim=shim)


@pytest.fixture(params=TARGETS)
def es_target(request):
    """An Elasticsearch to test against: the double, noida-db, and Elasticsearch when
    CHATSYS_ELASTICSEARCH_URL is set (tests/support/es_targets.py); its indices are deleted after."""
    target = make_target(request.param, request)
    try:
        yield target
    finally:
        if target.double is None:
            target.delete_indices()
        target.client.close()


# -- the asynchronous pipeline: broker topology and real child processes --------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def topology(settings):
    from chatsys.runtime.services import Services

    topology = Services(settings).topology
    with amqp_channel(settings) as channel:
        topology.declare(channel)
    yield topology
    with amqp_channel(settings) as channel:
        topology.delete(channel)


def amqp_channel(settings):
    from chatsys.broker import blocking_channel, connection_parameters

    return blocking_channel(connection_parameters(settings, "chatsys-tests"))


@pytest.fixture
def broker(settings, topology, clean):
    """A clean broker namespace for this test: this run's queues emptied."""
    from chatsys.broker.topology import CONSUMERS

    with amqp_channel(settings) as channel:
        for consumer in CONSUMERS:
            channel.queue_purge(topology.queue(consumer))
            channel.queue_purge(topology.dead_queue(consumer))
    return topology


def process_overrides(settings, **extra) -> dict:
    """What a child process's ini must say to use this run's database, Redis and broker names."""
    return {**{k: settings[k] for k in PROCESS_KEYS}, "relay.idle_max": "0.05", "relay.max_attempts": "50", **extra}


@pytest.fixture(scope="session")
def process_ini(settings, tmp_path_factory) -> Path:
    return write_ini(tmp_path_factory.mktemp("ini") / "pipeline.ini", TESTING_INI, process_overrides(settings))


@pytest.fixture
def procs(request, process_ini, broker, tmp_path):
    """Start relay / workers for one test; they are stopped (and their logs shown on failure) after."""
    processes = Processes(process_ini, tmp_path)
    yield processes
    processes.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(processes.dump())
