"""``python -m bench.paired``: two checkouts' web servers on one seeded database, measured in turns.

For a change to the web's own code, when the machine's speed drifts more between full runs than
the change moves the figures.  Both sides run at once (``chatsys-web``, the same workers, threads
and ini, each from its own checkout through ``PYTHONPATH``) and wrk loads one, then the other, in
alternating order, round after round; each round gives a throughput ratio of two runs taken
moments apart, and the median of those ratios is the figure.  Only the web runs (no relay, no
consumers): creates leave their outbox rows pending.

It uses the database, ini and wrk scripts a bench run kept::

    .venv/bin/python -m bench --skip W1 --skip W3 --skip W4 --skip W5 --keep-db --repeats 1 --out /tmp/seed
    git worktree add /tmp/before <commit> && ln -s "$PWD/.venv" /tmp/before/.venv
    .venv/bin/python -m bench.paired --seed /tmp/seed --script w2_read.lua before=/tmp/before after=.

``--side-script NAME=FILE`` gives one side a script of its own, for two versions whose paths differ
(the same requests, under /v1 on one side).

``--drop-db`` drops the seed's database and Redis keys at the end (so does a later bench run
without ``--keep-db``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import plaster
import psutil

from bench.monitor import cpu_seconds
from bench.services import service_processes
from bench.stack import child_env, delete_redis_keys, drop_database, free_port, wait_http
from bench.wrk import Wrk
from chatsys.runtime.settings import resolve_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.paired", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seed", type=Path, required=True, help="a bench run's --out directory, run with --keep-db")
    p.add_argument("--script", default="w2_read.lua", help="its wrk script to load with (default w2_read.lua)")
    p.add_argument(
        "--side-script",
        action="append",
        default=[],
        metavar="NAME=SCRIPT",
        help="another script for one side (its paths differ, say): a file in the seed directory or a path",
    )
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of an unmeasured first run per side")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--drop-db", action="store_true", help="drop the seed's database and Redis keys at the end")
    p.add_argument("sides", nargs="+", metavar="NAME=CHECKOUT", help="the first is the reference")
    args = p.parse_args(argv)
    if len(args.sides) < 2 or any("=" not in side for side in args.sides):
        p.error("give at least two NAME=CHECKOUT sides")
    return args


class Side:
    def __init__(self, name: str, checkout: Path, seed: Path, port: int, workers: int):
        self.name, self.port = name, port
        ini = seed / f"paired-{name}.ini"
        ini.write_text(re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", (seed / "bench.ini").read_text()))
        env = child_env(PYTHONPATH=str(checkout))  # this side's code, not the bench's checkout
        # Which chatsys this side's processes import (the checkout's, through PYTHONPATH).
        self.code = subprocess.run(
            [sys.executable, "-c", "import chatsys; print(chatsys.__file__)"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.log = open(seed / f"paired-{name}.log", "w")
        web = Path(sys.executable).parent / "chatsys-web"
        self.popen = subprocess.Popen(
            [str(web), "--workers", str(workers), str(ini)], cwd=checkout, env=env, stdout=self.log, stderr=self.log
        )
        # (requests/s, p99 ms, web CPU ms per request, MySQL CPU ms per request)
        self.results: list[tuple[float, float, float, float]] = []

    def cpu(self) -> float:
        master = psutil.Process(self.popen.pid)
        return cpu_seconds([master, *master.children()])

    def measure(self, script: Path, duration: float, connections: int) -> None:
        # The web's CPU, and MySQL's: a change that moves work into a statement shows in the second.
        # (MySQL serves only this side while wrk loads it; 0 when the server is not local.)
        mysql = service_processes()["mysql"]
        before, mysql_before = self.cpu(), cpu_seconds(mysql)
        run = Wrk(f"http://127.0.0.1:{self.port}", script, self.name, duration, connections).start().wait()
        if run.error_total:
            raise RuntimeError(f"{self.name}: {run.error_total} errors ({run.errors}, {run.first_error})")
        cpu_ms = (self.cpu() - before) / run.requests * 1000
        mysql_ms = (cpu_seconds(mysql) - mysql_before) / run.requests * 1000
        self.results.append((run.throughput, run.latency_ms["p99"], cpu_ms, mysql_ms))
        p99 = run.latency_ms["p99"]
        print(
            f"  {self.name:>10}: {run.throughput:7.0f}/s  p99 {p99:6.1f} ms  web CPU {cpu_ms:.3f} ms/req"
            f"  MySQL CPU {mysql_ms:.3f} ms/req",
            flush=True,
        )

    def stop(self) -> None:
        try:
            self.popen.terminate()
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        finally:
            self.log.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sides: list[Side] = []
    try:
        for name, checkout in (side.split("=", 1) for side in args.sides):
            sides.append(Side(name, Path(checkout).resolve(), args.seed, free_port(), args.workers))
            print(f"{name}: chatsys from {sides[-1].code}", flush=True)
        for side in sides:
            wait_http(f"http://127.0.0.1:{side.port}/healthz", 60)
        scripts = {side.name: args.seed / args.script for side in sides}
        scripts.update((name, args.seed / script) for name, script in (s.split("=", 1) for s in args.side_script))
        for side in sides:  # pools filled, code paths warm: the first round is not a start-up's
            url = f"http://127.0.0.1:{side.port}"
            Wrk(url, scripts[side.name], side.name, args.warmup, args.connections).start().wait()
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            for side in sides if r % 2 == 0 else sides[::-1]:
                side.measure(scripts[side.name], args.duration, args.connections)
    finally:
        for side in sides:
            try:
                side.stop()
            except Exception as exc:  # stop the others, and drop the seed, all the same
                print(f"{side.name}: stopping failed: {exc!r}", file=sys.stderr)
        if args.drop_db:
            # The seed's own names; never CHATSYS_* overrides, which could point at another database.
            settings = resolve_settings(plaster.get_settings(str(args.seed / "bench.ini"), "app:main"), environ={})
            drop_database(settings)
            delete_redis_keys(settings)
    reference = sides[0]
    for side in sides:
        medians = [statistics.median(x[i] for x in side.results) for i in range(4)]
        print(
            f"{side.name}: medians {medians[0]:.0f}/s, p99 {medians[1]:.1f} ms, web CPU {medians[2]:.3f} ms/req, "
            f"MySQL CPU {medians[3]:.3f} ms/req"
        )
    for side in sides[1:]:
        pairs = list(zip(reference.results, side.results, strict=True))
        ratios = [b[0] / a[0] for a, b in pairs]
        cpu = [b[2] / a[2] for a, b in pairs]
        print(
            f"{side.name}/{reference.name}: throughput ratio {statistics.median(ratios):.3f} "
            f"(per round {', '.join(f'{x:.2f}' for x in ratios)}), web CPU per request {statistics.median(cpu):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
