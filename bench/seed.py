"""Benchmark data: applications and chats through the API, bulk messages straight into MySQL.

* ``applications`` applications, each with ``write_chats`` chats that W1 posts into and
  ``read_chats`` chats that W2 reads (seeded with ``read_messages`` messages each);
* one search application with two chats of ``search_small`` and ``search_large`` messages (W3);
* one baseline application with 100 chats for the raw database baseline (rows inserted directly).

Applications and chats are created through the API (the real path: tokens, numbers, outbox
events, counts).  Messages are inserted with multi-row INSERTs (PyMySQL's ``executemany``
rewrites them into statements of up to ~1 MB), flagged ``counted`` with the chats'
``messages_count`` set to match, so the pipeline's invariants hold without replaying 100,000
events.  Bodies are sentences of pseudo-words drawn with a Zipf-like law, so queries can be
picked by how common their word is.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

import pymysql

from bench.stack import http_json
from chatsys.models import utcnow

T = TypeVar("T")
Retry = Callable[[str, Callable[[], T]], T]

SYLLABLES = (
    "ka lo mi ren tor vek sa qu zan pel dor fi gu mar nos tel bri cha dra ol ex vin sul"
    " tra mon bel cor dun fel gar hin jas kel lum nor pra ris sto ul wen yar zor"
).split()
VOCABULARY_SIZE = 3000


def vocabulary(seed: int = 42) -> list[str]:
    """Pseudo-words of 5+ letters, most frequent first (rank r has weight 1 / (r + 1))."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if len(word) >= 5 and word not in seen:
            seen.add(word)
            words.append(word)
    return words


VOCABULARY = vocabulary()
# Cumulative weights computed once: random.choices would otherwise re-add 3,000 weights per call.
CUMULATIVE_WEIGHTS = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(VOCABULARY_SIZE)))


def sentence(rng: random.Random, low: int = 6, high: int = 14) -> str:
    words = rng.choices(VOCABULARY, cum_weights=CUMULATIVE_WEIGHTS, k=rng.randint(low, high))
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def search_queries() -> list[tuple[str, str]]:
    """The W3 mix: (kind, q).  Prefix = the start of a word, substring = inside a word."""
    v = VOCABULARY
    return [
        ("prefix, common word", v[0][:4]),
        ("substring, common word", v[0][1:4]),
        ("prefix, mid-frequency word", v[40][:4]),
        ("substring, mid-frequency word", v[40][2:5]),
        ("short prefix (2 chars)", v[3][:2]),
        ("two words: prefix + substring", f"{v[1][:3]} {v[7][1:4]}"),
        ("prefix, rare word", v[2500][:6]),
        ("no match", "qzxvw"),
    ]


@dataclass(frozen=True)
class ChatInfo:
    token: str
    number: int
    chat_id: int
    application_id: int
    messages: int = 0

    @property
    def path(self) -> str:
        return f"/v1/applications/{self.token}/chats/{self.number}"


@dataclass
class Seed:
    write_chats: list[ChatInfo]
    read_chats: list[ChatInfo]
    search_small: ChatInfo
    search_large: ChatInfo
    baseline_chats: list[ChatInfo]
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "write_chats": len(self.write_chats),
            "read_chats": len(self.read_chats),
            "read_messages_per_chat": self.read_chats[0].messages if self.read_chats else 0,
            "search_small": self.search_small.messages,
            "search_large": self.search_large.messages,
            "baseline_chats": len(self.baseline_chats),
            "seconds": self.seconds,
        }


def create_via_api(base_url: str, name: str, chats: int) -> list[tuple[str, int]]:
    """One application and its chats through the API: [(token, chat_number)]."""
    status, app = http_json("POST", f"{base_url}/v1/applications", {"name": name})
    if status != 201:
        raise RuntimeError(f"POST /v1/applications answered {status}: {app!r}")
    token = app["app_token"]
    numbers = []
    for i in range(chats):
        status, chat = http_json("POST", f"{base_url}/v1/applications/{token}/chats", {"name": f"{name}-chat-{i + 1}"})
        if status != 201:
            raise RuntimeError(f"POST chats answered {status}: {chat!r}")
        numbers.append((token, chat["chat_number"]))
    return numbers


def resolve(conn: pymysql.Connection, pairs: list[tuple[str, int]]) -> list[ChatInfo]:
    with conn.cursor() as cur:
        cur.execute("SELECT a.token, c.number, c.id, a.id FROM chats c JOIN applications a ON a.id = c.application_id")
        by_key = {(row[0], row[1]): ChatInfo(row[0], row[1], row[2], row[3]) for row in cur.fetchall()}
    return [by_key[pair] for pair in pairs]


def insert_messages(
    conn: pymysql.Connection, chat: ChatInfo, count: int, rng: random.Random, chunk: int = 5000
) -> ChatInfo:
    """``count`` messages numbered 1…count, counted, with ``messages_count`` to match.

    Safe to repeat after a blip: rows already there are skipped, the count is set, not added.
    """
    start = utcnow() - timedelta(seconds=count)
    # Placeholders only in VALUES: that is what PyMySQL's executemany rewrites into multi-row
    # INSERTs (with a literal in the tuple it silently falls back to one statement per row).
    sql = (
        "INSERT IGNORE INTO messages (chat_id, number, body, version, counted, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)"
    )
    with conn.cursor() as cur:
        for first in range(1, count + 1, chunk):
            rows = []
            for number in range(first, min(first + chunk, count + 1)):
                at = start + timedelta(seconds=number)
                rows.append((chat.chat_id, number, sentence(rng), 1, 1, at, at))
            cur.executemany(sql, rows)
        cur.execute(
            "UPDATE chats SET messages_count = %s, last_message_number = %s WHERE id = %s",
            (count, count, chat.chat_id),
        )
    conn.commit()
    return ChatInfo(chat.token, chat.number, chat.chat_id, chat.application_id, count)


