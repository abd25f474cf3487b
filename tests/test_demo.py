"""The demo: the shop and its planted problems, the HTTP API, the Locust run, and the whole loop end to end.

One module-scoped sandbox holds a small shop; the end-to-end test starts its own, as ``perfkit demo`` does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from perfkit import db, loadtests, statements
from perfkit.demo import loop
from perfkit.demo import shop as demo_shop
from perfkit.demo.app import DemoApp
from perfkit.errors import BadInputError
from perfkit.sandbox import Sandbox

SMALL = demo_shop.ShopSize.scaled(0.05)


@pytest.fixture(scope="module")
def shop():
    """A sandbox with a small shop, its app role, and the shop's facts."""
    with Sandbox() as sandbox:
        database = loop.DemoDatabase(sandbox, sandbox.dsn)
        with database.admin_connect() as conn:
            demo_shop.build_shop(conn, SMALL)
            demo_shop.plant_settings(conn)
            database.create_app_role(conn)
            facts = demo_shop.shop_facts(conn)
        yield database, facts


@pytest.fixture(scope="module")
def app(shop):
    database, _facts = shop
    with DemoApp(database.app_dsn, pool_size=4) as running:
        yield running


def _get(url: str) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


# -- the shop -----------------------------------------------------------------------------------

def test_tenants_are_of_very_different_sizes(shop):
    database, facts = shop
    with database.admin_connect() as conn:
        counts = [row[0] for row in conn.execute("SELECT count(*) FROM orders GROUP BY tenant_id ORDER BY 1 DESC")]
    assert len(counts) == SMALL.tenants
    assert sum(counts) == pytest.approx(SMALL.orders, rel=0.05)
    # a few large tenants, many small ones
    assert counts[0] > 20 * counts[len(counts) // 2]
    assert max(facts.tenant_weights) == pytest.approx(counts[0] / sum(counts))


@pytest.mark.parametrize(
    "sql, expected",
    [
        # no index on invoices leads with tenant_id (the invoice list filters on it)
        ("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
         "WHERE i.indrelid = 'invoices'::regclass AND a.attname = 'tenant_id'", 0),
        # invoices.order_id is a foreign key without an index
        ("SELECT count(*) FROM pg_constraint c WHERE c.conrelid = 'invoices'::regclass AND c.contype = 'f' "
         "AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'invoices'::regclass "
         "AND attname = 'order_id')]::int2[]", 1),
        ("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
         "WHERE i.indrelid = 'invoices'::regclass AND a.attname = 'order_id'", 0),
        # two indexes on orders (tenant_id)
        ("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders' AND indexdef LIKE '%(tenant_id)'", 2),
        ("SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_status_total_idx'", 1),
        # audit_logs: autovacuum off
        ("SELECT count(*) FROM pg_class WHERE relname = 'audit_logs' AND 'autovacuum_enabled=false' = ANY(reloptions)", 1),
        # the database's work_mem, for every new session
        ("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
         "WHERE d.datname = current_database() AND 'work_mem=64kB' = ANY(s.setconfig)", 1),
    ],
)
def test_planted_problems_are_in_the_catalog(shop, sql, expected):
    database, _facts = shop
    with database.admin_connect() as conn:
        assert conn.execute(sql).fetchone()[0] == expected


def test_audit_logs_carry_dead_rows(shop):
    database, _facts = shop
    with database.admin_connect() as conn:
        live, dead = conn.execute(
            "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'audit_logs'"
        ).fetchone()
        others = conn.execute(
            "SELECT max(n_dead_tup) FROM pg_stat_user_tables WHERE relname <> 'audit_logs'"
        ).fetchone()[0]
    assert dead > live * 0.5
    assert others == 0


def test_sales_report_sort_spills_to_disk(shop):
    database, facts = shop
    biggest = facts.tenants[facts.tenant_weights.index(max(facts.tenant_weights))]
    with database.admin_connect() as conn:  # the database's work_mem holds for every role
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + demo_shop.SALES_REPORT_SQL, (biggest,)).fetchone()[0]
    text = json.dumps(plan)
    assert '"Sort Space Type": "Disk"' in text


