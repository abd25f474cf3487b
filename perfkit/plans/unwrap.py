"""Undo what psql, pgAdmin and server logs wrap around a pasted plan.

``unwrap(text)`` returns the plan's lines as (original line number, text), ready for a parser.
"""

from __future__ import annotations

import re

_FOOTER = re.compile(r"^\s*\(\d+ rows?\)\s*$")
# matched against the stripped line: two adjacent ``\s*`` on the raw line backtrack over the
# indentation (quadratic per line, cubic for a deeply nested plan)
_HEADER = re.compile(r'^(?:[|│]\s*)?"?QUERY PLAN"?\s*[|│]?$')
_SEPARATOR = re.compile(r"^[\s\-+=|│─┼├┤┌┐└┘┬┴╞╡╪═]+$")
_RECORD = re.compile(r"^\s*-\[ RECORD \d+ \]")
_EXPANDED = re.compile(r"^\s*QUERY PLAN\s*[|│] ?(.*)$")
_LOG_PLAN = re.compile(r"duration:\s*[\d.]+\s*ms\s+plan:\s*(.*)$")
_QUERY_TEXT = re.compile(r"^\s*Query (Text|Parameters|Identifier):")
_DECORATION_STARTS = set("(-+=|│─┼├┤┌┐└┘┬┴╞╡╪═Q\"")
_LOOKS_LIKE_NODE = re.compile(r"\((cost=|actual |never executed)|^\s*[\[{]")


def _is_continued(text: str) -> bool:
    """A psql continuation marker (`` +`` or ``↵``) ends the line."""
    return text.endswith(("+", "↵")) and (len(text) == 1 or text[-2].isspace())


def _strip_frame(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Remove psql ``border 2`` bars (``| text |`` or ``│ text │``)."""
    body = [text for _, text in lines if text.strip()]
    framed = [t for t in body if t.lstrip()[:1] in ("|", "│")]
    if not body or len(framed) < max(1, len(body) // 2):
        return lines
    out = []
    for number, text in lines:
        stripped = text.strip()
        if stripped[:1] in ("|", "│"):
            stripped = stripped[1:]
            if stripped[-1:] in ("|", "│"):
                stripped = stripped[:-1]
            text = stripped[1:] if stripped.startswith(" ") else stripped
        out.append((number, text.rstrip()))
    return out


def _strip_quotes(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Remove the double quotes pgAdmin (and CSV exports) put around each line."""
    body = [text.strip() for _, text in lines if text.strip()]
    quoted = [t for t in body if len(t) >= 2 and t[0] == '"' and t[-1] == '"']
    if not body or len(quoted) < max(1, (len(body) + 1) // 2):
        return lines
    out = []
    for number, text in lines:
        stripped = text.strip()
        if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"':
            text = stripped[1:-1].replace('""', '"')
        out.append((number, text))
    return out


def _strip_log(lines: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], dict]:
    """Remove a server log's ``LOG:  duration: ... plan:`` line, tabs and ``Query Text:``."""
    query = ""
    meta: dict = {}
    start = None
    for index, (_, text) in enumerate(lines):
        if "plan:" in text and _LOG_PLAN.search(text):
            start = index
            break
    if start is None and not any("Query " in t and _QUERY_TEXT.match(t) for _, t in lines):
        return lines, meta
    out: list[tuple[int, str]] = []
    rest = lines
    if start is not None:
        number, text = lines[start]
        found = _LOG_PLAN.search(text)
        tail = found.group(1)
        meta["duration_ms"] = float(re.search(r"duration:\s*([\d.]+)", text).group(1))
        rest = ([(number, tail)] if tail.strip() else []) + lines[start + 1 :]
    in_query = False
    for number, text in rest:
        if text.startswith("\t"):
            text = text[1:]
        if _QUERY_TEXT.match(text):
            if text.strip().startswith("Query Text:"):
                query = text.split(":", 1)[1].strip()
                in_query = True
            continue
        if in_query and not _LOOKS_LIKE_NODE.search(text):
            query += "\n" + text
            continue
        in_query = False
        out.append((number, text))
    if query:
        meta["query"] = query
    return out, meta


def unwrap(text: str) -> tuple[list[tuple[int, str]], dict]:
    """The plan lines of a pasted text, and what a log line said about it (query, duration).

    Handles psql aligned output (``QUERY PLAN`` header, ``----`` rule, ``(n rows)`` footer,
    ``+`` / ``↵`` continuations), psql ASCII and Unicode ``border 2`` frames, expanded (``\\x``)
    records, pgAdmin's quoted lines, and server log lines (``LOG:  duration: ... plan:``,
    leading tabs, ``Query Text:``). Line numbers are 1-based numbers in ``text``.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    first_line = text.lstrip().split("\n", 1)[0].rstrip()
    if first_line[:1] in ("[", "{") and not first_line.endswith(("+", "↵")):  # JSON as the server wrote it
        lead = len(text) - len(text.lstrip())
        first = text.count("\n", 0, lead) + 1
        return [(number, line.rstrip("\r")) for number, line in enumerate(text[lead:].split("\n"), start=first)], {}
    raw = [(number, line.rstrip("\r\n")) for number, line in enumerate(text.split("\n"), start=1)]
    psql = False
    lines: list[tuple[int, str]] = []
    for number, line in raw:
        stripped = line.strip()
        head = stripped[:1]
        # only lines starting like psql's own decorations need the regular expressions
        if head in _DECORATION_STARTS:
            if _FOOTER.match(stripped) or _RECORD.match(stripped) or _HEADER.match(stripped):
                psql = True
                continue
            if len(stripped) >= 3 and _SEPARATOR.match(line):
                psql = True
                continue
            expanded = _EXPANDED.match(line)
            if expanded:
                psql = True
                line = expanded.group(1)
        lines.append((number, line.rstrip()))
    lines = _strip_frame(lines)
    body = [t for _, t in lines if t.strip()]
    continued = [t for t in body if _is_continued(t)]
    if psql and continued or (body and len(continued) * 2 >= len(body)):
        # a value as wide as the column has its marker right after the text, without a space
        lines = [(n, t[:-1].rstrip() if t.endswith(("+", "↵")) else t) for n, t in lines]
    lines = _strip_quotes(lines)
    lines, meta = _strip_log(lines)
    lines = [(n, t.expandtabs(8).rstrip() if "\t" in t else t) for n, t in lines]
    # drop blank lines at both ends, then the indentation every line shares
    while lines and not lines[0][1].strip():
        lines.pop(0)
    while lines and not lines[-1][1].strip():
        lines.pop()
    indents = [len(t) - len(t.lstrip(" ")) for _, t in lines if t.strip()]
    common = min(indents) if indents else 0
    if common:
        lines = [(n, t[common:] if t.strip() else "") for n, t in lines]
    return lines, meta
