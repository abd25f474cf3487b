"""A picture of one plan: the tree with a self-time bar in each node, the hottest node marked and
each finding on the node it is about; as SVG (notebooks, the report) and as block characters (terminal).

``tree_records(plan, findings)`` is what both draw (``tree_rows``: the same as a DataFrame); ``plan_svg`` and ``plan_text`` render it.
"""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

from perfkit.output import is_missing as _missing

SEVERITY_COLOURS = {"critical": "#b2182b", "warning": "#d6604d", "info": "#4c72b0"}
SEVERITY_MARKS = {"critical": "!!", "warning": "!", "info": "i"}
EIGHTHS = " ▏▎▍▌▋▊▉█"
NO_MATH = "tex2jax_ignore mathjax_ignore"


def _number(value, digits: int = 0) -> str:
    if _missing(value):
        return ""
    return f"{float(value):,.{digits}f}"


def _ms(value) -> str:
    if _missing(value):
        return ""
    value = float(value)
    return f"{value:,.1f} ms" if value >= 10 else f"{value:,.3f} ms" if value < 1 else f"{value:,.2f} ms"


def node_rows(plan) -> list[dict]:
    """The plan's nodes as row dicts (``Plan.rows``, without building its DataFrame)."""
    rows = getattr(plan, "rows", None)
    if rows is None:
        rows = plan.nodes.to_dict(orient="records")
    return list(rows)


def _finding_dicts(plan, findings) -> list[dict]:
    if findings is None:
        findings = getattr(plan, "finding_rows", None)
        if findings is None:
            findings = plan.findings
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(findings, pd.DataFrame):
        if not len(findings) or "node_id" not in findings.columns:
            return []
        return findings.to_dict(orient="records")
    return list(findings or [])


def tree_records(plan, findings=None) -> list[dict]:
    """What :func:`tree_rows` holds, as a list of row dicts (no pandas): see there."""
    nodes = node_rows(plan)
    timed = any(not _missing(n.get("self_ms")) for n in nodes)
    if timed:
        values = [0.0 if _missing(n.get("self_ms")) else max(float(n["self_ms"]), 0.0) for n in nodes]
        unit = "ms"
    else:  # the node's own estimated cost: its total cost minus its children's
        child_cost: dict = {}
        for n in nodes:
            parent, cost = n.get("parent_id"), n.get("total_cost")
            if not _missing(parent) and not _missing(cost):
                child_cost[parent] = child_cost.get(parent, 0.0) + float(cost)
        values = []
        for n in nodes:
            cost = n.get("total_cost")
            own = math.nan if _missing(cost) else float(cost) - child_cost.get(n["node_id"], 0.0)
            values.append(0.0 if math.isnan(own) else max(own, 0.0))
        unit = "cost"
    total = float(sum(values))
    by_node: dict[int, list] = {}
    for row in _finding_dicts(plan, findings):
        node_id = row.get("node_id")
        if node_id is not None and not _missing(node_id):
            by_node.setdefault(int(node_id), []).append((str(row.get("severity")), str(row.get("kind")),
                                                         str(row.get("evidence"))))
    hottest = values.index(max(values)) if values and total > 0 else -1
    out = []
    for i, (n, value) in enumerate(zip(nodes, values, strict=True)):
        subplan, kind = n.get("subplan_name"), n["label"] if "label" in n else n["node_type"]
        loops = n.get("loops")
        out.append({
            "node_id": int(n["node_id"]),
            "parent_id": n.get("parent_id"),
            "depth": int(n["depth"]),
            "label": f"[{subplan}] {kind}" if isinstance(subplan, str) and subplan else str(kind),
            "value": value,
            "unit": unit,
            "share": value / total if total > 0 else 0.0,
            "hottest": i == hottest,
            "rows": n.get("actual_rows"),
            "est_rows": n.get("plan_rows"),
            "loops": loops,
            "never_executed": (not _missing(loops)) and loops == 0,
            "findings": by_node.get(int(n["node_id"]), []),
        })
    return out


