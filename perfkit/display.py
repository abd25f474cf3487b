"""How notebook sections show tables and text: escaped, aligned, never typeset by MathJax.

``html_table(frame)`` is a table that renders the same in JupyterLab (also in a notebook that is
not trusted, where ``<style>`` blocks are stripped: the alignment is inline), the classic
notebook, nbconvert and perfkit's HTML report; ``markdown(text)`` escapes what a section writes
around its code spans so that a route such as ``/api/orders/<id>`` or a ``$1`` parameter is shown
as written.
"""

from __future__ import annotations

import html
import io
import math
import re
import sys

import numpy as np
import pandas as pd

# Columns holding SQL or statement text: shown as code (monospace, never typeset as math).
CODE_COLUMNS = frozenset({"query", "statement", "normalized", "sql", "example", "definition", "node"})
# Classes MathJax 2 and 3 skip, on every table and code block perfkit writes.
NO_MATH = "tex2jax_ignore mathjax_ignore"
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_PARAMETER = re.compile(r"\$\d")  # a statement's $1 placeholder: the cell holds SQL


def figure_png(fig) -> bytes:
    """``fig`` rendered as PNG bytes; the figure is closed in pyplot if pyplot holds it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return buffer.getvalue()


def cell_text(value, column: str = "") -> str:
    """One value as a person reads it: integers as integers, floats with the digits they deserve,
    timestamps to the second, lists joined, missing values empty."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if float(value).is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) < 1:
            return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
        return f"{value:,.{2 if abs(value) < 1000 else 1}f}"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(value) if column in ("queryid", "pid", "node_id", "parent_id") else f"{value:,}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple | set):
        return ", ".join(cell_text(v) for v in value)
    if hasattr(value, "sql") and hasattr(value, "action"):  # a perfkit.sql.Fix
        return value.sql
    return str(value)


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def html_table(frame: pd.DataFrame, *, limit: int | None = None, total: int | None = None) -> str:
    """``frame`` as an HTML table: every cell escaped, text left-aligned and numbers right-aligned
    (inline styles), SQL in ``<code>``, and a "first N of M" line when it is cut.

    Parameters
    ----------
    limit:
        Show at most this many rows.
    total:
        How many rows there are in all (default ``len(frame)``), for the "first N of M" line.
    """
    total = len(frame) if total is None else total
    shown = frame if limit is None else frame.head(limit)
    numeric = {c: _numeric(shown[c]) for c in shown.columns}
    head = "".join(
        f'<th style="text-align:{"right" if numeric[c] else "left"}">{html.escape(str(c))}</th>' for c in shown.columns
    )
    rows = []
    for record in shown.itertuples(index=False):
        cells = []
        for column, value in zip(shown.columns, record, strict=True):
            text = html.escape(cell_text(value, str(column)))
            if text and (str(column) in CODE_COLUMNS or _PARAMETER.search(text)):  # SQL: code, never math
                style = "text-align:left;white-space:pre" if column == "node" else "text-align:left"
                cells.append(f'<td style="{style}"><code>{text}</code></td>')
            else:
                cells.append(f'<td style="text-align:{"right" if numeric[column] else "left"}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = ""
    if len(shown) < total:
        note = f"<p><em>The first {len(shown):,} of {total:,} rows.</em></p>"
    if not rows:
        return f'<div class="{NO_MATH}"><p><em>(none)</em></p></div>'
    return (f'<div class="perfkit-table {NO_MATH}"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{note}</div>')


def markdown(text: str) -> str:
    """``text`` (markdown a section wrote) safe to render: outside its code spans, ``<``, ``>`` and
    ``&`` become entities and ``$`` is escaped (no MathJax, no markup from a route or a log line);
    code spans are left as they are (markdown shows them literally)."""
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_escape_prose(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_prose(text[last:]))
    return "".join(out)


def _escape_prose(text: str) -> str:
    return html.escape(text, quote=False).replace("$", "\\$")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 finding``, ``3 findings``, ``1,204 statements``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def code(text: str) -> str:
    """``text`` as a markdown code span, whatever backticks it holds."""
    text = " ".join(str(text).split())
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


__all__ = ["CODE_COLUMNS", "cell_text", "code", "figure_png", "html_table", "markdown", "plural"]
