"""Highlight fragments for backends that have no highlighter of their own (the database)."""

from __future__ import annotations

import html

from chatsys.search.query import fold, matcher

FRAGMENT = 150  # characters of body around the first match


def fragment(body: str, words: tuple[str, ...]) -> str:
    """An HTML-escaped piece of ``body`` with every match wrapped in ``<em>…</em>``.

    Matching runs on the folded body (no case, no accents), and the spans are mapped back to the
    original characters, so "cafe" marks "Café".
    """
    pattern = matcher(words)
    spans = []
    if pattern is not None:
        if body.isascii():  # folding is lower-casing: offsets are the body's own
            spans = [match.span() for match in pattern.finditer(body.lower()) if match.end() > match.start()]
        else:
            folded, origin = fold(body)
            for match in pattern.finditer(folded):
                if match.end() > match.start():
                    spans.append((origin[match.start()], origin[match.end() - 1] + 1))
    start = 0
    if spans and spans[0][0] > FRAGMENT // 3:
        start = spans[0][0] - FRAGMENT // 3
    end = start + FRAGMENT
    out, position = [], start
    for span_start, span_end in spans:
        if span_start < position or span_start >= end:
            continue
        span_end = min(span_end, end)
        out.append(html.escape(body[position:span_start]))
        out.append(f"<em>{html.escape(body[span_start:span_end])}</em>")
        position = span_end
    out.append(html.escape(body[position:end]))
    return "".join(out)
