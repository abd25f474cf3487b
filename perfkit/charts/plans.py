"""Charts of one EXPLAIN plan: where the time goes, node by node.

``plan_self_time(plan)`` returns a horizontal bar Figure of the nodes with the most self time.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure


def plan_self_time(plan, *, top: int = 15, title: str | None = None) -> Figure:
    """A bar chart of the nodes with the most self time (or estimated cost without ANALYZE).

    Parameters
    ----------
    plan:
        A :class:`perfkit.plans.Plan`.
    top:
        How many nodes to show (the rest are summed into one "other nodes" bar).
    title:
        The chart title; by default says what is measured and the plan's total.

    Returns
    -------
    matplotlib.figure.Figure
        One bar per node, labelled ``#id label``, with its share of the total at the bar's end.
    """
    nodes = plan.nodes
    timed = bool(nodes["self_ms"].notna().any())
    if timed:
        values = nodes["self_ms"].fillna(0.0)
        unit, what = "ms", "self time"
        total = plan.root_ms
    else:
        # estimated cost of the node itself: its total cost minus its children's
        child_cost = nodes.groupby("parent_id")["total_cost"].sum()
        values = (nodes["total_cost"] - nodes["node_id"].map(child_cost).fillna(0.0)).clip(lower=0).fillna(0.0)
        unit, what = "cost units", "estimated cost (no ANALYZE)"
        total = float(nodes["total_cost"].iat[0]) if len(nodes) else math.nan
    frame = nodes.assign(value=values.to_numpy()).sort_values("value", ascending=False)
    shown = frame.head(top)
    labels = [f"#{int(r.node_id)} {r.label}" for r in shown.itertuples(index=False)]
    heights = shown["value"].tolist()
    rest = frame["value"].iloc[top:].sum()
    if len(frame) > top:
        labels.append(f"{len(frame) - top} other nodes")
        heights.append(rest)
    # a bare Figure (no pyplot): nothing global to show or close, fine in notebooks and headless
    fig = Figure(figsize=(9, max(2.5, 0.45 * len(labels) + 1.2)))
    ax = fig.subplots()
    positions = range(len(labels))[::-1]
    ax.barh(list(positions), heights, color="#4C72B0")
    ax.set_yticks(list(positions))
    ax.set_yticklabels(labels)
    ax.set_xlabel(f"{what} ({unit})")
    denominator = total if total and not math.isnan(total) else sum(heights)
    for y, value in zip(positions, heights, strict=True):
        share = 100.0 * value / denominator if denominator else 0.0
        number = f"{value:,.1f}" if value >= 10 else f"{value:,.3f}"
        ax.annotate(f"{number} ({share:.0f} %)", (value, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.margins(x=0.2)
    if title is None:
        title = f"Where the plan's {what} goes" + (f" (total {total:,.1f} {unit})" if total and not math.isnan(total) else "")
    ax.set_title(title)
    fig.tight_layout()
    return fig
