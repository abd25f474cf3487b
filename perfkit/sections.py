"""Notebook sections: each reads one kind of evidence (live database or sample files) and shows it.

``load_sources(...)`` resolves where evidence comes from; each section returns a displayable Section.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perfkit import db, statements
from perfkit.errors import BadInputError, ExtensionMissing, PerfkitError, PermissionDenied
from perfkit.fileio import write_atomic
from perfkit.findings import count_by_severity, findings_frame
from perfkit.output import to_jsonable
from perfkit.store import SnapshotStore, default_root, parse_since

SAMPLE_DIR = Path("data/sample")
# The sources a section can lack without failing the report: it says so instead (an input file
# perfkit cannot read is a BadInputError with a path; a bad parameter is not, and fails the run).
MISSING_SOURCE_ERRORS = (ExtensionMissing, PermissionDenied)
# A statement whose mean per call grew this much (interval vs before) is a regression.
REGRESSION_WARNING = 1.5
REGRESSION_CRITICAL = 3.0
REGRESSION_MIN_CALLS = 10
TOP_TABLE_COLUMNS = ["queryid", "calls", "total_exec_ms", "mean_exec_ms", "rows", "share_total", "query"]


# -- displaying ----------------------------------------------------------------------------------
def figure_png(fig) -> bytes:
    """``fig`` rendered as PNG bytes; the figure is closed in pyplot if pyplot holds it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return buffer.getvalue()


def styled(frame: pd.DataFrame):
    """``frame`` for display: no index, thousands separators, text columns left-aligned."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    styler = frame.style.hide(axis="index").format(precision=2, thousands=",", na_rep="")
    if text:
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
    if "node" in frame.columns:  # a plan tree: keep each node on one line
        styler = styler.set_properties(subset=["node"], **{"white-space": "pre"})
    return styler.set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])


def span(hours: float) -> str:
    """A duration in words: ``7.0 days``, ``5.2 h``, ``4 min`` or ``12 s``."""
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.0f} min"
    return f"{hours * 3600:.0f} s"


def short_query(query, width: int = 90) -> str:
    """The statement on one line without leading sqlcommenter comments, cut to ``width``."""
    text = " ".join(statements.strip_leading_comments(query).split())
    return text if len(text) <= width else text[: width - 1] + "…"


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
    """

    title: str
    blocks: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    findings: pd.DataFrame = field(default_factory=findings_frame)
    skipped: str = ""

    @classmethod
    def skip(cls, title: str, why: str) -> Section:
        return cls(title, blocks=[f"*{why}*"], facts={"skipped": why}, skipped=why)

    def __getitem__(self, name: str):
        return self.data[name]

    def _ipython_display_(self) -> None:
        from IPython.display import Image, Markdown, display

        for block in self.blocks:
            if isinstance(block, str):
                display(Markdown(block))
            elif hasattr(block, "savefig"):
                display(Image(data=figure_png(block), format="png"))
            elif isinstance(block, pd.DataFrame):
                display(styled(block))
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


def guarded(title: str, build: Callable[[], Section]) -> Section:
    """Run ``build``; a missing source (extension, permission, file) becomes a one-line skipped Section."""
    try:
        return build()
    except MISSING_SOURCE_ERRORS as err:
        return Section.skip(title, f"{title}: {db.redact_text(str(err))}")
    except BadInputError as err:
        if err.path is None:
            raise
        return Section.skip(title, f"{title}: {db.redact_text(str(err))}")


# -- where the evidence comes from ---------------------------------------------------------------
def _paths(value) -> list[Path]:
    if value is None or value == "":
        return []
    if isinstance(value, str | Path):
        value = [part for part in str(value).split(",") if part.strip()]
    return [Path(str(v).strip()) for v in value]


