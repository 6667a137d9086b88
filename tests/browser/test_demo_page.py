"""/demo as a person uses it, in chromium, over the real web, relay and workers."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.browser.conftest import requires_chromium, screenshot_changed

pytestmark = requires_chromium


def body_of(page, number: int):
    return page.locator(f'#message-list .message[data-number="{number}"] .body')


def enter_by_token(page, token: str, chat: int | None = None) -> None:
    page.fill("#app-token", token)
    page.press("#app-token", "Enter")
    expect(page.locator("#app-current")).to_be_visible()
    if chat is not None:
        page.click(f'#chat-list button[data-chat="{chat}"]')
        expect(page.locator("#messages-heading")).to_contain_text(f"(#{chat})")


def start_chat(page, app_name: str) -> None:
    """A new application and its first chat, as a person does it: a name, Enter, Enter."""
    page.fill("#app-name", app_name)
    page.press("#app-name", "Enter")
    expect(page.locator("#chat-name")).to_be_focused()
    page.press("#chat-name", "Enter")  # a chat needs no name
    expect(page.locator("#message-body")).to_be_focused()


def test_a_message_posted_in_one_page_appears_in_the_other_within_2_s(pages):
    alice = pages.open()
    # By keyboard alone: the page puts the focus where the next step is, and Enter submits.
    expect(alice.locator("#app-name")).to_be_focused()
    alice.keyboard.type("acme")
    alice.keyboard.press("Enter")
    expect(alice.locator("#chat-name")).to_be_focused()
    alice.keyboard.type("general")
    alice.keyboard.press("Enter")
    expect(alice.locator("#message-body")).to_be_focused()
    expect(alice.locator("#messages-heading")).to_have_text("general (#1)")
    token = alice.input_value("#app-token-shown")

    bob = pages.open()
    enter_by_token(bob, token, chat=1)

    alice.keyboard.type("hello from alice")
    started = time.monotonic()
    alice.keyboard.press("Enter")
    expect(body_of(alice, 1)).to_have_text("hello from alice")
    expect(body_of(bob, 1)).to_have_text("hello from alice", timeout=2_000)
    assert time.monotonic() - started < 2.0

    # An edit in one page shows in the other, with its version.
    alice.click('#message-list .message[data-number="1"] button.edit')
    alice.keyboard.press("Control+a")
    alice.keyboard.type("hello, edited")
    alice.keyboard.press("Enter")
    expect(body_of(bob, 1)).to_have_text("hello, edited", timeout=2_000)
    expect(bob.locator('#message-list .message[data-number="1"] .edited')).to_have_text("edited (v2)")

    # The counts follow, through the outbox, the relay and the counters worker.
    expect(bob.locator("#messages-count")).to_have_text("1", timeout=10_000)
    expect(bob.locator("#chats-count")).to_have_text("1", timeout=10_000)

    # The token was never put in a page's URL or in a query string.
    assert all(token not in page.url for page in (alice, bob))
    assert not [url for url in pages.requests if token in urlsplit(url).query]


def test_history_pages_back_newest_first_and_deletions_show(pages, stack):
    token = stack.api("POST", "/v1/applications", {"name": "history"})["app_token"]
    chat = f"/v1/applications/{token}/chats/1"
    stack.api("POST", f"/v1/applications/{token}/chats", {})
    with ThreadPoolExecutor(8) as pool:  # the web's threads: seeding takes a moment, not ten
        posted = list(pool.map(lambda n: stack.api("POST", f"{chat}/messages", {"body": f"post {n}"}), range(55)))
    body = {m["message_number"]: m["body"] for m in posted}
    page = pages.open()
    enter_by_token(page, token, chat=1)
    # The newest page (50) first, oldest of them at the top; the rest behind "Load older".
    expect(page.locator("#message-list .message")).to_have_count(50)
    expect(page.locator("#message-list .message").first).to_have_attribute("data-number", "6")
    expect(body_of(page, 55)).to_have_text(body[55])
    page.click("#older")
    expect(page.locator("#message-list .message")).to_have_count(55)
    expect(page.locator("#message-list .message").first).to_have_attribute("data-number", "1")
    expect(page.locator("#older")).to_be_hidden()

    # Deleted elsewhere (/v1 DELETE): the page marks it.
    expect(body_of(page, 1)).to_have_text(body[1])
    stack.api("DELETE", f"{chat}/messages/54")
    expect(body_of(page, 54)).to_have_text("(deleted)", timeout=3_000)


def test_search_shows_the_highlighted_hit_as_text(pages, stack):
    token = stack.api("POST", "/v1/applications", {"name": "search"})["app_token"]
    stack.api("POST", f"/v1/applications/{token}/chats", {"name": "general"})
    for body in ("hello world", "wonderful day", '<img src=x onerror="window.pwned=1"> & a worm'):
        stack.api("POST", f"/v1/applications/{token}/chats/1/messages", {"body": body})
    page = pages.open()
    enter_by_token(page, token, chat=1)
    page.fill("#search-q", "wor")
    page.press("#search-q", "Enter")
    hits = page.locator("#search-results li")
    expect(hits).to_have_count(2)
    # Newest first; the match is marked, the rest of the fragment is plain text.
    expect(hits.nth(0).locator("mark")).to_have_text("wor")
    expect(hits.nth(0).locator(".fragment")).to_have_text('<img src=x onerror="window.pwned=1"> & a worm')
    expect(hits.nth(1).locator(".fragment")).to_have_text("hello world")
    expect(hits.nth(1).locator("mark")).to_have_text("wor")
    expect(page.locator("#search-status")).to_have_text("2 messages match.")
    # A body that looks like HTML stayed text: no element was made of it, no script ran.
    assert page.locator("#search-results img, #message-list img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_422_shows_the_services_error_text(pages):
    page = pages.open()
    page.press("#app-name", "Enter")  # an empty name
    expect(page.locator("#error-text")).to_have_text("name: must not be empty")
    start_chat(page, "errors")
    expect(page.locator("#error")).to_be_hidden()
    page.fill("#message-body", "   ")
    page.press("#message-body", "Enter")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-text")).to_have_text("body: must contain a non-space character and no NUL character")
    expect(page.locator("#message-list .message")).to_have_count(0)


def test_a_503_is_stated_plainly_and_polling_backs_off_then_recovers(pages):
    page = pages.open()
    start_chat(page, "outage")
    expect(page.locator("#live")).to_contain_text("polling")

    # What the web answers while MySQL or Redis is down (views/errors.py), for every /v1 request.
    unavailable = json.dumps(
        {"error": {"code": "service_unavailable", "message": "A backing service is unavailable; retry later."}}
    )

    def outage(route):
        route.fulfill(status=503, content_type="application/json", headers={"Retry-After": "1"}, body=unavailable)

    page.route("**/v1/**", outage)
    expect(page.locator("#error-text")).to_contain_text("The service is unavailable right now")
    expect(page.locator("#error-text")).to_contain_text("A backing service is unavailable; retry later.")
    expect(page.locator("#live")).to_contain_text("retrying in")
    page.unroute("**/v1/**", outage)
    expect(page.locator("#live")).to_contain_text("polling every 1 s", timeout=15_000)
    expect(page.locator("#error")).to_be_hidden()


def test_phone_width_has_no_sideways_scrolling(pages):
    page = pages.open(width=375, height=740)
    start_chat(page, "phone")
    page.fill("#message-body", "a long word: " + "x" * 200)
    page.press("#message-body", "Enter")
    expect(body_of(page, 1)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for selector in ("#message-body", "#search-q", "#chat-name"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (selector, box)


def test_the_readme_screenshot(pages, stack):
    """docs/demo.png, the README's picture of the page, made by the test run from the real stack.

    Nothing in it changes from run to run (no token, no time; the counts caught up), so a run
    rewrites the file only when the page's look has changed, not for a pixel's anti-aliasing.
    """
    token = stack.api("POST", "/v1/applications", {"name": "acme"})["app_token"]
    chats = f"/v1/applications/{token}/chats"
    stack.api("POST", chats, {"name": "general"})
    stack.api("POST", chats, {"name": "support"})
    for body in (
        "Hello world! The demo page is live.",
        "Messages show up in every open page within a second.",
        "Search finds parts of words: try 'wor' or 'sec'.",
        "Edits show up too, with their version.",
    ):
        stack.api("POST", f"{chats}/1/messages", {"body": body})
    stack.api("PATCH", f"{chats}/1/messages/4", {"body": "Edits show up too, with their version number."})
    page = pages.open(width=1200, height=560)
    enter_by_token(page, token, chat=1)
    page.fill("#search-q", "wor")
    page.press("#search-q", "Enter")
    expect(page.locator("#search-results li")).to_have_count(2)
    page.fill("#message-body", "Typing the next one")
    expect(page.locator("#messages-count")).to_have_text("4", timeout=10_000)
    expect(page.locator("#chats-count")).to_have_text("2", timeout=10_000)
    expect(page.locator('#chat-list button[data-chat="1"] .n')).to_have_text("#1 · 4 msg", timeout=10_000)
    page.locator("#message-body").blur()
    png = page.screenshot(animations="disabled")
    assert len(png) < 200_000, "keep the README's picture small"
    target = Path(__file__).resolve().parents[2] / "docs" / "demo.png"
    if not target.exists() or screenshot_changed(pages.browser, target.read_bytes(), png):
        target.write_bytes(png)


def test_keyboard_alone_goes_through_the_page_in_reading_order_and_edits(pages):
    page = pages.open()

    def focused() -> str:
        return page.evaluate("document.activeElement.id || document.activeElement.textContent")

    expect(page.locator("#app-name")).to_be_focused()
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(focused())
    assert order == ["Create", "app-token", "Enter"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.type("keys")
    page.keyboard.press("Enter")
    expect(page.locator("#chat-name")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#message-body")).to_be_focused()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(body_of(page, 1)).to_have_text("typed, not clicked")
    page.keyboard.press("Tab")
    assert focused() == "Send"
    page.keyboard.press("Tab")
    assert focused() == "search-q"

    # Back to the message's Edit button, Enter, new text, Enter: saved, and the focus returns.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.locator('#message-list .message[data-number="1"] button.edit')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#edit-1")).to_be_focused()
    page.keyboard.type("edited by keyboard")  # the old text is selected: typing replaces it
    page.keyboard.press("Enter")
    expect(body_of(page, 1)).to_have_text("edited by keyboard")
    expect(page.locator('#message-list .message[data-number="1"] button.edit')).to_be_focused()
    # Escape leaves an edit without saving.
    page.keyboard.press("Enter")
    page.keyboard.type("not saved")
    page.keyboard.press("Escape")
    expect(body_of(page, 1)).to_have_text("edited by keyboard")
