"""``python -m bench.paired`` end to end, in a few seconds of load: a seed kept by a quick bench
run, two sides (here the same checkout twice), a ratio per round, and the seed dropped after."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from tests.support.db import ROOT, server_engine

pytestmark = pytest.mark.bench


def run(argv: list[str], env: dict[str, str]) -> str:
    """Run ``argv`` in the checkout; its standard output, once it has succeeded."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.timeout(600)
def test_two_sides_are_measured_in_turns_and_the_seed_is_dropped(tmp_path, bench_extra):
    name = f"chatsys_bench_paired_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
    seed = tmp_path / "seed"
    skip = [arg for w in ("W1", "W3", "W4", "W5") for arg in ("--skip", w)]
    run([sys.executable, "-m", "bench", "--quick", "--keep-db", "--name", name, "--out", str(seed), *skip], env)

    out = run(
        [sys.executable, "-m", "bench.paired", "--seed", str(seed), "--rounds", "2", "--duration", "1"]
        + ["--warmup", "1", "--drop-db", f"a={ROOT}", f"b={ROOT}"],
        env,
    )
    assert f"a: chatsys from {ROOT}/chatsys/__init__.py" in out  # the checkout's own code
    runs = re.findall(r"^\s+(a|b): +(\d+)/s", out, re.M)
    assert [side for side, _ in runs] == ["a", "b", "b", "a"]  # in turns, the order swapped each round
    assert all(int(rate) > 0 for _, rate in runs)
    assert re.search(r"^b/a: throughput ratio \d+\.\d{3} \(per round [\d.]+, [\d.]+\)", out, re.M)

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(seed / "bench.ini")
    engine = server_engine(ini["app:main"]["sqlalchemy.url"])
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW DATABASES LIKE :name"), {"name": name}).first() is None
    finally:
        engine.dispose()
