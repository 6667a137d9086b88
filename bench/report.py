"""The report: every run's raw figures, medians and spread, ratios to the baselines, targets.

:func:`build` turns the orchestrator's raw results into ``report.json``'s ``summary``, ``ratios``
and ``targets`` sections; :func:`table` renders the compact stdout table.  Ratios come two ways:
the ratio of the medians, and the median of the per-repetition ratios (baselines and W1 run
interleaved, so a pair shares the machine's mood at that moment — the more noise-proof figure).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.plan import TARGETS, Plan
from bench.stats import distribution, spread

HTTP_GROUPS = {
    # key in results → label
    "baseline.db": "DB baseline (msg+outbox txn)",
    "baseline.http_post": "HTTP baseline POST (trivial app)",
    "W1": "W1 create (POST)",
    "W1D": "W1D create + 10 % DELETE",
    "baseline.http_get": "HTTP baseline GET (trivial app)",
    "W2": "W2 read (page 50 / one)",
    "W3.small": "W3 search, 1k-message chat",
    "W3.large": "W3 search, large chat",
    "W4.es_load": "W4 load, ES backend (double)",
}


def kept(runs: list[dict]) -> list[dict]:
    return [r for r in runs if not r.get("spoiled")]


def server_role(key: str) -> str:
    """The process group that serves a workload: its CPU per request is the cost of one request."""
    if key == "baseline.db":
        return "mysql"
    return "trivial-web" if key.startswith("baseline.http") else "web"


def cpu_ms_per_request(run: dict, role: str) -> float | None:
    """Server CPU milliseconds per completed request: a figure that a busy machine barely moves."""
    cores = run.get("cpu", {}).get("cores_by_role", {}).get(role)
    return round(cores / run["throughput"] * 1000, 3) if cores and run.get("throughput") else None


def summarize_http(runs: list[dict], role: str = "web") -> dict[str, Any]:
    runs = kept(runs)
    return {
        "runs": len(runs),
        "throughput": spread([r["throughput"] for r in runs]),
        "p50_ms": spread([r["latency_ms"].get("p50") for r in runs]),
        "p95_ms": spread([r["latency_ms"].get("p95") for r in runs]),
        "p99_ms": spread([r["latency_ms"].get("p99") for r in runs]),
        "errors": sum(r["error_total"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "generator_cores": spread([r.get("generator_cores") for r in runs]),
        "machine_busy_share": spread([r.get("cpu", {}).get("machine_busy_share") for r in runs]),
        "other_cores": spread([r.get("cpu", {}).get("cores_by_role", {}).get("other") for r in runs]),
        "server_role": role,
        "server_cpu_ms_per_request": spread([cpu_ms_per_request(r, role) for r in runs]),
    }


def summarize_lag(runs: list[dict]) -> dict[str, Any]:
    pooled = [x for r in runs for x in r["lags_ms"]]
    return {
        "runs": len(runs),
        "samples": len(pooled),
        "missing": sum(r["missing"] for r in runs),
        "pooled_ms": distribution(pooled),
        "non_positive": sum(r.get("non_positive", 0) for r in runs),
        "from_send_p99_ms": spread([r.get("lag_from_send_ms", {}).get("p99") for r in runs]),
        "p50_ms": spread([r["lag_ms"]["p50"] for r in runs]),
        "p99_ms": spread([r["lag_ms"]["p99"] for r in runs]),
    }


def paired_ratio(numerators: list[dict], denominators: list[dict]) -> float | None:
    by_rep = {d["rep"]: d["throughput"] for d in kept(denominators) if d["throughput"]}
    ratios = [n["throughput"] / by_rep[n["rep"]] for n in kept(numerators) if n["rep"] in by_rep]
    return round(statistics.median(ratios), 3) if ratios else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def build(results: dict[str, Any], plan: Plan) -> dict[str, Any]:
    runs = results["runs"]
    summary: dict[str, Any] = {key: summarize_http(runs[key], server_role(key)) for key in HTTP_GROUPS if runs.get(key)}
    lag = results.get("lag", {})
    for kind in ("counted", "counted_w1d", "indexed"):
        if lag.get(kind):
            summary[f"W4.{kind}"] = summarize_lag(lag[kind])
    if runs.get("W5"):
        w5 = kept(runs["W5"])
        summary["W5"] = {
            "runs": len(w5),
            "mode": "relay alone (web and consumers stopped), publishing into the real quorum queues",
            "events_per_s": spread([r["events_per_s"] for r in w5]),
            "events_per_s_span": spread([r.get("events_per_s_span") for r in w5]),
            "complete": all(r["complete"] for r in w5),
        }
    memory = results.get("memory", [])
    if memory:
        keys = sorted({k for m in memory for k in m["peak_rss_mb"]})
        summary["W6"] = {
            "runs": len(memory),
            "peak_rss_mb": {k: max(m["peak_rss_mb"].get(k, 0.0) for m in memory) for k in keys},
            "peak_pss_mb": {
                k: max(m["peak_pss_mb"].get(k, 0.0) for m in memory)
                for k in sorted({k for m in memory for k in m["peak_pss_mb"]})
            },
            # per W1 run: how the load generator's connections were spread over the web workers
            "connections_by_web_worker": [m.get("connections_by_web_worker", {}) for m in memory],
        }

    def med(key: str, field: str = "throughput") -> float | None:
        return summary.get(key, {}).get(field, {}).get("median")

    ratios = {
        "W1_vs_db": ratio(med("W1"), med("baseline.db")),
        "W1_vs_db_paired": paired_ratio(runs.get("W1", []), runs.get("baseline.db", [])),
        "W1_vs_http_post": ratio(med("W1"), med("baseline.http_post")),
        "W1_vs_http_post_paired": paired_ratio(runs.get("W1", []), runs.get("baseline.http_post", [])),
        "W2_vs_http_get": ratio(med("W2"), med("baseline.http_get")),
        "W2_vs_http_get_paired": paired_ratio(runs.get("W2", []), runs.get("baseline.http_get", [])),
        "db_vs_http_post": ratio(med("baseline.db"), med("baseline.http_post")),
        "W1_p99_vs_db_p99": ratio(med("W1", "p99_ms"), med("baseline.db", "p99_ms")),
    }

    w1_errors = summary["W1"]["errors"] if "W1" in summary else None
    measured = {
        "W1.throughput": med("W1"),
        "W1.p99": med("W1", "p99_ms"),
        "W1.errors": w1_errors,
        "W1.vs_db": ratios["W1_vs_db"],
        "W2.throughput": med("W2"),
        "W2.p99": med("W2", "p99_ms"),
        "W3.small.p99": med("W3.small", "p99_ms"),
        "W4.counted.p99": summary.get("W4.counted", {}).get("pooled_ms", {}).get("p99"),
        "W4.indexed.p99": summary.get("W4.indexed", {}).get("pooled_ms", {}).get("p99"),
        "W5.events_per_s": summary.get("W5", {}).get("events_per_s", {}).get("median"),
        "W6.web_rss": summary.get("W6", {}).get("peak_rss_mb", {}).get("web (sum)"),
    }
    targets = []
    for target in TARGETS:
        value = measured.get(target.id)
        targets.append(
            {
                "id": target.id,
                "description": target.description,
                "target": f"{target.op} {target.threshold:g} {target.unit}",
                "measured": round(value, 3) if isinstance(value, float) else value,
                "pass": target.check(value),
            }
        )
    return {"summary": summary, "ratios": ratios, "targets": targets}


# -- the stdout table -------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _range(s: dict, digits: int = 0) -> str:
    if not s or s.get("median") is None:
        return "–"
    if s["n"] == 1:
        return _fmt(s["median"], digits)
    return f"{_fmt(s['median'], digits)} ({_fmt(s['min'], digits)}–{_fmt(s['max'], digits)})"


def table(report: dict[str, Any]) -> str:
    summary = report["summary"]
    lines = []
    header = (
        f"{'workload':34} {'runs':>4}  {'req/s median (range)':>26}  {'p50':>7} {'p95':>7} {'p99':>7} ms  "
        f"{'errors':>6}  {'gen cores':>9}  {'busy':>5}  {'server CPU ms/req':>17}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for key, label in HTTP_GROUPS.items():
        s = summary.get(key)
        if not s:
            continue
        lines.append(
            f"{label:34} {s['runs']:>4}  {_range(s['throughput']):>26}  {_fmt(s['p50_ms']['median'], 1):>7} "
            f"{_fmt(s['p95_ms']['median'], 1):>7} {_fmt(s['p99_ms']['median'], 1):>7}     {s['errors']:>6}  "
            f"{_fmt(s['generator_cores']['median'], 2):>9}  "
            f"{_fmt((s['machine_busy_share']['median'] or 0) * 100, 0):>4}%  "
            f"{_fmt(s['server_cpu_ms_per_request']['median'], 2):>8} ({s['server_role']})"
        )
    for kind, label in (
        ("counted", "W4 lag 201 → counted"),
        ("counted_w1d", "W4 lag 201 → counted, during W1D"),
        ("indexed", "W4 lag 201 → indexed (ES double)"),
    ):
        s = summary.get(f"W4.{kind}")
        if s:
            p = s["pooled_ms"]
            lines.append(
                f"{label:34} {s['runs']:>4}  {str(s['samples']) + ' probes, ' + str(s['missing']) + ' missing':>26}  "
                f"{_fmt(p['p50'], 0):>7} {_fmt(p['p95'], 0):>7} {_fmt(p['p99'], 0):>7} ms (max {_fmt(p['max'], 0)})"
            )
    s = summary.get("W5")
    if s:
        lines.append(
            f"{'W5 relay drain (relay alone)':34} {s['runs']:>4}  {_range(s['events_per_s']) + ' ev/s':>26}  "
            f"span rate {_range(s['events_per_s_span'])} ev/s{'' if s['complete'] else '  INCOMPLETE'}"
        )
    s = summary.get("W6")
    if s:
        rss = s["peak_rss_mb"]
        workers = ", ".join(f"{k.split('-')[-1]}: {v:.0f}" for k, v in rss.items() if k.startswith("web-worker"))
        others = ", ".join(f"{k} {v:.0f}" for k, v in rss.items() if not k.startswith("web"))
        lines.append(
            f"{'W6 peak RSS MB during W1':34} {s['runs']:>4}  web sum {_fmt(rss.get('web (sum)'))} "
            f"(PSS {_fmt(s['peak_pss_mb'].get('web (sum)'))}); master {_fmt(rss.get('web-master'))}, "
            f"workers {workers}; {others}"
        )
    lines.append("")
    r = report["ratios"]
    lines.append(
        (
            "ratios: W1/DB {} (paired {}), W1/HTTP-POST {} (paired {}), W2/HTTP-GET {} (paired {}), W1 p99 / DB p99 {}"
        ).format(
            r["W1_vs_db"],
            r["W1_vs_db_paired"],
            r["W1_vs_http_post"],
            r["W1_vs_http_post_paired"],
            r["W2_vs_http_get"],
            r["W2_vs_http_get_paired"],
            r["W1_p99_vs_db_p99"],
        )
    )
    lines.append("")
    for t in report["targets"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        lines.append(f"  {mark}  {t['description']:58} target {t['target']:>18}   measured {t['measured']}")
    return "\n".join(lines)
