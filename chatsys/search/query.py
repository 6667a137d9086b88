"""Search semantics shared by every backend, defined by what the Elasticsearch index does.

``q`` is trimmed and must be 1 to 256 characters.  It is split into *words*: runs of word
characters, which are letters (Unicode categories L*), decimal digits (Nd) and ``_`` — the
``letter``, ``digit`` and ``custom: _`` token characters of the index's word-prefix tokenizer.
Everything else separates words: spaces, punctuation, marks, and numbers that are not decimal
digits (``½``, ``²``, ``Ⅻ``), although Python's ``\\w`` counts those.

Text *folds* as the index's ``lowercase`` + ``asciifolding`` filters fold it, one character at a
time: lower case (the simple, one-character mapping, as Java's), then the ASCII letters that
Lucene's ASCII folding gives (:func:`fold_char`: ``é`` → ``e``, ``ø`` → ``o``, ``æ`` → ``ae``,
``ß`` → ``ss``, ``²`` → ``2``, full-width ``Ａ`` → ``a``).

A message matches when every word matches its body:

* a word of 1 or 2 characters matches the *start of a word* of the body: some prefix of a body
  word folds to what the query word folds to (the ``body.prefix`` edge n-grams);
* a longer word matches *anywhere*, across word boundaries too: its 3-character windows, folded,
  equal the folded 3-character windows of the body at consecutive positions (``body.trigram``).
  When every character folds to one character, that is: the word occurs in the body with each
  character compared folded.

A query with no words (only punctuation) matches nothing.  :func:`matches_all` and
:func:`occurrences` implement these rules in Python; the database backend and the highlighter
use them, and the Elasticsearch test double analyses text with them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left
from itertools import accumulate

MAX_QUERY_LENGTH = 256
MIN_SUBSTRING = 3  # shorter words match word starts only (the trigram subfield needs 3)
MAX_WORDS = 16
MAX_PREFIX = 20  # the longest word prefix the index holds (edge n-grams of 1 to 20 characters)

# Letters that ASCII folding maps although Unicode gives them no decomposition.
_FOLD_SPECIAL = {
    "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "ł": "l", "þ": "th",
    "ı": "i", "ħ": "h", "ŀ": "l", "ŧ": "t", "ŋ": "n", "ĸ": "q", "ſ": "s", "ĳ": "ij", "ŉ": "n",
}  # fmt: skip
# Blocks whose compatibility decompositions ASCII folding follows: superscript and subscript
# digits, enclosed alphanumerics, the Latin ligatures, full-width forms.
_COMPATIBLE = ((0xB2, 0xB3), (0xB9, 0xB9), (0x2070, 0x209F), (0x2460, 0x24FF), (0xFB00, 0xFB06), (0xFF00, 0xFFEF))
_LATIN_WITH = re.compile(r"LATIN SMALL LETTER ([A-Z]) WITH ")
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")
_ANY_WORD = re.compile(r"\w+")  # a superset of word characters: \w also takes ½, ², Ⅻ


def is_word_char(char: str) -> bool:
    """Whether ``char`` belongs to a word: a letter, a decimal digit or ``_``."""
    return char.isalpha() or char.isdecimal() or char == "_"


def lower_char(char: str) -> str:
    """One character in lower case, one character out (Java's mapping: "İ" → "i")."""
    lowered = char.lower()
    return lowered if len(lowered) == 1 else lowered[0]


def _strip_marks(text: str) -> str:
    return "".join(c for c in text if not unicodedata.combining(c))


@functools.lru_cache(maxsize=8192)
def fold_char(char: str) -> str:
    """One character as the index folds it: lower case, then ASCII folding.

    An approximation of Lucene's ASCIIFoldingFilter table, from Unicode data: canonical
    decompositions without their marks, compatibility ones in the blocks of :data:`_COMPATIBLE`,
    "LATIN SMALL LETTER X WITH …" letters, and :data:`_FOLD_SPECIAL`.  It differs from Lucene
    on rare letters (IPA, small capitals, Latin Extended-D) and on punctuation, which no query
    word can contain.
    """
    if char < "\x80":
        return char.lower()
    char = lower_char(char)
    special = _FOLD_SPECIAL.get(char)
    if special is not None:
        return special
    stripped = _strip_marks(unicodedata.normalize("NFD", char))
    if stripped and stripped.isascii():
        return stripped
    code = ord(char)
    if any(low <= code <= high for low, high in _COMPATIBLE):
        stripped = _strip_marks(unicodedata.normalize("NFKD", char))
        if stripped and stripped.isascii():
            return stripped
    match = _LATIN_WITH.match(unicodedata.name(char, ""))
    return match.group(1).lower() if match else char


def fold_text(text: str) -> str:
    """``text`` folded character by character."""
    if text.isascii():
        return text.lower()
    return "".join(map(fold_char, text))


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every word of ``text``."""
    if text.isascii():
        return [m.span() for m in _ASCII_WORD.finditer(text)]
    spans = []
    for match in _ANY_WORD.finditer(text):
        run = match.group()
        if run.isalpha() or run.isdecimal():  # the common case, checked in C
            spans.append(match.span())
            continue
        start = None
        for index in range(match.start(), match.end()):
            if is_word_char(text[index]):
                if start is None:
                    start = index
            elif start is not None:
                spans.append((start, index))
                start = None
        if start is not None:
            spans.append((start, match.end()))
    return spans


def words(text: str) -> tuple[str, ...]:
    """The distinct words of a query, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    lowered = text.lower() if text.isascii() else "".join(map(lower_char, text))
    for start, end in word_spans(lowered):
        seen.setdefault(lowered[start:end], None)
    return tuple(seen)[:MAX_WORDS]


def occurrences(body: str, word: str) -> list[tuple[int, int]]:
    """(start, end) in ``body`` of every place where the query ``word`` matches, in order: the
    body word's prefix for a short word, the substring for a longer one."""
    if body.isascii() and word.isascii():
        lowered, target = body.lower(), word.lower()
        if len(word) >= MIN_SUBSTRING:
            return [(at, at + len(target)) for at in _find_all(lowered, target)]
        return [
            (start, start + len(target))
            for start, end in word_spans(lowered)
            if end - start >= len(target) and lowered.startswith(target, start)
        ]
    return _occurrences(fold_units(body), body, word)


def matches_all(body: str, query_words: tuple[str, ...]) -> bool:
    """Whether ``body`` matches every word (the reference semantics, in Python)."""
    if body.isascii():
        lowered = body.lower()
        spans = None
        for word in query_words:
            if not word.isascii():
                break
            if len(word) >= MIN_SUBSTRING:
                if word.lower() not in lowered:
                    return False
                continue
            if spans is None:
                spans = word_spans(lowered)
            target = word.lower()
            if not any(end - start >= len(target) and lowered.startswith(target, start) for start, end in spans):
                return False
        else:
            return True
    folded = fold_units(body)
    return all(_occurrences(folded, body, word) for word in query_words)


def fold_units(text: str) -> list[str]:
    """Each character of ``text`` folded (:func:`fold_char`), looked up once per distinct
    character: a 10,000-character body has a few dozen."""
    table = {char: fold_char(char) for char in set(text)}
    return list(map(table.__getitem__, text))


def _find_all(text: str, target: str) -> list[int]:
    found, at = [], text.find(target)
    while at >= 0:
        found.append(at)
        at = text.find(target, at + 1)
    return found


def _occurrences(folded_body: list[str], body: str, word: str) -> list[tuple[int, int]]:
    folded_word = [fold_char(c) for c in word]
    if len(word) >= MIN_SUBSTRING:
        return _substrings(folded_body, folded_word)
    # A body word matches when its first units, folded, spell the target exactly (whole units,
    # at most MAX_PREFIX of them): compared in the joined folded body, unit k at starts[k].
    target = "".join(folded_word)
    joined = "".join(folded_body)
    starts = [0, *accumulate(map(len, folded_body))]
    found = []
    for start, end in word_spans(body):
        at = starts[start]
        if not joined.startswith(target, at):
            continue
        stop = bisect_left(starts, at + len(target))  # the unit where the spelled prefix ends
        if starts[stop] == at + len(target) and stop <= min(end, start + MAX_PREFIX):
            found.append((start, stop))
    return found


def _substrings(body: list[str], word: list[str]) -> list[tuple[int, int]]:
    """Where the word's folded 3-character windows equal the body's at consecutive positions."""
    joined = "".join(body)
    if len(joined) == len(body) and all(len(f) == 1 for f in word):
        return [(at, at + len(word)) for at in _find_all(joined, "".join(word))]
    # Gram k of the body is joined[starts[k]:starts[k + 3]]: the first word gram is found by
    # str.find, at unit starts only, and the rest compared there (linear, not per position).
    starts = [0, *accumulate(map(len, body))]
    word_grams = ["".join(word[i : i + MIN_SUBSTRING]) for i in range(len(word) - MIN_SUBSTRING + 1)]
    last = len(body) - len(word)
    found = []
    for at in _find_all(joined, word_grams[0]):
        k = bisect_left(starts, at)
        if k > last or starts[k] != at:
            continue
        if all(joined[starts[k + i] : starts[k + i + MIN_SUBSTRING]] == gram for i, gram in enumerate(word_grams)):
            found.append((k, k + len(word)))
    return found
