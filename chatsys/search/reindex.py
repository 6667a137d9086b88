"""Rebuild the Elasticsearch index from MySQL behind the alias, while search keeps answering.

1. Create a new physical index (mapping from :mod:`chatsys.search.mapping`) with refresh off.
2. Bulk-load every message from MySQL into it, walking the table in (chat_id, number) batches.
3. Restore the refresh interval, refresh, and swap the alias in one ``_aliases`` call: readers
   and the indexer move from the old index to the new one atomically.
4. Catch up: load again every message changed since the load began (minus a margin for clock
   skew).  Edits the indexer wrote into the old index during the load are not lost; external
   versions make the repeated writes harmless.
5. Delete the old physical indices.

A run that dies part-way leaves a half-built index that nothing reads; the next run deletes such
orphans before it starts, so the command is safe to restart.  Run one at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine

from chatsys.domain import messages
from chatsys.models import utcnow
from chatsys.runtime.redact import redact_key
from chatsys.search.elasticsearch import ElasticsearchSearch
from chatsys.search.interfaces import IndexOutcome, MessageDocument, SearchUnavailable
from chatsys.search.mapping import index_mappings, index_settings, physical_index_name

log = logging.getLogger(__name__)

CLOCK_MARGIN = timedelta(minutes=5)
BULK_TIMEOUT = 120
ATTEMPTS = 5
LOAD_REFRESH = "-1"
LIVE_REFRESH = "1s"

# In primary key order, (chat_id, number): each batch is the next range of the table.  STRAIGHT_JOIN
# keeps messages the driving table; left to itself, the optimizer starts from the small tables and
# sorts every message for each batch (0.8 s a batch on 460,000 messages, against 24 ms).
# A message that is deleted, or whose chat or application is (their purge may not have reached it
# yet), goes in as a tombstone: no text, ``deleted``, its version, so no stale write brings it back.
ROWS = messages.typed(
    text(
        "SELECT STRAIGHT_JOIN m.chat_id, a.token, c.number AS chat_number, "
        + "".join(f"m.{column}, " for column in messages.SHOWN)
        + "(m.deleted_at IS NOT NULL OR c.deleted_at IS NOT NULL "
        # A subquery, not a.deleted_at: naming that column made MariaDB scan applications through a
        # join buffer and sort every batch (a test checks the plan).
        "OR (SELECT x.deleted_at FROM applications x WHERE x.id = c.application_id) IS NOT NULL) AS gone "
        "FROM messages m JOIN chats c ON c.id = m.chat_id JOIN applications a ON a.id = c.application_id "
        "WHERE (m.chat_id > :chat_id OR (m.chat_id = :chat_id AND m.number > :number)) AND m.updated_at >= :since "
        "ORDER BY m.chat_id, m.number LIMIT :batch"
    )
)


class ReindexFailed(RuntimeError):
    pass


def documents(engine: Engine, batch: int, since=None) -> Iterator[list[MessageDocument]]:
    """Every message (changed since ``since``), in batches, as search documents (tombstones for
    the deleted ones)."""
    after = {"chat_id": 0, "number": 0}
    floor = since or datetime(1970, 1, 1)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(ROWS, {**after, "since": floor, "batch": batch}).all()
        if not rows:
            return
        yield [
            MessageDocument(
                messages.search_document(
                    {"app_token": r.token, **messages.representation(r.chat_number, r)}, deleted=bool(r.gone)
                )
            )
            for r in rows
        ]
        after = {"chat_id": rows[-1].chat_id, "number": rows[-1].number}


def _index(search: ElasticsearchSearch, docs: list[MessageDocument], target: str):
    """One bulk request, retried a few times through a passing outage."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return search.index(docs, target=target)
        except SearchUnavailable as exc:
            if attempt == ATTEMPTS:
                raise ReindexFailed(f"Elasticsearch unavailable: {exc}") from exc
            log.warning("bulk request failed (%s); retrying in %ds", exc, 2**attempt)
            time.sleep(2**attempt)


def _load(search: ElasticsearchSearch, target: str, batches, progress: Callable[[int], None]) -> int:
    loaded = 0
    for docs in batches:
        results = _index(search, docs, target)
        failed = [r for r in results if r.outcome not in (IndexOutcome.APPLIED, IndexOutcome.STALE)]
        if failed:
            example = f"{redact_key(failed[0].doc_id)}: {failed[0].error}"
            raise ReindexFailed(f"{len(failed)} documents not indexed, e.g. {example}")
        loaded += len(docs)
        progress(len(docs))
    return loaded


def reindex(
    engine: Engine, search: ElasticsearchSearch, batch: int = 1000, progress: Callable[[int], None] = lambda n: None
) -> str:
    """Rebuild the index behind ``search.alias``; returns the new physical index name."""
    # Bulk loads of thousands of documents take longer than a search: a longer timeout.
    search = ElasticsearchSearch(search.client.options(request_timeout=BULK_TIMEOUT), search.alias)
    client, alias = search.client, search.alias
    current = sorted(client.indices.get_alias(name=alias).body) if client.indices.exists_alias(name=alias) else []
    _delete_orphans(search, keep=current)
    started = utcnow()
    new = physical_index_name(alias)
    body_settings = index_settings()
    body_settings["refresh_interval"] = LOAD_REFRESH  # no refreshes while loading
    client.indices.create(index=new, settings=body_settings, mappings=index_mappings())
    log.info("loading %s (alias %s currently on %s)", new, alias, current or "nothing")
    loaded = _load(search, new, documents(engine, batch), progress)
    client.indices.put_settings(index=new, settings={"index": {"refresh_interval": LIVE_REFRESH}})
    client.indices.refresh(index=new)

    actions: list[dict] = [{"remove": {"index": name, "alias": alias}} for name in current]
    actions.append({"add": {"index": new, "alias": alias, "is_write_index": True}})
    client.indices.update_aliases(actions=actions)
    log.info("alias %s now on %s (%d messages loaded)", alias, new, loaded)

    # Not on the progress bar, whose total is the messages counted before the load: the catch-up
    # goes over the messages changed since (all those created in the last CLOCK_MARGIN, too).
    caught_up = _load(search, alias, documents(engine, batch, since=started - CLOCK_MARGIN), lambda n: None)
    log.info("caught up %d messages changed during the load", caught_up)
    for name in current:
        client.indices.delete(index=name)
        log.info("deleted old index %s", name)
    return new


def _delete_orphans(search: ElasticsearchSearch, keep: list[str]) -> None:
    """Indices of this alias's naming scheme that the alias does not point at: a dead run's."""
    pattern = f"{search.alias}-v*"
    names = search.client.options(ignore_status=404).indices.get(index=pattern).body
    for name in sorted(set(names) - set(keep)):
        search.client.indices.delete(index=name)
        log.warning("deleted %s, left behind by an unfinished reindex", name)
