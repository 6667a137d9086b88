"""The benchmark harness in its smoke mode (``make bench BENCH_ARGS="--quick"``, as the README
says), end to end.

It starts the real web, relay and workers on the local services, runs every workload once for a
few seconds and writes the report.  This test checks that the report is complete and its numbers
are sane — every workload ran, nothing failed, throughput and lag were measured — and never the
performance targets: those are the benchmark's verdict on the machine, not a property of the code.
The run keeps its database, and ``python -m bench.paired`` then runs on it as its seed.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import make_url, text

from bench.plan import TARGETS
from tests.support.db import ROOT, server_engine

pytestmark = pytest.mark.bench

HTTP_RUNS = ("baseline.db", "baseline.http_post", "baseline.http_get", "W1", "W2", "W3.small", "W3.large", "W1D")
HTTP_RUNS += ("W4.es_load",)
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}


@dataclass
class QuickRun:
    out: Path  # its --out directory: report.json, plot.png, and the seed bench.paired reads
    name: str  # its database, Redis prefix and RabbitMQ namespace
    report: dict


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Iterator[QuickRun]:
    """One ``make bench BENCH_ARGS="--quick …"``, its database kept as the seed of the paired test."""
    out = tmp_path_factory.mktemp("bench") / "results"
    name = f"chatsys_bench_smoke_{uuid.uuid4().hex[:8]}"
    # make bench installs the bench extra first, if needed.  Its own names, so that it never
    # meets a benchmark or another test run on the machine.
    args = f"--quick --keep-db --name {name} --out {out}"
    try:
        done = subprocess.run(
            ["make", "--no-print-directory", "bench", f"BENCH_ARGS={args}"],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"make bench --quick failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        assert (out / "plot.png").stat().st_size > 10_000
        yield QuickRun(out, name, json.loads((out / "report.json").read_text()))
    finally:
        _drop_seed(out / "bench.ini")


@pytest.fixture(scope="module")
def report(quick_run) -> dict:
    return quick_run.report


def measured(report: dict, key: str) -> list[dict]:
    runs = [run for run in report["runs"].get(key, []) if not run.get("spoiled")]
    assert runs, f"{key}: no run, or every attempt overlapped a service outage ({report.get('discarded')})"
    return runs


@pytest.mark.timeout(900)
def test_every_http_workload_and_baseline_ran_without_server_errors(report):
    assert not report.get("aborted")
    for key in HTTP_RUNS:
        for run in measured(report, key):
            assert run["requests"] > 0 and run["throughput"] > 0, key
            # Answers the server got wrong are failures; a load generator's own timeouts on a busy
            # machine are measurements (the report counts them), not a broken harness.
            failures = {kind: n for kind, n in run["errors"].items() if kind != "timeout" and n}
            assert not failures, (key, run["errors"], run["first_error"])
            assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"], key
    assert report["ratios"]["W1_vs_db"] > 0 and report["ratios"]["W2_vs_http_get"] > 0


@pytest.mark.timeout(900)
def test_lag_drain_and_memory_were_measured(report):
    for run in measured(report, "W1D"):  # the deletes' decrements settle: every count exact
        assert run["counts_exact_after_s"] is not None, run
    for kind in ("W4.counted", "W4.counted_w1d", "W4.indexed"):
        lag = report["summary"][kind]
        assert lag["samples"] > 0 and lag["missing"] == 0, (kind, lag)
        assert lag["pooled_ms"]["p50"] is not None and lag["pooled_ms"]["p99"] is not None
    for run in measured(report, "W5"):
        assert run["complete"] and run["published"] == run["rows"] and run["events_per_s"] > 0
    rss = report["summary"]["W6"]["peak_rss_mb"]
    assert rss["web (sum)"] > rss["web-worker-1"] > 0
    assert all(rss[role] > 0 for role in ("relay", "counters", "indexer"))


@pytest.mark.timeout(900)
def test_every_target_is_evaluated(report):
    assert [t["id"] for t in report["targets"]] == [t.id for t in TARGETS]
    assert all(t["pass"] in (True, False) for t in report["targets"]), report["targets"]


@pytest.mark.timeout(600)
def test_paired_runs_measure_two_sides_in_turns_and_drop_the_seed(quick_run, bench_extra):
    """``python -m bench.paired`` on the quick run's seed, in a few seconds of load: two sides
    (here the same checkout twice), a ratio per round, and the seed dropped after."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.paired", "--seed", str(quick_run.out), "--rounds", "2", "--duration", "1"]
        + ["--warmup", "1", "--drop-db", f"a={ROOT}", f"b={ROOT}"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = done.stdout
    assert f"a: chatsys from {ROOT}/chatsys/__init__.py" in out  # the checkout's own code
    runs = re.findall(r"^\s+(a|b): +(\d+)/s", out, re.M)
    assert [side for side, _ in runs] == ["a", "b", "b", "a"]  # in turns, the order swapped each round
    assert all(int(rate) > 0 for _, rate in runs)
    assert re.search(r"^b/a: throughput ratio \d+\.\d{3} \(per round [\d.]+, [\d.]+\)", out, re.M)
    settings = _seed_settings(quick_run.out / "bench.ini")
    assert not _database_exists(settings["sqlalchemy.url"])
    assert not _redis_keys(settings)


def _seed_settings(ini: Path) -> dict:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ini)
    return dict(config["app:main"]) if config.has_section("app:main") else {}


def _database_exists(url: str) -> bool:
    engine = server_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW DATABASES LIKE :name"), {"name": make_url(url).database}).first() is not None
    finally:
        engine.dispose()


def _redis_keys(settings: dict) -> list[bytes]:
    with Redis.from_url(settings["redis.url"]) as client:
        return list(client.scan_iter(f"{settings['redis.key_prefix']}:*", count=1000))


def _drop_seed(ini: Path) -> None:
    """The quick run's database and Redis keys, when the paired test did not get to drop them."""
    settings = _seed_settings(ini)
    if not settings:
        return  # the run stopped before it wrote its ini: it made no database either
    if _database_exists(settings["sqlalchemy.url"]):
        engine = server_engine(settings["sqlalchemy.url"])
        try:
            with engine.connect() as conn:
                conn.execute(text(f"DROP DATABASE `{make_url(settings['sqlalchemy.url']).database}`"))
        finally:
            engine.dispose()
    keys = _redis_keys(settings)
    if keys:
        with Redis.from_url(settings["redis.url"]) as client:
            client.delete(*keys)
