"""The assessment of one evidence source: what every front end renders.

sources (readers: files, the database) -> assessments (this type: findings, tables, facts, notes)
-> renderers (``perfkit.commands`` for the terminal and ``--json``, ``perfkit.sections`` for the
notebooks, ``perfkit.report`` for ``summary.json``). A renderer never computes: the numbers,
the findings and their order are decided once, here.

Findings and tables may be held as lists of row dicts (:class:`perfkit.output.Rows`): the
DataFrame is built only when someone reads it as one (``assessment.findings``,
``assessment.tables[name]``), so that ``perfkit plan`` never imports pandas. Renderers that can
take rows read :attr:`Assessment.finding_rows` and :meth:`Tables.rows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from perfkit.findings import FINDING_COLUMNS, benefit_value, count_by_severity, rank_findings
from perfkit.output import Rows, as_rows, is_frame
from perfkit.output import is_missing as _missing

# The evidence sources an assessment can come from (``Assessment.source``); summary.json and the
# report read facts by source, never by a notebook's variable names or a section's title.
SOURCES = ("statements", "plans", "loadtests", "health", "logs", "advice", "budgets")
RECORD_ROWS = 200  # tables up to this long are kept in a report's record (verdicts, top statements)


class Tables(dict):
    """The tables of an assessment by name: DataFrames, or :class:`~perfkit.output.Rows` turned
    into their DataFrame the first time they are read as a table (``tables[name]``, ``get``,
    ``items``, ``values``, ``dict(tables)``). :meth:`rows` reads one as rows, building nothing."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, Rows):
            value = value.to_frame()
            super().__setitem__(name, value)
        return value

    def get(self, name, default=None):
        return self[name] if name in self else default

    def items(self):
        return [(name, self[name]) for name in self.keys()]

    def values(self):
        return [self[name] for name in self.keys()]

    def __iter__(self):  # defined so that dict(tables) and {**tables} go through __getitem__
        return iter(self.keys())

    def pop(self, name, *default):
        if name in self:
            value = self[name]
            super().pop(name)
            return value
        return super().pop(name, *default)

    def copy(self) -> Tables:
        return Tables((name, super(Tables, self).__getitem__(name)) for name in self.keys())

    def raw(self, name, default=None):
        """The table as stored (Rows or a DataFrame), building nothing."""
        return super().get(name, default)

    def rows(self, name, default=None):
        """Table ``name`` as :class:`~perfkit.output.Rows` (``default`` when there is none)."""
        value = super().get(name)
        return default if value is None else as_rows(value)


def table_rows(tables: dict, name: str, default=None):
    """Table ``name`` of ``tables`` (a :class:`Tables` or a plain dict) as rows, building no DataFrame."""
    if isinstance(tables, Tables):
        return tables.rows(name, default)
    value = tables.get(name)
    return default if value is None else as_rows(value)


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
        The Finding frame (DESIGN.md), ranked; every front end shows these and no others. May be
        given as a list of finding dicts (or :class:`~perfkit.output.Rows`): the frame is built
        when it is first read; :attr:`finding_rows` reads them as ranked rows.
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
    findings: Any = None
    tables: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    skipped: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"unknown evidence source {self.source!r}; one of {', '.join(SOURCES)}")
        if is_frame(self._frame):  # a frame given: ranked now, as always
            from perfkit.findings import findings_frame

            self._frame = findings_frame(self._frame)

    @classmethod
    def skip(cls, source: str, title: str, why: str) -> Assessment:
        return cls(source, title, skipped=why, notes=[why])

    @property
    def finding_rows(self) -> Rows:
        """The findings as ranked row dicts (what the frame's ``to_dict("records")`` holds),
        without building the frame when it is not built yet."""
        if self._frame is not None:
            frame = self._frame
            return Rows(frame.to_dict(orient="records"), list(frame.columns), infer=False, frame=lambda: frame)
        return self._rows

    def _held(self):
        """The findings as held: the frame once there is one (it may have been changed), else the rows."""
        return self._frame if self._frame is not None else self._rows

    @property
    def counts(self) -> dict[str, int]:
        """Findings by severity."""
        return count_by_severity(self._held())

    def to_json(self) -> dict:
        """One JSON object: the versions, the facts, the tables under their names, notes and findings."""
        from perfkit.output import to_jsonable, versioned

        return to_jsonable(versioned({
            "source": self.source,
            **self.facts,
            **{name: _stored(self.tables, name) for name in self.tables.keys()},
            "notes": list(self.notes),
            "skipped": self.skipped or None,
            "findings": finding_records(self._held()),
            "severity_counts": self.counts,
        }))

    def record(self) -> dict:
        """What a report keeps of it for ``summary.json``: source, title, facts, findings, and the
        tables small enough to keep (at most :data:`RECORD_ROWS` rows)."""
        from perfkit.output import to_jsonable

        tables = {}
        for name in self.tables.keys():
            table = _stored(self.tables, name)
            if (isinstance(table, Rows) or is_frame(table)) and len(table) <= RECORD_ROWS:
                tables[name] = table
        return to_jsonable({
            "source": self.source,
            "title": self.title,
            "skipped": self.skipped or None,
            "facts": self.facts,
            "tables": tables,
            "notes": list(self.notes),
            "findings": finding_records(self._held()),
        })


