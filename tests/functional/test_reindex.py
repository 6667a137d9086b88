"""chatsys-reindex rebuilds the index of 6,000 messages from MySQL, swaps the alias atomically,
and search answers before, during and after (on the Elasticsearch test double and on noida-db)."""

from __future__ import annotations

import subprocess
import threading
import uuid

from elasticsearch import Elasticsearch
from sqlalchemy import text
from sqlalchemy.orm import Session

from chatsys.search.elasticsearch import ElasticsearchSearch
from chatsys.search.interfaces import ChatScope, SearchRequest
from chatsys.search.query import words
from testkit.processes import BIN, write_ini
from tests.conftest import process_overrides
from tests.support import seed
from tests.support.db import TESTING_INI
from tests.support.es_targets import EsTarget
from tests.support.search_cases import document

MESSAGES = 6_000
CHATS = 20


def seed_rows(engine, messages: int = MESSAGES) -> tuple[str, dict[int, int]]:
    """An application with CHATS chats of ``messages / CHATS`` messages, straight into MySQL."""
    token = f"reindex-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        app_id = seed.application(conn, token)
        chat_ids = {number: seed.chat(conn, app_id, number) for number in range(1, CHATS + 1)}
        seed.messages(
            conn,
            [
                {"chat_id": chat_ids[chat], "number": n, "body": f"note {n} {'alpha' if n % 10 == 0 else 'beta'}"}
                for chat in chat_ids
                for n in range(1, messages // CHATS + 1)
            ],
        )
    return token, chat_ids


def test_reindex_swaps_the_alias_while_search_answers(engine, clean, es_target: EsTarget, settings, tmp_path):
    alias = es_target.alias
    client = Elasticsearch(es_target.url, request_timeout=30)
    search = ElasticsearchSearch(client, alias)
    search.ensure_index()
    (old_index,) = client.indices.get_alias(name=alias).body
    token, chat_ids = seed_rows(engine)
    # The live index already holds chat 1 (as the indexer would have written it).
    with Session(engine) as session:
        rows = session.execute(
            text("SELECT number, body, created_at, updated_at FROM messages WHERE chat_id = :c"), {"c": chat_ids[1]}
        ).all()
    search.index([document(token, 1, r.number, r.body, 1, r.created_at, r.updated_at) for r in rows])
    client.indices.refresh(index=alias)

    query = SearchRequest(ChatScope(token, 1, chat_ids[1]), "alpha", words("alpha"), limit=100)
    expected = [n for n in range(MESSAGES // CHATS, 0, -1) if n % 10 == 0]
    assert [h.message_number for h in search.search(query).hits] == expected

    answers, failures, stop = [], [], threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            try:
                answers.append([h.message_number for h in search.search(query).hits])
            except Exception as exc:  # any failure during the swap is what this test looks for
                failures.append(exc)
            stop.wait(0.05)  # pace the reader: it shares the CPU with the double and the load

    reader = threading.Thread(target=keep_searching)
    reader.start()
    ini = write_ini(
        tmp_path / "reindex.ini",
        TESTING_INI,
        process_overrides(
            settings,
            **{"search.backend": "elasticsearch", "elasticsearch.url": es_target.url, "elasticsearch.index": alias},
        ),
    )
    try:
        result = subprocess.run(
            [str(BIN / "chatsys-reindex"), str(ini), "--batch", "2000"], capture_output=True, text=True, timeout=600
        )
    finally:
        stop.set()
        reader.join()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reindex: 100%" in result.stderr or f"{MESSAGES}/{MESSAGES}" in result.stderr, result.stderr  # the bar

    assert failures == []
    assert len(answers) > 3 and all(a == expected for a in answers)
    (new_index,) = client.indices.get_alias(name=alias).body
    assert es_target.index_names() == [new_index] != [old_index]
    client.indices.refresh(index=alias)
    assert client.count(index=alias)["count"] == MESSAGES
    other = SearchRequest(ChatScope(token, 7, chat_ids[7]), "alpha", words("alpha"), limit=100)
    assert [h.message_number for h in search.search(other).hits] == expected
    settings_now = client.indices.get_settings(index=new_index).body[new_index]["settings"]["index"]
    assert settings_now["refresh_interval"] == "1s"


def test_reindex_catches_up_edits_made_during_the_load_and_cleans_orphans(engine, clean, es_target: EsTarget):
    from chatsys.search.reindex import reindex

    alias = es_target.alias
    client = Elasticsearch(es_target.url, request_timeout=30)
    search = ElasticsearchSearch(client, alias)
    search.ensure_index()
    client.indices.create(index=f"{alias}-v19990101000000000000")  # an unfinished run's leftover
    token, chat_ids = seed_rows(engine, messages=2000)

    edited = {"done": False}

    def edit_during_load(loaded: int) -> None:
        # After the load's first batch (chat 3 is in it), a message is edited and the indexer
        # writes it through the alias — into the old index, which the swap is about to retire.
        if edited["done"]:
            return
        edited["done"] = True
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE messages SET body = 'edited gamma', version = 2, updated_at = NOW(6) "
                    "WHERE chat_id = :c AND number = 5"
                ),
                {"c": chat_ids[3]},
            )
        with Session(engine) as session:
            created = session.execute(
                text("SELECT created_at, updated_at FROM messages WHERE chat_id = :c AND number = 5"),
                {"c": chat_ids[3]},
            ).one()
        search.index([document(token, 3, 5, "edited gamma", 2, created.created_at, created.updated_at)])

    new_index = reindex(engine, search, batch=500, progress=edit_during_load)
    doc = es_target.stored(f"{token}:3:5", routing=f"{token}:3")
    assert (doc.version, doc.source["body"]) == (2, "edited gamma")
    assert es_target.index_names() == [new_index]  # the old index and the leftover are gone


def test_each_load_batch_reads_the_next_range_of_messages_without_sorting(engine, clean):
    """The load's query drives from messages, in primary key order: a batch costs its own rows,
    not a sort of the whole table (which the optimizer chose when left to itself)."""
    from chatsys.search.reindex import ROWS

    seed_rows(engine, messages=2000)
    with engine.connect() as conn:
        params = {"chat_id": 1, "number": 5, "since": "1970-01-01", "batch": 500}
        plan = conn.execute(text(f"EXPLAIN {ROWS.element.text}"), params).mappings().all()
    first = plan[0]
    assert (first["table"], first["type"], first["key"]) == ("m", "range", "PRIMARY")
    assert not any("filesort" in (row["Extra"] or "") for row in plan)
