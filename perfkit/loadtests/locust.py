"""Locust outputs: ``--csv PREFIX`` files (stats, stats_history, failures, exceptions) and ``--json``.

Locust keeps rounded response-time buckets, not samples: its percentiles are bucket values.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.fileio import probe, size_of
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import ALL, summary_frame
from perfkit.loadtests.run import (
    CsvCheck,
    LoadTestRun,
    aggregate_run,
    check_csv,
    csv_numbers,
    guard,
    read_text,
)

FORMATS = (
    Format("locust-csv", tool="locust", gives="aggregates",
           description="Locust --csv PREFIX (_stats, _stats_history, _failures)",
           read="read_csv", sniff=((130, "sniff_csv"),),
           fixtures=("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                     "locust_exceptions.csv")),
    Format("locust-json", tool="locust", gives="histogram", description="Locust --json / --json-file",
           read="read_json", sniff=((30, "sniff_json"),), fixtures=("locust.json",)),
)

TOOL = "locust"
STATS_HEADER = "Type,Name,Request Count,Failure Count"
HISTORY_HEADER = "Timestamp,User Count,Type,Name"
FAILURES_HEADER = "Method,Name,Error,Occurrences"
NOTE_BUCKETS = (
    "Locust rounds response times into buckets (to 1 ms below 100 ms, 10 ms below 1 s, "
    "100 ms above): its percentiles are bucket values, not exact"
)
NOTE_CSV_LAG = (
    "Locust rewrites its CSV files about once a second while running: the last second of the "
    "run can be missing from them (its --json output is written at the end)"
)
NOTE_CLOSED = (
    "Locust users wait for each answer before the next request (closed loop): latencies "
    "understate waits under overload (coordinated omission)"
)
_PCT_COLUMNS = {"p50_ms": "50%", "p90_ms": "90%", "p95_ms": "95%", "p99_ms": "99%"}


def _siblings(path: Path) -> dict[str, Path]:
    name = path.name
    for suffix in ("_stats_history.csv", "_stats.csv", "_failures.csv", "_exceptions.csv"):
        # longest first: "_stats_history.csv" also ends in "_history.csv", never in "_stats.csv"
        if name.endswith(suffix):
            prefix = name[: -len(suffix)]
            return {
                kind: path.with_name(prefix + f"_{kind}.csv")
                for kind in ("stats", "stats_history", "failures", "exceptions")
            }
    return {"stats": path}


def _endpoint_names(types: pd.Series, names: pd.Series) -> pd.Series:
    """The Name, or "METHOD Name" when one Name is requested with several methods."""
    names = names.astype(str)
    types = types.fillna("").astype(str)
    clash = names.map(names.value_counts()) > 1
    return names.where(~clash, types + " " + names)


def _methods(stats: pd.DataFrame) -> dict[str, list[str]]:
    """Endpoint -> the HTTP methods Locust's ``Type`` column names for it (SLO classes use them)."""
    if "Type" not in stats.columns or "Name" not in stats.columns:
        return {}
    named = stats[stats["Name"].astype(str) != "Aggregated"]
    endpoints = _endpoint_names(named["Type"], named["Name"])
    out: dict[str, list[str]] = {}
    for endpoint, method in zip(endpoints, named["Type"].fillna("").astype(str), strict=True):
        if method.strip():
            out.setdefault(str(endpoint), []).append(method.strip().upper())
    return out


def sniff_csv(head: Head) -> bool:
    """One of the headers of Locust's CSV files (its exceptions file too)."""
    return head.first.startswith((STATS_HEADER.encode(), HISTORY_HEADER.encode(),
                                  FAILURES_HEADER.encode(), b"Count,Message,Traceback,Nodes"))


