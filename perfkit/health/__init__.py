"""Database health: index, table, session and settings checks over the catalog statistics.

``check(engine)`` runs every check (each in its own read-only session) and returns ranked findings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from perfkit import db
from perfkit.errors import BadInputError, PerfkitError, PermissionDenied, QueryTimeout
from perfkit.findings import finding, findings_frame
from perfkit.health import indexes, sessions, settings, tables
from perfkit.health.common import TENANT_COLUMNS

CHECKS: tuple[Callable, ...] = (
    indexes.unused_indexes,
    indexes.duplicate_indexes,
    indexes.missing_fk_indexes,
    indexes.invalid_indexes,
    tables.seq_scan_large_tables,
    tables.missing_tenant_indexes,
    tables.table_bloat,
    tables.vacuum_overdue,
    tables.analyze_overdue,
    tables.low_cache_hit,
    tables.sequence_exhaustion,
    tables.xid_wraparound,
    sessions.connection_saturation,
    sessions.idle_in_transaction,
    sessions.long_running_queries,
    sessions.lock_waits,
    settings.work_mem,
    settings.shared_buffers,
    settings.effective_cache_size,
    settings.random_page_cost,
    settings.autovacuum,
    settings.max_connections,
)

__all__ = ["CHECKS", "TENANT_COLUMNS", "check", "check_names", "route_thresholds", "thresholds"]


def check_names() -> list[str]:
    """The names of the checks, in the order ``check`` runs them."""
    return [fn.__name__ for fn in CHECKS]


def thresholds(checks: Iterable[Callable] = CHECKS) -> dict[str, dict[str, object]]:
    """``{check name: {argument: default}}``: every threshold a check takes."""
    table = {}
    for fn in checks:
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


def check(
    engine,
    *,
    checks: Iterable[Callable] | None = None,
    per_check: Mapping[str, Mapping[str, object]] | None = None,
    **options,
) -> pd.DataFrame:
    """Run the health checks and return their findings, most severe and valuable first.

    Parameters
    ----------
    engine:
        A perfkit engine (:func:`perfkit.db.connect`): read-only sessions whose
        statement_timeout bounds every query of every check.
    checks:
        The check functions to run (default: all of ``CHECKS``).
    per_check:
        Thresholds for one check only: ``{"unused_indexes": {"min_size_bytes": 0}}``.
    **options:
        Thresholds given to every check that takes them, e.g. ``min_rows=0`` or
        ``tenant_columns=("tenant_id", "org_id")``. See :func:`thresholds`.

    Returns
    -------
    pandas.DataFrame
        The Finding columns (DESIGN.md) plus ``check`` and the checks' extra columns. A
        check that lacks a privilege, times out or meets a missing extension gives one
        ``info`` finding (``missing_privilege``, ``check_timeout``, ``check_failed``) and
        the others still run.

    Raises
    ------
    BadInputError
        For a threshold or check name no check knows.
    """
    chosen = tuple(checks) if checks is not None else CHECKS
    routed = route_thresholds(chosen, options, per_check or {})
    rows: list[dict] = []
    for fn in chosen:
        name = fn.__name__
        try:
            with db.session(engine) as conn:
                produced = fn(conn, **routed[name])
        except PerfkitError as err:
            if isinstance(err, BadInputError):
                raise
            rows.append(_skipped(name, err))
            continue
        records = produced.to_dict(orient="records") if isinstance(produced, pd.DataFrame) else list(produced)
        for record in records:
            record.setdefault("check", name)
            rows.append(record)
    return findings_frame(rows)