def baseline_chats(conn: pymysql.Connection, count: int = 100) -> list[ChatInfo]:
    """An application with ``count`` chats, inserted directly (the raw baseline never uses the API)."""
    now = utcnow()
    token = "bench-baseline-" + secrets.token_hex(8)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO applications (token, name, chats_count, last_chat_number, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (token, "bench baseline", count, count, now, now),
        )
        app_id = cur.lastrowid
        cur.executemany(
            "INSERT INTO chats (application_id, number, name, messages_count, counted, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(app_id, n, f"baseline-{n}", 0, 1, now, now) for n in range(1, count + 1)],
        )
        cur.execute("SELECT id, number FROM chats WHERE application_id = %s ORDER BY number", (app_id,))
        chats = [ChatInfo(token, number, chat_id, app_id) for chat_id, number in cur.fetchall()]
    conn.commit()
    return chats


def seed(base_url: str, db: Callable[[], pymysql.Connection], plan, retry: Retry) -> Seed:
    """Seed everything; ``retry(what, step)`` re-runs a step that a service blip broke (every step
    is safe to repeat), ``db()`` is the harness's current connection (it may reconnect)."""
    rng = random.Random(7)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    per_app = plan.write_chats + plan.read_chats

    def application(name: str) -> list[tuple[str, int]]:
        return retry(f"creating {name}", lambda: create_via_api(base_url, name, per_app))

    # One application per thread: its chats are numbered in order, applications in parallel.
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(application, [f"bench-app-{a + 1}" for a in range(plan.applications)]))
    write_pairs = [pair for pairs in created for pair in pairs[: plan.write_chats]]
    read_pairs = [pair for pairs in created for pair in pairs[plan.write_chats :]]
    search_pairs = application("bench-search")[:2]
    seconds["api"] = round(time.monotonic() - t0, 2)

    t0 = time.monotonic()
    write_chats = retry("resolving chats", lambda: resolve(db(), write_pairs))
    read_chats = [
        retry("seeding read chats", lambda chat=chat: insert_messages(db(), chat, plan.read_messages, rng))
        for chat in retry("resolving chats", lambda: resolve(db(), read_pairs))
    ]
    seconds["read_chats"] = round(time.monotonic() - t0, 2)
    small, large = retry("resolving chats", lambda: resolve(db(), search_pairs))
    t0 = time.monotonic()
    small = retry("seeding the small search chat", lambda: insert_messages(db(), small, plan.search_small, rng))
    large = retry("seeding the large search chat", lambda: insert_messages(db(), large, plan.search_large, rng))
    seconds["search_chats"] = round(time.monotonic() - t0, 2)
    retry("analyzing messages", lambda: analyze(db()))
    baseline = retry("creating the baseline chats", lambda: baseline_chats(db()))
    return Seed(write_chats, read_chats, small, large, baseline, seconds)


def analyze(conn: pymysql.Connection) -> None:
    """Fresh index statistics after the bulk load, as a production table would have."""
    with conn.cursor() as cur:
        cur.execute("ANALYZE TABLE messages")
        cur.fetchall()


# -- request lists for wrk ------------------------------------------------------------------------


def create_requests(chats: list[ChatInfo], count: int = 1000, seed_: int = 11) -> list[tuple[str, str, str]]:
    """W1: POSTs spread evenly over ``chats`` (round robin), bodies of 6–14 words."""
    rng = random.Random(seed_)
    return [
        ("POST", f"{chats[i % len(chats)].path}/messages", json.dumps({"body": sentence(rng)})) for i in range(count)
    ]


def create_delete_requests(
    write_chats: list[ChatInfo], targets: list[tuple[ChatInfo, int]], every: int = 10, seed_: int = 17
) -> list[tuple[str, str, str | None]]:
    """W1D: W1's creates, with every ``every``-th request a DELETE of one of ``targets`` (seeded
    messages, each deleted once: the script must not wrap around within a run)."""
    rng = random.Random(seed_)
    requests: list[tuple[str, str, str | None]] = []
    for chat, number in targets:
        for _ in range(every - 1):
            chat_w = write_chats[len(requests) % len(write_chats)]
            requests.append(("POST", f"{chat_w.path}/messages", json.dumps({"body": sentence(rng)})))
        requests.append(("DELETE", f"{chat.path}/messages/{number}", None))
    return requests


def read_requests(chats: list[ChatInfo], count: int = 2000, seed_: int = 13) -> list[tuple[str, str, None]]:
    """W2: half pages of 50 (first page or after a random number), half single messages."""
    rng = random.Random(seed_)
    requests: list[tuple[str, str, None]] = []
    for i in range(count):
        chat = chats[rng.randrange(len(chats))]
        if i % 2 == 0:
            after = rng.choice([0, rng.randrange(max(chat.messages - 50, 1))])
            query = "?limit=50" + (f"&after={after}" if after else "")
            requests.append(("GET", f"{chat.path}/messages{query}", None))
        else:
            requests.append(("GET", f"{chat.path}/messages/{rng.randint(1, chat.messages)}", None))
    return requests


def search_requests(chat: ChatInfo) -> list[tuple[str, str, None]]:
    """W3: every query of the mix, in turn."""
    from urllib.parse import quote

    return [("GET", f"{chat.path}/messages/search?q={quote(q)}", None) for _, q in search_queries()]


def as_dict(chat: ChatInfo) -> dict[str, Any]:
    return asdict(chat)
