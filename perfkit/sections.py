"""Notebook sections: each reads one kind of evidence (live database or sample files) and shows it.

``load_sources(...)`` resolves where evidence comes from; each section returns a displayable Section.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perfkit import db, statements
from perfkit.display import (  # noqa: F401 - figure_png: the notebooks' API
    STATUS_COLOURS,
    code,
    figure_png,
    html_table,
    markdown,
    plural,
    shared_advice,
    status_board,
)
from perfkit.errors import BadInputError, ExtensionMissing, PermissionDenied
from perfkit.fileio import write_atomic
from perfkit.findings import count_by_severity, findings_frame
from perfkit.output import to_jsonable
from perfkit.paths import SHIPPED_SAMPLE, sample_dir, sample_path, shown
from perfkit.statements.assess import short_query
from perfkit.store import SnapshotStore, default_root, parse_since

# The sources a section can lack without failing the report: it says so instead (an input file
# perfkit cannot read is a BadInputError with a path; a bad parameter is not, and fails the run).
MISSING_SOURCE_ERRORS = (ExtensionMissing, PermissionDenied)
TOP_TABLE_COLUMNS = ["queryid", "calls", "total_exec_ms", "mean_exec_ms", "rows", "share_total", "query"]


# -- displaying ----------------------------------------------------------------------------------


def cut(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` rows of ``frame``, remembering how many there were (the table then says
    "The first n of m rows")."""
    shown = frame.head(n).copy()
    shown.attrs["total_rows"] = len(frame)
    return shown


@dataclass
class Section:
    """What a notebook section shows, and what it records for ``summary.json``.

    Attributes
    ----------
    title:
        The section's name (the notebook's markdown cell carries the heading).
    blocks:
        What to show, in order: markdown strings, DataFrames and matplotlib Figures.
    data:
        The section's DataFrames and objects by name, for digging further in a notebook.
    facts:
        JSON-ready values for ``summary.json``.
    findings:
        The section's findings (DESIGN.md Finding shape).
    skipped:
        The one line saying why the section has no content (module or source missing), or "".
    key:
        The section's stable name in ``summary.json`` (``workload``, ``loadtest``, ...).
    assessment:
        The :class:`perfkit.assessment.Assessment` the section renders (None for a skipped one):
        what ``summary.json`` is built from.
    """

    title: str
    blocks: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    findings: pd.DataFrame = field(default_factory=findings_frame)
    skipped: str = ""
    key: str = ""
    assessment: object = None

    @classmethod
    def skip(cls, title: str, why: str) -> Section:
        return cls(title, blocks=[f"*{why}*"], facts={"skipped": why}, skipped=why)

    @classmethod
    def of(cls, assessment, blocks: list, *, key: str, title: str | None = None, data: dict | None = None) -> Section:
        """The section rendering ``assessment``: its findings and facts, its tables and data to dig in."""
        return cls(title or assessment.title, blocks, data={**assessment.tables, **assessment.data, **(data or {})},
                   facts=assessment.facts, findings=assessment.findings, skipped=assessment.skipped, key=key,
                   assessment=assessment)

    def __getitem__(self, name: str):
        return self.data[name]

    @property
    def headline(self) -> str:
        """The section in one line: its first sentence (markdown marks removed), or why it is empty."""
        if self.skipped:
            return self.skipped
        first = next((b for b in self.blocks if isinstance(b, str) and not isinstance(b, Html)), "")
        return first.replace("**", "").replace("`", "")

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, Image, Markdown, display

        for block in self.blocks:
            if isinstance(block, Html):
                display(HTML(str(block)))
            elif isinstance(block, str):
                display(Markdown(markdown(block)))
            elif hasattr(block, "savefig"):
                display(Image(data=figure_png(block), format="png"))
            elif isinstance(block, pd.DataFrame):
                display({"text/html": html_table(block, total=block.attrs.get("total_rows")),
                         "text/plain": block.to_string(index=False, max_rows=60)},
                        raw=True)
            else:
                display(block)

    def __repr__(self) -> str:
        return f"<Section {self.title!r}: {self.skipped or ', '.join(self.data) or 'empty'}>"


def module_or_none(name: str):
    """``perfkit.<name>`` imported, or None when this installation does not have it."""
    full = f"perfkit.{name}"
    if importlib.util.find_spec(full) is None:
        return None
    return importlib.import_module(full)


def needs(module: str, title: str) -> Section | None:
    """A skipped Section when ``perfkit.<module>`` is missing, else None."""
    if module_or_none(module) is None:
        return Section.skip(title, f"{title}: perfkit.{module} is not in this installation, so this section is empty.")
    return None


def skipped(title: str, why: str, *, src: Sources | None = None, key: str = "", source: str = "") -> Section:
    """A section with nothing to show but ``why``: with a skipped Assessment of ``source`` when one
    is given, recorded under ``key`` when ``src`` writes facts for a report."""
    section = Section.skip(title, why)
    section.key = key
    if source:
        from perfkit.assessment import Assessment

        section.assessment = Assessment.skip(source, title, why)
    return src.keep(section) if src is not None and key else section


def guarded(title: str, build: Callable[[], Section], *, src: Sources | None = None, key: str = "",
            files: Iterable[str | Path] = (), source: str = "") -> Section:
    """Run ``build``; a missing source (extension, permission, file) becomes a one-line skipped Section
    (:func:`skipped`: recorded under ``key`` when ``src`` writes facts, with a skipped Assessment of
    ``source`` when given).

    ``files``: the input files the section reads. When given, a file that cannot be read or
    parsed skips the section too, also when the error does not name the file (a reader's
    BadInputError without a path, an OSError, a damaged compressed stream): the note names the
    files then.
    """
    import lzma
    import zlib

    names = ", ".join(str(f) for f in files)
    try:
        return build()
    except MISSING_SOURCE_ERRORS as err:
        why = f"{title}: {db.redact_text(str(err))}"
    except BadInputError as err:
        if err.path is None and not names:
            raise
        where = "" if err.path is not None else f"{names}: "
        why = f"{title}: {where}{db.redact_text(str(err))}"
    except (OSError, EOFError, zlib.error, lzma.LZMAError, UnicodeDecodeError) as err:
        if not names:
            raise
        where = getattr(err, "filename", None) or names
        detail = getattr(err, "strerror", None) or str(err) or type(err).__name__
        why = f"{title}: {where}: cannot read it ({db.redact_text(' '.join(detail.split()))})"
    return skipped(title, why, src=src, key=key, source=source)


# -- where the evidence comes from ---------------------------------------------------------------
def _paths(value) -> list[Path]:
    if value is None or value == "":
        return []
    if isinstance(value, str | Path):
        value = [part for part in str(value).split(",") if part.strip()]
    return [sample_path(str(v).strip()) for v in value]


