"""CI outputs: ``--format markdown`` renders as tables (parsed with markdown-it-py, GFM tables on),
``--junit`` validates against the common JUnit schema (tests/fixtures/junit.xsd), and every
``--json`` and a report's summary.json validate against the JSON Schemas shipped in perfkit/schemas.
Commands run through ``perfkit.cli.main`` in this process (tests/test_exit_codes.py has the processes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import xmlschema
from markdown_it import MarkdownIt

from perfkit import cli, health, schemas

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
LOADTESTS = [SAMPLE / "loadtests" / "pgbench-before-index.log", SAMPLE / "loadtests" / "pgbench-after-index.log"]
DIFF = ("diff", "--store", str(SAMPLE / "store"), "--server", "sample")
JUNIT = xmlschema.XMLSchema(str(ROOT / "tests" / "fixtures" / "junit.xsd"))


def run(capsys, *args, code: int = 0) -> str:
    assert cli.main([str(a) for a in args]) == code, capsys.readouterr().err
    return capsys.readouterr().out


def tables(text: str) -> list[dict]:
    """Each table markdown-it renders: its header cells and its rows of cells (inline text)."""
    found, current, row, in_head = [], None, None, False
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "table_open":
            current = {"header": [], "rows": []}
        elif token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None and current is not None:
            row.append(token.content.replace("\\", ""))
        elif token.type == "tr_close":
            (current["header"].extend(row) if in_head else current["rows"].append(row))
            row = None
        elif token.type == "table_close":
            found.append(current)
            current = None
    return found


def terminal_tables(text: str) -> list[list[str]]:
    """The header words of each fixed-width table the terminal output has (a header over a ---- rule)."""
    lines = text.splitlines()
    return [re.split(r"\s{2,}", lines[i - 1].strip()) for i, line in enumerate(lines)
            if i and re.fullmatch(r"-+(  -+)*", line.strip())]


@pytest.mark.parametrize("args", [("loadtest", *LOADTESTS), DIFF], ids=["loadtest", "diff"])
def test_markdown_renders_the_terminal_tables(args, capsys, monkeypatch):
    text = run(capsys, *args, "--format", "markdown")
    monkeypatch.setenv("COLUMNS", "1000")  # wide enough that findings stay a table (not cards) in the terminal
    terminal = run(capsys, *args)
    rendered = tables(text)
    assert rendered and [t["header"] for t in rendered] == terminal_tables(terminal)
    for table in rendered:
        assert table["rows"] and all(len(r) == len(table["header"]) for r in table["rows"])
    assert "|" not in "".join(line for line in text.splitlines() if not line.startswith("|"))  # no stray pipes


def test_markdown_of_health_and_the_step_summary(tenant_db, tmp_path, monkeypatch, capsys):
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    text = run(capsys, "health", "--dsn", tenant_db, "--check", "duplicate_indexes", "--check",
               "missing_fk_indexes", "--format", "markdown")
    rendered = tables(text)
    assert rendered and rendered[0]["header"] == ["severity", "kind", "subject", "evidence"]
    subjects = {row[2] for table in rendered for row in table["rows"]}
    assert any("invoices_created" in s for s in subjects)
    fences = [t for t in MarkdownIt("commonmark").parse(text) if t.type == "fence"]
    assert fences and fences[0].info == "sql" and "DROP INDEX" in fences[0].content
    appended = summary.read_text()
    assert appended.startswith("earlier step\n") and text.strip() in appended


def test_junit_of_loadtest_ci(tmp_path, capsys):
    slo = tmp_path / "slo.toml"
    slo.write_text("[defaults]\np95_ms = { target = 1, critical = 2 }\n")
    report = tmp_path / "loadtest.xml"
    payload = json.loads(run(capsys, "loadtest", *LOADTESTS, "--ci", "--slo", slo, "--json", code=1))
    run(capsys, "loadtest", *LOADTESTS, "--ci", "--slo", slo, "--junit", report, code=1)
    JUNIT.validate(str(report))
    judged = [row for row in payload["slo"] if row["judged"]]
    suite = JUNIT.to_dict(str(report))["testsuite"]
    assert len(suite) == 1 and suite[0]["@name"].endswith("pgbench-after-index.log")  # the latest run is judged
    cases = suite[0]["testcase"]
    assert {c["@name"] for c in cases} == {f"{row['endpoint']} {row['metric']}" for row in judged}
    failed = {c["@name"] for c in cases if "failure" in c}
    assert failed == {f"{row['endpoint']} {row['metric']}" for row in judged if row["verdict"] == "critical"}
    assert failed and suite[0]["@failures"] == len(failed)


def test_junit_of_health_fail_on(tenant_db, tmp_path, capsys):
    report = tmp_path / "health.xml"
    run(capsys, "health", "--dsn", tenant_db, "--fail-on", "warning", "--junit", report, code=1)
    JUNIT.validate(str(report))
    cases = JUNIT.to_dict(str(report))["testsuite"][0]["testcase"]
    assert [c["@name"] for c in cases] == [fn.__name__ for fn in health.CHECKS]  # one per check
    failed = {c["@name"] for c in cases if "failure" in c}
    assert {"duplicate_indexes", "missing_fk_indexes"} <= failed
    assert "xid_wraparound" not in failed


@pytest.mark.parametrize("args", [("loadtest", *LOADTESTS), ("plan", SAMPLE / "plans" / "invoices-by-tenant.json"),
                                  ("logs", SAMPLE / "logs" / "postgresql.json"), DIFF],
                         ids=["loadtest", "plan", "logs", "diff"])
def test_json_outputs_match_the_command_schema(args, capsys):
    payload = json.loads(run(capsys, *args, "--json"))
    schemas.validator("command").validate(payload)
    assert payload["findings"], "a schema check over no findings checks little"


def test_health_json_matches_the_command_schema(tenant_db, capsys):
    payload = json.loads(run(capsys, "health", "--dsn", tenant_db, "--check", "duplicate_indexes", "--format", "json"))
    schemas.validator("command").validate(payload)
    assert {f["kind"] for f in payload["findings"]} == {"duplicate_index"}


def test_a_finding_without_its_fields_is_refused():
    """The schemas are not vacuous: a finding missing recommendation / sql / benefit_ms fails."""
    import jsonschema

    good = {"kind": "k", "severity": "warning", "subject": "s", "evidence": "e", "recommendation": "r", "sql": "",
            "benefit_ms": None, "fix": None}
    schemas.validator("finding").validate(good)
    for field in ("recommendation", "sql", "benefit_ms"):
        with pytest.raises(jsonschema.ValidationError):
            schemas.validator("finding").validate({k: v for k, v in good.items() if k != field})
    with pytest.raises(jsonschema.ValidationError):
        schemas.validator("command").validate({"schema_version": 2, "perfkit_version": "0.1.0"})


def test_the_docs_workflow_runs_valid_perfkit_command_lines():
    """docs/README-ci.md's GitHub Actions example: YAML with steps whose perfkit lines parse."""
    import shlex

    from perfkit.commands import output_format

    text = (ROOT / "docs" / "README-ci.md").read_text()
    workflow = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    import yaml  # papermill's dependency

    steps = yaml.safe_load(workflow)["jobs"]["load-test"]["steps"]
    lines = [step["run"] for step in steps if str(step.get("run", "")).startswith("perfkit ")]
    assert len(lines) == 2
    parser = cli.build_parser()
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])  # argparse exits 2 on a bad option
        assert args.junit and output_format(args) == "markdown"