def tree_rows(plan, findings=None):
    """One row per node, depth-first: ``node_id``, ``parent_id``, ``depth``, ``label``, ``value`` (self
    time in ms, or the node's own estimated cost without ANALYZE), ``unit``, ``share`` (of the
    plan's total, 0..1), ``hottest`` (the node with the most), ``rows``, ``est_rows``, ``loops``,
    ``never_executed`` and ``findings`` (a list of (severity, kind, evidence) of that node).

    ``findings`` default to ``plan.findings``; those without a ``node_id`` are on no node.
    A DataFrame (:func:`tree_records` gives the same rows without pandas).
    """
    import pandas as pd

    columns = ["node_id", "parent_id", "depth", "label", "value", "unit", "share", "hottest", "rows", "est_rows",
               "loops", "never_executed", "findings"]
    return pd.DataFrame(tree_records(plan, findings), columns=columns)


def _rows(plan, findings) -> list[SimpleNamespace]:
    """The tree records read as attributes (``row.value``), as the renderers below read them."""
    return [SimpleNamespace(**record) for record in tree_records(plan, findings)]


def bar(share: float, width: int) -> str:
    """``share`` (0..1) of ``width`` cells in block characters, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def _value_text(row) -> str:
    return _ms(row.value) if row.unit == "ms" else f"{row.value:,.0f} cost"


def plan_text(plan, findings=None, *, width: int = 100, bar_width: int = 10,
              top: int = 0) -> str:
    """The plan tree for a terminal of ``width`` columns: per node its self time, a bar of its share
    of the total, rows (estimated), loops and the node; the hottest node marked ``>>`` at the left
    (and named under the tree), and under each node the findings about it (``!! critical kind:
    evidence``); no line longer than ``width``.

    ``top``: only the ``top`` nodes with the most self time (0: all).
    """
    rows = _rows(plan, findings)
    if not rows:
        return "(no plan nodes)"
    keep = ({r.node_id for r in sorted(rows, key=lambda r: -r.value)[:top]} if top and top > 0 else None)
    analyzed = any(not _missing(r.rows) for r in rows)
    timed = rows[0].unit == "ms"
    what = "self ms" if timed else "own cost"
    head = f"   {what:>9} {'share':<{bar_width + 5}}" + (f"{'rows':>9} " if analyzed else "") + f"{'est':>9} "
    head += f"{'loops':>5} " if analyzed else ""
    lines = [(head + "node")[:width]]
    for row in rows:
        if keep is not None and row.node_id not in keep:
            continue
        value = f"{row.value:,.2f}" if timed else f"{row.value:,.0f}"
        prefix = (">> " if row.hottest else "   ") + f"{value:>9} {bar(row.share, bar_width)}{100 * row.share:>4.0f}% "
        if analyzed:
            prefix += f"{_number(row.rows):>9} "
        prefix += f"{_number(row.est_rows):>9} "
        if analyzed:
            prefix += f"{_number(row.loops):>5} "
        indent = "  " * row.depth + ("-> " if row.depth else "")
        name = indent + row.label + ("  (never executed)" if row.never_executed else "")
        lines.append(_fit(prefix + name, width))
        pad = " " * (14 + len(indent))  # under the bar column (blank on these lines): room for the evidence
        for severity, kind, evidence in row.findings:
            lines.append(_fit(f"{pad}{SEVERITY_MARKS.get(severity, '-'):<2} {severity} {kind}: {evidence}", width))
    hot = [r for r in rows if r.hottest]
    if hot:
        top_row = hot[0]
        lines.append(_fit(f">> hottest: #{top_row.node_id} {top_row.label.strip()}, {_value_text(top_row)}"
                          f" ({100 * top_row.share:.0f} % of the plan's {'self time' if timed else 'cost'})", width))
    return "\n".join(lines)


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


# -- SVG -------------------------------------------------------------------------------------------
ROW = 40        # px per node box, its gap included
FINDING = 18    # px per finding line under a node
INDENT = 22     # px per depth level


def _esc(text) -> str:
    import html

    return html.escape(str(text), quote=True)


def plan_svg(plan, findings=None, *, width: int = 960, title: str = "") -> str:
    """The plan tree as an inline SVG in an HTML ``div``: one box per node (indented by depth, joined
    to its parent), filled from the left by a bar of its share of the plan's self time, the node's
    figures at the right, the hottest node outlined in red and labelled "hottest", and under each
    node the findings about it, coloured by severity. Every text escaped; full evidence in tooltips.

    The boxes carry ``data-node``, ``data-share`` and (the hottest) ``data-hottest="true"``.
    """
    rows = _rows(plan, findings)
    y, placed = 8, {}
    parts = []
    for row in rows:
        x = 10 + INDENT * row.depth
        box_w = width - x - 10
        placed[row.node_id] = (x, y)
        parent = placed.get(int(row.parent_id)) if not _missing(row.parent_id) else None
        if parent is not None:
            px, py = parent
            parts.append(f'<path d="M{px + 8},{py + 30} V{y + 15} H{x}" fill="none" stroke="#999" stroke-width="1"/>')
        hot = row.hottest
        share = float(row.share)
        colour = "#c44e52" if hot else "#4c72b0"
        tip = f"{row.label}: {_value_text(row)} ({100 * share:.1f} % of the plan)"
        parts.append(
            f'<g class="plan-node" data-node="{row.node_id}" data-share="{share:.4f}"'
            + (' data-hottest="true"' if hot else "") + f"><title>{_esc(tip)}</title>"
            f'<rect x="{x}" y="{y}" width="{box_w}" height="30" rx="4" fill="#f7f7f7" '
            f'stroke="{"#c44e52" if hot else "#bbbbbb"}" stroke-width="{2.5 if hot else 1}"/>'
            f'<rect class="self-bar" x="{x + 1}" y="{y + 1}" width="{max(share * (box_w - 2), 0):.1f}" height="28" '
            f'rx="3" fill="{colour}" fill-opacity="{0.45 if hot else 0.25}"/>'
        )
        figures = [_value_text(row) + (" self" if row.unit == "ms" else ""), f"{100 * share:.0f} %"]
        if not _missing(row.rows):
            figures.append(f"{_number(row.rows)} rows (est. {_number(row.est_rows)})")
        elif not _missing(row.est_rows):
            figures.append(f"est. {_number(row.est_rows)} rows")
        if not _missing(row.loops) and row.loops not in (0, 1):
            figures.append(f"{_number(row.loops)} loops")
        if row.never_executed:
            figures.append("never executed")
        label = row.label if len(row.label) <= 70 else row.label[:69] + "…"
        parts.append(
            f'<text x="{x + 8}" y="{y + 20}" font-size="13" font-weight="{"bold" if hot else "normal"}">'
            + ("<tspan fill=\"#c44e52\">hottest: </tspan>" if hot else "") + f"{_esc(label)}</text>"
            f'<text x="{x + box_w - 8}" y="{y + 20}" font-size="12" text-anchor="end" fill="#333">'
            f"{_esc(' · '.join(figures))}</text></g>"
        )
        y += ROW - 4
        for severity, kind, evidence in row.findings:
            short = evidence if len(evidence) <= 110 else evidence[:109] + "…"
            parts.append(
                f'<g class="plan-finding" data-node="{row.node_id}" data-severity="{_esc(severity)}">'
                f"<title>{_esc(evidence)}</title>"
                f'<circle cx="{x + 14}" cy="{y + 7}" r="5" fill="{SEVERITY_COLOURS.get(severity, "#777")}"/>'
                f'<text x="{x + 24}" y="{y + 11}" font-size="12"><tspan font-weight="bold" '
                f'fill="{SEVERITY_COLOURS.get(severity, "#777")}">{_esc(severity)} {_esc(kind)}</tspan> '
                f"{_esc(short)}</text></g>"
            )
            y += FINDING
        y += 4
    heading = f"<p><strong>{_esc(title)}</strong></p>" if title else ""
    unit = "self time" if rows and rows[0].unit == "ms" else "estimated cost of the node itself (no ANALYZE)"
    legend = (f'<p style="font-size:12px;color:#555">Each bar: the node\'s share of the plan\'s {unit}; '
              "the hottest node is outlined in red; findings sit under the node they are about.</p>")
    return (f'<div class="perfkit-plan {NO_MATH}" style="overflow-x:auto">{heading}'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 4}" '
            f'viewBox="0 0 {width} {y + 4}" font-family="system-ui, sans-serif" role="img" '
            f'aria-label="plan tree">{"".join(parts)}</svg>{legend}</div>')


__all__ = ["bar", "plan_svg", "plan_text", "tree_records", "tree_rows"]
