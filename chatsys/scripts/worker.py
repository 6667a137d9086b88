"""chatsys-worker <ini> --consumer counters|indexer|all: apply domain events from RabbitMQ."""

import logging
import time

from chatsys.broker import connection_parameters, topology_from_settings
from chatsys.consumers.counters import CountersConsumer
from chatsys.consumers.indexer import IndexerConsumer
from chatsys.consumers.runner import Runner
from chatsys.scripts import load, parser, serve_metrics
from chatsys.search.interfaces import SearchUnavailable

CHOICES = ("counters", "indexer", "all")
log = logging.getLogger("chatsys.worker")


def ensure_index(search, attempts: int = 30) -> None:
    """Create the search index if it is missing; wait (bounded) for a backend that is still
    starting rather than exit, and go on without it at worst: writes are retried until it is."""
    for attempt in range(1, attempts + 1):
        try:
            search.ensure_index()
            return
        except SearchUnavailable as exc:
            log.warning("search backend not ready (%s); attempt %d/%d", exc, attempt, attempts)
            time.sleep(min(2.0 * attempt, 10.0))


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--consumer", choices=CHOICES, default="all")
    p.add_argument("--prefetch", type=int, default=200, help="unacknowledged messages per queue")
    p.add_argument("--batch", type=int, default=100, help="events applied per transaction / bulk")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics here")
    args = p.parse_args(argv)
    env = load(args.config_uri)
    registry = env["registry"]
    settings = registry.settings
    engine = registry["db_engine"]
    serve_metrics(args.metrics_port)
    consumers = []
    if args.consumer in ("counters", "all"):
        consumers.append(CountersConsumer(engine))
    if args.consumer in ("indexer", "all"):
        search = env["request"].search
        ensure_index(search)
        consumers.append(IndexerConsumer(search))
    params = connection_parameters({**settings, "amqp.connection_name": f"chatsys-worker-{args.consumer}"})
    try:
        Runner(
            params,
            topology_from_settings(settings),
            consumers,
            engine,
            prefetch=args.prefetch,
            batch_size=args.batch,
            retry_pause=float(settings.get("worker.retry_pause", 0.5)),
            max_rounds=int(settings.get("worker.max_rounds", 5)),
        ).run()
    finally:
        env["closer"]()
