"""Pipeline lag at rest: time from a 201 to the message being counted, with no other load.

    .venv/bin/python -m bench.at_rest [--messages 200] [--rate 10]

Starts web (one worker), relay and the counters worker from development.ini (so nothing else may
be serving on 127.0.0.1:6543), creates messages one at a time at ``--rate`` per second, and for
each polls MySQL until ``messages.counted`` is 1 (the counters consumer has counted that row).
Prints p50/p95/p99/max in milliseconds.  W4 of ``python -m bench`` measures the same under load.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time

import pymysql
import urllib3
from sqlalchemy.engine import make_url

from bench.stack import BIN, ROOT
from chatsys.runtime.settings import resolve_settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--rate", type=float, default=10.0, help="messages per second")
    args = p.parse_args()
    import plaster

    settings = resolve_settings(plaster.get_settings(str(ROOT / "development.ini"), "app:main"))
    url = make_url(settings["sqlalchemy.url"])
    commands = (
        ["chatsys-web", "development.ini", "--workers", "1"],
        ["chatsys-relay", "development.ini"],
        ["chatsys-worker", "development.ini", "--consumer", "counters"],
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]
    try:
        http = urllib3.PoolManager(retries=False, timeout=5)
        base = "http://127.0.0.1:6543"
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.request("GET", f"{base}/readyz").status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the web did not become ready")
            time.sleep(0.2)
        token = http.request("POST", f"{base}/v1/applications", json={"name": "lag"}).json()["app_token"]
        http.request("POST", f"{base}/v1/applications/{token}/chats", json={})
        db = pymysql.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            autocommit=True,
        )
        cur = db.cursor()
        cur.execute(
            "SELECT c.id FROM chats c JOIN applications a ON a.id = c.application_id WHERE a.token = %s", (token,)
        )
        chat_id = cur.fetchone()[0]
        lags = []
        for _ in range(args.messages):
            reply = http.request("POST", f"{base}/v1/applications/{token}/chats/1/messages", json={"body": "lag probe"})
            acknowledged = time.perf_counter()
            number = reply.json()["message_number"]
            while True:
                cur.execute("SELECT counted FROM messages WHERE chat_id = %s AND number = %s", (chat_id, number))
                if cur.fetchone()[0]:
                    break
                time.sleep(0.002)
            lags.append((time.perf_counter() - acknowledged) * 1000)
            time.sleep(1 / args.rate)
        lags.sort()
        pick = lambda q: lags[min(len(lags) - 1, int(len(lags) * q))]  # noqa: E731
        print(
            f"201 -> counted at rest, {len(lags)} messages: p50 {pick(0.5):.1f} ms, p95 {pick(0.95):.1f} ms, "
            f"p99 {pick(0.99):.1f} ms, max {lags[-1]:.1f} ms"
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


if __name__ == "__main__":
    main()
