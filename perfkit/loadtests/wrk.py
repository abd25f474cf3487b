"""wrk and wrk2: the text report printed with ``--latency`` (aggregates only).

wrk scales its units (us, ms, s, m, h) per figure and leaves timed-out requests out of latency.
wrk2 (``-R`` constant rate, giltene/wrk2) prints ``50.000%    6.67ms`` lines from an HdrHistogram
("Latency Distribution (HdrHistogram - Recorded Latency)") and a "Detailed Percentile spectrum"
in milliseconds; its latencies are measured from when each request should have been sent.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import ALL, summary_frame
from perfkit.loadtests.run import LoadTestRun, aggregate_run, guard, read_text

FORMATS = (
    Format("wrk", tool="wrk", gives="aggregates", description="wrk --latency text output",
           read="read_report", sniff=((170, "sniff_report"),),
           fixtures=("wrk_timeouts.txt", "wrk_seconds.txt", "wrk_missing.txt")),
    Format("wrk2", tool="wrk", gives="aggregates", description="wrk2 (-R rate) --latency text output",
           read="read_report", sniff=((169, "sniff_wrk2"),), fixtures=("wrk2_latency.txt",)),
)

TOOL = "wrk"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
NOTE_TIMEOUTS = (
    "wrk drops timed-out requests from its latency figures: its percentiles cover only the "
    "requests that completed"
)
NOTE_CLOSED = (
    "wrk keeps a fixed number of connections busy (closed loop): latencies understate waits "
    "under overload (coordinated omission; wrk2 corrects for it)"
)


def to_ms(value: str, unit: str) -> float:
    """A wrk time (``"1.54"``, ``"s"``) in milliseconds."""
    return float(value) * _UNITS_MS[unit]


def sniff_report(head: Head) -> bool:
    """``Running 3s test @ URL`` and ``N requests in``."""
    return re.search(rb"Running .+ test @ ", head.raw) is not None and b"requests in" in head.raw


NOTE_WRK2 = (
    "wrk2 sends at a constant rate and measures each latency from when its request should have "
    "been sent (coordinated omission corrected); percentiles from its HdrHistogram"
)
_WRK2 = re.compile(rb"HdrHistogram|Thread calibration: mean lat\.|Detailed Percentile spectrum")
_UNCORRECTED = "Latency Distribution (HdrHistogram - Uncorrected Latency"
_SPECTRUM_ROW = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(?:[\d.]+|inf)\s*$", re.M)


def sniff_wrk2(head: Head) -> bool:
    """A wrk report with wrk2's marks (its HdrHistogram distribution, its thread calibration)."""
    return sniff_report(head) and _WRK2.search(head.raw) is not None


def _spectrum(text: str) -> list[tuple[float, float]]:
    """wrk2's "Detailed Percentile spectrum": (value in ms, cumulative fraction) rows."""
    start = text.find("Detailed Percentile spectrum")
    if start < 0:
        return []
    return [(float(v), float(f)) for v, f, _ in _SPECTRUM_ROW.findall(text[start:])]


def _at(spectrum: list[tuple[float, float]], fraction: float) -> float:
    """HdrHistogram's value at a percentile: the first value whose cumulative fraction reaches it."""
    for value, cumulative in spectrum:
        if cumulative >= fraction - 1e-9:
            return value
    return np.nan


def read_report(path) -> LoadTestRun:
    """Read wrk's text output (run with ``--latency`` for the percentile table).

    Returns
    -------
    LoadTestRun
        One endpoint (the URL) and ALL. ``requests`` = completed requests plus socket
        timeouts; ``failures`` = non-2xx/3xx answers plus socket errors (connect, read, write,
        timeout). wrk's latency figures cover completed requests only.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "wrk output"):
        running = re.search(r"Running (.+?) test @ (\S+)", text)
        done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", text)
        if not running or not done:
            raise BadInputError("not a wrk report (no \"Running ... test @\" and \"N requests in\")", path=path)
        completed = float(done.group(1))
        seconds = to_ms(done.group(2), done.group(3)) / 1000
        latency = re.search(rf"Latency\s+{_TIME}\s+{_TIME}\s+{_TIME}", text)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        connect, read, write, timeout = (int(g) for g in errors.groups()) if errors else (0, 0, 0, 0)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        non2xx = int(non2xx.group(1)) if non2xx else 0
        rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
        wrk2 = _WRK2.search(text.encode()) is not None
        recorded = text.split(_UNCORRECTED, 1)[0]  # wrk2 -U prints the uncorrected figures after
        dist = {}
        for p, v, u in re.findall(rf"^\s*(\d+(?:\.\d+)?)%\s+{_TIME}\s*$", recorded, re.M):
            dist[int(float(p)) if float(p).is_integer() else float(p)] = to_ms(v, u)
        spectrum = _spectrum(recorded)
        if spectrum:  # the spectrum holds every percentile (wrk2's short list has no p95)
            for pct in (50, 90, 95, 99):
                dist.setdefault(pct, _at(spectrum, pct / 100))
        histogram = re.search(r"#\[Mean\s*=\s*([\d.]+),.*?\]\s*#\[Max\s*=\s*([\d.]+),\s*Total count\s*=\s*(\d+)",
                              recorded, re.S)
        requests = completed + timeout
        row = {
            "endpoint": running.group(2),
            "requests": requests,
            "failures": non2xx + connect + read + write + timeout,
            "rps": float(rps.group(1)) if rps else completed / seconds,
            "mean_ms": to_ms(latency.group(1), latency.group(2)) if latency else np.nan,
            "p50_ms": dist.get(50, np.nan), "p90_ms": dist.get(90, np.nan),
            "p95_ms": dist.get(95, np.nan), "p99_ms": dist.get(99, np.nan),
            "max_ms": to_ms(latency.group(5), latency.group(6)) if latency else np.nan,
        }
        if histogram:  # the HdrHistogram's own mean and max, to the microsecond
            row["mean_ms"], row["max_ms"] = float(histogram.group(1)), float(histogram.group(2))
        notes = [NOTE_TIMEOUTS, NOTE_WRK2 if wrk2 else NOTE_CLOSED]
        if wrk2 and _UNCORRECTED in text:
            notes.append("wrk2 -U also printed uncorrected latencies: perfkit reports the recorded (corrected) ones")
        if timeout:
            notes.append(f"{timeout} request(s) timed out and are missing from wrk's latency figures")
        if not dist:
            notes.append(f"{'wrk2' if wrk2 else 'wrk'} ran without --latency: no percentiles")
        figures = {"completed": completed, "timeouts": timeout, "connect_errors": connect,
                   "read_errors": read, "write_errors": write, "non_2xx_3xx": non2xx,
                   "requests_per_sec": row["rps"], "distribution": dist}
        if histogram:
            figures["histogram_count"] = int(histogram.group(3))
        return aggregate_run(
            summary_frame([row, {**row, "endpoint": ALL}]), tool=TOOL,
            format="wrk2" if wrk2 else "wrk", source=path, percentiles_from="histogram" if spectrum else "tool",
            notes=notes, tool_figures=figures, closed_loop=not wrk2, duration_s=seconds,
        )
