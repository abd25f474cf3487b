"""One assessment, three renderings: the CLI's --json, the notebook section and summary.json agree.

Each test reads the same input three ways - ``perfkit ... --json`` (perfkit.cli.main), the
notebook section (perfkit.sections) and a real ``perfkit report`` run (papermill) - and compares
the findings as (kind, severity, subject) sets. Plus the statement noise rules, as data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from perfkit import sections, statements
from perfkit.assessment import finding_keys
from perfkit.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
PLAN = SAMPLE / "plans" / "invoices-by-tenant.json"
AFTER = SAMPLE / "plans" / "invoices-by-tenant-after-index.json"


def cli_json(capsys, *argv) -> dict:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """``perfkit report NOTEBOOK`` on the sample data (01-workload, 02-plan, weekly), run once."""
    from perfkit.report import run_report

    out = tmp_path_factory.mktemp("reports")
    done = {}
    for name in ("01-workload", "02-plan", "weekly"):
        result = run_report(name, out=out, parameters={}, progress=False)
        assert result.ok, result.error
        done[name] = json.loads(result.summary.read_text())
    return done


def test_statements_render_one_assessment(capsys, tmp_path, reports):
    store = tmp_path / "store"
    shutil.copytree(SAMPLE / "store", store)
    payload = cli_json(capsys, "diff", "--store", str(store), "-n", "10", "--json")
    assert "findings" in payload and payload["findings"], "perfkit diff --json has the regressions"
    section = sections.week_over_week(sections.load_sources(sample=SAMPLE, store=store), n=10)
    summary = reports["01-workload"]
    cli, notebook = finding_keys(payload["findings"]), finding_keys(section.findings)
    assert cli == notebook == finding_keys(summary["findings"])
    assert {k for k, _, _ in cli} == {"regression"}
    # the same statements lead everywhere
    assert [str(r["queryid"]) for r in payload["statements"]][:5] == [str(q) for q in section["top"]["queryid"]][:5]
    assert summary["top_statements_basis"] == "interval"
    assert [r["queryid"] for r in summary["top_statements"]][:5] == [str(r["queryid"]) for r in payload["statements"]][:5]


def test_plans_render_one_assessment(capsys, reports):
    payload = cli_json(capsys, "plan", str(PLAN), str(AFTER), "--json")
    section = sections.plan(sections.load_sources(sample=SAMPLE, plans=PLAN), compare_with=AFTER)
    summary = reports["02-plan"]
    assert finding_keys(payload["findings"]) == finding_keys(section.findings) == finding_keys(summary["findings"])
    assert sum(summary["findings_by_severity"].values()) == len(payload["findings"]) >= 1
    assert summary["sections"] == {"plan": "ok"}
    assert "faster" in payload["comparison"]["summary"]
    # each fix is an object and its SQL is rendered from it
    fixed = [f for f in payload["findings"] if f["fix"]]
    assert fixed and all(f["sql"] == f["fix"]["sql"] for f in fixed)
    assert {r["sql"] for r in payload["recommendations"] if r["sql"]} <= {f["sql"] for f in fixed}


LOADTESTS = [SAMPLE / "loadtests" / "pgbench-before-index.log", SAMPLE / "loadtests" / "pgbench-after-index.log"]
LOG = SAMPLE / "logs" / "postgresql.json"


def _section_findings(summary: dict, key: str) -> list[dict]:
    return [f for f in summary["findings"] if f["section"] == key]


def test_loadtests_render_one_assessment(capsys, reports):
    payload = cli_json(capsys, "loadtest", *map(str, LOADTESTS), "--json")
    section = sections.loadtest(sections.load_sources(sample=SAMPLE, loadtest=LOADTESTS))
    summary = reports["weekly"]
    assert finding_keys(payload["findings"]) == finding_keys(section.findings) \
        == finding_keys(_section_findings(summary, "loadtest"))
    assert summary["slo_verdict"] == payload["slo_verdict"] == section.facts["slo_verdict"]
    assert {v["source"] for v in summary["slo"]} == {p.name for p in LOADTESTS}


def test_logs_render_one_assessment(capsys, reports):
    payload = cli_json(capsys, "logs", str(LOG), "--json")
    section = sections.server_logs(sections.load_sources(sample=SAMPLE, logs=LOG))
    summary = reports["weekly"]
    found = finding_keys(payload["findings"])
    assert found and found == finding_keys(section.findings) == finding_keys(_section_findings(summary, "logs"))
    assert "n_plus_one" in {kind for kind, _, _ in found}


def test_weekly_summary_counts_each_finding_once(reports):
    summary = reports["weekly"]
    assert sum(summary["findings_by_severity"].values()) == len(summary["findings"])
    assert summary["sections"]["overview"] == "ok" and not _section_findings(summary, "overview")
    assert summary["recommendations"] and summary["compared_with"]["snapshot"] is not None


NOISE = [
    ("/* perfkit */ SELECT * FROM pg_stat_statements", 5, "perfkit"),
    ("EXPLAIN (ANALYZE) SELECT * FROM orders", 3, "explain"),
    ("select current_schema()", 400, "driver"),
    ("SELECT pg_catalog.version()", 2, "driver"),
    ("SELECT pg_stat_statements_reset()", 1, "admin"),
    ("select pg_catalog.pg_terminate_backend($1)", 4, "admin"),
    ("show transaction isolation level", 900, "driver"),
    ("SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = $1", 4,
     "driver"),
    ("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace", 7,
     "driver"),
    ("CREATE INDEX CONCURRENTLY orders_tenant_idx ON orders (tenant_id)", 1, "one-off"),
    ("COPY orders FROM STDIN", 1, "one-off"),
    ("CREATE VIEW pg_stat_statements AS SELECT * FROM pg_stat_statements(true)", 3, "one-off"),
    ("GRANT SELECT ON pg_stat_statements TO PUBLIC", 4, "one-off"),
    ("CREATE TEMP TABLE staging (id int)", 5000, ""),
    ("INSERT INTO order_items (order_id, price) SELECT id, $1 FROM orders", 1, "one-off"),
    ("/* route='/api/x' */ ALTER TABLE orders ADD COLUMN note text", 1, "one-off"),
    ('SELECT $2 FROM ONLY "public"."tenants" x WHERE "id" OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x', 30000,
     "fk-check"),
    # the application's own work, also when it looks like the above
    ("INSERT INTO order_items (order_id, price) SELECT id, $1 FROM orders", 250, ""),
    ("INSERT INTO orders (tenant_id) VALUES ($1)", 1, ""),
    ("SELECT * FROM orders o JOIN pg_temp_orders t ON t.id = o.id", 3, ""),
    ("SELECT id FROM invoices WHERE tenant_id = $1", 1, ""),
    ("WITH x AS (SELECT 1) SELECT * FROM x", 8, ""),
]


@pytest.mark.parametrize(("query", "calls", "label"), NOISE)
def test_noise_labels(query, calls, label):
    frame = pd.DataFrame({"query": [query], "calls": [calls]})
    assert statements.noise(frame).tolist() == [label]


def test_noise_is_left_out_of_the_ranking_and_said(capsys):
    now = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [(q, c) for q, c, _ in NOISE]
    snap = pd.DataFrame({
        "queryid": range(len(rows)), "datname": "shop", "rolname": "app", "toplevel": True,
        "query": [q for q, _ in rows], "calls": [c for _, c in rows],
        "total_exec_ms": [1000.0 - i for i in range(len(rows))], "mean_exec_ms": 1.0, "rows": 1,
        "shared_blks_hit": 0, "shared_blks_read": 0, "temp_blks_read": 0, "temp_blks_written": 0,
        "blk_read_ms": 0.0, "blk_write_ms": 0.0, "captured_at": now, "server": "s",
    })
    result = statements.assess(snap, since=None, n=50)
    assert len(result.tables["statements"]) == sum(1 for *_, label in NOISE if not label)
    assert "Left out of the rankings: 16 statements" in result.notes[0]
    everything = statements.assess(snap, since=None, n=50, include_noise=True)
    assert len(everything.tables["statements"]) == len(NOISE) and not everything.notes


def test_health_renders_one_assessment(capsys, tenant_db, tmp_path):
    from perfkit.report import run_report

    payload = cli_json(capsys, "health", "--dsn", tenant_db, "--json")
    section = sections.health(sections.load_sources(tenant_db))
    result = run_report("04-health", out=tmp_path, dsn=tenant_db, progress=False)
    assert result.ok, result.error
    summary = json.loads(result.summary.read_text())
    cli = finding_keys(payload["findings"])
    assert {"missing_tenant_index", "missing_fk_index", "duplicate_index"} <= {kind for kind, _, _ in cli}
    assert cli == finding_keys(section.findings) == finding_keys(_section_findings(summary, "health"))
    # the recommendations: each fix once, rendered from its object, never the index it drops
    sql = [r["sql"] for r in payload["recommendations"] if r["sql"]]
    assert len(sql) == len(set(sql))
    dropped = [r["fix"]["name"] for r in payload["recommendations"] if (r["fix"] or {}).get("action") == "drop_index"]
    created = [r["fix"]["name"] for r in payload["recommendations"] if (r["fix"] or {}).get("action") == "create_index"]
    assert dropped and not set(dropped) & set(created)
