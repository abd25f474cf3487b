"""Read a saved plan in any form people keep it: EXPLAIN JSON, or text from psql, pgAdmin, logs.

Secrets in the plan's text (its query, a ``Filter`` holding a key) are scrubbed as it is read.

``parse(text_or_json)`` and ``parse_file(path)`` return a :class:`~perfkit.plans.model.Plan`.
"""

from __future__ import annotations

import json
import math
import re
from operator import itemgetter
from pathlib import Path
from typing import Any

from perfkit.errors import BadInputError
from perfkit.fileio import input_errors, read_limited, require_regular
from perfkit.plans.model import Plan, build_plan, paused_gc
from perfkit.plans.parse_text import parse_text_lines
from perfkit.plans.unwrap import find_plans, unwrap
from perfkit.secrets import lines_are_clean, scrub_document, scrub_statement

# The largest plan file perfkit reads, and the longest line of a text plan (EXPLAIN of a
# statement with a huge IN list can have a long Filter line; /dev/zero has one endless line).
MAX_PLAN_BYTES = 256 * 1024 * 1024
MAX_LINE_CHARS = 64 * 1024 * 1024
_LEADING_SPACE = re.compile(r"\s*")
_LOG_LINE = re.compile(r"duration:\s*[\d.]+\s*ms\s+plan:|^\s*Query Text:", re.MULTILINE)


def parse_json_lines(lines: list[tuple[int, str]], *, path: str | None = None, scrub: bool = False) -> Any:
    """The JSON value of unwrapped lines; errors name the line of the original text.

    ``scrub=True`` returns it with every string scrubbed (:func:`perfkit.secrets.scrub_document`,
    which skips the walk when the text itself holds nothing a secret comes with).
    """
    text = "\n".join(line for _, line in lines)
    try:
        value = json.loads(text)
        return scrub_document(value, copy=False, source=text) if scrub else value
    except json.JSONDecodeError as err:
        index = min(max(err.lineno - 1, 0), len(lines) - 1) if lines else 0
        line = lines[index][0] if lines else None
        # an error on the last line (or at the very end) is what a cut-off file looks like
        last_line = text.rstrip().count("\n") + 1
        what = "truncated JSON" if err.pos >= len(text.rstrip()) or err.lineno >= last_line else "invalid JSON"
        raise BadInputError(f"{what} ({err.msg})", path=path, line=line) from None
    except RecursionError:
        raise BadInputError("the JSON is nested too deeply to read", path=path) from None


def parse(source: str | bytes | dict | list, *, path: str | Path | None = None, name: str = "") -> Plan:
    """Parse one EXPLAIN plan.

    Parameters
    ----------
    source:
        EXPLAIN (FORMAT JSON) output (text, or an already loaded list/dict), or a text-format
        plan as pasted from psql (with or without the ``QUERY PLAN`` header, ASCII or Unicode
        frames, ``+`` continuations), pgAdmin (quoted lines), a server log or auto_explain.
    path:
        The file it came from, named in error messages.
    name:
        What to record as ``Plan.source`` (default: ``path``, else ``"json"`` or ``"text"``).

    Returns
    -------
    Plan
        ``plan.nodes`` (one row per node), ``plan.findings``, timings, triggers, JIT, settings.

    Raises
    ------
    BadInputError
        For an empty input, truncated JSON, a text that is not a plan, or a figure that cannot
        be read; the message names the file and line.

    Examples
    --------
    >>> plan = parse("Seq Scan on orders  (cost=0.00..18.50 rows=850 width=40)")
    >>> plan.nodes[["node_type", "relation", "plan_rows"]].values.tolist()
    [['Seq Scan', 'orders', 850.0]]
    """
    with paused_gc():
        return _parse(source, path, name)


def _parse(source, path, name: str) -> Plan:
    where = None if path is None else str(path)
    if isinstance(source, dict | list):
        # the query text and the nodes' Filter/Index Cond hold the statement's constants
        return build_plan(scrub_document(source), source=name or where or "json", fmt="json", path=where)
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInputError("not UTF-8 text (is this a plan file?)", path=where) from None
    if not isinstance(source, str):
        raise BadInputError(f"cannot read a plan from a {type(source).__name__}", path=where)
    if "\x00" in source:
        raise BadInputError("a binary file, not a plan", path=where)
    if _LEADING_SPACE.fullmatch(source):  # only whitespace (str.strip() would copy a large text)
        raise BadInputError("empty: no plan in it", path=where, line=1 if where else None)
    _check_lines(source, where)
    plans = _parse_text_plans(source, where, name)
    plan = plans[0]
    if len(plans) > 1:
        starts = ", ".join(str(p.extra.get("first_line", "?")) for p in plans)
        plan.extra.setdefault("notes", []).append(
            f"the text holds {len(plans)} plans (starting at lines {starts}): this is the first; "
            "perfkit.plans.parse_all reads each")
    return plan


