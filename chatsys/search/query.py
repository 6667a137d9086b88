"""Search semantics shared by every backend.

``q`` is trimmed and must be 1 to 256 characters.  It is split into words at anything that is not
a letter, digit or underscore, and lower-cased.  A message matches when every word occurs in its
body, case-insensitively, as the start of a word — or, for words of 3 or more characters, anywhere
inside a word.  A query with no words (only punctuation) matches nothing.
"""

from __future__ import annotations

import re

MAX_QUERY_LENGTH = 256
MIN_SUBSTRING = 3  # shorter words match word prefixes only (the trigram subfield needs 3)
MAX_WORDS = 16

_WORD = re.compile(r"\w+")


def words(text: str) -> tuple[str, ...]:
    """The distinct words of a query, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        seen.setdefault(word, None)
    return tuple(seen)[:MAX_WORDS]
