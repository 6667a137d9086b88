"""Requests made by the application carry its request properties, from one class built at start-up;
requests made any other way (a script's, a subrequest) still get them."""

from pyramid.request import Request
from pyramid.scripting import prepare


def made_by_router(app, path="/"):
    context = app.request_context(
        {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_NAME": "t", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    )
    request = context.begin()
    context.end()
    return request


def test_every_request_is_of_one_class_with_the_extensions_built_in(wsgi_app):
    first, second = made_by_router(wsgi_app), made_by_router(wsgi_app, "/applications")
    assert type(first) is type(second)
    for name in ("dbsession", "tm", "allocator", "search"):
        assert name in vars(type(first)), name


def test_reified_properties_are_per_request(wsgi_app):
    first, second = made_by_router(wsgi_app), made_by_router(wsgi_app)
    assert first.tm is first.tm
    assert first.dbsession is first.dbsession
    assert first.dbsession is not second.dbsession
    first.tm.abort()
    second.tm.abort()


def test_scripts_requests_get_the_properties(wsgi_app):
    for given in (None, Request.blank("/")):  # bootstrap(ini) and bootstrap(ini, request=…)
        env = prepare(request=given, registry=wsgi_app.registry)
        try:
            assert env["request"].dbsession is env["request"].dbsession
            assert env["request"].search is not None
        finally:
            env["closer"]()


def test_a_subrequest_made_with_request_blank_gets_the_properties(testapp, wsgi_app):
    """Pyramid's documented subrequest: Request.blank, then request.invoke_subrequest."""
    token = testapp.post_json("/applications", {"name": "sub"}).json["app_token"]
    parent = made_by_router(wsgi_app)
    response = parent.invoke_subrequest(Request.blank(f"/applications/{token}"), use_tweens=True)
    assert response.status_int == 200
    assert response.json["app_token"] == token
