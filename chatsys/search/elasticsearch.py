"""Search backend on Elasticsearch 8 (``search.backend = elasticsearch``).

Every request goes through the alias ``elasticsearch.index`` (see :mod:`chatsys.search.mapping`)
and names the chat both as routing and as a ``chat_key`` filter: routing only picks the shard,
which holds other chats too.

Writes use the message key as ``_id`` and the message version as an *external* version, so a
redelivered or reordered event can never overwrite a newer one: Elasticsearch answers 409 and
the result is :attr:`IndexOutcome.STALE`.  User text only ever reaches Elasticsearch as the
``query`` of ``match``/``match_phrase`` clauses, one word each, never inside a query string.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from zope.interface import implementer

from chatsys.domain import messages
from chatsys.runtime.redact import fingerprint, redact_key
from chatsys.search import cursor as cursors
from chatsys.search.highlight import FRAGMENT, POST_TAG, PRE_TAG, encode, merge
from chatsys.search.interfaces import (
    SORT_NEWEST,
    SORT_RELEVANCE,
    IndexOutcome,
    IndexResult,
    ISearch,
    MessageDocument,
    SearchHit,
    SearchPage,
    SearchRequest,
    SearchUnavailable,
)
from chatsys.search.mapping import MAX_PREFIX, index_body, physical_index_name
from chatsys.search.query import MIN_SUBSTRING

log = logging.getLogger(__name__)

# One retry inside the client: the indexer has its own retry policy (RETRY outcomes are
# redelivered) and the web should answer 503 quickly instead of stacking retries.
MAX_RETRIES = 1

# Relevance: a whole-word match counts most, then a match at the start of a word; a match inside
# a word only satisfies the required clause.
EXACT_WORD_BOOST = 3.0
WORD_START_BOOST = 1.5

HIGHLIGHT_SIZE = FRAGMENT
HIGHLIGHT_FIELDS = ("body.prefix", "body.trigram")

SORT_CLAUSES: dict[str, list[dict[str, Any]]] = {
    # message_number is unique within the chat, so it is the tiebreaker search_after needs.
    SORT_NEWEST: [{"message_number": {"order": "desc"}}],
    SORT_RELEVANCE: [{"_score": {"order": "desc"}}, {"message_number": {"order": "desc"}}],
}
SOURCE_FIELDS = list(messages.KEYS)  # a hit is the message's representation

# Statuses that say "not now" rather than "never": the same request may succeed later.  A missing
# index (404) is an operational problem (ensure_index has not run), not a fault of the document.
_TRANSIENT_STATUSES = frozenset({401, 403, 408, 429})
_MISSING_INDEX = "index_not_found_exception"


@implementer(ISearch)
class ElasticsearchSearch:
    """:class:`ISearch` on an Elasticsearch 8 cluster, through one alias."""

    name = "elasticsearch"

    def __init__(self, client: Elasticsearch, alias: str) -> None:
        self.client = client
        self.alias = alias

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ElasticsearchSearch:
        """Build the backend and its client from ``elasticsearch.url|index|timeout`` (parsed and
        checked by ``chatsys.runtime.settings``)."""
        client = Elasticsearch(
            str(settings["elasticsearch.url"]),
            request_timeout=settings["elasticsearch.timeout"],
            max_retries=MAX_RETRIES,
            retry_on_timeout=False,
        )
        return cls(client, settings["elasticsearch.index"])

    # -- ISearch -------------------------------------------------------------------------------

    def ensure_index(self) -> None:
        """Create a physical index with the mapping behind the alias, unless the alias exists.

        Two processes may race: both see no alias and both try to create an index that claims
        to be the alias's write index.  Elasticsearch accepts only one of them (the other create
        fails as a whole), so the loser finds the alias on its second look and is done.
        """
        try:
            if self._alias_exists():
                return
            name = physical_index_name(self.alias)
            try:
                self.client.indices.create(index=name, **index_body(self.alias))
            except ApiError as exc:
                if not self._alias_exists():
                    raise
                log.info(
                    "alias %s was created concurrently; index %s not needed (%s)",
                    self.alias,
                    name,
                    _describe_error(exc.body),
                )
                return
            log.info("created index %s behind alias %s", name, self.alias)
        except TransportError as exc:
            raise SearchUnavailable(f"elasticsearch is unreachable: {exc}") from exc

    def index(self, documents: Sequence[MessageDocument], target: str | None = None) -> list[IndexResult]:
        """Write ``documents`` in one ``_bulk`` request; one result per document, in order.

        ``target`` names a physical index instead of the alias (the reindex fills a new one).

        Raises :class:`SearchUnavailable` when the request as a whole cannot be served now
        (unreachable, timeout, 429/5xx for the request, alias missing); per-document RETRY means
        the cluster answered but refused that document for now.
        """
        if not documents:
            return []
        operations: list[dict[str, Any]] = []
        for document in documents:
            operations.append(
                {
                    "index": {
                        "_id": document.doc_id,
                        "routing": document.chat_key,
                        "version": document.version,
                        "version_type": "external",
                    }
                }
            )
            operations.append(document_source(document))
        try:
            # require_alias: with the alias missing, Elasticsearch would otherwise auto-create a
            # concrete index under the alias's name, with guessed mappings, and block the alias.
            response = self.client.bulk(index=target or self.alias, operations=operations, require_alias=target is None)
        except TransportError as exc:
            raise SearchUnavailable(f"bulk request failed: {exc}") from exc
        except ApiError as exc:
            reason = _describe_error(exc.body)
            if _outcome(exc.meta.status, _error_type(exc.body)) is IndexOutcome.RETRY:
                # The cluster refused the whole request for now: an outage, not these documents.
                raise SearchUnavailable(f"bulk request answered {exc.meta.status}: {reason}") from exc
            log.warning("bulk request of %d documents answered %s: %s", len(documents), exc.meta.status, reason)
            return [IndexResult(d.doc_id, IndexOutcome.REJECTED, redact_text(reason, d)) for d in documents]
        items = response.body.get("items") or []
        if len(items) != len(documents):
            raise SearchUnavailable(f"bulk response has {len(items)} items for {len(documents)} documents")
        results = [_item_result(document, item) for document, item in zip(documents, items, strict=True)]
        if any(r.error and r.error.startswith(_MISSING_INDEX) for r in results):
            # The alias is gone (ensure_index has not run): every write waits for it.
            raise SearchUnavailable(f"alias {self.alias!r} does not exist")
        for result in results:
            if result.outcome is IndexOutcome.REJECTED:
                log.warning("document %s rejected: %s", redact_key(result.doc_id), result.error)
        return results

    def search(self, request: SearchRequest) -> SearchPage:
        """One page of the chat's messages matching every word of ``request``."""
        search_after = cursors.decode(request, len(SORT_CLAUSES[request.sort])) if request.cursor else None
        if not request.words:
            return SearchPage(hits=[], next_cursor=None)
        body = search_body(request, search_after)
        try:
            response = self.client.search(index=self.alias, routing=request.chat.key, body=body)
        except TransportError as exc:
            raise SearchUnavailable(f"elasticsearch is unreachable: {exc}") from exc
        except ApiError as exc:
            if _outcome(exc.meta.status, _error_type(exc.body)) is IndexOutcome.RETRY:
                raise SearchUnavailable(
                    f"elasticsearch answered {exc.meta.status}: {_describe_error(exc.body)}"
                ) from exc
            raise
        raw_hits = response.body["hits"]["hits"]
        # The body asks for one hit more than the page: its presence says a next page exists.
        page = raw_hits[: request.limit]
        next_cursor = cursors.encode(request, page[-1]["sort"]) if len(raw_hits) > request.limit else None
        return SearchPage(hits=[_search_hit(raw) for raw in page], next_cursor=next_cursor)

    def check(self) -> None:
        """Raise :class:`SearchUnavailable` unless the alias exists and its index is not red."""
        try:
            if not self._alias_exists():
                raise SearchUnavailable(f"elasticsearch alias {self.alias!r} does not exist")
            health = self.client.cluster.health(index=self.alias, timeout="1s")
        except (TransportError, ApiError) as exc:
            raise SearchUnavailable(f"elasticsearch is unavailable: {exc}") from exc
        if health.body.get("status") == "red":
            raise SearchUnavailable(f"elasticsearch index behind {self.alias!r} is red")

    def _alias_exists(self) -> bool:
        return bool(self.client.indices.exists_alias(name=self.alias))