class Sources:
    """Where a notebook's evidence comes from: a live database, or the sample files.

    Build it with :func:`load_sources`. The connection string is kept private: ``repr`` and
    every output show it redacted.
    """

    def __init__(self, *, dsn: str, sample: Path, store: Path, loadtests: list[Path], logs: list[Path],
                 plans: list[Path], slo: Path | None, facts_path: Path | None):
        self._dsn = dsn
        self.sample = sample
        self.store = SnapshotStore(store)
        self.loadtests = loadtests
        self.logs = logs
        self.plans = plans
        self.slo = slo
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
            return f"sample data in {self.sample}"
        return self.engine.info["target"]

    @property
    def engine(self):
        """The read-only perfkit engine (live mode only)."""
        if not self.live:
            raise BadInputError("no database: set dsn (or PERFKIT_DSN) to read a live one")
        if self._engine is None:
            self._engine = db.connect(self._dsn)
        return self._engine

    def describe(self) -> str:
        where = (f"the live database **{self.target}** (read-only session)" if self.live
                 else f"the sample data in `{self.sample}` (real outputs captured from the sandbox; "
                      "set `dsn` or `PERFKIT_DSN` for a live database)")
        parts = [f"Evidence from {where}.", f"Snapshot store: `{self.store.root}`."]
        parts.append("Load-test files: " + (", ".join(f"`{p.name}`" for p in self.loadtests) or "none given") + ".")
        parts.append("Log files: " + (", ".join(f"`{p.name}`" for p in self.logs) or "none given") + ".")
        return " ".join(parts)

    def _repr_markdown_(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"<Sources {'live ' + db.redact(self._dsn) if self.live else 'sample ' + str(self.sample)}>"

    # -- the current statement snapshot, shared by the workload sections --------------------
    def current_snapshot(self) -> tuple[pd.DataFrame, Path | None]:
        """This run's snapshot: taken now and saved whole in the store (live), or the sample's latest.

        Live, the frame returned holds the statements of the DSN's database only (the store keeps
        every database's); ``attrs["other_databases"]`` counts the statements left out.
        """
        if self._current is None:
            if self.live:
                snap = statements.snapshot(self.engine, dsn=self._dsn)
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
    def record(self, key: str, section: Section) -> Section:
        """Keep ``section``'s facts and findings under ``key`` (written to ``facts_path`` at once)."""
        self.facts[key] = to_jsonable({
            "title": section.title,
            "skipped": section.skipped or None,
            **section.facts,
            "findings": findings_frame(section.findings)[["kind", "severity", "subject", "evidence"]],
        })
        if self.facts_path:
            self.facts_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.facts_path, json.dumps(self.facts, indent=1, default=str))
        return section


def load_sources(dsn: str = "", *, sample: str | Path = SAMPLE_DIR, store: str | Path = "",
                 loadtest: Iterable | str = (), logs: Iterable | str = (), plans: Iterable | str = (),
                 slo: str | Path = "", facts: str | Path = "") -> Sources:
    """Resolve a notebook's parameters into Sources.

    Parameters
    ----------
    dsn:
        A live database; empty means ``$PERFKIT_DSN``, and when that is empty too, the sample data.
    sample:
        The sample-data folder (``data/sample``).
    store:
        The snapshot store; default the sample's ``store/`` folder, or ``$PERFKIT_STORE`` /
        ``data/snapshots`` for a live database.
    loadtest, logs, plans:
        Files (a list, or one comma-separated string); empty lists mean "none given".
    slo:
        A TOML file of SLO targets; empty for DESIGN.md's defaults.
    facts:
        Where sections record their values for ``summary.json`` (set by ``perfkit report``).

    Returns
    -------
    Sources
        In live mode the database is connected at once, so a wrong DSN fails here.
    """
    resolved = db.resolve_dsn(dsn) if dsn else os.environ.get("PERFKIT_DSN", "")
    if resolved:
        db.resolve_dsn(resolved)  # remember its password for redaction
    sample = Path(sample)
    if store:
        store_root = Path(store)
    else:
        store_root = default_root() if resolved else sample / "store"
    sources = Sources(dsn=resolved, sample=sample, store=store_root, loadtests=_paths(loadtest),
                      logs=_paths(logs), plans=_paths(plans), slo=Path(slo) if slo else None,
                      facts_path=Path(facts) if facts else None)
    if sources.live:
        sources.engine  # noqa: B018 - connect now: a wrong DSN fails the run here, in one line
    return sources