def test_drop_shop_drops_only_the_demos_tables():
    with Sandbox() as sandbox, sandbox.admin_connect() as conn:
        conn.execute("CREATE TABLE keep_me (id int)")
        demo_shop.build_shop(conn, demo_shop.ShopSize(tenants=5, users=50, products=20, orders=200, audit=100, messages=50))
        assert sorted(demo_shop.drop_shop(conn)) == sorted(demo_shop.SHOP_TABLES)
        assert demo_shop.existing_tables(conn) == ["public.keep_me"]


def test_scratch_database_must_be_empty_unless_forced():
    with Sandbox() as sandbox:
        with sandbox.admin_connect() as conn:
            conn.execute("CREATE TABLE customer_data (id int)")
        with pytest.raises(BadInputError, match="not empty"):
            loop.DemoDatabase.scratch(sandbox.dsn)
        database = loop.DemoDatabase.scratch(sandbox.dsn, force=True)
        assert database.sandbox is None and not database.logs_collected


# -- the HTTP API -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "path, route",
    [
        ("/api/invoices?tenant={tenant}", "/api/invoices"),
        ("/api/orders/{order}", "/api/orders/<id>"),
        ("/api/dashboard/analytics?tenant={tenant}", "/api/dashboard/analytics"),
        ("/api/products?tenant={tenant}", "/api/products"),
        ("/api/reports/sales?tenant={tenant}", "/api/reports/sales"),
    ],
)
def test_endpoints_answer(shop, app, path, route):
    _database, facts = shop
    status, headers, body = _get(app.url + path.format(tenant=facts.tenants[0], order=facts.max_order_id))
    assert status == 200
    assert body["route"] == route
    assert body["data"]
    assert headers["X-Request-Id"]


@pytest.mark.parametrize(
    "path, status",
    [("/api/invoices", 400), ("/api/invoices?tenant=abc", 400), ("/api/nothing", 404), ("/api/orders/999999999", 404)],
)
def test_bad_requests_are_client_errors(app, path, status):
    assert _get(app.url + path)[0] == status


def test_app_listens_on_loopback_only(app):
    assert app.url.startswith("http://127.0.0.1:")


def test_statements_carry_request_comments(shop, app):
    database, facts = shop
    request_id = "req-test-comments-1"
    request = urllib.request.Request(app.url + f"/api/dashboard/analytics?tenant={facts.tenants[0]}",
                                     headers={"X-Request-Id": request_id})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["X-Request-Id"] == request_id
    engine = db.connect(database.dsn)
    try:
        snap = statements.snapshot(engine)
    finally:
        engine.dispose()
    mine = snap[snap["rolname"] == loop.APP_ROLE]
    assert len(mine) >= 2, mine["query"].tolist()
    assert mine["query"].str.contains("route='%2Fapi%2F", regex=False).all()
    assert mine["query"].str.contains("request_id='", regex=False).all()


def test_sqlcommenter_format():
    assert demo_shop.comment("/api/orders/<id>", "ab12") == (
        " /*application='shop',request_id='ab12',route='%2Fapi%2Forders%2F%3Cid%3E'*/"
    )


def test_app_stops_cleanly(shop):
    database, _facts = shop
    running = DemoApp(database.app_dsn, pool_size=2).start()
    url = running.url
    assert _get(url + "/health")[0] == 200
    running.stop()
    running.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=5)


# -- the load test ------------------------------------------------------------------------------

def test_locust_run_writes_csv_per_endpoint(shop, app, tmp_path, monkeypatch):
    _database, facts = shop
    monkeypatch.chdir(tmp_path.parent)  # a relative folder, as `perfkit demo --out reports` gives
    stats, output = loop.run_locust(app.url, Path(tmp_path.name), facts, users=4, duration_s=4)
    assert stats == tmp_path / "locust_stats.csv"
    for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv"):
        assert (tmp_path / f"locust{suffix}").exists()
    table = pd.read_csv(stats)
    by_name = table.set_index("Name")
    # one row per endpoint requested: the routes of weight 4 and more (20%+ of the requests each)
    # always are in 4 s; a route of weight 1 may not be on a loaded machine (one in 19 requests)
    assert set(by_name.index) <= {route.route for route in demo_shop.ROUTES} | {"Aggregated"}
    for route in demo_shop.ROUTES:
        if route.weight >= 4:
            assert by_name.loc[route.route, "Request Count"] > 0, route.route
    assert by_name.loc["Aggregated", "Failure Count"] == 0
    assert "Response time percentiles" in output


