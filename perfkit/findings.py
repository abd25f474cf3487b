"""Findings: the one shape every check returns (DESIGN.md, Finding).

``finding(...)`` builds one row; ``rank_findings(rows)`` orders rows as ``findings_frame(rows)``
orders its ranked DataFrame of them. Only the frame functions import pandas (when first called):
building and ranking findings as dicts stays light.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FINDING_COLUMNS = [
    "kind",
    "severity",
    "subject",
    "evidence",
    "recommendation",
    "sql",
    "benefit_ms",
    "fix",
]

SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def finding(
    kind: str,
    severity: str,
    subject: str,
    evidence: str,
    recommendation: str,
    sql: str = "",
    benefit_ms: float | None = None,
    fix=None,
    **extra,
) -> dict:
    """One finding as a dict with the contract's fields (extra keys are kept as columns).

    ``fix`` is a :class:`perfkit.sql.Fix`; when given, ``sql`` is rendered from it (a check
    passes one or the other, never both).
    """
    if severity not in SEVERITY_RANK:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    row = {
        "kind": kind,
        "severity": severity,
        "subject": subject,
        "evidence": evidence,
        "recommendation": recommendation,
        "sql": (fix.sql if fix is not None and not sql else sql) or "",
        "benefit_ms": float("nan") if benefit_ms is None else float(benefit_ms),
        "fix": fix,
    }
    row.update(extra)
    return row


def rank_findings(rows: Iterable[Mapping]) -> list:
    """``rows`` most severe first, then by estimated benefit (largest first; none counts as -1),
    keeping their order otherwise: the order of :func:`findings_frame`, without pandas."""

    def key(row: Mapping) -> tuple[int, float]:
        try:
            benefit = float(row.get("benefit_ms"))
        except (TypeError, ValueError):
            benefit = math.nan
        if math.isnan(benefit):
            benefit = -1.0
        return SEVERITY_RANK.get(row.get("severity"), len(SEVERITIES)), -benefit

    return sorted(rows, key=key)


def findings_frame(rows: Iterable[Mapping] | pd.DataFrame | None = None) -> pd.DataFrame:
    """A DataFrame of findings, most severe first, then by estimated benefit.

    Always has the contract's columns, also when there is no finding.
    """
    import pandas as pd

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))
    for column in FINDING_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series([None] * len(frame), dtype="float64" if column == "benefit_ms" else "object",
                                      index=frame.index)
    frame["benefit_ms"] = pd.to_numeric(frame["benefit_ms"], errors="coerce")
    frame["sql"] = frame["sql"].fillna("")
    extra = [c for c in frame.columns if c not in FINDING_COLUMNS]
    frame = frame[FINDING_COLUMNS + extra]
    if frame.empty:
        return frame.reset_index(drop=True)
    order = frame["severity"].map(SEVERITY_RANK).fillna(len(SEVERITIES))
    frame = (
        frame.assign(_rank=order, _benefit=frame["benefit_ms"].fillna(-1.0))
        .sort_values(["_rank", "_benefit"], ascending=[True, False], kind="stable")
        .drop(columns=["_rank", "_benefit"])
    )
    return frame.reset_index(drop=True)


def count_by_severity(findings: pd.DataFrame) -> dict[str, int]:
    """``{"critical": n, "warning": n, "info": n}`` for a findings frame."""
    counts = findings["severity"].value_counts() if len(findings) else {}
    return {name: int(counts.get(name, 0)) for name in SEVERITIES}
