"""ApacheBench (ab): the text report, the ``-g`` gnuplot TSV (per request) and the ``-e`` CSV.

Only ``-g`` has one row per request; it has no status codes and is sorted by total time.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import ALL, samples_frame, summarize, summary_frame
from perfkit.loadtests.run import (
    LoadTestRun,
    aggregate_run,
    check_csv,
    csv_numbers,
    guard,
    read_text,
)

FORMATS = (
    Format("ab", tool="ab", gives="aggregates", description="ApacheBench text output",
           read="read_text_report", sniff=((160, "sniff_text_report"),),
           fixtures=("ab_search.txt", "ab_reports.txt")),
    Format("ab-gnuplot", tool="ab", gives="samples", description="ApacheBench -g gnuplot TSV",
           read="read_gnuplot", options=("endpoint",), sniff=((140, "sniff_gnuplot"),),
           fixtures=("ab_gnuplot.tsv",)),
    Format("ab-percentiles", tool="ab", gives="aggregates", description="ApacheBench -e percentile CSV",
           read="read_percentiles", sniff=((150, "sniff_percentiles"),),
           fixtures=("ab_percentiles.csv",)),
)

TOOL = "ab"
GNUPLOT_HEADER = "starttime\tseconds\tctime\tdtime\tttime\twait"
PERCENT_HEADER = "Percentage served,Time in ms"
NOTE_CLOSED = (
    "ab keeps a fixed number of requests in flight (closed loop): latencies understate waits "
    "under overload (coordinated omission)"
)
NOTE_PERCENTILES = "ab's percentiles are whole milliseconds read off the sorted requests (no interpolation)"


def _field(text: str, label: str) -> str | None:
    match = re.search(rf"^{re.escape(label)}:\s*(.+?)\s*$", text, re.M)
    return match.group(1) if match else None


def _number(text: str | None) -> float:
    if text is None:
        return np.nan
    match = re.match(r"[-+]?\d+(?:\.\d+)?", text.strip())
    return float(match.group(0)) if match else np.nan


def sniff_text_report(head: Head) -> bool:
    """ab's banner or its request count."""
    return b"This is ApacheBench" in head.raw or b"Complete requests:" in head.raw


