"""The server-log assessment: every log file read together, its statements ranked, its plans, slow
statements and N+1 patterns as findings; what ``perfkit logs`` and the notebook both render.

``assess(paths, ...)`` returns an Assessment (source ``logs``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from perfkit.assessment import Assessment, merge_findings
from perfkit.errors import BadInputError
from perfkit.logs.analysis import executions, most_frequent, plan_findings, slow_statements, slowest
from perfkit.logs.reader import read

TITLE = "Server log"
NO_EXECUTIONS = (
    "no statement executions in these logs: set log_min_duration_statement (0 logs every "
    "statement) or log_statement = 'all' on the server"
)


def _check(name: str, value, minimum, flag: str) -> None:
    if value < minimum:
        raise BadInputError(f"{name} ({flag}) must be {minimum:g} or more, not {value:g}")


ALL_SHAPES = 10**9  # every shape: the tables are cut after the noise is left out


def _workload_shapes(shapes: pd.DataFrame, include_noise: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shapes that are the application's workload, and the others (empty with ``include_noise``)."""
    from perfkit.statements import noise

    if include_noise or shapes.empty:
        return shapes, shapes.iloc[0:0]
    labels = noise(shapes.assign(query=shapes["normalized"])[["query", "calls"]])
    return shapes[labels == ""], shapes[labels != ""]


def assess(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    prefix: str | None = None,
    skip_bad_lines: bool = False,
    timezone: str | None = None,
    n: int = 10,
    slow_ms: float = 200.0,
    min_repeats: int = 3,
    max_statements: int = 10,
    gap_ms: float = 1000.0,
    include_noise: bool = False,
) -> Assessment:
    """Read PostgreSQL server logs (all files together) and assess their statements.

    Parameters
    ----------
    paths:
        Log files or glob patterns (csvlog, jsonlog, stderr; plain or compressed).
    prefix, skip_bad_lines, timezone:
        As ``perfkit.logs.read``.
    n:
        Rows per ranking, and how many logged plans are analysed.
    slow_ms:
        An execution this long is part of a ``slow_statement`` finding.
    min_repeats, max_statements, gap_ms:
        The N+1 rules (``perfkit.nplusone.from_logs``).

    Returns
    -------
    Assessment
        ``tables``: ``slowest`` (with ``has_plan``; the plans are in ``data["slowest"]``),
        ``most_frequent`` (by calls), ``most_time`` (by total time: pgBadger's "time consuming
        queries"), ``n_plus_one``. ``findings``: N+1, slow statements, plan findings.
        ``facts``: ``files``, ``formats``, ``prefixes``, ``entries``, ``executions``,
        ``skipped_lines``, ``bad_records``. ``notes``: lines skipped (and the first of them),
        plans not read, no executions (and how to log them). ``data``: ``logs`` (the entries),
        ``slowest``.

    The shape tables leave out what is not the application's workload (one-off DDL such as
    ``ALTER SYSTEM``, drivers' probes, perfkit's own reads: :func:`perfkit.statements.noise`)
    unless ``include_noise``, and a note counts them.

    Raises
    ------
    BadInputError
        An option out of range (named), or a file that cannot be read.
    """
    from perfkit import nplusone

    _check("n", n, 1, "-n")
    _check("slow_ms", slow_ms, 0, "--slow-ms")
    _check("min_repeats", min_repeats, 2, "--min-repeats")
    _check("max_statements", max_statements, 1, "--max-statements")
    _check("gap_ms", gap_ms, 0, "--gap-ms")
    logs = read(paths, prefix=prefix, skip_bad_lines=skip_bad_lines, timezone=timezone)
    report = logs.attrs
    ranked = slowest(logs, n=n)
    plans = plan_findings(logs, n=n)
    n_plus_one = nplusone.from_logs(logs, min_repeats=min_repeats, max_statements=max_statements, gap_ms=gap_ms)
    findings = merge_findings(n_plus_one, slow_statements(logs, slow_ms=slow_ms), plans)
    notes = []
    if report["skipped_lines"]:
        first = report["bad_records"][0]
        notes.append(
            f"skipped {report['skipped_lines']:,} unreadable line(s); the first: {first['file']}, "
            f"line {first['line']}: {first['reason']}"
        )
    if plans.attrs.get("skipped"):
        notes.append(plans.attrs["skipped"])
    notes.extend(f"plan not read: {error}" for error in plans.attrs.get("errors", []))
    executed = executions(logs)
    if executed.empty:
        notes.append(NO_EXECUTIONS)
    frequent, noisy = _workload_shapes(most_frequent(logs, n=ALL_SHAPES, by="calls"), include_noise)
    if len(noisy):
        notes.append(f"Left out of the statement tables: {len(noisy)} statement shapes ({noisy['calls'].sum():,.0f} "
                     "executions) that are not the application's workload (one-off DDL, driver probes, admin calls).")
    tables = {
        "slowest": ranked.drop(columns=["plan"]).assign(has_plan=ranked["plan"] != ""),
        "most_frequent": frequent.head(n).reset_index(drop=True),
        "most_time": frequent.sort_values(["total_ms", "calls"], ascending=False, kind="stable").head(n)
        .reset_index(drop=True),
        "n_plus_one": n_plus_one,
    }
    facts = {
        "files": list(report["files"]),
        "formats": dict(report["formats"]),
        "prefixes": dict(report["prefixes"]),
        "entries": int(len(logs)),
        "executions": int(len(executed)),
        "timed_executions": int(executed["duration_ms"].notna().sum()),
        "skipped_lines": int(report["skipped_lines"]),
        "bad_records": list(report["bad_records"]),
    }
    return Assessment("logs", TITLE, findings=findings, tables=tables, facts=facts, notes=notes,
                      data={"logs": logs, "slowest": ranked})
