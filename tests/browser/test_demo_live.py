"""/demo against the whole service as `make run` starts it: web, relay, consumers and the real
stream gateway (chatsys-stream) on a port of its own, which lets the web's origin open streams
(``stream.allow_origins``, CORS)."""

from __future__ import annotations

import configparser

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import requires_chromium
from tests.browser.test_demo_page import body_of, enter_by_token
from tests.support.net import free_port
from tests.support.stack import start_stack
from tests.support.wait import wait_for

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def stack(settings, topology, tmp_path_factory):
    """The web, relay and consumers, then the gateway, told the web's origin."""
    gateway_port = free_port()
    holder: dict = {}

    def edit(ini) -> None:
        holder["ini"] = ini

    stack = start_stack(
        tmp_path_factory.mktemp("demo-live"),
        settings,
        edit_ini=edit,
        **{"chatsys.demo_events_url": f"http://127.0.0.1:{gateway_port}"},
    )
    # The gateway needs the web's origin, which start_stack chose: set it and start the gateway.
    _allow_origin(holder["ini"], stack.base)
    stack.procs.spawn("stream", "chatsys-stream", "--port", str(gateway_port))

    def gateway_up() -> bool:
        try:
            return stack.http.request("GET", f"http://127.0.0.1:{gateway_port}/readyz").status == 200
        except Exception:
            return False

    wait_for(gateway_up, 60, interval=0.1, message="chatsys-stream /readyz")
    yield stack
    stack.procs.stop_all()


def _allow_origin(ini, origin: str) -> None:
    config = configparser.RawConfigParser()
    config.optionxform = str
    config.read(ini)
    config.set("app:main", "stream.allow_origins", origin)
    with open(ini, "w") as handle:
        config.write(handle)


def test_two_pages_follow_one_chat_through_the_real_gateway(pages, stack):
    """The page on the web's origin opens its stream on the gateway's: a message posted in one
    page shows in the other through chatsys-stream, and an edit too, without polling."""
    token = stack.api("POST", "/v1/applications", {"name": "live"})["app_token"]
    stack.api("POST", f"/v1/applications/{token}/chats", {})
    reader, writer = pages.open(), pages.open()
    enter_by_token(reader, token, chat=1)
    expect(reader.locator("#live")).to_have_text("Live: event stream")
    enter_by_token(writer, token, chat=1)
    writer.fill("#message-body", "over the real stream")
    writer.press("#message-body", "Enter")
    expect(body_of(reader, 1)).to_have_text("over the real stream", timeout=2000)
    stack.api("PATCH", f"/v1/applications/{token}/chats/1/messages/1", {"body": "edited elsewhere"})
    expect(body_of(reader, 1)).to_have_text("edited elsewhere", timeout=2000)
    expect(reader.locator("#live")).to_have_text("Live: event stream")