class Sources:
    """Where a notebook's evidence comes from: a live database, or the sample files.

    Build it with :func:`load_sources`. The connection string is kept private: ``repr`` and
    every output show it redacted.
    """

    def __init__(self, *, dsn: str, sample: Path, store: Path, loadtests: list[Path], logs: list[Path],
                 plans: list[Path], slo: Path | None, facts_path: Path | None, slo_env: str | None = None):
        self._dsn = dsn
        self.sample = sample
        self.store = SnapshotStore(store)
        self.loadtests = loadtests
        self.logs = logs
        self.plans = plans
        self.slo = slo
        self.slo_env = slo_env
        self.facts_path = facts_path
        self.facts: dict = {}
        self._engine = None
        self._current: tuple[pd.DataFrame, Path | None] | None = None

    @property
    def live(self) -> bool:
        """True when the evidence comes from a database, False for the sample files."""
        return bool(self._dsn)

    @property
    def target(self) -> str:
        """``user@host:port/db`` of the database (no password), or ``sample data``."""
        if not self.live:
            return self._sample_words()
        return self.engine.info["target"]

    @property
    def engine(self):
        """The read-only perfkit engine (live mode only)."""
        if not self.live:
            raise BadInputError("no database: set dsn (or PERFKIT_DSN) to read a live one")
        if self._engine is None:
            self._engine = db.connect(self._dsn, retries=1)  # a scheduled report: one retry
        return self._engine

    def describe(self) -> str:
        where = (f"the live database **{self.target}** (read-only session)" if self.live
                 else f"{self._sample_words()} (real outputs captured from the sandbox; "
                      "set `dsn` or `PERFKIT_DSN` for a live database)")
        parts = [f"Evidence from {where}.", f"Snapshot store: `{shown(self.store.root)}`."]
        parts.append("Load-test files: " + (", ".join(f"`{p.name}`" for p in self.loadtests) or "none given") + ".")
        parts.append("Log files: " + (", ".join(f"`{p.name}`" for p in self.logs) or "none given") + ".")
        return " ".join(parts)

    def _sample_words(self) -> str:
        where = shown(self.sample)
        return where if where == SHIPPED_SAMPLE else f"the sample data in `{where}`"

    def _repr_markdown_(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"<Sources {'live ' + db.redact(self._dsn) if self.live else shown(self.sample)}>"

    # -- the current statement snapshot, shared by the workload sections --------------------
    def current_snapshot(self) -> tuple[pd.DataFrame, Path | None]:
        """This run's snapshot: taken now and saved whole in the store (live), or the sample's latest.

        Live, the frame returned holds the statements of the DSN's database only (the store keeps
        every database's); ``attrs["other_databases"]`` counts the statements left out.
        """
        if self._current is None:
            if self.live:
                # $PERFKIT_SERVER: the server's name in the store (a fleet's per-server report sets it)
                snap = statements.snapshot(self.engine, dsn=self._dsn, server=os.environ.get("PERFKIT_SERVER") or None)
                path = self.store.save(snap) if len(snap) else None
                database = db.scalar(self.engine, "SELECT current_database()")
                mine = snap[snap["datname"] == database].copy()
                mine.attrs = {**snap.attrs, "database": database, "other_databases": int(len(snap) - len(mine))}
                snap = mine
            else:
                latest = self.store.latest()
                snap, path = self.store.load(latest.path), latest.path
            self._current = (snap, path)
        return self._current

    # -- values for summary.json -------------------------------------------------------------
    def keep(self, section: Section) -> Section:
        """Record ``section`` when this run writes facts for a report (what every section does)."""
        return self.record(section) if self.facts_path else section

    def record(self, key_or_section, section: Section | None = None) -> Section:
        """Keep a section's assessment for ``summary.json`` (written to ``facts_path`` at once).

        Sections built from these Sources record themselves; ``record(section)`` (or the older
        ``record(key, section)``) records one built elsewhere. The key is the section's own.
        """
        section = key_or_section if section is None else section
        key = section.key or (key_or_section if isinstance(key_or_section, str) else section.title)
        if section.assessment is not None:
            kept = section.assessment.record()
        else:
            kept = {"source": None, "title": section.title, "skipped": section.skipped or None,
                    "facts": to_jsonable(section.facts), "notes": [],
                    "findings": to_jsonable(findings_frame(section.findings))}
        self.facts[key] = {"key": key, **kept}
        if self.facts_path:
            self.facts_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.facts_path, json.dumps(self.facts, indent=1, default=str))
        return section


def load_sources(dsn: str = "", *, sample: str | Path = "", store: str | Path = "",
                 loadtest: Iterable | str = (), logs: Iterable | str = (), plans: Iterable | str = (),
                 slo: str | Path = "", facts: str | Path = "", slo_env: str = "") -> Sources:
    """Resolve a notebook's parameters into Sources.

    Parameters
    ----------
    dsn:
        A live database; empty means ``$PERFKIT_DSN``, and when that is empty too, the sample data.
    sample:
        The sample-data folder; empty: the sample data shipped with perfkit (``perfkit.paths.sample_dir``).
    store:
        The snapshot store; default the sample's ``store/`` folder, or ``$PERFKIT_STORE`` /
        ``data/snapshots`` for a live database.
    loadtest, logs, plans:
        Files (a list, or one comma-separated string); empty lists mean "none given".
    slo:
        A TOML file of SLO targets; empty for DESIGN.md's defaults.
    slo_env:
        The SLO file's ``[env.NAME]`` targets to judge by; empty means ``$PERFKIT_SLO_ENV``
        (``perfkit report --env`` sets it), and when that is empty too, the file's base targets.
    facts:
        Where sections record their assessments for ``summary.json`` (set by ``perfkit report``;
        default ``$PERFKIT_FACTS``, which the report runner sets for any notebook).

    Returns
    -------
    Sources
        In live mode the database is connected at once, so a wrong DSN fails here.
    """
    resolved = db.resolve_dsn(dsn) if dsn else os.environ.get("PERFKIT_DSN", "")
    if resolved:
        db.resolve_dsn(resolved)  # remember its password for redaction
    sample = sample_path(sample) if sample else sample_dir()
    if store:
        store_root = Path(store)
    else:
        store_root = default_root() if resolved else sample / "store"
    sources = Sources(dsn=resolved, sample=sample, store=store_root, loadtests=_paths(loadtest),
                      logs=_paths(logs), plans=_paths(plans), slo=Path(slo) if slo else None,
                      slo_env=slo_env or os.environ.get("PERFKIT_SLO_ENV") or None,
                      facts_path=Path(facts or os.environ.get("PERFKIT_FACTS", "")) if (facts or os.environ.get("PERFKIT_FACTS")) else None)
    if sources.live:
        sources.engine  # noqa: B018 - connect now: a wrong DSN fails the run here, in one line
    return sources


