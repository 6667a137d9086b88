"""A Server-Sent Events client for the tests: reads one stream on a thread of its own and keeps
what it heard, parsed as the WHATWG standard says (``id:`` alone moves the last event id)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode


@dataclass
class Event:
    id: str | None
    type: str
    data: Any


@dataclass
class SSEStream:
    host: str
    port: int
    path: str
    last_event_id: str | None = None
    query_last_event_id: bool = False
    status: int | None = None
    body: bytes = b""
    events: list[Event] = field(default_factory=list)
    retry: int | None = None
    comments: int = 0
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self) -> SSEStream:
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            headers = {"Accept": "text/event-stream"}
            path = self.path
            if self.last_event_id is not None:
                if self.query_last_event_id:
                    path += "?" + urlencode({"last_event_id": self.last_event_id})
                else:
                    headers["Last-Event-ID"] = self.last_event_id
            self._conn.request("GET", path, headers=headers)
            response = self._conn.getresponse()
            self.status = response.status
            if response.status != 200:
                self.body = response.read()
                return
            self.opened.set()
            self._read(response)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def _read(self, response) -> None:
        data: list[str] = []
        event_type = ""
        while True:
            raw = response.readline()
            if not raw:
                return
            line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
            if line == "":
                if data:
                    self.events.append(Event(self.last_event_id, event_type or "message", json.loads("\n".join(data))))
                data, event_type = [], ""
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
            elif name == "id":
                self.last_event_id = value
            elif name == "retry" and value.isdigit():
                self.retry = int(value)

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        self._conn.close()

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in list(self.events) if e.type == event_type]

    def message_numbers(self, chat: int | None = None) -> list[int]:
        return [
            e.data["message_number"]
            for e in self.of_type("message.created")
            if chat is None or e.data["chat_number"] == chat
        ]


class ResumingSubscriber:
    """A client that does what a browser's EventSource does: when its stream ends or cannot be
    opened, it waits the ``retry:`` hint and opens it again with the last id it saw."""

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path
        self.done: list[Event] = []
        self.current: SSEStream | None = None
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ResumingSubscriber:
        self._thread.start()
        return self

    def _run(self) -> None:
        last: str | None = None
        while not self._stop.is_set():
            stream = SSEStream(self.host, self.port, self.path, last).start()
            self.current = stream
            while not stream.ended.wait(0.1):
                if self._stop.is_set():
                    stream.close()
            if stream.status == 200:
                self.connections += 1
            self.done.extend(stream.events)
            self.current = None
            last = stream.last_event_id or last
            self._stop.wait((stream.retry or 1000) / 1000)  # the client's own reconnection delay

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    @property
    def events(self) -> list[Event]:
        current = self.current
        return self.done + (list(current.events) if current is not None else [])
