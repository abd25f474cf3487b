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


def benefit_value(value) -> float:
    """One estimated benefit as ``pd.to_numeric(errors="coerce")`` reads it: a float, NaN when
    missing or not a number."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def rank_order(rows: list) -> list[int]:
    """The positions of finding ``rows`` (dicts with ``severity`` and ``benefit_ms``) most severe
    first, then by estimated benefit (largest first; none counts as -1), ties in their order: the
    one ranking of findings, as rows (:func:`rank_findings`) and as a frame (:func:`findings_frame`)."""
    unknown = len(SEVERITIES)

    def benefit(value) -> float:
        value = value if value.__class__ is float else benefit_value(value)  # finding() makes floats
        return -1.0 if value != value else value

    keys = [(SEVERITY_RANK.get(row.get("severity"), unknown), -benefit(row.get("benefit_ms"))) for row in rows]
    return sorted(range(len(rows)), key=keys.__getitem__)


def rank_findings(rows: Iterable[Mapping]) -> list:
    """``rows`` in the order of :func:`rank_order` (the order of :func:`findings_frame`), without pandas."""
    rows = list(rows)
    return [rows[i] for i in rank_order(rows)]


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
    order = rank_order(frame[["severity", "benefit_ms"]].to_dict(orient="records"))
    return frame.iloc[order].reset_index(drop=True)


def count_by_severity(findings) -> dict[str, int]:
    """``{"critical": n, "warning": n, "info": n}`` of findings: a frame, or finding dicts."""
    counts = dict.fromkeys(SEVERITIES, 0)
    if findings is None or not len(findings):  # (an empty frame may have no columns at all)
        return counts
    severities = (row.get("severity") for row in findings) if isinstance(findings, list) else findings["severity"]
    for severity in severities:
        if severity in counts:
            counts[severity] += 1
    return counts
