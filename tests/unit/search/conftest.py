"""Fixtures of the search tests.

``es_double`` (from tests/conftest.py) is a running Elasticsearch test double.  ``es_target`` runs a test twice: against
the double, and against the real Elasticsearch at ``CHATSYS_ELASTICSEARCH_URL`` — that second run
is marked ``elasticsearch`` and reported as skipped when the variable is not set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from tests.support.es_double import ElasticsearchDouble
from tests.support.es_targets import REAL_URL_ENV, EsTarget, real_url, unique_alias

TARGETS = [
    pytest.param("double", id="double"),
    pytest.param(
        "elasticsearch",
        id="elasticsearch",
        marks=[
            pytest.mark.elasticsearch,
            pytest.mark.skipif(real_url() is None, reason=f"{REAL_URL_ENV} is not set"),
        ],
    ),
]


@pytest.fixture
def es_client(es_double: ElasticsearchDouble) -> Iterator[Elasticsearch]:
    """The real client, talking to the double; no retries, so that faults show at once."""
    client = Elasticsearch(es_double.url, request_timeout=5, max_retries=0)
    yield client
    client.close()


@pytest.fixture(params=TARGETS)
def es_target(request: pytest.FixtureRequest) -> Iterator[EsTarget]:
    if request.param == "double":
        double = request.getfixturevalue("es_double")
        client = Elasticsearch(double.url, request_timeout=5, max_retries=0)
        yield EsTarget(client, unique_alias(), double)
        client.close()
        return
    client = Elasticsearch(real_url(), request_timeout=30)
    target = EsTarget(client, unique_alias())
    try:
        yield target
    finally:
        target.delete_indices()
        client.close()
