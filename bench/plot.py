"""``plot.png``: throughput and latency per workload next to the baselines, pipeline lag over time,
the relay drain, memory and who used the CPU (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from bench.report import HTTP_GROUPS, kept  # noqa: E402

SHORT = {
    "baseline.db": "DB base",
    "baseline.http_post": "HTTP POST base",
    "W1": "W1 create",
    "W1D": "W1 + deletes",
    "baseline.http_get": "HTTP GET base",
    "W2": "W2 read",
    "W3.small": "W3 1k",
    "W3.large": "W3 large",
    "W4.es_load": "W4 ES load",
}
BASELINE_COLOR = "#9aa5b1"
WORKLOAD_COLOR = "#2f6db5"


def plot(results: dict[str, Any], report: dict[str, Any], path: Path) -> Path:
    summary = report["summary"]
    keys = [k for k in HTTP_GROUPS if k in summary]
    fig, axes = plt.subplots(2, 3, figsize=(19, 10.5))
    fig.suptitle(
        f"chatsys benchmark {results['meta'].get('started', '')}  "
        f"({'quick' if results['meta']['plan']['quick'] else 'full'} run, "
        f"{results['meta']['machine']['cpus']} cores shared with the load generator)",
        fontsize=12,
    )

    # 1. throughput: median with the range of the runs
    ax = axes[0][0]
    med = [summary[k]["throughput"]["median"] or 0 for k in keys]
    low = [m - (summary[k]["throughput"]["min"] or 0) for m, k in zip(med, keys, strict=True)]
    high = [(summary[k]["throughput"]["max"] or 0) - m for m, k in zip(med, keys, strict=True)]
    colors = [BASELINE_COLOR if k.startswith("baseline") else WORKLOAD_COLOR for k in keys]
    ax.bar(range(len(keys)), med, yerr=[low, high], color=colors, capsize=4)
    for x, k in enumerate(keys):
        if k == "W1":
            ax.hlines(1000, x - 0.4, x + 0.4, colors="red", linestyles="--")
        if k == "W2":
            ax.hlines(2000, x - 0.4, x + 0.4, colors="red", linestyles="--")
    ax.set_xticks(range(len(keys)), [SHORT[k] for k in keys], rotation=30, ha="right")
    ax.set_ylabel("requests/s (median, bar = range of runs)")
    ax.set_title("Throughput (grey: baselines; red dashes: targets)")

    # 2. latency percentiles, log scale
    ax = axes[0][1]
    width = 0.27
    for i, (q, shade) in enumerate((("p50_ms", "#9ecae1"), ("p95_ms", "#4292c6"), ("p99_ms", "#08519c"))):
        values = [summary[k][q]["median"] or 0 for k in keys]
        ax.bar([x + (i - 1) * width for x in range(len(keys))], values, width, label=q[:-3], color=shade)
    for x, k in enumerate(keys):
        limit = {"W1": 60, "W2": 30, "W3.small": 50}.get(k)
        if limit:
            ax.hlines(limit, x - 0.45, x + 0.45, colors="red", linestyles="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)), [SHORT[k] for k in keys], rotation=30, ha="right")
    ax.set_ylabel("ms (median of runs)")
    ax.set_title("Latency percentiles (red dashes: p99 targets)")
    ax.legend()

    # 3. pipeline lag over time
    ax = axes[0][2]
    for kind, marker, color in (("counted", "o", "#2ca02c"), ("indexed", "^", "#d62728")):
        for i, run in enumerate(results.get("lag", {}).get(kind, [])):
            series = run["series"]
            if series:
                ax.scatter(
                    [s[0] for s in series],
                    [max(s[1], 0.1) for s in series],
                    s=8,
                    marker=marker,
                    color=color,
                    alpha=0.35 + 0.2 * (i % 3),
                    label=f"{kind}, run {run['rep']}",
                )
    ax.axhline(2000, color="red", linestyle="--", label="target p99 2 s")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the run started (time of the 201)")
    ax.set_ylabel("lag ms")
    ax.set_title(
        "W4 pipeline lag: 201 → counted / indexed\n(≤ 0 drawn at 0.1 ms: done before the harness read the 201)",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2)

    # 4. W5 drain curves
    ax = axes[1][0]
    for run in kept(results["runs"].get("W5", [])):
        series = run["series"]
        ax.plot(
            [s[0] for s in series], [s[1] for s in series], label=f"run {run['rep']}: {run['events_per_s']:,.0f} ev/s"
        )
    ax.set_xlabel("seconds since the rows became due")
    ax.set_ylabel("pending outbox rows")
    ax.set_title("W5 relay drain (relay alone, target ≥ 5,000 events/s)")
    if results["runs"].get("W5"):
        ax.legend()

    # 5. memory
    ax = axes[1][1]
    w6 = summary.get("W6")
    if w6:
        names = list(w6["peak_rss_mb"])
        values = [w6["peak_rss_mb"][k] for k in names]
        ax.barh(range(len(names)), values, color=["#08519c" if k == "web (sum)" else "#6baed6" for k in names])
        ax.set_yticks(range(len(names)), names)
        ax.axvline(200, color="red", linestyle="--", label="web target 200 MB")
        ax.legend()
    ax.set_xlabel("peak RSS MB during W1")
    ax.set_title("W6 memory")

    # 6. CPU by role during each workload (median run)
    ax = axes[1][2]
    roles_order = [
        "web",
        "trivial-web",
        "wrk",
        "dbload",
        "mysql",
        "redis",
        "rabbitmq",
        "relay",
        "counters",
        "indexer",
        "es-double",
        "harness",
        "other",
    ]
    palette = plt.get_cmap("tab20")
    bottoms = [0.0] * len(keys)
    for j, role in enumerate(roles_order):
        values = []
        for k in keys:
            runs = kept(results["runs"][k])
            values.append(runs[len(runs) // 2].get("cpu", {}).get("cores_by_role", {}).get(role, 0.0) if runs else 0.0)
        if any(values):
            ax.bar(range(len(keys)), values, bottom=bottoms, label=role, color=palette(j))
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.axhline(results["meta"]["machine"]["cpus"], color="black", linestyle=":", label="all cores")
    ax.set_xticks(range(len(keys)), [SHORT[k] for k in keys], rotation=30, ha="right")
    ax.set_ylabel("cores used")
    ax.set_title("Who used the CPU (other = outside the benchmark)")
    ax.legend(fontsize=7, ncol=2)

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
