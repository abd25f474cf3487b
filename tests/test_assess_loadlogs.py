"""One assessment, three renderings: ``perfkit loadtest --json`` / ``perfkit logs --json``, the
notebook sections and ``assess()`` give the same findings for the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import perfkit.logs
from perfkit import cli, loadtests, sections
from perfkit.assessment import Assessment, finding_keys
from perfkit.errors import BadInputError
from perfkit.output import to_jsonable

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
LOGS_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "logs"
BEFORE = SAMPLE / "loadtests" / "pgbench-before-index.log"
AFTER = SAMPLE / "loadtests" / "pgbench-after-index.log"
# every result file of the sample (invoices.pgbench.sql is pgbench's script, not a result)
SAMPLE_RESULTS = sorted(p for p in (SAMPLE / "loadtests").rglob("*") if p.is_file() and p.suffix != ".sql")
SLO_FILE = ROOT / "perfkit" / "demo" / "slo.toml"


def run_cli(monkeypatch, capsys, command: str, *argv) -> tuple[int, dict | None, str]:
    monkeypatch.setattr(cli, "COMMANDS", (command,))  # parse with this command alone
    code = cli.main([command, *map(str, argv)])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip().startswith("{") else None), out.err


def with_source(findings) -> set[tuple]:
    rows = findings.to_dict(orient="records") if isinstance(findings, pd.DataFrame) else findings
    return {(r["source"], r["kind"], r["severity"], r["subject"]) for r in rows}


@pytest.fixture(scope="module")
def damaged_pgbench(tmp_path_factory) -> Path:
    """The sample's pgbench log with one line cut short (unreadable without --skip-bad-lines)."""
    lines = BEFORE.read_text().splitlines()
    lines[40] = lines[40][:6]
    path = tmp_path_factory.mktemp("loadtests") / "pgbench-cut.log"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def damaged_log(tmp_path_factory) -> Path:
    """A stderr log fixture with a line that matches no log_line_prefix."""
    lines = (LOGS_FIXTURES / "stderr-default.log").read_text().split("\n")
    path = tmp_path_factory.mktemp("logs") / "damaged.log"
    path.write_text("\n".join(lines[:3] + ["garbage that is no log line"] + lines[3:]))
    return path


# -- load tests ----------------------------------------------------------------------------------

LOADTEST_CASES = {
    "before-after": ([BEFORE, AFTER], {}),
    "after-before": ([AFTER, BEFORE], {}),  # the slower run last: a regression from the comparison
    "every-sample-file": (SAMPLE_RESULTS, {}),
    # the latest run (Locust) is judged against the demo SLO; the pgbench run before it is its baseline
    "with-slo-file": ([BEFORE, SAMPLE / "loadtests" / "tools" / "locust_stats.csv"], {"slo": SLO_FILE}),
}


@pytest.mark.parametrize("case", sorted(LOADTEST_CASES))
def test_loadtest_cli_notebook_and_assess_agree(case, monkeypatch, capsys):
    paths, options = LOADTEST_CASES[case]
    assessed = loadtests.assess(paths, **options)
    argv = [*paths, "--json", *(["--slo", options["slo"]] if "slo" in options else [])]
    code, doc, _ = run_cli(monkeypatch, capsys, "loadtest", *argv)
    section = sections.loadtest(sections.load_sources(sample=SAMPLE, loadtest=paths, slo=options.get("slo", "")))

    assert code == 0 and not section.skipped
    keys = finding_keys(assessed.findings)
    assert keys, "these files give findings, so equal sets mean something"
    assert finding_keys(doc["findings"]) == keys == finding_keys(section.findings)
    assert with_source(doc["findings"]) == with_source(assessed.findings) == with_source(section.findings)
    assert section.assessment is not None and finding_keys(section.assessment.findings) == keys
    # the JSON keeps today's keys and adds the assessment's
    assert [r["format"] for r in doc["results"]] == [r.format for r in assessed.data["runs"]]
    assert doc["critical"] == assessed.facts["critical"] and doc["slo_verdict"] == section.facts["slo_verdict"]
    assert {"summary", "slo", "overview", "files", "severity_counts"} <= set(doc)
    assert {row["source"] for row in doc["slo"]} == {p.name for p in paths}
    # --ci fails on the same critical verdicts
    ci_code, _, _ = run_cli(monkeypatch, capsys, "loadtest", *argv, "--ci")
    assert ci_code == (1 if assessed.facts["critical"] else 0)