def read_csv(path) -> LoadTestRun:
    """Read Locust ``--csv`` output from any of its files (the siblings are found by prefix).

    Returns
    -------
    LoadTestRun
        Summary from ``_stats.csv`` (Locust's own bucket-rounded percentiles), ``history``
        from ``_stats_history.csv`` (users, throughput and percentiles per second), failures
        by error from ``_failures.csv`` in ``tool_figures["failures"]``; no samples.
    """
    path = Path(path)
    files = _siblings(path)
    stats_path = files["stats"]
    # probe, not Path.exists(): a sibling in a folder the user may not enter is one line
    if probe(stats_path) is None:
        if "stats_history" in files and probe(files["stats_history"]) is not None:
            stats_path = None
        else:
            raise BadInputError("Locust stats file not found next to it", path=stats_path)
    notes = [NOTE_BUCKETS, NOTE_CSV_LAG, NOTE_CLOSED]
    history = endpoint_history = pd.DataFrame()
    figures: dict = {}
    summary = None
    if stats_path is not None:
        text = read_text(stats_path)
        with guard(stats_path, "Locust stats CSV"):
            if not text.startswith(STATS_HEADER):
                raise BadInputError(f"not a Locust stats CSV (header starts {STATS_HEADER!r})", path=stats_path, line=1)
            checked = check_csv(text, stats_path, "Locust stats CSV")
            notes.extend(checked.notes)
            stats = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False)
            summary = _stats_summary(stats, stats_path, checked)
            figures["methods"] = _methods(stats)
    hist_path = files.get("stats_history")
    if hist_path is not None and probe(hist_path) is not None:
        with guard(hist_path, "Locust stats history CSV"):
            history, endpoint_history = _history(read_text(hist_path), hist_path, notes)
    fail_path = files.get("failures")
    if fail_path is not None and probe(fail_path) is not None and size_of(fail_path):
        with guard(fail_path, "Locust failures CSV"):
            fail_text = read_text(fail_path)
            notes.extend(check_csv(fail_text, fail_path, "Locust failures CSV").notes)
            failures = pd.read_csv(io.StringIO(fail_text), keep_default_na=False, index_col=False)
            figures["failures"] = failures.to_dict(orient="records")
    exc_path = files.get("exceptions")
    if exc_path is not None and probe(exc_path) is not None and size_of(exc_path):
        with guard(exc_path, "Locust exceptions CSV"):
            exc_text = read_text(exc_path)
            notes.extend(check_csv(exc_text, exc_path, "Locust exceptions CSV").notes)
            exceptions = pd.read_csv(io.StringIO(exc_text), keep_default_na=False, index_col=False)
            if len(exceptions):
                figures["exceptions"] = exceptions.to_dict(orient="records")
                notes.append(f"{int(exceptions['Count'].sum())} exception(s) in the locustfile itself")
    if summary is None:
        summary = _summary_from_history(history, hist_path)
    all_row = summary[summary["endpoint"] == ALL]
    if len(all_row):
        figures["requests"] = int(all_row["requests"].iloc[0])
        figures["failures"] = figures.get("failures", [])
        figures["failed_requests"] = float(all_row["failures"].iloc[0])
    return aggregate_run(
        summary, tool=TOOL, format="locust-csv", source=path, notes=notes, history=history,
        endpoint_history=endpoint_history, tool_figures=figures, closed_loop=True,
    )


def _stats_summary(stats: pd.DataFrame, path: Path, checked: CsvCheck) -> pd.DataFrame:
    for column in ("Type", "Name", "Request Count", "Failure Count", "Average Response Time",
                   "Max Response Time", "Requests/s"):
        if column not in stats.columns:
            raise BadInputError(f"Locust stats CSV without a {column!r} column", path=path, line=1)
    is_all = stats["Name"].astype(str) == "Aggregated"
    endpoint = _endpoint_names(stats["Type"], stats["Name"]).where(~is_all, ALL)
    what = "Locust stats CSV"

    def number(name, **kwargs):
        return csv_numbers(stats[name], checked, path, what, blank=("", "N/A"), **kwargs)

    rows = pd.DataFrame(
        {
            "endpoint": endpoint,
            "requests": csv_numbers(stats["Request Count"], checked, path, what, integer=True),
            "failures": csv_numbers(stats["Failure Count"], checked, path, what, integer=True),
            "rps": number("Requests/s"),
            "mean_ms": number("Average Response Time"),
            "max_ms": number("Max Response Time"),
        }
    )
    for column, name in _PCT_COLUMNS.items():
        rows[column] = number(name) if name in stats.columns else np.nan
    return summary_frame(rows.to_dict(orient="records"))


