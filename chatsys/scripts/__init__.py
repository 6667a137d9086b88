"""Console scripts: thin argparse entry points over the packages that do the work.

Each loads its ini with :func:`chatsys.runtime.process.load` (logging, then the services): none
builds the WSGI application, except ``chatsys-web``, whose workers serve it.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config_uri", help="the ini file, e.g. development.ini")
    return p


def serve_metrics(port: int | None) -> None:
    """Expose this process's Prometheus metrics on ``port`` (none when not given)."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
