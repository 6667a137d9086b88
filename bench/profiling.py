"""Profiles with py-spy (sampling, out of process: the profiled code is not instrumented).

``--profile`` adds one extra W1 run (not counted in the medians) during which py-spy records:

* the web — the ``chatsys-web`` launcher and all its workers (``--subprocesses``) — as a
  flamegraph SVG and as a speedscope JSON (open it at speedscope.app, or ``speedscope FILE``);
* the relay and the counters worker, as speedscope JSON.

py-spy runs with ``--nonblocking`` (it does not pause the target to read its stacks), idle
threads left out.  :func:`summarize` turns a speedscope file into the tables the report shows:
where the samples are, by function (self and inclusive) and by package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    name: str
    output: Path
    popen: subprocess.Popen
    log: Path


def record(name: str, pid: int, output: Path, duration_s: float, rate: int, fmt: str, subprocesses: bool) -> Recording:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: `make bench-install` (the bench extra pins it)")
    argv = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--output",
        str(output),
        "--format",
        fmt,
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(duration_s))),
        "--nonblocking",
    ]
    if subprocesses:
        argv.append("--subprocesses")
    log = output.with_suffix(output.suffix + ".log")
    with open(log, "wb") as handle:
        popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)
    return Recording(name, output, popen, log)


def finish(recording: Recording, timeout: float = 60.0) -> str | None:
    """Wait for py-spy to write its file; returns an error text or None."""
    try:
        code = recording.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        recording.popen.kill()
        return "py-spy did not finish"
    if code != 0 or not recording.output.exists():
        return f"py-spy exited {code}: {recording.log.read_text(errors='replace')[-500:]}"
    return None


def package_of(filename: str) -> str:
    """Which package a frame's file belongs to: chatsys, a site-package, or the stdlib module."""
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        rest = path.split("/site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    if "/chatsys/" in path:
        return "chatsys"
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return path.rsplit("/", 1)[-1] or "?"


def summarize(speedscope: Path, top: int = 25) -> dict:
    """Self and inclusive sample shares by function and by package, over every profiled thread."""
    data = json.loads(speedscope.read_text())
    frames = data["shared"]["frames"]
    self_fn: Counter[str] = Counter()
    total_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    total_pkg: Counter[str] = Counter()
    samples = 0
    for profile in data["profiles"]:
        weights = profile.get("weights") or [1] * len(profile["samples"])
        for stack, weight in zip(profile["samples"], weights):
            if not stack:
                continue
            samples += weight
            names = []
            pkgs = []
            for index in stack:
                frame = frames[index]
                file = frame.get("file") or ""
                names.append(f"{frame['name']} ({package_of(file)}:{Path(file).name}:{frame.get('line', '')})")
                pkgs.append(package_of(file))
            leaf = stack[-1]  # speedscope stacks run from the root to the leaf
            self_fn[names[-1]] += weight
            self_pkg[package_of(frames[leaf].get("file") or "")] += weight
            for name in set(names):
                total_fn[name] += weight
            for pkg in set(pkgs):
                total_pkg[pkg] += weight

    def share(counter: Counter[str], n: int) -> list[list]:
        return [[name, round(100.0 * count / samples, 1)] for name, count in counter.most_common(n)]

    return {
        "samples": samples,
        "self_by_function_pct": share(self_fn, top),
        "inclusive_by_function_pct": share(total_fn, top),
        "self_by_package_pct": share(self_pkg, 15),
        "inclusive_by_package_pct": share(total_pkg, 15),
    }
