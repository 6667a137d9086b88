"""chatsys-deadletters <ini> list|replay|purge: parked outbox rows and dead-lettered messages.

list    show parked outbox rows (which the relay also retries by itself, every relay.parked_retry
        seconds), each consumer's dead letters with the recorded errors, and the purges of
        deleted chats and applications still in progress
replay  make parked rows pending again at once, and move the dead letters each queue holds now
        back to their consumer, once each (after a fix); then report those the consumer rejected
        straight back, which stay dead-lettered
purge   delete them (asks for --yes)
"""

import argparse
import sys

from chatsys.broker.topology import CONSUMERS
from chatsys.consumers.deadletters import DeadLetter, DeadLetterQueues
from chatsys.consumers.purger import pending
from chatsys.outbox.parked import parked_count, parked_rows, purge_parked, replay_parked
from chatsys.runtime.process import load
from chatsys.scripts import parser


def _letter(d: DeadLetter) -> str:
    replays = f" replays={d.replays}" if d.replays else ""
    return f"  {d.type} {d.message_id} reason={d.reason} deaths={d.deaths}{replays} error={d.error}\n"


def main(argv=None) -> None:
    p = parser(__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("action", choices=("list", "replay", "purge"))
    p.add_argument("--consumer", choices=CONSUMERS, help="only this consumer's dead letters")
    p.add_argument("--outbox-only", action="store_true", help="only parked outbox rows")
    p.add_argument("--queues-only", action="store_true", help="only dead-letter queues")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="replay: seconds to watch for dead letters rejected straight back (default 5; 0: do not wait)",
    )
    p.add_argument("--yes", action="store_true", help="confirm purge")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    engine = services.engine
    topology = services.topology
    queues = DeadLetterQueues(services.amqp_parameters("chatsys-deadletters"), topology, engine)
    consumers = [args.consumer] if args.consumer else list(CONSUMERS)
    with_outbox, with_queues = not args.queues_only, not args.outbox_only
    out = sys.stdout
    try:
        if args.action == "list":
            if with_outbox:
                rows = parked_rows(engine, args.limit or 100)
                total = parked_count(engine)
                shown = f" (the first {len(rows)} shown)" if total > len(rows) else ""
                out.write(f"parked outbox rows: {total}{shown}\n")
                for r in rows:
                    out.write(
                        f"  #{r.id} {r.type} {r.event_id} attempts={r.attempts} "
                        f"next_try={r.next_attempt_at.isoformat(timespec='seconds')}Z error={r.last_error}\n"
                    )
            if with_queues:
                for consumer in consumers:
                    letters = queues.peek(consumer, args.limit or 100)
                    out.write(f"dead letters of {consumer}: {len(letters)}\n")
                    for d in letters:
                        out.write(_letter(d))
            if with_outbox:
                purges = pending(engine, args.limit or 100)
                out.write(f"purges in progress: {len(purges)}\n")
                for purge in purges:
                    deleted = purge.deleted_at.isoformat(timespec="seconds")
                    out.write(f"  {purge.kind} {purge.key} deleted={deleted}Z messages_left={purge.messages_left}\n")
        elif args.action == "replay":
            if with_outbox:
                out.write(f"parked outbox rows made pending: {replay_parked(engine, args.limit)}\n")
            if with_queues:
                replays = [queues.replay(consumer, args.limit) for consumer in consumers]
                for r in replays:
                    left = f" ({r.left} left for a later replay)" if r.left else ""
                    out.write(f"dead letters moved back to {r.consumer}: {r.count}{left}\n")
                out.flush()
                if args.wait > 0:
                    queues.came_back(replays, args.wait)
                for r in replays:
                    if not r.count or args.wait <= 0:
                        continue
                    if not r.checked:
                        out.write(
                            f"no consumer on {topology.queue(r.consumer)}: "
                            "whether they are still refused shows once a worker runs (list)\n"
                        )
                        continue
                    out.write(
                        f"rejected straight back to {topology.dead_queue(r.consumer)} "
                        f"(within {args.wait:g}s), left there: {len(r.came_back)}\n"
                    )
                    for d in r.came_back:
                        out.write(_letter(d))
        else:
            if not args.yes:
                p.error("purge deletes data: add --yes")
            if with_outbox:
                out.write(f"parked outbox rows deleted: {purge_parked(engine)}\n")
            if with_queues:
                for consumer in consumers:
                    out.write(f"dead letters purged from {consumer}: {queues.purge(consumer)}\n")
    finally:
        services.close()