# -- documents ---------------------------------------------------------------------------------


def document_source(document: MessageDocument) -> dict[str, Any]:
    """The ``_source`` stored for one message: its search document and the chat's key."""
    return {"chat_key": document.chat_key, **document.source}


def _item_result(document: MessageDocument, item: Mapping[str, Any]) -> IndexResult:
    (result,) = item.values()  # {"index": {...}}
    status = int(result.get("status", 0))
    if 200 <= status < 300:
        return IndexResult(document.doc_id, IndexOutcome.APPLIED)
    error = result.get("error")
    outcome = _outcome(status, _error_type(error))
    # A stale version is the expected effect of a redelivery, not an error.  The error's text
    # (logged, recorded as a dead letter's reason) names the document by its id, which holds the
    # application's token: it gets the token's fingerprint instead.
    reason = None if outcome is IndexOutcome.STALE else redact_text(_describe_error(error), document)
    return IndexResult(document.doc_id, outcome, reason)


def redact_text(text: str, document: MessageDocument) -> str:
    return text.replace(document.app_token, fingerprint(document.app_token))


def _outcome(status: int, error_type: str | None) -> IndexOutcome:
    """What a failed write means for the documents it carried."""
    if 200 <= status < 300:
        return IndexOutcome.APPLIED
    if status == 409:  # version_conflict_engine_exception: this version or a newer one is there
        return IndexOutcome.STALE
    if status >= 500 or status in _TRANSIENT_STATUSES or (status == 404 and error_type == _MISSING_INDEX):
        return IndexOutcome.RETRY
    return IndexOutcome.REJECTED


