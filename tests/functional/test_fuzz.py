"""Property-based fuzzing from the OpenAPI document (schemathesis) against a running web process:
no 5xx, every response as documented, and a request that fails changes nothing in MySQL."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import text

from chatsys.web.openapi import load_spec
from tests.support.db import TABLES
from tests.support.stack import start_stack

schema = schemathesis.openapi.from_dict(load_spec())

EXAMPLES = 25  # per operation: a bounded run for CI; raise it locally to dig deeper


@pytest.fixture(scope="module")
def web(settings, tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("fuzz"), settings, pipeline=False, probe="/healthz", timeout=2)
    yield stack.base
    stack.procs.stop_all()


def snapshot(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_documented_api(case, web, engine):
    before = snapshot(engine)
    response = case.call(base_url=web)
    case.validate_response(response)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert snapshot(engine) == before, f"{case.method} {case.formatted_path} failed yet changed MySQL"
