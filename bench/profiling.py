"""Profiles with py-spy (sampling, out of process: the profiled code is not instrumented).

``--profile`` adds one extra W1 run (not counted in the medians) during which py-spy records, as
speedscope JSON (open at speedscope.app, or ``speedscope FILE``):

* each web worker, with ``--gil``: only the thread holding the GIL is sampled, so the profile is
  where the worker's *CPU* goes — waitress threads waiting for work or for MySQL do not dilute it;
* the relay and the counters worker (all their threads, idle ones left out).

py-spy runs with ``--nonblocking`` (it does not pause the target to read its stacks).  The web
workers' profiles are merged into ``profile-web.svg``, a flamegraph drawn by :func:`flamegraph`,
and :func:`summarize` gives the report's tables: samples by function (self and inclusive) and by
package.  One py-spy per process at a modest rate, because the profilers share the two cores too.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
import zlib
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


def record(name: str, pid: int, output: Path, duration_s: float, rate: int, gil: bool = False) -> Recording:
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
        "speedscope",
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(duration_s))),
        "--nonblocking",
    ]
    if gil:
        argv.append("--gil")
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


def stacks(speedscope: Path) -> list[tuple[list[dict], float]]:
    """Every sample of a speedscope file as (frames root → leaf, weight)."""
    data = json.loads(speedscope.read_text())
    frames = data["shared"]["frames"]
    result = []
    for profile in data["profiles"]:
        weights = profile.get("weights") or [1] * len(profile["samples"])
        for stack, weight in zip(profile["samples"], weights, strict=True):
            if stack:  # speedscope stacks run from the root to the leaf
                result.append(([frames[i] for i in stack], weight))
    return result


def label(frame: dict) -> str:
    """``function (package:file)``: lines left out, so a function's samples add up in one place."""
    file = frame.get("file") or ""
    return f"{frame['name']} ({package_of(file)}:{Path(file).name})"


def summarize(speedscopes: list[Path], top: int = 25) -> dict:
    """Self and inclusive sample shares by function and by package, over every profiled thread."""
    self_fn: Counter[str] = Counter()
    total_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    total_pkg: Counter[str] = Counter()
    samples = 0
    for path in speedscopes:
        for frames, weight in stacks(path):
            samples += weight
            names = [label(f) for f in frames]
            pkgs = [package_of(f.get("file") or "") for f in frames]
            self_fn[names[-1]] += weight
            self_pkg[pkgs[-1]] += weight
            for name in set(names):
                total_fn[name] += weight
            for pkg in set(pkgs):
                total_pkg[pkg] += weight

    def share(counter: Counter[str], n: int) -> list[list]:
        return [[name, round(100.0 * count / samples, 1)] for name, count in counter.most_common(n)] if samples else []

    return {
        "samples": samples,
        "self_by_function_pct": share(self_fn, top),
        "inclusive_by_function_pct": share(total_fn, top),
        "self_by_package_pct": share(self_pkg, 15),
        "inclusive_by_package_pct": share(total_pkg, 15),
    }


def flamegraph(speedscopes: list[Path], output: Path, title: str, width: int = 1600) -> Path:
    """A flamegraph SVG (root at the bottom, width = share of samples; hover for the numbers)."""
    tree: dict = {"children": {}, "count": 0}
    for path in speedscopes:
        for frames, weight in stacks(path):
            node = tree
            node["count"] += weight
            for frame in frames:
                node = node["children"].setdefault(label(frame), {"children": {}, "count": 0})
                node["count"] += weight
    total = tree["count"] or 1
    row = 16
    rects: list[str] = []
    depth_max = 0

    def walk(node: dict, x: float, depth: int) -> None:
        nonlocal depth_max
        depth_max = max(depth_max, depth)
        for name, child in sorted(node["children"].items()):
            w = child["count"] / total * width
            if w >= 0.5:
                hue = 20 + (zlib.crc32(name.split(" (")[-1].split(":")[0].encode()) % 40)  # by package
                text = html.escape(name)
                pct = 100.0 * child["count"] / total
                rects.append(
                    f"<g><title>{text} — {child['count']:.2f} s sampled, {pct:.1f}%</title>"
                    f'<rect x="{x:.1f}" y="{{y{depth}}}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},85%,60%)"/>'
                    + (
                        f'<text x="{x + 3:.1f}" y="{{t{depth}}}">{html.escape(name[: int(w / 7)])}</text>'
                        if w > 40
                        else ""
                    )
                    + "</g>"
                )
            walk(child, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = (depth_max + 3) * row
    body = "\n".join(rects)
    for depth in range(depth_max + 1):
        y = height - (depth + 2) * row
        body = body.replace(f"{{y{depth}}}", str(y)).replace(f"{{t{depth}}}", str(y + row - 4))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
        f'font-size="11"><text x="4" y="14">{html.escape(title)} — {total:.1f} s sampled</text>\n{body}\n</svg>\n'
    )
    output.write_text(svg)
    return output