def test_locust_targets_only_loopback(tmp_path):
    with pytest.raises(BadInputError, match="127.0.0.1"):
        loop.locust_command("http://example.com:80", tmp_path / "x", users=1, duration_s=1)


def test_locustfile_weights_match_the_routes():
    text = loop.LOCUSTFILE.read_text()
    for route in demo_shop.ROUTES:
        assert f'name="{route.route}"' in text
    weights = [int(w) for w in __import__("re").findall(r"@task\((\d+)\)", text)]
    assert weights == [route.weight for route in demo_shop.ROUTES]


# -- applying recommendations -------------------------------------------------------------------

RECOMMENDATIONS = pd.DataFrame(
    [
        ("VACUUM (ANALYZE) public.audit_logs;", "vacuum_overdue"),
        ("CREATE INDEX CONCURRENTLY a_idx ON public.invoices (tenant_id, created_at);", "index_advice"),
        ("DROP INDEX CONCURRENTLY public.orders_tenant_id_idx;", "duplicate_index"),
        ("CREATE INDEX CONCURRENTLY a_idx ON public.invoices (tenant_id, created_at);", "missing_tenant_index"),
        # the same index under another name and without the schema: counted once
        ("CREATE INDEX CONCURRENTLY other_name ON invoices ( tenant_id,created_at )", "rows_removed_by_filter"),
        ("CREATE INDEX CONCURRENTLY a_idx ON public.invoices (tenant_id); VACUUM invoices", "index_advice"),
        ("create unique index b_idx on public.x (y)", "index_advice"),
        ("CREATE INDEX CONCURRENTLY c_idx ON public.orders (user_id);", "missing_fk_index"),
        ("", "n_plus_one"),
    ],
    columns=["sql", "kind"],
)


@pytest.mark.parametrize(
    "top, expected",
    [
        (1, ["CREATE INDEX CONCURRENTLY a_idx ON public.invoices (tenant_id, created_at)"]),
        (2, ["CREATE INDEX CONCURRENTLY a_idx ON public.invoices (tenant_id, created_at)",
             "create unique index b_idx on public.x (y)"]),
        (9, ["CREATE INDEX CONCURRENTLY a_idx ON public.invoices (tenant_id, created_at)",
             "create unique index b_idx on public.x (y)",
             "CREATE INDEX CONCURRENTLY c_idx ON public.orders (user_id)"]),
    ],
)
def test_index_fixes_take_the_top_distinct_index_statements_in_rank_order(top, expected):
    assert loop.index_fixes(RECOMMENDATIONS, top)["sql"].tolist() == expected


def test_index_fixes_of_nothing():
    assert loop.index_fixes(pd.DataFrame(columns=["sql"]), 3).empty
    assert loop.index_fixes(None, 3).empty


