"""The statements assessment: the costliest statements, what changed since a baseline, regressions.

``assess(current, store=..., since="7d")`` is what ``perfkit top``, ``perfkit diff``, the
workload notebook and the weekly report all render. Statements that are not the application's
workload (perfkit's own reads and EXPLAINs, drivers' catalog probes, one-off DDL and bulk loads)
are labelled by :func:`noise` and left out of the rankings and regressions unless asked for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from perfkit import statements as st
from perfkit.assessment import Assessment
from perfkit.errors import BadInputError
from perfkit.findings import findings_frame

# A statement whose mean per call grew this much (interval vs before) is a regression, when it ran
# at least REGRESSION_MIN_CALLS times and the growth cost at least REGRESSION_MIN_ADDED_MS in the
# interval (a ROLLBACK going from 0.001 to 0.002 ms is no regression).
REGRESSION_WARNING = 1.5
REGRESSION_CRITICAL = 3.0
REGRESSION_MIN_CALLS = 10
REGRESSION_MIN_ADDED_MS = 100.0
STATUSES = ("changed", "new", "reset", "evicted", "unchanged")

NOISE_LABELS = {
    "perfkit": "perfkit's own reads",
    "explain": "EXPLAIN runs",
    "driver": "driver and catalog probes",
    "one-off": "one-off DDL and bulk loads",
    "fk-check": "PostgreSQL's own foreign-key checks",
    "admin": "statistics resets and other admin calls",
}
_ADMIN = re.compile(r"^select\s+(?:pg_catalog\.|public\.)?(?:pg_stat_statements_reset|pg_stat_reset\w*|pg_reload_conf|"
                    r"pg_terminate_backend|pg_cancel_backend|pg_switch_wal|pg_create_restore_point)\s*\(", re.IGNORECASE)
# the referential-integrity query PostgreSQL runs for each row a foreign key checks (ri_triggers.c)
_OWN_PREPARED = re.compile(r"^(?:prepare|execute|deallocate)\s+perfkit_\w+", re.IGNORECASE)
_FK_CHECK = re.compile(r"^select \S+ from only \S+ x where .* for (?:key )?share of x\s*$", re.IGNORECASE | re.DOTALL)
_LEADING_COMMENTS = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*", re.DOTALL)
_CATALOG_RELATION = r"(?:pg_catalog\.\w+|information_schema\.\w+|pg_\w+)"
_RELATIONS = re.compile(r"\b(?:from|join)\s+(?!\()([\w.\"]+)", re.IGNORECASE)
_DRIVER_BARE = re.compile(
    r"^(?:show\s+\w|set\s+(?:session\s+)?(?:client_encoding|datestyle|extra_float_digits|search_path|"
    r"application_name|timezone|intervalstyle|statement_timeout|lock_timeout)\b|"
    r"select\s+(?:pg_catalog\.)?(?:current_schema|version|current_database|current_setting|set_config|"
    r"pg_backend_pid|txid_current|pg_is_in_recovery)\s*\()",
    re.IGNORECASE,
)
# DDL and maintenance: one-off when run at most ONE_OFF_DDL_CALLS times (migrations, extension
# scripts, a DBA's VACUUM); a bulk load (COPY, INSERT ... SELECT) only when run once
_DDL = re.compile(r"^(?:create|alter|drop|truncate|vacuum|analyze|reindex|cluster|refresh\s+materialized|grant|revoke|"
                  r"comment\s+on|security\s+label)\b", re.IGNORECASE)
_BULK = re.compile(r"^(?:copy\b|insert\s+into\s+[\w.\"]+\s*(?:\([^)]*\)\s*)?select\b)", re.IGNORECASE)
ONE_OFF_DDL_CALLS = 10


def _bare(query) -> str:
    return _LEADING_COMMENTS.sub("", str(query or ""), count=1).lstrip()


def _label(query: str, calls: float) -> str:
    text = str(query or "")
    if text.startswith("/* perfkit */"):
        return "perfkit"
    bare = _bare(text)
    if _OWN_PREPARED.match(bare):  # what perfkit prepares to EXPLAIN or time (explain, verify, the advisor)
        return "perfkit"
    head = bare[:200].lower()
    if head.startswith("explain"):
        return "explain"
    if _FK_CHECK.match(bare):
        return "fk-check"
    if _ADMIN.match(head):
        return "admin"
    if _DRIVER_BARE.match(head):
        return "driver"
    if head.startswith(("select", "with")):
        relations = _RELATIONS.findall(bare)
        if relations and all(re.fullmatch(_CATALOG_RELATION, r.replace('"', ""), re.IGNORECASE) for r in relations):
            return "driver"
    calls = 0 if calls is None or pd.isna(calls) else calls
    if (calls <= ONE_OFF_DDL_CALLS and _DDL.match(bare)) or (calls <= 1 and _BULK.match(bare)):
        return "one-off"
    return ""


def noise(frame: pd.DataFrame) -> pd.Series:
    """Per statement, why it is not the application's workload (a key of :data:`NOISE_LABELS`), or "".

    ``perfkit``: perfkit's own reads (tagged ``/* perfkit */``); ``explain``: EXPLAIN statements;
    ``driver``: SHOW / set-up SETs / ``select current_schema()`` style calls and statements reading
    only the system catalogs (SQLAlchemy's and psycopg's probes); ``one-off``: DDL and maintenance
    run at most ``ONE_OFF_DDL_CALLS`` times, COPY and ``INSERT ... SELECT`` bulk loads run once (in
    a diff: in the interval); ``fk-check``: the
    ``SELECT 1 FROM ONLY t x WHERE ... FOR KEY SHARE OF x`` PostgreSQL runs per row for a foreign
    key (with ``pg_stat_statements.track = all``; their time is in the statement that caused them);
    ``admin``: ``select pg_stat_statements_reset()``, ``pg_reload_conf()``, ``pg_terminate_backend(...)``.
    """
    if frame.empty:
        return pd.Series([], dtype="object", index=frame.index)
    calls = frame["calls"] if "calls" in frame else pd.Series(float("nan"), index=frame.index)
    labels = [_label(q, c) for q, c in zip(frame["query"], calls, strict=True)]
    return pd.Series(labels, index=frame.index, dtype="object")


def noise_note(frame: pd.DataFrame, labels: pd.Series) -> str:
    """``"left out: 12 statements (3.1 s): 8 perfkit's own reads, ..."``, or "" when none."""
    hidden = frame[labels != ""]
    if hidden.empty:
        return ""
    counts = labels[labels != ""].value_counts()
    parts = ", ".join(f"{n} {NOISE_LABELS[label]}" for label, n in counts.items())
    seconds = float(hidden["total_exec_ms"].fillna(0).sum()) / 1000
    return (f"Left out of the rankings: {len(hidden)} statements ({seconds:,.1f} s) that are not the application's "
            f"workload: {parts} (include_noise=True / --all shows them).")


def short_query(query, width: int = 90) -> str:
    """The statement on one line without leading sqlcommenter comments, cut to ``width``."""
    text = " ".join(st.strip_leading_comments(query).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def regressions(changes: pd.DataFrame, *, min_calls: int = REGRESSION_MIN_CALLS,
                min_added_ms: float = REGRESSION_MIN_ADDED_MS, warning: float = REGRESSION_WARNING,
                critical: float = REGRESSION_CRITICAL) -> pd.DataFrame:
    """``regression`` findings: statements whose mean per call in the interval grew past ``warning``x,
    over at least ``min_calls`` calls, costing at least ``min_added_ms`` more than before in the interval."""
    if changes.empty:
        return findings_frame()
    ran = changes[(changes["status"] == "changed") & (changes["calls"].fillna(0) >= min_calls)
                  & (changes["prev_mean_exec_ms"] > 0)]
    rows = []
    for row in ran.to_dict(orient="records"):
        grown = row["mean_exec_ms"] / row["prev_mean_exec_ms"]
        added = float((row["mean_exec_ms"] - row["prev_mean_exec_ms"]) * row["calls"])
        if grown < warning or added < min_added_ms:
            continue
        rows.append({
            "kind": "regression",
            "severity": "critical" if grown >= critical else "warning",
            "subject": short_query(row["query"], 120),
            "evidence": (f"mean {row['mean_exec_ms']:.2f} ms per call over {int(row['calls']):,} calls in the interval, "
                         f"{grown:.1f}x the {row['prev_mean_exec_ms']:.2f} ms before ({added / 1000:,.1f} s more in all)"),
            "recommendation": "Explain it now and compare with its plan before the change (perfkit explain --queryid)",
            "sql": "",
            "benefit_ms": added,
            "queryid": str(row["queryid"]),
        })
    return findings_frame(rows)


def per_call_changes(changes: pd.DataFrame, *, n: int = 3, min_calls: int = REGRESSION_MIN_CALLS,
                     min_change_ms: float = REGRESSION_MIN_ADDED_MS) -> dict:
    """The ``n`` statements whose time per call changed the most in the interval, each way:
    ``{"improved": [...], "slower": [...]}``, each row with ``query``, ``queryid``, ``before_ms``,
    ``after_ms`` (mean per call), ``calls`` and ``change_ms`` (time saved or lost in the interval, at
    least ``min_change_ms``)."""
    if changes.empty or "prev_mean_exec_ms" not in changes:
        return {"improved": [], "slower": []}
    ran = changes[(changes["status"] == "changed") & (changes["calls"].fillna(0) >= min_calls)
                  & (changes["prev_mean_exec_ms"] > 0)]
    delta = (ran["prev_mean_exec_ms"] - ran["mean_exec_ms"]) * ran["calls"]
    delta = delta[delta.abs() >= min_change_ms]

    def rows(order: pd.Series) -> list[dict]:
        return [{"query": short_query(ran.at[i, "query"], 120), "queryid": str(ran.at[i, "queryid"]),
                 "before_ms": float(ran.at[i, "prev_mean_exec_ms"]), "after_ms": float(ran.at[i, "mean_exec_ms"]),
                 "calls": int(ran.at[i, "calls"]), "change_ms": float(abs(delta[i]))} for i in order.index]

    return {"improved": rows(delta[delta > 0].nlargest(n)), "slower": rows(delta[delta < 0].nsmallest(n))}


def statement_rows(frame: pd.DataFrame, width: int = 200) -> list[dict]:
    """The statements of a top/diff frame as JSON-ready rows (queryid as text: it is a signed 64-bit id)."""
    from perfkit.output import to_jsonable

    keep = [c for c in ("queryid", "status", "calls", "total_exec_ms", "mean_exec_ms", "prev_mean_exec_ms",
                        "rows", "io_ms", "temp_blks", "share_total", "noise") if c in frame]
    rows = frame[keep].assign(queryid=frame["queryid"].astype("string"),
                              query=frame["query"].map(lambda q: short_query(q, width)))
    return to_jsonable(rows)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(noise=noise(frame)) if len(frame) else frame.assign(noise=pd.Series(dtype="object"))


def span(hours: float) -> str:
    """A duration in words: ``7.0 days``, ``5.2 h``, ``4 min`` or ``12 s``."""
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.0f} min"
    return f"{hours * 3600:.0f} s"


def _where(path) -> str | None:
    """A stored snapshot's location as a report shows it: a URI (s3://...) as it is, a file absolute."""
    if not path:
        return None
    return str(path) if "://" in str(path) else str(Path(path).resolve())