def read_text_report(path) -> LoadTestRun:
    """Read ab's text output (stdout saved to a file).

    Failures are non-2xx responses plus connect, receive and exception failures. ab's own
    "Failed requests" also counts *Length* failures (a body whose length differs from the
    first answer's), which dynamic pages trigger without any error: those are reported in
    ``tool_figures`` and notes, not counted as failures.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "ab output"):
        if "This is ApacheBench" not in text and "Complete requests:" not in text:
            raise BadInputError("not an ab (ApacheBench) report", path=path)
        complete = _number(_field(text, "Complete requests"))
        if np.isnan(complete):
            raise BadInputError("ab report without \"Complete requests\" (truncated?)", path=path)
        failed = _number(_field(text, "Failed requests"))
        breakdown = re.search(
            r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text
        )
        connect, receive, length, exceptions = (
            (int(g) for g in breakdown.groups()) if breakdown else (0, 0, 0, 0)
        )
        non2xx = _number(_field(text, "Non-2xx responses"))
        non2xx = 0.0 if np.isnan(non2xx) else non2xx
        failures = non2xx + connect + receive + exceptions
        seconds = _number(_field(text, "Time taken for tests"))
        total = re.search(r"^Total:\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)", text, re.M)
        percents = {
            int(p): float(v)
            for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", text, re.M)
        }
        endpoint = _field(text, "Document Path") or "/"
        row = {
            "endpoint": endpoint,
            "requests": complete,
            "failures": failures,
            "rps": _number(_field(text, "Requests per second")),
            "mean_ms": float(total.group(2)) if total else np.nan,
            "p50_ms": percents.get(50, float(total.group(4)) if total else np.nan),
            "p90_ms": percents.get(90, np.nan),
            "p95_ms": percents.get(95, np.nan),
            "p99_ms": percents.get(99, np.nan),
            "max_ms": percents.get(100, float(total.group(5)) if total else np.nan),
        }
        # "Time per request" (mean) has decimals; the Total line is rounded to whole ms
        mean = re.search(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$", text, re.M)
        concurrency = _number(_field(text, "Concurrency Level"))
        if mean and concurrency > 0:
            row["mean_ms"] = float(mean.group(1))
        notes = [NOTE_PERCENTILES, NOTE_CLOSED]
        if length:
            notes.append(
                f"ab counted {length} Length failure(s): answers whose body length differs from "
                "the first one; perfkit does not count them as failures"
            )
        figures = {"requests": complete, "failed": failed, "connect": connect, "receive": receive,
                   "length": length, "exceptions": exceptions, "non_2xx": non2xx,
                   "percentiles": percents}
        return aggregate_run(
            summary_frame([row, {**row, "endpoint": ALL}]), tool=TOOL, format="ab", source=path,
            notes=notes, tool_figures=figures, closed_loop=True,
            duration_s=seconds if np.isfinite(seconds) else None,
        )


def sniff_gnuplot(head: Head) -> bool:
    """The ``-g`` TSV header."""
    return head.first.startswith(GNUPLOT_HEADER.encode())


def read_gnuplot(path, *, endpoint: str = "ab") -> LoadTestRun:
    """Read ab's ``-g`` gnuplot TSV: one row per request.

    The rows are sorted by total time, not by start: perfkit sorts them by start time. The
    start is known to the second only, and no status is recorded, so ``ok`` and the failure
    counts are unknown (NA); ``endpoint`` names the requests (ab tests one URL).
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "ab gnuplot (-g)"):
        if not text.startswith(GNUPLOT_HEADER):
            raise BadInputError(f"not an ab -g file (header {GNUPLOT_HEADER!r})", path=path, line=1)
        checked = check_csv(text, path, "ab -g", sep="\t")
        rows = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, index_col=False)
        seconds = pd.to_numeric(rows["seconds"], errors="coerce")
        ttime = pd.to_numeric(rows["ttime"], errors="coerce")
        bad = seconds.isna() | ttime.isna()
        if bad.any():
            raise BadInputError("ab -g row without numbers (truncated?)", path=path,
                                line=int(np.flatnonzero(bad.to_numpy())[0]) + 2)
        if rows.empty:
            raise BadInputError("ab -g file without requests", path=path)
        order = np.argsort(seconds.to_numpy(), kind="stable")
        samples = samples_frame(
            ts=pd.to_datetime(seconds.to_numpy()[order], unit="s", utc=True),
            endpoint=[endpoint] * len(rows), latency_ms=ttime.to_numpy()[order],
            tool=TOOL, source=str(path),
        )
        duration = float(seconds.max() - seconds.min() + 1)
        return LoadTestRun(
            samples=samples, summary=summarize(samples, duration_s=duration), tool=TOOL,
            format="ab-gnuplot", source=str(path), percentiles_from="samples",
            notes=["ab -g rows are sorted by total time; perfkit orders them by start (to the second)",
                   "ab -g records no status: failures are unknown", NOTE_CLOSED, *checked.notes],
            closed_loop=True, duration_s=duration,
        )


def sniff_percentiles(head: Head) -> bool:
    """The ``-e`` CSV header."""
    return head.first.startswith(PERCENT_HEADER.encode())


def read_percentiles(path) -> LoadTestRun:
    """Read ab's ``-e`` CSV (the time within which each percentage of requests was served)."""
    path = Path(path)
    text = read_text(path)
    with guard(path, "ab percentiles (-e)"):
        if not text.startswith(PERCENT_HEADER):
            raise BadInputError(f"not an ab -e file (header {PERCENT_HEADER!r})", path=path, line=1)
        checked = check_csv(text, path, "ab -e")
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False)
        if table.shape[1] != 2:
            raise BadInputError(f"ab -e file with {table.shape[1]} columns (ab writes 2)", path=path, line=1)
        table.columns = ["pct", "ms"]
        table["pct"] = csv_numbers(table["pct"], checked, path, "ab -e")
        table["ms"] = csv_numbers(table["ms"], checked, path, "ab -e")
        lookup = dict(zip(table["pct"].astype(int), table["ms"], strict=True))
        if not lookup:
            raise BadInputError("ab -e file without rows", path=path)
        row = {"endpoint": ALL, "requests": np.nan, "failures": np.nan,
               "p50_ms": lookup.get(50, np.nan), "p90_ms": lookup.get(90, np.nan),
               "p95_ms": lookup.get(95, np.nan), "p99_ms": lookup.get(99, np.nan),
               "max_ms": lookup.get(100, np.nan)}
        return aggregate_run(
            summary_frame([row]), tool=TOOL, format="ab-percentiles", source=path,
            notes=["ab -e holds percentiles only: no request or failure counts", NOTE_CLOSED, *checked.notes],
            tool_figures={"percentiles": lookup}, closed_loop=True,
        )
