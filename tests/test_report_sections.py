"""perfkit.sections on the sample data: what each notebook section shows, records and skips."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from perfkit import sections
from perfkit.charts.statements import statement_label, top_statements_bar, week_over_week
from perfkit.findings import FINDING_COLUMNS

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
LOADTESTS = [SAMPLE / "loadtests" / "pgbench-before-index.log", SAMPLE / "loadtests" / "pgbench-after-index.log"]


@pytest.fixture()
def src(tmp_path):
    return sections.load_sources(sample=SAMPLE, loadtest=LOADTESTS, logs=SAMPLE / "logs" / "postgresql.json",
                                 plans=SAMPLE / "plans" / "invoices-by-tenant.json", facts=tmp_path / "facts.json")


def test_sample_sources_need_no_database(src, monkeypatch):
    assert not src.live and "sample data" in src.describe() and "pgbench-before-index.log" in src.describe()
    snap, path = src.current_snapshot()
    assert path.suffix == ".parquet" and len(snap) and (snap["server"] == "sample").all()
    monkeypatch.setenv("PERFKIT_DSN", "")
    assert not sections.load_sources(sample=SAMPLE).live


def test_workload_and_week_over_week_find_the_regression(src):
    workload = sections.workload(src, n=5)
    assert not workload.skipped and len(workload["top"]) == 5
    assert any(isinstance(b, Figure) for b in workload.blocks)
    wow = sections.week_over_week(src, since="7d", n=5)
    text = " ".join(b for b in wow.blocks if isinstance(b, str))
    assert "not 7d" in text  # the sample snapshots are seconds apart, and the section says so
    assert wow.facts["baseline"]["hours_before"] < 1
    regressed = wow.findings[wow.findings["kind"] == "regression"]
    assert regressed["subject"].str.contains("FROM invoices WHERE tenant_id").any()
    assert list(wow.findings.columns[: len(FINDING_COLUMNS)]) == FINDING_COLUMNS


def test_regressions_thresholds():
    from perfkit.statements import regressions

    changes = pd.DataFrame({
        "status": ["changed", "changed", "changed", "new", "changed"], "calls": [100, 1000, 5, 100, 50],
        "mean_exec_ms": [4.0, 1.2, 10.0, 9.0, 0.002], "prev_mean_exec_ms": [1.0, 1.0, 1.0, None, 0.001],
        "query": ["SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "ROLLBACK"], "queryid": [1, 2, 3, 4, 5],
    })
    found = regressions(changes)
    assert found[["subject", "severity"]].values.tolist() == [["SELECT 1", "critical"]]
    assert regressions(changes, warning=1.1)["subject"].tolist() == ["SELECT 1", "SELECT 2"]
    # twice as slow, but 0.05 ms more in all: no regression, whatever the ratio
    assert "ROLLBACK" not in set(regressions(changes, warning=1.1, min_added_ms=0.01)["subject"]) - {"ROLLBACK"}
    assert "ROLLBACK" in set(regressions(changes, min_added_ms=0.01)["subject"])
    assert "ROLLBACK" not in set(regressions(changes)["subject"])


def test_no_baseline_is_said_plainly(tmp_path):
    store = tmp_path / "store"
    one = sorted((SAMPLE / "store").rglob("*.parquet"))[-1]
    target = store / one.relative_to(SAMPLE / "store")
    target.parent.mkdir(parents=True)
    target.write_bytes(one.read_bytes())
    wow = sections.week_over_week(sections.load_sources(sample=SAMPLE, store=store))
    assert wow.facts["baseline"] is None and "No stored snapshot of sample" in wow.blocks[0]


def test_sections_record_their_facts_for_summary_json(src):
    src.record(sections.loadtest(src))
    src.record("logs", sections.server_logs(src))  # the older spelling; the key is the section's own
    sections.week_over_week(src)  # built from these Sources: it records itself
    facts = json.loads(src.facts_path.read_text())
    assert facts["loadtest"]["source"] == "loadtests" and facts["loadtest"]["skipped"] is None
    assert facts["loadtest"]["facts"]["slo_verdict"] == "pass"
    assert "n_plus_one" in {f["kind"] for f in facts["logs"]["findings"]}
    assert facts["week_over_week"]["source"] == "statements"
    assert "regression" in {f["kind"] for f in facts["week_over_week"]["findings"]}
    assert not list(src.facts_path.parent.glob("*.tmp"))


def test_plan_health_and_recommendations_on_sample(src):
    plan = sections.plan(src, compare_with=SAMPLE / "plans" / "invoices-by-tenant-after-index.json")
    assert "faster" in plan["comparison"].summary and len(plan["plan"].nodes) >= 2
    health = sections.health(src)
    assert {"missing_tenant_index", "missing_fk_index"} <= set(health.findings["kind"])
    advice = sections.recommendations(src, [health, plan])
    assert len(advice["recommendations"]) and "CREATE INDEX" in " ".join(advice["recommendations"]["sql"])


def test_missing_sources_and_modules_are_one_line(tmp_path, monkeypatch):
    bare = sections.load_sources(sample=SAMPLE)
    assert sections.loadtest(bare).skipped.endswith("no load-test file given, so there are no SLO verdicts in this report.")
    assert sections.server_logs(bare).skipped == "Server log: no log file given."
    assert sections.plan(bare).skipped.startswith("Plan deep-dive: no plan file given")
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    unreadable = sections.loadtest(sections.load_sources(sample=SAMPLE, loadtest=[broken]))
    assert unreadable.skipped.startswith("Load tests: ") and "broken.json" in unreadable.skipped
    real_find_spec = sections.importlib.util.find_spec
    monkeypatch.setattr(sections.importlib.util, "find_spec",
                        lambda name: None if name == "perfkit.loadtests" else real_find_spec(name))
    missing = sections.loadtest(sections.load_sources(sample=SAMPLE, loadtest=LOADTESTS))
    assert missing.skipped == "Load tests: perfkit.loadtests is not in this installation, so this section is empty."
    assert missing.blocks == [f"*{missing.skipped}*"]


def test_a_bad_parameter_is_not_a_missing_source(src):
    with pytest.raises(Exception, match="-n must be above 0"):
        sections.workload(src, n=0)


def test_overview_counts_every_section(src):
    parts = [sections.week_over_week(src), sections.health(src), sections.loadtest(sections.load_sources(sample=SAMPLE))]
    overview = sections.overview(parts)
    total = sum(len(p.findings) for p in parts)
    assert sum(overview.facts["findings_by_severity"].values()) == total
    assert overview.facts["skipped_sections"] == [parts[2].skipped]


def test_statement_charts():
    frame = pd.DataFrame({"query": ["/* route='/a' */ SELECT a FROM t WHERE b = $1 LIMIT $2", "SELECT 2"],
                          "total_exec_ms": [3.0, 1.0], "mean_exec_ms": [2.0, 0.5],
                          "prev_mean_exec_ms": [1.0, None], "status": ["changed", "new"]})
    assert statement_label(frame["query"][0]) == r"SELECT a FROM t WHERE b = \$1 LIMIT \$2"
    for fig in (top_statements_bar(frame), week_over_week(frame)):
        assert isinstance(fig, Figure) and sections.figure_png(fig).startswith(b"\x89PNG")
    assert isinstance(top_statements_bar(frame.iloc[:0]), Figure)


def test_prose_cells_render_their_code_spans_and_keep_bare_parameters_in_code():
    import pandas as pd

    from perfkit.display import html_table

    page = html_table(pd.DataFrame({"recommendation": ["Use `= ANY($1)` instead of an IN list <of ids>",
                                                       "the list query SELECT id FROM t WHERE a = $1 and `x`"]}))
    assert "Use <code>= ANY($1)</code> instead of an IN list &lt;of ids&gt;" in page and "`" not in page.split("</tr>")[1]
    assert "<code>the list query SELECT id FROM t WHERE a = $1 and `x`</code>" in page  # a bare $1: all of it code
