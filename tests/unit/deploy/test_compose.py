"""docker-compose.yml, read as data: what the one-command stack promises, checked without Docker.

No Docker engine runs on the development or CI machines.  CI runs `docker-compose config` for the
syntax; these tests hold the file to the architecture: healthchecks everywhere, start-up order by
health, the same console scripts as the local Procfile, an Elasticsearch server of the client's
major version, durable Redis, named volumes, one published port.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

from chatsys.runtime.settings import ENV_OVERRIDES

ROOT = Path(__file__).resolve().parents[3]
SERVERS = ("mysql", "redis", "rabbitmq", "elasticsearch")
APPS = ("web", "relay", "indexer", "counters", "purger", "stream")
LONG_RUNNING = SERVERS + APPS + ("proxy",)
DATA_DIRS = {  # where each server image keeps its data
    "mysql": "/var/lib/mysql",
    "redis": "/data",
    "rabbitmq": "/var/lib/rabbitmq",
    "elasticsearch": "/usr/share/elasticsearch/data",
}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:?-([^}]*))?\}")


def interpolate(text: str) -> str:
    """Substitute ${NAME:-default} with its default, as compose does when NAME is unset."""
    return VARIABLE.sub(lambda m: m.group(3) or "", text)


def pinned_version(text: str, package: str) -> str:
    match = re.search(rf"^\s*\"?{package}(\[[a-z,]+\])?==([0-9][^\s\"]*)", text, re.MULTILINE | re.IGNORECASE)
    assert match, f"no pin for {package}"
    return match.group(2)


def production_port() -> int:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "production.ini")
    return int(config["server:main"]["listen"].rpartition(":")[2])


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_every_service_of_the_stack_exists(services):
    assert set(services) == {*SERVERS, "migrate", *APPS, "proxy", "test"}


@pytest.mark.parametrize(
    "server,probe",
    [
        ("mysql", "mysqladmin ping --host=127.0.0.1"),  # TCP: the init-time server has no network
        ("redis", "redis-cli ping"),
        ("rabbitmq", "rabbitmq-diagnostics -q check_port_connectivity"),
        ("elasticsearch", "/_cluster/health"),
    ],
)
def test_every_server_has_a_healthcheck(services, server, probe):
    check = services[server]["healthcheck"]
    assert not check.get("disable")
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert probe in " ".join(check["test"][1:])
    assert check["retries"] >= 10 and "start_period" in check  # a first start initialises volumes


def test_app_services_wait_for_healthy_servers_and_the_migration(services):
    for name in APPS:
        depends_on = services[name]["depends_on"]
        assert isinstance(depends_on, dict), f"{name}: the short form of depends_on ignores health"
        assert {s: depends_on[s]["condition"] for s in SERVERS} == dict.fromkeys(SERVERS, "service_healthy")
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name


def test_the_migration_runs_once_mysql_is_healthy(services):
    migrate = services["migrate"]
    assert migrate["command"] == ["alembic", "-c", "production.ini", "upgrade", "head"]
    assert migrate["depends_on"] == {"mysql": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"  # restarted, a one-shot would never "complete"


def test_commands_are_the_procfiles_with_production_ini(services):
    procfile = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            procfile[name.strip()] = [
                "production.ini" if arg in ("development.ini", "${CHATSYS_INI:-development.ini}") else arg
                for arg in shlex.split(command)
            ]
    assert set(procfile) == set(APPS)
    for name, argv in procfile.items():
        assert services[name]["command"] == argv, name


def test_web_is_healthy_when_ready_and_the_proxy_waits_for_it(services):
    check = " ".join(services["web"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{production_port()}/readyz" in check
    assert services["proxy"]["depends_on"] == {
        "web": {"condition": "service_healthy"},
        "stream": {"condition": "service_healthy"},
    }


def test_elasticsearch_major_equals_the_pinned_client_major(services):
    client = pinned_version((ROOT / "requirements.txt").read_text(), "elasticsearch")
    assert client == pinned_version((ROOT / "setup.py").read_text(), "elasticsearch")
    repository, _, tag = services["elasticsearch"]["image"].rpartition(":")
    assert repository == "docker.elastic.co/elasticsearch/elasticsearch"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), "pin an exact Elasticsearch release"
    assert tag.split(".")[0] == client.split(".")[0]


def test_elasticsearch_is_a_bounded_single_node_that_never_auto_creates_indices(services):
    env = services["elasticsearch"]["environment"]
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "false"
    assert env["action.auto_create_index"] == "false"
    heap = dict(re.findall(r"-(Xms|Xmx)(\S+)", env["ES_JAVA_OPTS"]))
    assert heap.keys() == {"Xms", "Xmx"} and heap["Xms"] == heap["Xmx"]


def test_redis_runs_with_aof_and_noeviction(services):
    argv = services["redis"]["command"]
    assert argv[0] == "redis-server"
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"


def test_mysql_is_84_with_utf8mb4_defaults(services):
    mysql = services["mysql"]
    assert mysql["image"].startswith("mysql:8.4")
    assert "--character-set-server=utf8mb4" in mysql["command"]
    assert "--collation-server=utf8mb4_unicode_ci" in mysql["command"]  # the schema's collation


def test_rabbitmq_keeps_its_data_under_a_fixed_node_name(services):
    assert "management" in services["rabbitmq"]["image"]
    assert services["rabbitmq"]["hostname"] == "rabbitmq"


def test_server_data_lives_in_named_volumes(compose, services):
    declared = set(compose["volumes"])
    used = set()
    for name in SERVERS:
        volumes = services[name]["volumes"]
        assert len(volumes) == 1, name
        source, target = volumes[0].split(":")[:2]
        assert source in declared, f"{name}: {volumes[0]} is not a named volume"
        assert target == DATA_DIRS[name], name
        used.add(source)
    assert used == declared
    for name, service in services.items():
        if name not in SERVERS:
            for volume in service.get("volumes", []):  # only read-only configuration files
                assert volume.startswith("./") and volume.endswith(":ro"), f"{name}: {volume}"


def haproxy_config() -> str:
    return (ROOT / "docker" / "haproxy.cfg").read_text()


def test_only_the_proxy_publishes_a_port(services):
    assert {name for name, s in services.items() if s.get("ports")} == {"proxy"}
    (mapping,) = services["proxy"]["ports"]
    proxy_port = re.search(r"^\s*bind :(\d+)$", haproxy_config(), re.MULTILINE).group(1)
    # By default on the loopback interface only, at the port the README uses.
    assert interpolate(mapping) == f"127.0.0.1:6543:{proxy_port}"


def test_the_proxy_spreads_requests_over_every_web_container():
    config = haproxy_config()
    assert re.search(rf"^\s*server-template web \d+ web:{production_port()}$", config, re.MULTILINE)
    assert "nameserver docker 127.0.0.11:53" in config  # Docker's DNS: new replicas are found
    assert "http-check send meth GET uri /healthz" in config


def test_web_relay_and_workers_can_be_scaled(services):
    for name in APPS:
        assert "container_name" not in services[name] and "ports" not in services[name], name


def test_settings_reach_the_app_through_the_chatsys_variables(services):
    for name in (*APPS, "migrate"):
        env = services[name]["environment"]
        assert set(env) == set(ENV_OVERRIDES), name
        assert env["CHATSYS_SEARCH_BACKEND"] == "elasticsearch"
    assert set(services["test"]["environment"]) <= set(ENV_OVERRIDES)


def test_environment_values_are_strings(services):
    # docker-compose 1.29 rejects booleans and numbers that YAML would otherwise produce.
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            assert isinstance(value, str), f"{name}: {key}"


def test_passwords_come_from_one_variable_each(services):
    mysql = services["mysql"]["environment"]
    rabbitmq = services["rabbitmq"]["environment"]
    app = services["web"]["environment"]
    test = services["test"]["environment"]
    assert f"//chatsys:{mysql['MYSQL_PASSWORD']}@mysql:3306/chatsys?" in app["CHATSYS_DATABASE_URL"]
    assert f"//root:{mysql['MYSQL_ROOT_PASSWORD']}@mysql:3306/" in test["CHATSYS_DATABASE_URL"]
    for env in (app, test):
        expected = f"//{rabbitmq['RABBITMQ_DEFAULT_USER']}:{rabbitmq['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672/"
        assert expected in env["CHATSYS_AMQP_URL"]


def test_a_fresh_clone_needs_no_env_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for match in VARIABLE.finditer(text):
        assert match.group(2) and match.group(2).startswith(":-"), f"{match.group(0)} has no default"


def test_the_test_profile_runs_the_suite_against_the_real_servers(services):
    test = services["test"]
    assert test["profiles"] == ["test"]
    assert test["build"]["target"] == "test"
    assert test["command"] == ["pytest"]
    assert test["depends_on"] == {s: {"condition": "service_healthy"} for s in SERVERS}
    env = test["environment"]
    assert env["CHATSYS_ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
    # Clear of the running app's data: another database, another Redis database.
    assert env["CHATSYS_DATABASE_URL"] != services["web"]["environment"]["CHATSYS_DATABASE_URL"]
    assert env["CHATSYS_REDIS_URL"] != services["web"]["environment"]["CHATSYS_REDIS_URL"]


def test_restart_policies(services):
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == services["test"]["restart"] == "no"


def test_every_chatsys_service_runs_the_runtime_image(services):
    stages = re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert {"runtime", "test"} <= set(stages)
    for name in (*APPS, "migrate"):
        assert services[name]["build"] == {"context": ".", "target": "runtime"}, name
        assert services[name]["image"] == "chatsys:latest", name
        assert services[name]["read_only"] is True, name


def test_the_driver_can_log_in_to_mysql_84():
    """MySQL 8.4's caching_sha2_password sends the password RSA-encrypted on a server's first
    login over plain TCP; without the cryptography package PyMySQL raises there."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pymysql import _auth

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encrypted = _auth.sha2_rsa_encrypt(b"secret", b"0123456789abcdefghij", public_pem)
    assert len(encrypted) == 256


