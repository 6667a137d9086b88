"""Highlight fragments as Elasticsearch's unified highlighter builds them, for the backends that
have no highlighter of their own (the database; the Elasticsearch test double uses it too).

Elasticsearch highlights each subfield on its own (``body.prefix`` for the short query words,
``body.trigram`` for the longer ones) with ``number_of_fragments: 1`` and ``fragment_size: 150``:

* passages are sentences (``BoundedBreakIteratorScanner``): a passage starts at the start of the
  sentence that holds its first match and takes the following sentences while the whole stays
  within 150 characters; a sentence longer than that is cut at word boundaries, to about 150
  characters that end at the word holding the match (or start with the sentence when the match
  is near its start);
* each passage is scored (Lucene's ``PassageScorer``: term weight × a length-normalised term
  frequency × a bonus for passages near the start) and the best one is kept, the later one on a
  tie;
* the passage is HTML-encoded (``& < > " ' /``), its matches wrapped in ``<em>…</em>`` and the
  result trimmed.

Lengths and offsets count UTF-16 units, as Java does (an emoji counts 2).  Two approximations:
the sentence and word boundaries follow the JDK's rules for the common cases only (see
:func:`sentence_boundaries`), and a passage's terms are the query words (Elasticsearch scores the
trigrams of a long word one by one, which only matters when passages hold different words).

:func:`merge` makes the one fragment the API shows out of the subfields' fragments.
"""

from __future__ import annotations

import functools
import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from chatsys.search.query import MIN_SUBSTRING, occurrences

FRAGMENT = 150  # fragment_size: UTF-16 units of body in a fragment
PRE_TAG, POST_TAG = "<em>", "</em>"

_ENCODE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "/": "&#x2F;"})
_DECODE = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#x2F;": "/"}
_ENTITY = re.compile("|".join(map(re.escape, _DECODE)))
_TAG = re.compile(f"({re.escape(PRE_TAG)}|{re.escape(POST_TAG)})")
_JAVA_SPACE = "".join(map(chr, range(33)))  # what Java's String.trim() removes