def test_p95_chart_has_two_labelled_bars_per_endpoint_and_leaves_out_the_aggregate(tmp_path):
    from matplotlib.figure import Figure

    from perfkit.charts import p95_before_after

    table = pd.DataFrame({"endpoint": ["/api/invoices", "/api/products", "ALL"],
                          "p95_before_ms": [420.0, 30.0, 400.0], "p95_after_ms": [12.0, 29.0, 20.0]})
    figure = p95_before_after(table, title="before/after")
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["/api/products", "/api/invoices"]
    assert sorted(bar.get_width() for bar in ax.patches) == [12.0, 29.0, 30.0, 420.0]
    assert {text.get_text() for text in ax.texts} == {" 420 ms", " 12 ms", " 30 ms", " 29 ms"}
    figure.savefig(tmp_path / "p95.png")
    assert (tmp_path / "p95.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_apply_fixes_reports_each_statement_through_verify():
    with Sandbox() as sandbox, sandbox.admin_connect() as conn:
        conn.execute("CREATE TABLE t (a int, b int)")
        conn.execute("INSERT INTO t SELECT g, g FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX t_b_idx ON t (b)")
        conn.execute("ANALYZE t")
        for i in range(5):
            conn.execute("SELECT b FROM t WHERE a = %s", (i,))
        fixes = pd.DataFrame({"sql": ["CREATE INDEX CONCURRENTLY t_a_idx ON t (a)", "CREATE INDEX CONCURRENTLY x ON missing (a)",
                                      "CREATE INDEX CONCURRENTLY t_b_idx ON public.t (b, a)"]})
        done = loop.apply_fixes(sandbox.dsn, fixes, runs=3)
        assert done["status"].tolist() == ["applied", "failed", "exists"]
        assert "missing" in done["error"].iloc[1]
        assert done["verified"].iloc[0].startswith("verified: ") and done["speedup"].iloc[0] > 1
        # kept for the next load test, as perfkit verify --keep leaves it
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 't_a_idx'").fetchone()[0] == 1


# -- the whole loop -----------------------------------------------------------------------------

PLANTED_KINDS = ["missing_tenant_index", "missing_fk_index", "duplicate_index", "unused_index", "table_bloat",
                 "sort_spill", "n_plus_one"]


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory):
    """``perfkit demo`` at a small scale with seconds of load, run once for the tests below."""
    out = tmp_path_factory.mktemp("reports")
    result = loop.run_demo(loop.DemoOptions(scale=0.4, users=4, duration_s=8, top=3, out=out))
    return result


@pytest.mark.slow
@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_short_demo_finds_each_planted_problem(short_demo, kind):
    assert kind in set(short_demo.findings["kind"]), sorted(set(short_demo.findings["kind"]))


@pytest.mark.slow
def test_short_demo_finds_the_planted_objects(short_demo):
    found = short_demo.findings
    subjects = lambda kind: " ".join(found.loc[found["kind"] == kind, "subject"].astype(str))  # noqa: E731
    assert "invoices" in subjects("missing_tenant_index")
    assert "orders_tenant_id_idx" in subjects("duplicate_index") or "orders_tenant_idx" in subjects("duplicate_index")
    assert "orders_status_total_idx" in subjects("unused_index")
    assert "audit_logs" in subjects("table_bloat")
    assert "/api/reports/sales" in set(found.loc[found["kind"] == "sort_spill", "endpoint"])
    assert "/api/dashboard/analytics" in subjects("n_plus_one")


@pytest.mark.slow
def test_short_demo_applies_the_reports_own_recommendations(short_demo):
    table = pd.read_csv(short_demo.run_dir / "before" / "recommendations.csv")
    # the weekly report's own recommendations, not the demo's
    assert table["source"].astype(str).str.startswith("report").all()
    assert short_demo.reports["report before"].joinpath("weekly.html").exists()
    recommended = {text.strip().rstrip(";") for text in table["sql"].fillna("")}
    fixes = short_demo.fixes
    assert len(fixes) >= 2
    assert set(fixes["status"]) == {"applied"}
    assert set(fixes["sql"]) <= recommended
    # the tenant-scoped invoice list got an index leading with (tenant_id, created_at)
    assert any(loop.index_key(sql)[:3] == ("invoices", "btree", "tenant_id,created_at") for sql in fixes["sql"])


@pytest.mark.slow
def test_short_demo_fixed_endpoint_is_faster_measured(short_demo):
    p95 = short_demo.p95.set_index("endpoint")
    assert p95.loc["/api/invoices", "p95_after_ms"] < p95.loc["/api/invoices", "p95_before_ms"]
    assert p95.loc["/api/invoices", "requests_after"] > 0
    changes = short_demo.statement_changes
    invoice_list = changes[changes["query"].str.contains("FROM invoices WHERE tenant_id", regex=False)].iloc[0]
    assert invoice_list["mean_ms_after"] < invoice_list["mean_ms_before"] / 5
    plans = short_demo.plan_changes.set_index("endpoint")
    assert "Seq Scan on invoices" in plans.loc["/api/invoices", "nodes_before"]
    # the after report tells the story: the latest run is judged, the invoice list got faster per call
    after = json.loads(short_demo.reports["report after"].joinpath("summary.json").read_text())
    latest = loadtests.assess([short_demo.rounds["after"].stats_csv], slo=loop.slo_targets())
    assert after["status"] == "ok" and after["slo_verdict"] == latest.facts["slo_verdict"]
    improved = [row for row in after["per_call"]["improved"] if "FROM invoices WHERE tenant_id" in row["query"]]
    assert improved and improved[0]["after_ms"] < improved[0]["before_ms"] / 5
    assert "Seq Scan" not in plans.loc["/api/invoices", "nodes_after"]


