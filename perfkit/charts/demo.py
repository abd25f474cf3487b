"""The demo's chart: p95 per endpoint in the load test before the report's fixes and after them.

``p95_before_after(table)`` takes :func:`perfkit.demo.loop.p95_table`'s frame and returns a Figure.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

TITLE = "p95 latency per endpoint, before and after the fixes"


def p95_before_after(table: pd.DataFrame, *, title: str = TITLE, xlabel: str = "p95 latency (ms), Locust",
                     labels: tuple[str, str] = ("before", "after the fixes")) -> Figure:
    """A horizontal bar chart of p95 before and after per endpoint.

    Parameters
    ----------
    table:
        One row per endpoint with ``endpoint``, ``p95_before_ms`` and ``p95_after_ms``
        (the ``ALL`` row, Locust's aggregate, is left out).
    title, xlabel:
        The chart title and the x axis label.
    labels:
        The legend of the two bars.

    Returns
    -------
    matplotlib.figure.Figure
        Two bars per endpoint (before in red, after in blue), each labelled with its p95 in ms;
        endpoints sorted by p95 before, the slowest at the top.
    """
    rows = table[table["endpoint"].astype(str) != "ALL"]
    rows = (rows if len(rows) else table).sort_values("p95_before_ms")  # one endpoint: its ALL row
    figure = Figure(figsize=(8, 0.6 * len(rows) + 1.6), dpi=110)
    ax = figure.add_subplot()
    positions = range(len(rows))
    ax.barh([p + 0.2 for p in positions], rows["p95_before_ms"], height=0.4, label=labels[0], color="#c44e52")
    ax.barh([p - 0.2 for p in positions], rows["p95_after_ms"], height=0.4, label=labels[1], color="#4c72b0")
    for p, (b, a) in enumerate(zip(rows["p95_before_ms"], rows["p95_after_ms"], strict=True)):
        ax.text(b, p + 0.2, f" {b:,.0f} ms", va="center", fontsize=8)
        ax.text(a, p - 0.2, f" {a:,.0f} ms", va="center", fontsize=8)
    ax.set_yticks(list(positions), rows["endpoint"].astype(str))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, max(rows["p95_before_ms"].max(), rows["p95_after_ms"].max()) * 1.25)
    figure.tight_layout()
    return figure