# -- statements ----------------------------------------------------------------------------------
def _statement_table(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame[[c for c in TOP_TABLE_COLUMNS if c in frame.columns]].copy()
    shown["query"] = shown["query"].map(short_query)
    if "share_total" in shown:
        shown = shown.rename(columns={"share_total": "share of total"})  # a fraction, shown as a percentage
    for column in ("total_exec_ms", "mean_exec_ms"):
        if column in shown:
            shown[column] = shown[column].astype(float).round(3)
    shown["queryid"] = shown["queryid"].astype("string")
    if "rows" in shown:
        shown["rows"] = shown["rows"].round().astype("Int64")
    return shown


def statements_assessment(src: Sources, *, since: str | None, n: int, by: str = "total"):
    """``perfkit.statements.assess`` of this run's snapshot (against ``src.store`` when ``since``)."""
    snap, path = src.current_snapshot()
    return statements.assess(snap, path=path, store=src.store if since else None, since=since, by=by, n=n,
                             live=src.live)


def workload(src: Sources, *, n: int = 10, by: str = "total") -> Section:
    """The costliest statements of this run's snapshot (work since the statistics were last reset).

    Parameters
    ----------
    src:
        Where the evidence comes from.
    n:
        How many statements to show.
    by:
        ``total``, ``mean``, ``calls``, ``io`` or ``temp`` (``perfkit.statements.top``).
    """
    title = "Statement workload"

    def build() -> Section:
        from perfkit.charts.statements import top_statements_bar

        result = statements_assessment(src, since=None, n=n, by=by)
        totals, captured = result.facts["totals"], result.facts["captured_at"]
        ranked = result.tables["statements"]
        blocks = [f"{totals['statements']:,} statements, {totals['calls']:,.0f} calls and "
                  f"{totals['total_exec_ms'] / 1000:,.1f} s of execution since the statistics were last reset "
                  f"(snapshot of {captured:%Y-%m-%d %H:%M} UTC); the top 10 take "
                  f"{totals['top10_share'] * 100:.0f} % of the time."]
        blocks += result.notes
        blocks += [_statement_table(ranked), top_statements_bar(ranked, n=n)]
        return src.keep(Section.of(result, blocks, key="workload", title=title, data={"top": ranked}))

    return guarded(title, build, src=src, key="workload")


def week_over_week(src: Sources, *, since: str = "7d", n: int = 10) -> Section:
    """This run's snapshot against the stored one nearest to ``since`` earlier, or a plain note that there is none.

    Parameters
    ----------
    src:
        Where the evidence comes from (its store holds the earlier snapshots).
    since:
        How far back to compare (``7d``).
    n:
        How many statements to show.
    """
    title = "Week over week"
    parse_since(since)  # a bad value is a bad parameter, not a missing source

    def build() -> Section:
        from perfkit.charts.statements import week_over_week as chart
        from perfkit.statements.assess import (
            REGRESSION_MIN_ADDED_MS,
            REGRESSION_MIN_CALLS,
            REGRESSION_WARNING,
        )

        result = statements_assessment(src, since=since, n=n)
        facts = result.facts
        if facts["baseline"] is None:
            return src.keep(Section.of(result, [facts["comparison_note"]], key="week_over_week", title=title))
        counts, totals = facts["counts"], facts["interval_totals"]
        ranked = result.tables["changes"]
        blocks = list(result.notes)
        blocks.append(f"In the interval: {totals['calls']:,.0f} calls, {totals['total_exec_ms'] / 1000:,.1f} s of execution; "
                      + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("changed", "new", "reset", "evicted", "unchanged"))
                      + " statements.")
        table = _statement_table(ranked)
        table.insert(4, "mean before", ranked["prev_mean_exec_ms"].astype(float).round(3))
        table.insert(0, "status", ranked["status"])
        blocks += [table, chart(ranked, n=n)]
        found = result.findings
        if len(found):
            blocks += [f"{len(found)} statement{'s' if len(found) > 1 else ''} got slower per call:",
                       found[["severity", "subject", "evidence"]]]
        else:
            blocks.append(f"No statement got {REGRESSION_WARNING:g}x slower per call (at least {REGRESSION_MIN_CALLS} "
                          f"calls and {REGRESSION_MIN_ADDED_MS:g} ms more in all).")
        return src.keep(Section.of(result, blocks, key="week_over_week", title=title,
                                   data={"top": ranked, "changes": result.data["changes"]}))

    return guarded(title, build, src=src, key="week_over_week")


# -- summary --------------------------------------------------------------------------------------
def all_findings(sections: Iterable[Section]) -> pd.DataFrame:
    """Every section's findings in one ranked frame (most severe first), with the section's title."""
    frames = [s.findings.assign(section=s.title) for s in sections if len(s.findings)]
    return findings_frame(pd.concat(frames, ignore_index=True) if frames else None)


def overview(sections: Iterable[Section], src: Sources | None = None) -> Section:
    """Findings by severity across ``sections`` and the skipped sections, for the top of a report.

    It renders the sections' assessments; it has no findings of its own (summary.json counts
    each finding once, in its own section).
    """
    sections = list(sections)
    found = all_findings(sections)
    counts = count_by_severity(found)
    blocks = ["Findings: " + ", ".join(f"**{v}** {k}" for k, v in counts.items()) + "."]
    if len(found):
        blocks.append(cut(found[["severity", "kind", "subject", "evidence", "recommendation", "section"]], 15))
    skipped = [s.skipped for s in sections if s.skipped]
    if skipped:
        blocks.append("Not in this report: " + " ".join(skipped))
    section = Section("Overview", blocks, data={"findings": found}, findings=pd.DataFrame(),
                      facts={"findings_by_severity": counts, "skipped_sections": skipped}, key="overview")
    return src.keep(section) if src is not None else section