def _error_type(error: Any) -> str | None:
    if isinstance(error, Mapping):
        inner = error.get("error", error)
        if isinstance(inner, Mapping):
            return inner.get("type")
    return None


def _describe_error(error: Any) -> str:
    """``type: reason`` of an Elasticsearch error object (a bulk item's or a response's)."""
    if isinstance(error, Mapping):
        inner = error.get("error", error)
        if isinstance(inner, Mapping):
            return f"{inner.get('type', 'error')}: {inner.get('reason', '')}".strip()
        return str(inner)
    return str(error)


# -- queries -----------------------------------------------------------------------------------


def search_body(request: SearchRequest, search_after: list[Any] | None = None) -> dict[str, Any]:
    """The ``_search`` body for ``request`` (the routing travels as a URL parameter)."""
    query: dict[str, Any] = {
        "filter": [
            {"term": {"chat_key": request.chat.key}},
            {"term": {"deleted": False}},
        ],
        # Scoring clauses even for sort=newest: highlighters extract terms from these reliably,
        # and Elasticsearch skips computing scores when the sort does not use them.
        "must": [_word_clause(word) for word in request.words],
    }
    if request.sort == SORT_RELEVANCE:
        query["should"] = _relevance_clauses(request.words)
    body: dict[str, Any] = {
        "query": {"bool": query},
        "sort": SORT_CLAUSES[request.sort],
        "size": request.limit + 1,
        "track_total_hits": False,
        "_source": SOURCE_FIELDS,
        "highlight": _highlight(request.words),
    }
    if search_after is not None:
        body["search_after"] = search_after
    return body


def _word_clause(word: str) -> dict[str, Any]:
    if len(word) < MIN_SUBSTRING:
        # Too short for trigrams: the word must start a word of the body.
        return {"match": {"body.prefix": {"query": word}}}
    # The word's trigrams at consecutive positions: the word occurs as a substring.
    return {"match_phrase": {"body.trigram": {"query": word}}}


def _relevance_clauses(words: Sequence[str]) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = [{"match": {"body": {"query": word, "boost": EXACT_WORD_BOOST}}} for word in words]
    clauses.extend(
        {"match": {"body.prefix": {"query": word, "boost": WORD_START_BOOST}}}
        for word in words
        if MIN_SUBSTRING <= len(word) <= MAX_PREFIX  # shorter ones are required clauses already
    )
    return clauses


def _highlight(words: Sequence[str]) -> dict[str, Any]:
    # Highlight on the subfields that matched, whose tokens carry the exact offsets of the
    # matched characters ("h<em>ell</em>o"); highlighting "body" would mark whole words only.
    fields: dict[str, Any] = {}
    if any(len(word) < MIN_SUBSTRING for word in words):
        fields["body.prefix"] = {}
    if any(len(word) >= MIN_SUBSTRING for word in words):
        fields["body.trigram"] = {}
    return {
        "type": "unified",
        "encoder": "html",
        "pre_tags": [PRE_TAG],
        "post_tags": [POST_TAG],
        "number_of_fragments": 1,
        "fragment_size": HIGHLIGHT_SIZE,
        "no_match_size": HIGHLIGHT_SIZE,
        "fields": fields,
    }


def _search_hit(raw: Mapping[str, Any]) -> SearchHit:
    source = raw["_source"]
    highlights = raw.get("highlight") or {}
    fragments = [fragment for field in HIGHLIGHT_FIELDS for fragment in highlights.get(field, ())]
    # .get: a document indexed before a field was added to messages has none until the next
    # reindex (chatsys-reindex); its hits show null there rather than fail.
    return SearchHit(
        message={key: source.get(key) for key in messages.KEYS},
        highlight=merge_highlights(fragments) or encode(source["body"][:HIGHLIGHT_SIZE]),
    )


def merge_highlights(fragments: Sequence[str]) -> str | None:
    """One fragment out of the fragments of both subfields (:func:`chatsys.search.highlight.merge`).

    A query mixing short and long words is highlighted on two subfields, and Elasticsearch
    starts each subfield's passage at the sentence of that subfield's first match: the two
    fragments may show different text.  One holding the other's text takes its marks; otherwise
    the fragment with the most marked characters is shown.
    """
    return merge(fragments)
