"""Fault scenario of the event-stream gateway: subscribers that resume as browsers do, while the
gateway is killed and the broker restarted under load.  Afterwards every subscriber has heard
every acknowledged create and the newest acknowledged version of every edit of its chats.

Run it on its own:  make test PYTEST_ARGS="tests/faults -k stream"
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.faults.harness import Load, check_invariants, services
from tests.support.net import free_port
from tests.support.sse import ResumingSubscriber
from tests.support.wait import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.services]


def start_gateway(s, port: int):
    proc = s.procs.spawn("stream", "chatsys-stream", "--port", str(port))

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as res:
                return res.status == 200
        except OSError:
            return False

    wait_for(ready, 60, interval=0.1, message="gateway ready")
    return proc


def missing(sub: ResumingSubscriber, creates: dict, versions: dict, token: str, chat: int | None) -> int:
    """How many acknowledged creates and newest versions this subscriber has not heard yet."""
    heard: dict[tuple[int, int], int] = {}
    for event in sub.events:
        if event.type in ("message.created", "message.updated"):
            key = (event.data["chat_number"], event.data["message_number"])
            heard[key] = max(heard.get(key, 0), event.data["version"])
    gaps = 0
    for (t, c), numbers in creates.items():
        if t == token and (chat is None or c == chat):
            gaps += sum((c, n) not in heard for n in numbers)
    for (t, c, n), version in versions.items():
        if t == token and (chat is None or c == chat):
            gaps += heard.get((c, n), 0) < version
    return gaps


def test_stream_gateway_killed_and_broker_restarted_while_messages_flow(scenario):
    s = scenario
    s.system.start()
    port = free_port()
    gateway = start_gateway(s, port)
    chats = s.system.seed(apps=2, chats=3)
    tokens = sorted({token for token, _ in chats})
    subscribers = {
        (token, chat): ResumingSubscriber("127.0.0.1", port, f"/v1/applications/{token}/chats/{chat}/events").start()
        for token, chat in chats
    }
    subscribers.update(
        {
            (token, None): ResumingSubscriber("127.0.0.1", port, f"/v1/applications/{token}/events").start()
            for token in tokens
        }
    )
    wait_for(
        lambda: all(sub.connections or sub.current and sub.current.opened.is_set() for sub in subscribers.values()), 30
    )
    load = Load(s.system.base, chats, threads=2, edit_share=0.2).start()
    load.wait_for_requests(100)
    gateway.kill()
    s.report.fault("chatsys-stream killed (SIGKILL) under load")
    load.wait_for_requests(50)
    services("restart", "rabbitmq")
    s.report.fault("RabbitMQ restarted under load, the gateway still down")
    load.wait_for_requests(50, timeout=120)
    gateway = start_gateway(s, port)
    s.report.fault("chatsys-stream started again on the same port")
    load.wait_for_requests(100, timeout=120)
    load.stop()

    creates: dict[tuple[str, int], set[int]] = {}
    versions: dict[tuple[str, int, int], int] = {}
    for op in load.ops:
        if op.ok and op.kind == "create":
            creates.setdefault((op.token, op.chat), set()).add(op.number)
        elif op.ok and op.kind == "edit":
            key = (op.token, op.chat, op.number)
            versions[key] = max(versions.get(key, 0), op.version)

    def all_heard() -> bool:
        return all(missing(sub, creates, versions, token, chat) == 0 for (token, chat), sub in subscribers.items())

    wait_for(all_heard, 120, interval=0.5, message="every subscriber hears every acknowledged message")
    for sub in subscribers.values():
        sub.stop()
    heard = twice = 0
    for sub in subscribers.values():
        keys = [(e.id, e.type) for e in sub.events]
        heard += len(keys)
        twice += len(keys) - len(set(keys))  # the same event again on one subscriber (allowed)
    s.report.measured["stream_events_heard"] = heard
    s.report.measured["stream_events_heard_twice"] = twice
    s.report.measured["stream_reconnects"] = sum(sub.connections for sub in subscribers.values()) - len(subscribers)
    s.report.measured["stream_subscribers"] = len(subscribers)
    s.report.invariants["streams_heard_every_acknowledged_message"] = True
    assert all(sub.connections >= 2 for sub in subscribers.values())  # each did resume
    report = check_invariants(s.report, s.engine, load, s.double, s.alias, s.tap, s.channel, s.topology)
    failed = [name for name, held in report.invariants.items() if not held]
    assert not failed, f"invariants broken: {failed}\n{report.line()}"
