"""How notebook sections show tables and text: escaped, aligned, never typeset by MathJax.

``html_table(frame)`` is a table that renders the same in JupyterLab (also in a notebook that is
not trusted, where ``<style>`` blocks are stripped: the alignment is inline), the classic
notebook, nbconvert and perfkit's HTML report; ``markdown(text)`` escapes what a section writes
around its code spans so that a route such as ``/api/orders/<id>`` or a ``$1`` parameter is shown
as written.
"""

from __future__ import annotations

import io
import math
import re
import sys


class _Pattern:
    """A regular expression compiled when first used: importing this module (as ``perfkit plan``
    does for a table's percentages) compiles none."""

    def __init__(self, *args):
        self._args, self._compiled = args, None

    def __getattr__(self, name):
        if self._compiled is None:
            self._compiled = re.compile(*self._args)
        return getattr(self._compiled, name)


# Columns holding SQL or statement text: shown as code (monospace, never typeset as math).
CODE_COLUMNS = frozenset({"query", "statement", "normalized", "sql", "example", "definition", "node"})
# Classes MathJax 2 and 3 skip, on every table and code block perfkit writes.
NO_MATH = "tex2jax_ignore mathjax_ignore"
_CODE_SPAN = _Pattern(r"(`+)(.+?)\1", re.DOTALL)
_TICKS = _Pattern(r"`([^`\n]+)`")  # markdown code spans in a prose cell
_PARAMETER = _Pattern(r"\$\d")  # a statement's $1 placeholder: the cell holds SQL


def _code_span(match: re.Match) -> str:
    return f"<code>{match.group(1)}</code>"
# Ratio columns by name: a fraction (0.993, -0.81) shown as a percentage ("99.3 %", "−81 %"); a
# ``*_change`` of a time, size or count in its unit (``self_ms_change``) is not one.
_FRACTION = _Pattern(r"(^|[_ ])(share|error_rate|failure_rate|fail_ratio|hit_ratio|cache_hit|fraction)([_ ]|$)|^(p\d+|mean|median|rps|"
                       r"requests|calls|total|throughput)_change$")
_PERCENT = _Pattern(r"(^|[_ ])(pct|percent)([_ ]|$)|%")
_SIGNED = _Pattern(r"(^|_)(change|diff)(_|$)")


def _is_na(value) -> bool:
    """``pd.NA`` or ``pd.NaT`` (without importing pandas: they exist only once it is loaded)."""
    pd = sys.modules.get("pandas")
    return pd is not None and (value is pd.NA or value is pd.NaT)


def _is_numpy(value, *kinds: str) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, tuple(getattr(np, kind) for kind in kinds))


def percent_scale(column: str, units: dict | None = None) -> float | None:
    """How to show column ``column`` as a percentage: 100 for a fraction, 1 for a value already in
    percent, None when it is no ratio. ``units`` (a frame's ``attrs["units"]``) declares a column
    ``"fraction"`` or ``"percent"`` (or anything else: no ratio), whatever its name."""
    declared = (units or {}).get(column)
    if declared is not None:
        return {"fraction": 100.0, "percent": 1.0}.get(declared)
    name = str(column).lower()
    if _FRACTION.search(name):
        return 100.0
    if _PERCENT.search(name):
        return 1.0
    return None


def percent_text(value, scale: float = 100.0, *, signed: bool = False) -> str:
    """``0.993`` -> ``99.3 %``, ``-0.81`` -> ``−81 %`` (``signed``: ``+12 %`` for a rise); empty when missing."""
    if value is None or _is_na(value):
        return ""
    try:
        number = float(value) * scale
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    digits = 0 if abs(number) >= 10 and signed else 1 if abs(number) >= 0.1 or number == 0 else 2
    text = f"{abs(number):,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    sign = "−" if number < 0 and text.strip("0.,") else "+" if signed and number > 0 else ""
    return f"{sign}{text} %"