# Sentence ends (the JDK's rules, simplified): terminators, closing punctuation, spaces.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f\uff0e\u203c\u2047-\u2049]+[\"')\]}\u00bb\u2019\u201d]*\s*")
_STERM = re.compile(r"[!?\u3002\uff01\uff1f\u203c\u2047-\u2049]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # two UTF-16 units each
_WORD_SEGMENT = re.compile(r"\w+(?:['.\u2019:-]\w+)*|\s+|.", re.DOTALL)

# Lucene's PassageScorer defaults.
_K1, _B, _PIVOT = 1.2, 0.75, 87.0


def encode(text: str) -> str:
    """Lucene's SimpleHTMLEncoder, as Elasticsearch's ``encoder: html``."""
    return text.translate(_ENCODE)


def sentence_boundaries(text: str) -> list[int]:
    """Offsets where the JDK's sentence iterator breaks ``text``, 0 and ``len(text)`` included.

    A sentence ends after ``.``, ``!`` or ``?`` (and closing quotes or brackets) with the spaces
    that follow.  After ``!`` or ``?`` it always ends; after ``.`` only if what follows is not a
    lower-case letter or a digit ("e.g. this", "3.14"), and without a space only before
    something that is neither letter nor digit.  Line breaks alone do not end a sentence.
    """
    boundaries = [0]
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end >= len(text) or end == 0:
            continue
        following = text[end]
        if not _STERM.search(match.group()):
            if end == match.start() + len(match.group().rstrip()):  # no space after the dot
                if following.isalnum():
                    continue
            elif following.islower() or following.isdigit():
                continue
        boundaries.append(end)
    boundaries.append(len(text))
    return boundaries


def word_boundaries(text: str) -> list[int]:
    """Offsets where the JDK's word iterator breaks ``text`` (words keep inner ``' . : -``)."""
    return list(accumulate(map(len, _WORD_SEGMENT.findall(text)), initial=0))


class _Units:
    """Code point offsets of a text to and from UTF-16 offsets."""

    def __init__(self, text: str) -> None:
        self.wide = [match.start() for match in _ASTRAL.finditer(text)]
        self.length = self.to16(len(text))

    def to16(self, offset: int) -> int:
        return offset + bisect_left(self.wide, offset) if self.wide else offset

    def from16(self, offset: int) -> int:
        if not self.wide:
            return offset
        low, high = 0, offset
        while low < high:  # the smallest code point offset whose UTF-16 offset reaches offset
            middle = (low + high) // 2
            if self.to16(middle) < offset:
                low = middle + 1
            else:
                high = middle
        return low


class _Breaks:
    """A java.text.BreakIterator over sorted UTF-16 boundaries, found when first needed: ``None``
    is DONE."""

    def __init__(self, find: Callable[[str], list[int]], text: str, units: _Units) -> None:
        self.find, self.text, self.units = find, text, units

    @functools.cached_property
    def boundaries(self) -> list[int]:
        found = self.find(self.text)
        return [self.units.to16(b) for b in found] if self.units.wide else found

    def preceding(self, offset: int) -> int | None:
        index = bisect_left(self.boundaries, offset)
        return self.boundaries[index - 1] if index > 0 else None

    def following(self, offset: int) -> int | None:
        index = bisect_right(self.boundaries, offset)
        return self.boundaries[index] if index < len(self.boundaries) else None


class _BoundedScanner:
    """Elasticsearch's BoundedBreakIteratorScanner: sentences, bounded to ``size`` by words."""

    def __init__(self, sentences: _Breaks, words: _Breaks, size: int) -> None:
        self.sentences, self.words, self.size = sentences, words, size
        self.window_start = self.window_end = self.inner_start = -1
        self.inner_end = 0

    def preceding(self, offset: int) -> int:
        if self.window_start < offset < self.window_end:
            self.inner_start, self.inner_end = self.inner_end, self.window_end
        else:
            self.window_start = self.inner_start = self.sentences.preceding(offset)
            self.window_end = self.inner_end = self.sentences.following(offset - 1)
            while self.inner_end - self.inner_start < self.size:
                new_end = self.sentences.following(self.inner_end)
                if new_end is None or new_end - self.inner_start > self.size:
                    break
                self.window_end = self.inner_end = new_end
        if self.inner_end - self.inner_start > self.size:
            if offset - self.size > self.inner_start:
                self.inner_start = max(self.inner_start, self.words.preceding(offset - self.size) or 0)
            remaining = max(0, self.size - (offset - self.inner_start))
            if offset + remaining < self.window_end:
                following = self.words.following(offset + remaining)
                self.inner_end = min(self.window_end, self.window_end if following is None else following)
        return self.inner_start

    def following(self, offset: int) -> int:
        return self.inner_end


@dataclass
class _Passage:
    start: int
    end: int
    matches: list[tuple[int, int, str]] = field(default_factory=list)
    score: float = 0.0


def best_fragment(text: str, matches: Sequence[tuple[int, int, str]], size: int = FRAGMENT) -> str | None:
    """The highlighted fragment of ``text`` that Elasticsearch's unified highlighter returns for
    one field, given the field's matches as (start, end, term) in code point offsets."""
    if not matches:
        return None
    if _utf16_length(text) <= size:
        # The whole text fits: one passage, from the sentence of the first match to the end.
        first = min(start for start, _, _ in matches)
        return _render_passage(text, _sentence_start(text, first), len(text), matches)
    units = _Units(text)
    length = units.length
    scanner = _BoundedScanner(_Breaks(sentence_boundaries, text, units), _Breaks(word_boundaries, text, units), size)
    in_doc = Counter(term for _, _, term in matches)
    passages: list[_Passage] = []
    passage: _Passage | None = None
    for start, end, term in sorted((units.to16(s), units.to16(e), t) for s, e, t in matches):
        if start < length < end:
            continue
        if passage is None or start >= passage.end:
            if start >= length:
                break
            passage = _Passage(max(scanner.preceding(start + 1), 0), min(scanner.following(start), length))
            passages.append(passage)
        passage.matches.append((start, end, term))
    for candidate in passages:
        candidate.score = _score(candidate, length, in_doc)
    best = max(passages, key=lambda p: (p.score, p.start))
    spans = [(units.from16(s), units.from16(e), t) for s, e, t in best.matches]
    return _render_passage(text, units.from16(best.start), units.from16(best.end), spans)


def _utf16_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _sentence_start(text: str, offset: int) -> int:
    """The start of the sentence holding ``offset``."""
    start = 0
    for boundary in sentence_boundaries(text):
        if boundary > offset:
            break
        start = boundary
    return start


def _score(passage: _Passage, length: int, in_doc: Counter) -> float:
    in_passage = Counter(term for _, _, term in passage.matches)
    passage_length = passage.end - passage.start
    documents = 1 + length / _PIVOT
    score = 0.0
    for term, freq in in_passage.items():
        weight = (_K1 + 1) * math.log(1 + (documents + 0.5) / (in_doc[term] + 0.5))
        norm = _K1 * ((1 - _B) + _B * (passage_length / _PIVOT))
        score += freq / (freq + norm) * weight
    return score * (1 + 1 / math.log(_PIVOT + passage.start))


def _render_passage(text: str, start: int, end: int, matches: Sequence[tuple[int, int, str]]) -> str:
    """The passage [start, end) encoded, its matches marked (overlapping ones as one), trimmed."""
    out: list[str] = []
    position = start
    spans = sorted((s, e) for s, e, _ in matches if start <= s < end)
    index = 0
    while index < len(spans):
        span_start, span_end = spans[index]
        while index + 1 < len(spans) and spans[index + 1][0] < span_end:
            index += 1
            span_end = spans[index][1]  # Elasticsearch takes the later match's end
        span_end = min(span_end, end)
        out += [encode(text[position:span_start]), PRE_TAG, encode(text[span_start:span_end]), POST_TAG]
        position = span_end
        index += 1
    out.append(encode(text[position : max(position, end)]))
    return "".join(out).strip(_JAVA_SPACE)


def field_matches(body: str, words: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, word) of every match of ``words`` in ``body``."""
    return [(start, end, word) for word in words for start, end in occurrences(body, word)]


def fragment(body: str, words: tuple[str, ...]) -> str:
    """The fragment the Elasticsearch backend shows for ``body`` and the query ``words``: one
    per subfield (short words, long words), merged by :func:`merge`."""
    fragments = [
        best_fragment(body, field_matches(body, group))
        for group in (
            [w for w in words if len(w) < MIN_SUBSTRING],
            [w for w in words if len(w) >= MIN_SUBSTRING],
        )
        if group
    ]
    fragments = [f for f in fragments if f is not None]
    if len(fragments) == 1:
        return fragments[0]
    return merge(fragments) or encode(body[:FRAGMENT])


def merge(fragments: Sequence[str]) -> str | None:
    """One fragment out of the fragments of both subfields.

    Each subfield's passage starts at the sentence of *its* first match, so the two may show
    different text ("He left. Then the world ended." for ``he wor``: ``<em>He</em> left. Then
    the world ended.`` and ``Then the <em>wor</em>ld ended.``).  When one fragment's text holds
    the other's, the other's marks are carried into it and the two are shown as one; otherwise
    the fragment with the most marked characters wins (the first on a tie).
    """
    merged: list[tuple[str, list[tuple[int, int]]]] = []
    for text, spans in sorted(map(_parse, fragments), key=lambda parsed: -len(parsed[0])):
        for held_text, held_spans in merged:
            at = held_text.find(text)
            if at >= 0:
                held_spans.extend((start + at, end + at) for start, end in spans)
                break
        else:
            merged.append((text, list(spans)))
    if not merged:
        return None
    # max() keeps the first of equals; the sort above kept equal lengths in their given order.
    text, spans = max(merged, key=lambda item: sum(end - start for start, end in _union(item[1])))
    return _render(text, _union(spans))


def _parse(fragment: str) -> tuple[str, list[tuple[int, int]]]:
    """A highlighted fragment as its plain (decoded) text and the spans between the tags."""
    text: list[str] = []
    spans: list[tuple[int, int]] = []
    position, opened = 0, None
    for piece in _TAG.split(fragment):
        if piece == PRE_TAG:
            opened = position
        elif piece == POST_TAG:
            if opened is not None:
                spans.append((opened, position))
            opened = None
        else:
            plain = _ENTITY.sub(lambda m: _DECODE[m.group()], piece)
            text.append(plain)
            position += len(plain)
    return "".join(text), spans


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _render(text: str, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    position = 0
    for start, end in spans:
        out += [encode(text[position:start]), PRE_TAG, encode(text[start:end]), POST_TAG]
        position = end
    out.append(encode(text[position:]))
    return "".join(out)