def _stored(tables: dict, name: str):
    return tables.raw(name) if isinstance(tables, Tables) else tables[name]


def _get_findings(self: Assessment):
    if self._frame is None:
        self._frame = self._rows.to_frame()
    return self._frame


def _set_findings(self: Assessment, value) -> None:
    """A DataFrame is kept as given; rows (or None) are ranked as rows, the frame built when read."""
    if is_frame(value):
        self._frame, self._rows = value, None
    else:
        self._frame, self._rows = None, finding_table(value)


Assessment.findings = property(_get_findings, _set_findings,
                               doc="The Finding frame (ranked), built from the finding rows when first read.")


def finding_table(rows=None) -> Rows:
    """Finding dicts as the rows of :func:`perfkit.findings.findings_frame` (:class:`Rows`): most
    severe first, then by estimated benefit (:func:`perfkit.findings.rank_findings`); every
    contract column present (``sql`` "" when missing, ``benefit_ms`` a float or NaN), extra keys
    after them in order of first appearance. The frame they stand for is ``findings_frame(rows)``
    (or the rows' own ``frame``), built only when read."""
    if isinstance(rows, Rows) and getattr(rows, "ranked", False):
        return rows
    made = rows.make_frame if isinstance(rows, Rows) else None
    if is_frame(rows):
        from perfkit.findings import findings_frame

        frame = findings_frame(rows)
        return Rows(frame.to_dict(orient="records"), list(frame.columns), infer=False, frame=lambda: frame)
    given = list(rows or [])
    seen: dict = dict.fromkeys(FINDING_COLUMNS)
    for row in given:
        for key in row:
            seen.setdefault(key, None)
    out = []
    for row in given:
        record = dict(row)
        for column in FINDING_COLUMNS:
            if column not in record:
                record[column] = math.nan if column == "benefit_ms" else None
        record["benefit_ms"] = benefit_value(record["benefit_ms"])
        if _missing(record["sql"]):
            record["sql"] = ""
        out.append(record)
    out = rank_findings(out)  # the order of findings_frame (stable: ties keep their order)

    def frame():
        from perfkit.findings import findings_frame

        return findings_frame(given)

    # rows read from a frame are typed already; dicts are typed as a frame of them would be
    ranked = Rows(out, list(seen), frame=made or frame, infer=rows.infer if isinstance(rows, Rows) else True,
                  dtypes=rows.dtypes if isinstance(rows, Rows) else None)
    ranked.ranked = True
    return ranked


def finding_records(findings) -> list[dict]:
    """Findings (a frame, or finding dicts) as JSON-ready rows (a ``fix`` object as its dict, with
    its rendered ``sql``)."""
    from perfkit.output import to_jsonable

    if is_frame(findings):
        from perfkit.findings import findings_frame

        records = findings_frame(findings).to_dict(orient="records")
    else:
        records = [dict(r) for r in finding_table(findings).records()]
    rows = []
    for row in records:
        fix = row.get("fix")
        if hasattr(fix, "to_dict"):
            row["fix"] = fix.to_dict()
        elif _missing(fix):
            row["fix"] = None
        rows.append(row)
    return to_jsonable(rows)


def finding_keys(findings) -> set[tuple[str, str, str]]:
    """``{(kind, severity, subject)}`` of a findings frame or a list of finding records: the
    identity the front ends must agree on."""
    if is_frame(findings):
        rows = findings.to_dict(orient="records")
    else:
        rows = list(findings or [])
    return {(str(r.get("kind")), str(r.get("severity")), str(r.get("subject"))) for r in rows}


def merge_findings(*frames):
    """Several findings frames (or None) as one ranked frame."""
    import pandas as pd

    from perfkit.findings import findings_frame

    parts = [findings_frame(f) for f in frames if f is not None and len(f)]
    return findings_frame(pd.concat(parts, ignore_index=True) if parts else None)


def merge_finding_rows(*lists) -> Rows:
    """Several lists of finding dicts (or None) as one ranked :class:`~perfkit.output.Rows`."""
    return finding_table([row for rows in lists if rows for row in rows])