def parse_all(source: str | bytes, *, path: str | Path | None = None, name: str = "") -> list[Plan]:
    """Every plan in a paste (a psql session transcript with several EXPLAINs), in order.

    Each plan's ``extra["first_line"]`` is the line of the text it starts at; see :func:`parse`.
    """
    if isinstance(source, dict | list):
        return [parse(source, path=path, name=name)]
    where = None if path is None else str(path)
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInputError("not UTF-8 text (is this a plan file?)", path=where) from None
    if "\x00" in source or not source.strip():
        return [parse(source, path=path, name=name)]
    _check_lines(source, where)
    with paused_gc():
        return _parse_text_plans(source, where, name)


def _parse_text_plans(source: str, where: str | None, name: str) -> list[Plan]:
    """The plans of a text: JSON as a whole, else each plan :func:`find_plans` finds in it."""
    if source.startswith("\ufeff"):
        source = source[1:]
    json_error = None
    lead = _LEADING_SPACE.match(source).end()
    if source[lead:lead + 1] in ("[", "{"):
        try:
            return [_parse_lines(unwrap(source), where, name, first=None)]
        except BadInputError as err:  # a transcript that starts with a [: look for a plan in it
            json_error = err
    # a server log: unwrap knows its prefix, Query Text and duration (the words first: a search
    # with the pattern alone walks a large paste character by character)
    if ("duration:" in source or "Query Text:" in source) and _LOG_LINE.search(source):
        return [_parse_lines(unwrap(source), where, name, first=None)]
    ranges = find_plans(source)
    if not ranges:
        if json_error is not None:
            raise json_error
        return [_parse_lines(unwrap(source), where, name, first=None)]
    raw = source.split("\n")
    plans = []
    for first, last in ranges:
        lines = list(zip(range(first, last + 1), raw[first - 1:last], strict=True))
        plans.append(_parse_lines(unwrap(lines), where, name, first=first))
    return plans


def _parse_lines(unwrapped, where: str | None, name: str, *, first: int | None) -> Plan:
    lines, meta = unwrapped
    if not lines:
        raise BadInputError("no plan in it (only headers or frames): expected a plan node line such as "
                            "'Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)'", path=where, line=first)
    head = lines[0][1].lstrip()
    if head.startswith(("[", "{")):
        document = parse_json_lines(lines, path=where, scrub=True)
        plan = build_plan(document, source=name or where or "json", fmt="json", path=where)
    elif head.startswith("<") or head.startswith("- Plan:"):
        raise BadInputError(
            "XML and YAML EXPLAIN formats are not read; use FORMAT JSON or the text format",
            path=where,
            line=lines[0][0],
        )
    else:
        document = parse_text_lines(lines, path=where)
        if not lines_are_clean(map(itemgetter(1), lines)):  # its strings are pieces of the lines
            document = scrub_document(document, copy=False)  # a fresh document: no copy
        plan = build_plan(document, source=name or where or "text", fmt="text", path=where)
    if meta.get("query") and not plan.query:
        plan.query = scrub_statement(meta["query"])
    if "duration_ms" in meta and math.isnan(plan.execution_ms):
        plan.execution_ms = meta["duration_ms"]  # auto_explain's duration is the executor's time
    plan.extra["first_line"] = first if first is not None else lines[0][0]
    return plan


def _check_lines(text: str, where: str | None) -> None:
    """Refuse a text with a line longer than MAX_LINE_CHARS (one pass, no copies)."""
    if len(text) <= MAX_LINE_CHARS:
        return
    start = 0
    number = 1
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if end - start > MAX_LINE_CHARS:
            raise BadInputError(
                f"a line longer than {MAX_LINE_CHARS // (1024 * 1024)} MiB: not a plan", path=where, line=number
            )
        start, number = end + 1, number + 1


def parse_file(path: str | Path) -> Plan:
    """Parse the plan saved in ``path`` (``-`` reads standard input); see :func:`parse`.

    Only a regular file (or ``-``) is read, and at most MAX_PLAN_BYTES of it.
    """
    if str(path) == "-":
        import sys

        stream = getattr(sys.stdin, "buffer", None)
        with input_errors("<stdin>", "is a folder, not a plan file"):
            if stream is None:  # a text stream put in place of stdin
                data = sys.stdin.read(MAX_PLAN_BYTES + 1)
                if len(data) > MAX_PLAN_BYTES:
                    raise BadInputError(f"the input is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB, "
                                        "the most perfkit reads", path="<stdin>")
            else:
                data = read_limited(stream, MAX_PLAN_BYTES, path="<stdin>", what="input")
        return parse(data, path="<stdin>")
    file = require_regular(path, "is a folder, not a plan file")
    with input_errors(file, "is a folder, not a plan file"):
        with open(file, "rb") as handle:
            data = read_limited(handle, MAX_PLAN_BYTES, path=file, what="plan file")
    return parse(data, path=file, name=str(file))
