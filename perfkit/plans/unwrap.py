"""Undo what psql, GUI clients, terminals, e-mail and server logs wrap around a pasted plan.

``find_plans(text)`` finds each plan inside a paste (psql prompts and commands, comments, whole
session transcripts with ``SET`` and ``Time:`` lines, several statements) and returns their line
ranges; ``unwrap(text)`` returns one plan's lines as (original line number, text), ready for a
parser: psql frames of every border and line style (``\\pset border 0/1/2``, ``linestyle
ascii/old-ascii/unicode``, double lines, ``format wrapped``), GUI exports (DBeaver's trailing
bars, pgAdmin's and spreadsheets' quotes), lines cut at a fixed width, ``+`` continuations,
expanded records and server log lines.
"""

from __future__ import annotations

import re
from operator import itemgetter

_LEADING_SPACE = re.compile(r"\s*")
_FOOTER = re.compile(r"^\s*\(\d+ rows?\)\s*$")
# matched against the stripped line: two adjacent ``\s*`` on the raw line backtrack over the
# indentation (quadratic per line, cubic for a deeply nested plan)
_BARS = "|│║┃"
_RULE_CHARS = "-+=|:─━│┃┼├┤┌┐└┘┬┴╞╡╪═║╔╗╚╝╠╣╦╩╬╟╢╤╧╫╓╖╙╜╒╕╘╛╥╨"
_HEADER = re.compile(r'^[' + _BARS + r']?\s*["\']?QUERY PLAN["\']?\s*[' + _BARS + r']?$')
_SEPARATOR = re.compile(r"^[\s" + re.escape(_RULE_CHARS) + r"]+$")
_RECORD = re.compile(r"^\s*[-─═]\[ RECORD \d+ \]")
_EXPANDED = re.compile(r"^\s*QUERY PLAN\s*[" + _BARS + r"] ?(.*)$")
_LOG_PLAN = re.compile(r"duration:\s*[\d.]+\s*ms\s+plan:\s*(.*)$")
_QUERY_TEXT = re.compile(r"^\s*Query (Text|Parameters|Identifier):")
_DECORATION_STARTS = set("(-+=" + _RULE_CHARS + "Q\"'")
_LOOKS_LIKE_NODE = re.compile(r"\((cost=|actual |never executed)|^\s*[\[{]")
_WRAP_MARKS = (".", "…")

# --- finding the plan in a paste --------------------------------------------------------------------
_NODE_WORDS = (
    "Result|ProjectSet|ModifyTable|Append|Merge Append|Recursive Union|BitmapAnd|BitmapOr|Nested Loop|"
    "Merge|Hash|Seq Scan|Sample Scan|Gather|Index|Bitmap|Tid|Subquery Scan|Function Scan|"
    "Table Function Scan|Values Scan|CTE Scan|Named Tuplestore Scan|WorkTable Scan|Foreign|Custom Scan|"
    "Materialize|Memoize|Sort|Incremental Sort|Group|Aggregate|GroupAggregate|HashAggregate|MixedAggregate|"
    "WindowAgg|Unique|SetOp|HashSetOp|LockRows|Limit|Insert|Update|Delete|Parallel|Async|Partial|Finalize"
)
_ROOT = re.compile(rf"^(?:{_NODE_WORDS})\b")
_FIGURES = re.compile(r"\((?:cost=|actual |never executed)")
_PROMPT = re.compile(r"^(?:[\w\-.@:]*[=\-(\[][#>]|[#>$]\s|[\w\-.]*[#>]\s|[\w\-.]*\$\s|psql\s*\(|mysql>|\w+>\s)")
_SQL_WORDS = (
    "SET|RESET|SHOW|BEGIN|COMMIT|ROLLBACK|START|EXPLAIN|SELECT|WITH|INSERT|UPDATE|DELETE|MERGE|VALUES|"
    "TABLE|CREATE|DROP|ALTER|ANALYZE|VACUUM|PREPARE|EXECUTE|DEALLOCATE|DISCARD|LOAD|COPY|CALL|DO|"
    "TRUNCATE|GRANT|REVOKE|CLUSTER|REINDEX|LOCK|NOTIFY|LISTEN"
)
# a statement as people type it (all capitals or all small letters); plan lines are capitalized words
_STATEMENT = re.compile(rf"^(?:(?:{_SQL_WORDS})|(?:{_SQL_WORDS.lower()}))(?:\s|;|\(|$)")
_DETAIL_KEY = re.compile(r"^[A-Z][A-Za-z0-9 /_\-]*:(?:\s|$)")
_PSQL_NOISE = re.compile(r"^(?:Time:\s+\d|Timing is (?:on|off)|Expanded display|Output format|Border style|"
                         r"Line style|Pager |Target width|Unicode |psql:|ERROR:|WARNING:|NOTICE:|HINT:|DETAIL:|"
                         r"LINE \d+:|You are now connected|Null display|Did not find)")