# -- statements ----------------------------------------------------------------------------------
def _statement_table(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame[[c for c in TOP_TABLE_COLUMNS if c in frame.columns]].copy()
    shown["query"] = shown["query"].map(short_query)
    if "share_total" in shown:
        shown["share_total"] = (shown["share_total"] * 100).round(1)
        shown = shown.rename(columns={"share_total": "% of total"})
    for column in ("total_exec_ms", "mean_exec_ms"):
        if column in shown:
            shown[column] = shown[column].astype(float).round(3)
    shown["queryid"] = shown["queryid"].astype("string")
    if "rows" in shown:
        shown["rows"] = shown["rows"].round().astype("Int64")
    return shown


def statement_facts(frame: pd.DataFrame) -> list[dict]:
    """The statements of a top/diff frame as JSON-ready rows for ``summary.json``."""
    keep = [c for c in ("queryid", "calls", "total_exec_ms", "mean_exec_ms", "prev_mean_exec_ms", "share_total", "status") if c in frame]
    rows = frame[keep].assign(query=frame["query"].map(lambda q: short_query(q, 200)),
                              queryid=frame["queryid"].astype("string"))
    return to_jsonable(rows)


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

        snap, path = src.current_snapshot()
        ranked = statements.top(snap, by=by, n=n)
        totals = statements.summarize(snap[~statements.own_statements(snap)])
        captured = snap["captured_at"].max() if len(snap) else pd.NaT
        intro = (f"{totals['statements']:,} statements, {totals['calls']:,.0f} calls and "
                 f"{totals['total_exec_ms'] / 1000:,.1f} s of execution since the statistics were last reset "
                 f"(snapshot of {captured:%Y-%m-%d %H:%M} UTC); the top 10 take "
                 f"{totals['top10_share'] * 100:.0f} % of the time.")
        hidden = snap.attrs.get("hidden_queries", 0)
        blocks = [intro]
        if snap.attrs.get("other_databases"):
            blocks.append(f"Statements of database {snap.attrs['database']} only; "
                          f"{snap.attrs['other_databases']} of other databases are in the stored snapshot.")
        if hidden:
            blocks.append(f"{hidden} statements have hidden text: GRANT pg_read_all_stats to this role to see them.")
        blocks += [_statement_table(ranked), top_statements_bar(ranked, n=n)]
        return Section(title, blocks, data={"snapshot": snap, "top": ranked},
                       facts={"snapshot": str(Path(path).resolve()) if path else None, "captured_at": captured, "totals": totals,
                              "top_statements": statement_facts(ranked)})

    return guarded(title, build)


def regressions(changes: pd.DataFrame, *, min_calls: int = REGRESSION_MIN_CALLS,
                warning: float = REGRESSION_WARNING, critical: float = REGRESSION_CRITICAL) -> pd.DataFrame:
    """``regression`` findings: statements whose mean per call in the interval grew past ``warning``×."""
    ran = changes[(changes["status"] == "changed") & (changes["calls"].fillna(0) >= min_calls)
                  & (changes["prev_mean_exec_ms"] > 0)]
    ratio = ran["mean_exec_ms"] / ran["prev_mean_exec_ms"]
    rows = []
    for (_, row), grown in zip(ran.iterrows(), ratio, strict=True):
        if grown < warning:
            continue
        rows.append({
            "kind": "regression",
            "severity": "critical" if grown >= critical else "warning",
            "subject": short_query(row["query"], 120),
            "evidence": (f"mean {row['mean_exec_ms']:.2f} ms per call over {int(row['calls']):,} calls in the interval, "
                         f"{grown:.1f}x the {row['prev_mean_exec_ms']:.2f} ms before"),
            "recommendation": "Explain it now and compare with its plan before the change (perfkit explain --queryid)",
            "sql": "",
            "benefit_ms": float((row["mean_exec_ms"] - row["prev_mean_exec_ms"]) * row["calls"]),
            "queryid": str(row["queryid"]),
        })
    return findings_frame(rows)


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
    wanted = parse_since(since)

    def build() -> Section:
        from perfkit.charts.statements import week_over_week as chart

        snap, path = src.current_snapshot()
        now = snap["captured_at"].max() if len(snap) else pd.Timestamp.now(tz="UTC")
        server = str(snap["server"].iloc[0]) if len(snap) else None
        base = src.store.baseline(wanted, server, now=now) if server else None
        if base is None:
            why = (f"No stored snapshot of {server} from before this one, so there is no comparison yet. "
                   + (f"This run's snapshot is saved in `{src.store.root}`: the next report compares against it."
                      if src.live else ""))
            return Section(title, [why.strip()], facts={"baseline": None, "note": why.strip()})
        before = src.store.load(base.path)
        if snap.attrs.get("database"):
            before = before[before["datname"] == snap.attrs["database"]]
        changes = statements.diff(before, snap)
        hours = (now - base.captured_at).total_seconds() / 3600
        blocks = [f"Compared with the snapshot of {base.captured_at:%Y-%m-%d %H:%M} UTC, {span(hours)} before this one."]
        wanted_h = wanted.total_seconds() / 3600
        if abs(hours - wanted_h) > max(1.0, 0.25 * wanted_h):
            blocks.append(f"That is the stored snapshot nearest to {since} earlier: the interval is "
                          f"{span(hours)}, not {since}.")
        if changes.attrs["stats_reset"]:
            blocks.append(f"pg_stat_statements was reset in between ({changes.attrs['reset_evidence']}): "
                          "the figures are the work since the reset, a lower bound.")
        counts = changes["status"].value_counts().to_dict()
        totals = statements.summarize(changes[~statements.own_statements(changes)])
        blocks.append(f"In the interval: {totals['calls']:,.0f} calls, {totals['total_exec_ms'] / 1000:,.1f} s of execution; "
                      + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("changed", "new", "reset", "evicted", "unchanged"))
                      + " statements.")
        ranked = statements.top(changes[changes["status"] != "unchanged"], by="total", n=n)
        found = regressions(changes[~statements.own_statements(changes)])
        table = _statement_table(ranked)
        table.insert(4, "mean before", ranked["prev_mean_exec_ms"].astype(float).round(3))
        table.insert(0, "status", ranked["status"])
        blocks += [table, chart(ranked, n=n)]
        if len(found):
            blocks += [f"{len(found)} statement{'s' if len(found) > 1 else ''} got slower per call:",
                       found[["severity", "subject", "evidence"]]]
        else:
            blocks.append(f"No statement got {REGRESSION_WARNING:g}x slower per call (at least {REGRESSION_MIN_CALLS} calls).")
        return Section(title, blocks, data={"changes": changes, "top": ranked, "before": before},
                       findings=found,
                       facts={"baseline": {"snapshot": str(Path(base.path).resolve()), "captured_at": base.captured_at,
                                           "hours_before": hours},
                              "stats_reset": bool(changes.attrs["stats_reset"]), "counts": counts,
                              "totals": totals, "top_statements": statement_facts(ranked)})

    return guarded(title, build)


