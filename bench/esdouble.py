"""The Elasticsearch test double as a process of its own, noting when each document was indexed.

``python -m bench.esdouble --record FILE`` starts :class:`testkit.es_double.ElasticsearchDouble`
(the in-process double the test suite uses; the indexer worker writes to it through the real
``elasticsearch`` client), prints its URL on the first line of stdout, and appends
``doc_id<TAB>unix time`` to FILE for every document a bulk request applied — the moment the
write became visible to a realtime GET.  W4 reads that file (:class:`bench.probes.IndexedPoller`).

It runs in its own process so that its Python work (analysis of every document) is measured on
its own and does not share the harness's GIL with the lag probes.  The double records every
request it receives; the bench clears that list after each bulk so memory stays flat.

The double keeps its whole index as Python objects (about 200 per document), and CPython's full
collections walk all of them: by the end of a W4 run each one stopped the double for 0.5 to 1.6 s
while it held the GIL, and every bulk request in flight waited, which showed up as indexing lag
that belongs to the double, not to chatsys (a real Elasticsearch runs elsewhere with its own
memory management).  After each bulk the double therefore moves what it has stored out of the
collector's sight (``gc.freeze()``); the stored documents hold no reference cycles, so nothing
collectable is kept.  Any pause the collector still takes over 50 ms is written to the double's
log, so a stall of the double stays visible.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
import time
from typing import Any

from testkit.es_double import ElasticsearchDouble


class RecordingDouble(ElasticsearchDouble):
    def __init__(self, record_path: str) -> None:
        super().__init__()
        self._record = open(record_path, "a", buffering=1 << 16)
        self._record_lock = threading.Lock()
        self.documents_indexed = 0

    def _bulk(self, url_index: str | None, params: dict[str, str], operations: list[Any]) -> tuple[int, Any]:
        status, payload = super()._bulk(url_index, params, operations)
        now = time.time()
        lines = []
        for item in payload.get("items", ()):
            result = next(iter(item.values()))
            if result.get("status") in (200, 201):
                lines.append(f"{result['_id']}\t{now:.6f}\n")
        with self._record_lock:
            self._record.write("".join(lines))
            self._record.flush()
            self.documents_indexed += len(lines)
        self.clear_requests()
        gc.freeze()
        return status, payload


class PauseLog:
    """Writes each garbage-collector pause longer than ``threshold`` seconds to stderr."""

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = threshold
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        if took > self.threshold:
            generation = info["generation"]
            print(f"gc: a generation {generation} collection paused the double {took * 1000:.0f} ms", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", required=True, help="file to append doc_id<TAB>time lines to")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    gc.callbacks.append(PauseLog())
    double = RecordingDouble(args.record).start()
    print(double.url, flush=True)
    try:
        stop.wait()
    finally:
        double.stop()


if __name__ == "__main__":
    main()
