"""Console scripts: thin argparse entry points over the packages that do the work."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("config_uri", help="the ini file, e.g. development.ini")
    return p


def load(config_uri: str) -> dict:
    """Logging from the ini, then the app's registry (engine, settings, services) via bootstrap."""
    from pyramid.paster import bootstrap, setup_logging  # not at import: see chatsys.scripts.web

    setup_logging(config_uri)
    return bootstrap(config_uri)


def serve_metrics(port: int | None) -> None:
    """Expose this process's Prometheus metrics on ``port`` (none when not given)."""
    if port:
        from prometheus_client import start_http_server  # not at import: see chatsys.scripts.web

        start_http_server(port, addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
