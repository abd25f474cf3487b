"""Charts of the streaming log assessment: duration histograms from binned counts, and the
statements per minute; they draw what ``perfkit.logs.assess`` counted, never the entries.

``binned_histogram(bins)`` and ``per_minute(table)`` return matplotlib Figures.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from perfkit.charts.figures import message_figure


def binned_histogram(bins: pd.DataFrame, *, top: int = 3, width: float = 9.0) -> Figure:
    """One panel per statement shape of ``bins`` (the assessment's ``duration_bins`` table)."""
    timed = bins[bins["low_ms"] > 0]
    if timed.empty:
        return message_figure("no timed statement executions in these logs", width=width, height=2.0)
    ranks = sorted(timed["rank"].unique())[:top]
    figure = Figure(figsize=(width, 1.8 * len(ranks) + 0.6), layout="constrained")
    axes = figure.subplots(len(ranks), 1, squeeze=False)[:, 0]
    for ax, rank in zip(axes, ranks, strict=True):
        shape = timed[timed["rank"] == rank]
        ax.bar(shape["low_ms"], shape["runs"], width=shape["high_ms"] - shape["low_ms"], align="edge", color="#4c72b0")
        ax.set_xscale("log")
        text = " ".join(str(shape["normalized"].iloc[0]).split()).replace("$", r"\$")
        ax.set_title((text if len(text) <= 90 else text[:89] + "…") + f"  ({int(shape['runs'].sum()):,} runs)",
                     fontsize=8, loc="left")
        ax.set_ylabel("runs")
    axes[-1].set_xlabel("duration (ms, log scale)")
    figure.suptitle("Logged statement durations, by statement shape", fontsize=10)
    return figure


def per_minute(table: pd.DataFrame, *, width: float = 9.0) -> Figure:
    """Statements and their total time per minute (the assessment's ``per_minute`` table)."""
    if table.empty:
        return message_figure("no timed statements in these logs", width=width, height=2.0)
    figure = Figure(figsize=(width, 3.0), layout="constrained")
    ax = figure.subplots()
    ax.plot(table["minute"], table["calls"], color="#4c72b0", linewidth=1)
    ax.set_ylabel("statements per minute")
    other = ax.twinx()
    other.plot(table["minute"], table["total_ms"] / 1000.0, color="#c44e52", linewidth=1, linestyle=":")
    other.set_ylabel("seconds of statement time")
    figure.suptitle("Statements per minute (solid) and their time (dotted)", fontsize=10)
    return figure
