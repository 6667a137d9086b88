"""Where the Elasticsearch backend's tests run: the in-process double, noida-db, and a real
Elasticsearch when ``CHATSYS_ELASTICSEARCH_URL`` is set (the docker-compose test profile).

A test that takes the ``es_target`` fixture (tests/conftest.py) runs once per target.  Each run
works under its own alias and deletes its indices afterwards, so runs can share a server.  The
runs on noida and on Elasticsearch are marked ``elasticsearch``; a known noida gap is declared
with :meth:`EsTarget.known_gap`, which makes that test a strict xfail on noida alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from chatsys.search.elasticsearch import ElasticsearchSearch
from testkit.es_double import ElasticsearchDouble
from tests.support.env import SERVER_ENV
from tests.support.noida_gaps import Gap

REAL_URL_ENV = "CHATSYS_ELASTICSEARCH_URL"
DOUBLE, NOIDA, ELASTICSEARCH = "double", "noida", "elasticsearch"


def real_url() -> str | None:
    return SERVER_ENV.get(REAL_URL_ENV) or None


def unique_alias() -> str:
    return f"chatsys-test-{uuid.uuid4().hex[:12]}"


TARGETS = [
    pytest.param(DOUBLE, id=DOUBLE),
    pytest.param(NOIDA, id=NOIDA, marks=pytest.mark.elasticsearch),
    pytest.param(
        ELASTICSEARCH,
        id=ELASTICSEARCH,
        marks=[pytest.mark.elasticsearch, pytest.mark.skipif(real_url() is None, reason=f"{REAL_URL_ENV} is not set")],
    ),
]

# For tests of what only an engine does (relevance), or only the double (injected faults):
# ``parametrize("es_target", ENGINES, indirect=True)``.
ENGINES = TARGETS[1:]
DOUBLE_ONLY = TARGETS[:1]


@dataclass(frozen=True)
class Stored:
    """A document as the search engine holds it."""

    version: int
    routing: str | None
    source: dict[str, Any]


@dataclass
class EsTarget:
    kind: str
    url: str
    client: Elasticsearch
    alias: str
    node: pytest.Item
    double: ElasticsearchDouble | None = None

    def backend(self) -> ElasticsearchSearch:
        return ElasticsearchSearch(self.client, self.alias)

    def known_gap(self, gap: Gap) -> None:
        """This test meets ``gap`` on noida: there, it must fail (strict xfail) until noida is fixed."""
        if self.kind == NOIDA:
            self.node.add_marker(pytest.mark.xfail(strict=True, reason=f"noida gap: {gap.reason}"))

    def refresh(self) -> None:
        """Make what was indexed searchable (the backend never forces refreshes itself)."""
        self.client.indices.refresh(index=self.alias)

    def stored(self, doc_id: str, routing: str) -> Stored | None:
        """The live document, by a realtime GET."""
        response = self.client.options(ignore_status=404).get(index=self.alias, id=doc_id, routing=routing)
        if not response.body.get("found"):
            return None
        return Stored(response["_version"], response.body.get("_routing"), response["_source"])

    def indexed(self) -> dict[str, tuple[int, str]]:
        """doc id → (version, body) of every document behind the alias."""
        if self.double is not None:  # realtime, without the refresh a search needs
            return {k: (d.version, d.source["body"]) for k, d in self.double.documents(self.alias).items()}
        client = self.client.options(ignore_status=404)
        if not client.indices.exists_alias(name=self.alias):
            return {}
        self.refresh()
        hits = client.search(index=self.alias, size=10_000, version=True, query={"match_all": {}})["hits"]["hits"]
        return {hit["_id"]: (hit["_version"], hit["_source"]["body"]) for hit in hits}

    def index_names(self) -> list[str]:
        """The physical indices of this test (named after its alias)."""
        client = self.client.options(ignore_status=404)
        return sorted(client.indices.get(index=f"{self.alias}*", expand_wildcards="all").body)

    def delete_indices(self) -> None:
        """Delete every index of this test (a server is shared; the double is discarded)."""
        for name in self.index_names():
            self.client.options(ignore_status=404).indices.delete(index=name)


def make_target(kind: str, request: pytest.FixtureRequest) -> EsTarget:
    """A target of ``kind`` for one test: the double of the test, or a client of the shared server."""
    if kind == DOUBLE:
        double = request.getfixturevalue("es_double")
        client = Elasticsearch(double.url, request_timeout=5, max_retries=0)
        return EsTarget(kind, double.url, client, unique_alias(), request.node, double)
    url = request.getfixturevalue("noida").url if kind == NOIDA else real_url()
    return EsTarget(kind, url, Elasticsearch(url, request_timeout=30), unique_alias(), request.node)
