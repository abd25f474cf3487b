"""``perfkit plan`` / ``perfkit explain``, compare() and the self-time chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from perfkit import cli
from perfkit.charts import plan_self_time
from perfkit.plans import compare, parse, parse_file

FIXTURES = Path(__file__).parent / "fixtures" / "plans"


@pytest.fixture()
def run(monkeypatch, capsys):
    """Run ``perfkit ARGS`` in-process (only this branch's commands) -> (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "COMMANDS", ("explain", "plan"))

    def invoke(*argv: str):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_plan_prints_tree_with_self_time_and_findings(run):
    code, out, err = run("plan", FIXTURES / "seq_scan.json")
    assert code == 0 and err == ""
    lines = out.splitlines()
    # the totals line names the file: wrapped when the checkout path is long
    assert " ".join(out.split()).startswith(f"plan from {FIXTURES / 'seq_scan.json'}, planning 0.34 ms, execution 258.38 ms")
    tree = [line for line in lines if line.rstrip().endswith(("Sort", "-> Seq Scan on orders"))]
    assert tree[0].split()[0] == "6.51" and " 3% " in tree[0] and not tree[0].startswith(">>")  # self ms, share
    # the hottest node: marked, its bar 97 % of 10 cells (9 full blocks and 6 eighths)
    assert tree[1].startswith(">>") and tree[1].split()[1:4] == ["251.43", "█████████▊", "97%"]
    assert "  -> Seq Scan on orders" in tree[1]
    below = lines[lines.index(tree[1]) + 1]
    assert below.split()[:3] == ["!!", "critical", "seq_scan_large_table:"]  # its finding, under it
    assert ">> hottest: #1 Seq Scan on orders, 251.4 ms (97 % of the plan's self time)" in out
    assert "Findings (2)" in out and "seq_scan_large_table" in out
    assert "CREATE INDEX CONCURRENTLY orders_tenant_id_status_created_at_idx ON orders (tenant_id, status, created_at);" in out


def test_plan_json_has_nodes_and_findings(run):
    code, out, _ = run("plan", FIXTURES / "text_unicode_border2.txt", "--json")
    payload = json.loads(out)
    assert code == 0
    assert [n["label"] for n in payload["nodes"]][:2] == ["Hash Join", "Aggregate"]
    assert payload["nodes"][1]["subplan_name"] == "InitPlan 1 (returns $0)"
    assert {"kind", "severity", "subject", "evidence", "recommendation", "sql", "benefit_ms"} <= set(payload["findings"][0])
    assert payload["format"] == "text" and payload["execution_ms"] > 0


def test_plan_reads_standard_input(run, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((FIXTURES / "text_never_executed.txt").read_text()))
    code, out, _ = run("plan", "-", "--top", "2")
    assert code == 0 and "(never executed)" not in out.split("Findings")[0]  # only the 2 slowest nodes
    assert "Findings (0)" in out and "(none)" in out


@pytest.mark.parametrize(
    "name, words",
    [("empty.txt", "empty"), ("truncated.json", "truncated JSON"), ("not_a_plan.txt", "not an EXPLAIN plan")],
)
def test_plan_bad_input_exits_2_naming_the_file(run, name, words):
    path = FIXTURES / "broken" / name
    code, out, err = run("plan", path)
    assert code == 2 and out == ""
    assert err.startswith(f"perfkit: error: {path}, line ") and words in err and err.count("\n") == 1


def test_explain_live_prints_plan_and_redacts_nothing_secret(run, sandbox, admin):
    admin.execute("CREATE TABLE IF NOT EXISTS cli_items AS SELECT i AS id, i % 10 AS grp FROM generate_series(1, 5000) i")
    secret = "s3cret-pw"
    dsn = sandbox.dsn.replace("postgres@", f"postgres:{secret}@")  # loopback trust: the password is ignored
    code, out, err = run("explain", "--dsn", dsn, "--sql", "SELECT count(*) FROM cli_items WHERE grp = 3", "--analyze")
    assert code == 0, err
    assert "Seq Scan on cli_items" in out and "execution" in out.splitlines()[0]
    assert secret not in out + err
    code, out, err = run("explain", "--dsn", dsn, "--sql", "SELECT * FROM cli_items WHERE grp = $1", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["sql"].endswith("$1") and secret not in out + err
    assert payload["server"].startswith("postgres@127.0.0.1")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--sql", "DELETE FROM cli_items", "--analyze"], "--allow-writes"),
        (["--sql", "SELECT 1; SELECT 2"], "exactly one SQL statement"),
        (["--sql", "SELECT * FROM cli_items WHERE grp = $1", "--analyze"], "--param"),
        (["--sql", "SELECT 1", "--set", "work_mem"], "NAME=VALUE"),
        (["--queryid", "42"], "not in pg_stat_statements"),
    ],
)
def test_explain_refusals_exit_2(run, sandbox, admin, args, words):
    admin.execute("CREATE TABLE IF NOT EXISTS cli_items AS SELECT i AS id, i % 10 AS grp FROM generate_series(1, 5000) i")
    secret = "an0ther-pw"
    code, out, err = run("explain", "--dsn", sandbox.dsn.replace("postgres@", f"postgres:{secret}@"), *args)
    assert code == 2 and out == "" and words in err and secret not in err


