"""Searching the messages of one chat, for both API surfaces: the query's checks, the backend
call and what its failures mean to a client."""

from __future__ import annotations

import logging

from chatsys.domain.chats import ChatRef
from chatsys.search.database import DatabaseSearch
from chatsys.search.interfaces import (
    ChatScope,
    InvalidCursor,
    ISearch,
    SearchHit,
    SearchPage,
    SearchRequest,
    SearchUnavailable,
)
from chatsys.search.query import MAX_QUERY_LENGTH, words
from chatsys.web.errors import ServiceUnavailable, ValidationFailed

log = logging.getLogger(__name__)

MAX_CURSOR = 512


def request_search(request) -> ISearch:
    """``request.search``: the configured backend; the database one searches through the
    request's own session (one connection per request)."""
    backend = request.services.search
    return backend.with_session(request.dbsession) if isinstance(backend, DatabaseSearch) else backend


def includeme(config) -> None:
    backend = config.registry["services"].search
    try:
        backend.ensure_index()  # created at start if missing (the indexer does the same)
    except SearchUnavailable as exc:
        log.warning("search index not ensured at start: %s", exc)
    config.add_request_method(request_search, "search", reify=True)


def search_text(raw: str | None) -> str:
    """``q``, trimmed; 422 unless it holds 1 to 256 characters and no NUL."""
    if raw is None:
        raise ValidationFailed.for_field("q", "is required")
    text = raw.strip()
    if not text:
        raise ValidationFailed.for_field("q", "must not be empty")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValidationFailed.for_field("q", f"must be at most {MAX_QUERY_LENGTH} characters")
    if "\x00" in text:
        raise ValidationFailed.for_field("q", "must not contain a NUL character")
    return text


def search_chat(request, chat: ChatRef, text: str, limit: int, sort: str, cursor: str | None = None) -> SearchPage:
    if cursor is not None and not 1 <= len(cursor) <= MAX_CURSOR:
        raise ValidationFailed.for_field("cursor", f"must be 1 to {MAX_CURSOR} characters")
    query = SearchRequest(
        chat=ChatScope(chat.application.token, chat.number, chat.id),
        text=text,
        words=words(text),
        limit=limit,
        cursor=cursor,
        sort=sort,
    )
    try:
        return request.search.search(query)
    except InvalidCursor as exc:
        raise ValidationFailed.for_field("cursor", str(exc)) from None
    except SearchUnavailable:
        raise ServiceUnavailable("Search is unavailable; retry later.") from None


def hit_representation(hit: SearchHit) -> dict:
    """A hit as /v1 shows it: the message's representation and its highlighted fragment."""
    return {**hit.message, "highlight": hit.highlight}
