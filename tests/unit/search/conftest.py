"""Fixtures of the search tests.

``es_double`` (tests/conftest.py) is a running Elasticsearch test double; ``es_client`` the real
client talking to it.  ``es_target`` (tests/conftest.py) runs a test on the double, on noida-db
and, when ``CHATSYS_ELASTICSEARCH_URL`` is set, on a real Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from testkit.es_double import ElasticsearchDouble


@pytest.fixture
def es_client(es_double: ElasticsearchDouble) -> Iterator[Elasticsearch]:
    """The real client, talking to the double; no retries, so that faults show at once."""
    client = Elasticsearch(es_double.url, request_timeout=5, max_retries=0)
    yield client
    client.close()
