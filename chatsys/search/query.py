"""Search semantics shared by every backend.

``q`` is trimmed and must be 1 to 256 characters.  It is split into words — runs of ``\\w``
(letters, digits, underscore; so "don't" is two words) — and lower-cased.  A message matches when
every word occurs in its body, ignoring case and accents, as the start of a word, or — for words
of 3 or more characters — anywhere inside a word.  A query with no words (only punctuation)
matches nothing.
"""

from __future__ import annotations

import functools
import re
import unicodedata

MAX_QUERY_LENGTH = 256
MIN_SUBSTRING = 3  # shorter words match word starts only (the trigram subfield needs 3)
MAX_WORDS = 16

_WORD = re.compile(r"\w+")


def words(text: str) -> tuple[str, ...]:
    """The distinct words of a query, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        seen.setdefault(word, None)
    return tuple(seen)[:MAX_WORDS]


def fold_char(char: str) -> str:
    """One character lower-cased with its accents removed ("É" → "e"), as the index folds it."""
    decomposed = unicodedata.normalize("NFKD", char.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold_text(text: str) -> str:
    """``text`` folded (lower case, no accents), at C speed: for matching, not for offsets."""
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.lower()))


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` folded, and for each folded character the index of the original it came from."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = fold_char(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), origin


@functools.lru_cache(maxsize=1024)
def matcher(query_words: tuple[str, ...]) -> re.Pattern | None:
    """A pattern over *folded* text that finds each word where the semantics say it matches."""
    parts = []
    for word in sorted({fold(w)[0] for w in query_words}, key=len, reverse=True):
        escaped = re.escape(word)
        parts.append(escaped if len(word) >= MIN_SUBSTRING else rf"(?<!\w){escaped}")
    return re.compile("|".join(parts)) if parts else None


def matches_all(body: str, query_words: tuple[str, ...]) -> bool:
    """Whether ``body`` matches every word (the reference semantics, in Python)."""
    folded = fold_text(body)
    for word in query_words:
        w = fold_text(word)
        found = (w in folded) if len(w) >= MIN_SUBSTRING else re.search(rf"(?<!\w){re.escape(w)}", folded)
        if not found:
            return False
    return True
