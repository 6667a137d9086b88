"""The /demo page in a real browser: Debian's chromium driven by Playwright for Python, against
the real web, relay and workers on this run's database, Redis prefix and RabbitMQ namespace.

Playwright talks to the system chromium (``executable_path``); no browser is downloaded.  Where
chromium is missing (the compose test image) these tests are skipped and say so; ``.ci/run``
installs it.  When a test fails, a screenshot of each of its pages, the pages' console output and
the processes' logs are kept under the test's temporary directory, and their paths printed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import pytest

from tests.support.stack import start_stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)


@pytest.fixture(scope="module")
def stack(settings, topology, tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("demo-stack"), settings)
    yield stack
    stack.procs.stop_all()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@dataclass
class Pages:
    """The pages a test opens, each in its own context (its own sessionStorage, like a tab of
    another person), with what each printed to its console and every URL it requested."""

    browser: object
    base: str
    opened: list = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, width: int = 1200, height: int = 800, path: str = "/demo"):
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        index = len(self.opened)
        page.on("console", lambda message: self.console.append(f"[page {index}] {message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(f"[page {index}] {error}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.set_default_timeout(10_000)
        page.goto(self.base + path)
        self.opened.append(page)
        return page

    def close(self) -> None:
        for page in self.opened:
            page.context.close()


@pytest.fixture
def pages(request, browser, stack, tmp_path):
    pages = Pages(browser, stack.base)
    yield pages
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shots = tmp_path / "screenshots"
        shots.mkdir(exist_ok=True)
        for index, page in enumerate(pages.opened):
            try:
                page.screenshot(path=str(shots / f"page-{index}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"no screenshot of page {index}: {exc}")
        (shots / "console.log").write_text("\n".join(pages.console + pages.errors) + "\n")
        print(f"\nscreenshots and console output of the failed test: {shots}")
        print(stack.procs.dump())
    pages.close()
    assert not pages.errors, f"uncaught errors in the page: {pages.errors}"


# Chromium does not rasterise a page to the same bytes every time (anti-aliased corners differ by
# a level now and then), so "has the picture changed?" is asked of the pixels, by chromium itself.
COMPARE_JS = """async ([a, b, tolerance]) => {
  const load = (data) => new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = "data:image/png;base64," + data;
  });
  const [first, second] = await Promise.all([load(a), load(b)]);
  if (first.width !== second.width || first.height !== second.height) return Infinity;
  const read = (image) => {
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    return context.getImageData(0, 0, image.width, image.height).data;
  };
  const x = read(first), y = read(second);
  let changed = 0;
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i] - y[i]) > tolerance) changed++;
  return changed;
}"""


def screenshot_changed(browser, old: bytes, new: bytes, tolerance: int = 8, max_values: int = 200) -> bool:
    """More than ``max_values`` channel values differ by more than ``tolerance`` levels."""
    import base64

    page = browser.new_page()
    try:
        changed = page.evaluate(COMPARE_JS, [base64.b64encode(old).decode(), base64.b64encode(new).decode(), tolerance])
    finally:
        page.close()
    return changed > max_values
