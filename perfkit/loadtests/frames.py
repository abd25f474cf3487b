"""The load-test contract: samples and summary columns, and the summary computed from samples.

Readers build samples with ``samples_frame``; ``summarize`` turns them into the summary shape.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SAMPLE_COLUMNS = ["ts", "endpoint", "method", "latency_ms", "status", "ok", "error", "tool", "source"]
SUMMARY_COLUMNS = [
    "endpoint",
    "requests",
    "failures",
    "error_rate",
    "rps",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
]
PERCENTILES = {"p50_ms": 0.50, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99}
ALL = "ALL"


def samples_frame(
    *,
    ts,
    endpoint,
    latency_ms,
    tool: str,
    source: str,
    method=None,
    status=None,
    ok=None,
    error=None,
) -> pd.DataFrame:
    """A samples DataFrame in the contract's columns and dtypes.

    Parameters
    ----------
    ts:
        Request start times: anything ``pd.to_datetime`` accepts; naive values are taken as UTC.
    endpoint, method, error:
        Strings per request (``method`` and ``error`` may be None for "unknown" / "no error").
    latency_ms:
        Milliseconds per request (NaN when the tool wrote none, e.g. a skipped transaction).
    status:
        HTTP status (or None when the tool does not record it).
    ok:
        Whether the tool counts the request as a success (None when unknown).
    tool, source:
        The tool name and the file the rows came from.

    Returns
    -------
    pandas.DataFrame
        Columns ``SAMPLE_COLUMNS``: ``ts`` tz-aware UTC, ``latency_ms`` float, ``status``
        nullable Int64, ``ok`` nullable boolean, text columns categorical (except ``error``).
    """
    ts = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns")
    n = len(ts)
    frame = pd.DataFrame(
        {
            "ts": ts,
            "endpoint": _category(endpoint, n),
            "method": _category(method, n),
            "latency_ms": pd.to_numeric(pd.Series(latency_ms), errors="coerce")
            .astype("float64")
            .to_numpy(),
            "status": _int64(status, n),
            "ok": _boolean(ok, n),
            "error": _text(error, n),
            "tool": pd.Categorical([tool] * n) if n else pd.Categorical([]),
            "source": pd.Categorical([str(source)] * n) if n else pd.Categorical([]),
        }
    )
    return frame[SAMPLE_COLUMNS]


def empty_samples(tool: str = "", source: str = "") -> pd.DataFrame:
    """A samples frame with no rows (tools that only write aggregates)."""
    return samples_frame(ts=[], endpoint=[], latency_ms=[], tool=tool, source=source)


def _category(values, n: int) -> pd.Categorical:
    if values is None:
        return pd.Categorical([None] * n, categories=[])
    if isinstance(values, pd.Categorical):
        return values
    series = pd.Series(values, copy=False)
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.array
    return series.astype("category").array


def _int64(values, n: int) -> pd.arrays.IntegerArray:
    if values is None:
        return pd.array([pd.NA] * n, dtype="Int64")
    numbers = pd.to_numeric(pd.Series(values, copy=False), errors="coerce")
    return numbers.round().astype("Int64").array


def _boolean(values, n: int):
    if values is None:
        return pd.array([pd.NA] * n, dtype="boolean")
    return pd.Series(values, copy=False).astype("boolean").array


def _text(values, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    series = pd.Series(values, copy=False)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype("str")
    present = series.notna().to_numpy()
    out = np.full(n, None, dtype=object)
    if present.any():
        kept = series[present].astype("str")
        nonempty = (kept != "").to_numpy()
        idx = np.flatnonzero(present)[nonempty]
        out[idx] = kept[nonempty].to_numpy(dtype=object)
    return out


def empty_summary() -> pd.DataFrame:
    """A summary frame with no rows."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in SUMMARY_COLUMNS})
    frame["endpoint"] = frame["endpoint"].astype("object")
    frame["requests"] = frame["requests"].astype("Int64")
    return frame


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    """A summary frame from dict rows (missing metrics become NaN); ALL last."""
    if not rows:
        return empty_summary()
    frame = pd.DataFrame(rows)
    for column in SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    frame = frame[SUMMARY_COLUMNS].copy()
    frame["endpoint"] = frame["endpoint"].astype(str)
    frame["requests"] = pd.to_numeric(frame["requests"], errors="coerce").round().astype("Int64")
    for column in SUMMARY_COLUMNS[2:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    requests = frame["requests"].astype("float64")
    needs_rate = frame["error_rate"].isna() & frame["failures"].notna() & (requests > 0)
    frame.loc[needs_rate, "error_rate"] = frame["failures"] / requests
    is_all = frame["endpoint"] == ALL
    frame = pd.concat([frame[~is_all].sort_values("endpoint", kind="stable"), frame[is_all]])
    return frame.reset_index(drop=True)


def run_duration_s(samples: pd.DataFrame) -> float:
    """Seconds from the first request's start to the last request's end (0 when unknown)."""
    if samples.empty:
        return 0.0
    start = samples["ts"].min()
    ends = samples["ts"] + pd.to_timedelta(samples["latency_ms"].fillna(0.0), unit="ms")
    seconds = (ends.max() - start).total_seconds()
    return float(seconds) if np.isfinite(seconds) else 0.0


def summarize(samples: pd.DataFrame, *, duration_s: float | None = None) -> pd.DataFrame:
    """Per-endpoint and ALL summary from raw samples; percentiles are exact.

    Parameters
    ----------
    samples:
        A samples frame (``SAMPLE_COLUMNS``).
    duration_s:
        The run's length for throughput; by default from the first start to the last end.

    Returns
    -------
    pandas.DataFrame
        ``SUMMARY_COLUMNS``, one row per endpoint plus ``ALL``. Percentiles interpolate
        linearly between order statistics (k6's method, numpy's default). Latency figures cover
        the requests that have a latency; ``failures`` is NaN when the tool records no outcome.
    """
    if samples.empty:
        return empty_summary()
    duration = duration_s if duration_s and duration_s > 0 else run_duration_s(samples)
    frame = samples[["endpoint", "latency_ms", "ok"]].copy()
    endpoint = frame["endpoint"]
    if not isinstance(endpoint.dtype, pd.CategoricalDtype):
        endpoint = endpoint.astype("category")
    if endpoint.isna().any():
        endpoint = endpoint.cat.add_categories(["(unnamed)"]).fillna("(unnamed)")
    frame["endpoint"] = endpoint
    frame["failed"] = (~frame["ok"].astype("boolean")).astype("float64")  # NA -> NaN
    rows = []
    for endpoint, group in frame.groupby("endpoint", sort=True, observed=True):
        rows.append(_summary_row(str(endpoint), group, duration))
    rows.append(_summary_row(ALL, frame, duration))
    return summary_frame(rows)


def _summary_row(endpoint: str, group: pd.DataFrame, duration: float) -> dict:
    latencies = group["latency_ms"].to_numpy(dtype="float64")
    latencies = latencies[~np.isnan(latencies)]
    failed = group["failed"]
    failures = float(failed.sum()) if failed.notna().all() else np.nan
    row = {
        "endpoint": endpoint,
        "requests": len(group),
        "failures": failures,
        "rps": len(group) / duration if duration > 0 else np.nan,
        "mean_ms": float(latencies.mean()) if latencies.size else np.nan,
        "max_ms": float(latencies.max()) if latencies.size else np.nan,
    }
    if latencies.size:
        values = np.percentile(latencies, [q * 100 for q in PERCENTILES.values()])
        row.update(dict(zip(PERCENTILES, values.tolist(), strict=True)))
    return row


def percentile_from_histogram(values, counts, q: float) -> float:
    """The ``q`` quantile (0..1) of a histogram given as bucket values and counts.

    Returns the smallest bucket value whose cumulative count reaches ``q`` of the total
    (how Locust reads its rounded response-time buckets).
    """
    values = np.asarray(values, dtype="float64")
    counts = np.asarray(counts, dtype="float64")
    if values.size == 0 or counts.sum() <= 0:
        return float("nan")
    order = np.argsort(values)
    values, counts = values[order], counts[order]
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[min(index, values.size - 1)])
