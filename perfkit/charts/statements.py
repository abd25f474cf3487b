"""Statement charts: the costliest statements and their week-over-week change.

Each takes a snapshot, top or diff DataFrame (perfkit.statements) and returns a matplotlib Figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from perfkit.statements import strip_leading_comments


def statement_label(query, width: int = 60) -> str:
    """A one-line chart label for a statement: comments stripped, whitespace folded, cut to ``width``."""
    text = " ".join(strip_leading_comments(query).split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")  # $1 ... $2 would otherwise be read as mathtext


def _empty(message: str) -> Figure:
    fig = Figure(figsize=(8, 2.5))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


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
        return _empty("no statements to show")
    labels = [statement_label(q) for q in shown["query"]]
    fig = Figure(figsize=(9, 0.45 * len(shown) + 1.2))
    ax = fig.add_subplot()
    positions = np.arange(len(shown))[::-1]
    ax.barh(positions, shown[value].astype(float), color="#4C72B0")
    ax.set_yticks(positions, labels, fontsize=8)
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
        return _empty("no statement ran in the interval")
    labels = [statement_label(q) for q in shown["query"]]
    fig = Figure(figsize=(9, 0.55 * len(shown) + 1.4))
    ax = fig.add_subplot()
    positions = np.arange(len(shown))[::-1]
    before = shown["prev_mean_exec_ms"].astype(float).to_numpy()
    after = shown["mean_exec_ms"].astype(float).to_numpy()
    ax.barh(positions + 0.2, np.nan_to_num(before), height=0.4, color="#B0B0B0", label="before (mean up to the baseline)")
    ax.barh(positions - 0.2, after, height=0.4, color="#DD8452", label="in the interval")
    ax.set_yticks(positions, labels, fontsize=8)
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
