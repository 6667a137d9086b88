"""Highlight fragments for backends that have no highlighter of their own (the database)."""

from __future__ import annotations

import html
import re

from chatsys.search.query import MIN_SUBSTRING

FRAGMENT = 150  # characters of body around the first match


def matcher(words: tuple[str, ...]) -> re.Pattern | None:
    """A pattern finding each word where the search semantics say it matches."""
    parts = []
    for word in sorted(words, key=len, reverse=True):
        escaped = re.escape(word)
        parts.append(escaped if len(word) >= MIN_SUBSTRING else rf"(?<!\w){escaped}")
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def fragment(body: str, words: tuple[str, ...]) -> str:
    """An HTML-escaped piece of ``body`` with every match wrapped in ``<em>…</em>``."""
    pattern = matcher(words)
    first = pattern.search(body) if pattern else None
    start = 0
    if first is not None and first.start() > FRAGMENT // 3:
        start = first.start() - FRAGMENT // 3
    piece = body[start : start + FRAGMENT]
    out, last = [], 0
    if pattern is not None:
        for match in pattern.finditer(piece):
            out.append(html.escape(piece[last : match.start()]))
            out.append(f"<em>{html.escape(match.group())}</em>")
            last = match.end()
    out.append(html.escape(piece[last:]))
    return "".join(out)
