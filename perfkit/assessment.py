"""The assessment of one evidence source: what every front end renders.

sources (readers: files, the database) -> assessments (this type: findings, tables, facts, notes)
-> renderers (``perfkit.commands`` for the terminal and ``--json``, ``perfkit.sections`` for the
notebooks, ``perfkit.report`` for ``summary.json``). A renderer never computes: the numbers,
the findings and their order are decided once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from perfkit.findings import count_by_severity, findings_frame

# The evidence sources an assessment can come from (``Assessment.source``); summary.json and the
# report read facts by source, never by a notebook's variable names or a section's title.
SOURCES = ("statements", "plans", "loadtests", "health", "logs", "advice", "budgets")
RECORD_ROWS = 200  # tables up to this long are kept in a report's record (verdicts, top statements)


@dataclass
class Assessment:
    """What perfkit concluded from one evidence source.

    Attributes
    ----------
    source:
        One of :data:`SOURCES`.
    title:
        What a person calls it ("Statement workload", "Load tests", ...).
    findings:
        The Finding frame (DESIGN.md), ranked; every front end shows these and no others.
    tables:
        The result tables by name (``statements``, ``summary``, ``nodes``, ...): ``--json``
        puts them under their name, the notebook shows them.
    facts:
        JSON-ready values (counts, totals, verdicts, the baseline compared against) for the
        terminal's headline, ``--json`` and ``summary.json``.
    notes:
        Plain sentences a reader must see (skipped lines, a statistics reset in between,
        a missing privilege).
    data:
        Objects for digging further in a notebook (a Plan, load-test runs); not rendered.
    skipped:
        Why there is nothing to assess (a missing source or extension), or "".
    """

    source: str
    title: str
    findings: pd.DataFrame = field(default_factory=findings_frame)
    tables: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    skipped: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown evidence source {self.source!r}; one of {', '.join(SOURCES)}")
        self.findings = findings_frame(self.findings)

    @classmethod
    def skip(cls, source: str, title: str, why: str) -> Assessment:
        return cls(source, title, skipped=why, notes=[why])

    @property
    def counts(self) -> dict[str, int]:
        """Findings by severity."""
        return count_by_severity(self.findings)

    def to_json(self) -> dict:
        """One JSON object: the versions, the facts, the tables under their names, notes and findings."""
        from perfkit.output import to_jsonable, versioned

        return to_jsonable(versioned({
            "source": self.source,
            **self.facts,
            **self.tables,
            "notes": list(self.notes),
            "skipped": self.skipped or None,
            "findings": finding_records(self.findings),
            "severity_counts": self.counts,
        }))

    def record(self) -> dict:
        """What a report keeps of it for ``summary.json``: source, title, facts, findings, and the
        tables small enough to keep (at most :data:`RECORD_ROWS` rows)."""
        from perfkit.output import to_jsonable

        return to_jsonable({
            "source": self.source,
            "title": self.title,
            "skipped": self.skipped or None,
            "facts": self.facts,
            "tables": {name: table for name, table in self.tables.items()
                       if isinstance(table, pd.DataFrame) and len(table) <= RECORD_ROWS},
            "notes": list(self.notes),
            "findings": finding_records(self.findings),
        })


def finding_records(findings: pd.DataFrame) -> list[dict]:
    """Findings as JSON-ready rows (a ``fix`` object as its dict, with its rendered ``sql``)."""
    from perfkit.output import to_jsonable

    frame = findings_frame(findings)
    rows = []
    for row in frame.to_dict(orient="records"):
        fix = row.get("fix")
        if hasattr(fix, "to_dict"):
            row["fix"] = fix.to_dict()
        elif fix is None or (isinstance(fix, float) and pd.isna(fix)):
            row["fix"] = None
        rows.append(row)
    return to_jsonable(rows)


def finding_keys(findings) -> set[tuple[str, str, str]]:
    """``{(kind, severity, subject)}`` of a findings frame or a list of finding records: the
    identity the front ends must agree on."""
    if isinstance(findings, pd.DataFrame):
        rows = findings.to_dict(orient="records")
    else:
        rows = list(findings or [])
    return {(str(r.get("kind")), str(r.get("severity")), str(r.get("subject"))) for r in rows}


def merge_findings(*frames) -> pd.DataFrame:
    """Several findings frames (or None) as one ranked frame."""
    parts = [findings_frame(f) for f in frames if f is not None and len(f)]
    return findings_frame(pd.concat(parts, ignore_index=True) if parts else None)
