"""The load-test assessment: every result file read once, judged against the SLOs, the last run
against the first; what ``perfkit loadtest`` and the notebook sections both render.

``assess(paths, slo=...)`` returns an Assessment (source ``loadtests``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from perfkit.assessment import Assessment, merge_findings
from perfkit.errors import BadInputError
from perfkit.loadtests.analysis import compare, flags
from perfkit.loadtests.formats import read
from perfkit.loadtests.frames import ALL
from perfkit.loadtests.slo import SloTargets, load_targets, slo_findings, targets_from_dict
from perfkit.loadtests.slo import slo as slo_verdicts

TITLE = "Load tests"
# Worst first: the verdict of several is the first of these any of them has.
VERDICT_ORDER = ("critical", "warning", "pass")
VERDICT_TABLE_COLUMNS = ["source", "endpoint", "metric", "value", "target", "critical", "verdict"]
OVERVIEW_COLUMNS = ["file", "tool", "format", "per_request", "requests", "failures", "error_rate", "rps",
                    "p50_ms", "p95_ms", "p99_ms", "slo_verdict"]
_ALL_ROW_FIGURES = ("requests", "failures", "error_rate", "rps", "p50_ms", "p95_ms", "p99_ms")


def worst_verdict(verdicts: pd.Series) -> str:
    """``critical``, ``warning`` or ``pass`` (the worst among ``verdicts``), else ``n/a``."""
    for word in VERDICT_ORDER:
        if (verdicts == word).any():
            return word
    return "n/a"


def read_run(path, format: str | None = None, *, skip_bad_lines: bool = False, summary_only: bool = False):
    """One result file read with the command line's options.

    ``summary_only`` wins over ``skip_bad_lines``; a format that takes neither is read without
    them (``BadInputError`` "does not take that option"), so one option can serve many files.
    """
    options = {"skip_bad_lines": True} if skip_bad_lines else {}
    if summary_only:
        options = {"summary_only": True}
    try:
        return read(path, format, **options)
    except BadInputError as err:
        if options and "does not take that option" in str(err):
            return read(path, format)
        raise


def _labels(paths: list[Path]) -> list[str]:
    """What names each file in the tables: its file name, or the path when two names collide."""
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def assess(
    paths: Iterable[str | Path] | str | Path,
    *,
    slo: str | Path | SloTargets | dict | None = None,
    format: str | None = None,
    skip_bad_lines: bool = False,
    summary_only: bool = False,
    judge: str = "latest",
    env: str | None = None,
) -> Assessment:
    """Read every load-test file once and judge it: SLO verdicts, flags, the last run against the first.

    Parameters
    ----------
    paths:
        Result files (any format of ``perfkit.loadtests.FORMATS``), in run order.
    slo:
        SLO targets: a TOML file, ``SloTargets`` or a dict; None for DESIGN.md's defaults.
    format:
        The files' format; detected from each file's content when None.
    skip_bad_lines, summary_only:
        As ``perfkit.loadtests.read``; a format that takes neither option is read without it.
    judge:
        ``latest`` (default): the files are runs of one test in order; only the last is judged
        against the SLO (``slo_breach`` findings, ``slo_verdict``, ``critical``), the earlier ones
        are its baseline (their verdicts stay in the ``slo`` table, ``judged`` False). ``each``:
        every file is a run of its own and is judged (an overview of unrelated files).
    env:
        The SLO file's ``[env.NAME]`` targets to judge by (staging, production...).

    Returns
    -------
    Assessment
        ``tables``: ``summary`` (every file's endpoints and ALL, with ``source``), ``slo`` (every
        verdict, with ``source``), ``overview`` (one row per file: its ALL row and worst verdict),
        ``comparison`` (the last run against the first, two files or more).
        ``facts``: ``files`` (absolute paths), ``slo_verdict`` (the worst), ``critical`` (a
        critical verdict: what ``--ci`` fails on), ``per_file`` (tool, format, percentiles_from,
        notes, skipped_lines, per_request, slo_verdict of each).
        ``findings``: SLO breaches and each run's flags, then the comparison's regressions, each
        with the ``source`` it comes from. ``data``: ``runs`` (the LoadTestRuns), ``comparison``.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not paths:
        raise BadInputError("no result file: give FILE... or --latest DIR")
    if judge not in ("latest", "each"):
        raise BadInputError(f"judge must be 'latest' or 'each', not {judge!r}")
    if isinstance(slo, str | Path):
        targets = load_targets(slo, env=env)
    elif isinstance(slo, dict):
        targets = targets_from_dict(slo, env=env)
    else:
        targets = slo
    slo_notes: list[str] = []
    if env and (targets is None or (isinstance(targets, SloTargets) and targets.env != env)):
        slo_notes.append(f"the SLO environment {env!r} was asked for but no SLO file with [env.{env}] was given: "
                         "judged by the " + ("defaults" if targets is None else "targets given"))
    labels = _labels(paths)
    runs, summaries, verdicts, found, per_file, overview = [], [], [], [], [], []
    for number, (path, label) in enumerate(zip(paths, labels, strict=True), start=1):
        run = read_run(path, format, skip_bad_lines=skip_bad_lines, summary_only=summary_only)
        runs.append(run)
        verdict = slo_verdicts(run, targets)
        slo_notes += [f"{label}: {note}" for note in verdict.attrs.get("notes", [])]
        word = worst_verdict(verdict["verdict"])
        judged = judge == "each" or number == len(paths)
        summaries.append(run.summary.assign(source=label))
        verdicts.append(verdict.assign(source=label, judged=judged))
        if judged:
            found += [slo_findings(verdict, run.summary).assign(source=label), flags(run).assign(source=label)]
        per_file.append({"source": label, "file": str(path.resolve()), "tool": run.tool, "format": run.format,
                         "percentiles_from": run.percentiles_from, "notes": list(run.notes),
                         "skipped_lines": int(run.skipped_lines), "per_request": bool(run.has_samples),
                         "slo_verdict": word})
        total = run.summary[run.summary["endpoint"].astype(str) == ALL]
        row = total.iloc[0].to_dict() if len(total) else {}
        overview.append({"file": label, "tool": run.tool, "format": run.format,
                         "per_request": "yes" if run.has_samples else "no (aggregates)",
                         **{k: row.get(k) for k in _ALL_ROW_FIGURES}, "slo_verdict": word})
    all_verdicts = pd.concat(verdicts, ignore_index=True)
    all_verdicts = all_verdicts[VERDICT_TABLE_COLUMNS + [c for c in all_verdicts if c not in VERDICT_TABLE_COLUMNS]]
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["source"] + [c for c in summary if c != "source"]]
    tables = {"summary": summary, "slo": all_verdicts, "overview": pd.DataFrame(overview, columns=OVERVIEW_COLUMNS)}
    data = {"runs": runs, "comparison": None}
    judged_verdicts = all_verdicts[all_verdicts["judged"]]
    facts = {"files": [str(p.resolve()) for p in paths], "slo_verdict": worst_verdict(judged_verdicts["verdict"]),
             "critical": bool((judged_verdicts["verdict"] == "critical").any()), "per_file": per_file,
             "judged": "every file" if judge == "each" or len(paths) == 1 else f"the latest run ({labels[-1]})"}
    if len(runs) >= 2:
        comparison = compare(runs[0], runs[-1])
        against = f"{labels[-1]} vs {labels[0]}"
        found.append(comparison.findings.assign(source=against))
        tables["comparison"] = comparison.table
        data["comparison"] = comparison
        facts["compared"] = {"baseline": labels[0], "run": labels[-1]}
    notes = [f"{label}: skipped {f['skipped_lines']:,} unreadable line(s)"
             for label, f in zip(labels, per_file, strict=True) if f["skipped_lines"]]
    notes += slo_notes
    if targets is not None and getattr(targets, "env", None):
        facts["slo_env"] = targets.env
    return Assessment("loadtests", TITLE, findings=merge_findings(*found), tables=tables, facts=facts,
                      notes=notes, data=data)
