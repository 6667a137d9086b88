"""chatsys-recount <ini>: bring every chats_count / messages_count back to its rows.

Safe while traffic flows, and it never stalls it: no chat or application row stays locked longer
than one chunk of flags takes to set (``--chunk``, 200 rows: milliseconds), whatever the chat's
size (chatsys.consumers.reconcile says how, and why nothing is lost or counted twice).  Resumable:
it walks parents by id.  One runs at a time (a MySQL named lock); a second one says so and does
nothing.  With --every N it runs again every N seconds, as the safety net behind the counters
consumer.  SIGTERM or Ctrl-C stops it after the chunk in hand.
"""

import logging

from tqdm import tqdm

from chatsys.consumers.reconcile import LEVELS, Outcome, exclusive, reconcile_level, total_parents
from chatsys.runtime.process import Stopper, load
from chatsys.scripts import parser

log = logging.getLogger("chatsys.recount")


def run_once(engine, batch: int, show_progress: bool, stopper: Stopper, chunk: int = 200) -> Outcome:
    outcome = Outcome()
    with exclusive(engine) as still_exclusive:
        if still_exclusive is None:
            log.warning("another chatsys-recount is running on this database: this one does nothing")
            outcome.skipped = True
            return outcome
        for level in LEVELS:
            with tqdm(
                total=total_parents(engine, level),
                desc=f"{level.parent}.{level.count_column}",
                unit=level.parent[:-1],
                disable=not show_progress,
            ) as bar:
                outcome.add(
                    reconcile_level(
                        engine,
                        level,
                        batch=batch,
                        chunk=chunk,
                        progress=bar.update,
                        stopper=stopper,
                        still_exclusive=still_exclusive,
                    )
                )
            if stopper.stopping:
                break
    return outcome


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, default=100, help="parents read at a time")
    p.add_argument("--chunk", type=int, default=200, help="children whose flags one short transaction sets, at most")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS", help="repeat forever")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    stopper = Stopper().install()
    try:
        while not stopper.stopping:
            outcome = run_once(services.engine, args.batch, not args.no_progress, stopper, chunk=args.chunk)
            if not outcome.skipped:
                log.info(
                    "recount %s: %d counts repaired, %d flags set with their counts, a parent locked %.1f ms at "
                    "most (%d short transactions; 99th percentile %.1f ms, median %.1f ms)",
                    "stopped" if stopper.stopping else "done",
                    outcome.repaired,
                    outcome.flipped,
                    outcome.longest_lock * 1000,
                    len(outcome.holds),
                    outcome.lock_percentile(0.99) * 1000,
                    outcome.lock_percentile(0.5) * 1000,
                )
            if args.every is None or stopper.wait(args.every):
                break
    finally:
        services.close()