def ratio_text(value, column: str, units: dict | None = None) -> str | None:
    """``value`` of ratio column ``column`` as a percentage, or None when ``column`` is no ratio."""
    scale = percent_scale(column, units)
    if scale is None or isinstance(value, str | bool) or _is_numpy(value, "bool_"):
        return None
    return percent_text(value, scale, signed=bool(_SIGNED.search(str(column).lower())))


def figure_png(fig) -> bytes:
    """``fig`` rendered as PNG bytes; the figure is closed in pyplot if pyplot holds it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return buffer.getvalue()


def cell_text(value, column: str = "", units: dict | None = None) -> str:
    """One value as a person reads it: integers as integers, floats with the digits they deserve,
    ratios as percentages (:func:`percent_scale`), timestamps to the second, lists joined, missing
    values empty."""
    if value is None or _is_na(value):
        return ""
    is_float = isinstance(value, float) or _is_numpy(value, "floating")
    ratio = ratio_text(value, column, units) if is_float or isinstance(value, int) or _is_numpy(value, "integer") else None
    if ratio is not None:
        return ratio
    if is_float:
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if float(value).is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) < 1:
            return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
        return f"{value:,.{2 if abs(value) < 1000 else 1}f}"
    if isinstance(value, bool) or _is_numpy(value, "bool_"):
        return "yes" if value else "no"
    if isinstance(value, int) or _is_numpy(value, "integer"):
        return str(value) if column in ("queryid", "pid", "node_id", "parent_id") else f"{value:,}"
    if "pandas" in sys.modules and isinstance(value, sys.modules["pandas"].Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple | set):
        return ", ".join(cell_text(v) for v in value)
    if hasattr(value, "sql") and hasattr(value, "action"):  # a perfkit.sql.Fix
        return value.sql
    return str(value)


def _numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def html_table(frame, *, limit: int | None = None, total: int | None = None) -> str:
    """``frame`` as an HTML table: every cell escaped, text left-aligned and numbers right-aligned
    (inline styles), SQL in ``<code>``, and a "first N of M" line when it is cut.

    Parameters
    ----------
    limit:
        Show at most this many rows.
    total:
        How many rows there are in all (default ``len(frame)``), for the "first N of M" line.
    """
    import html

    total = len(frame) if total is None else total
    shown = frame if limit is None else frame.head(limit)
    numeric = {c: _numeric(shown[c]) for c in shown.columns}
    units = frame.attrs.get("units")
    head = "".join(
        f'<th style="text-align:{"right" if numeric[c] else "left"}">{html.escape(str(c))}</th>' for c in shown.columns
    )
    rows = []
    for record in shown.itertuples(index=False):
        cells = []
        for column, value in zip(shown.columns, record, strict=True):
            text = html.escape(cell_text(value, str(column), units))
            if (text and str(column) not in CODE_COLUMNS and _TICKS.search(text)
                    and not _PARAMETER.search(_TICKS.sub("", text))):  # prose with `code` spans (and no bare $1)
                spans = _TICKS.sub(_code_span, text)
                cells.append(f'<td style="text-align:left">{spans}</td>')
            elif text and (str(column) in CODE_COLUMNS or _PARAMETER.search(text)):  # SQL: code, never math
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


STATUS_COLOURS = {"critical": "#b2182b", "warning": "#d6604d", "ok": "#1a9850", "pass": "#1a9850",
                  "not run": "#777777", "failed": "#555555", "info": "#4575b4"}


def status_board(board) -> str:
    """A check board (pghero's): one line per check, its status as a coloured label, passing checks too.

    ``board`` has ``check``, ``status``, and optionally ``area``, ``findings`` and ``subject``
    (:func:`perfkit.health.board`). Everything is escaped; the layout is inline (no ``<style>``).
    """
    import html

    if board is None or not len(board):
        return f'<div class="{NO_MATH}"><p><em>(no check ran)</em></p></div>'
    rows = []
    for row in board.to_dict(orient="records"):
        status = str(row.get("status", ""))
        colour = STATUS_COLOURS.get(status, "#777777")
        count = row.get("findings")
        detail = str(row.get("subject") or "")
        if count and status not in ("ok", "not run"):
            detail = f"{plural(int(count), 'finding')}" + (f", first: {detail}" if detail else "")
        label = (f'<span style="display:inline-block;min-width:5.5em;text-align:center;background:{colour};color:#fff;'
                 f'border-radius:3px;padding:1px 6px;font-weight:bold">{html.escape(status.upper())}</span>')
        rows.append(f'<tr><td style="text-align:left;padding:2px 8px 2px 0">{label}</td>'
                    f'<td style="text-align:left;padding:2px 8px"><code>{html.escape(str(row.get("check", "")))}</code></td>'
                    f'<td style="text-align:left;padding:2px 8px;color:#555">{html.escape(str(row.get("area", "")))}</td>'
                    f'<td style="text-align:left;padding:2px 8px">{html.escape(detail)}</td></tr>')
    return (f'<div class="perfkit-board {NO_MATH}"><table><tbody>{"".join(rows)}</tbody></table></div>')


_SENTENCE_END = _Pattern(r"(?<=[.;])\s+(?=[A-Za-z(])")


def _sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(" ".join(str(text or "").split())) if part.strip()]


def shared_advice(frame, column: str = "recommendation", by: str = "kind") -> tuple:
    """The boilerplate of ``column`` said once per ``by`` (a recommendation kind), not per row.

    A sentence (or ``;`` clause) that every row of a kind with two rows or more holds is taken
    out of those rows and returned once, in ``{kind: text}``; the rows keep what differs ("" when
    nothing does). Kinds with one row keep their text. Returns (a copy of the frame, the texts);
    ``frame`` may be a list of row dicts (then a list of copied dicts comes back).
    """
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(frame, pd.DataFrame):
        return _shared_advice_rows(frame, column, by)
    if frame is None or not len(frame) or column not in frame.columns or by not in frame.columns:
        return frame, {}
    records = frame[[by, column]].to_dict(orient="records")
    changed, shared = _shared_advice_rows(records, column, by)
    out = frame.copy()
    place = out.columns.get_loc(column)
    for position, (before, after) in enumerate(zip(records, changed, strict=True)):
        if after[column] is not before[column]:
            out.iat[position, place] = after[column]
    return out, shared


def _shared_advice_rows(rows, column: str, by: str) -> tuple[list, dict]:
    """:func:`shared_advice` of a list of row dicts."""
    if rows is None or not len(rows):
        return rows, {}
    records = rows.records() if hasattr(rows, "records") else [dict(r) for r in rows]
    names = getattr(rows, "columns", None) or list(records[0])
    if column not in names or by not in names:
        return records, {}
    out = [dict(r) for r in records]
    groups: dict = {}
    for row in out:  # groupby(sort=False): in order of first appearance; a missing kind is no group
        kind = row.get(by)
        if kind is None or (isinstance(kind, float) and math.isnan(kind)):
            continue
        groups.setdefault(kind, []).append(row)
    shared: dict[str, str] = {}
    for kind, members in groups.items():
        if len(members) < 2:
            continue
        split = [_sentences(row.get(column)) for row in members]
        common = [part for part in split[0] if all(part in parts for parts in split[1:])]
        if not common:
            continue
        shared[str(kind)] = " ".join(common)
        for row, parts in zip(members, split, strict=True):
            row[column] = " ".join(part for part in parts if part not in common)
    return out, shared


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
    import html

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


__all__ = ["CODE_COLUMNS", "cell_text", "code", "figure_png", "html_table", "markdown", "percent_scale", "percent_text",
           "plural", "ratio_text", "shared_advice", "status_board"]
