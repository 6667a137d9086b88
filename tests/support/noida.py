"""noida-db, a local server speaking the Elasticsearch 8 REST API, as a second search engine for
the tests (the first is the in-process double, testkit/es_double.py).

:class:`NoidaServer` starts ``noida-db start --only elasticsearch`` on a free port with a data
directory of its own and stops it; the test session starts one and shares it (each test works
under its own alias).  :class:`AliasShim` sits in front of it and works around the one noida gap
that would otherwise stop every write: ``_bulk?require_alias=true`` sent to an existing alias
answers 404 on noida (real Elasticsearch accepts it).  For that request, and only when the target
is an existing alias, the shim drops the flag; everything else passes through byte for byte.  The
production code keeps ``require_alias`` (see :mod:`tests.support.noida_gaps` for the gap and its
reproduction, which a test runs against noida itself, without the shim).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from tests.support.net import free_port

STARTUP_TIMEOUT = 20.0


def executable() -> str | None:
    """The noida-db binary shipped in the ``noida_db`` wheel, else a ``noida-db`` on the PATH."""
    try:
        import noida_db  # the test lock installs it

        binary = Path(noida_db.__file__).parent / "noida-db"
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                binary.chmod(0o755)  # as the wheel's own launcher does before running it
            return str(binary)
    except (ImportError, OSError):  # not installed, or not executable and not ours to change
        pass
    return shutil.which("noida-db") or shutil.which("noida-db", path=str(Path(sys.executable).parent))


class NoidaServer:
    """One noida-db process serving only its Elasticsearch API on 127.0.0.1."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log = data_dir / "noida.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NoidaServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a free port can be taken by someone else before noida binds it
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [self.binary, "start", "--only", "elasticsearch", "--elasticsearch-port", str(self.port)]
                    + ["--data-dir", str(self.data_dir)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stop() ends whatever it started
                )
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"noida-db did not start; its output: {self.log.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                try:
                    connection.request("GET", "/")
                    if connection.getresponse().status == 200:
                        return True
                finally:
                    connection.close()
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


class AliasShim:
    """A loopback HTTP proxy to noida that drops ``require_alias`` from a bulk request whose
    target is an existing alias (the only rewrite; see the module docstring)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rewritten = 0  # bulk requests whose flag was dropped: the shim is still needed
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._local = threading.local()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AliasShim:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def upstream(self) -> http.client.HTTPConnection:
        """This thread's kept-alive connection to noida."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
            self._local.connection = connection
        return connection

    def exchange(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> http.client.HTTPResponse:
        for attempt in (1, 2):
            connection = self.upstream()
            try:
                connection.request(method, target, body=body or None, headers=headers)
                return connection.getresponse()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def rewrite(self, method: str, target: str, headers: dict[str, str]) -> str:
        split = urlsplit(target)
        parts = [part for part in split.path.split("/") if part]
        if len(parts) != 2 or parts[1] != "_bulk":
            return target
        params = parse_qsl(split.query, keep_blank_values=True)
        if ("require_alias", "true") not in params:
            return target
        probe = self.exchange("HEAD", f"/_alias/{quote(parts[0], safe='')}", b"", {})
        probe.read()
        if probe.status != 200:
            return target  # a missing alias: noida refuses the write as Elasticsearch does
        self.rewritten += 1
        kept = urlencode([(k, v) for k, v in params if k != "require_alias"])
        return split.path + (f"?{kept}" if kept else "")


def _handler(shim: AliasShim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            target = shim.rewrite(self.command, self.path, headers)
            response = shim.exchange(self.command, target, body, headers)
            payload = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            pass

    return Handler


@contextlib.contextmanager
def running(binary: str, data_dir: Path) -> Iterator[tuple[NoidaServer, AliasShim]]:
    """noida-db and its shim, for as long as the block runs."""
    server = NoidaServer(binary, data_dir).start()
    try:
        shim = AliasShim(server.port).start()
        try:
            yield server, shim
        finally:
            shim.stop()
    finally:
        server.stop()
