"""The workload-wide index advisor and the false alarms of issue 18, on a database of their own.

The planted schema is not the demo shop: a soft-delete table, a hot tenant list, an index-only
lookup, a write-heavy log, a table its primary key serves, camelCase tenant columns (Prisma
style), a table the monitoring role may not read, a snapshot holding the xmin horizon, and a
sequence the monitoring role cannot see.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from perfkit import advice, advisor, db, health
from perfkit.health import maintenance, tables
from perfkit.sql import qualified

NAME = "advisor18"
RO = "advisor18_ro"
CALLS = 60


@pytest.fixture(scope="module")
def planted(sandbox):
    """The database's DSN (superuser) and the read-only monitoring role's DSN."""
    with sandbox.admin_connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {NAME}")
        conn.execute(f"CREATE DATABASE {NAME}")
        conn.execute(f"DROP ROLE IF EXISTS {RO}")
        conn.execute(f"CREATE ROLE {RO} LOGIN PASSWORD 'ro' IN ROLE pg_monitor")
    with sandbox.admin_connect(NAME, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")  # hint bits at once: VACUUM marks the pages all-visible
        for statement in f"""
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
            CREATE EXTENSION IF NOT EXISTS hypopg;
            CREATE TABLE tenants (id int PRIMARY KEY);
            INSERT INTO tenants SELECT generate_series(1, 50);
            -- soft delete: most rows deleted, every statement reads the live ones
            CREATE TABLE docs (id int PRIMARY KEY, tenant_id int NOT NULL, deleted_at timestamptz, title text);
            INSERT INTO docs SELECT g, 1 + g % 50, CASE WHEN g % 10 <> 0 THEN now() END, 'doc ' || g
                FROM generate_series(1, 20000) g;
            -- the hot tenant list
            CREATE TABLE tickets (id int PRIMARY KEY, tenant_id int NOT NULL, status text NOT NULL,
                                  created_at timestamptz NOT NULL, subject text);
            INSERT INTO tickets SELECT g, 1 + g % 50, (ARRAY['open','closed','pending','spam'])[1 + g % 4],
                now() - g * interval '1 minute', 'ticket ' || g FROM generate_series(1, 30000) g;
            -- an index the proposal makes redundant
            CREATE INDEX tickets_tenant_idx ON tickets (tenant_id);
            -- an index-only lookup: the sum needs one column besides the key
            CREATE TABLE payments (id int PRIMARY KEY, account_id int NOT NULL, amount numeric NOT NULL,
                                   memo text);
            INSERT INTO payments SELECT g, (g * 7919) % 100, g % 1000, repeat('m', 60) FROM generate_series(1, 50000) g;
            -- a write-heavy log, read twice
            CREATE TABLE event_log (id bigserial PRIMARY KEY, kind text, payload text);
            -- the primary key serves its statement
            CREATE TABLE plans (id int PRIMARY KEY, name text);
            INSERT INTO plans SELECT g, 'plan ' || g FROM generate_series(1, 5000) g;
            -- Prisma: camelCase, the tenant key a foreign key to "Company"
            CREATE TABLE "Company" (id int PRIMARY KEY);
            INSERT INTO "Company" SELECT generate_series(1, 50);
            CREATE TABLE "Project" (id int PRIMARY KEY, "companyId" int NOT NULL REFERENCES "Company"(id),
                                    state text NOT NULL, "createdAt" timestamptz NOT NULL, name text);
            INSERT INTO "Project" SELECT g, 1 + g % 50, (ARRAY['a','b','c'])[1 + g % 3], now() - g * interval '1 s',
                'p' || g FROM generate_series(1, 30000) g;
            -- a tenant table read only through its primary key: no tenant index to propose
            CREATE TABLE notes (id int PRIMARY KEY, tenant_id int NOT NULL, body text);
            INSERT INTO notes SELECT g, 1 + g % 50, 'n' FROM generate_series(1, 5000) g;
            -- a table the monitoring role may not read
            CREATE TABLE secrets (id int PRIMARY KEY, owner int, token text);
            INSERT INTO secrets SELECT g, g % 100, 't' FROM generate_series(1, 20000) g;
            -- a sequence at 97.8 % of its range the role cannot read
            CREATE SEQUENCE hidden_seq AS integer;
            SELECT setval('hidden_seq', 2100000000);
            VACUUM ANALYZE;
            GRANT SELECT ON ALL TABLES IN SCHEMA public TO {RO};
            REVOKE SELECT ON secrets FROM {RO};
            """.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        # the statistics window starts here: the load above is not the workload, the log's inserts are.
        # This backend's counters reach the shared statistics asynchronously: flush them first, or a
        # flush after the reset would count the load as writes of the window (seen in a full run)
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
        time.sleep(0.2)
        conn.execute("SELECT pg_stat_reset()")
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("INSERT INTO event_log (kind, payload) SELECT 'k' || (g % 200), 'p' FROM generate_series(1, 150000) g")
        conn.execute("ANALYZE event_log")
        for i in range(CALLS):
            tenant = 1 + i % 50
            conn.execute("SELECT id, title FROM docs WHERE tenant_id = %s AND deleted_at IS NULL", (tenant,))
            conn.execute("SELECT id, subject FROM tickets WHERE tenant_id = %s AND status = %s "
                         "ORDER BY created_at DESC LIMIT 50", (tenant, "open"))
            conn.execute("SELECT count(*) FROM tickets WHERE tenant_id = %s AND created_at > now() - interval '7 days'",
                         (tenant,))
            conn.execute("SELECT sum(amount) FROM payments WHERE account_id = %s", (i % 100,))
            conn.execute("SELECT name FROM plans WHERE id = %s", (i + 1,))
            conn.execute('SELECT id, name FROM "Project" WHERE state = %s AND "companyId" = %s '
                         'ORDER BY "createdAt" DESC LIMIT 20', ("a", tenant))
            conn.execute("SELECT body FROM notes WHERE id = %s", (i + 1,))
            conn.execute("SELECT token FROM secrets WHERE owner = %s", (i % 100,))
        for i in range(2):
            conn.execute("SELECT count(*) FROM event_log WHERE kind = %s", (f"k{i}",))
        conn.execute("SELECT pg_stat_force_next_flush()")
    yield sandbox.dsn_for(NAME), sandbox.dsn_for(NAME, RO, "ro")


@pytest.fixture(scope="module")
def engine18(planted):
    eng = db.connect(planted[0])
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def ro_engine(planted):
    eng = db.connect(planted[1])
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def advised(ro_engine):
    """The advisor as the read-only monitoring role (it cannot read ``secrets``)."""
    from perfkit import statements

    snap = statements.snapshot(ro_engine)
    snap = snap[snap["datname"] == NAME]
    existing = advice.existing_indexes(ro_engine)
    return advisor.advise(ro_engine, snap, existing=existing, top_n=100)


def proposal(result, table: str, column: str | None = None):
    rows = result.proposals[result.proposals["table"] == qualified("public", table)]
    if column is not None:  # the proposal with this key column (a table can get two)
        rows = rows[rows["columns"].map(lambda columns: column in columns)]
    assert len(rows) == 1, (table, list(result.proposals["subject"]),
                            [r for r in result.rejected.to_dict("records") if table in r["subject"]])
    return rows.iloc[0]


def test_soft_delete_table_gets_a_partial_index_on_the_tenant(advised):
    fix = proposal(advised, "docs")["fix"]
    assert fix.key_columns[0] == "tenant_id" and "deleted_at" not in fix.key_columns
    assert fix.where == "deleted_at IS NULL"


def test_hot_tenant_list_gets_tenant_status_then_created_at_desc(advised):
    row = proposal(advised, "tickets", "status")
    fix = row["fix"]
    assert [(c.name, c.descending) for c in fix.columns][:3] == [("tenant_id", False), ("status", False),
                                                                 ("created_at", True)]
    assert row["size_bytes"] > 0 and row["saved_ms_day"] > row["write_ms_day"] >= 0
    assert row["net_ms_day"] == pytest.approx(row["saved_ms_day"] - row["write_ms_day"])
    assert all(s["calls"] >= CALLS for s in row["statements"]) and "calls" in row["evidence"]
    assert row["redundant"] == ["public.tickets_tenant_idx"] and "makes redundant" in row["evidence"]
    assert row["drop_sql"] == ["DROP INDEX CONCURRENTLY public.tickets_tenant_idx;"]


def test_normalized_interval_statement_is_costed_not_dropped(advised):
    # pg_stat_statements keeps `interval $2`: it does not parse, `$2::interval` does
    served = [s["query"] for _, row in advised.proposals.iterrows() for s in row["statements"]]
    assert any("interval $2" in q for q in served), served
    assert not any("interval" in note for note in advised.notes)
    assert advisor.costable_text("SELECT 1 WHERE now() - interval $2 < $1")[0] == "SELECT 1 WHERE now() - $2::interval < $1"


def test_index_only_lookup_gets_include(advised):
    fix = proposal(advised, "payments")["fix"]
    assert fix.key_columns == ("account_id",) and fix.include == ("amount",)


def test_write_heavy_log_index_costs_more_than_it_saves(advised):
    assert "public.event_log" not in set(advised.proposals["table"])
    reasons = advised.rejected[advised.rejected["subject"].str.startswith("public.event_log (kind")]["reason"]
    assert len(reasons) and reasons.str.contains("writes cost").all()


def test_primary_key_already_serving_is_never_proposed(advised):
    assert not {"public.plans", "public.notes"} & set(advised.proposals["table"])
    served = advised.rejected[advised.rejected["subject"] == "public.plans (id)"]["reason"]
    assert list(served) == ["served by the existing index plans_pkey"]


def test_camel_case_tenant_key_inferred_from_the_foreign_key(advised):
    fix = proposal(advised, "Project")["fix"]
    assert fix.key_columns[:2] == ("companyId", "state") and fix.columns[2].descending
    assert "companyId" in advised.facts["tenant_columns"]
    assert 'ON public."Project" ("companyId", state, "createdAt" DESC)' in fix.sql


def test_one_statement_failing_never_drops_the_rest_and_is_reported(advised):
    # the role may not read secrets: that statement is named in the notes, every other table is still advised
    assert any("secrets" in note and "permission denied" in note for note in advised.notes), advised.notes
    assert {"public.docs", "public.tickets", "public.payments", 'public."Project"'} <= set(advised.proposals["table"])
    facts = advised.facts
    print(f"\nadvisor: {facts['statements']} statements, {facts['candidates']} candidates, "
          f"{facts['hypopg_calls']} hypopg calls, {facts['explains']} EXPLAINs for {facts['pairs']} touching pairs "
          f"(all pairs: {facts['all_pairs']}), {facts['seconds']:.2f} s")
    assert facts["pairs"] <= facts["all_pairs"]


def test_missing_tenant_index_only_where_statements_filter_on_the_tenant(engine18):
    found = health.check(engine18, checks=[tables.missing_tenant_indexes])
    subjects = set(found["subject"])
    assert "public.docs" in subjects and "public.tickets" not in subjects  # tickets_tenant_idx leads with it
    assert "public.notes" not in subjects  # read only by its primary key: the index would only cost writes


def test_sequence_the_role_cannot_read_is_a_missing_privilege_with_the_grant(ro_engine):
    found = health.check(ro_engine, checks=[maintenance.sequence_exhaustion])
    row = found[found["kind"] == "missing_privilege"].iloc[0]
    assert "public.hidden_seq" in row["evidence"]
    # every sequence of the schema is hidden from the role (event_log's too): one GRANT for the schema
    assert row["sql"] == f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {RO};"


def test_statements_only_n_plus_one_runs_in_health(engine18, sandbox):
    with sandbox.admin_connect(NAME, autocommit=True) as conn:
        for tenant in range(1, 11):
            ids = [r[0] for r in conn.execute("SELECT id FROM docs WHERE tenant_id = %s LIMIT 20", (tenant,))]
            for doc in ids:
                conn.execute("SELECT title FROM docs WHERE id = %s", (doc,))
        conn.execute("SELECT pg_stat_force_next_flush()")
    ctx = health.Context(engine18)
    found = health.statements_n_plus_one(ctx)
    assert len(found) and (found["kind"] == "n_plus_one").all()
    assert found["evidence"].str.contains("about one lookup per listed row").any()


def test_dead_rows_held_by_an_old_snapshot_name_the_holder(engine18, sandbox):
    with sandbox.admin_connect(NAME, autocommit=True) as conn:
        conn.execute("CREATE TABLE churn (id int PRIMARY KEY, v int, pad text)")
        conn.execute("INSERT INTO churn SELECT g, 0, repeat('x', 40) FROM generate_series(1, 20000) g")
        conn.execute("CREATE TABLE tiny_churn (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO tiny_churn SELECT g, 0 FROM generate_series(1, 400) g")
        holder = sandbox.admin_connect(NAME, autocommit=False)
        try:
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM churn").fetchone()  # takes the snapshot: the xmin horizon
            pid = holder.info.backend_pid
            conn.execute("UPDATE churn SET v = v + 1")
            for _ in range(3):
                conn.execute("UPDATE tiny_churn SET v = v + 1")
            time.sleep(1.1)
            conn.execute("VACUUM churn")  # cannot remove a row the snapshot may see
            conn.execute("SELECT pg_stat_force_next_flush()")
            found = health.check(engine18, checks=[maintenance.table_bloat, maintenance.vacuum_overdue],
                                 min_horizon_s=0, min_dead_tuples=500)
        finally:
            holder.close()
    churn = found[found["subject"] == "public.churn"]
    assert list(churn["kind"]) == ["table_bloat"], churn[["kind", "evidence"]].to_dict("records")
    row = churn.iloc[0]
    assert f"pid {pid} (idle in transaction" in row["evidence"] and "last vacuumed" in row["evidence"]
    assert row["sql"].startswith(f"SELECT pg_terminate_backend({pid});")
    assert "overdue" not in row["evidence"]
    assert "public.tiny_churn" not in set(found["subject"])  # under the size floor


def test_misestimate_in_the_index_condition_gets_extended_statistics(engine18, sandbox):
    from perfkit.plans import capture, rules

    with sandbox.admin_connect(NAME, autocommit=True) as conn:
        conn.execute("CREATE TABLE corr (id int PRIMARY KEY, a int, b int)")
        conn.execute("INSERT INTO corr SELECT g, g % 100, g % 100 FROM generate_series(1, 50000) g")
        conn.execute("CREATE INDEX corr_a_idx ON corr (a)")
        conn.execute("ANALYZE corr")  # statistics fresh: ANALYZE cannot fix this estimate
    plan = capture.explain(engine18, "SELECT * FROM corr WHERE a = 7 AND b = 7", analyze=True)
    found = rules.row_misestimate(plan)
    assert found, plan.nodes[["node_type", "plan_rows", "actual_rows", "detail"]].to_dict("records")
    fix = found[0]["fix"]
    assert fix.action == "create_statistics" and set(fix.key_columns) == {"a", "b"}


# -- perfkit verify ---------------------------------------------------------------------------------
def test_verify_measures_each_planted_proposal_at_least_5x(advised, planted, capsys, tmp_path):
    from perfkit import verify

    targets = {"docs": "deleted_at IS NULL", "tickets": "ORDER BY created_at DESC", "payments": "sum(amount)",
               "Project": '"companyId"'}
    items = []
    for table, marker in targets.items():
        row = proposal(advised, table, "status" if table == "tickets" else None)
        target = next(s["query"] for s in row["statements"] if marker in s["query"])
        items.append((row["fix"], [target]))
    results = verify.verify(planted[0], items, runs=5, allow_writes=True)
    with capsys.disabled():
        for result in results:
            print(f"\nverify {result.fix.sql}\n  {result.text()}; "
                  + "; ".join(f"mean {s['before_mean_ms']:.2f} -> {s['after_mean_ms']:.2f} ms, "
                              f"p95 {s['before_p95_ms']:.2f} -> {s['after_p95_ms']:.2f} ms" for s in result.statements))
    for result in results:
        assert result.statements[0]["speedup"] >= 5, result.to_dict()
        assert result.size_bytes > 0 and result.build_s > 0 and not result.kept
        assert "x faster on 1 statement" in result.text()
    # kept in the store, the weekly report's recommendations say what was measured
    verify.store_results(results, store=tmp_path, server="scratch-db")
    ranked = advice.assess([], ideas=advised.proposals, verified=verify.stored_results(tmp_path)).tables["recommendations"]
    docs = ranked[ranked["subject"].str.startswith("public.docs")].iloc[0]
    assert docs["verified"].startswith("verified: ") and docs["verified"].endswith("on scratch-db")
    assert docs["verified"] in docs["evidence"]
    with psycopg.connect(planted[0]) as conn:  # every index dropped again
        names = [r.index for r in results]
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", (names,)).fetchone()[0] == 0


def test_verify_refuses_without_allow_writes(planted, capsys):
    from perfkit import cli

    code = cli.main(["verify", "--dsn", planted[0], "--sql", "CREATE INDEX ON docs (tenant_id)"])
    err = capsys.readouterr().err
    assert code == 2 and "--allow-writes" in err and len(err.strip().splitlines()) == 1


def test_verify_interrupted_leaves_no_index_behind(planted, sandbox):
    """Killed (SIGTERM) while CREATE INDEX CONCURRENTLY waits for an old snapshot: the index is already in
    pg_index (invalid), and it is dropped before perfkit exits."""
    import os
    import signal
    import subprocess
    import sys

    name = "docs_title_verify_idx"
    argv = ["verify", "--dsn", planted[0], "--allow-writes", "--runs", "2",
            "--sql", f"CREATE INDEX {name} ON docs (title)", "--statement", "SELECT id FROM docs WHERE title = $1"]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PERFKIT_PROGRESS": "0"}
    query = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s"
    holder = sandbox.admin_connect(NAME, autocommit=False)
    holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM tenants LIMIT 1").fetchone()  # an old snapshot: the build waits for it
    proc = subprocess.Popen([sys.executable, "-c", f"from perfkit import cli; raise SystemExit(cli.main({argv!r}))"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(planted[0], autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while conn.execute(query, (name,)).fetchone() is None:  # the build has begun
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            holder.rollback()  # the old snapshot goes: the drop (which waits for it too) can finish
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err, err
            assert conn.execute(query, (name,)).fetchone() is None  # gone from pg_index
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()


def test_health_assess_infers_camel_case_tenant_and_reports_what_was_not_costed(ro_engine):
    result = health.assess(ro_engine)
    found = result.findings
    tenant = set(found.loc[found["kind"] == "missing_tenant_index", "subject"])
    assert 'public."Project"' in tenant and "public.notes" not in tenant
    assert any(note.startswith("index advice: not costed: SELECT token FROM secrets") for note in result.notes), result.notes
    ideas = result.tables["index_advice"]
    assert {"public.docs", "public.tickets"} <= set(ideas["table"])


def test_cli_verify_from_a_report_folder_writes_its_results(planted, tmp_path, monkeypatch, capsys):
    import json

    from perfkit import cli, verify

    monkeypatch.setenv("PERFKIT_STORE", str(tmp_path / "store"))
    report = tmp_path / "2026-12-01"
    report.mkdir()
    (report / "summary.json").write_text(json.dumps({"recommendations": [
        {"kind": "index_advice", "sql": "CREATE INDEX CONCURRENTLY docs_tenant_id_idx ON public.docs (tenant_id) "
                                        "WHERE deleted_at IS NULL;"},
        {"kind": "vacuum_overdue", "sql": "VACUUM (ANALYZE) public.docs;"}]}))
    code = cli.main(["verify", "--dsn", planted[0], "--allow-writes", "--from-report", str(report), "--runs", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "verified: " in out and "p95 before" in out
    saved = verify.read_results(report)
    assert len(saved) == 1 and saved[0]["statements"][0]["query"].startswith("SELECT id, title FROM docs")
    assert verify.stored_results(tmp_path / "store")[0]["text"] == saved[0]["text"]


def test_recommend_merges_the_tenant_finding_into_the_partial_proposal(advised, engine18):
    checks = health.check(engine18, checks=[tables.missing_tenant_indexes])
    merged = advice.recommend(health=checks, statements=advised.proposals)
    on_docs = merged[merged["subject"].str.startswith("public.docs")]
    assert len(on_docs) == 1 and on_docs.iloc[0]["fix"].where == "deleted_at IS NULL"
    assert set(on_docs.iloc[0]["sources"]) == {"index_advice", "missing_tenant_index"}
