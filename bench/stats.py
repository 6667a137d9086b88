"""Small statistics shared by every part of the harness: percentiles, medians and spread."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def distribution(values: Iterable[float], digits: int = 1) -> dict[str, float | None]:
    """p50/p95/p99/max/mean of raw values (e.g. lags in ms)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(percentile(ordered, 50), digits),
        "p95": round(percentile(ordered, 95), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }


def spread(values: list[float]) -> dict[str, float | int | None]:
    """Median of the runs, their range, and the range relative to the median."""
    clean = [v for v in values if v is not None]
    if not clean:
        return {"median": None, "min": None, "max": None, "rel_spread": None, "n": 0}
    median = statistics.median(clean)
    return {
        "median": round(median, 3),
        "min": round(min(clean), 3),
        "max": round(max(clean), 3),
        "rel_spread": round((max(clean) - min(clean)) / median, 3) if median else None,
        "n": len(clean),
    }
