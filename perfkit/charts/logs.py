"""Charts of logged statement durations: one histogram per statement shape (fingerprint).

``duration_histogram(logs)`` returns a matplotlib Figure; it never calls ``plt.show()``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from perfkit.charts.figures import message_figure, plain_log_ticks
from perfkit.display import plural
from perfkit.logs.analysis import executions


def bin_edges(durations: pd.Series, bins: int) -> tuple[np.ndarray, bool]:
    """``bins`` bin edges over this shape's own durations (not the whole log's: a panel spends no
    width on a range its statement never took), with a little margin; log-spaced (and True) when
    the durations span ten times or more, else even; 20 % either side when all are equal."""
    low, high = float(durations.min()), float(durations.max())
    if high <= low * 1.05:  # one duration (or nearly): 20 % either side of it
        return np.linspace(low * 0.8, high * 1.2, bins + 1), False
    if high / low >= 10:
        return np.geomspace(low / 1.05, high * 1.05, bins + 1), True
    margin = (high - low) * 0.03
    return np.linspace(max(low - margin, 0.0), high + margin, bins + 1), False


def duration_histogram(logs: pd.DataFrame, *, top: int = 6, bins: int = 30, width: float = 9.0,
                       shapes: pd.DataFrame | None = None) -> Figure:
    """Histograms of execution durations for the ``top`` shapes by total logged time.

    Parameters
    ----------
    logs:
        ``perfkit.logs.read(...)``.
    top:
        How many statement shapes (by total duration), one panel each.
    bins:
        Bins per panel, spaced logarithmically (durations span orders of magnitude).
    width:
        Figure width in inches; each panel is 1.8 inches high.
    shapes:
        The shapes to draw, in order (a ``fingerprint`` column, e.g. the logs Assessment's
        ``tables["most_time"]``, which leaves out one-off DDL and admin calls); default: the
        ``top`` shapes by total logged time.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per shape, titled with its normalized statement, x in milliseconds over that
        shape's own range (log scale when it spans ten times or more), with the median and p95
        marked. A single panel saying so when there is no timed execution.
    """
    runs = executions(logs)
    runs = runs[runs["duration_ms"].notna() & (runs["duration_ms"] > 0)]
    if runs.empty:
        return message_figure("no timed statement executions in these logs", width=width, height=2.0)
    key = runs["fingerprint"].fillna("text:" + runs["normalized"])
    totals = runs.groupby(key)["duration_ms"].sum().sort_values(ascending=False)
    if shapes is not None and "fingerprint" in shapes.columns:
        wanted = [f for f in shapes["fingerprint"] if f in totals.index]
        totals = totals.reindex(wanted)
    totals = totals.head(top)
    if totals.empty:
        return message_figure("no timed statement executions of these shapes", width=width, height=2.0)
    figure = Figure(figsize=(width, 1.8 * len(totals) + 0.6), layout="constrained")
    axes = figure.subplots(len(totals), 1, squeeze=False)[:, 0]
    for ax, shape in zip(axes, totals.index, strict=True):
        durations = runs.loc[key == shape, "duration_ms"]
        edges, logarithmic = bin_edges(durations, bins)
        ax.hist(durations, bins=edges, color="#4c72b0")
        if logarithmic:
            ax.set_xscale("log")
            plain_log_ticks(ax)  # 0.02, 0.05, 0.1: never 2x10^-2
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        median, p95 = durations.median(), durations.quantile(0.95)
        ax.axvline(median, color="#222222", linestyle="--", linewidth=1, label=f"median {median:.2f} ms")
        ax.axvline(p95, color="#c44e52", linestyle=":", linewidth=1.5, label=f"p95 {p95:.2f} ms")
        # "$1 ... $2" would be read as mathtext: escape the dollars of the statement
        text = " ".join(str(runs.loc[key == shape, "normalized"].iloc[0]).split()).replace("$", r"\$")
        ax.set_title(
            (text if len(text) <= 90 else text[:89] + "…") + f"  ({plural(len(durations), 'run')}, {durations.sum():,.1f} ms)",
            fontsize=8, loc="left",
        )
        ax.set_ylabel("runs")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # over no bar
    axes[-1].set_xlabel("duration (ms; log scale in a panel spanning ten times or more)")
    figure.suptitle("Logged statement durations, by statement shape", fontsize=10)
    return figure