# -- summary --------------------------------------------------------------------------------------
def all_findings(sections: Iterable[Section]) -> pd.DataFrame:
    """Every section's findings in one ranked frame (most severe first), with the section's title."""
    frames = [s.findings.assign(section=s.title) for s in sections if len(s.findings)]
    return findings_frame(pd.concat(frames, ignore_index=True) if frames else None)


def overview(sections: Iterable[Section]) -> Section:
    """Findings by severity across ``sections`` and the skipped sections, for the top of a report."""
    sections = list(sections)
    found = all_findings(sections)
    counts = count_by_severity(found)
    blocks = ["Findings: " + ", ".join(f"**{v}** {k}" for k, v in counts.items()) + "."]
    if len(found):
        blocks.append(found[["severity", "kind", "subject", "evidence", "recommendation", "section"]].head(15))
    skipped = [s.skipped for s in sections if s.skipped]
    if skipped:
        blocks.append("Not in this report: " + " ".join(skipped))
    return Section("Overview", blocks, data={"findings": found}, findings=pd.DataFrame(),
                   facts={"findings_by_severity": counts, "skipped_sections": skipped})


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


LOADTEST_CHARTS = ("latency_over_time", "latency_cdf")


def loadtest(src: Sources, *, charts: Iterable[str] = LOADTEST_CHARTS) -> Section:
    """Each load-test file: per-endpoint table, charts and SLO verdicts; the last run against the first.

    Parameters
    ----------
    src:
        Its ``loadtests`` files and ``slo`` targets.
    charts:
        Names of ``perfkit.charts`` functions drawn for each run (default: latency over time and the CDF).
    """
    title = "Load tests"
    missing = needs("loadtests", title)
    if missing:
        return missing
    if not src.loadtests:
        return Section.skip(title, f"{title}: no load-test file given, so there are no SLO verdicts in this report.")

    chart_names = list(charts)

    def build() -> Section:
        from perfkit import charts as chart_module
        from perfkit import loadtests

        targets = loadtests.load_targets(src.slo) if src.slo else None
        runs, verdicts, found, blocks = [], [], [], []
        for path in src.loadtests:
            run = loadtests.read(path)
            runs.append(run)
            verdict = loadtests.slo(run, targets)
            verdicts.append(verdict.assign(source=path.name))
            found += [loadtests.slo_findings(verdict, run.summary), loadtests.flags(run)]
            worst = verdict["verdict"].map({"critical": 0, "warning": 1, "pass": 2, "n/a": 3}).min()
            word = {0: "**critical**", 1: "**warning**", 2: "pass", 3: "n/a"}.get(worst, "n/a")
            blocks.append(f"**{path.name}** ({run.tool}, {run.format}; percentiles from {run.percentiles_from}): "
                          f"SLO verdict {word}.")
            blocks.append(_rounded(run.summary[[c for c in SUMMARY_TABLE_COLUMNS if c in run.summary]]))
            blocks += [getattr(chart_module, name)(run) for name in chart_names]
            if run.notes:
                blocks.append("Notes: " + "; ".join(run.notes))
        all_verdicts = pd.concat(verdicts, ignore_index=True)
        breaches = all_verdicts[all_verdicts["verdict"].isin(["critical", "warning"])]
        blocks.append("SLO verdicts that are not a pass:" if len(breaches) else "Every SLO verdict is a pass.")
        if len(breaches):
            blocks.append(_rounded(breaches[["source", "endpoint", "metric", "value", "target", "critical", "verdict"]]))
        data = {"runs": runs, "verdicts": all_verdicts}
        comparison = None
        if len(runs) >= 2:
            comparison = loadtests.compare(runs[0], runs[-1])
            found.append(comparison.findings)
            blocks.append(f"**{src.loadtests[-1].name}** against **{src.loadtests[0].name}** "
                          "(p95 difference with a bootstrap interval, ms):")
            blocks.append(_rounded(comparison.table[[c for c in COMPARE_TABLE_COLUMNS if c in comparison.table]]))
            data["comparison"] = comparison
        frames = [f for f in found if len(f)]
        findings = findings_frame(pd.concat(frames, ignore_index=True) if frames else None)
        facts = {
            "files": [str(p.resolve()) for p in src.loadtests],
            "slo": all_verdicts[["source", "endpoint", "metric", "value", "target", "critical", "verdict"]],
            "slo_verdict": _worst(all_verdicts["verdict"]),
        }
        if comparison is not None:
            facts["comparison"] = comparison.table[comparison.table["endpoint"] == "ALL"]
        return Section(title, blocks, data=data, findings=findings, facts=facts)

    return guarded(title, build)


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


