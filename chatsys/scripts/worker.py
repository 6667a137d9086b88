"""chatsys-worker <ini> --consumer counters|indexer|purger|all: apply domain events from RabbitMQ."""

import logging

from chatsys.consumers.counters import CountersConsumer
from chatsys.consumers.indexer import IndexerConsumer
from chatsys.consumers.purger import PurgerConsumer
from chatsys.consumers.runner import Runner
from chatsys.runtime.process import Backoff, Stopper, load
from chatsys.scripts import parser, serve_metrics
from chatsys.search.interfaces import SearchUnavailable

CHOICES = ("counters", "indexer", "purger", "all")
log = logging.getLogger("chatsys.worker")


def ensure_index(search, stopper: Stopper, attempts: int = 30) -> None:
    """Create the search index if it is missing; wait (bounded) for a backend that is still
    starting rather than exit, and go on without it at worst: writes are retried until it is."""
    backoff = Backoff(base=2.0, cap=10.0)
    for attempt in range(1, attempts + 1):
        try:
            search.ensure_index()
            return
        except SearchUnavailable as exc:
            log.warning("search backend not ready (%s); attempt %d/%d", exc, attempt, attempts)
            if stopper.wait(backoff.next()):
                return


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--consumer", choices=CHOICES, default="all")
    p.add_argument("--prefetch", type=int, default=None, help="unacknowledged messages per queue (worker.prefetch)")
    p.add_argument("--batch", type=int, default=None, help="events per transaction / bulk (worker.batch_size)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics here")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    settings = services.settings
    stopper = Stopper().install()
    serve_metrics(args.metrics_port)
    consumers: list = []
    purger = None
    if args.consumer in ("counters", "all"):
        consumers.append(CountersConsumer(services.engine))
    if args.consumer in ("indexer", "purger", "all"):
        ensure_index(services.search, stopper)
    if args.consumer in ("indexer", "all"):
        consumers.append(IndexerConsumer(services.search))
    if args.consumer in ("purger", "all"):
        purger = PurgerConsumer(services.engine, services.search, stopper, settings["worker.purge_batch"])
        consumers.append(purger)
    try:
        runner = Runner(
            services.amqp_parameters(f"chatsys-worker-{args.consumer}"),
            services.topology,
            consumers,
            services.engine,
            stopper,
            prefetch=args.prefetch or settings["worker.prefetch"],
            batch_size=args.batch or settings["worker.batch_size"],
            retry_pause=settings["worker.retry_pause"],
            max_pause=settings["worker.max_pause"],
            max_rounds=settings["worker.max_rounds"],
        )
        if purger is not None:
            purger.keep_alive = runner.keep_alive
        runner.run()
    finally:
        services.close()