def assess(current: pd.DataFrame, *, path: str | Path | None = None, store=None, since: str | None = "7d",
           baseline: pd.DataFrame | None = None, baseline_path: str | Path | None = None,
           by: str = "total", n: int = 20, include_noise: bool = False, live: bool = False) -> Assessment:
    """The statements assessment of ``current`` (a snapshot), against a baseline when there is one.

    Parameters
    ----------
    current:
        This run's snapshot (``perfkit.statements.snapshot`` or a stored one).
    path:
        Where ``current`` is stored (for the record), if it is.
    store, since:
        A :class:`perfkit.store.SnapshotStore` and how far back to look for the baseline (the
        stored snapshot nearest to ``since`` before ``current``); ``since=None``: no comparison.
    baseline, baseline_path:
        The earlier snapshot itself, instead of ``store``.
    by, n:
        How to rank (``total``, ``mean``, ``calls``, ``io``, ``temp``) and how many to keep.
    include_noise:
        Rank perfkit's own reads, EXPLAINs, driver probes and one-off DDL like the rest.
    live:
        ``current`` was taken just now from a database (the notes say where the next report's
        baseline will come from).

    Returns
    -------
    Assessment
        ``source="statements"``; tables ``statements`` (top since the statistics were reset) and,
        with a baseline, ``changes`` (top in the interval, with ``status`` and ``prev_mean_exec_ms``);
        findings: ``regression``; facts: ``totals``, ``captured_at``, ``server``, ``top_statements``,
        ``baseline`` (None without one), ``interval``, ``stats_reset``, ``counts``, ``noise``, and with
        a baseline ``improved`` / ``slower`` (:func:`per_call_changes`).
    """
    if by not in st.TOP_ORDERS:
        raise BadInputError(f"--by must be one of {', '.join(st.TOP_ORDERS)}, not {by!r}")
    if n <= 0:
        raise BadInputError(f"-n must be above 0, not {n}")
    snap = _labelled(current)
    workload = snap if include_noise else snap[snap["noise"] == ""]
    ranked = st.top(workload, by=by, n=n, include_perfkit=include_noise)
    totals = st.summarize(workload)
    captured = snap["captured_at"].max() if len(snap) else pd.NaT
    server = str(snap["server"].iloc[0]) if len(snap) and "server" in snap else None
    notes = []
    note = "" if include_noise else noise_note(snap, snap["noise"])
    if note:
        notes.append(note)
    if snap.attrs.get("other_databases"):
        notes.append(f"Statements of database {snap.attrs['database']} only; "
                     f"{snap.attrs['other_databases']} of other databases are in the stored snapshot.")
    hidden = snap.attrs.get("hidden_queries", 0)
    if hidden:
        notes.append(f"{hidden} statements have hidden text: GRANT pg_read_all_stats to this role to see them.")
    facts = {
        "server": server,
        "snapshot": _where(path),
        "captured_at": captured,
        "by": by,
        "totals": totals,
        "top_statements": statement_rows(ranked),
        "top_statements_basis": "since stats reset",
        "noise": {label: int((snap["noise"] == label).sum()) for label in NOISE_LABELS},
        "baseline": None,
    }
    tables = {"statements": ranked}
    assessment = Assessment("statements", "Statement workload", tables=tables, facts=facts, notes=notes,
                            data={"snapshot": snap, "top": ranked})
    before, before_path = baseline, baseline_path
    base_at = None
    if before is None and store is not None and since and server:
        wanted = _since(since)
        now = captured if pd.notna(captured) else pd.Timestamp.now(tz="UTC")
        found = store.baseline(wanted, server, now=now)
        if found is not None:
            before, before_path, base_at = store.load(found.path), found.path, found.captured_at
        else:
            why = f"No stored snapshot of {server} from before this one, so there is no comparison yet."
            if live and getattr(store, "root", None):
                why += f" This run's snapshot is saved in `{store.root}`: the next report compares against it."
            assessment.facts["comparison_note"] = why
    if before is not None:
        _compare(assessment, before, before_path, base_at, since=since, by=by, n=n, include_noise=include_noise)
    return assessment


