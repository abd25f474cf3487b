"""Load-test charts: latency percentiles, throughput and errors over time, CDF and histogram.

Each takes a LoadTestRun (or its samples frame) and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from perfkit.charts.figures import message_figure, plain_log_ticks
from perfkit.loadtests.analysis import per_second
from perfkit.loadtests.frames import ALL, PERCENTILES

# runs up to this long get relative ticks ("0 s", "30 s"); longer ones the clock (HH:MM:SS, UTC)
RELATIVE_TICKS_UP_TO_S = 15 * 60
MAX_BINS = 120
LATENCY_LINES = {"p50_ms": ("p50", "#4c72b0"), "p95_ms": ("p95", "#dd8452"), "p99_ms": ("p99", "#c44e52")}


def _samples(run) -> pd.DataFrame:
    return run if isinstance(run, pd.DataFrame) else run.samples


def _title(run, what: str) -> str:
    return what if isinstance(run, pd.DataFrame) else f"{what} — {run.tool}, {run.source.rsplit('/', 1)[-1]}"


def _bin(samples: pd.DataFrame) -> str:
    """A time bin giving at most MAX_BINS bins over the run (1 s, 5 s, 10 s, 30 s, 1 min, ...)."""
    span = (samples["ts"].max() - samples["ts"].min()).total_seconds()
    for seconds in (1, 5, 10, 30, 60, 300, 600, 1800, 3600):
        if span / seconds <= MAX_BINS:
            return f"{seconds}s"
    return "3600s"


def timeline(run) -> pd.DataFrame:
    """The run over time, overall: one row per time bin (from samples) or per row of the tool's
    history, with ``seconds`` since the start; rows of an interval without a request dropped (they
    measured nothing: plotted, they are fake zero points). Per-endpoint histories are summed."""
    samples = _samples(run)
    if not samples.empty:
        frame = per_second(samples, _bin(samples))
    elif isinstance(run, pd.DataFrame) or run.history is None or run.history.empty:
        return pd.DataFrame()
    else:
        frame = run.history.copy()
        if "endpoint" in frame.columns and "ts" in frame.columns:
            summed = [c for c in ("requests", "failures") if c in frame.columns]
            frame = frame.groupby("ts", as_index=False)[summed].sum()
    if "ts" in frame.columns and len(frame):
        frame = frame.sort_values("ts").reset_index(drop=True)
        frame["seconds"] = (frame["ts"] - frame["ts"].iloc[0]).dt.total_seconds()
    elif "elapsed_s" in frame.columns:  # pgbench: seconds since its start, no clock time
        frame["seconds"] = pd.to_numeric(frame["elapsed_s"], errors="coerce")
    else:
        return pd.DataFrame()
    if "requests" in frame.columns:
        frame = frame[~(frame["requests"] <= 0)].reset_index(drop=True)  # an unknown count (NaN) stays
    return frame


def endpoint_timeline(run, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """p95 per endpoint over time (``endpoint``, ``seconds`` since ``start``, the overall
    timeline's first row, ``p95_ms``), from samples or the tool's per-endpoint history (Locust
    ``--csv-full-history``); rows without a request or a percentile dropped. Empty for a single
    endpoint or without either source."""
    samples = _samples(run)
    if not samples.empty:
        if samples["endpoint"].nunique() < 2:
            return pd.DataFrame()
        freq = _bin(samples)
        start = samples["ts"].min().floor(freq) if start is None else start
        parts = []
        for endpoint, group in samples.groupby("endpoint", observed=True):
            bins = per_second(group, freq)
            parts.append(bins[bins["requests"] > 0].assign(endpoint=str(endpoint)))
        frame = pd.concat(parts, ignore_index=True)
    else:
        frame = getattr(run, "endpoint_history", None)
        if frame is None or frame.empty or "p95_ms" not in frame.columns or frame["endpoint"].nunique() < 2:
            return pd.DataFrame()
        frame = frame[frame["requests"].fillna(0) > 0] if "requests" in frame.columns else frame
        start = frame["ts"].min() if start is None else start
    frame = frame[frame["p95_ms"].notna()]
    return frame.assign(seconds=(frame["ts"] - start).dt.total_seconds()).reset_index(drop=True)


def _time_axis(ax: Axes, frame: pd.DataFrame) -> None:
    """Ticks people read: ``0 s, 30 s`` for a short run, the clock ``HH:MM:SS`` for a long one."""
    span = float(frame["seconds"].max()) if len(frame) else 0.0
    start = frame["ts"].iloc[0] if "ts" in frame.columns and len(frame) else None
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 3, 5, 6, 10], integer=span >= 3))
    if start is None or span <= RELATIVE_TICKS_UP_TO_S:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} s"))
        ax.set_xlabel("since the start" + (f" ({start:%Y-%m-%d %H:%M:%S} UTC)" if start is not None else ""))
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{start + pd.Timedelta(seconds=v):%H:%M:%S}"))
        ax.set_xlabel(f"time (UTC, {start:%Y-%m-%d})")


def _from_zero(ax: Axes) -> None:
    """A y axis from 0 with a tenth of head room (a flat line is never drawn on the frame)."""
    top = max((float(np.nanmax(line.get_ydata())) for line in ax.get_lines() if len(line.get_ydata())), default=1.0)
    ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)


def _legend(ax: Axes) -> None:
    """The legend beside the plot, never over a line."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def latency_over_time(run) -> Figure:
    """p50 / p95 / p99 latency over time, overall and (from samples) p95 per endpoint.

    Returns
    -------
    matplotlib.figure.Figure
        The top panel: one line per percentile (the mean when the tool gives no percentile) over
        the time bins that had requests; the second panel, when the run has per-request samples
        of several endpoints, p95 per endpoint. Legends sit beside the plot.
    """
    frame = timeline(run)
    columns = [c for c in LATENCY_LINES if c in frame.columns and frame[c].notna().any()]
    if not columns and "mean_ms" in frame.columns and frame["mean_ms"].notna().any():
        columns = ["mean_ms"]
    if frame.empty or not columns:
        return message_figure("no latency over time in this result")
    endpoints = endpoint_timeline(run, frame["ts"].iloc[0] if "ts" in frame.columns else None)
    fig = Figure(figsize=(10, 6.5 if len(endpoints) else 4), layout="constrained")
    axes = fig.subplots(2 if len(endpoints) else 1, 1, squeeze=False, sharex=True)[:, 0]
    ax = axes[0]
    for column in columns:
        name, colour = LATENCY_LINES.get(column, ("mean", "#55a868"))
        rows = frame[frame[column].notna()]
        ax.plot(rows["seconds"], rows[column], label=f"{name} (all endpoints)", color=colour, marker=".",
                markersize=3 if len(rows) > 40 else 5)
    ax.set_ylabel("latency (ms)")
    _from_zero(ax)
    ax.set_title(_title(run, "Latency over time"), fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax)
    if len(endpoints):
        lower = axes[1]
        for endpoint, group in endpoints.groupby("endpoint", sort=True):
            lower.plot(group["seconds"], group["p95_ms"], label=str(endpoint), marker=".", markersize=3)
        lower.set_ylabel("p95 latency (ms)")
        _from_zero(lower)
        lower.set_title("p95 per endpoint", fontsize=9, loc="left")
        lower.grid(alpha=0.3)
        _legend(lower)
    _time_axis(axes[-1], frame)
    return fig


def throughput_over_time(run) -> Figure:
    """Requests per second and failures per interval, each from what the interval added (never a
    tool's cumulative counter); the failures panel only when there were failures."""
    frame = timeline(run)
    if frame.empty or not ({"requests", "rps"} & set(frame.columns)):
        return message_figure("no throughput over time in this result")
    steps = frame["seconds"].diff()
    interval = steps.fillna(steps.median() if steps.notna().any() else 1.0).where(lambda s: s > 0)
    if "requests" in frame.columns and frame["requests"].notna().any():
        rps = frame["requests"] / interval
    else:
        rps = frame["rps"]
    failures = frame["failures"].fillna(0) if "failures" in frame.columns else pd.Series(0.0, index=frame.index)
    failed = bool(failures.sum() > 0)
    fig = Figure(figsize=(10, 5.5 if failed else 3.5), layout="constrained")
    axes = fig.subplots(2 if failed else 1, 1, squeeze=False, sharex=True)[:, 0]
    ax = axes[0]
    ax.plot(frame["seconds"], rps, color="#4c72b0", marker=".", markersize=4, label="requests / s")
    ax.set_ylabel("requests / s")
    _from_zero(ax)
    ax.grid(alpha=0.3)
    what = "Throughput and failures over time" if failed else "Throughput over time (no failures)"
    ax.set_title(_title(run, what), fontsize=10)
    if failed:
        lower = axes[1]
        width = float(interval.median()) * 0.8 if interval.notna().any() else 0.8
        lower.bar(frame["seconds"], failures, width=width, color="#c44e52", label="failures")
        lower.set_ylabel("failures per interval")
        lower.yaxis.set_major_locator(MaxNLocator(integer=True))
        lower.grid(alpha=0.3)
    _time_axis(axes[-1], frame)
    return fig


def latency_cdf(run, *, log_scale: bool = True) -> Figure:
    """The latency distribution (CDF) per endpoint, from raw samples."""
    samples = _samples(run)
    if samples.empty:
        return message_figure("no per-request samples: this tool writes aggregates only")

    def step(ax, latencies: pd.Series, label: str) -> None:
        values = np.sort(latencies.to_numpy())
        if values.size:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=label)

    return _per_endpoint(run, samples, step, what="Latency CDF per endpoint", ylabel="fraction of requests",
                         log_x=log_scale)


