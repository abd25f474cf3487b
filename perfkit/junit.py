"""JUnit XML for CI test panels (``loadtest --ci --junit FILE``, ``health --fail-on S --junit FILE``).

The common JUnit shape (Ant's, as Jenkins, GitLab, GitHub test reporters and Azure read it):
``<testsuites>`` of ``<testsuite name tests failures errors skipped time timestamp>`` of
``<testcase name classname time>``, each with at most one ``<failure>`` or ``<skipped>``.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from perfkit.errors import BadInputError


@dataclass
class Case:
    """One test case: ``failure`` (its message) when it failed, ``skipped`` (why) when it did not run."""

    name: str
    classname: str
    failure: str | None = None
    detail: str = ""
    skipped: str | None = None
    output: str = ""


def document(suites: Iterable[tuple[str, list[Case]]], *, name: str = "perfkit") -> ET.Element:
    """The ``<testsuites>`` element of ``(suite name, cases)`` pairs."""
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat()
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite_name, cases in suites:
        failures = sum(1 for c in cases if c.failure is not None)
        skipped = sum(1 for c in cases if c.failure is None and c.skipped is not None)
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(cases)), failures=str(failures),
                              errors="0", skipped=str(skipped), time="0", timestamp=stamp, hostname="perfkit")
        for case in cases:
            element = ET.SubElement(suite, "testcase", name=case.name, classname=case.classname, time="0")
            if case.failure is not None:
                failed = ET.SubElement(element, "failure", message=case.failure, type="perfkit")
                failed.text = case.detail or case.failure
            elif case.skipped is not None:
                ET.SubElement(element, "skipped", message=case.skipped)
            if case.output:
                ET.SubElement(element, "system-out").text = case.output
        totals["tests"] += len(cases)
        totals["failures"] += failures
        totals["skipped"] += skipped
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    return root


def write(path: str | Path, suites: Iterable[tuple[str, list[Case]]]) -> None:
    """Write the JUnit XML file (atomically); a folder or a missing folder is bad input."""
    from perfkit.fileio import write_atomic

    path = Path(path)
    if path.is_dir():
        raise BadInputError("--junit: is a folder: give the XML file's name", path=path)
    if not path.parent.is_dir():
        raise BadInputError(f"--junit: no such folder {str(path.parent)!r}: create it first", path=path)
    root = document(suites)
    ET.indent(root)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    try:
        write_atomic(path, text)
    except OSError as err:
        raise BadInputError(f"--junit: cannot write it ({err.strerror or err})", path=path) from None


def _number(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN
        return "n/a"
    return f"{number:,.4g}" if abs(number) < 1 else f"{number:,.2f}"


def loadtest_cases(verdicts) -> list[tuple[str, list[Case]]]:
    """One suite per judged load-test file, one case per endpoint and SLO metric: a failure when the
    metric breaches its critical target (what ``--ci`` gates on), skipped when it cannot be judged
    (n/a), passed otherwise (a warning is said in the case's output)."""
    suites = []
    judged = verdicts[verdicts["judged"]] if "judged" in verdicts else verdicts
    for source, mine in judged.groupby("source", sort=False):
        cases = []
        for row in mine.to_dict(orient="records"):
            endpoint, metric, verdict = str(row["endpoint"]), str(row["metric"]), str(row["verdict"])
            said = f"{metric} = {_number(row.get('value'))} (target {_number(row.get('target'))}, " \
                   f"critical {_number(row.get('critical'))}): {verdict}"
            case = Case(name=f"{endpoint} {metric}", classname=f"perfkit.loadtest.{source}")
            if verdict == "critical":
                case.failure, case.detail = f"{endpoint}: {said}", said
            elif verdict == "n/a":
                case.skipped = f"{endpoint}: {metric} cannot be judged from this file"
            else:
                case.output = said
            cases.append(case)
        suites.append((f"perfkit loadtest {source}", cases))
    return suites


def health_cases(check_names: Iterable[str], findings, fail_on: str, areas: dict[str, str]) -> list[tuple[str, list[Case]]]:
    """One case per health check: a failure when it found something at least ``fail_on`` severe (every
    such finding in the detail), skipped when it could not run, passed otherwise."""
    from perfkit.commands import SEVERITY_CHOICES

    worst = set(SEVERITY_CHOICES[: SEVERITY_CHOICES.index(fail_on) + 1])
    by_check = findings.groupby("check", sort=False) if "check" in findings and len(findings) else ()
    found = {name: group for name, group in by_check}
    cases = []
    for name in check_names:
        mine = found.get(name)
        case = Case(name=name, classname=f"perfkit.health.{areas.get(name, 'other')}")
        if mine is not None and len(mine):
            did_not_run = mine[mine["kind"].isin(("missing_privilege", "check_timeout", "check_failed"))]
            bad = mine[mine["severity"].isin(worst)]
            lines = [f"{r.severity}: {r.kind} {r.subject}: {r.evidence}" for r in mine.itertuples(index=False)]
            if len(bad):  # the same rule as the exit code (a check that did not run is an info finding)
                case.failure = f"{len(bad)} finding(s) at or above {fail_on}: " + ", ".join(
                    f"{r.kind} {r.subject}" for r in bad.head(3).itertuples(index=False)) + (" ..." if len(bad) > 3 else "")
                case.detail = "\n".join(lines)
            elif len(did_not_run) == len(mine):
                case.skipped = str(did_not_run.iloc[0]["evidence"])
            else:
                case.output = "\n".join(lines)
        cases.append(case)
    return [("perfkit health", cases)]


def budget_cases(assessment) -> list[tuple[str, list[Case]]]:
    """``perfkit budgets``: one case per route and budgeted limit (failed when broken), one per
    expected index and statement (failed when its generic plan does not use the index)."""
    suites = []
    routes = assessment.tables.get("routes")
    if routes is not None and len(routes):
        found = assessment.findings
        broken = {(f["route"], f["budget"]): f["evidence"] for f in found.to_dict(orient="records")
                  if f.get("kind") == "route_over_budget"}
        cases = []
        for row in routes.to_dict(orient="records"):
            for limit in ("max_statements", "max_db_ms", "max_repeats"):
                if row.get(limit) is None or row[limit] != row[limit]:
                    continue
                message = broken.get((row["route"], limit))
                cases.append(Case(f"{row['route']} {limit}", "perfkit.budgets.routes", failure=message,
                                  output=f"budget {_number(row[limit])} ({row['pattern']})"))
        suites.append(("route budgets", cases))
    indexes = assessment.tables.get("indexes")
    if indexes is not None and len(indexes):
        cases = []
        for row in indexes.to_dict(orient="records"):
            name = f"{row['pattern']} -> {row['expected_index']}" + (f" (queryid {row['queryid']})" if row["queryid"] else "")
            verdict = str(row["verdict"])
            if verdict == "does not use it":
                cases.append(Case(name, "perfkit.budgets.indexes",
                                  failure=f"its generic plan uses {', '.join(row['indexes_used']) or 'no index'}"))
            elif verdict == "uses it":
                cases.append(Case(name, "perfkit.budgets.indexes"))
            else:
                cases.append(Case(name, "perfkit.budgets.indexes", skipped=verdict))
        suites.append(("expected indexes", cases))
    return suites
