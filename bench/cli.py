"""``python -m bench [--quick] [--profile] [options]``: run the benchmark, write report.json and plot.png.

The full run (default) takes under 10 minutes on a 2-core machine; ``--quick`` (one short run per
workload, small seeds) under 90 seconds.  Results go to ``bench/results/<UTC timestamp>/``:
``report.json`` (every run's raw figures, medians, spread, ratios, targets), ``plot.png``, the
generated inis and wrk scripts, ``logs/`` of every process, and the py-spy profiles with
``--profile``.  ``--replot DIR`` rebuilds the summary, table and plot of an earlier report.

Exit status: 0 when every workload ran (whatever the targets say: they are in the report),
1 when the run was aborted (a service stayed down, a process died, Ctrl-C), 2 on bad usage or a
missing tool.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import plan as plans
from bench.stack import ROOT

RESULTS = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="the stream workload instead (bench/stream.py; its options: python -m bench.stream --help)",
    )
    p.add_argument("--quick", action="store_true", help="smoke mode: one short run per workload, small seeds (< 90 s)")
    p.add_argument("--profile", action="store_true", help="one extra W1 run under py-spy (web, relay, counters)")
    p.add_argument("--workers", type=int, help="chatsys-web worker processes (default: cores)")
    p.add_argument("--threads", type=int, help="waitress threads per worker (default: the base ini's)")
    p.add_argument("--connections", type=int, help="concurrent connections (default 32)")
    p.add_argument("--repeats", type=int, help="runs per workload (default 3; quick 1)")
    p.add_argument("--duration", type=float, help="seconds of every measured run (overrides each workload's)")
    p.add_argument("--drain-rows", type=int, help="W5 pending outbox rows (default 100,000; quick 5,000)")
    p.add_argument("--search-large", type=int, help="messages in W3's large chat (default 100,000; quick 10,000)")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["W1", "W2", "W3", "W1D", "W4", "W5"],
        help="leave a workload out (repeatable); W6 is measured during W1",
    )
    p.add_argument(
        "--bigchat",
        action="store_true",
        help="instead of the workloads: create p99 beside chatsys-recount and an outbox purge on a "
        "1,000,000-message chat (bench/bigchat.py; --duration, --connections, --repeats apply)",
    )
    p.add_argument("--bigchat-messages", type=int, default=1_000_000, help="messages of --bigchat's chat")
    p.add_argument("--bigchat-outbox", type=int, default=1_000_000, help="published outbox rows --bigchat purges")
    p.add_argument("--name", help="database / Redis prefix / RabbitMQ namespace (default chatsys_bench)")
    p.add_argument("--base-ini", help="ini the generated one starts from (default development.ini)")
    p.add_argument("--out", type=Path, help="results directory (default bench/results/<UTC timestamp>)")
    p.add_argument("--keep-db", action="store_true", help="keep the benchmark database at the end")
    p.add_argument("--replot", type=Path, metavar="DIR", help="rebuild summary, table and plot of DIR/report.json")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> plans.Plan:
    overrides = {}
    for field, value in (
        ("workers", args.workers),
        ("threads", args.threads),
        ("connections", args.connections),
        ("repeats", args.repeats),
        ("drain_rows", args.drain_rows),
        ("search_large", args.search_large),
        ("name", args.name),
        ("base_ini", args.base_ini),
    ):
        if value is not None:
            overrides[field] = value
    if args.duration is not None:
        for field in ("w1_s", "w2_s", "w3_s", "w4_es_s", "baseline_s"):
            overrides[field] = args.duration
    overrides.update(profile=args.profile, keep_db=args.keep_db, skip=args.skip)
    return plans.quick(**overrides) if args.quick else plans.full(**overrides)


def finish(results: dict, plan: plans.Plan, out: Path) -> dict:
    """Add summary, ratios and targets; write report.json and plot.png; print the table."""
    from bench import report as reporting

    built = reporting.build(results, plan)
    report = {**results, **built}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    plot_error = None
    try:
        from bench.plot import plot

        plot(results, built, out / "plot.png")
    except Exception as exc:  # the numbers matter more than the picture
        plot_error = f"{exc.__class__.__name__}: {exc}"
        logging.getLogger("bench").exception("plot failed")
    print()
    print(reporting.table(built))
    print()
    if results.get("aborted"):
        print(f"ABORTED: {results['aborted']}")
    if results.get("discarded"):
        print(f"{len(results['discarded'])} run(s) discarded because a service blipped (see report.json 'discarded')")
    profile = results.get("profile")
    if profile:
        for name, summary in profile.get("summaries", {}).items():
            top = ", ".join(f"{pkg} {pct}%" for pkg, pct in summary["self_by_package_pct"][:6])
            print(f"profile {name}: self time by package: {top}")
    print(f"report: {out / 'report.json'}")
    print(f"plot:   {out / 'plot.png'}" + (f" (FAILED: {plot_error})" if plot_error else ""))
    return report


def bigchat(args: argparse.Namespace) -> int:
    from bench import bigchat as scenario

    RESULTS.mkdir(parents=True, exist_ok=True)
    lock = open(RESULTS / f".{args.name or 'chatsys_bench'}_bigchat.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another --bigchat run uses this name; wait for it or pass --name", file=sys.stderr)
        return 2
    out = args.out or RESULTS / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-bigchat")
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return scenario.main(args, out)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--stream" in argv:  # the stream workload runs on its own stack (bench/stream.py)
        from bench import stream

        stream.main([arg for arg in argv if arg != "--stream"])
        return
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    # pika narrates every connection, and logs refused ones as errors while the harness itself
    # is waiting out a broker restart: the harness reports outages its own way.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    if args.replot:
        results = json.loads((args.replot / "report.json").read_text())
        plan = plans.Plan(**results["meta"]["plan"])
        finish({k: v for k, v in results.items() if k not in ("summary", "ratios", "targets")}, plan, args.replot)
        return

    try:
        import matplotlib  # noqa: F401
        import psutil  # noqa: F401
    except ImportError as exc:
        print(f"missing the bench extra ({exc.name}): run `make bench-install`", file=sys.stderr)
        sys.exit(2)
    from bench.run import BenchRun
    from bench.wrk import WrkMissing, ensure_wrk

    if args.bigchat:
        sys.exit(bigchat(args))
    plan = make_plan(args)
    try:
        ensure_wrk(install=True)
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)

    RESULTS.mkdir(parents=True, exist_ok=True)
    lock = open(RESULTS / f".{plan.name}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another benchmark run uses the name {plan.name!r}; wait for it or pass --name", file=sys.stderr)
        sys.exit(2)
    out = args.out or RESULTS / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("bench").info("results in %s (%s run)", out, "quick" if plan.quick else "full")

    results = BenchRun(plan, out).execute()
    finish(results, plan, out)
    sys.exit(1 if results.get("aborted") else 0)
