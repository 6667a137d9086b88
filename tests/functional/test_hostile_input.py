"""Hostile request bodies against a real web of two worker processes: refused quickly with a 4xx,
and the web keeps answering everyone else meanwhile."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3

from tests.support.stack import start_stack

# Under the 64 KiB body limit, so that validation (not the size check) has to refuse them.
HOSTILE_TEXT = "a" * 65000 + "\u0000"


@pytest.fixture(scope="module")
def web(settings, tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("hostile"), settings, pipeline=False, workers=2, probe="/healthz")
    yield stack.base, urllib3.PoolManager(retries=False, timeout=5, maxsize=8)
    stack.procs.stop_all()


@pytest.mark.parametrize(
    "path,field",
    [
        ("/v1/applications", "name"),
        ("/applications", "name"),
        ("/chats", "name"),  # the original API's routes
        ("/messages", "body"),
    ],
)
def test_two_concurrent_hostile_bodies_are_refused_fast_and_health_stays_fast(web, path, field):
    base, http = web
    body = json.dumps({field: HOSTILE_TEXT, "app_token": "x", "chat_number": 1}).encode()
    assert len(body) < 65536
    answers: list[tuple[int, float]] = []

    def hostile() -> None:
        started = time.monotonic()
        res = http.request("POST", base + path, body=body, headers={"Content-Type": "application/json"})
        answers.append((res.status, time.monotonic() - started))

    threads = [threading.Thread(target=hostile) for _ in range(2)]
    for thread in threads:
        thread.start()
    health: list[float] = []
    while any(thread.is_alive() for thread in threads):
        started = time.monotonic()
        assert http.request("GET", base + "/healthz").status == 200
        health.append(time.monotonic() - started)
    for thread in threads:
        thread.join()

    assert [status // 100 for status, _ in answers] == [4, 4], answers
    assert max(seconds for _, seconds in answers) < 1.0, answers
    assert health and max(health) < 1.0, health


def test_a_json_integer_of_5000_digits_is_a_client_error(web):
    base, http = web
    body = b'{"name": ' + b"7" * 5000 + b"}"
    res = http.request("POST", base + "/v1/applications", body=body, headers={"Content-Type": "application/json"})
    assert res.status == 400, res.data
    assert json.loads(res.data)["error"]["code"] == "malformed_json"