_TOP_KEY = re.compile(r"^(?:Planning|Planning Time|Execution Time|Total runtime|JIT|Settings|Serialization|"
                      r"Query Identifier|Trigger\b.*|Memory|Buffers|Functions|Options|Timing)\s*:")


def _content(text: str) -> str:
    """A line without a frame's bars, quotes or the indentation in front of it."""
    stripped = text.strip()
    while stripped and (stripped[0] in _BARS or stripped[0] in "\"'"):
        stripped = stripped[1:].lstrip()
    return stripped


def _is_header(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and stripped[:1] in "Q|│║┃\"'" and bool(_HEADER.match(stripped))


def _ends_plan(content: str) -> bool:
    """A line that cannot be part of a plan: a psql prompt, a statement, a footer, psql's chatter."""
    if not content:
        return False
    if _FOOTER.match(content) or _PSQL_NOISE.match(content):
        return True
    if content.startswith(("--", "->")):
        return content.startswith("--") and not _SEPARATOR.match(content)
    if _ROOT.match(content) and _FIGURES.search(content) or _DETAIL_KEY.match(content):
        return False
    return bool(_PROMPT.match(content) or _STATEMENT.match(content) or content.startswith(("\\", "/*")))


def find_plans(text: str) -> list[tuple[int, int]]:
    """The line ranges ``[(first, last), ...]`` (1-based, inclusive) of each plan in a paste.

    A plan starts at psql's ``QUERY PLAN`` header, at a JSON document or at a line that reads as
    a root plan node (a node name with ``(cost=``/``(actual``/``(never executed)`` figures, or
    any node name right after a header); it ends at psql's ``(n rows)`` footer, a prompt, a
    statement, a ``Time:`` line or a comment. What comes before the first plan (prompts, the
    EXPLAIN command, comments, URLs) is no part of it. Empty when no line starts a plan.
    """
    lines = text.split("\n")
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    last_body: int | None = None
    after_header = False
    for index, line in enumerate(lines, start=1):
        if start is not None and line[:2] == "  " and not after_header:
            # inside a plan an indented line is a plan line (prompts, statements, footers start
            # further left): no need to look at it closer (a 10,000-node plan has 40,000 of them)
            if not line.isspace():  # (the line is not empty: what line.strip() tells, without a copy)
                last_body = index
            continue
        content = _content(line)
        if start is None:
            if _is_header(line):
                start, last_body, after_header = index, None, True
                continue
            if content[:1] in ("[", "{") and ('"Plan"' in content or content.rstrip("+↵ ") in ("[", "{", "[{")):
                start, last_body, after_header = index, index, False
                continue
            if content and _ROOT.match(content) and not _DETAIL_KEY.match(content) and (_FIGURES.search(content) or _wrapped_root(lines, index)):
                start, last_body, after_header = index, index, False
            continue
        if not content or _SEPARATOR.match(line.strip()):
            continue
        if _is_header(line):  # the next result
            ranges.append((start, last_body or start))
            start, last_body, after_header = index, None, True
            continue
        if _ends_plan(content) and not (after_header and last_body is None and _ROOT.match(content)):
            if last_body is not None:
                ranges.append((start, last_body))
            start, last_body = None, None
            continue
        last_body = index
        after_header = False
    if start is not None and last_body is not None:
        ranges.append((start, last_body))
    return ranges


def _wrapped_root(lines: list[str], index: int) -> bool:
    """Whether the root-looking line at ``index`` (1-based) has its figures on the next line (a cut)."""
    if index >= len(lines):
        return False
    joined = _content(lines[index - 1]).rstrip(".…") + lines[index].strip().lstrip(".…")
    return bool(_FIGURES.search(joined) or "(cost" in joined or "(co" in _content(lines[index - 1])[-4:])


# --- undoing the wrapping ---------------------------------------------------------------------------
def _is_continued(text: str) -> bool:
    """A psql continuation marker (`` +`` or ``↵``) ends the line."""
    return text.endswith(("+", "↵")) and (len(text) == 1 or text[-2].isspace())


def _strip_frame(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Remove psql ``border 2`` bars (``| text |``, ``│ text │``, ``║ text ║``), joining wrapped values.

    psql's ``format wrapped`` marks a cut value with ``.`` (``…`` in unicode) in the padding
    before the right bar and again after the left bar of the next line.
    """
    body = [text for _, text in lines if text.strip()]
    framed = [t for t in body if t.lstrip()[:1] in _BARS]
    if not body or len(framed) < max(1, len(body) // 2):
        return _strip_right_bars(lines)
    out: list[tuple[int, str]] = []
    joining = False
    for number, text in lines:
        stripped = text.strip()
        if stripped and stripped[0] in _BARS:
            stripped = stripped[1:]
            if stripped[-1:] in _BARS:
                stripped = stripped[:-1]
            start_mark = stripped[:1] in _WRAP_MARKS
            end_mark = len(stripped) > 1 and stripped[-1] in _WRAP_MARKS
            if start_mark or stripped.startswith(" "):
                stripped = stripped[1:]
            if end_mark:
                stripped = stripped[:-1]
            elif stripped.endswith(" "):
                stripped = stripped[:-1]
            if joining and start_mark and out:
                out[-1] = (out[-1][0], out[-1][1] + stripped)
            else:
                out.append((number, stripped if end_mark else stripped.rstrip()))
            joining = end_mark
            continue
        joining = False
        out.append((number, text.rstrip()))
    return [(n, t.rstrip()) for n, t in out]


def _strip_right_bars(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """DBeaver's text view and other grids: a bar after each padded value (``Seq Scan ...   |``)."""
    body = [text.rstrip() for _, text in lines if text.strip()]
    barred = [t for t in body if t[-1:] in _BARS]
    if not body or len(barred) * 2 <= len(body):
        return lines
    return [(n, t.rstrip()[:-1].rstrip() if t.rstrip()[-1:] in _BARS else t) for n, t in lines]


def _join_marked_wraps(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """psql ``format wrapped`` without a frame: ``… cut.`` then ``.rest`` (``…`` in unicode).

    With ``border 1`` the next line starts with the mark in the margin; with ``border 0`` there is
    no margin (lines start in column 0) and the next line is the rest as it is.
    """
    marked = [i for i in range(len(lines) - 1) if lines[i][1].rstrip()[-1:] in _WRAP_MARKS]
    if not marked:
        return lines
    after = {i + 1 for i in marked}
    border0 = any(t[:1] not in (" ", "") for i, (_, t) in enumerate(lines) if i not in after)
    if not border0 and not any(lines[i + 1][1][:1] in _WRAP_MARKS for i in marked):
        return lines
    out: list[tuple[int, str]] = []
    joining = False
    for number, text in lines:
        if joining and out and (border0 or text[:1] in _WRAP_MARKS):
            piece = text if border0 else text[1:]
            joining = piece.rstrip()[-1:] in _WRAP_MARKS
            out[-1] = (out[-1][0], out[-1][1] + (piece.rstrip()[:-1] if joining else piece))
            continue
        stripped = text.rstrip()
        joining = stripped[-1:] in _WRAP_MARKS
        out.append((number, stripped[:-1] if joining else text))
    return out


_SUBPLAN_LINE = re.compile(r"^(?:InitPlan|SubPlan|CTE)\s+\S")
_DETAIL_LINE = re.compile(r"^[A-Z][A-Za-z0-9 /_\-()]*:(?:\s|$)")


def _looks_like_plan_line(text: str) -> bool:
    """Whether a line reads as a line of its own in a text plan (not the rest of a cut one)."""
    stripped = text.strip()
    if not stripped:
        return True
    if stripped.startswith("->") or _TOP_KEY.match(stripped):
        return True
    if _SUBPLAN_LINE.match(stripped):
        return True
    if text.startswith("  ") and _DETAIL_LINE.match(stripped):
        return True  # a detail line (``Filter: ...``, ``Worker 0:  actual ...``)
    return bool(_ROOT.match(stripped) and _FIGURES.search(stripped) and not text.startswith(" "))


def _unbalanced(text: str) -> bool:
    return text.count("(") > text.count(")")


def _any_cut_continued(lines: list[tuple[int, str]], width: int) -> bool:
    """Whether :func:`_rejoin_cut_lines` (without old-ascii wrapping) would join any line: one that
    looks cut (at the ``width`` it was cut at, when fixed, or leaving a parenthesis open) and is
    followed by a line that is not a plan line of its own."""
    texts = [text for _, text in lines]
    for index in range(len(texts) - 1):
        text = texts[index]
        if (width and len(text) >= width - 1 or "(" in text and text.count("(") > text.count(")")) and text.strip():
            following = texts[index + 1]
            if following.strip() and not _looks_like_plan_line(following):
                return True
    return False


def _rejoin_cut_lines(lines: list[tuple[int, str]], psql_width: int = 0) -> list[tuple[int, str]]:
    """Lines cut at a fixed width (a narrow terminal, an e-mail) joined again.

    A line as long as the longest (the width it was cut at), or one that leaves a parenthesis
    open, continues on the next line when that line does not read as a plan line of its own.
    """
    body = [t for _, t in lines if t.strip()]
    if len(body) < 2:
        return lines
    width = max(len(t) for t in body)
    at_width = sum(1 for t in body if len(t) >= width - 1)
    fixed = width >= 30 and at_width >= 2
    if not psql_width and not _any_cut_continued(lines, width if fixed else 0):
        return lines
    out: list[tuple[int, str]] = []
    for number, text in lines:
        if out and text.strip():
            previous = out[-1][1]
            old_ascii = bool(psql_width) and len(previous) == psql_width and previous.endswith(" ") and text.startswith(" ")
            cut = bool(previous.strip()) and ((fixed and len(previous) >= width - 1) or _unbalanced(previous))
            # only a line that could continue the one before is asked whether it is a plan line of its own
            if (old_ascii or cut) and not _looks_like_plan_line(text):
                if old_ascii:
                    out[-1] = (out[-1][0], previous[:-1] + text[1:])  # old-ascii wrapped: no marks, two spaces
                else:
                    out[-1] = (out[-1][0], previous + text)
                continue
        out.append((number, text))
    return out


class _Shape:
    """What the lines look like, from C-level string scans: each line stripped (as str.strip()
    strips it) and these joined with newlines, so "how many lines start / end with X" is a count
    of ``"\nX"`` / ``"X\n"``. The steps of :func:`unwrap` use it to prove they would leave the
    lines as they are, so the common paste (a plain psql plan) skips their per-line work."""

    def __init__(self, lines: list[tuple[int, str]]):
        stripped = [text.strip() for _, text in lines]
        self.lines = lines
        self.body = len(stripped) - stripped.count("")  # lines that are not blank
        self.text = "\n" + "\n".join(stripped) + "\n"
        self.first = next((t for t in stripped if t), "")
        self.last = next((t for t in reversed(stripped) if t), "")
        self.tabs = any("\t" in text for _, text in lines)  # (stripping takes those at the ends)
        self.heads = {line[:1] for line in stripped}  # the first character of each line ("" for a blank one)

    def starting(self, char: str) -> int:
        """How many lines start with ``char`` (after their indentation)."""
        return self.text.count("\n" + char)

    def ending(self, char: str) -> int:
        """How many lines end with ``char`` (before trailing spaces)."""
        return self.text.count(char + "\n")

    def any_ending(self, chars: str) -> bool:
        return any(char + "\n" in self.text for char in chars)


def _quotes_stay(shape: _Shape) -> bool:
    """Whether :func:`_strip_quotes` would leave the lines as they are (no quote style fits)."""
    if not shape.body:
        return True
    last = shape.last.rstrip(",")
    for quote in ('"', "'"):
        if shape.first[0] == quote and last[-1:] == quote:  # a cell of several lines
            return False
        if quote not in shape.text:
            continue
        starts = shape.starting(quote)
        ends = sum(1 for _ in re.finditer(quote + r",*\n", shape.text))  # t.rstrip(",")[-1:] == quote
        if max(starts, ends) * 2 >= shape.body:
            return False
    return True


def _decorations_absent(shape: _Shape) -> bool:
    """Whether no line starts like psql's decorations (other than a node's ``->``)."""
    found = shape.heads & _DECORATION_STARTS
    return not found or found == {"-"} and shape.starting("-") == shape.starting("->")


def _frame_stays(shape: _Shape) -> bool:
    """Whether :func:`_strip_frame` would leave the lines as they are (too few start or end with a bar)."""
    if not any(bar in shape.text for bar in _BARS):
        return True
    starts = sum(shape.starting(bar) for bar in _BARS)
    ends = sum(shape.ending(bar) for bar in _BARS)
    return starts < max(1, shape.body // 2) and (not shape.body or ends * 2 <= shape.body)


def _strip_quotes(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Remove the quotes pgAdmin, CSV exports and spreadsheets put around lines.

    Every line in ``"…"`` or ``'…'`` (doubled quotes inside undone), a quote only at the start or
    only at the end of lines (one cell of several lines: a quote before the first, one after the
    last), and a trailing comma of a CSV row.
    """
    body = [(i, text.strip()) for i, (_, text) in enumerate(lines) if text.strip()]
    if not body or any(_content(t).rstrip("+↵ ") in ("[", "{", "[{", "[ {") for _, t in body[:5]):
        return lines  # JSON: its keys are in quotes
    for quote in ('"', "'"):
        starts = sum(1 for _, t in body if t[0] == quote)
        ends = sum(1 for _, t in body if t.rstrip(",")[-1:] == quote)
        cell = body[0][1][0] == quote and body[-1][1].rstrip(",")[-1:] == quote
        if max(starts, ends) * 2 < len(body) and not cell:
            continue
        doubled = quote * 2
        out = []
        first_index, last_index = body[0][0], body[-1][0]
        per_line = max(starts, ends) * 2 >= len(body)
        for index, (number, text) in enumerate(lines):
            stripped = text.strip()
            if not stripped:
                out.append((number, text))
                continue
            if stripped.endswith(quote + ",") and (per_line or index == last_index):
                stripped = stripped[:-1]
            cut_start = stripped[0] == quote and (per_line or index == first_index)
            if cut_start:
                stripped = stripped[1:]
            if stripped.endswith(quote) and (per_line or index == last_index):
                inner = stripped[:-1]
                if inner.count(quote) % 2 == 0 or index == last_index:
                    stripped = inner
            if doubled in stripped:
                stripped = stripped.replace(doubled, quote)
            indent = text[: len(text) - len(text.lstrip())] if not cut_start else ""
            out.append((number, (indent + stripped) if not cut_start else stripped))
        return out
    return lines


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


def _join_cut_header(raw: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``QUERY PLAN`` cut by a narrow terminal (``QUERY PL`` / ``AN``): put back on one line."""
    target = "QUERY PLAN"
    out: list[tuple[int, str]] = []
    skip = False
    for index, (number, line) in enumerate(raw):
        if skip:
            skip = False
            continue
        stripped = line.strip()
        if stripped and stripped != target and target.startswith(stripped) and index + 1 < len(raw):
            joined = stripped + raw[index + 1][1].strip()
            if joined == target or joined.replace("  ", " ") == target:
                out.append((number, target))
                skip = True
                continue
        out.append((number, line))
    return out


def unwrap(text: str | list[tuple[int, str]]) -> tuple[list[tuple[int, str]], dict]:
    """The plan lines of a pasted text, and what a log line said about it (query, duration).

    Handles psql aligned output (``QUERY PLAN`` header, rule, ``(n rows)`` footer, ``+`` / ``↵``
    continuations, ``format wrapped`` cuts), psql frames of every ``border`` / ``linestyle``
    (ASCII, old-ascii, unicode single and double lines), expanded (``\\x``) records, DBeaver's
    trailing bars, pgAdmin's and spreadsheets' quotes, lines cut at a fixed width and server log
    lines (``LOG:  duration: ... plan:``, leading tabs, ``Query Text:``). ``text`` may be a list
    of (line number, line) already cut out of a larger paste. Line numbers are 1-based.
    """
    if isinstance(text, str):
        if text.startswith("\ufeff"):
            text = text[1:]
        lead = _LEADING_SPACE.match(text).end()  # (no copies of a large text: what str.lstrip() strips)
        end = text.find("\n", lead)
        first_line = text[lead:end if end >= 0 else len(text)].rstrip()
        if first_line[:1] in ("[", "{") and not first_line.endswith(("+", "↵")):  # JSON as the server wrote it
            first = text.count("\n", 0, lead) + 1
            return [(number, line.rstrip("\r")) for number, line in enumerate(text[lead:].split("\n"), start=first)], {}
        raw = [(number, line.rstrip("\r\n")) for number, line in enumerate(text.split("\n"), start=1)]
    else:
        raw = list(text)
        joined = "\n".join(map(itemgetter(1), raw))
        # (no line holds a carriage return, a byte-order mark or a newline: each stays as it is)
        if "\r" in joined or "\ufeff" in joined or joined.count("\n") != len(raw) - 1 if raw else False:
            raw = [(number, line.rstrip("\r\n").lstrip("\ufeff")) for number, line in raw]
    shape = _Shape(raw)
    if not _quotes_stay(shape):
        raw = _strip_quotes(raw)
        shape = _Shape(raw)
    if shape.starting("Q"):  # perhaps a "QUERY PLAN" cut in two
        joined_header = _join_cut_header(raw)
        if len(joined_header) != len(raw):
            raw = joined_header
            shape = _Shape(raw)
    psql = False
    rule_width = 0
    if _decorations_absent(shape):
        lines = raw
    else:
        lines = []
        decoration_starts = _DECORATION_STARTS
        for number, line in raw:
            stripped = line.strip()
            head = stripped[:1]
            # only lines starting like psql's own decorations need the regular expressions (none
            # of them matches a node line: ``->`` starts no footer, record, header, rule or expanded line)
            if head in decoration_starts and not stripped.startswith("->"):
                if _FOOTER.match(stripped) or _RECORD.match(stripped) or _HEADER.match(stripped):
                    psql = True
                    continue
                if len(stripped) >= 3 and _SEPARATOR.match(line):
                    psql = True
                    rule_width = rule_width or len(line.rstrip())
                    continue
                expanded = _EXPANDED.match(line)
                if expanded:
                    psql = True
                    line = expanded.group(1)
            lines.append((number, line))
        if psql:  # lines were dropped or changed
            shape = _Shape(lines)
    changed = False
    if not _frame_stays(shape):
        lines = _strip_frame(lines)
        changed = True
    if changed or shape.any_ending(_WRAP_MARKS):
        lines = _join_marked_wraps(lines)
        changed = True
    if changed or shape.any_ending("+↵"):
        body = [t.rstrip() for _, t in lines if t.strip()]
        continued = [t for t in body if _is_continued(t)]
        if psql and continued or (body and len(continued) * 2 >= len(body)):
            # a value as wide as the column has its marker right after the text, without a space
            lines = [(n, t.rstrip()[:-1].rstrip() if t.rstrip().endswith(("+", "↵")) else t) for n, t in lines]
            changed = True
    if changed or "plan:" in shape.text or "Query " in shape.text:
        lines, meta = _strip_log(lines)
        changed = True
    else:
        meta = {}
    if changed or shape.tabs:
        lines = [(n, t.expandtabs(8) if "\t" in t else t) for n, t in lines]
    # drop blank lines at both ends, then the indentation every line shares
    while lines and not lines[0][1].strip():
        lines.pop(0)
    while lines and not lines[-1][1].strip():
        lines.pop()
    if lines and lines[0][1].lstrip()[:1] not in ("[", "{"):
        lines = _rejoin_cut_lines(lines, rule_width)
    lines = [(n, t.rstrip()) for n, t in lines]
    if lines and lines[0][1][:1] == " ":  # else the first line starts in column 0: no shared indentation
        indents = [len(t) - len(t.lstrip(" ")) for _, t in lines if t.strip()]
        common = min(indents) if indents else 0
        if common:
            lines = [(n, t[common:] if t.strip() else "") for n, t in lines]
    return lines, meta