@pytest.mark.slow
def test_short_demo_shows_database_time_per_route_for_both_runs(short_demo):
    routes = short_demo.routes.set_index("endpoint")
    invoices = routes.loc["/api/invoices"]
    assert invoices["attributed_by"] == "route comment"  # the shop's statements carry sqlcommenter routes
    assert invoices["db_ms_per_request_after"] < invoices["db_ms_per_request_before"]
    assert invoices["statements_per_request_before"] >= 1
    # the dashboard's N+1: many statements per request
    assert routes.loc["/api/dashboard/analytics", "statements_per_request_before"] > 5
    assert (short_demo.run_dir / "comparison" / "routes.csv").exists()


@pytest.mark.slow
def test_short_demo_leaves_its_evidence(short_demo):
    run = short_demo.run_dir
    for label in ("before", "after"):
        assert (run / label / f"locust-{label}_stats.csv").exists()
        assert list((run / label / "logs").glob("*.json")), "the server log of the load test"
        assert len(list((run / label / "snapshots").rglob("*.parquet"))) == 2
    assert (run / "comparison" / "p95.png").stat().st_size > 10_000
    assert set(short_demo.timings) == set(loop.STEPS)
    assert not short_demo.dsn  # not --keep: the sandbox is gone


TINY = dict(scale=0.05, users=2, duration_s=4, top=2)


@pytest.mark.slow
def test_demo_on_a_scratch_database_the_user_gives(tmp_path):
    with Sandbox() as sandbox:
        # more load than TINY: the pg_stat_statements-only N+1 needs >= 30 lookups of a route
        result = loop.run_demo(loop.DemoOptions(dsn=sandbox.dsn, out=tmp_path, **{**TINY, "users": 4, "duration_s": 10}))
        assert sandbox.is_accepting()  # the user's server: the demo does not stop it
        with sandbox.admin_connect() as conn:
            tables = {name.split(".", 1)[1] for name in demo_shop.existing_tables(conn)}
        assert set(demo_shop.SHOP_TABLES) <= tables
    assert not (result.run_dir / "before" / "logs").exists()  # no server log to collect
    # from pg_stat_statements alone, per route (the statements' comments, Locust's request counts)
    n_plus_one = result.findings[result.findings["kind"] == "n_plus_one"]
    assert "/api/dashboard/analytics" in set(n_plus_one["route"])
    assert set(result.fixes["status"]) == {"applied"}