def fix_sql(findings: pd.DataFrame, limit: int = 10) -> str:
    """The fix SQL of the first ``limit`` findings that have one, as a markdown code block."""
    sql = [s.strip() for s in findings["sql"].fillna("") if s.strip()][:limit]
    if not sql:
        return "No finding comes with SQL to run."
    body = "\n".join(s if s.endswith(";") else s + ";" for s in sql)
    return f"The SQL that fixes them (printed, never run by perfkit; check it first):\n\n```sql\n{body}\n```"


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
            result = Assessment("health", title, findings=found,
                                facts=checks.health_facts(found, target="sample"))
            where = "the findings saved from the sandbox shop (data/sample/health)"
        found, counts = result.findings, result.facts["counts"]
        blocks = [f"{len(found)} findings from {where}: "
                  + ", ".join(f"{n} {k}" for k, n in counts.items()) + "."]
        blocks += [f"*{note}*" for note in result.notes]
        if len(found):
            by_area = pd.DataFrame([{"area": area, **severities} for area, severities in result.facts["by_area"].items()])
            blocks += [by_area, found[["area", *FINDING_TABLE_COLUMNS]], fix_sql(found)]
        data = {"findings": found, "assessment": result}
        if "recommendations" in result.tables:
            data["recommendations"] = result.tables["recommendations"]
        return Section(title, blocks, data=data, findings=found, facts=result.facts)

    return guarded(title, build)