def _history(text: str, path: Path, notes: list | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Aggregated rows of a stats history, and its per-endpoint rows (``--csv-full-history``;
    empty without), each with counts per interval (:func:`per_interval`)."""
    if not text.startswith(HISTORY_HEADER):
        raise BadInputError(f"not a Locust stats history CSV (header starts {HISTORY_HEADER!r})", path=path, line=1)
    checked = check_csv(text, path, "Locust stats history CSV")
    if notes is not None:
        notes.extend(checked.notes)
    frame = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=["N/A"], index_col=False)
    aggregated = frame["Name"].astype(str) == "Aggregated"
    history = per_interval(_history_rows(frame[aggregated]))
    rows = frame[~aggregated]
    if rows.empty:
        return history, pd.DataFrame()
    pairs = rows[["Type", "Name"]].astype(str).drop_duplicates()
    named = dict(zip(zip(pairs["Type"], pairs["Name"], strict=True), _endpoint_names(pairs["Type"], pairs["Name"]),
                     strict=True))
    endpoints = pd.Series([named[(t, n)] for t, n in zip(rows["Type"].astype(str), rows["Name"].astype(str),
                                                         strict=True)], index=rows.index)
    parts = [per_interval(_history_rows(group)).assign(endpoint=name)
             for name, group in rows.groupby(endpoints, sort=True)]
    return history, pd.concat(parts, ignore_index=True)


_HISTORY_PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]


def _history_rows(frame: pd.DataFrame) -> pd.DataFrame:
    ts = pd.to_datetime(pd.to_numeric(frame["Timestamp"], errors="raise"), unit="s", utc=True)
    percentiles = frame[[c for c in _HISTORY_PERCENTILES if c in frame.columns]].apply(pd.to_numeric, errors="coerce")
    # Locust writes its "current" percentiles as 0 (all of them, up to 100 %) until its rolling
    # window holds a response: no measurement, not a 0 ms latency
    empty_window = percentiles.fillna(0).eq(0).all(axis=1)

    def percentile(column: str) -> pd.Series:
        return pd.to_numeric(frame[column], errors="coerce").mask(empty_window)

    return pd.DataFrame(
        {
            "ts": ts,
            "users": pd.to_numeric(frame["User Count"], errors="coerce"),
            "rps": pd.to_numeric(frame["Requests/s"], errors="coerce"),
            "failures_per_s": pd.to_numeric(frame["Failures/s"], errors="coerce"),
            "requests_total": pd.to_numeric(frame["Total Request Count"], errors="coerce"),
            "failures_total": pd.to_numeric(frame["Total Failure Count"], errors="coerce"),
            "mean_ms": pd.to_numeric(frame["Total Average Response Time"], errors="coerce"),
            "p50_ms": percentile("50%"),
            "p95_ms": percentile("95%"),
            "p99_ms": percentile("99%"),
        }
    ).reset_index(drop=True)


def per_interval(history: pd.DataFrame) -> pd.DataFrame:
    """Locust's cumulative counters (``requests_total``, ``failures_total``) turned into what each
    row's interval added (``requests``, ``failures``: 13, 25, 37, 54 become 13, 12, 12, 17), and the
    rows before the first request dropped (Locust writes one at start-up, all zeros and N/A: it is
    no measurement, and plotted it is a fake zero point)."""
    if history.empty:
        return history.assign(requests=pd.Series(dtype=float), failures=pd.Series(dtype=float))
    history = history.copy()
    for total, step in (("requests_total", "requests"), ("failures_total", "failures")):
        # a counter that goes down was reset (a new run in the same file): that interval adds its value
        added = history[total].diff()
        history[step] = added.where(added >= 0, history[total]).fillna(history[total])
    started = history["requests_total"].fillna(0).gt(0).cummax()
    return history[started].reset_index(drop=True)


def _summary_from_history(history: pd.DataFrame, path) -> pd.DataFrame:
    if history.empty:
        raise BadInputError("Locust stats history has no Aggregated row with a request", path=path)
    last = history.iloc[-1]
    return summary_frame(
        [{"endpoint": ALL, "requests": last["requests_total"], "failures": last["failures_total"],
          "mean_ms": last["mean_ms"], "p50_ms": last["p50_ms"], "p95_ms": last["p95_ms"],
          "p99_ms": last["p99_ms"]}]
    )


def locust_percentile(response_times: dict, num_requests: int, percent: float) -> float:
    """Locust's own percentile of its bucket histogram (``calculate_response_time_percentile``).

    Walks the buckets from the slowest down and returns the first bucket at which the
    requests left below it number at most ``int(num_requests * percent)``.
    """
    limit = int(num_requests * percent)
    processed = 0
    for bucket in sorted(response_times, reverse=True):
        processed += response_times[bucket]
        if num_requests - processed <= limit:
            return float(bucket)
    return 0.0


def sniff_json(head: Head) -> bool:
    """A JSON array (after k6 and vegeta lines: Locust writes a list of stats entries)."""
    return head.text.startswith(b"[")


def read_json(path) -> LoadTestRun:
    """Read Locust's ``--json`` / ``--json-file`` output (a list of per-endpoint stats).

    Percentiles are computed from Locust's rounded response-time buckets with Locust's own
    method, so they equal the figures Locust would print; ``history`` holds requests and
    failures per second per endpoint.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "Locust JSON"):
        entries = json.loads(text)
        if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and "num_requests" in e and "response_times" in e for e in entries
        ):
            raise BadInputError("not a Locust JSON stats list (entries with num_requests, response_times)", path=path)
        rows = []
        merged: dict[float, int] = {}
        starts, lasts = [], []
        names = pd.Series([str(e.get("name")) for e in entries])
        endpoints = _endpoint_names(pd.Series([str(e.get("method", "")) for e in entries]), names)
        history_parts = []
        for entry, endpoint in zip(entries, endpoints, strict=True):
            buckets = {float(k): int(v) for k, v in entry["response_times"].items()}
            n = int(entry["num_requests"])
            start, last = float(entry["start_time"]), float(entry["last_request_timestamp"])
            starts.append(start)
            lasts.append(last)
            for k, v in buckets.items():
                merged[k] = merged.get(k, 0) + v
            rows.append(_json_row(endpoint, buckets, n, int(entry["num_failures"]),
                                  float(entry["total_response_time"]), float(entry["max_response_time"] or np.nan),
                                  last - start))
            per_sec = entry.get("num_reqs_per_sec") or {}
            fail_sec = entry.get("num_fail_per_sec") or {}
            if per_sec:
                seconds = sorted(set(per_sec) | set(fail_sec), key=float)
                history_parts.append(pd.DataFrame({
                    "ts": pd.to_datetime([float(s) for s in seconds], unit="s", utc=True),
                    "endpoint": endpoint,
                    "requests": [int(per_sec.get(s, 0)) for s in seconds],
                    "failures": [int(fail_sec.get(s, 0)) for s in seconds],
                }))
        total = sum(int(e["num_requests"]) for e in entries)
        rows.append(_json_row(ALL, merged, total, sum(int(e["num_failures"]) for e in entries),
                              sum(float(e["total_response_time"]) for e in entries),
                              max(float(e["max_response_time"] or 0) for e in entries),
                              max(lasts) - min(starts)))
        history = pd.concat(history_parts, ignore_index=True) if history_parts else pd.DataFrame()
        return aggregate_run(
            summary_frame(rows), tool=TOOL, format="locust-json", source=path,
            percentiles_from="histogram", notes=[NOTE_BUCKETS, NOTE_CLOSED], history=history,
            tool_figures={"requests": total, "failed_requests": rows[-1]["failures"]},
            closed_loop=True, duration_s=max(lasts) - min(starts),
        )


def _json_row(endpoint, buckets, n, failures, total_ms, max_ms, seconds) -> dict:
    row = {"endpoint": endpoint, "requests": n, "failures": failures,
           "rps": n / seconds if seconds > 0 else np.nan,
           "mean_ms": total_ms / n if n else np.nan, "max_ms": max_ms}
    for column, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        row[column] = locust_percentile(buckets, n, q) if n else np.nan
    return row