def cdf_points(run) -> tuple[np.ndarray, np.ndarray, str]:
    """The run's latency distribution, all endpoints together: ``(latency_ms, fraction, how)``,
    every sample when there are samples (``how="samples"``), else the tool's percentiles of the
    ALL row (p50, p90, p95, p99 and the max; ``how="percentiles"``)."""
    samples = _samples(run)
    if not samples.empty:
        values = np.sort(samples["latency_ms"].dropna().to_numpy(dtype=float))
        return values, np.arange(1, values.size + 1) / max(values.size, 1), "samples"
    summary = run.summary if not isinstance(run, pd.DataFrame) else pd.DataFrame()
    row = summary[summary["endpoint"] == ALL] if len(summary) else summary
    if row.empty:
        return np.array([]), np.array([]), "none"
    points = [(float(row[c].iloc[0]), p) for c, p in {**PERCENTILES, "max_ms": 1.0}.items()
              if c in row.columns and pd.notna(row[c].iloc[0])]
    points.sort()
    return np.array([v for v, _ in points]), np.array([p for _, p in points]), "percentiles"


def latency_cdf_before_after(before, after, *, labels: tuple[str, str] = ("before", "after"),
                             log_scale: bool = True) -> Figure:
    """The latency CDFs of two runs on one axis (all endpoints together), before in red, after in blue.

    From per-request samples when a run has them, else from the tool's percentiles (drawn as
    points joined by dashed lines, and said so in the legend).
    """
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for run, label, colour in ((before, labels[0], "#c44e52"), (after, labels[1], "#4c72b0")):
        values, fractions, how = cdf_points(run)
        if not values.size:
            continue
        drawn += 1
        if how == "samples":
            ax.step(values, fractions, where="post", color=colour, label=f"{label} ({values.size:,} requests)")
        else:
            # the tool's percentiles are points of the curve, not its steps: joined by dashed lines
            ax.plot(values, fractions, color=colour, marker="o", markersize=4, linestyle="--",
                    label=f"{label} (the tool's p50, p90, p95, p99, max)")
    if not drawn:
        return message_figure("no latency distribution in these results")
    if log_scale:
        ax.set_xscale("log")
        plain_log_ticks(ax)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency (ms)" + (", log scale" if log_scale else ""))
    ax.set_ylabel("fraction of requests at most")
    ax.set_title("Latency distribution, all endpoints: before and after", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def comparison_charts(assessment) -> list[Figure]:
    """A load-test assessment's comparison drawn (``perfkit.loadtests.assess`` of two runs or more):
    p95 per endpoint, the baseline (first run) against the latest (last), and the two latency
    distributions on one axis. No figure when the assessment compares nothing."""
    from perfkit.charts.demo import p95_before_after

    if "comparison" not in assessment.tables:
        return []
    compared = assessment.facts.get("compared", {})
    labels = (str(compared.get("baseline", "first")), str(compared.get("run", "latest")))
    table = assessment.tables["comparison"].rename(columns={"p95_a": "p95_before_ms", "p95_b": "p95_after_ms"})
    table = table.dropna(subset=["p95_before_ms", "p95_after_ms"])
    runs = assessment.data["runs"]
    figures = []
    if len(table):
        figures.append(p95_before_after(table, title="p95 per endpoint, the baseline against the latest run",
                                        xlabel="p95 latency (ms)", labels=labels))
    figures.append(latency_cdf_before_after(runs[0], runs[-1], labels=labels))
    return figures


def latency_histogram(run, *, bins: int = 50) -> Figure:
    """Latency histograms per endpoint (log-spaced bins), from raw samples."""
    samples = _samples(run)
    values = samples["latency_ms"].dropna() if not samples.empty else pd.Series(dtype=float)
    values = values[values > 0]
    if values.empty:
        return message_figure("no per-request samples: this tool writes aggregates only")
    edges = np.logspace(np.log10(values.min()), np.log10(values.max() * 1.001), bins)

    def histogram(ax, latencies: pd.Series, label: str) -> None:
        ax.hist(latencies, bins=edges, histtype="step", label=label)

    return _per_endpoint(run, samples, histogram, what="Latency histogram per endpoint", ylabel="requests")


def _per_endpoint(run, samples: pd.DataFrame, draw: Callable[[Axes, pd.Series, str], None], *, what: str,
                  ylabel: str, log_x: bool = True) -> Figure:
    """A latency distribution per endpoint: ``draw(ax, latencies, endpoint)`` for each endpoint's
    samples (NaN dropped), on a latency x axis (log scale unless ``log_x`` is false), with a legend."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot()
    for endpoint, group in samples.groupby("endpoint", observed=True):
        draw(ax, group["latency_ms"].dropna(), str(endpoint))
    if log_x:
        ax.set_xscale("log")
        plain_log_ticks(ax)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(_title(run, what), fontsize=10)
    _legend(ax)
    return fig
