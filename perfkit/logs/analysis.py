"""Rankings and findings over logged statements: slowest, most frequent, slow_statement, plans.

Each function takes the DataFrame of ``perfkit.logs.read`` (some also an iterable of chunks).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from perfkit.findings import finding, findings_frame
from perfkit.logs.messages import EXECUTION_PHASES

SLOWEST_COLUMNS = [
    "ts", "duration_ms", "normalized", "statement", "fingerprint", "user", "database",
    "application", "session_id", "pid", "file", "line", "plan",
]
FREQUENT_COLUMNS = [
    "fingerprint", "normalized", "calls", "total_ms", "mean_ms", "max_ms", "example", "first_ts", "last_ts",
]


def executions(logs: pd.DataFrame) -> pd.DataFrame:
    """The rows that are statement executions (``statement`` or ``execute``; an empty text, a
    driver's empty query, is an execution too, as pgBadger counts it)."""
    return logs[logs["phase"].isin(EXECUTION_PHASES)]


def _chunks(logs: pd.DataFrame | Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
    return [logs] if isinstance(logs, pd.DataFrame) else logs


def slowest(logs: pd.DataFrame | Iterable[pd.DataFrame], n: int = 20) -> pd.DataFrame:
    """The ``n`` slowest logged executions, slowest first, each with its auto_explain plan.

    Parameters
    ----------
    logs:
        ``perfkit.logs.read(...)``, or the chunks of ``read_chunks`` for logs larger than memory.
    n:
        How many to return.

    Returns
    -------
    pandas.DataFrame
        Columns ``SLOWEST_COLUMNS``; ``plan`` is the plan auto_explain logged for that same
        execution (same process, just before it), or empty.
    """
    best: list[pd.DataFrame] = []
    for chunk in _chunks(logs):
        timed = executions(chunk)
        timed = timed[timed["duration_ms"].notna()]
        if timed.empty:
            continue
        top = timed.nlargest(n, "duration_ms", keep="first").copy()
        top["plan"] = [_plan_of(chunk, row) for row in top.itertuples(index=False)]
        best.append(top[SLOWEST_COLUMNS])
    if not best:
        return pd.DataFrame(columns=SLOWEST_COLUMNS)
    combined = pd.concat(best, ignore_index=True)
    return combined.nlargest(n, "duration_ms", keep="first").reset_index(drop=True)


def _plan_of(chunk: pd.DataFrame, row) -> str:
    """The plan auto_explain logged for the execution ``row`` (same file and process, before it)."""
    same = (chunk["file"] == row.file) & (chunk["pid"] == row.pid) & (chunk["line"] < row.line)
    plans = chunk[same & (chunk["phase"] == "plan") & (chunk["fingerprint"] == row.fingerprint)]
    if plans.empty:
        return ""
    candidate = plans.loc[plans["line"].idxmax()]
    between = chunk[same & chunk["phase"].isin(EXECUTION_PHASES) & (chunk["line"] > candidate["line"])]
    return "" if len(between) else str(candidate["plan"])


def most_frequent(
    logs: pd.DataFrame | Iterable[pd.DataFrame], n: int = 20, *, by: str = "calls"
) -> pd.DataFrame:
    """Logged statements grouped by shape (fingerprint), most executed first.

    Parameters
    ----------
    logs:
        ``perfkit.logs.read(...)``, or the chunks of ``read_chunks``.
    n:
        How many shapes to return.
    by:
        ``"calls"`` (default) or ``"total_ms"`` (the most time-consuming shapes).

    Returns
    -------
    pandas.DataFrame
        Columns ``FREQUENT_COLUMNS``: ``calls``, ``total_ms``, ``mean_ms`` and ``max_ms`` of
        the executions with a logged duration, an ``example`` statement as logged.
    """
    if by not in ("calls", "total_ms"):
        raise ValueError(f"by must be 'calls' or 'total_ms', not {by!r}")
    parts = []
    for chunk in _chunks(logs):
        runs = executions(chunk)
        if runs.empty:
            continue
        key = runs["fingerprint"].fillna("text:" + runs["normalized"])
        grouped = runs.assign(_key=key).groupby("_key", sort=False)
        parts.append(
            pd.DataFrame(
                {
                    "fingerprint": grouped["fingerprint"].first(),
                    "normalized": grouped["normalized"].first(),
                    "calls": grouped.size(),
                    "total_ms": grouped["duration_ms"].sum(min_count=1),
                    "timed": grouped["duration_ms"].count(),
                    "max_ms": grouped["duration_ms"].max(),
                    "example": grouped["statement"].first(),
                    "first_ts": grouped["ts"].min(),
                    "last_ts": grouped["ts"].max(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=FREQUENT_COLUMNS)
    combined = pd.concat(parts)
    grouped = combined.groupby(level=0, sort=False)
    out = pd.DataFrame(
        {
            "fingerprint": grouped["fingerprint"].first(),
            "normalized": grouped["normalized"].first(),
            "calls": grouped["calls"].sum(),
            "total_ms": grouped["total_ms"].sum(min_count=1),
            "timed": grouped["timed"].sum(),
            "max_ms": grouped["max_ms"].max(),
            "example": grouped["example"].first(),
            "first_ts": grouped["first_ts"].min(),
            "last_ts": grouped["last_ts"].max(),
        }
    )
    out["mean_ms"] = out["total_ms"] / out["timed"].where(out["timed"] > 0)
    order = ["calls", "total_ms"] if by == "calls" else ["total_ms", "calls"]
    out = out.sort_values(order, ascending=False, kind="stable").head(n)
    return out[FREQUENT_COLUMNS].reset_index(drop=True)


def slow_statements(logs: pd.DataFrame, *, slow_ms: float = 200.0, critical_ms: float = 1000.0) -> pd.DataFrame:
    """``slow_statement`` findings: statement shapes with executions of ``slow_ms`` or more.

    Parameters
    ----------
    logs:
        ``perfkit.logs.read(...)``.
    slow_ms:
        An execution this long or longer is slow (200 ms, the field's usual slow-query line).
    critical_ms:
        A shape whose slowest execution reaches this is ``critical``, else ``warning``.

    Returns
    -------
    pandas.DataFrame
        Findings (``perfkit.findings``) with extra columns ``fingerprint``, ``slow_calls``,
        ``max_ms``; ``benefit_ms`` is the time those executions spent above ``slow_ms``.
    """
    runs = executions(logs)
    slow = runs[runs["duration_ms"] >= slow_ms]
    rows = []
    if slow.empty:
        return findings_frame(rows)
    key = slow["fingerprint"].fillna("text:" + slow["normalized"])
    for _, group in slow.groupby(key, sort=False):
        worst = group.loc[group["duration_ms"].idxmax()]
        calls = len(group)
        shape = str(worst["normalized"])
        all_of_shape = runs[runs["fingerprint"] == worst["fingerprint"]] if worst["fingerprint"] else group
        rows.append(
            finding(
                "slow_statement",
                "critical" if worst["duration_ms"] >= critical_ms else "warning",
                _clip(shape, 120),
                f"{calls:,} of {len(all_of_shape):,} logged executions took {slow_ms:,.0f} ms or more "
                f"(slowest {worst['duration_ms']:,.1f} ms at {worst['file']}, line {worst['line']}; "
                f"mean of the slow ones {group['duration_ms'].mean():,.1f} ms)",
                "read its plan (the auto_explain entry in the log, or perfkit explain --sql with the "
                "logged statement) and fix what the plan findings name: a missing index, a sort or "
                "hash that spills, a row misestimate",
                benefit_ms=float((group["duration_ms"] - slow_ms).sum()),
                fingerprint=worst["fingerprint"],
                slow_calls=calls,
                max_ms=float(worst["duration_ms"]),
                statement=str(worst["statement"]),
            )
        )
    return findings_frame(rows)


def plan_findings(logs: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Plan findings for the ``n`` statement shapes whose auto_explain plans took longest.

    Each shape's slowest logged plan is parsed with ``perfkit.plans.parse``.

    Returns
    -------
    pandas.DataFrame
        The plans module's findings plus ``fingerprint``, ``logged_ms``, ``file`` and ``line``
        of the plan entry. ``attrs["skipped"]`` says why plans were not parsed (the plans
        module is absent) and ``attrs["errors"]`` lists plans it could not read.
    """
    plans = logs[(logs["phase"] == "plan") & (logs["plan"].fillna("") != "")]
    result = findings_frame([])
    result.attrs = {"skipped": "", "errors": []}
    if plans.empty:
        return result
    try:
        import perfkit.plans.parse  # noqa: F401 - present in this perfkit? (findings_of_plans uses it)
    except ImportError:
        result.attrs["skipped"] = (
            "plan findings skipped: perfkit.plans (the EXPLAIN parser) is not installed in this "
            f"perfkit; {len(plans):,} auto_explain plans were read but not analysed"
        )
        return result
    key = plans["fingerprint"].fillna("text:" + plans["normalized"])
    worst = plans.loc[plans.assign(_key=key).groupby("_key")["duration_ms"].idxmax().dropna()]
    worst = worst.sort_values("duration_ms", ascending=False).head(n)
    return findings_of_plans((row.plan, row.fingerprint, row.normalized, row.duration_ms, row.file, row.line)
                             for row in worst.itertuples(index=False))


def findings_of_plans(plans) -> pd.DataFrame:
    """The plans module's findings of logged plans, each plan given as ``(plan text, fingerprint,
    statement, logged ms, file, line)``: with those columns, ``attrs["errors"]`` for the plans that
    could not be read (file and line named)."""
    from perfkit.errors import PerfkitError
    from perfkit.plans import parse as parse_plan

    frames, errors = [], []
    for plan, fingerprint, statement, logged_ms, file, line in plans:
        try:
            parsed = parse_plan(plan)
        except PerfkitError as err:
            errors.append(f"{file}, line {line}: {err}")
            continue
        found = findings_frame(parsed.findings)
        if found.empty:
            continue
        frames.append(found.assign(fingerprint=fingerprint, statement=statement, logged_ms=logged_ms,
                                   file=file, line=line))
    result = findings_frame(pd.concat(frames, ignore_index=True)) if frames else findings_frame([])
    result.attrs = {"skipped": "", "errors": errors}
    return result


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