def test_explain_unreachable_server_exit_3_without_password(run):
    code, out, err = run("explain", "--dsn", "postgresql://bob:hunter22@127.0.0.1:1/db", "--sql", "SELECT 1")
    assert code == 3 and "hunter22" not in err and err.startswith("perfkit: error:")  # the environment


# --- compare -----------------------------------------------------------------------------------------
def test_compare_before_and_after_an_index():
    before, after = parse_file(FIXTURES / "seq_scan.json"), parse_file(FIXTURES / "seq_scan_after_index.json")
    result = compare(before, after)
    assert result.nodes[["status", "label_before", "label_after"]].values.tolist() == [
        ["same", "Sort", "Sort"],
        ["replaced", "Seq Scan on orders", "Bitmap Heap Scan on orders"],
        ["added", "", "Bitmap Index Scan on orders_tenant_id_status_created_at_idx"],
    ]
    totals = result.totals.set_index("metric")
    assert totals.at["execution_ms", "before"] == before.execution_ms and totals.at["execution_ms", "after"] == after.execution_ms
    assert totals.at["execution_ms", "ratio"] == pytest.approx(before.execution_ms / after.execution_ms)
    assert totals.at["shared_hit", "change"] == after.nodes["shared_hit"].iat[0] - before.nodes["shared_hit"].iat[0]
    assert result.summary.startswith("Execution time went from 258.4 ms to 173.7 ms (1.5x faster).")
    assert "Seq Scan on orders became Bitmap Heap Scan on orders" in result.summary


def test_compare_same_plan_and_estimates_only():
    plan = parse_file(FIXTURES / "cte.json")
    same = compare(plan, plan)
    assert (same.nodes["status"] == "same").all() and (same.nodes["self_ms_change"] == 0).all()
    assert "unchanged" in same.summary
    plain = compare(parse_file(FIXTURES / "plain.json"), parse_file(FIXTURES / "plain.json"))
    assert plain.summary.startswith("Estimated cost went from")


# --- chart -------------------------------------------------------------------------------------------
def test_self_time_chart_is_a_figure_of_the_slowest_nodes():
    plan = parse_file(FIXTURES / "slow_planning.json")
    fig = plan_self_time(plan, top=5)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 6  # 5 nodes + "19 other nodes"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "19 other nodes" and labels[0].startswith("#")
    heights = [p.get_width() for p in ax.patches]
    assert sum(heights) == pytest.approx(plan.nodes["self_ms"].sum())
    assert ax.get_xlabel() == "self time (ms)"


def test_chart_without_analyze_shows_estimated_cost():
    fig = plan_self_time(parse(FIXTURES.joinpath("text_costs_off.txt").read_text().replace("COSTS", "")))
    assert "estimated cost" in fig.axes[0].get_xlabel()
    fig = plan_self_time(parse_file(FIXTURES / "plain.json"))
    assert sum(p.get_width() for p in fig.axes[0].patches) == pytest.approx(parse_file(FIXTURES / "plain.json").nodes["total_cost"].iat[0])