def test_the_comparison_is_in_every_rendering(monkeypatch, capsys):
    code, doc, _ = run_cli(monkeypatch, capsys, "loadtest", AFTER, BEFORE, "--json")
    regressions = {f["subject"] for f in doc["findings"] if f["kind"] == "regression"}
    assert code == 0 and "ALL" in regressions  # before the index, the p95 is 4x after's
    assert {f["source"] for f in doc["findings"] if f["kind"] == "regression"} == {f"{BEFORE.name} vs {AFTER.name}"}
    assert doc["comparison"][-1]["endpoint"] == "ALL" and doc["comparison"][-1]["p95_change"] > 1
    section = sections.loadtest(sections.load_sources(sample=SAMPLE, loadtest=[AFTER, BEFORE]))
    assert regressions == set(section.findings.loc[section.findings["kind"] == "regression", "subject"])
    code, _, _ = run_cli(monkeypatch, capsys, "loadtest", BEFORE, AFTER, "--json")
    assert code == 0


def test_skip_bad_lines_is_one_reading_for_every_rendering(damaged_pgbench, monkeypatch, capsys):
    wrk = SAMPLE / "loadtests" / "tools" / "wrk_seconds.txt"  # a format without that option
    code, _, err = run_cli(monkeypatch, capsys, "loadtest", damaged_pgbench, wrk)
    assert code == 2 and "pgbench-cut.log" in err
    code, doc, _ = run_cli(monkeypatch, capsys, "loadtest", "--skip-bad-lines", "--json", damaged_pgbench, wrk)
    assessed = loadtests.assess([damaged_pgbench, wrk], skip_bad_lines=True)
    section = sections.loadtest(sections.load_sources(sample=SAMPLE, loadtest=[damaged_pgbench, wrk]),
                                skip_bad_lines=True)
    assert code == 0 and doc["results"][0]["skipped_lines"] == 1
    assert [f["skipped_lines"] for f in assessed.facts["per_file"]] == [1, 0]
    assert finding_keys(doc["findings"]) == finding_keys(assessed.findings) == finding_keys(section.findings)
    assert any("skipped 1 unreadable line" in note for note in doc["notes"])
    assert any("skipped 1 unreadable line" in b for b in section.blocks if isinstance(b, str))


def test_overview_renders_the_assessment():
    section = sections.loadtest_overview(SAMPLE_RESULTS)
    table = section["table"]
    overview = section.assessment.tables["overview"]
    assert table["file"].tolist() == overview["file"].tolist() == [p.name for p in SAMPLE_RESULTS]
    assert table["SLO"].tolist() == [f["slo_verdict"] for f in section.assessment.facts["per_file"]]
    assert (table.loc[table["tool"] == "pgbench", "per request"] != "").all()
    assert finding_keys(section.findings) == finding_keys(loadtests.assess(SAMPLE_RESULTS, judge="each").findings)


def test_skipped_sections_carry_a_skipped_assessment(tmp_path):
    bare = sections.load_sources(sample=SAMPLE)
    for section, source in ((sections.loadtest(bare), "loadtests"), (sections.server_logs(bare), "logs")):
        assert isinstance(section.assessment, Assessment) and section.assessment.source == source
        assert section.assessment.skipped == section.skipped != ""
    with pytest.raises(BadInputError, match="no result file"):
        loadtests.assess([])


# -- server logs ---------------------------------------------------------------------------------

LOG_CASES = {
    "sample": ([SAMPLE / "logs" / "postgresql.json"], []),
    "two-files": ([LOGS_FIXTURES / "csvlog.csv", LOGS_FIXTURES / "jsonlog.json"], ["--slow-ms", "100"]),
    "stderr": ([LOGS_FIXTURES / "stderr-default.log"], ["--min-repeats", "4", "-n", "3"]),
}
CLI_OPTION = {"--slow-ms": ("slow_ms", float), "--min-repeats": ("min_repeats", int), "-n": ("n", int)}


def _options(argv: list[str]) -> dict:
    return {CLI_OPTION[k][0]: CLI_OPTION[k][1](v) for k, v in zip(argv[::2], argv[1::2], strict=True)}


def _frame_records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(json.dumps(to_jsonable(frame), default=str))