def test_the_proxy_routes_event_streams_to_the_gateway_with_long_timeouts(services):
    config = haproxy_config()
    assert "use_backend stream if events" in config
    assert re.search(r"^\s*server-template stream \d+ stream:6545$", config, re.MULTILINE)
    backend = config.split("backend stream", 1)[1]
    assert re.search(r"timeout server (\d+)h", backend)  # hours: a stream outlives a request's 60 s
    check = " ".join(services["stream"]["healthcheck"]["test"])
    assert "http://127.0.0.1:6545/readyz" in check


MEMORY = re.compile(r"^(\d+)([kmg])b?$", re.IGNORECASE)


def size(text: str) -> int:
    number, unit = MEMORY.match(str(text)).groups()
    return int(number) * 1024 ** "kmg".index(unit.lower()) * 1024


def test_every_server_has_a_memory_limit_and_settings_that_fit_it(services):
    """Issue 27: RabbitMQ's quorum-queue WAL (512 MiB by default) and the MySQL buffer pool sized
    for the containers' memory, with room left for the rest of each server."""
    limits = {name: size(services[name]["mem_limit"]) for name in SERVERS}
    mysql = dict(arg.removeprefix("--").split("=", 1) for arg in services["mysql"]["command"])
    assert size(mysql["innodb-buffer-pool-size"]) <= limits["mysql"] * 0.6
    erl = services["rabbitmq"]["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"].split()
    ra = {erl[i + 1]: erl[i + 2] for i, arg in enumerate(erl) if arg == "-ra"}
    rabbit = {erl[i + 1]: erl[i + 2] for i, arg in enumerate(erl) if arg == "-rabbit"}
    wal = int(ra["wal_max_size_bytes"])
    watermark = int(re.fullmatch(r"\{absolute,(\d+)\}", rabbit["vm_memory_high_watermark"]).group(1))
    assert wal <= limits["rabbitmq"] // 8 and wal + watermark <= limits["rabbitmq"] * 0.7
    redis = dict(zip(services["redis"]["command"][1::2], services["redis"]["command"][2::2], strict=False))
    assert size(redis["--maxmemory"]) <= limits["redis"] // 2  # the rest: the AOF rewrite's fork
    heap = dict(re.findall(r"-(Xms|Xmx)(\S+)", services["elasticsearch"]["environment"]["ES_JAVA_OPTS"]))
    assert size(heap["Xmx"]) <= limits["elasticsearch"] // 2
