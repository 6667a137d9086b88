"""README.md's run command, as a new user runs it: `make run` brings up web, relay and workers;
a message posted to the web is counted through the relay and the counters worker; Ctrl-C stops
every process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import urllib3

from testkit.processes import write_ini
from tests.conftest import process_overrides
from tests.support.db import ROOT, TESTING_INI
from tests.support.net import free_port
from tests.support.wait import wait_for


def test_readme_commands_are_the_ones_tested():
    readme = (Path(ROOT) / "README.md").read_text()
    assert "make run " in readme and "make test " in readme
    ci = (Path(ROOT) / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (e.g. in the test container)")
def test_make_run_serves_the_whole_pipeline_and_stops_on_ctrl_c(settings, clean, broker, tmp_path):
    port = free_port()
    ini = write_ini(tmp_path / "run.ini", TESTING_INI, process_overrides(settings), listen=f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
    run = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"INI={ini}"],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / "run.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    http = urllib3.PoolManager(retries=False, timeout=5)
    base = f"http://127.0.0.1:{port}"
    try:

        def ready():
            try:
                return http.request("GET", f"{base}/readyz").status == 200
            except urllib3.exceptions.HTTPError:
                return False

        wait_for(ready, timeout=90, interval=0.2, message="make run: /readyz")
        token = http.request("POST", f"{base}/v1/applications", json={"name": "readme"}).json()["app_token"]
        assert http.request("POST", f"{base}/v1/applications/{token}/chats", json={}).status == 201
        url = f"{base}/v1/applications/{token}/chats/1/messages"
        assert http.request("POST", url, json={"body": "hello"}).status == 201

        def counted():
            return http.request("GET", f"{base}/v1/applications/{token}/chats/1").json()["messages_count"] == 1

        wait_for(counted, timeout=30, message="the message counted by the pipeline")
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole process group
        try:
            run.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            raise AssertionError("make run did not stop on Ctrl-C:\n" + (tmp_path / "run.log").read_text()) from None
    log = (tmp_path / "run.log").read_text()
    for name in ("web.1", "relay.1", "indexer.1", "counters.1"):
        assert f"{name} stopped" in log, log[-3000:]