@pytest.mark.parametrize("case", sorted(LOG_CASES))
def test_logs_cli_notebook_and_assess_agree(case, monkeypatch, capsys):
    paths, argv = LOG_CASES[case]
    options = _options(argv)
    assessed = perfkit.logs.assess(paths, **options)
    code, doc, _ = run_cli(monkeypatch, capsys, "logs", *paths, "--json", *argv)
    section = sections.server_logs(sections.load_sources(sample=SAMPLE, logs=paths), **options)

    assert code == 0 and not section.skipped
    keys = finding_keys(assessed.findings)
    assert keys and finding_keys(doc["findings"]) == keys == finding_keys(section.findings)
    assert section.assessment is not None and finding_keys(section.assessment.findings) == keys
    # most frequent is ranked by calls in both; the notebook's time ranking is its own table
    assert doc["most_frequent"] == _frame_records(section["most_frequent"])
    calls = [row["calls"] for row in doc["most_frequent"]]
    assert calls == sorted(calls, reverse=True)
    totals = [row["total_ms"] for row in doc["most_time"]]
    assert totals == sorted(totals, reverse=True) and doc["most_time"] == _frame_records(section["busiest"])
    # every file read together: the same entries as the CLI
    assert section.facts["entries"] == doc["entries"] == assessed.facts["entries"]
    assert set(doc["formats"]) == {str(p) for p in paths}


def test_lines_that_are_not_log_records_are_a_note_not_a_stop(damaged_log, monkeypatch, capsys):
    # a pg_ctl message or any other stray line in the file: counted and noted, the rest is read
    for extra in ([], ["--skip-bad-lines"]):
        code, doc, _ = run_cli(monkeypatch, capsys, "logs", damaged_log, "--json", *extra)
        assessed = perfkit.logs.assess(damaged_log, skip_bad_lines=bool(extra))
        section = sections.server_logs(sections.load_sources(sample=SAMPLE, logs=[damaged_log]),
                                       skip_bad_lines=bool(extra))
        note = next(n for n in doc["notes"] if n.startswith("skipped 1 line(s) that are not log records"))
        assert code == 0 and "line 4" in note and assessed.notes == doc["notes"]
        assert f"*{note}*" in section.blocks and section.facts["skipped_lines"] == 1 == doc["skipped_lines"]
        assert finding_keys(doc["findings"]) == finding_keys(assessed.findings) == finding_keys(section.findings)
        assert finding_keys(doc["findings"])  # the damaged log still has its N+1


@pytest.mark.parametrize(("option", "value", "flag"), [
    ("min_repeats", 1, "--min-repeats"), ("n", 0, "-n"), ("max_statements", 0, "--max-statements"),
    ("slow_ms", -1.0, "--slow-ms"), ("gap_ms", -5.0, "--gap-ms"),
])
def test_log_options_are_checked_by_the_assessment(option, value, flag, monkeypatch, capsys):
    with pytest.raises(BadInputError, match=f"^{option} \\({flag}\\) must be"):
        perfkit.logs.assess(SAMPLE / "logs" / "postgresql.json", **{option: value})
    if flag in ("--min-repeats", "--slow-ms", "--gap-ms"):  # the others argparse refuses first
        code, doc, err = run_cli(monkeypatch, capsys, "logs", SAMPLE / "logs" / "postgresql.json", f"{flag}={value}")
        assert code == 2 and doc is None and f"{option} ({flag}) must be" in err and len(err.strip().splitlines()) == 1


def test_only_the_latest_run_is_judged_the_earlier_are_its_baseline(monkeypatch, capsys, tmp_path):
    # p95 of the run before the index is 32 ms, after it 5 ms: a 20 ms target breaks only the first
    strict = tmp_path / "slo.toml"
    strict.write_text("[defaults]\np95_ms = { target = 20, critical = 1000 }\n")
    latest = loadtests.assess([BEFORE, AFTER], slo=strict)
    each = loadtests.assess([BEFORE, AFTER], slo=strict, judge="each")
    judged = latest.tables["slo"]
    assert set(judged.loc[judged["judged"], "source"]) == {AFTER.name}
    assert not (latest.findings["kind"] == "slo_breach").any() and latest.facts["slo_verdict"] == "pass"
    assert latest.facts["judged"] == f"the latest run ({AFTER.name})"
    breaches = each.findings[each.findings["kind"] == "slo_breach"]
    assert set(breaches["source"]) == {BEFORE.name} and each.facts["slo_verdict"] == "warning"
    code, doc, _ = run_cli(monkeypatch, capsys, "loadtest", BEFORE, AFTER, "--slo", strict, "--json", "--each")
    assert code == 0 and finding_keys(doc["findings"]) == finding_keys(each.findings)
    code, doc, _ = run_cli(monkeypatch, capsys, "loadtest", BEFORE, AFTER, "--slo", strict, "--json")
    assert code == 0 and finding_keys(doc["findings"]) == finding_keys(latest.findings)
