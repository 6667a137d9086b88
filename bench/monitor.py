"""Who used the memory and the cores: psutil samples of every process that matters.

Roles are resolved from pids at each sample, so a web worker that the launcher restarted is
picked up.  :class:`Monitor` samples RSS (and, less often, PSS: shared copy-on-write pages of
forked web workers counted once) and keeps peaks; :func:`cpu_snapshot` / :func:`cpu_delta` give
the CPU seconds each role used over a window, next to the whole machine's busy time, so
``other`` is what neither the stack nor the services used — another suite loading the CPU.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from bench.background import Background
from bench.services import service_processes

MB = 1024 * 1024


def role_processes(pids: dict[str, int], with_services: bool = True) -> dict[str, list[psutil.Process]]:
    """role → processes.  ``web`` becomes ``web-master`` and one ``web-worker-<i>`` per child."""
    roles: dict[str, list[psutil.Process]] = {}
    for role, pid in pids.items():
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            continue
        if role in ("web", "trivial-web"):
            roles[f"{role}-master"] = [proc]
            try:
                children = sorted(proc.children(), key=lambda c: c.pid)
            except psutil.Error:
                children = []
            for i, child in enumerate(children):
                roles[f"{role}-worker-{i + 1}"] = [child]
        else:
            roles[role] = [proc]
    if with_services:
        roles.update({name: procs for name, procs in service_processes().items() if procs})
    return roles


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


@dataclass
class CpuSnapshot:
    at: float
    machine_busy: float  # busy CPU seconds of the whole machine (all cores)
    roles: dict[str, float]
    pids: dict[str, tuple[int, ...]]


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


def cpu_snapshot(pids: dict[str, int]) -> CpuSnapshot:
    roles = role_processes({**pids, "harness": os.getpid()})
    return CpuSnapshot(
        at=time.monotonic(),
        machine_busy=machine_busy(),
        roles={role: cpu_seconds(procs) for role, procs in roles.items()},
        pids={role: tuple(p.pid for p in procs) for role, procs in roles.items()},
    )


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot, extra: dict[str, float] | None = None) -> dict:
    """Cores used per role over the window (1.0 = one core busy all the time), and the machine's.

    ``extra`` adds CPU seconds measured elsewhere (wrk's rusage, the DB baseline's clients).
    Web workers are summed into ``web``; ``other`` = machine busy − everything attributed.
    """
    wall = after.at - before.at
    cores = os.cpu_count() or 1
    roles: dict[str, float] = {}
    for role, seconds in after.roles.items():
        if before.pids.get(role) != after.pids.get(role):
            continue  # restarted within the window: not comparable
        roles[role] = max(0.0, seconds - before.roles.get(role, 0.0)) / wall
    for role, seconds in (extra or {}).items():
        roles[role] = roles.get(role, 0.0) + seconds / wall
    attributed = sum(roles.values())  # every process once, before the per-group sums
    for prefix in ("web", "trivial-web"):
        parts = [v for k, v in roles.items() if k.startswith(f"{prefix}-")]
        if parts:
            roles[prefix] = sum(parts)
    busy = (after.machine_busy - before.machine_busy) / wall
    roles["other"] = max(0.0, busy - attributed)
    return {
        "wall_s": round(wall, 2),
        "machine_cores_busy": round(busy, 3),
        "machine_cores": cores,
        "machine_busy_share": round(busy / cores, 3),
        "cores_by_role": {k: round(v, 3) for k, v in sorted(roles.items(), key=lambda kv: -kv[1])},
    }


def bottleneck(cpu: dict, focus: tuple[str, ...] = ("web",)) -> str:
    """A one-line reading of a CPU breakdown: saturated machine? which process is at one core?"""
    roles = cpu["cores_by_role"]
    busy_share = cpu["machine_busy_share"]
    singles = [
        k for k, v in roles.items() if v >= 0.9 and k not in ("web", "trivial-web", "other", "mysql", "rabbitmq")
    ]
    top = [k for k in roles if k not in ("web-master",) and not k.startswith(("web-worker", "trivial-web-worker"))][:3]
    parts = []
    if busy_share >= 0.9:
        parts.append(f"CPU-bound machine ({busy_share:.0%} of {cpu['machine_cores']} cores busy)")
    else:
        parts.append(f"machine {busy_share:.0%} busy: latency/locking/I-O bound rather than CPU")
    if singles:
        parts.append("at ~1 core (GIL-bound): " + ", ".join(f"{k} {roles[k]:.2f}" for k in singles))
    parts.append("top: " + ", ".join(f"{k} {roles[k]:.2f}" for k in top))
    return "; ".join(parts)


@dataclass
class Monitor(Background):
    """Samples RSS of the stack every ``interval`` seconds; PSS every ``pss_every`` samples."""

    thread_name = "monitor"

    pids: Callable[[], dict[str, int]]
    web_port: int | None = None  # count each web worker's client connections on this port
    interval: float = 0.5
    pss_every: int = 4
    peaks: dict[str, float] = field(default_factory=dict)  # role → MB
    peaks_pss: dict[str, float] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)  # web worker → most connections seen
    series: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Monitor:
        self._origin = time.monotonic()
        return super().start()

    def _loop(self) -> None:
        n = 0
        while True:
            self.sample(pss=(n % self.pss_every == 0))
            n += 1
            if self._stop.wait(self.interval):
                break

    def sample(self, pss: bool = False) -> None:
        roles = role_processes(self.pids(), with_services=False)
        rss: dict[str, float] = {}
        pss_values: dict[str, float] = {}
        for role, procs in roles.items():
            for proc in procs:
                try:
                    rss[role] = rss.get(role, 0.0) + proc.memory_info().rss / MB
                    if pss:
                        pss_values[role] = pss_values.get(role, 0.0) + proc.memory_full_info().pss / MB
                        if self.web_port and role.startswith("web-worker"):
                            # The launcher's workers share one listening socket: how evenly the
                            # kernel spread the load generator's connections over them.
                            established = sum(
                                1
                                for c in proc.net_connections("tcp")
                                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.web_port
                            )
                            self.connections[role] = max(self.connections.get(role, 0), established)
                except psutil.Error:
                    continue
        for prefix in ("web", "trivial-web"):
            parts = [v for k, v in rss.items() if k.startswith(f"{prefix}-")]
            if parts:
                rss[f"{prefix} (sum)"] = sum(parts)
            parts = [v for k, v in pss_values.items() if k.startswith(f"{prefix}-")]
            if parts:
                pss_values[f"{prefix} (sum)"] = sum(parts)
        for role, value in rss.items():
            self.peaks[role] = max(self.peaks.get(role, 0.0), value)
        for role, value in pss_values.items():
            self.peaks_pss[role] = max(self.peaks_pss.get(role, 0.0), value)
        self.series.append((round(time.monotonic() - self._origin, 2), {k: round(v, 1) for k, v in rss.items()}))

    def result(self) -> dict:
        return {
            "peak_rss_mb": {k: round(v, 1) for k, v in sorted(self.peaks.items())},
            "peak_pss_mb": {k: round(v, 1) for k, v in sorted(self.peaks_pss.items())},
            "connections_by_web_worker": dict(sorted(self.connections.items())),
        }