@pytest.mark.slow
def test_cli_demo_keep_leaves_the_sandbox_running_and_prints_what_it_measured(tmp_path, monkeypatch, capsys):
    from perfkit.cli import main
    from perfkit.sandbox import SandboxState

    monkeypatch.setattr(loop, "DEFAULT_STATE_DIR", tmp_path / "state")
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["demo", "--keep", "--out", str(tmp_path / "reports"), "--scale", str(TINY["scale"]),
            "--users", str(TINY["users"]), "--duration", str(TINY["duration_s"]), "--top", str(TINY["top"])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    state = SandboxState.load(tmp_path / "state" / "state.json")
    sandbox = Sandbox.attach(state)
    try:
        assert f"the database is still running: {state.dsn}" in out
        assert sandbox.is_accepting()
        engine = db.connect(state.dsn)
        try:
            assert db.query(engine, "SELECT count(*) AS n FROM invoices")["n"].iloc[0] > 0
        finally:
            engine.dispose()
    finally:
        sandbox.stop()
    for text in ("what perfkit found before the fixes", "p95 latency per endpoint", "fixes applied",
                 "/api/invoices", "wall time per step", *loop.STEPS):
        assert text in out, text
    # 100 columns, but for the lines naming a file or the DSN (a path is not cut)
    too_wide = [line for line in out.splitlines() if len(line) > 100 and str(tmp_path) not in line
                and not line.startswith("the database is still")]
    assert not too_wide, too_wide[:3]


def test_cli_refuses_bad_options(capsys):
    from perfkit.cli import main

    assert main(["demo", "--scale", "0"]) == 2
    assert "--scale" in capsys.readouterr().err
    assert main(["demo", "--force"]) == 2
    assert main(["demo", "--duration", "601"]) == 2
    assert main(["demo", "--keep", "--dsn", "postgresql://x@127.0.0.1:1/y"]) == 2


def test_cli_refuses_a_non_empty_scratch_database(capsys):
    from perfkit.cli import main

    with Sandbox() as sandbox:
        with sandbox.admin_connect() as conn:
            conn.execute("CREATE TABLE accounts (id int)")
        assert main(["demo", "--dsn", sandbox.dsn]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err


def test_write_sample_data_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(BadInputError, match="not a finished demo run"):
        loop.write_sample_data(tmp_path, tmp_path / "sample")


@pytest.mark.slow
def test_write_sample_data_copies_the_runs_real_outputs(short_demo, tmp_path):
    written = loop.write_sample_data(short_demo.run_dir, tmp_path / "sample")
    root = tmp_path / "sample" / "demo"
    names = {path.relative_to(root).as_posix() for path in written}
    for expected in ("loadtests/locust-before-fix_stats.csv", "loadtests/locust-after-fix_stats.csv",
                     "logs/demo-api-before-fix.json", "plans/api_invoices-before-fix.json",
                     "plans/api_invoices-after-fix.json", "plans/api_invoices.sql", "findings/recommendations.csv",
                     "comparison/p95.csv", "comparison/p95.png", "origin.json", "README.md"):
        assert expected in names, expected
    assert len(list((root / "store").rglob("*.parquet"))) == 4
    log_lines = (root / "logs" / "demo-api-before-fix.json").read_text().splitlines()
    assert 0 < len(log_lines) <= loop.SAMPLE_LOG_LINES
    assert all(json.loads(line)["timestamp"] for line in log_lines)
    # the copies read back with perfkit's own readers
    from perfkit import loadtests, plans

    assert "/api/invoices" in set(loadtests.read(root / "loadtests" / "locust-after-fix_stats.csv").summary["endpoint"])
    assert plans.parse_file(root / "plans" / "api_invoices-before-fix.json").nodes["relation"].eq("invoices").any()


def test_scratch_database_without_pg_stat_statements_is_refused_in_one_line():
    from perfkit.errors import ExtensionMissing

    with Sandbox() as sandbox:
        with sandbox.admin_connect("postgres") as conn:
            conn.execute("CREATE ROLE scratch_owner LOGIN PASSWORD 's3cret-pw'")
            conn.execute("CREATE DATABASE scratch OWNER scratch_owner")
        dsn = sandbox.dsn_for("scratch", user="scratch_owner", password="s3cret-pw")
        with pytest.raises(ExtensionMissing, match="pg_stat_statements") as caught:
            loop.DemoDatabase.scratch(dsn)
    assert "s3cret-pw" not in str(caught.value)


def _report_with(summary: dict):
    from types import SimpleNamespace

    return SimpleNamespace(summary_data=summary)


@pytest.mark.parametrize(
    "summary, expected",
    [
        # summary.json's recommendations, in their order, those with SQL
        ({"recommendations": [{"sql": "CREATE INDEX a ON t (x);"}, {"sql": ""}, {"sql": "VACUUM t;"}]},
         ["CREATE INDEX a ON t (x);", "VACUUM t;"]),
        ({"findings": [{"kind": "n_plus_one"}]}, []),
        ({}, []),
    ],
)
def test_report_recommendations_are_read_from_the_report(summary, expected):
    found = loop.report_recommendations(_report_with(summary))
    assert found["sql"].tolist() == expected
