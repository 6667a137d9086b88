"""chatsys benchmark harness: the real processes on the local services, measured against their own limits.

``python -m bench`` (or ``make bench``) migrates a database of its own, starts ``chatsys-web``,
``chatsys-relay`` and both ``chatsys-worker`` consumers from a generated ini, seeds data, and runs:

* baselines, in the same run and at the same concurrency: the raw database limit (PyMySQL
  transactions inserting a message row and an outbox row) and the HTTP server limit (waitress,
  same launcher, workers and threads, serving a trivial WSGI app);
* W1 create, W2 read, W3 search (database backend; 1,000- and 100,000-message chats), W4 pipeline
  lag (201 → counted under W1; 201 → indexed with the Elasticsearch test double), W5 relay drain,
  W6 peak memory during W1;

with ``wrk`` as the load generator (a separate C process; its CPU is measured), each workload
several times, and writes ``bench/results/<UTC timestamp>/report.json`` and ``plot.png``.

Modules: :mod:`bench.plan` (what to run, targets), :mod:`bench.stack` (ini, database, processes),
:mod:`bench.services` (reachability, restarts), :mod:`bench.seed`, :mod:`bench.wrk`,
:mod:`bench.dbload` (raw database baseline), :mod:`bench.trivial` (HTTP baseline app),
:mod:`bench.probes` (lag), :mod:`bench.esdouble`, :mod:`bench.monitor` (RSS, CPU),
:mod:`bench.drain` (W5), :mod:`bench.profiling` (py-spy), :mod:`bench.report`, :mod:`bench.plot`,
:mod:`bench.run` (the orchestration) and :mod:`bench.cli`.
"""
