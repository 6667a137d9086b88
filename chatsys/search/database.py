"""The database search backend: SQL within one chat, newest first.

Every word narrows the rows with ``LIKE '%word%'`` (``%``, ``_`` and ``\\`` escaped), which the
column's ``utf8mb4_unicode_ci`` collation makes case- and accent-insensitive; that is the whole
rule for words of 3+ characters.  Shorter words must also start a word of the body, which SQL
cannot say portably with accent folding, so those candidate rows are checked in Python with the
reference semantics (``chatsys.search.query``), fetching further chunks until the page is full.
The candidate pass reads only each row's number and body, in chunks that start at a few pages'
worth and grow, and the shown columns are then read for the hits alone: decoding 500 full rows
(two timestamps each) to keep 21 was most of the cost of a short-word search.
The scan is confined to one chat by the (chat_id, number) index.  There is no relevance score:
``sort=relevance`` gives newest first too.

The statements are built once per number of words (:func:`statements`), with every value a bound
parameter: building a select per search and walking it for SQLAlchemy's cache key cost more CPU
than reading and highlighting a page of hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from zope.interface import implementer

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
from chatsys.search.query import MAX_WORDS, MIN_SUBSTRING, matches_all

INT32_MAX = 2**31 - 1
# Candidate rows per query when short words need checking in Python: the first chunk is
# FIRST_CHUNK pages' worth, each next one GROWTH times larger, up to MAX_CHUNK.
FIRST_CHUNK = 4
GROWTH = 4
MAX_CHUNK = 2000
# Numbers are at most INT32_MAX: "before" this one is every message of the chat.
FROM_NEWEST = INT32_MAX + 1
NEWEST_FIRST = MESSAGES.c.number.desc()
SHOWN_BY_NUMBERS = (
    select(*COLUMNS)
    .where(MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.number.in_(bindparam("numbers", expanding=True)))
    .order_by(NEWEST_FIRST)
)


class Statements:
    """A chat's messages that contain ``w0`` … ``w{n-1}`` (LIKE patterns), numbered below ``before``,
    newest first, at most ``limit``: their shown columns (``page``), or only number and body
    (``candidates``)."""

    def __init__(self, n: int):
        matching = [MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.number < bindparam("before")]
        matching += [MESSAGES.c.body.like(bindparam(f"w{i}"), escape="\\") for i in range(n)]
        self.page = select(*COLUMNS).where(*matching).order_by(NEWEST_FIRST).limit(bindparam("limit"))
        self.candidates = (
            select(MESSAGES.c.number, MESSAGES.c.body).where(*matching).order_by(NEWEST_FIRST).limit(bindparam("limit"))
        )


@lru_cache(maxsize=MAX_WORDS)
def statements(n: int) -> Statements:
    return Statements(n)


def escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@implementer(ISearch)
class DatabaseSearch:
    name = "database"

    def __init__(self, session: Session | None = None):
        # The request's session (the web binds one per request: ``request.search``); a process
        # that only indexes (a worker, the reindex command) needs none.
        self.session = session

    def search(self, request: SearchRequest) -> SearchPage:
        if self.session is None:
            raise RuntimeError("DatabaseSearch.search needs a session")
        return self._search(self.session, request)

    def _search(self, conn: Session, request: SearchRequest) -> SearchPage:
        before = cursors.decode(request, 1)[0] if request.cursor else None
        if not request.words:
            return SearchPage(hits=[], next_cursor=None)
        query = statements(len(request.words))
        values = {"chat_id": request.chat.chat_id, "before": FROM_NEWEST if before is None else before}
        values |= {f"w{i}": f"%{escape_like(word)}%" for i, word in enumerate(request.words)}
        short = tuple(w for w in request.words if len(w) < MIN_SUBSTRING)
        if short:
            rows, last = self._word_starts(conn, request, query, values, short)
        else:
            rows = conn.execute(query.page, {**values, "limit": request.limit + 1}).all()
            last = rows[request.limit - 1].number if len(rows) > request.limit else None
            rows = rows[: request.limit]
        hits = [
            SearchHit(
                chat_number=request.chat.chat_number,
                message_number=row.number,
                body=row.body,
                version=row.version,
                created_at=row.created_at,
                updated_at=row.updated_at,
                highlight=fragment(row.body, request.words),
            )
            for row in rows
        ]
        next_cursor = cursors.encode(request, [last]) if last is not None else None
        return SearchPage(hits=hits, next_cursor=next_cursor)

    def _word_starts(
        self, conn: Session, request: SearchRequest, query: Statements, values: dict, short: tuple[str, ...]
    ) -> tuple[list, int | None]:
        """The page's rows whose bodies pass the short words' check too, newest first, and the
        number the next page starts before (None when this is the last page)."""
        numbers: list[int] = []
        chunk = FIRST_CHUNK * (request.limit + 1)
        while len(numbers) <= request.limit:
            scanned = conn.execute(query.candidates, {**values, "limit": chunk}).all()
            numbers += [number for number, body in scanned if matches_all(body, short)]
            if len(scanned) < chunk:
                break
            values = {**values, "before": scanned[-1].number}
            chunk = min(chunk * GROWTH, MAX_CHUNK)
        last = numbers[request.limit - 1] if len(numbers) > request.limit else None
        numbers = numbers[: request.limit]
        if not numbers:
            return [], last
        shown = {"chat_id": request.chat.chat_id, "numbers": numbers}
        rows = conn.execute(SHOWN_BY_NUMBERS, shown).all()
        # The two reads are not one snapshot: a message edited in between so that it no longer
        # matches is left out of this page (the next page still starts after it).
        return [row for row in rows if matches_all(row.body, short)], last

    def index(self, documents: Sequence[MessageDocument]) -> list[IndexResult]:
        # The rows are the index: nothing to write.
        return [IndexResult(doc.doc_id, IndexOutcome.APPLIED) for doc in documents]

    def check(self) -> None:
        """MySQL is checked by /readyz on its own."""

    def ensure_index(self) -> None:
        """Nothing to create: the messages table and its index come from the migrations."""
