"""Flags from the field for one run (high variance, degradation under load, error bursts,
coordinated omission) and ``compare(a, b)`` with a bootstrap interval on the p95 change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perfkit.findings import finding, findings_frame
from perfkit.loadtests.frames import ALL

VARIANCE_RATIO = 10.0  # max at least 10x the mean (STYLE: thresholds are arguments)


def high_variance(run, *, ratio: float = VARIANCE_RATIO, min_requests: int = 20) -> list[dict]:
    """``high_variance`` findings: endpoints whose max latency is at least ``ratio`` x the mean."""
    rows = []
    for rec in run.summary.to_dict(orient="records"):
        mean, top, n = rec["mean_ms"], rec["max_ms"], rec["requests"]
        if pd.isna(mean) or pd.isna(top) or mean <= 0 or (not pd.isna(n) and n < min_requests):
            continue
        if top >= ratio * mean:
            rows.append(finding(
                "high_variance", "warning", rec["endpoint"],
                f"max {top:,.1f} ms is {top / mean:,.1f}x the mean {mean:,.1f} ms",
                "Find the slow outliers: cold caches, pool exhaustion, N+1 queries, GC pauses, "
                "lock waits"))
    return rows


def per_second(samples: pd.DataFrame, freq: str = "1s") -> pd.DataFrame:
    """Requests, failures, throughput, latency percentiles and concurrency per time bin."""
    if samples.empty:
        return pd.DataFrame(columns=["ts", "requests", "failures", "rps", "mean_ms", "p50_ms",
                                     "p95_ms", "p99_ms", "concurrency"])
    frame = samples[["ts", "latency_ms", "ok"]].copy()
    frame["failed"] = (~frame["ok"].astype("boolean")).astype("float64")
    grouped = frame.groupby(frame["ts"].dt.floor(freq))
    seconds = pd.Timedelta(freq).total_seconds()
    out = pd.DataFrame({
        "requests": grouped.size(),
        "failures": grouped["failed"].sum(min_count=1),
        "mean_ms": grouped["latency_ms"].mean(),
        "p50_ms": grouped["latency_ms"].quantile(0.5),
        "p95_ms": grouped["latency_ms"].quantile(0.95),
        "p99_ms": grouped["latency_ms"].quantile(0.99),
        "concurrency": grouped["latency_ms"].sum() / (seconds * 1000.0),
    })
    out["rps"] = out["requests"] / seconds
    return out.reset_index(names="ts")


def history_of(run) -> pd.DataFrame:
    """Figures over time: from samples when present, else the tool's own history."""
    if run.has_samples:
        return per_second(run.samples)
    return run.history.copy() if run.history is not None else pd.DataFrame()


def degradation(run, *, latency_growth: float = 1.5, throughput_growth: float = 1.1) -> list[dict]:
    """``throughput_degradation``: as load rises, latency grows while throughput does not.

    Load is the user count when the tool records it (Locust history), else the concurrency
    from samples (Little's law: latency summed per second). The time bins are split in thirds
    by load; the flag fires when the top third's mean latency is at least ``latency_growth`` x
    the bottom third's while its throughput is below ``throughput_growth`` x.
    """
    history = history_of(run)
    load = "users" if "users" in history.columns and history["users"].nunique() > 2 else "concurrency"
    if history.empty or load not in history.columns or "mean_ms" not in history.columns:
        return []
    bins = history[[load, "mean_ms", "rps"]].dropna()
    bins = bins[bins[load] > 0]
    if len(bins) < 6 or bins[load].nunique() < 3:
        return []
    ranked = bins.sort_values(load)
    third = len(ranked) // 3
    low, high = ranked.iloc[:third], ranked.iloc[-third:]
    lat_low, lat_high = low["mean_ms"].mean(), high["mean_ms"].mean()
    rps_low, rps_high = low["rps"].mean(), high["rps"].mean()
    if lat_low > 0 and lat_high >= latency_growth * lat_low and rps_high < throughput_growth * rps_low:
        return [finding(
            "throughput_degradation", "warning", ALL,
            f"as {load} rose from {low[load].mean():,.1f} to {high[load].mean():,.1f}, mean latency "
            f"grew {lat_high / lat_low:,.1f}x ({lat_low:,.1f} -> {lat_high:,.1f} ms) while throughput "
            f"went {rps_low:,.1f} -> {rps_high:,.1f} req/s",
            "The service saturates: find the bottleneck (CPU-bound work, blocking I/O, pool "
            "size, locks) before adding load")]
    return []


