"""The database search backend: SQL within one chat, newest first, with the semantics of the
Elasticsearch index (:mod:`chatsys.search.query`).

SQL finds candidates and Python decides.  Every word narrows the rows with ``body REGEXP`` on a
pattern made from the folding rules (:func:`pattern`): each character of the folded word may be
any character that folds to it (``o`` also matches ``ø``, ``ae`` also ``æ``), and a word of 1 or
2 characters must follow a character that is not a word character.  The column's collation makes
the match case-insensitive too.  The patterns accept at least every body the semantics accept
(the collation's own equivalences, ``LIKE``'s, do not: ``ø`` is not ``o`` to it), and
:func:`chatsys.search.query.matches_all` then checks each candidate.  REGEXP is also faster than
``LIKE`` under ``utf8mb4_unicode_ci`` (measured on 100,000 rows: 47 against 79 ms).

The first page's rows usually all pass the check: then one statement, reading the shown
columns, answers.  When one does not (a short word inside a word, an accent the check refuses),
the rows are scanned in chunks of number and body only, which start at a few pages' worth and
grow, and the shown columns are read for the hits alone.  The scan is confined to one chat by the
(chat_id, number) index.  There is no relevance score: ``sort=relevance`` gives newest first too.

Each request examines at most ``search.database_max_scan`` messages: the statements are confined
to a window of that many numbers below where the page starts (the chat's newest number on the
first page), so their cost is bounded by the (chat_id, number) index whatever the chat's size.
When the window holds fewer hits than the page asks for and older messages lie below it, the page
comes back short, even empty, with a cursor that goes on below the window.  Every statement also
runs under ``search.database_time_limit`` (MariaDB's ``max_statement_time``, MySQL's
``max_execution_time``): one that takes longer fails as MySQL being busy, a 503.

The statements are built once per number of words (:func:`statements`), with every value a bound
parameter: building a select per search and walking it for SQLAlchemy's cache key cost more CPU
than reading and highlighting a page of hits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from zope.interface import implementer

from chatsys.domain import messages
from chatsys.domain.messages import COLUMNS, MESSAGES
from chatsys.search import cursor as cursors
from chatsys.search.highlight import fragment
from chatsys.search.interfaces import (
    IndexOutcome,
    IndexResult,
    ISearch,
    MessageDocument,
    SearchHit,
    SearchPage,
    SearchRequest,
)
from chatsys.search.query import MAX_WORDS, MIN_SUBSTRING, fold_char, fold_text, matches_all

# Candidate rows per query when rows need checking in Python: the first chunk is FIRST_CHUNK
# pages' worth, each next one GROWTH times larger, up to MAX_CHUNK.
FIRST_CHUNK = 4
GROWTH = 4
MAX_CHUNK = 2000
DEFAULT_MAX_SCAN = 20_000
DEFAULT_TIME_LIMIT = 2.0
NEWEST_FIRST = MESSAGES.c.number.desc()
SHOWN_BY_NUMBERS = (
    select(*COLUMNS)
    .where(
        MESSAGES.c.chat_id == bindparam("chat_id"),
        MESSAGES.c.number.in_(bindparam("numbers", expanding=True)),
        MESSAGES.c.deleted_at.is_(None),
    )
    .order_by(NEWEST_FIRST)
)
NEWEST_NUMBER = select(func.max(MESSAGES.c.number)).where(MESSAGES.c.chat_id == bindparam("chat_id"))


class Statements:
    """A chat's messages whose bodies match the patterns ``w0`` … ``w{n-1}`` (REGEXP), numbered
    from ``floor`` to below ``before``, newest first, at most ``limit``: their shown columns
    (``page``), or only number and body (``candidates``)."""

    def __init__(self, n: int):
        matching = [
            MESSAGES.c.chat_id == bindparam("chat_id"),
            MESSAGES.c.number < bindparam("before"),
            MESSAGES.c.number >= bindparam("floor"),
            MESSAGES.c.deleted_at.is_(None),
        ]
        matching += [MESSAGES.c.body.regexp_match(bindparam(f"w{i}")) for i in range(n)]
        self.page = select(*COLUMNS).where(*matching).order_by(NEWEST_FIRST).limit(bindparam("limit"))
        self.candidates = (
            select(MESSAGES.c.number, MESSAGES.c.body).where(*matching).order_by(NEWEST_FIRST).limit(bindparam("limit"))
        )


@lru_cache(maxsize=MAX_WORDS)
def statements(n: int) -> Statements:
    return Statements(n)


# Code points where folding does more than lower-case: Latin with its extensions, the blocks of
# compatibility forms folding follows (superscripts, enclosed, ligatures, full width).
_FOLDING_RANGES = ((0x30, 0x7A), (0x80, 0x2FF), (0x1D00, 0x24FF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF))
_FOLDING_RANGES += ((0xAB30, 0xAB6F), (0xFB00, 0xFB06), (0xFF00, 0xFFEF))
MAX_PATTERN = 4000  # a word whose pattern would be longer is left to the Python check alone
ANY = "^"
WORD_START = r"(?<![\p{L}\p{Nd}_])"


@cache
def _variants() -> dict[str, frozenset[str]]:
    """Folded text → the characters that fold to it."""
    variants: dict[str, set[str]] = {}
    for low, high in _FOLDING_RANGES:
        for code in range(low, high + 1):
            char = chr(code)
            variants.setdefault(fold_char(char), set()).add(char)
    return {folded: frozenset(chars) for folded, chars in variants.items()}


def _class(chars: frozenset[str]) -> str:
    escaped = "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in sorted(chars))
    return escaped if len(chars) == 1 else f"[{escaped}]"


@lru_cache(maxsize=1024)
def pattern(word: str) -> str:
    """A REGEXP that every body matching ``word`` matches (see the module docstring)."""
    folded = fold_text(word)
    variants = _variants()
    longest = max(map(len, variants))
    built: dict[int, str] = {len(folded): ""}
    for start in range(len(folded) - 1, -1, -1):
        options: list[str] = []
        for end in range(start + 1, min(len(folded), start + longest) + 1):
            chars = variants.get(folded[start:end])
            if chars is None and end == start + 1:
                chars = frozenset({folded[start]})  # a character that only lower-cases
            if chars is not None:
                rest = built[end]
                if rest is None:  # too long: no pattern at all, rather than one that misses
                    return ANY
                options.append(_class(chars) + rest)
        text = options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"
        if len(text) > MAX_PATTERN:
            return ANY
        built[start] = text
    body = built[0]
    return WORD_START + body if len(word) < MIN_SUBSTRING else body


@implementer(ISearch)
class DatabaseSearch:
    name = "database"

    def __init__(
        self,
        session: Session | Connection | None = None,
        max_scan: int = DEFAULT_MAX_SCAN,
        time_limit: float = DEFAULT_TIME_LIMIT,
    ):
        # The request's session (the web binds one per request: ``request.search``); a process
        # that only indexes (a worker, the reindex command) needs none.
        self.session = session
        self.max_scan = max_scan
        self.time_limit = time_limit

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DatabaseSearch:
        return cls(max_scan=settings["search.database_max_scan"], time_limit=settings["search.database_time_limit"])

    def with_session(self, session: Session | Connection) -> DatabaseSearch:
        return DatabaseSearch(session, self.max_scan, self.time_limit)

    def search(self, request: SearchRequest) -> SearchPage:
        if self.session is None:
            raise RuntimeError("DatabaseSearch.search needs a session")
        before = cursors.decode(request, 1)[0] if request.cursor else None
        if not request.words:
            return SearchPage(hits=[], next_cursor=None)
        with self._time_limit():
            rows, last = self._page(request, before)
        hits = [
            SearchHit(
                message=messages.representation(request.chat.chat_number, row),
                highlight=fragment(row.body, request.words),
            )
            for row in rows
        ]
        next_cursor = cursors.encode(request, [last]) if last is not None else None
        return SearchPage(hits=hits, next_cursor=next_cursor)

    def _page(self, request: SearchRequest, before: int | None) -> tuple[list, int | None]:
        """The page's rows and the number the next page starts before, from a window of at most
        ``max_scan`` numbers below ``before`` (below the chat's newest number + 1 at first)."""
        chat_id = request.chat.chat_id
        if before is None:
            before = (self.session.execute(NEWEST_NUMBER, {"chat_id": chat_id}).scalar() or 0) + 1
        floor = max(before - self.max_scan, 1)
        query = statements(len(request.words))
        values = {"chat_id": chat_id, "before": before, "floor": floor}
        values |= {f"w{i}": pattern(word) for i, word in enumerate(request.words)}
        rows = self.session.execute(query.page, {**values, "limit": request.limit + 1}).all()
        if all(matches_all(row.body, request.words) for row in rows):
            last = rows[request.limit - 1].number if len(rows) > request.limit else None
            rows = rows[: request.limit]
        else:
            rows, last = self._checked(request, query, values)
        if last is None and floor > 1:
            last = floor  # the window is done and older messages lie below it: go on there
        return rows, last

    @contextmanager
    def _time_limit(self) -> Iterator[None]:
        """Every statement of the block under ``time_limit`` seconds, on this session's connection."""
        # A web read's is a Connection already (chatsys.web.database); a Session gives its own.
        connection = self.session.connection() if isinstance(self.session, Session) else self.session
        if connection.dialect.is_mariadb:
            variable, value = "max_statement_time", self.time_limit
        else:
            variable, value = "max_execution_time", round(self.time_limit * 1000)
        connection.exec_driver_sql(f"SET SESSION {variable} = %s", (value,))
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SET SESSION {variable} = DEFAULT")

    def _checked(self, request: SearchRequest, query: Statements, values: dict) -> tuple[list, int | None]:
        """The page's rows whose bodies pass the check, newest first, and the number the next page
        starts before (None when this is the last page)."""
        numbers: list[int] = []
        chunk = FIRST_CHUNK * (request.limit + 1)
        while len(numbers) <= request.limit:
            scanned = self.session.execute(query.candidates, {**values, "limit": chunk}).all()
            numbers += [number for number, body in scanned if matches_all(body, request.words)]
            if len(scanned) < chunk:
                break
            values = {**values, "before": scanned[-1].number}
            chunk = min(chunk * GROWTH, MAX_CHUNK)
        last = numbers[request.limit - 1] if len(numbers) > request.limit else None
        numbers = numbers[: request.limit]
        if not numbers:
            return [], last
        shown = {"chat_id": request.chat.chat_id, "numbers": numbers}
        rows = self.session.execute(SHOWN_BY_NUMBERS, shown).all()
        # The two reads are not one snapshot: a message edited in between so that it no longer
        # matches is left out of this page (the next page still starts after it).
        return [row for row in rows if matches_all(row.body, request.words)], last

    def index(self, documents: Sequence[MessageDocument]) -> list[IndexResult]:
        # The rows are the index: nothing to write.
        return [IndexResult(doc.doc_id, IndexOutcome.APPLIED) for doc in documents]

    def check(self) -> None:
        """MySQL is checked by /readyz on its own."""

    def ensure_index(self) -> None:
        """Nothing to create: the messages table and its index come from the migrations."""