def _since(since) -> pd.Timedelta:
    from perfkit.store import parse_since

    return parse_since(since) if isinstance(since, str) else pd.Timedelta(since)


def _compare(assessment: Assessment, before: pd.DataFrame, before_path, base_at, *, since, by: str, n: int,
             include_noise: bool) -> None:
    snap = assessment.data["snapshot"]
    if snap.attrs.get("database") and "datname" in before:
        before = before[before["datname"] == snap.attrs["database"]]
    changes = _labelled(st.diff(before, snap.drop(columns=["noise"])))
    workload = changes if include_noise else changes[changes["noise"] == ""]
    ranked = st.top(workload[workload["status"] != "unchanged"], by=by, n=n, include_perfkit=include_noise)
    start, end = changes.attrs["interval_start"], changes.attrs["interval_end"]
    base_at = base_at if base_at is not None else start
    hours = (end - base_at).total_seconds() / 3600 if pd.notna(end) and pd.notna(base_at) else float("nan")
    counts = changes["status"].value_counts().to_dict()
    totals = st.summarize(workload)
    notes = [f"Compared with the snapshot of {base_at:%Y-%m-%d %H:%M} UTC, {span(hours)} before this one."]
    if since:
        wanted_h = _since(since).total_seconds() / 3600
        if abs(hours - wanted_h) > max(1.0, 0.25 * wanted_h):
            notes.append(f"That is the stored snapshot nearest to {since} earlier: the interval is "
                         f"{span(hours)}, not {since}.")
    if changes.attrs["stats_reset"]:
        notes.append(f"pg_stat_statements was reset in between ({changes.attrs['reset_evidence']}): "
                     "the figures are the work since the reset, a lower bound.")
    found = regressions(workload)
    assessment.findings = findings_frame(found)
    assessment.facts.update(per_call_changes(workload))
    assessment.tables["changes"] = ranked
    assessment.notes = notes + assessment.notes
    assessment.data.update({"changes": changes, "before": before, "changes_top": ranked})
    assessment.facts.update({
        "baseline": {"snapshot": _where(before_path),
                     "captured_at": base_at, "hours_before": hours},
        "interval": {"start": start, "end": end, "hours": hours, "asked_since": since},
        "stats_reset": bool(changes.attrs["stats_reset"]),
        "reset_evidence": changes.attrs["reset_evidence"],
        "counts": {k: int(counts.get(k, 0)) for k in STATUSES},
        "interval_totals": totals,
        "top_statements": statement_rows(ranked),
        "top_statements_basis": "interval",
    })


__all__ = ["NOISE_LABELS", "assess", "noise", "per_call_changes", "regressions", "short_query", "statement_rows"]