def recommendations(src: Sources, sections: Iterable[Section], *, n: int = 10) -> Section:
    """perfkit.advice's ranked list: the sections' findings and index advice merged, each fix once.

    Parameters
    ----------
    src:
        Where the evidence comes from (live: index advice on the snapshot's costliest statements).
    sections:
        The sections whose findings to merge (health, plans, load tests...).
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

        health_found = next((s.findings for s in sections if s.title == "Database health"), None)
        plan_found = next((s.findings for s in sections if s.title == "Plan deep-dive"), None)
        others = [s.findings for s in sections if s.title not in ("Database health", "Plan deep-dive") and len(s.findings)]
        if src.live:
            snap, _ = src.current_snapshot()
            ideas = advice.index_advice(src.engine, statements=snap)
        else:
            path = src.sample / "health" / "index_advice.json"
            ideas = read_findings(path) if path.exists() else findings_frame()
        merged = [f for f in [health_found] + others if f is not None and len(f)]
        ranked = advice.recommend(health=pd.concat(merged, ignore_index=True) if merged else None,
                                  statements=ideas if len(ideas) else None, plan_findings=plan_found)
        blocks = [f"{len(ranked)} recommendations, most severe and valuable first"
                  + (f"; the first {n}:" if len(ranked) > n else ":")]
        if len(ranked):
            columns = [c for c in FINDING_TABLE_COLUMNS + ["benefit_ms", "sources"] if c in ranked.columns]
            shown = ranked[columns].head(n).copy()
            for column in ("evidence", "recommendation"):  # the full text stays in advice["recommendations"]
                shown[column] = shown[column].map(lambda text: short_query(text, 240))
            if "sources" in shown:
                shown["sources"] = shown["sources"].map(lambda v: ", ".join(v) if isinstance(v, list | tuple) else v)
            blocks += [shown, fix_sql(ranked, limit=n)]
        keep = [c for c in ("severity", "kind", "subject", "recommendation", "sql", "benefit_ms") if c in ranked.columns]
        return Section(title, blocks, data={"recommendations": ranked, "index_advice": ideas},
                       findings=findings_frame(ideas),
                       facts={"recommendations": ranked[keep].head(n)})

    return guarded(title, build)


# -- plans ----------------------------------------------------------------------------------------
NODE_TABLE_COLUMNS = ["node_id", "node", "self_ms", "pct_total", "total_ms", "actual_rows", "plan_rows", "loops",
                      "misestimate", "shared_hit", "shared_read", "temp_written", "rows_removed_by_filter"]
EXPLAIN_TOP = 3  # live, without a plan file: how many of the costliest statements to explain


def plan_nodes_table(plan) -> pd.DataFrame:
    """A plan's nodes for display: the tree indented by depth, times rounded."""
    nodes = plan.nodes
    label = nodes["label"] if "label" in nodes else nodes["node_type"]
    shown = nodes.assign(node=["\u2003" * int(d) + ("\u2192 " if d else "") + str(t) for d, t in zip(nodes["depth"], label, strict=True)])
    shown = shown[[c for c in NODE_TABLE_COLUMNS if c in shown.columns]]
    return _rounded(shown, 3)


