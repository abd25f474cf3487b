"""Load-test charts: latency percentiles, throughput and errors over time, CDF and histogram.

Each takes a LoadTestRun (or its samples frame) and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from perfkit.charts.figures import message_figure
from perfkit.loadtests.analysis import history_of, per_second


def _history(run) -> pd.DataFrame:
    if isinstance(run, pd.DataFrame):
        return per_second(run)
    return history_of(run)


def _samples(run) -> pd.DataFrame:
    return run if isinstance(run, pd.DataFrame) else run.samples


def _title(run, what: str) -> str:
    return what if isinstance(run, pd.DataFrame) else f"{what} — {run.tool}, {run.source.rsplit('/', 1)[-1]}"


def latency_over_time(run) -> Figure:
    """p50 / p95 / p99 latency per second (from samples, or the tool's history)."""
    history = _history(run)
    columns = [c for c in ("p50_ms", "p95_ms", "p99_ms", "mean_ms") if c in history.columns
               and history[c].notna().any()]
    if history.empty or "ts" not in history.columns or not columns:
        return message_figure("no latency over time in this result")
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    for column in columns:
        ax.plot(history["ts"], history[column], label=column.replace("_ms", ""))
    ax.set_ylabel("latency (ms)")
    ax.set_title(_title(run, "Latency over time"))
    ax.legend()
    fig.autofmt_xdate()
    return fig


def throughput_over_time(run) -> Figure:
    """Requests per second (line) and failures per time bin (bars) on a second axis."""
    history = _history(run)
    if history.empty or "ts" not in history.columns or "rps" not in history.columns:
        return message_figure("no throughput over time in this result")
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    ax.plot(history["ts"], history["rps"], color="tab:blue", label="req/s")
    ax.set_ylabel("requests / s")
    if "failures" in history.columns and history["failures"].notna().any():
        errors = ax.twinx()
        errors.bar(history["ts"], history["failures"].fillna(0), width=1 / 86400, color="tab:red",
                   alpha=0.5, label="failures")
        errors.set_ylabel("failures per bin")
    ax.set_title(_title(run, "Throughput and errors over time"))
    fig.autofmt_xdate()
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
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    for endpoint, group in samples.groupby("endpoint", observed=True):
        draw(ax, group["latency_ms"].dropna(), str(endpoint))
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(_title(run, what))
    ax.legend(fontsize="small")
    return fig
