"""Resolving public keys (token, chat number) to internal ids, with a bounded in-process cache.

Applications and chats are never deleted and their keys never change, so a positive lookup can be
cached for the life of the process; misses are never cached (the row may be committed a moment
later).  The cache saves two indexed SELECTs on every message create and read.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from chatsys.db import Reader
from chatsys.models import Application, Chat

K = TypeVar("K")
V = TypeVar("V")

MAX_TOKEN_LENGTH = 64
# What ``secrets.token_urlsafe`` generates.  Anything else names no application, without a query.
# It is also what refuses a token with trailing spaces, which the column's collation ignores:
# keep it strict.
TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TOKEN_LENGTH}}}")
APPLICATION_BY_TOKEN = select(Application.id, Application.token).where(Application.token == bindparam("token"))


@dataclass(frozen=True)
class ApplicationRef:
    id: int
    token: str


@dataclass(frozen=True)
class ChatRef:
    id: int
    number: int
    application: ApplicationRef


class BoundedCache(Generic[K, V]):
    """A thread-safe LRU map of at most ``size`` entries (size 0 disables it)."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class Lookups:
    def __init__(self, cache_size: int):
        self.applications: BoundedCache[str, ApplicationRef] = BoundedCache(cache_size)
        self.chats: BoundedCache[tuple[int, int], ChatRef] = BoundedCache(cache_size)

    def application(self, dbsession: Session | Reader, token: str) -> ApplicationRef | None:
        if not TOKEN_SHAPE.fullmatch(token):
            return None
        ref = self.applications.get(token)
        if ref is None:
            row = dbsession.execute(APPLICATION_BY_TOKEN, {"token": token}).one_or_none()
            if row is None:
                return None
            # The stored spelling: it becomes the events' keys and Elasticsearch's chat key.
            ref = ApplicationRef(row.id, row.token)
            self.applications.put(token, ref)
        return ref

    def chat(self, dbsession: Session | Reader, application: ApplicationRef, number: int) -> ChatRef | None:
        ref = self.chats.get((application.id, number))
        if ref is None:
            chat_id = dbsession.execute(
                select(Chat.id).where(Chat.application_id == application.id, Chat.number == number)
            ).scalar_one_or_none()
            if chat_id is None:
                return None
            ref = ChatRef(chat_id, number, application)
            self.chats.put((application.id, number), ref)
        return ref
