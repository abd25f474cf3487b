"""Query budgets gated in CI: per route from a real server log (tests/fixtures/logs: an
/api/invoices request with an N+1, a clean /api/customers one), expected indexes from the generic
plans of a real sandbox database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfkit import budgets
from perfkit.cli import main
from perfkit.errors import BadInputError

LOGS = Path(__file__).parent / "fixtures" / "logs"

ROUTES = """
[defaults]
p95_ms = { target = 500, critical = 1000 }

[budgets.routes."/api/invoices*"]
max_statements = 3
max_repeats = 2

[budgets.routes."/api/customers"]
max_statements = 3
max_db_ms = 50
"""


def _slo(tmp_path, text) -> Path:
    path = tmp_path / "slo.toml"
    path.write_text(text)
    return path


def test_route_budgets_from_the_log(tmp_path, capsys):
    import perfkit.logs

    declared = budgets.load_budgets(_slo(tmp_path, ROUTES))
    assessment = budgets.assess(declared, logs=perfkit.logs.read(LOGS / "jsonlog.json"))
    routes = assessment.tables["routes"].set_index("route")
    # the fixture's /api/invoices request: one list statement and four lookups, one by one
    assert routes.loc["/api/invoices", "statements_max"] == 5 and routes.loc["/api/invoices", "repeats_max"] == 4
    assert routes.loc["/api/invoices", "verdict"] == "over: statements, repeats"
    assert routes.loc["/api/customers", "verdict"] == "within budget"
    found = assessment.findings
    assert set(found["subject"]) == {"/api/invoices"} and set(found["kind"]) == {"route_over_budget"}
    assert set(found["severity"]) == {"critical"}
    repeats = found[found["budget"] == "max_repeats"].iloc[0]
    assert "request_id=fixture-n1" in repeats["evidence"] and "N+1" in repeats["recommendation"]


def test_budgets_command_gates_ci(tmp_path, capsys, monkeypatch):
    slo = _slo(tmp_path, ROUTES)
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["budgets", "--slo", str(slo), "--logs", str(LOGS / "jsonlog.json"), "--ci"]) == 1
    out = capsys.readouterr().out
    assert "/api/invoices" in out and "over: statements, repeats" in out and "2 budgets broken" in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert main(["budgets", "--slo", str(slo), "--logs", str(LOGS / "jsonlog.json")]) == 0  # no gate without --ci
    capsys.readouterr()
    assert main(["budgets", "--slo", str(slo), "--logs", str(LOGS / "jsonlog.json"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "budgets" and doc["over_budget"] == 2
    easy = _slo(tmp_path, ROUTES.replace("max_statements = 3\nmax_repeats = 2", "max_statements = 10"))
    capsys.readouterr()
    assert main(["budgets", "--slo", str(easy), "--logs", str(LOGS / "jsonlog.json"), "--ci"]) == 0
    assert "every budget holds" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("[budgets.routes.'/a']\nmax_queries = 3\n", r"unknown limit\(s\) max_queries"),
    ("[budgets.routes.'/a']\nmax_statements = 'ten'\n", r"max_statements must be a number"),
    ("[budgets.routes.'/a']\n", r"sets no limit"),
    ("[budgets.indexes]\n'WHERE x' = 'i'\n", r"must read \"TABLE WHERE COLUMN AND COLUMN\""),
    ("[budgets.gates]\nx = 1\n", r"unknown section\(s\) budgets.gates"),
    ("[defaults]\np95_ms = { target = 1, critical = 2 }\n", r"no \[budgets.routes"),
])
def test_bad_budgets_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(BadInputError, match=message) as err:
        budgets.load_budgets(_slo(tmp_path, text))
    assert "slo.toml" in str(err.value) and "\n" not in str(err.value)


def test_a_budget_mistake_fails_the_loadtest_slo_too(tmp_path, capsys):
    slo = _slo(tmp_path, "[budgets.routes.'/a']\nmax_queries = 3\n")
    assert main(["loadtest", str(Path(__file__).parent / "fixtures" / "loadtests" / "locust_stats.csv"),
                 "--slo", str(slo)]) == 2
    assert "max_queries" in capsys.readouterr().err


@pytest.fixture(scope="module")
def indexed_db(sandbox, new_database) -> str:
    name = "budget_indexes"
    with new_database(name) as conn:
        conn.execute("CREATE TABLE leads (id int PRIMARY KEY, tenant_id int, status text, w int)")
        conn.execute("INSERT INTO leads SELECT g, g % 50, CASE WHEN g % 3 = 0 THEN 'new' ELSE 'won' END, g % 7"
                     " FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX leads_tenant_status_idx ON leads (tenant_id, status)")
        conn.execute("ANALYZE leads")
        for tenant in range(3):
            conn.execute("SELECT id FROM leads WHERE tenant_id = %s AND status = %s", (tenant, "new"))
            conn.execute("SELECT count(*) FROM leads WHERE w = %s", (tenant,))
    return sandbox.dsn_for(name)


def test_expected_indexes_from_the_generic_plans(indexed_db, tmp_path, capsys):
    slo = _slo(tmp_path, '[budgets.indexes]\n"leads WHERE tenant_id AND status" = "leads_tenant_status_idx"\n'
                         '"leads WHERE w" = "leads_w_idx"\n"orders WHERE tenant_id" = "orders_tenant_idx"\n')
    assert main(["budgets", "--slo", str(slo), "--dsn", indexed_db, "--ci", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    verdicts = {(r["pattern"], r["verdict"]) for r in doc["indexes"]}
    assert ("leads WHERE tenant_id AND status", "uses it") in verdicts
    assert ("leads WHERE w", "does not use it") in verdicts
    assert ("orders WHERE tenant_id", "no statement matches") in verdicts
    missing = [f for f in doc["findings"] if f["kind"] == "missing_expected_index"]
    assert len(missing) == 1 and "leads_w_idx" in missing[0]["evidence"] and "Seq Scan on leads" in missing[0]["evidence"]


def test_budgets_junit_validates_and_fails_the_broken_limits(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    import xmlschema

    slo = _slo(tmp_path, ROUTES)
    out = tmp_path / "budgets.xml"
    assert main(["budgets", "--slo", str(slo), "--logs", str(LOGS / "jsonlog.json"), "--junit", str(out), "--ci"]) == 1
    xmlschema.XMLSchema(str(Path(__file__).parent / "fixtures" / "junit.xsd")).validate(str(out))
    cases = {c.get("name"): c for c in ET.parse(out).getroot().iter("testcase")}
    assert set(cases) == {"/api/invoices max_statements", "/api/invoices max_repeats", "/api/customers max_statements",
                          "/api/customers max_db_ms"}
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failed == {"/api/invoices max_statements", "/api/invoices max_repeats"}


def test_budgets_markdown_is_a_table(tmp_path, capsys):
    from markdown_it import MarkdownIt

    slo = _slo(tmp_path, ROUTES)
    assert main(["budgets", "--slo", str(slo), "--logs", str(LOGS / "jsonlog.json"), "--format", "markdown"]) == 0
    tokens = MarkdownIt("commonmark").enable("table").parse(capsys.readouterr().out)
    headers = [t.children[0].content for i, t in enumerate(tokens) if t.type == "inline" and tokens[i - 1].type == "th_open"]
    assert "route" in headers and "verdict" in headers