def error_bursts(run, *, factor: float = 3.0, min_failures: int = 5) -> list[dict]:
    """``error_burst``: time bins whose failures are at least ``factor`` x the run's average."""
    history = history_of(run)
    if history.empty or "failures" not in history.columns or "requests" not in history.columns:
        return []
    bins = history[["ts", "failures", "requests"]].dropna() if "ts" in history.columns else pd.DataFrame()
    if bins.empty or bins["requests"].sum() <= 0:
        return []
    overall = bins["failures"].sum() / bins["requests"].sum()
    rate = bins["failures"] / bins["requests"].where(bins["requests"] > 0)
    burst = bins[(bins["failures"] >= min_failures) & (rate >= factor * overall) & (rate > 0)]
    if burst.empty:
        return []
    start, end = burst["ts"].min(), burst["ts"].max()
    return [finding(
        "error_burst", "warning", ALL,
        f"{int(burst['failures'].sum()):,} failures in {len(burst)} time bin(s) between "
        f"{start:%H:%M:%S} and {end:%H:%M:%S} UTC, at {factor:g}x or more the run's "
        f"{overall * 100:.2f} % error rate",
        "Errors cluster in time: match the window with deploys, restarts, pool exhaustion or "
        "timeouts in the application and database logs")]


def coordinated_omission(run) -> list[dict]:
    """An ``info`` finding when the tool measured in a closed loop."""
    if run.closed_loop:
        return [finding(
            "coordinated_omission", "info", ALL,
            f"{run.tool} measured in a closed loop: a slow answer delays the next request, so "
            "the slowest periods are under-sampled and the percentiles read low",
            "Confirm latency targets with an open-loop (arrival-rate) test: k6 "
            "constant-arrival-rate, Artillery arrivalRate, wrk2, pgbench --rate")]
    return []


def flags(run) -> pd.DataFrame:
    """Every flag above for one run, as a findings frame."""
    rows = high_variance(run) + degradation(run) + error_bursts(run) + coordinated_omission(run)
    return findings_frame(rows)


# --- run vs run ---------------------------------------------------------------------------------
COMPARE_COLUMNS = ["endpoint", "requests_a", "requests_b", "p50_a", "p50_b", "p50_change",
                   "p95_a", "p95_b", "p95_change", "p95_diff_ms", "p95_diff_low", "p95_diff_high",
                   "p99_a", "p99_b", "p99_change", "error_rate_a", "error_rate_b", "rps_a",
                   "rps_b", "rps_change"]


@dataclass
class Comparison:
    """The result of ``compare``: a per-endpoint table and the regression findings."""

    table: pd.DataFrame
    findings: pd.DataFrame


