"""The load-test contract: samples and summary columns, and the summary computed from samples.

Readers build samples with ``samples_frame``; ``summarize`` turns them into the summary shape.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
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
    if not (isinstance(ts, pd.DatetimeIndex) and ts.dtype == UTC_NS):
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
            "tool": _constant(tool, n),
            "source": _constant(str(source), n),
        },
        copy=False,  # the readers hand over arrays built for this frame
    )
    return frame[SAMPLE_COLUMNS]


# Latencies beyond this (about 31 years) are not measurements; they would also overflow
# nanosecond arithmetic on timestamps
LATENCY_MAX_MS = 1e12
# A "status" this large is no status code (and would overflow Int64)
STATUS_MAX = 1e15


def ms_to_ns(values: np.ndarray) -> np.ndarray:
    """Milliseconds (finite floats) as int64 nanoseconds, as ``pd.to_timedelta(unit="ms")`` does.

    Whole milliseconds, then the fraction rounded to 6 digits: the same nanoseconds as pandas
    in a tenth of its time. ValueError (a reader's guard names the file) for infinite or absurd
    latencies, which would overflow instead.
    """
    if values.size and not (np.abs(values) <= LATENCY_MAX_MS).all():
        bad = values[~(np.abs(values) <= LATENCY_MAX_MS)][0]
        raise ValueError(f"latency {bad!r} ms is not a duration (infinite or beyond 10^12 ms)")
    whole = values.astype(np.int64)
    return whole * 1_000_000 + (np.round(values - whole, 6) * 1_000_000).astype(np.int64)


def minus_ms(ts, latency_ms) -> pd.DatetimeIndex:
    """``ts - latency_ms`` (start from end stamps): ``ts - pd.to_timedelta(latency_ms, unit="ms")``.

    NaN latencies give NaT.
    """
    stamps = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns")
    values = np.asarray(latency_ms, dtype="float64")
    missing = np.isnan(values)
    values = np.where(missing, 0.0, values) if missing.any() else values
    out = stamps.asi8 - ms_to_ns(values)
    missing |= np.asarray(stamps.isna())
    if missing.any():
        out[missing] = np.iinfo(np.int64).min  # NaT
    return pd.DatetimeIndex(out.view("M8[ns]"), dtype=UTC_NS)


def empty_samples(tool: str = "", source: str = "") -> pd.DataFrame:
    """A samples frame with no rows (tools that only write aggregates)."""
    return samples_frame(ts=[], endpoint=[], latency_ms=[], tool=tool, source=source)


def _constant(value: str, n: int) -> pd.Categorical:
    """One value repeated ``n`` times, as a categorical (built from codes: no list of n strings)."""
    if not n:
        return pd.Categorical([])
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=pd.Index([value]))


def _category(values, n: int) -> pd.Categorical:
    if values is None:  # all missing, from codes (a list of n Nones costs a second per 5 M rows)
        return pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8), categories=pd.Index([], dtype=object))
    if isinstance(values, pd.Categorical):
        return values
    series = pd.Series(values, copy=False)
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.array
    return series.astype("category").array


def _int64(values, n: int) -> pd.arrays.IntegerArray:
    if isinstance(values, pd.arrays.IntegerArray) and values.dtype == "Int64":
        return values
    if values is None:
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    numbers = pd.to_numeric(pd.Series(values, copy=False), errors="coerce").astype("float64")
    numbers = numbers.where(numbers.abs() < STATUS_MAX)
    return numbers.round().astype("Int64").array


def _boolean(values, n: int):
    if isinstance(values, pd.arrays.BooleanArray):
        return values
    if values is None:
        return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))
    return pd.Series(values, copy=False).astype("boolean").array


# The dtype pandas gives a column of str/None objects (``str`` from pandas 3, object before)
TEXT_DTYPE = pd.DataFrame({"text": np.array(["x", None], dtype=object)})["text"].dtype


def _text(values, n: int):
    if values is None:
        return np.full(n, None, dtype=object)
    if isinstance(values, pd.arrays.ArrowStringArray) and values.dtype == TEXT_DTYPE:
        # Arrow-backed text: keep it, only "" becomes missing (looked for by Arrow, no copy)
        if not pc.any(pc.equal(pa.array(values), "")).as_py():
            return values
    series = pd.Series(values, copy=False)
    if series.dtype == TEXT_DTYPE and series.dtype != object:
        # already pandas' text dtype (e.g. from Arrow): keep it, only "" becomes missing
        empty = (series == "").fillna(False).to_numpy(dtype=bool)
        return (series.mask(empty) if empty.any() else series).array
    present = series.notna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):
        if not present.any():
            return np.full(n, None, dtype=object)
        series = series.astype("str")
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
    ts = samples["ts"]
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert(None)
    stamps = ts.dt.as_unit("ns").to_numpy().view("i8")  # UTC nanoseconds (NaT: int64 min)
    latency = samples["latency_ms"].to_numpy(dtype="float64")
    stamped = stamps != np.iinfo(np.int64).min
    if not stamped.all():
        stamps, latency = stamps[stamped], latency[stamped]
    if stamps.size == 0:
        return 0.0
    last = None
    for start in range(0, stamps.size, _CHUNK):  # in steps: no run-long temporaries
        ends = stamps[start:start + _CHUNK] + ms_to_ns(np.nan_to_num(latency[start:start + _CHUNK], nan=0.0))
        last = ends.max() if last is None else max(last, ends.max())
    return (int(last) - int(stamps.min())) / 1e9


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
    endpoint = samples["endpoint"]
    if not isinstance(endpoint.dtype, pd.CategoricalDtype):
        endpoint = endpoint.astype("category")
    if endpoint.isna().any():
        endpoint = endpoint.cat.add_categories(["(unnamed)"]).fillna("(unnamed)")
    codes = endpoint.cat.codes.to_numpy()
    names = endpoint.cat.categories
    latency = samples["latency_ms"].to_numpy(dtype="float64")
    ok = samples["ok"].astype("boolean").array
    # per endpoint: requests, failed requests, requests whose outcome the tool did not record
    requests = np.bincount(codes, minlength=len(names))
    failed = np.bincount(codes[~ok.to_numpy(dtype=bool, na_value=True)], minlength=len(names))
    unknown = np.bincount(codes[ok.isna()], minlength=len(names))
    counted = _counted_percentiles(codes, latency, len(names))
    present = np.flatnonzero(requests)
    if counted is not None:  # every figure read off the counts: no endpoint's rows gathered
        rows = [_counted_row(str(names[code]), counted[code], int(requests[code]),
                             np.nan if unknown[code] else float(failed[code]), duration) for code in present]
        rows.append(_counted_row(ALL, counted[-1], len(codes), np.nan if unknown.any() else float(failed.sum()),
                                 duration))
        return summary_frame(rows)
    if present.size > _MASKED_ENDPOINTS:  # one stable sort instead of a mask per endpoint
        order = np.argsort(codes, kind="stable")
        bounds = np.r_[0, np.cumsum(requests)]
    rows = []
    for code in present:
        # each endpoint's latencies in the rows' order (the sums a groupby would make)
        if present.size == 1:
            mine = latency
        elif present.size > _MASKED_ENDPOINTS:
            mine = latency[order[bounds[code]:bounds[code + 1]]]
        else:
            mine = latency[codes == code]
        rows.append(_summary_row(str(names[code]), mine, int(requests[code]),
                                 np.nan if unknown[code] else float(failed[code]), duration))
    rows.append(_summary_row(ALL, latency, len(codes), np.nan if unknown.any() else float(failed.sum()),
                             duration))
    return summary_frame(rows)


def _counted_row(endpoint: str, figures: np.ndarray, requests: int, failures: float, duration: float) -> dict:
    """A summary row from ``_counted_percentiles``' figures (p50, p90, p95, p99, mean, max)."""
    row = {"endpoint": endpoint, "requests": requests, "failures": failures,
           "rps": requests / duration if duration > 0 else np.nan,
           "mean_ms": float(figures[4]), "max_ms": float(figures[5])}
    row.update(dict(zip(PERCENTILES, figures[:4].tolist(), strict=True)))
    return row


# Up to this many endpoints, each one's rows are picked by a mask (no sort of the run)
_MASKED_ENDPOINTS = 16
# Whole-millisecond latencies are counted, not selected, when the (endpoint, millisecond)
# table has at most this many cells (32 MB of counts)
_COUNTED_CELLS = 1 << 22
_CHUNK = 1 << 20  # rows per step: temporaries stay small (fresh large arrays cost page faults)
# as np.percentile sees them (``q * 100 / 100`` is not always ``q``)
_QUANTILES = np.true_divide(np.array([q * 100 for q in PERCENTILES.values()]), 100)


def _counted_percentiles(codes: np.ndarray, latency: np.ndarray, groups: int) -> np.ndarray | None:
    """p50, p90, p95, p99, mean and max of each endpoint (rows ``0..groups-1``) and of all (last
    row), by counting; NaN for an endpoint without latencies.

    For whole-millisecond latencies (JMeter, ab, Gatling, most tools): ``bincount`` of
    (endpoint, latency) in steps of a million rows replaces a selection per endpoint; the order
    statistics are read off the cumulative counts and interpolated exactly as ``np.percentile``
    does; the mean is the exact integer total over the count (what ``np.mean`` gives for
    integers below 2**53). None when the latencies are not small non-negative integers (then
    each endpoint is selected).
    """
    if latency.size == 0 or np.isnan(latency).all():
        return None
    top = np.nanmax(latency)
    if np.nanmin(latency) < 0 or (top + 1) * groups > _COUNTED_CELLS:
        return None
    width = int(top) + 1
    counts = np.zeros(groups * width, dtype=np.int64)
    for start in range(0, latency.size, _CHUNK):
        values, group = latency[start:start + _CHUNK], codes[start:start + _CHUNK]
        known = ~np.isnan(values)
        if not known.all():
            values, group = values[known], group[known]
        keys = values.astype(np.intp)
        if not np.array_equal(keys, values):
            return None
        keys += group.astype(np.intp) * width
        counts += np.bincount(keys, minlength=groups * width)
    counts = counts.reshape(groups, width)
    values = np.arange(width, dtype=np.int64)
    out = np.full((groups + 1, len(_QUANTILES) + 2), np.nan)
    for row, histogram in enumerate([*counts, counts.sum(axis=0)]):
        cumulative = np.cumsum(histogram)
        n = int(cumulative[-1])
        if n == 0:
            continue
        total = int(histogram @ values)
        if total >= 2**53:
            return None  # beyond exact float sums: select instead
        out[row, -2] = total / n
        out[row, -1] = float(np.flatnonzero(histogram)[-1])
        virtual = (n - 1) * _QUANTILES
        below = np.floor(virtual)
        above = np.minimum(below + 1, n - 1)
        # the k-th smallest value (0-based) is the first latency whose cumulative count exceeds k
        low = np.searchsorted(cumulative, below, side="right").astype("float64")
        high = np.searchsorted(cumulative, above, side="right").astype("float64")
        out[row, :len(_QUANTILES)] = _lerp(low, high, virtual - below)
    return out


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's percentile interpolation, operation for operation (same floating-point result)."""
    diff = b - a
    out = a + diff * t
    return np.where(t >= 0.5, b - diff * (1 - t), out)


def _summary_row(endpoint: str, latencies: np.ndarray, requests: int, failures: float, duration: float) -> dict:
    missing = np.isnan(latencies)
    if missing.any():
        latencies = latencies[~missing]
    row = {
        "endpoint": endpoint,
        "requests": requests,
        "failures": failures,
        "rps": requests / duration if duration > 0 else np.nan,
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
