"""Application tokens in logs, listings and metrics: never written, only a short fingerprint.

A token is an application's only credential.  ``fingerprint`` gives ``tok-`` and 10 hex digits of
its SHA-256: enough to tell two applications apart in a log, nothing to recover the token from.
"""

from __future__ import annotations

import hashlib

PREFIX = "tok-"


def fingerprint(token: str) -> str:
    return PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()[:10]


def redact_key(key: str) -> str:
    """A ``token:chat[:message]`` key (events' aggregate keys, search document ids) with its
    token replaced by the token's fingerprint."""
    token, sep, rest = key.partition(":")
    return fingerprint(token) + sep + rest