def bootstrap_p95_diff(a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, confidence: float = 0.95,
                       seed: int = 0, max_n: int = 20_000) -> tuple[float, float]:
    """A percentile-bootstrap interval for p95(b) - p95(a) (each side capped at ``max_n``)."""
    rng = np.random.default_rng(seed)
    a = a[~np.isnan(a)]
    b = b[~np.isnan(b)]
    if a.size < 2 or b.size < 2:
        return float("nan"), float("nan")
    if a.size > max_n:
        a = rng.choice(a, max_n, replace=False)
    if b.size > max_n:
        b = rng.choice(b, max_n, replace=False)
    diffs = np.empty(n_boot)
    batch = max(1, 2_000_000 // max(a.size, b.size))
    for start in range(0, n_boot, batch):
        k = min(batch, n_boot - start)
        pa = np.percentile(a[rng.integers(0, a.size, (k, a.size))], 95, axis=1)
        pb = np.percentile(b[rng.integers(0, b.size, (k, b.size))], 95, axis=1)
        diffs[start:start + k] = pb - pa
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


def _change(a, b) -> float:
    if pd.isna(a) or pd.isna(b) or a == 0:
        return float("nan")
    return float(b) / float(a) - 1.0


def compare(a, b, *, threshold: float = 0.10, n_boot: int = 1000, confidence: float = 0.95,
            seed: int = 0) -> Comparison:
    """Compare run ``b`` against baseline ``a`` per endpoint (and ALL).

    Parameters
    ----------
    a, b:
        LoadTestRuns (``a`` the baseline).
    threshold:
        The relative p95 increase (0.10 = 10 %) below which no regression is reported.
    n_boot, confidence, seed:
        The bootstrap of the p95 difference (only when both runs have raw samples).

    Returns
    -------
    Comparison
        ``table`` (``COMPARE_COLUMNS``: changes are relative, ``p95_diff_*`` in ms) and
        ``findings``: a ``regression`` when the p95 interval excludes zero and the change is
        above ``threshold`` (critical above 3x the threshold), and when the error rate rose by
        more than one percentage point with a two-proportion z above 3.
    """
    sa = a.summary.set_index(a.summary["endpoint"].astype(str))
    sb = b.summary.set_index(b.summary["endpoint"].astype(str))
    endpoints = [e for e in sa.index if e in sb.index]
    rows, found = [], []
    for endpoint in endpoints:
        ra, rb = sa.loc[endpoint], sb.loc[endpoint]
        row = {"endpoint": endpoint, "requests_a": ra["requests"], "requests_b": rb["requests"]}
        for p in ("p50", "p95", "p99"):
            row[f"{p}_a"], row[f"{p}_b"] = ra[f"{p}_ms"], rb[f"{p}_ms"]
            row[f"{p}_change"] = _change(ra[f"{p}_ms"], rb[f"{p}_ms"])
        row["error_rate_a"], row["error_rate_b"] = ra["error_rate"], rb["error_rate"]
        row["rps_a"], row["rps_b"] = ra["rps"], rb["rps"]
        row["rps_change"] = _change(ra["rps"], rb["rps"])
        row["p95_diff_ms"] = (rb["p95_ms"] - ra["p95_ms"]) if not (pd.isna(ra["p95_ms"]) or pd.isna(rb["p95_ms"])) else np.nan
        low = high = float("nan")
        if a.has_samples and b.has_samples:
            xa = _latencies(a.samples, endpoint)
            xb = _latencies(b.samples, endpoint)
            low, high = bootstrap_p95_diff(xa, xb, n_boot=n_boot, confidence=confidence, seed=seed)
        row["p95_diff_low"], row["p95_diff_high"] = low, high
        rows.append(row)
        change = row["p95_change"]
        if not np.isnan(low) and low > 0 and not pd.isna(change) and change > threshold:
            found.append(finding(
                "regression", "critical" if change > 3 * threshold else "warning", endpoint,
                f"p95 {ra['p95_ms']:,.1f} -> {rb['p95_ms']:,.1f} ms (+{change * 100:.0f} %); "
                f"{confidence * 100:.0f} % interval of the difference {low:,.1f} .. {high:,.1f} ms",
                "Find what changed between the runs: deploys, statements (perfkit diff), data "
                "volume, configuration", metric="p95_ms"))
        found.extend(_error_regression(endpoint, ra, rb))
    table = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    return Comparison(table=table, findings=findings_frame(found))


def _latencies(samples: pd.DataFrame, endpoint: str) -> np.ndarray:
    if endpoint == ALL:
        return samples["latency_ms"].to_numpy(dtype="float64")
    mask = samples["endpoint"].astype(str) == endpoint
    return samples.loc[mask, "latency_ms"].to_numpy(dtype="float64")


def _error_regression(endpoint, ra, rb) -> list[dict]:
    fa, fb, na, nb = ra["failures"], rb["failures"], ra["requests"], rb["requests"]
    if any(pd.isna(x) for x in (fa, fb, na, nb)) or na <= 0 or nb <= 0:
        return []
    pa, pb = fa / na, fb / nb
    pooled = (fa + fb) / (na + nb)
    se = np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    if pb - pa > 0.01 and se > 0 and (pb - pa) / se > 3:
        return [finding("regression", "critical" if pb > 0.05 else "warning", endpoint,
                        f"error rate {pa * 100:.2f} % -> {pb * 100:.2f} % ({int(fb):,} of {int(nb):,} requests)",
                        "Read the new failures by status and error message", metric="error_rate")]
    return []