def _plan_blocks(plan, heading: str, *, limit: int = 40) -> list:
    from perfkit import charts

    timing = []
    for name, attr in (("planning", "planning_ms"), ("execution", "execution_ms")):
        value = getattr(plan, attr, None)
        if value is not None and not pd.isna(value):
            timing.append(f"{name} {value:,.2f} ms")
    blocks = [f"**{heading}**" + (f" ({', '.join(timing)})" if timing else "") + f": {len(plan.nodes)} nodes, "
              f"{len(plan.findings)} findings."]
    table = plan_nodes_table(plan)
    blocks.append(table.head(limit))
    if len(table) > limit:
        blocks.append(f"The first {limit} of {len(table)} nodes; `plan.nodes` holds them all.")
    blocks.append(charts.plan_self_time(plan))
    if len(plan.findings):
        blocks += [plan.findings[FINDING_TABLE_COLUMNS], fix_sql(plan.findings)]
    return blocks


def plan(src: Sources, *, sql: str = "", queryid: str | int = "", analyze: bool = False,
         compare_with: str | Path = "", what_if: str = "") -> Section:
    """Plan deep-dive: the plan tree with self time per node, its findings, a comparison or a what-if index.

    Parameters
    ----------
    src:
        Saved plans (``src.plans``) are read first; else, live, ``sql`` or ``queryid`` is explained,
        and without either the costliest statements of the snapshot (generic plans, nothing runs).
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
    missing = needs("plans", title)
    if missing:
        return missing

    def build() -> Section:
        from perfkit import plans

        captured, blocks, notes = [], [], []
        if src.plans:
            captured = [(p.name, plans.parse_file(p)) for p in src.plans]
        elif src.live and (sql or queryid):
            captured = [(sql or f"queryid {queryid}",
                         plans.explain(src.engine, sql, analyze=analyze) if sql
                         else plans.explain_queryid(src.engine, int(queryid)))]
        elif src.live:
            snap, _ = src.current_snapshot()
            # sqlcommenter tags lead many statements' text: judge the statement behind them
            bare = snap.assign(query=snap["query"].map(statements.strip_leading_comments))
            costly = statements.top(snap.loc[statements.explainable(bare).index], by="total", n=EXPLAIN_TOP)
            for row in costly.itertuples(index=False):
                try:
                    captured.append((f"queryid {row.queryid}: {short_query(row.query, 80)}",
                                     plans.explain_queryid(src.engine, int(row.queryid))))
                except PerfkitError as err:
                    notes.append(f"queryid {row.queryid} could not be explained: {db.redact_text(str(err))}")
            if captured:
                blocks.append(f"Generic plans (EXPLAIN without ANALYZE: nothing ran) of the {len(captured)} costliest "
                              "statements by total time.")
        else:
            return Section.skip(title, f"{title}: no plan file given, and no database to explain statements on.")
        for heading, one in captured:
            blocks += _plan_blocks(one, heading)
        blocks += notes
        data = {"plans": [p for _, p in captured]}
        if captured:
            data["plan"] = captured[0][1]
        if compare_with and captured:
            other = plans.parse_file(compare_with)
            result = plans.compare(captured[0][1], other)
            blocks += [f"**{captured[0][0]}** against **{Path(compare_with).name}**: {result.summary}"]
            if isinstance(getattr(result, "totals", None), pd.DataFrame):
                blocks.append(_rounded(result.totals, 3))
            data["comparison"] = result
        if what_if:
            if not src.live:
                blocks.append("A what-if index needs a live database with hypopg: set `dsn`.")
            else:
                target_sql = sql or (captured[0][1].query if captured and getattr(captured[0][1], "query", None) else "")
                try:
                    result = plans.whatif(src.engine, target_sql, what_if)
                    blocks.append(f"What if `{what_if}`: {result.summary()}")
                    data["what_if"] = result
                except MISSING_SOURCE_ERRORS as err:
                    blocks.append(f"What if `{what_if}`: {db.redact_text(str(err))}")
        frames = [p.findings for _, p in captured if len(p.findings)]
        found = findings_frame(pd.concat(frames, ignore_index=True) if frames else None)
        return Section(title, blocks, data=data, findings=found,
                       facts={"plans": [h for h, _ in captured], "notes": notes})

    return guarded(title, build)


def loadtest_overview(paths: Iterable[str | Path], slo: str | Path | None = None) -> Section:
    """One row per load-test file, whatever the tool: requests, errors, throughput, percentiles, SLO verdict."""
    title = "Load-test files"
    missing = needs("loadtests", title)
    if missing:
        return missing
    paths = _paths(list(paths))
    if not paths:
        return Section.skip(title, f"{title}: no file given.")

    def build() -> Section:
        from perfkit import loadtests

        targets = loadtests.load_targets(slo) if slo else None
        rows, runs = [], {}
        for path in paths:
            run = loadtests.read(path)
            runs[path.name] = run
            total = run.summary[run.summary["endpoint"].astype(str) == "ALL"]
            row = total.iloc[0].to_dict() if len(total) else {}
            rows.append({"file": path.name, "tool": run.tool, "format": run.format,
                         "per request": "yes" if run.has_samples else "no (aggregates)",
                         **{k: row.get(k) for k in ("requests", "failures", "error_rate", "rps", "p50_ms", "p95_ms", "p99_ms")},
                         "SLO": _worst(loadtests.slo(run, targets)["verdict"])})
        table = _rounded(pd.DataFrame(rows))
        return Section(title, [f"{len(rows)} files, the ALL row of each:", table], data={"runs": runs, "table": table},
                       facts={"files": table})

    return guarded(title, build)


# -- server logs ----------------------------------------------------------------------------------
def server_logs(src: Sources, *, n: int = 10, slow_ms: float = 200.0, min_repeats: int = 3) -> Section:
    """PostgreSQL's own log: the slowest executions, the busiest statement shapes, N+1 per request, logged plans.

    Parameters
    ----------
    src:
        Its ``logs`` files (csvlog, jsonlog or stderr; ``.gz`` too).
    n:
        How many executions and shapes to show.
    slow_ms:
        Executions above this are ``slow_statement`` findings.
    min_repeats:
        A statement shape run this many times in one request is an N+1.
    """
    title = "Server log"
    missing = needs("logs", title)
    if missing:
        return missing
    if not src.logs:
        return Section.skip(title, f"{title}: no log file given.")

    def build() -> Section:
        from perfkit import charts, nplusone
        from perfkit import logs as server_log

        frames = [server_log.read(path) for path in src.logs]
        entries = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        timed = entries["duration_ms"].notna().sum()
        blocks = [f"{len(entries):,} log entries from {', '.join(p.name for p in src.logs)}; "
                  f"{timed:,} executions with a duration."]
        slowest = server_log.slowest(entries, n=n)
        busiest = server_log.most_frequent(entries, n=n, by="total_ms")
        n_plus_one = nplusone.from_logs(entries, min_repeats=min_repeats)
        found = [server_log.slow_statements(entries, slow_ms=slow_ms), server_log.plan_findings(entries), n_plus_one]
        if len(busiest):
            blocks += ["The statement shapes that took the most time:",
                       _rounded(busiest[["calls", "total_ms", "mean_ms", "max_ms", "normalized"]].assign(
                           normalized=busiest["normalized"].map(short_query))),
                       charts.duration_histogram(entries, top=3)]
        if len(slowest):
            blocks += ["The slowest executions:",
                       _rounded(slowest[["ts", "duration_ms", "database", "statement"]].assign(
                           statement=slowest["statement"].map(short_query)))]
        if len(n_plus_one):
            blocks += ["N+1 patterns per request:", n_plus_one[["severity", "subject", "evidence", "recommendation"]]]
        else:
            blocks.append(f"No request ran the same statement {min_repeats} times or more.")
        frames = [f for f in found if len(f)]
        findings = findings_frame(pd.concat(frames, ignore_index=True) if frames else None)
        return Section(title, blocks, data={"logs": entries, "slowest": slowest, "busiest": busiest, "n_plus_one": n_plus_one},
                       findings=findings, facts={"files": [str(p.resolve()) for p in src.logs], "entries": int(len(entries))})

    return guarded(title, build)
