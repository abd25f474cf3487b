"""The messages PostgreSQL logs about statements, taken apart.

``statement_of(message)`` reads ``duration: ... ms  statement: ...``, ``execute``, ``parse``,
``bind`` and auto_explain ``plan:`` messages into (phase, duration_ms, statement, plan).
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

NAN = math.nan

# phases of a statement's life that PostgreSQL logs; "statement" and "execute" are executions
EXECUTION_PHASES = ("statement", "execute")
_NAMED_PHASES = ("execute", "parse", "bind")
# lines auto_explain writes between "Query Text:" and the plan
_PLAN_HEADER_LINES = ("Query Identifier:", "Query Parameters:")


class Logged(NamedTuple):
    """What one log message says about a statement."""

    phase: str          # statement, execute, parse, bind, plan, duration, or "" for other messages
    duration_ms: float  # NaN when the message has none
    statement: str
    plan: str


_NOTHING = Logged("", NAN, "", "")


def duration_ms(number: str) -> float | None:
    """The milliseconds of a logged duration: ASCII digits with at most one point, as PostgreSQL
    writes them ("%.3f"); None for anything else (float() would take "1e3", "nan", "-5", "1_0",
    "١٢" and spaces; "²" passes isdigit() and fails float())."""
    if number.isascii() and number.replace(".", "", 1).isdigit():
        return float(number)
    return None


def statement_of(message: str) -> Logged:
    """Read a log message about a statement.

    Parameters
    ----------
    message:
        The message field of a log entry (after the level).

    Returns
    -------
    Logged
        ``phase`` is ``""`` for messages that are not about a statement (checkpoints,
        connections...).
    """
    if not message:
        return _NOTHING
    duration = NAN
    rest = message
    if message.startswith("duration: "):
        end = message.find(" ms", 10)
        if end < 0:
            return _NOTHING
        duration = duration_ms(message[10:end])
        if duration is None:
            return _NOTHING
        rest = message[end + 3:]
        if not rest.strip():
            return Logged("duration", duration, "", "")
        if not rest.startswith("  "):
            return Logged("", duration, "", "")
        rest = rest[2:]
    if rest.startswith("statement: "):
        return Logged("statement", duration, rest[11:], "")
    if rest.startswith("plan:"):
        statement, plan = split_plan(rest[5:].lstrip("\n"))
        return Logged("plan", duration, statement, plan)
    for phase in _NAMED_PHASES:
        if rest.startswith(phase + " "):
            colon = rest.find(": ", len(phase) + 1)
            if colon < 0:
                return Logged("", duration, "", "")
            return Logged(phase, duration, rest[colon + 2:], "")
    return Logged("", duration, "", "") if not math.isnan(duration) else _NOTHING


def split_plan(text: str) -> tuple[str, str]:
    """``(query_text, plan)`` of an auto_explain entry, text or JSON format.

    For JSON the plan is the JSON object as logged; for text, the plan's lines without the
    ``Query Text:`` header. A multi-line query text ends where the first plan node line
    (one with ``(cost=``, ``(actual`` or ``(never executed)``) begins.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            return "", stripped
        query = document.get("Query Text", "") if isinstance(document, dict) else ""
        return str(query or ""), stripped
    lines = text.split("\n")
    if not lines or not lines[0].startswith("Query Text: "):
        return "", text
    first_node = None
    for index in range(1, len(lines)):
        line = lines[index]
        if line.startswith(_PLAN_HEADER_LINES):
            if first_node is None:
                first_node = index
            continue
        if "(cost=" in line or "(actual " in line or "(never executed)" in line:
            # headers such as Query Parameters belong to neither part
            first_node = index if first_node is None else first_node
            break
    else:
        if first_node is None:
            first_node = 1
    query_lines = [lines[0][len("Query Text: "):], *lines[1:first_node]]
    plan_lines = [line for line in lines[first_node:] if not line.startswith(_PLAN_HEADER_LINES)]
    return "\n".join(query_lines), "\n".join(plan_lines)
