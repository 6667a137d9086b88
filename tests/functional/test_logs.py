"""What the processes write down: no application token in any log line of the web, the relay or
the workers, whatever a client sends, and no client-made label on ``/metrics``."""

from __future__ import annotations

import configparser
import json

import pytest

from tests.support.stack import start_stack
from tests.support.wait import wait_for


def verbose(ini) -> None:
    """chatsys's loggers at DEBUG, the others at INFO."""
    config = configparser.RawConfigParser()
    config.optionxform = str
    config.read(ini)
    config.set("logger_root", "level", "INFO")
    config.set("logger_chatsys", "level", "DEBUG")
    with open(ini, "w") as handle:
        config.write(handle)


@pytest.fixture
def stack(settings, broker, tmp_path):
    """A web, the relay and both consumers, logging verbosely."""
    running = start_stack(tmp_path, settings, timeout=10, edit_ini=verbose)

    def call(method: str, path: str, body=None, **headers):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        res = running.http.request(
            method, running.base + path, body=data, headers={"Content-Type": "application/json", **headers}
        )
        is_json = res.headers.get("Content-Type", "").startswith("application/json")
        return res.status, (json.loads(res.data) if is_json else None), res

    yield running.procs, call
    running.procs.stop_all()


def test_no_log_line_of_any_process_holds_an_application_token(stack):
    procs, call = stack
    status, app, _ = call("POST", "/v1/applications", {"name": "secretive"})
    assert status == 201
    token = app["app_token"]
    v1 = f"/v1/applications/{token}"
    assert call("POST", f"{v1}/chats", {"name": "c"})[0] == 201
    for i in range(5):
        assert call("POST", f"{v1}/chats/1/messages", {"body": f"hello {i}"})[0] == 201
    assert call("PATCH", f"{v1}/chats/1/messages/1", {"body": "edited"})[0] == 200
    assert call("DELETE", f"{v1}/chats/1/messages/2")[0] == 204
    assert call("GET", f"{v1}/chats/1/messages/search?q=hello")[0] == 200
    assert call("GET", f"/chats/{token}/1/messages")[0] == 200  # the original API's paths
    assert call("GET", f"/messages/{token}/1/search/hello")[0] == 200
    assert call("POST", "/messages", {"app_token": token, "chat_number": 1, "body": "via the original API"})[0] == 201
    # Refusals that carry the token, or something close to it, in the path, the body or a header.
    assert call("GET", f"{v1}x/chats/1")[0] == 404
    assert call("GET", f"/v1/applications/{token.upper()}")[0] == 404
    assert call("POST", f"{v1}/chats/1/messages", {"body": ""})[0] == 422
    assert call("POST", f"{v1}/chats/1/messages", {"body": "x", "app_token": token})[0] == 422
    assert call("GET", f"{v1}/chats/99/messages")[0] == 404
    assert call("PUT", f"{v1}/chats/1")[0] == 405
    assert call("POST", f"{v1}/chats/1/messages", {"body": "retry"}, **{"Idempotency-Key": token})[0] == 201
    assert call("POST", f"{v1}/chats/1/messages", b"not json")[0] == 400

    def drained() -> bool:
        status, chat, _ = call("GET", f"{v1}/chats/1")
        return status == 200 and chat["messages_count"] == 6

    wait_for(drained, 60, message="the counters consumer to count the messages")
    status, _, metrics = call("GET", "/metrics")
    assert status == 200 and token not in metrics.data.decode()
    procs.stop_all()

    logs = {proc.name: proc.output() for proc in procs.procs}
    assert "access" in logs["web"] or "status=" in logs["web"]  # the web did log its requests
    assert all(logs.values()), logs.keys()
    leaks = {name: [line for line in text.splitlines() if token in line] for name, text in logs.items()}
    assert leaks == {name: [] for name in logs}


def test_made_up_methods_do_not_grow_metrics(stack):
    _, call = stack
    call("GET", "/healthz")
    before = call("GET", "/metrics")[2].data.decode()
    for i in range(400):
        call(f"MADEUP{i}", f"/v1/applications/x{i}")
    after = call("GET", "/metrics")[2].data.decode()
    assert "MADEUP" not in after
    series = {line.split(" ")[0] for line in after.splitlines() if line and not line.startswith("#")}
    grown = series - {line.split(" ")[0] for line in before.splitlines() if line and not line.startswith("#")}
    # The first 4xx of the route pattern and the "other" method: a handful, never 400.
    assert len(grown) < 40, sorted(grown)
