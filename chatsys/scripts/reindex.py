"""chatsys-reindex <ini>: rebuild the Elasticsearch index from MySQL and swap the alias.

Search keeps answering throughout (from the old index until the swap).  Safe to restart: an
unfinished run's index is deleted by the next one.  With search.backend = database there is
nothing to rebuild.
"""

import logging
import sys

from sqlalchemy import text
from tqdm import tqdm

from chatsys.runtime.process import load
from chatsys.scripts import parser

log = logging.getLogger("chatsys.reindex")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, default=1000, help="messages per bulk request")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    try:
        search = services.search
        if search.name != "elasticsearch":
            log.info("search.backend is %s: nothing to reindex", search.name)
            return
        from chatsys.search.reindex import ReindexFailed, reindex

        with services.engine.connect() as conn:
            total = conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one()
        with tqdm(total=total, unit="msg", desc="reindex", disable=args.no_progress) as bar:
            try:
                name = reindex(services.engine, search, batch=args.batch, progress=bar.update)
            except ReindexFailed as exc:
                log.error("reindex failed: %s", exc)
                sys.exit(1)
        log.info("reindex done: %s", name)
    finally:
        services.close()
