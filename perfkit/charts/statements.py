"""Statement charts: the costliest statements and their week-over-week change.

Each takes a snapshot, top or diff DataFrame (perfkit.statements) and returns a matplotlib Figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from perfkit.charts.figures import message_figure
from perfkit.statements import strip_leading_comments


def statement_label(query, width: int = 60) -> str:
    """A one-line chart label for a statement: comments stripped, whitespace folded, cut to ``width``."""
    text = " ".join(strip_leading_comments(query).split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")  # $1 ... $2 would otherwise be read as mathtext


def _statement_rows(shown: pd.DataFrame, *, row_height: float, margin: float) -> tuple[Figure, Axes, np.ndarray]:
    """A figure with one horizontal row per statement of ``shown`` (the first on top), each
    labelled with its text: the frame both bar charts draw in. Returns it, its axes and the rows' y."""
    fig = Figure(figsize=(9, row_height * len(shown) + margin))
    ax = fig.add_subplot()
    positions = np.arange(len(shown))[::-1]
    ax.set_yticks(positions, [statement_label(q) for q in shown["query"]], fontsize=8)
    return fig, ax, positions


def top_statements_bar(frame: pd.DataFrame, *, n: int = 10, value: str = "total_exec_ms", title: str | None = None) -> Figure:
    """Horizontal bars of ``value`` (default total execution time) for the first ``n`` rows.

    Parameters
    ----------
    frame:
        Statements ranked as wanted (``perfkit.statements.top``), with ``query`` and ``value``.
    n:
        How many statements to draw.
    value:
        The column to draw; ``*_ms`` columns are labelled in milliseconds.
    title:
        The chart title; default says what is drawn.

    Returns
    -------
    matplotlib.figure.Figure
    """
    shown = frame.dropna(subset=[value]).head(n)
    if shown.empty:
        return message_figure("no statements to show", height=2.5)
    fig, ax, positions = _statement_rows(shown, row_height=0.45, margin=1.2)
    ax.barh(positions, shown[value].astype(float), color="#4C72B0")
    unit = "ms" if value.endswith("_ms") else ""
    ax.set_xlabel(value.replace("_ms", "").replace("_", " ") + (f" ({unit})" if unit else ""))
    ax.set_title(title or f"Top {len(shown)} statements by {value.replace('_', ' ')}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def week_over_week(changes: pd.DataFrame, *, n: int = 10, title: str | None = None) -> Figure:
    """Mean time per call before (``prev_mean_exec_ms``) and in the interval, for the ``n`` busiest.

    Parameters
    ----------
    changes:
        A diff of two snapshots (``perfkit.statements.diff``), ranked as wanted.
    n:
        How many statements to draw (those that ran in the interval, in the frame's order).

    Returns
    -------
    matplotlib.figure.Figure
        Paired horizontal bars, log scale when the means span more than two decades.
    """
    ran = changes[changes["status"].isin(["changed", "new", "reset"])] if "status" in changes else changes
    shown = ran.dropna(subset=["mean_exec_ms"]).head(n)
    if shown.empty:
        return message_figure("no statement ran in the interval", height=2.5)
    fig, ax, positions = _statement_rows(shown, row_height=0.55, margin=1.4)
    before = shown["prev_mean_exec_ms"].astype(float).to_numpy()
    after = shown["mean_exec_ms"].astype(float).to_numpy()
    ax.barh(positions + 0.2, np.nan_to_num(before), height=0.4, color="#B0B0B0", label="before (mean up to the baseline)")
    ax.barh(positions - 0.2, after, height=0.4, color="#DD8452", label="in the interval")
    values = np.concatenate([before[np.isfinite(before) & (before > 0)], after[np.isfinite(after) & (after > 0)]])
    if len(values) and values.max() / max(values.min(), 1e-9) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("mean time per call (ms)")
    ax.set_title(title or "Mean time per call: before vs in the interval")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["statement_label", "top_statements_bar", "week_over_week"]
