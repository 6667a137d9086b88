"""Where the Elasticsearch backend's tests run: the in-process double, or a real Elasticsearch.

A real server is used when ``CHATSYS_ELASTICSEARCH_URL`` is set; each test then works under its
own alias and deletes its indices afterwards, so runs can share a cluster.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from chatsys.search.elasticsearch import ElasticsearchSearch
from tests.support.env import SERVER_ENV
from tests.support.es_double import ElasticsearchDouble

REAL_URL_ENV = "CHATSYS_ELASTICSEARCH_URL"


def real_url() -> str | None:
    return SERVER_ENV.get(REAL_URL_ENV) or None


def unique_alias() -> str:
    return f"chatsys-test-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Stored:
    """A document as the search engine holds it."""

    version: int
    routing: str | None
    source: dict[str, Any]


@dataclass
class EsTarget:
    client: Elasticsearch
    alias: str
    double: ElasticsearchDouble | None = None

    def backend(self) -> ElasticsearchSearch:
        return ElasticsearchSearch(self.client, self.alias)

    def refresh(self) -> None:
        """Make what was indexed searchable (the backend never forces refreshes itself)."""
        self.client.indices.refresh(index=self.alias)

    def stored(self, doc_id: str, routing: str) -> Stored | None:
        """The live document: from the double's store, or by a realtime GET on a real server."""
        if self.double is not None:
            document = self.double.document(self.alias, doc_id)
            if document is None or document.source is None:
                return None
            return Stored(document.version, document.routing, document.source)
        response = self.client.options(ignore_status=404).get(index=self.alias, id=doc_id, routing=routing)
        if not response.body.get("found"):
            return None
        return Stored(response["_version"], response.body.get("_routing"), response["_source"])

    def delete_indices(self) -> None:
        """Delete every index of this test (a real server is shared; the double is discarded)."""
        client = self.client.options(ignore_status=404)
        names = set(client.indices.get(index=f"{self.alias}*", expand_wildcards="all").body)
        for name in sorted(names):
            client.indices.delete(index=name)