# -- load tests -----------------------------------------------------------------------------------
SUMMARY_TABLE_COLUMNS = ["endpoint", "requests", "failures", "error_rate", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
COMPARE_TABLE_COLUMNS = ["endpoint", "requests_a", "requests_b", "p95_a", "p95_b", "p95_change",
                         "p95_diff_low", "p95_diff_high", "error_rate_a", "error_rate_b", "rps_a", "rps_b"]


def _rounded(frame: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(3 if "rate" in column or "change" in column else digits)
    return out


LOADTEST_CHARTS = ("latency_over_time", "throughput_over_time", "latency_cdf")


def loadtest(src: Sources, *, charts: Iterable[str] = LOADTEST_CHARTS, skip_bad_lines: bool = False,
             summary_only: bool = False) -> Section:
    """Each load-test file: per-endpoint table, charts and SLO verdicts; the last run against the first.

    Renders ``perfkit.loadtests.assess`` (the assessment ``perfkit loadtest`` prints).

    Parameters
    ----------
    src:
        Its ``loadtests`` files and ``slo`` targets.
    charts:
        Names of ``perfkit.charts`` functions drawn for each run (default: latency over time, throughput
        and failures per interval, and the CDF).
    skip_bad_lines, summary_only:
        As ``perfkit loadtest``'s options of those names.
    """
    title = "Load tests"
    chart_names = list(charts)

    def build() -> Section:
        from perfkit import charts as chart_module
        from perfkit import loadtests

        assessed = loadtests.assess(src.loadtests, slo=src.slo, env=src.slo_env, skip_bad_lines=skip_bad_lines,
                                    summary_only=summary_only)
        if src.live:
            _with_stored_db_time(src, assessed)
        summary, verdicts = assessed.tables["summary"], assessed.tables["slo"]
        blocks = []
        last = len(assessed.facts["per_file"])
        for number, (run, facts) in enumerate(zip(assessed.data["runs"], assessed.facts["per_file"], strict=True), 1):
            word = {"critical": "**critical**", "warning": "**warning**"}.get(facts["slo_verdict"], facts["slo_verdict"])
            judged = f"SLO verdict {word}" if number == last else f"the baseline of the latest run (not judged: {word})"
            blocks.append(f"**{facts['source']}** ({facts['tool']}, {facts['format']}; percentiles from "
                          f"{facts['percentiles_from']}): {judged}.")
            mine = summary[summary["source"] == facts["source"]]
            blocks.append(_rounded(mine[[c for c in SUMMARY_TABLE_COLUMNS if c in mine]].reset_index(drop=True)))
            blocks += [getattr(chart_module, name)(run) for name in chart_names]
            if facts["notes"]:
                blocks.append("Notes: " + "; ".join(facts["notes"]))
        blocks += [f"*{note}*" for note in assessed.notes]
        breaches = verdicts[verdicts["verdict"].isin(["critical", "warning"]) & verdicts["judged"]]
        latest = f" of the latest run ({assessed.facts['per_file'][-1]['source']})" if last > 1 else ""
        blocks.append(f"SLO verdicts{latest} that are not a pass:" if len(breaches) else f"Every SLO verdict{latest} is a pass.")
        if len(breaches):
            blocks.append(_rounded(breaches[["source", "endpoint", "metric", "value", "target", "critical", "verdict"]]))
        data = {"runs": assessed.data["runs"], "verdicts": verdicts}
        facts = {"files": assessed.facts["files"],
                 "slo": verdicts[["source", "endpoint", "metric", "value", "target", "critical", "verdict"]],
                 "slo_verdict": assessed.facts["slo_verdict"]}
        routes = assessed.tables.get("routes")
        if routes is not None:
            blocks.append(f"**Database time per route** of the latest run ({assessed.facts['db_time']['snapshots']}; "
                          "a route's statements are those carrying its request comment):")
            shown = routes.drop(columns=["top_statements"]).assign(
                db_share=routes["db_share"].map(lambda v: "" if pd.isna(v) else f"{min(v, 1) * 100:.0f} %"))
            blocks.append(_rounded(shown))
        comparison = assessed.data.get("comparison")
        if comparison is not None:
            compared = assessed.facts["compared"]
            blocks.append(f"**{compared['run']}** against **{compared['baseline']}** "
                          "(p95 difference with a bootstrap interval, ms):")
            table = assessed.tables["comparison"]
            blocks.append(_rounded(table[[c for c in COMPARE_TABLE_COLUMNS if c in table]]))
            from perfkit.charts.loadtests import comparison_charts

            blocks += comparison_charts(assessed)
            data["comparison"] = comparison
            facts["comparison"] = table[table["endpoint"] == "ALL"]
        return src.keep(Section(title, blocks, data=data, findings=assessed.findings, facts=facts,
                                assessment=assessed, key="loadtest"))

    return _file_section(src, title, "loadtests", src.loadtests, build, key="loadtest",
                         none_given="no load-test file given, so there are no SLO verdicts in this report.")


def _with_stored_db_time(src: Sources, assessed) -> None:
    """Database time per route from the store's snapshots around the latest run, when they are there
    (a note says why not otherwise)."""
    from perfkit import loadtests

    span = loadtests.window(assessed.data["runs"][-1])
    if span is None:
        assessed.notes.append("no database time per route: the latest run's file has no timestamps")
        return
    try:
        before, after = loadtests.bracketing(src.store, *span, server=db.server_id(src.engine, src._dsn))
    except BadInputError as err:
        assessed.notes.append(f"no database time per route: {err}")
        return
    loadtests.with_db_time(assessed, before, after, how="the stored snapshots around the run")


def _worst(verdicts: pd.Series) -> str:
    for word in ("critical", "warning", "pass"):
        if (verdicts == word).any():
            return word
    return "n/a"


# -- health and recommendations -------------------------------------------------------------------
FINDING_TABLE_COLUMNS = ["severity", "kind", "subject", "evidence", "recommendation"]
def read_findings(path: Path) -> pd.DataFrame:
    """A findings frame saved as JSON records (``data/sample/health/*.json``)."""
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise BadInputError(f"not a readable findings file ({str(err).splitlines()[0]})", path=path) from None
    return findings_frame(pd.DataFrame(rows))


def per_kind(shared: dict) -> list[str]:
    """The recommendation every row of a kind shares, said once above the table (:func:`shared_advice`)."""
    if not shared:
        return []
    return ["\n".join(f"- For every {code(kind)}: {text}" for kind, text in shared.items())]


def fix_sql(findings: pd.DataFrame, limit: int = 10) -> str:
    """The fix SQL of the first ``limit`` findings that have one, as a markdown code block."""
    sql = [s.strip() for s in findings["sql"].fillna("") if s.strip()][:limit]
    if not sql:
        return "No finding comes with SQL to run."
    body = "\n".join(s if s.endswith(";") else s + ";" for s in sql)
    return f"The SQL that fixes them (printed, never run by perfkit; check it first):\n\n```sql\n{body}\n```"


def read_frame(path: Path) -> pd.DataFrame:
    """A table saved as JSON records (``data/sample/health/space.json``)."""
    try:
        return pd.DataFrame(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as err:
        raise BadInputError(f"not a readable JSON table ({str(err).splitlines()[0]})", path=path) from None


def health_charts(result) -> list:
    """The health Assessment's ``space`` and ``cache`` tables drawn: the largest tables and indexes
    with their bloat, the cache hit ratios (nothing when the assessment has neither)."""
    from perfkit.charts.health import cache_hit, largest_relations

    blocks = []
    if "space" in result.tables and len(result.tables["space"]):
        blocks += ["Where the space goes:", largest_relations(result.tables["space"])]
    if "cache" in result.tables and len(result.tables["cache"]):
        blocks += ["How often reads are served from shared buffers:", cache_hit(result.tables["cache"])]
    return blocks


def health(src: Sources) -> Section:
    """perfkit.health's Assessment (indexes, tables, maintenance, sessions, settings) rendered.

    Live: ``health.assess`` on the database. Sample data: an Assessment of the findings saved
    from the sandbox (``data/sample/health/findings.json``), each finding's area from its kind.
    """
    title = "Database health"
    missing = needs("health", title)
    if missing:
        return missing

    def build() -> Section:
        from perfkit import health as checks
        from perfkit.assessment import Assessment

        if src.live:
            result = checks.assess(src.engine)
            where = f"the checks of perfkit.health on {src.target}"
        else:
            found = read_findings(src.sample / "health" / "findings.json")
            found["area"] = found["kind"].map(checks.area_for_kind)
            saved_checks = src.sample / "health" / "checks.json"  # the checks the saved run had
            ran = json.loads(saved_checks.read_text()) if saved_checks.exists() else None
            board = checks.board(found, ran=ran, why_not="not in the saved sample (a check added since)")
            facts = {**checks.health_facts(found, target="sample"), "board_counts": checks.board_counts(board)}
            saved = {name: read_frame(src.sample / "health" / f"{name}.json") for name in ("space", "cache")
                     if (src.sample / "health" / f"{name}.json").exists()}
            result = Assessment("health", title, findings=found, tables={"board": board, **saved}, facts=facts)
            where = "the findings saved from the sandbox shop (data/sample/health)"
        found, counts = result.findings, result.facts["counts"]
        blocks = [f"{plural(len(found), 'finding')} from {where}: "
                  + ", ".join(f"{n} {k}" for k, n in counts.items()) + "."]
        blocks += [f"*{note}*" for note in result.notes]
        if "board" in result.tables:
            on_board = result.facts.get("board_counts", {})
            blocks.append(f"**Every check** ({plural(len(result.tables['board']), 'check')}: "
                          + ", ".join(f"{n} {status}" for status, n in on_board.items() if n) + "):")
            blocks.append(Html(status_board(result.tables["board"])))
        if len(found):
            by_area = pd.DataFrame([{"area": area, **severities} for area, severities in result.facts["by_area"].items()])
            table, shared = shared_advice(found[["area", *FINDING_TABLE_COLUMNS]])
            blocks += [by_area, *per_kind(shared), table, fix_sql(found)]
        blocks += health_charts(result)
        blocks += health_usage_blocks(result)
        data = {"findings": found, "assessment": result}
        if "recommendations" in result.tables:
            data["recommendations"] = result.tables["recommendations"]
        return src.keep(Section.of(result, blocks, key="health", title=title, data=data))

    return guarded(title, build, src=src, key="health")


def health_usage_blocks(result, *, n: int = 15) -> list:
    """The pool sizing, index-usage and per-table autovacuum tables of a health Assessment (a full
    live run has them), as section blocks."""
    from perfkit.health.common import size_text

    blocks: list = []
    pool = result.tables.get("pool_sizing")
    if pool is not None and len(pool):
        f = pool.iloc[0]
        line = (f"**Connection pools.** {f['formula']}"
                + (f": about {f['optimal_active']} active connections keep this server busy ({f['cores_from']})"
                   if pd.notna(f["optimal_active"]) else f" ({f['cores_from']})")
                + f". max_connections {f['max_connections']:,} ({f['reserved']} reserved for superusers); "
                f"{plural(int(f['open']), 'client connection')} open now ({f['active']} active, {f['idle']} idle)")
        if pd.notna(f["configured"]):
            line += (f"; the app's pools: {f['app_instances']} instances × {f['pool_size']} = "
                     f"{int(f['configured']):,}")
        blocks.append(line + ".")
    usage = result.tables.get("index_usage")
    if usage is not None and len(usage):
        shown = usage.assign(size=usage["size_bytes"].map(size_text),
                             scan_share=usage["scan_share"].map(lambda v: "" if pd.isna(v) else f"{v * 100:.1f} %"))
        blocks += ["**Index usage**, most scanned first: scans, the index entries they read and the table rows "
                   "they fetched, and the index's share of its table's scans.",
                   cut(shown[["schema", "table", "index", "idx_scan", "idx_tup_read", "idx_tup_fetch", "size",
                              "scan_share"]].rename(columns={"scan_share": "share of scans"}), n)]
    vacuum = result.tables.get("autovacuum")
    if vacuum is not None and len(vacuum):
        shown = vacuum.assign(size=vacuum["size_bytes"].map(size_text),
                              per_table=vacuum["per_table"].map({True: "yes", False: ""}))
        blocks += ["**Autovacuum per table** (every table of 10 MB or more): how many dead rows autovacuum and "
                   "how many changed rows autoanalyze wait for (threshold + scale factor × rows), against what "
                   "the table has now.",
                   cut(shown[["schema", "table", "rows", "size", "vacuum_scale_factor", "vacuum_waits_for",
                              "n_dead_tup", "analyze_waits_for", "n_mod_since_analyze", "per_table"]], n)]
    return blocks


def recommendations(src: Sources, sections: Iterable[Section], *, n: int = 10) -> Section:
    """perfkit.advice's ranked list: the sections' findings and index advice merged, each fix once.

    Parameters
    ----------
    src:
        Where the evidence comes from (live: index advice on the snapshot's costliest statements).
    sections:
        The sections whose assessments to merge (health, plans, load tests, logs...).
    n:
        How many recommendations to show.
    """
    title = "Recommendations"
    missing = needs("advice", title)
    if missing:
        return missing
    sections = list(sections)

    def build() -> Section:
        from perfkit import advice
        from perfkit.verify import stored_results

        assessments = [s.assessment for s in sections if s.assessment is not None]
        if src.live:
            snap, _ = src.current_snapshot()
            result = advice.assess(assessments, engine=src.engine, statements=snap, n=n,
                                   verified=stored_results(src.store.root))
        else:
            path = src.sample / "health" / "index_advice.json"
            result = advice.assess(assessments, ideas=read_findings(path) if path.exists() else None, n=n)
        ranked = result.tables["recommendations"]
        blocks = [f"{plural(len(ranked), 'recommendation')}, most severe and valuable first"
                  + (f"; the first {n}:" if len(ranked) > n else ":")]
        if len(ranked):
            columns = [c for c in FINDING_TABLE_COLUMNS + ["benefit_ms", "sources"] if c in ranked.columns]
            shown = cut(ranked[columns], n).rename(columns={"benefit_ms": "benefit (ms)"})
            for column in ("evidence", "recommendation"):  # the full text stays in advice["recommendations"]
                shown[column] = shown[column].map(lambda text: short_query(text, 240))
            if "sources" in shown:
                shown["sources"] = shown["sources"].map(lambda v: ", ".join(v) if isinstance(v, list | tuple) else v)
            shown, shared = shared_advice(shown)
            blocks += [*per_kind(shared), shown, fix_sql(ranked, limit=n)]
        return src.keep(Section.of(result, blocks, key="recommendations", title=title))

    return guarded(title, build, src=src, key="recommendations")


# -- plans ----------------------------------------------------------------------------------------
NODE_TABLE_COLUMNS = ["node_id", "node", "self_ms", "pct_total", "total_ms", "actual_rows", "plan_rows", "loops",
                      "misestimate", "shared_hit", "shared_read", "temp_written", "rows_removed_by_filter"]


def plan_nodes_table(plan) -> pd.DataFrame:
    """A plan's nodes for display: the tree indented by depth, times rounded."""
    nodes = plan.nodes
    label = nodes["label"] if "label" in nodes else nodes["node_type"]
    shown = nodes.assign(node=["\u2003" * int(d) + ("\u2192 " if d else "") + str(t) for d, t in zip(nodes["depth"], label, strict=True)])
    shown = shown[[c for c in NODE_TABLE_COLUMNS if c in shown.columns]]
    return _rounded(shown, 3)


def _plan_changes(src, snap: pd.DataFrame, captured) -> tuple[list[dict], dict] | None:
    """Store the captured plans' fingerprints beside the snapshots; what changed since the baseline."""
    from perfkit.plans.history import record_plans

    server = str(snap["server"].iloc[0]) if "server" in snap.columns and len(snap) else ""
    if not server or not captured:
        return None
    try:
        return record_plans(src.store, server, captured)  # the store itself: an s3:// one keeps its keys
    except (OSError, BadInputError):  # a read-only or unreachable store: the report still shows the plans
        return None


def _plan_blocks(plan, heading: str, *, limit: int = 40) -> list:
    from perfkit.plans.picture import plan_svg

    timing = []
    for name, attr in (("planning", "planning_ms"), ("execution", "execution_ms")):
        value = getattr(plan, attr, None)
        if value is not None and not pd.isna(value):
            timing.append(f"{name} {value:,.2f} ms")
    blocks = [f"**{heading}**" + (f" ({', '.join(timing)})" if timing else "") + f": {plural(len(plan.nodes), 'node')}, "
              f"{plural(len(plan.findings), 'finding')}."]
    # the picture: the tree, a self-time bar in each node, the hottest marked, findings on their node
    blocks.append(Html(plan_svg(plan)))
    table = plan_nodes_table(plan)
    blocks.append(table.head(limit))
    if len(table) > limit:
        blocks.append(f"The first {limit} of {len(table)} nodes; `plan.nodes` holds them all.")
    if len(plan.findings):
        blocks.append(plan.findings[FINDING_TABLE_COLUMNS])
    return blocks


def _under(path: str | Path, folder: Path) -> bool:
    """``path`` lies in ``folder`` (the sample data), whatever the relative spelling."""
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False


def plan(src: Sources, *, sql: str = "", queryid: str | int = "", analyze: bool = False,
         compare_with: str | Path = "", what_if: str = "") -> Section:
    """Plan deep-dive: the plan tree with self time per node, its findings, a comparison or a what-if index.

    Parameters
    ----------
    src:
        Live with ``sql`` or ``queryid``: that statement is explained (it wins over plan files, and a
        ``compare_with`` from the sample data is dropped); else the saved plans (``src.plans``);
        else, live, the costliest statements of the snapshot (generic plans, nothing runs). The
        section's first line says which source it used.
    sql, queryid:
        The statement to explain on a live database.
    analyze:
        EXPLAIN ANALYZE (runs the statement, read-only session; data-changing statements refused).
    compare_with:
        A second saved plan of the same statement (e.g. after an index) to compare with the first.
    what_if:
        ``CREATE INDEX ...`` to try with hypopg on a live database (nothing is built).
    """
    title = "Plan deep-dive"
    compare_with = sample_path(compare_with) if compare_with else ""
    missing = needs("plans", title)
    if missing:
        return missing

    def build() -> Section:
        from perfkit import plans

        captured, intro, notes, origin = [], [], [], []
        compare = compare_with
        changes = None
        if src.live and (sql or queryid):  # a live statement given wins over the (sample) plan files
            captured = [(sql or f"queryid {queryid}",
                         plans.explain(src.engine, sql, analyze=analyze) if sql
                         else plans.explain_queryid(src.engine, int(queryid)))]
            what = "`sql`" if sql else f"`queryid` {queryid}"
            origin.append(f"Plan source: {what} explained on {src.target}"
                          + (" with ANALYZE (it ran, read-only)." if analyze else " (EXPLAIN without ANALYZE: nothing ran)."))
            if src.plans:
                origin.append("Not read: " + ", ".join(p.name for p in src.plans) + " (the live statement wins over "
                              "plan files).")
            if compare and _under(compare, src.sample):
                origin.append(f"Not compared with {Path(compare).name}: it is a sample plan, not this statement's.")
                compare = ""
        elif src.plans:
            captured = [(p.name, plans.parse_file(p)) for p in src.plans]
            origin.append("Plan source: " + ", ".join(p.name for p in src.plans)
                          + (" (the sample data)." if all(_under(p, src.sample) for p in src.plans) else " (saved plans)."))
        elif src.live:
            snap, _ = src.current_snapshot()
            captured, notes = plans.costliest(src.engine, snap)
            changes = _plan_changes(src, snap, captured)
            if captured:
                intro.append(f"Generic plans (EXPLAIN without ANALYZE: nothing ran) of the {len(captured)} costliest "
                             "statements by total time.")
        else:
            return skipped(title, f"{title}: no plan file given, and no database to explain statements on.",
                           src=src, key="plan")
        after = plans.parse_file(compare) if compare and captured else None
        tried = None
        if what_if and src.live:
            target_sql = sql or (captured[0][1].query if captured and getattr(captured[0][1], "query", None) else "")
            try:
                tried = plans.whatif(src.engine, target_sql, what_if)
            except MISSING_SOURCE_ERRORS as err:
                notes.append(f"What if `{what_if}`: {db.redact_text(str(err))}")
        elif what_if:
            notes.append("A what-if index needs a live database with hypopg: set `dsn`.")
        existing = None
        if src.live and captured:
            from perfkit.advice import existing_indexes

            existing = existing_indexes(src.engine)
        result = plans.assess(captured, compare_with=after, compare_heading=Path(compare).name if after else "",
                              what_if=tried, notes=notes, existing=existing, plan_changes=changes)
        result.facts["plan_source"] = ("sql" if sql else "queryid") if src.live and (sql or queryid) else \
            "files" if src.plans else "costliest"
        for changed_id, comparison in result.data.get("plan_changes", {}).items():
            result.notes.append(f"queryid {changed_id}: the plan changed since the baseline. {comparison.summary}")
        blocks = list(intro)
        for number, (heading, one) in enumerate(captured):
            shown = _plan_blocks(one, heading)
            # which source was used, right under the first plan's line (that line stays the headline)
            blocks += shown[:1] + (origin if number == 0 else []) + shown[1:]
        if len(result.findings):
            blocks.append(fix_sql(result.tables.get("recommendations", result.findings)))
        blocks += result.notes
        if after is not None:
            comparison = result.data["comparison"]
            blocks += [f"**{captured[0][0]}** against **{Path(compare).name}**: {comparison.summary}"]
            from perfkit.plans.picture import plan_svg

            blocks.append(Html(plan_svg(after, title=f"After: {Path(compare).name}")))
            if isinstance(getattr(comparison, "totals", None), pd.DataFrame):
                blocks.append(_rounded(comparison.totals, 3))
        if tried is not None:
            blocks.append(f"What if `{what_if}`: {tried.summary()}")
        return src.keep(Section.of(result, blocks, key="plan", title=title))

    return guarded(title, build, src=src, key="plan",
                   files=[*src.plans, *([compare_with] if compare_with else [])])


def loadtest_overview(paths: Iterable[str | Path], slo: str | Path | None = None) -> Section:
    """One row per load-test file, whatever the tool: requests, errors, throughput, percentiles, SLO verdict.

    Renders the ``overview`` table of ``perfkit.loadtests.assess``.
    """
    title = "Load-test files"
    missing = needs("loadtests", title)
    if missing:
        return skipped(title, missing.skipped, source="loadtests")
    paths = _paths(list(paths))
    if not paths:
        return skipped(title, f"{title}: no file given.", source="loadtests")

    def build() -> Section:
        from perfkit import loadtests

        assessed = loadtests.assess(paths, slo=slo or None, judge="each")  # unrelated files: each judged; "" = the defaults
        table = _rounded(assessed.tables["overview"].rename(columns={"per_request": "per request",
                                                                      "slo_verdict": "SLO"}))
        runs = {facts["source"]: run for run, facts in zip(assessed.data["runs"], assessed.facts["per_file"],
                                                           strict=True)}
        return Section(title, [f"{len(table)} files, the ALL row of each:", table],
                       data={"runs": runs, "table": table}, findings=assessed.findings,
                       facts={"files": table}, assessment=assessed)

    return guarded(title, build, files=paths, source="loadtests")


def _file_section(src: Sources, title: str, source: str, files: list, build: Callable[[], Section], *, key: str,
                  none_given: str) -> Section:
    """The section ``build()`` makes of the evidence files of ``perfkit.<source>``, guarded; skipped
    when that module is missing or ``files`` is empty (saying ``none_given``), with a skipped
    Assessment then, recorded under ``key``."""
    missing = needs(source, title)
    if missing:
        return skipped(title, missing.skipped, src=src, key=key, source=source)
    if not files:
        return skipped(title, f"{title}: {none_given}", src=src, key=key, source=source)
    return guarded(title, build, src=src, key=key, files=files, source=source)


# -- server logs ----------------------------------------------------------------------------------
_LOG_EVENT_TABLES = (
    ("statement_types", "Statements by type:"),
    ("by_database", "Statements per database:"),
    ("by_user", "Statements per user:"),
    ("by_application", "Statements per application:"),
    ("by_host", "Statements per client host:"),
    ("errors", "Errors by SQLSTATE and message:"),
    ("cancelled", "Cancelled statements:"),
    ("temp_files", "Temporary files (log_temp_files), per statement shape:"),
    ("checkpoints", "Checkpoints (log_checkpoints):"),
    ("autovacuum", "Autovacuum and autoanalyze runs per table:"),
    ("lock_waits", "Lock waits (log_lock_waits):"),
    ("deadlocks", "Deadlocks:"),
    ("connections", "Connections (log_connections):"),
    ("sessions", "Sessions (log_disconnections):"),
    ("connections_per_hour", "Connections per hour:"),
    ("errors_per_hour", "Errors per hour:"),
    ("tenants", "Cost per tenant (its bound tenant_id parameter or request-comment tag; noisy_tenant findings):"),
)
def server_logs(src: Sources, *, n: int = 10, slow_ms: float = 200.0, min_repeats: int = 3,
                max_statements: int = 10, gap_ms: float = 1000.0, prefix: str | None = None,
                skip_bad_lines: bool = False, timezone: str | None = None) -> Section:
    """PostgreSQL's own log: the slowest executions, the busiest statement shapes, N+1 per request, logged plans.

    Renders ``perfkit.logs.assess`` (the assessment ``perfkit logs`` prints).

    Parameters
    ----------
    src:
        Its ``logs`` files (csvlog, jsonlog or stderr; ``.gz`` too), read together.
    n:
        How many executions and shapes to show.
    slow_ms:
        Executions above this are ``slow_statement`` findings.
    min_repeats, max_statements, gap_ms:
        The N+1 rules: a statement shape run ``min_repeats`` times in one request, a request of
        more than ``max_statements`` statements; ``gap_ms`` cuts requests without request comments.
    prefix, skip_bad_lines, timezone:
        As ``perfkit logs``'s options of those names.
    """
    title = "Server log"

    def build() -> Section:
        from perfkit import logs as server_log
        from perfkit.charts import logevents

        assessed = server_log.assess(src.logs, prefix=prefix, skip_bad_lines=skip_bad_lines, timezone=timezone, n=n,
                                     slow_ms=slow_ms, min_repeats=min_repeats, max_statements=max_statements,
                                     gap_ms=gap_ms)
        facts, tables = assessed.facts, assessed.tables
        blocks = [f"{facts['entries']:,} log entries from {', '.join(p.name for p in src.logs)}; "
                  f"{facts['executions']:,} statement executions, {facts['timed_executions']:,} with a duration."]
        blocks += [f"*{note}*" for note in assessed.notes]
        frequent, busiest, slowest = tables["most_frequent"], tables["most_time"], tables["slowest"]
        n_plus_one = tables["n_plus_one"]
        if len(busiest):
            blocks += ["The statement shapes that took the most time:",
                       _rounded(busiest[["calls", "total_ms", "mean_ms", "max_ms", "normalized"]].assign(
                           normalized=busiest["normalized"].map(short_query))),
                       logevents.binned_histogram(tables["duration_bins"], top=3)]
        if len(frequent):
            blocks += ["The statement shapes run most often:",
                       _rounded(frequent[["calls", "total_ms", "mean_ms", "max_ms", "normalized"]].assign(
                           normalized=frequent["normalized"].map(short_query)))]
        if len(slowest):
            blocks += ["The slowest statement shapes, each by its slowest execution:",
                       _rounded(slowest[["ts", "duration_ms", "calls", "database", "statement"]].assign(
                           statement=slowest["statement"].map(short_query)))]
        if len(tables["per_minute"]) > 1:
            blocks += ["Statements per minute:", logevents.per_minute(tables["per_minute"])]
        if len(n_plus_one):
            blocks += ["N+1 patterns per request:", n_plus_one[["severity", "subject", "evidence", "recommendation"]]]
        else:
            blocks.append(f"No request ran the same statement {min_repeats} times or more.")
        for name, caption in _LOG_EVENT_TABLES:
            table = tables.get(name)
            if table is not None and len(table):
                blocks += [caption, _rounded(table.head(n))]
        section = Section(title, blocks,
                       data={"slowest": assessed.data["slowest"], "most_frequent": frequent,
                             "busiest": busiest, "n_plus_one": n_plus_one},
                       findings=assessed.findings,
                       facts={"files": [str(Path(f).resolve()) for f in facts["files"]], "entries": facts["entries"],
                              "executions": facts["executions"], "skipped_lines": facts["skipped_lines"],
                              "notes": list(assessed.notes)},
                       assessment=assessed, key="logs")
        return src.keep(section)

    return _file_section(src, title, "logs", src.logs, build, key="logs", none_given="no log file given.")


# -- the first screen ------------------------------------------------------------------------------
class Html(str):
    """A block of HTML a section shows as it is (the summary's badge)."""

    def _repr_html_(self) -> str:
        return str(self)


SECTION_TITLES = {"workload": "Statement workload", "week_over_week": "Week over week", "plan": "Plans of the costliest statements",
                  "loadtest": "Load tests", "logs": "Server log", "health": "Database health",
                  "recommendations": "Recommendations", "overview": "Findings across the report"}


def _duration(ms: float) -> str:
    """``850 ms``, ``12.4 s``, ``3.2 min``: a time saved or lost, in the unit a person would use."""
    if ms < 1000:
        return f"{ms:,.0f} ms" if ms >= 1 else f"{ms:,.2f} ms"
    if ms < 120_000:
        return f"{ms / 1000:,.1f} s"
    return f"{ms / 60_000:,.1f} min"


def _anchor(title: str) -> str:
    """The id nbconvert and JupyterLab give a markdown heading (spaces become dashes)."""
    return title.replace(" ", "-")


def _first_of(shown: int, total: int, word: str) -> str:
    """``The first 3 of 16 recommendations``, or ``The 2 recommendations`` / ``The recommendation`` when all are shown."""
    if shown < total:
        return f"The first {shown:,} of {plural(total, word)}"
    return f"The {word}" if total == 1 else f"The {plural(total, word)}"


def _top_recommendations(sections: list[Section], by_source: dict) -> pd.DataFrame | None:
    """The ranked recommendations to lead with: advice's (which merges every source), else the
    first section's own (health, plans), else the findings that come with a fix."""
    advice = by_source.get("advice")
    if advice is not None and len(advice.tables.get("recommendations", [])):
        return advice.tables["recommendations"]
    for section in sections:
        table = section.assessment.tables.get("recommendations") if section.assessment is not None else None
        if isinstance(table, pd.DataFrame) and len(table):
            return table
    found = all_findings(sections)
    if len(found) and "sql" in found.columns:
        with_fix = found[found["sql"].fillna("").astype(str).str.strip() != ""]
        if len(with_fix):
            return with_fix
    return None


def summary(sections: Iterable[Section], *, n: int = 3, headings: dict[str, str] | None = None) -> Section:
    """The executive summary that opens a report or a notebook: status, the latest run's SLO verdict,
    findings by severity, the top recommendations with their saving, the largest per-call changes
    since the baseline, the before/after p95 chart when runs are compared, and links to every section.

    It renders the sections' assessments (nothing is computed again) and records nothing.

    Parameters
    ----------
    headings:
        ``{section key: the heading its notebook gives it}`` for the links (default the weekly
        report's headings, :data:`SECTION_TITLES`).
    """
    import html as html_module

    sections = list(sections)
    found = all_findings(sections)
    counts = count_by_severity(found)
    status = "critical" if counts["critical"] else "warning" if counts["warning"] else "ok"
    by_source = {s.assessment.source: s.assessment for s in sections
                 if s.assessment is not None and not s.assessment.skipped}
    load = by_source.get("loadtests")
    verdict = None
    if load is not None and load.facts.get("per_file"):
        latest = load.facts["per_file"][-1]
        verdict = f"{latest['slo_verdict']} ({latest['source']}, the latest run)"
    slo = (f"; SLO verdict: {verdict}" if verdict else "; no load test in this report"
           if any(s.key == "loadtest" for s in sections) else "")
    badge = (f'<p class="perfkit-summary"><span style="background:{STATUS_COLOURS[status]};color:#fff;padding:3px 10px;'
             f'border-radius:4px;font-weight:bold">{status.upper()}</span>&nbsp; '
             + html_module.escape(f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info "
                                  "findings" + slo)
             + "</p>")
    blocks: list = [Html(badge)]
    every = _top_recommendations(sections, by_source)
    if every is not None:
        ranked = every.head(n)
        lines = [f"**{_first_of(len(ranked), len(every), 'recommendation')}:**"]
        for row in ranked.to_dict(orient="records"):
            saving = row.get("benefit_ms")
            saving = f" — estimated benefit {_duration(saving)}" if saving == saving and saving else ""
            fix = f" {code(row['sql'])}" if row.get("sql") else ""
            lines.append(f"1. **{row['severity']}** {row['kind']} on {code(row['subject'])}{saving}.{fix}")
        blocks.append("\n".join(lines))
    elif len(found):  # nothing to do listed: the most severe findings themselves
        top = found.head(n)
        lines = [f"**{_first_of(len(top), len(found), 'finding')}:**"]
        for row in top.to_dict(orient="records"):
            evidence = str(row["evidence"])
            evidence = code(evidence) if "$" in evidence else evidence  # statement text: code, never math
            lines.append(f"1. **{row['severity']}** {row['kind']} on {code(row['subject'])}: {evidence}")
        blocks.append("\n".join(lines))
    statements_ = next((s.assessment for s in sections if s.key == "week_over_week" and s.assessment is not None), None)
    if statements_ is not None and statements_.facts.get("baseline"):
        lines = []
        for word, rows in (("Faster", statements_.facts.get("improved", [])), ("Slower", statements_.facts.get("slower", []))):
            for row in rows:
                lines.append(f"- {word}: {code(short_query(row['query'], 80))} {row['before_ms']:,.2f} → "
                             f"{row['after_ms']:,.2f} ms per call, {row['calls']:,} calls "
                             f"({_duration(row['change_ms'])} {'saved' if word == 'Faster' else 'lost'} in the interval)")
        if lines:
            blocks.append("**Per call since the baseline:**\n\n" + "\n".join(lines))
    if load is not None and "comparison" in load.tables:
        from perfkit.charts.demo import p95_before_after

        table = load.tables["comparison"].rename(columns={"p95_a": "p95_before_ms", "p95_b": "p95_after_ms"})
        compared = load.facts.get("compared", {})
        blocks.append(p95_before_after(table, title="p95 per endpoint, the first run against the latest",
                                       xlabel="p95 latency (ms)",
                                       labels=(compared.get("baseline", "first"), compared.get("run", "latest"))))
    titles = {**SECTION_TITLES, **(headings or {})}
    links = [f"[{titles.get(s.key, s.title)}](#{_anchor(titles.get(s.key, s.title))})"
             + (" (empty)" if s.skipped else "") for s in sections if s.key]
    blocks.append("**Contents:** " + " · ".join(links))
    return Section("Summary", blocks, data={"findings": found},
                   facts={"status": status, "findings_by_severity": counts, "slo_verdict": verdict}, key="summary")


class Weekly:
    """Every section of the weekly report, built once: ``weekly.summary`` first, then
    ``weekly["workload"]``, ``weekly["week_over_week"]``, ... in the notebook's order."""

    def __init__(self, sections: list[Section]):
        self.sections = {s.key: s for s in sections}
        self.summary = summary(sections)

    def __getitem__(self, key: str) -> Section:
        return self.sections[key]

    def __repr__(self) -> str:
        return f"<Weekly {', '.join(self.sections)}>"


def weekly(src: Sources, *, since: str = "7d", n: int = 10, charts: Iterable[str] = ("latency_over_time",)) -> Weekly:
    """The weekly report's sections, in order, and its summary (the notebook shows the summary first)."""
    workload_ = workload(src, n=n)
    wow = week_over_week(src, since=since, n=n)
    plan_ = plan(src)
    load = loadtest(src, charts=list(charts))
    logs_ = server_logs(src)
    health_ = health(src)
    advice = recommendations(src, [health_, plan_, load, logs_, wow])
    parts = [workload_, wow, plan_, load, logs_, health_, advice]
    parts.append(overview(parts, src))
    return Weekly(parts)
