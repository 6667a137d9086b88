"""chatsys-recount <ini>: recompute every chats_count / messages_count from COUNT(*).

Safe while traffic flows; resumable (it walks parents by id, each batch its own transaction).
With --every N it runs again every N seconds, as the safety net behind the counters consumer.
SIGTERM or Ctrl-C stops it after the batch in hand.
"""

import logging

from tqdm import tqdm

from chatsys.consumers.reconcile import LEVELS, reconcile_level, total_parents
from chatsys.runtime.process import Stopper, load
from chatsys.scripts import parser

log = logging.getLogger("chatsys.recount")


def run_once(engine, batch: int, show_progress: bool, stopper: Stopper) -> int:
    repaired = 0
    for level in LEVELS:
        with tqdm(
            total=total_parents(engine, level),
            desc=f"{level.parent}.{level.count_column}",
            unit=level.parent[:-1],
            disable=not show_progress,
        ) as bar:
            repaired += reconcile_level(engine, level, batch=batch, progress=bar.update, stopper=stopper)
        if stopper.stopping:
            break
    return repaired


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, default=100, help="parents per transaction")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS", help="repeat forever")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    stopper = Stopper().install()
    try:
        while not stopper.stopping:
            repaired = run_once(services.engine, args.batch, not args.no_progress, stopper)
            log.info("recount %s: %d counts repaired", "stopped" if stopper.stopping else "done", repaired)
            if args.every is None or stopper.wait(args.every):
                break
    finally:
        services.close()
