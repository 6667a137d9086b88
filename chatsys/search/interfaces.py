"""The search service: what the web's search endpoint and the indexer consumer need from a backend.

Two implementations, chosen by ``search.backend``: ``database`` (SQL inside one chat) and
``elasticsearch``.  Both implement the same semantics (see ``chatsys.search.query``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zope.interface import Attribute, Interface

SORT_NEWEST = "newest"
SORT_RELEVANCE = "relevance"
SORTS = (SORT_NEWEST, SORT_RELEVANCE)


@dataclass(frozen=True)
class ChatScope:
    """The one chat a search is confined to."""

    app_token: str
    chat_number: int
    chat_id: int  # internal id: used by the database backend only, never sent to a client

    @property
    def key(self) -> str:
        return chat_key(self.app_token, self.chat_number)


def chat_key(app_token: str, chat_number: int) -> str:
    """Stable key of a chat outside MySQL (Elasticsearch routing and filter)."""
    return f"{app_token}:{chat_number}"


@dataclass(frozen=True)
class SearchRequest:
    chat: ChatScope
    text: str  # the query as typed, trimmed
    words: tuple[str, ...]  # chatsys.search.query.words(text)
    limit: int
    cursor: str | None = None  # opaque, from a previous SearchPage.next_cursor
    sort: str = SORT_NEWEST


@dataclass(frozen=True)
class SearchHit:
    message: dict[str, Any]  # the message's /v1 representation (chatsys.domain.messages)
    highlight: str  # HTML-escaped body fragment, matches wrapped in <em>…</em>

    @property
    def message_number(self) -> int:
        return self.message["message_number"]


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    next_cursor: str | None


@dataclass(frozen=True)
class MessageDocument:
    """What the search index holds for one message: ``chatsys.domain.messages.search_document``
    (its representation, its application's token, whether it is a tombstone)."""

    source: dict[str, Any]

    @property
    def app_token(self) -> str:
        return self.source["app_token"]

    @property
    def chat_number(self) -> int:
        return self.source["chat_number"]

    @property
    def message_number(self) -> int:
        return self.source["message_number"]

    @property
    def version(self) -> int:
        return self.source["version"]

    @property
    def body(self) -> str:
        return self.source["body"]

    @property
    def deleted(self) -> bool:
        return self.source["deleted"]

    @property
    def chat_key(self) -> str:
        return chat_key(self.app_token, self.chat_number)

    @property
    def doc_id(self) -> str:
        return f"{self.chat_key}:{self.message_number}"


class IndexOutcome(enum.Enum):
    APPLIED = "applied"  # written
    STALE = "stale"  # the index already holds this version or a newer one (409): nothing to do
    RETRY = "retry"  # transient (429, 5xx, unreachable): try the same document again later
    REJECTED = "rejected"  # permanent for this document: dead-letter it, keep the others flowing


@dataclass(frozen=True)
class IndexResult:
    doc_id: str
    outcome: IndexOutcome
    error: str | None = None


class SearchUnavailable(Exception):
    """The search backend cannot be reached (rendered as 503)."""


class InvalidCursor(ValueError):
    """A cursor that this backend did not produce (rendered as 422 on ``cursor``)."""


class ISearch(Interface):
    name = Attribute("The backend's name, as in the search.backend setting.")

    def search(request: SearchRequest) -> SearchPage:
        """Messages of ``request.chat`` matching every word; raises InvalidCursor, SearchUnavailable."""

    def index(documents: Sequence[MessageDocument]) -> list[IndexResult]:
        """Write documents with external versioning; one result per document, in order.

        Raises SearchUnavailable when nothing can be written now (an outage); RETRY results are
        documents the backend refused for now while accepting the request.
        """

    def check() -> None:
        """Raise SearchUnavailable if the backend cannot serve (used by /readyz)."""

    def ensure_index() -> None:
        """Create what the backend needs if it is missing (idempotent)."""
