"""Database health: index, table, maintenance, session and settings checks over the catalog statistics.

``assess(engine)`` runs every check on one per-run :class:`~perfkit.health.context.Context`
(each piece of evidence read once) and returns the Assessment every front end renders;
``check(engine)`` returns just the findings. A check is an SQL read plus a pure judging
function (:class:`~perfkit.health.context.Check`); its area is its module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from perfkit import db
from perfkit.errors import (
    BadInputError,
    DatabaseUnreachable,
    EnvironmentFailure,
    ExtensionMissing,
    PerfkitError,
    PermissionDenied,
    QueryTimeout,
)
from perfkit.findings import finding, findings_frame
from perfkit.health import indexes, maintenance, queries, sessions, settings, space, tables, tenants
from perfkit.health.common import TENANT_COLUMNS
from perfkit.health.context import Check, Context, area_of

CHECKS: tuple[Check, ...] = (
    indexes.unused_indexes,
    indexes.duplicate_indexes,
    indexes.missing_fk_indexes,
    indexes.invalid_indexes,
    tables.seq_scan_large_tables,
    tables.missing_tenant_indexes,
    maintenance.table_bloat,
    maintenance.vacuum_overdue,
    maintenance.analyze_overdue,
    tables.low_cache_hit,
    maintenance.sequence_exhaustion,
    maintenance.xid_wraparound,
    sessions.connection_saturation,
    sessions.pool_sizing,
    sessions.idle_in_transaction,
    sessions.long_running_queries,
    sessions.lock_waits,
    settings.work_mem,
    settings.shared_buffers,
    settings.effective_cache_size,
    settings.random_page_cost,
    settings.autovacuum,
    settings.max_connections,
    queries.large_offset,
    tenants.tenant_plans,
)
AREAS = tuple(dict.fromkeys(c.area for c in CHECKS))
# the area of each finding kind, from the check that gives it (for findings saved without one)
KIND_AREAS = {kind: c.area for c in CHECKS for kind in c.kinds}

__all__ = ["AREAS", "BOARD_STATUSES", "CHECKS", "KIND_AREAS", "TENANT_COLUMNS", "Check", "Context", "assess", "board",
           "check", "check_names", "route_thresholds", "thresholds"]

# A check's line on the board: the worst of its findings (info only is ok), or "not run" when it could not run.
BOARD_STATUSES = ("critical", "warning", "ok", "not run")
NOT_RUN_KINDS = frozenset({"missing_privilege", "check_timeout", "check_failed"})


def check_names() -> list[str]:
    """The names of the checks, in the order ``check`` runs them."""
    return [fn.__name__ for fn in CHECKS]


def thresholds(checks: Iterable[Callable] = CHECKS) -> dict[str, dict[str, object]]:
    """``{check name: {argument: default}}``: every threshold a check takes."""
    table = {}
    for fn in checks:
        if isinstance(fn, Check):
            table[fn.name] = fn.thresholds
            continue
        params = inspect.signature(fn).parameters.values()
        table[fn.__name__] = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return table


def route_thresholds(checks, options: Mapping[str, object], per_check: Mapping[str, Mapping[str, object]]):
    """The keyword arguments of each check; an option no check takes is bad input."""
    known = thresholds(checks)
    unknown = sorted(set(options) - {name for args in known.values() for name in args})
    if unknown:
        raise BadInputError(f"no check takes {', '.join(unknown)}; known thresholds: "
                            + ", ".join(sorted({n for args in known.values() for n in args})))
    routed = {}
    for name, args in known.items():
        routed[name] = {key: value for key, value in options.items() if key in args}
    for name, args in (per_check or {}).items():
        if name not in known:
            raise BadInputError(f"no check is called {name!r}; checks: {', '.join(known)}")
        wrong = sorted(set(args) - set(known[name]))
        if wrong:
            raise BadInputError(f"check {name} takes no {', '.join(wrong)}; it takes {', '.join(known[name]) or 'nothing'}")
        routed[name].update(args)
    return routed


def area_for_kind(kind: str) -> str:
    """The area of a finding kind (``settings`` for any ``setting_*``), ``other`` if no check gives it."""
    if kind in KIND_AREAS:
        return KIND_AREAS[kind]
    return "settings" if str(kind).startswith("setting_") else "other"


def _skipped(name: str, err: PerfkitError) -> dict:
    if isinstance(err, PermissionDenied):
        return finding(
            "missing_privilege",
            "info",
            name,
            f"check {name} did not run: {err}",
            "Grant the perfkit role pg_monitor (it includes pg_read_all_stats and pg_read_all_settings) "
            "so every check can run.",
            check=name,
        )
    if isinstance(err, QueryTimeout):
        return finding(
            "check_timeout",
            "info",
            name,
            f"check {name} did not finish: {err}",
            "Run it again with a longer --statement-timeout, or at a quieter time.",
            check=name,
        )
    return finding("check_failed", "info", name, f"check {name} did not run: {err}", "See the message.", check=name)


def run_checks(ctx: Context, checks, routed, *, failures: list | None = None) -> list[dict]:
    """Every check of ``checks`` on ``ctx``: findings with ``check`` and ``area``; a check meeting a
    PerfkitError (privilege, timeout, extension) gives one info finding and the others run.
    ``failures``, when given, collects ``(check name, error)`` of each check that did not run."""
    rows: list[dict] = []
    for fn in checks:
        name = fn.__name__
        try:
            if isinstance(fn, Check):
                produced = fn(ctx, **routed[name])
            else:  # a plain function(conn, **thresholds): its own session
                with db.session(ctx.engine) as conn:
                    produced = fn(conn, **routed[name])
        except PerfkitError as err:
            if isinstance(err, BadInputError):
                raise
            if failures is not None:
                failures.append((name, err))
            produced = [_skipped(name, err)]
        records = produced.to_dict(orient="records") if isinstance(produced, pd.DataFrame) else list(produced)
        for record in records:
            record.setdefault("check", name)
            record.setdefault("area", area_of(fn))
            rows.append(record)
    return rows


def _chosen(checks):
    return tuple(checks) if checks is not None else CHECKS


def check(
    engine,
    *,
    checks: Iterable[Callable] | None = None,
    per_check: Mapping[str, Mapping[str, object]] | None = None,
    context: Context | None = None,
    **options,
) -> pd.DataFrame:
    """Run the health checks and return their findings, most severe and valuable first.

    Parameters
    ----------
    engine:
        A perfkit engine (:func:`perfkit.db.connect`): read-only sessions whose
        statement_timeout bounds every query of every check.
    checks:
        The checks to run (default: all of ``CHECKS``).
    per_check:
        Thresholds for one check only: ``{"unused_indexes": {"min_size_bytes": 0}}``.
    context:
        The run's evidence (default: a new :class:`Context` on ``engine``).
    **options:
        Thresholds given to every check that takes them, e.g. ``min_rows=0`` or
        ``tenant_columns=("tenant_id", "org_id")``. See :func:`thresholds`.

    Returns
    -------
    pandas.DataFrame
        The Finding columns (DESIGN.md) plus ``check``, ``area`` and the checks' extra columns.
        A check that lacks a privilege, times out or meets a missing extension gives one
        ``info`` finding (``missing_privilege``, ``check_timeout``, ``check_failed``) and
        the others still run.

    Raises
    ------
    BadInputError
        For a threshold or check name no check knows.
    """
    chosen = _chosen(checks)
    routed = route_thresholds(chosen, options, per_check or {})
    ctx = context or Context(engine)
    return findings_frame(run_checks(ctx, chosen, routed))


def assess(
    engine,
    *,
    checks: Iterable[Callable] | None = None,
    per_check: Mapping[str, Mapping[str, object]] | None = None,
    **options,
):
    """The health Assessment of a database: the checks' findings and the merged recommendations.

    Same parameters as :func:`check`. One :class:`Context` feeds every check and the index
    advice, so pg_stat_statements and each catalog table are read once.

    Returns
    -------
    perfkit.assessment.Assessment
        ``source="health"``; ``findings`` (with ``area``); ``tables["recommendations"]``
        (perfkit.advice.recommend on the findings and the statements, each fix once) and
        ``tables["index_advice"]`` (the statements' index proposals, reused by advice.assess),
        ``tables["board"]`` (:func:`board`: every check run, ok / warning / critical / not run);
        for a run of every check also ``index_usage`` (every index: scans, tuples read and fetched,
        size, share of its table's scans), ``autovacuum`` (every table of 10 MB or more: effective
        settings and how many dead or changed rows autovacuum and autoanalyze wait for),
        ``pool_sizing`` (the server's cores, ``(cores × 2) + spindles``, max_connections, open
        connections, the app's pools when given), ``space`` and ``cache`` (perfkit.health.space: the
        largest tables and indexes with their bloat, the cache hit ratios);
        ``facts``: ``target``, ``counts`` by severity, ``by_area``, ``board_counts`` (checks per status); ``notes`` (e.g. no
        statement-based index advice without pg_stat_statements); ``data["context"]``.
    """
    from perfkit import advice
    from perfkit.assessment import Assessment

    chosen = _chosen(checks)
    explicit_tenants = options.get("tenant_columns")
    if explicit_tenants is None and tables.missing_tenant_indexes in chosen:
        options = {**options, "tenant_columns": infer_tenant_columns(engine)}
    routed = route_thresholds(chosen, options, per_check or {})
    ctx = Context(engine)
    failures: list = []
    findings = findings_frame(run_checks(ctx, chosen, routed, failures=failures))
    judge_failures(len(chosen), failures)
    notes = []
    snapshot = None
    if checks is None:  # only the checks asked for (--check): no statement-based index advice beside them
        try:
            snapshot = ctx.snapshot()
            why = ctx.statements_note()
        except PerfkitError as err:
            snapshot, why = None, str(err)
        if snapshot is None:
            notes.append(f"no statement-based index advice ({why or 'pg_stat_statements is not readable'})")
        else:
            found_n1 = statements_n_plus_one(ctx)
            if len(found_n1):
                findings = findings_frame([*findings.to_dict(orient="records"), *found_n1.to_dict(orient="records")])
    try:
        existing = indexes.existing_indexes(ctx)
    except PerfkitError:
        existing = []
    ideas = None
    if snapshot is not None and len(snapshot):
        ideas = advice.index_advice(engine, statements=snapshot, existing=existing, tenant_columns=explicit_tenants)
        notes += [f"index advice: {note}" for note in ideas.attrs.get("notes", [])]  # what was not costed, and why
    recommendations = advice.recommend(health=findings, statements=ideas, existing=existing)
    from perfkit.verify import stored_results

    recommendations = advice.with_verified(recommendations, stored_results())  # what perfkit verify measured
    kept = {"board": board(findings, chosen), "recommendations": recommendations, "index_advice": findings_frame(ideas)}
    if checks is None:
        kept.update(_usage_tables(ctx, routed.get("pool_sizing", {}), notes))
        for name, read in (("space", space.space), ("cache", space.cache)):  # the health charts draw them
            try:
                kept[name] = read(ctx)
            except PerfkitError as err:
                notes.append(f"no {name} overview ({err})")
    facts = health_facts(findings, target=engine.info.get("target", "") if hasattr(engine, "info") else "")
    facts["board_counts"] = board_counts(kept["board"])
    return Assessment(
        "health",
        "Database health",
        findings=findings,
        tables=kept,
        facts=facts,
        notes=notes,
        data={"context": ctx},
    )


def infer_tenant_columns(engine) -> tuple[str, ...]:
    """The tenant columns for the checks when ``--tenant-column`` is not given: the defaults, their
    camelCase forms (``"companyId"``) and the columns with a foreign key to a tenants / companies /
    organizations table (:func:`perfkit.advisor.infer_tenant_columns`)."""
    from perfkit import advisor

    try:
        with db.session(engine) as conn:
            return advisor.infer_tenant_columns(conn)
    except PerfkitError:
        return TENANT_COLUMNS


def statements_n_plus_one(ctx: Context) -> pd.DataFrame:
    """N+1 candidates from pg_stat_statements alone (:func:`perfkit.nplusone.from_statements`): a key
    lookup called about once per row a list statement returned. No logs needed; ``check`` is
    ``n_plus_one_statements``, ``area`` ``workload``."""
    from perfkit import nplusone

    stmts = ctx.statements()
    if stmts is None or not len(stmts):
        return findings_frame([])
    found = nplusone.from_statements(stmts)
    if len(found):
        found = found.assign(check="n_plus_one_statements", area="workload")
    return found
INDEX_USAGE_COLUMNS = ["schema", "table", "index", "idx_scan", "idx_tup_read", "idx_tup_fetch", "size_bytes",
                       "scan_share", "definition"]


def index_usage(ctx: Context) -> pd.DataFrame:
    """Every index with its scans, the tuples its scans read and fetched, its size and its share of
    its table's scans (``INDEX_USAGE_COLUMNS``), most scanned first: the guides' index-usage list."""
    rows = ctx.indexes()
    if rows.empty:
        return pd.DataFrame(columns=INDEX_USAGE_COLUMNS)
    table_rows = ctx.tables()
    frame = rows.copy()
    for column in ("idx_scan", "idx_tup_read", "idx_tup_fetch"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    if len(table_rows):
        scans = table_rows.assign(all_scans=table_rows["seq_scan"].astype(float) + table_rows["idx_scan"].astype(float))
        frame = frame.merge(scans[["schema", "table", "all_scans"]], on=["schema", "table"], how="left")
        frame["scan_share"] = frame["idx_scan"].astype(float) / frame["all_scans"].where(frame["all_scans"] > 0)
    else:
        frame["scan_share"] = float("nan")
    frame = frame.sort_values(["idx_scan", "size_bytes"], ascending=[False, False], na_position="last")
    return frame[INDEX_USAGE_COLUMNS].reset_index(drop=True)


def _usage_tables(ctx: Context, pool_options: Mapping, notes: list) -> dict:
    """``index_usage``, ``autovacuum`` and ``pool_sizing`` for a whole run (a read that fails leaves its table out, noted)."""
    tables = {}
    try:
        tables["index_usage"] = index_usage(ctx)
    except PerfkitError as err:
        notes.append(f"no index-usage table ({err})")
    try:
        tables["autovacuum"] = settings.autovacuum_table(ctx.tables(), ctx.settings())
    except PerfkitError as err:
        notes.append(f"no autovacuum table ({err})")
    try:
        evidence = sessions.pool_sizing.evidence(ctx)
        frames = {k: pd.DataFrame(v) if isinstance(v, list) else v for k, v in evidence.items()}
        taken = {k: v for k, v in pool_options.items() if k in ("cores", "spindles", "app_instances", "pool_size")}
        tables["pool_sizing"] = pd.DataFrame([sessions.pool_figures(frames, **taken)])
    except PerfkitError as err:
        notes.append(f"no pool sizing ({err})")
    return tables


def lost_connection(err: BaseException) -> bool:
    """The error says the server went away (or cannot be reached any more), not that one query failed."""
    if isinstance(err, DatabaseUnreachable):
        return True
    text = str(err).lower()
    return any(words in text for words in ("terminating connection", "server closed the connection",
                                           "connection is closed", "consuming input failed", "connection lost",
                                           "the connection is lost"))


def judge_failures(total: int, failures: list) -> None:
    """Raise EnvironmentFailure (exit 3) when any check failed because the server went away, or when
    more than half of the ``total`` checks failed; a check skipped for a missing privilege or
    extension is a limit of the setup, not a failure."""
    failed = [(name, err) for name, err in failures if not isinstance(err, PermissionDenied | ExtensionMissing)]
    lost = [(name, err) for name, err in failed if lost_connection(err)]
    if lost:
        name, err = lost[0]
        raise EnvironmentFailure(
            f"health: {len(failed)} of {total} checks failed and the connection to the server was lost "
            f"(first in {name}: {err}); the findings of this run cannot be trusted"
        )
    if total and len(failed) * 2 > total:
        name, err = failed[0]
        raise EnvironmentFailure(
            f"health: {len(failed)} of {total} checks failed (more than half; first {name}: {err}); "
            "the findings of this run cannot be trusted"
        )


def board(findings: pd.DataFrame, checks: Iterable[Callable] | None = None, *,
          ran: Iterable[str] | None = None, why_not: str = "did not run") -> pd.DataFrame:
    """The check board (pghero's): one row per check of ``checks`` (default all), passing ones too.

    Columns ``check``, ``area``, ``status`` (one of :data:`BOARD_STATUSES`: the worst severity of the
    check's findings, ``ok`` when it has none or only info ones, ``not run`` when it could not run),
    ``findings`` (how many) and ``subject`` (the first, most severe finding's subject, or why it did
    not run). Problems first (critical, warning, ok, not run), each status in the order the checks run.
    ``ran``: the names of the checks that ran (saved findings of an older run): the others are
    ``not run``, ``why_not`` said.
    """
    frame = findings_frame(findings)
    ran = set(ran) if ran is not None else None
    names = frame["check"] if "check" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    rows = []
    for fn in _chosen(checks):
        name = fn.__name__
        mine = frame[names == name]
        failed = mine[mine["kind"].isin(NOT_RUN_KINDS)]
        real = mine[~mine["kind"].isin(NOT_RUN_KINDS)]
        if ran is not None and name not in ran:
            status, subject = "not run", why_not
        elif len(failed) and not len(real):
            status, subject = "not run", str(failed.iloc[0]["evidence"])
        else:
            severities = set(real["severity"])
            status = "critical" if "critical" in severities else "warning" if "warning" in severities else "ok"
            subject = str(real.iloc[0]["subject"]) if len(real) and status != "ok" else ""
        rows.append({"check": name, "area": area_of(fn), "status": status, "findings": int(len(real)),
                     "subject": subject})
    order = {status: rank for rank, status in enumerate(BOARD_STATUSES)}
    rows.sort(key=lambda row: order[row["status"]])  # stable: problems first, then in the order the checks run
    return pd.DataFrame(rows, columns=["check", "area", "status", "findings", "subject"])


def board_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many checks of a :func:`board` are at each status."""
    return {status: int((table["status"] == status).sum()) for status in BOARD_STATUSES}


def health_facts(findings: pd.DataFrame, *, target: str = "") -> dict:
    """``target``, ``counts`` by severity and ``by_area`` (area -> severity -> count) of health findings."""
    from perfkit.findings import SEVERITIES, count_by_severity

    by_area: dict[str, dict[str, int]] = {}
    if len(findings):
        areas = findings["area"] if "area" in findings.columns else findings["kind"].map(area_for_kind)
        for (area, severity), n in findings.groupby([areas.fillna("other"), findings["severity"]]).size().items():
            by_area.setdefault(str(area), {s: 0 for s in SEVERITIES})[str(severity)] = int(n)
    return {"target": target, "counts": count_by_severity(findings), "by_area": by_area}
