"""/demo's live updates through an event stream, and its fallback to polling.

Most tests point the page (``chatsys.demo_events_url``) at a stand-in that speaks the gateway's
contract (Server-Sent Events at ``/v1/applications/{token}/chats/{n}/events``, ``message.*``
events with the /v1 representation and its ``version``, ``reset`` to reload through REST) and
sends only what a test tells it to: stale versions, resets and outages on cue.
``test_demo_live.py`` runs the page against the real ``chatsys-stream``.
"""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import requires_chromium
from tests.browser.test_demo_page import body_of, enter_by_token
from tests.support.stack import start_stack

pytestmark = requires_chromium


class StreamStandIn:
    def __init__(self):
        self.events: queue.Queue = queue.Queue()
        self.paths: list[str] = []
        self.available = True
        self.closing = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.paths.append(self.path)
                if not stand_in.available:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(b": hello\n\n")
                self.wfile.flush()
                number = 0
                while not stand_in.closing.is_set():
                    try:
                        event, data = stand_in.events.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    number += 1
                    payload = f"event: {event}\nid: {number}\ndata: {json.dumps(data)}\n\n"
                    try:
                        self.wfile.write(payload.encode())
                        self.wfile.flush()
                    except OSError:
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def send(self, event: str, data: dict) -> None:
        self.events.put((event, data))

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stand_in():
    stand_in = StreamStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="module")
def stack(settings, topology, stand_in, tmp_path_factory):
    """The web, with the page told where the stream is (the stand-in sends the events)."""
    url = {"chatsys.demo_events_url": stand_in.url}
    stack = start_stack(tmp_path_factory.mktemp("demo-stream"), settings, pipeline=False, **url)
    yield stack
    stack.procs.stop_all()


def message(number: int, body: str, version: int = 1) -> dict:
    stamp = "2026-12-07T12:00:00.000000Z"
    return {
        "chat_number": 1,
        "message_number": number,
        "body": body,
        "version": version,
        "created_at": stamp,
        "updated_at": stamp,
    }


def test_the_page_follows_the_event_stream(pages, stack, stand_in):
    stand_in.available = True
    token = stack.api("POST", "/v1/applications", {"name": "stream"})["app_token"]
    stack.api("POST", f"/v1/applications/{token}/chats", {})
    page = pages.open()
    enter_by_token(page, token, chat=1)
    expect(page.locator("#live")).to_have_text("Live: event stream")
    assert f"/v1/applications/{token}/chats/1/events" in stand_in.paths  # the token in the path only

    stand_in.send("message.created", message(1, "from the stream"))
    expect(body_of(page, 1)).to_have_text("from the stream")
    stand_in.send("message.updated", message(1, "edited on the stream", version=2))
    expect(body_of(page, 1)).to_have_text("edited on the stream")
    stand_in.send("message.updated", message(1, "a stale copy", version=1))  # redelivered late
    stand_in.send("message.created", message(2, "second"))
    expect(body_of(page, 2)).to_have_text("second")
    expect(body_of(page, 1)).to_have_text("edited on the stream")
    stand_in.send("message.deleted", {"chat_number": 1, "message_number": 2, "version": 2})
    expect(body_of(page, 2)).to_have_text("(deleted)")

    # While the stream is open the page does not poll for messages: one made through REST shows
    # when the stream says so, here with a reset (the client reloads through REST).
    stack.api("POST", f"/v1/applications/{token}/chats/1/messages", {"body": "made through REST"})
    stand_in.send("reset", {})
    expect(body_of(page, 1)).to_have_text("made through REST")
    expect(page.locator("#message-list .message")).to_have_count(1)


def test_without_a_stream_the_page_polls(pages, stack, stand_in):
    stand_in.available = False
    try:
        token = stack.api("POST", "/v1/applications", {"name": "no stream"})["app_token"]
        stack.api("POST", f"/v1/applications/{token}/chats", {})
        page = pages.open()
        enter_by_token(page, token, chat=1)
        expect(page.locator("#live")).to_have_text("Live: polling every 1 s (event stream unreachable)")
        stack.api("POST", f"/v1/applications/{token}/chats/1/messages", {"body": "found by polling"})
        expect(body_of(page, 1)).to_have_text("found by polling", timeout=3_000)
    finally:
        stand_in.available = True
