"""The Elasticsearch index of messages: settings, analysis, mapping and physical index names.

This module is the one place that defines them; the backend, the reindex command and the tests
read them from here.  Clients always go through an alias (``elasticsearch.index``); the alias
points at a physical index ``<alias>-v<UTC timestamp>`` so that a reindex can build a new
physical index and swap the alias atomically.

How the analysis implements the search semantics of :mod:`chatsys.search.query`:

* ``body`` — whole words (standard tokenizer, lowercase, ASCII folding); used only to rank exact
  word matches higher under ``sort=relevance``.
* ``body.prefix`` — the edge n-grams (1 to 20 characters) of every word, a word being a run of
  letters, decimal digits and ``_``: these token characters define the word characters that
  :mod:`chatsys.search.query` follows (so ``½``, ``²``, ``Ⅻ`` separate words).  The search
  analyzer does not split or n-gram: the backend sends one query word per clause, so a word of
  1 or 2 characters matches exactly the messages having a word that starts with it.
* ``body.trigram`` — every 3-character window of the *whole* body, separators included.  A query
  word of 3 or more characters is sent as a ``match_phrase`` of its own trigrams, which must
  occur at consecutive positions: that is the word occurring as a substring.  Keeping separators
  in the grams (no ``token_chars``) matters: with grams of letters only, the positions of two
  neighbouring words would be consecutive and "abcd" would match "xabc bcdy".  A query word
  never contains a separator, so grams spanning a separator never match; they only keep the
  words apart.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from chatsys.search import query

# Word prefixes up to this length are indexed; longer query words use the trigram subfield.
MAX_PREFIX = query.MAX_PREFIX
TRIGRAM = query.MIN_SUBSTRING

ANALYSIS: dict[str, Any] = {
    "tokenizer": {
        "chatsys_word_prefix": {
            "type": "edge_ngram",
            "min_gram": 1,
            "max_gram": MAX_PREFIX,
            # Letters (L*), decimal digits (Nd) and the underscore: chatsys.search.query.is_word_char.
            "token_chars": ["letter", "digit", "custom"],
            "custom_token_chars": "_",
        },
        # min_gram == max_gram, so the default index.max_ngram_diff (1) is enough; edge_ngram is
        # not subject to that limit.  No token_chars: see the module docstring.
        "chatsys_trigram": {"type": "ngram", "min_gram": TRIGRAM, "max_gram": TRIGRAM},
    },
    "analyzer": {
        "chatsys_words": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding"],
        },
        "chatsys_word_prefix": {
            "type": "custom",
            "tokenizer": "chatsys_word_prefix",
            "filter": ["lowercase", "asciifolding"],
        },
        # One query word in, one token out: no splitting, no n-grams.
        "chatsys_word_prefix_search": {
            "type": "custom",
            "tokenizer": "keyword",
            "filter": ["lowercase", "asciifolding"],
        },
        "chatsys_trigram": {
            "type": "custom",
            "tokenizer": "chatsys_trigram",
            "filter": ["lowercase", "asciifolding"],
        },
    },
}

MAPPINGS: dict[str, Any] = {
    # A field the backend does not know about is a bug: refuse it instead of guessing a type.
    "dynamic": "strict",
    # Every write and read names its chat, so one chat's messages live on one shard.
    "_routing": {"required": True},
    "properties": {
        "chat_key": {"type": "keyword"},
        "app_token": {"type": "keyword"},
        "chat_number": {"type": "integer"},
        "message_number": {"type": "integer"},
        "version": {"type": "integer"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
        "deleted": {"type": "boolean"},
        "body": {
            "type": "text",
            "analyzer": "chatsys_words",
            "fields": {
                "prefix": {
                    "type": "text",
                    "analyzer": "chatsys_word_prefix",
                    "search_analyzer": "chatsys_word_prefix_search",
                },
                "trigram": {"type": "text", "analyzer": "chatsys_trigram"},
            },
        },
    },
}


def index_settings() -> dict[str, Any]:
    """Settings of a new physical index (a fresh copy: callers may change it)."""
    return {"analysis": copy.deepcopy(ANALYSIS)}


def index_mappings() -> dict[str, Any]:
    """Mapping of a new physical index (a fresh copy)."""
    return copy.deepcopy(MAPPINGS)


def index_body(alias: str) -> dict[str, Any]:
    """Body of the create-index request: settings, mapping, and the alias as its write index.

    Creating the index and its alias in one request makes the two appear together, so no
    process ever sees the alias without an index or an index that the alias misses.
    """
    return {
        "settings": index_settings(),
        "mappings": index_mappings(),
        "aliases": {alias: {"is_write_index": True}},
    }


def physical_index_name(alias: str, at: datetime | None = None) -> str:
    """Name of a new physical index behind ``alias``: ``<alias>-v<UTC timestamp, microseconds>``.

    Names sort by creation time, which tells the generations of a reindex apart.  A naive
    ``at`` is taken as UTC, like every timestamp of the database.
    """
    if at is None:
        at = datetime.now(UTC)
    elif at.tzinfo is not None:
        at = at.astimezone(UTC)
    return f"{alias}-v{at:%Y%m%d%H%M%S%f}"
