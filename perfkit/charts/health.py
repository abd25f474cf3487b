"""Health charts: the largest tables and indexes with their bloat, and the cache hit ratios.

Each draws a table of the health Assessment (``tables["space"]``, ``tables["cache"]``, made by
perfkit.health.space) and returns a matplotlib Figure; they compute no finding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, PercentFormatter

from perfkit.charts.figures import message_figure

TABLE_COLOUR, INDEX_COLOUR, BLOAT_COLOUR = "#4c72b0", "#8172b3", "#c44e52"
UNITS = (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024), ("B", 1))


def _unit(largest: float) -> tuple[str, float]:
    return next(((name, size) for name, size in UNITS if largest >= size), ("B", 1))


def _size(value: float) -> str:
    name, size = _unit(value)
    return f"{value / size:,.1f} {name}" if size > 1 else f"{value:,.0f} B"


def largest_relations(space: pd.DataFrame, *, n: int = 12) -> Figure:
    """The ``n`` largest tables and indexes, one bar each (tables blue, indexes purple), the share
    estimated to be bloat drawn in red at the bar's end, each bar labelled with its size (and the
    bloat, from 5 % of it)."""
    if space is None or space.empty:
        return message_figure("no table or index sizes in this assessment", height=2.0)
    shown = space.sort_values("size_bytes", ascending=False).head(n).iloc[::-1]
    unit, scale = _unit(float(shown["size_bytes"].max()))
    sizes = shown["size_bytes"].astype(float).to_numpy() / scale
    bloat = np.nan_to_num(shown["bloat_bytes"].astype(float).to_numpy()) / scale
    bloat = np.minimum(bloat, sizes)
    colours = [TABLE_COLOUR if k == "table" else INDEX_COLOUR for k in shown["kind"]]
    fig = Figure(figsize=(9, 0.38 * len(shown) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(shown))
    ax.barh(positions, sizes - bloat, color=colours, label="_used")
    ax.barh(positions, bloat, left=sizes - bloat, color=BLOAT_COLOUR, label="_bloat")
    ax.set_yticks(positions, [f"{name} ({kind})" for name, kind in zip(shown["name"], shown["kind"], strict=True)],
                  fontsize=8)
    for y, (total, wasted, raw, raw_bloat) in enumerate(zip(sizes, bloat, shown["size_bytes"], shown["bloat_bytes"],
                                                            strict=True)):
        share = wasted / total if total else 0.0
        # a few pages beyond the estimate are noise: said from 5 % of the table
        text = _size(float(raw)) + (f", ~{_size(float(raw_bloat))} ({100 * share:.0f} %) bloat" if share >= 0.05 else "")
        ax.annotate(text, (total, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, float(sizes.max()) * 1.35)
    ax.set_xlabel(f"size on disk ({unit})")
    ax.set_title("Largest tables and indexes (red: estimated bloat)", fontsize=10)
    ax.legend(handles=[Patch(color=TABLE_COLOUR, label="table"), Patch(color=INDEX_COLOUR, label="index"),
                       Patch(color=BLOAT_COLOUR, label="estimated bloat")], loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def cache_hit(cache: pd.DataFrame, *, target: float = 0.99) -> Figure:
    """The cache hit ratio of the database (first, dark) and of its busiest tables, on an axis that
    starts just below the lowest ratio, with the ``target`` (99 %) as a dashed line; bars below the
    target in red. Each bar labelled with its ratio and block accesses."""
    if cache is None or cache.empty or cache["hit_ratio"].notna().sum() == 0:
        return message_figure("no block accesses counted yet: no cache hit ratio", height=2.0)
    shown = cache[cache["hit_ratio"].notna()].iloc[::-1]
    ratios = shown["hit_ratio"].astype(float).to_numpy()
    low = max(0.0, min(float(ratios.min()), target) - 0.02)
    fig = Figure(figsize=(9, 0.38 * len(shown) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(shown))
    database = (shown["name"].str.startswith("(")).to_numpy()
    colours = ["#333333" if whole else (BLOAT_COLOUR if r < target else TABLE_COLOUR)
               for whole, r in zip(database, ratios, strict=True)]
    ax.barh(positions, ratios - low, left=low, color=colours)
    ax.set_yticks(positions, shown["name"].astype(str), fontsize=8)
    for y, (ratio, hit, read) in enumerate(zip(ratios, shown["hit"], shown["read"], strict=True)):
        ax.annotate(f"{100 * ratio:.2f} % of {hit + read:,.0f} blocks", (ratio, y), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.axvline(target, color="#555555", linestyle="--", linewidth=1)
    ax.set_xlim(low, 1.0 + (1.0 - low) * 0.35)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1 if low > 0.9 else 0))
    ax.xaxis.set_major_locator(_ticks_to_one(low))
    ax.set_xlabel(f"cache hit ratio (shared buffers; target {100 * target:g} %, dashed)")
    ax.set_title("Cache hit ratio: the database and its busiest tables", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _ticks_to_one(low: float) -> FixedLocator:
    step = 0.005 if low > 0.95 else 0.01 if low > 0.9 else 0.05 if low > 0.6 else 0.1
    start = np.ceil(low / step) * step
    return FixedLocator(np.arange(start, 1.0 + step / 2, step))


__all__ = ["cache_hit", "largest_relations"]
