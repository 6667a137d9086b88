"""chatsys-recount <ini>: recompute every chats_count / messages_count from COUNT(*).

Safe while traffic flows; resumable (it walks parents by id, each batch its own transaction).
With --every N it runs again every N seconds, as the safety net behind the counters consumer.
"""

import logging
import signal
import time

from tqdm import tqdm

from chatsys.consumers.reconcile import LEVELS, reconcile_level, total_parents
from chatsys.scripts import load, parser

log = logging.getLogger("chatsys.recount")


def run_once(engine, batch: int, show_progress: bool) -> int:
    repaired = 0
    for level in LEVELS:
        with tqdm(
            total=total_parents(engine, level),
            desc=f"{level.parent}.{level.count_column}",
            unit=level.parent[:-1],
            disable=not show_progress,
        ) as bar:
            repaired += reconcile_level(engine, level, batch=batch, progress=bar.update)
    return repaired


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, default=100, help="parents per transaction")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS", help="repeat forever")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    args = p.parse_args(argv)
    env = load(args.config_uri)
    engine = env["registry"]["db_engine"]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while True:
            repaired = run_once(engine, args.batch, not args.no_progress)
            log.info("recount done: %d counts repaired", repaired)
            if args.every is None:
                break
            deadline = time.monotonic() + args.every
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.2)
            if stopping:
                break
    finally:
        env["closer"]()
