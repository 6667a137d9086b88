"""A WebTest TestApp that validates every response against the OpenAPI document."""

from __future__ import annotations

import webtest

from tests.support.openapi import check_response


class CheckedTestApp(webtest.TestApp):
    def do_request(self, req, status=None, expect_errors=None):
        response = super().do_request(req, status=status, expect_errors=expect_errors)
        if response.status_int != 204 and req.method != "HEAD":
            check_response(req.method, req.url, response.status_int, response.content_type, response.body)
        return response
