"""/demo is served by the web: the page with this deployment's stream URL, its static files with
long caching under content-derived URLs, and a policy that lets the page run its own code only.
(The page itself is tested in chromium: tests/browser/.)"""

from __future__ import annotations

import re

from chatsys.web.views.demo import ASSETS
from tests.conftest import make_app
from tests.support.webapp import CheckedTestApp


def events_meta(page: str) -> str:
    return re.search(r'<meta name="chatsys-events-url" content="([^"]*)">', page).group(1)


def test_the_page_and_its_files_are_served(testapp):
    page = testapp.get("/demo")
    assert page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-cache"
    assert events_meta(page.text) == ""  # no stream configured: the page polls
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self';" in csp and "form-action 'none'" in csp
    assert "unsafe-inline" not in csp
    for name in ASSETS:
        path = re.search(rf'"(/demo/static/{re.escape(name)}\?v=[0-9a-f]{{16}})"', page.text).group(1)
        asset = testapp.get(path)
        assert asset.headers["Cache-Control"].startswith("max-age=")
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert testapp.get("/demo/static/demo.js").content_type in ("text/javascript", "application/javascript")
    assert testapp.head("/demo").status_int == 200


def test_nothing_but_the_demo_files_is_reachable_under_it(testapp):
    for path in ("/demo/static/missing.js", "/demo/static/../views/demo.py", "/demo/static/%2e%2e/openapi.yaml"):
        assert testapp.get(path, status=404).json["error"]["code"] == "not_found"
    testapp.post("/demo", status=405)


def test_the_stream_url_is_given_to_the_page_and_allowed_by_its_policy(settings, clean):
    app = CheckedTestApp(make_app(settings, **{"chatsys.demo_events_url": "https://stream.example:8443/"}))
    page = app.get("/demo")
    assert events_meta(page.text) == "https://stream.example:8443"
    assert "connect-src 'self' https://stream.example:8443;" in page.headers["Content-Security-Policy"]

    same_origin = CheckedTestApp(make_app(settings, **{"chatsys.demo_events_url": "/"})).get("/demo")
    assert events_meta(same_origin.text) == "/"
    assert "connect-src 'self';" in same_origin.headers["Content-Security-Policy"]


def test_the_page_never_parses_text_as_html():
    """Everything from the service reaches the page as text (search highlights included, split on
    their <em> tags in demo.js); no API of the DOM that parses a string as HTML is called."""
    from importlib import resources

    script = resources.files("chatsys.web").joinpath("demo", "demo.js").read_text()
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
