"""perfkit.health index and table checks against a schema with every problem planted, and clean controls."""

from __future__ import annotations

import json
import uuid

import pytest

from perfkit import cli, health
from perfkit.errors import BadInputError
from perfkit.health import indexes, maintenance, tables

ROWS_TENANT = 20_000
ROWS_CONTROL = 12_000


def flush(conn) -> None:
    """Make this backend's pending statistics visible to others now (PG 15+), not ~1 s later."""
    conn.execute("SELECT pg_stat_force_next_flush()")


@pytest.fixture(scope="module")
def schema(sandbox):
    """A schema holding one table per planted problem plus ``ctl_*`` controls in use."""
    name = "hk_" + uuid.uuid4().hex[:8]
    with sandbox.admin_connect() as admin:
        statements = f"""
        CREATE SCHEMA {name};
        SET search_path = {name};
        -- controls: a tenant table indexed on the tenant, used through that index
        CREATE TABLE ctl_tenants (id int PRIMARY KEY, name text);
        INSERT INTO ctl_tenants SELECT g, 't' || g FROM generate_series(1, 50) g;
        CREATE TABLE ctl_orders (id bigserial PRIMARY KEY, tenant_id int NOT NULL REFERENCES ctl_tenants(id),
                                 status text, created_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO ctl_orders (tenant_id, status, created_at)
            SELECT 1 + g % 50, (ARRAY['new','paid'])[1 + g % 2], now() - g * interval '1 min'
            FROM generate_series(1, {ROWS_CONTROL}) g;
        CREATE INDEX ctl_orders_tenant_created_idx ON ctl_orders (tenant_id, created_at);
        -- an unused index
        CREATE TABLE unused_t (id int PRIMARY KEY, a int, b int);
        INSERT INTO unused_t SELECT g, g % 100, g FROM generate_series(1, 2000) g;
        CREATE INDEX unused_t_a_idx ON unused_t (a);
        -- a duplicate and a prefix-covered index; a unique prefix that must stay
        CREATE TABLE dup_t (id int PRIMARY KEY, a int, b int);
        INSERT INTO dup_t SELECT g, g % 10, g FROM generate_series(1, 2000) g;
        CREATE INDEX dup_a_b ON dup_t (a, b);
        CREATE INDEX dup_a_b_again ON dup_t (a, b);
        CREATE INDEX dup_a ON dup_t (a);
        CREATE UNIQUE INDEX dup_b_key ON dup_t (b);
        CREATE INDEX dup_b_id ON dup_t (b, id);
        -- an unindexed foreign key
        CREATE TABLE fk_parent (id int PRIMARY KEY);
        INSERT INTO fk_parent SELECT generate_series(1, 100);
        CREATE TABLE fk_child (id int PRIMARY KEY, parent_id int REFERENCES fk_parent(id));
        INSERT INTO fk_child SELECT g, 1 + g % 100 FROM generate_series(1, 2000) g;
        -- a tenant table without a tenant index (its workload runs below)
        CREATE TABLE shop_orders (id bigserial PRIMARY KEY, tenant_id int NOT NULL, status text,
                                  created_at timestamptz NOT NULL DEFAULT now(), total numeric);
        INSERT INTO shop_orders (tenant_id, status, created_at, total)
            SELECT g % 50, (ARRAY['new','paid','shipped'])[1 + g % 3], now() - g * interval '1 min', g
            FROM generate_series(1, {ROWS_TENANT}) g;
        -- a table keyed on a tenant column with a name of its own
        CREATE TABLE org_docs (id int PRIMARY KEY, org_id int NOT NULL, body text);
        INSERT INTO org_docs SELECT g, g % 20, 'doc' FROM generate_series(1, 2000) g;
        -- many dead rows, autovacuum off for the table
        CREATE TABLE dead_t (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
        INSERT INTO dead_t SELECT g, 0 FROM generate_series(1, 5000) g;
        -- a serial (integer) column near the end of its range
        CREATE TABLE seq_t (id serial PRIMARY KEY, v int);
        INSERT INTO seq_t (v) VALUES (1);
        SELECT setval('seq_t_id_seq', 2000000000);
        -- an invalid index, left by a failed CREATE INDEX CONCURRENTLY
        CREATE TABLE inv_t (id int PRIMARY KEY, v int);
        INSERT INTO inv_t SELECT g, g % 3 FROM generate_series(1, 100) g;
        """
        for statement in [s.strip() for s in statements.split(";\n") if s.strip()]:
            admin.execute(statement)
        with pytest.raises(Exception, match="could not create unique index"):
            admin.execute(f"CREATE UNIQUE INDEX CONCURRENTLY inv_t_v_key ON {name}.inv_t (v)")
        flush(admin)
        admin.execute(f"ANALYZE {name}.ctl_tenants, {name}.ctl_orders, {name}.unused_t, {name}.dup_t, "
                      f"{name}.fk_parent, {name}.fk_child, {name}.shop_orders, {name}.org_docs, {name}.dead_t")
        admin.execute(f"UPDATE {name}.dead_t SET v = v + 1")
        # workloads: the controls through their indexes, the tenant table by tenant (sequential scans)
        admin.execute("SET enable_seqscan = off")
        for i in range(20):
            admin.execute(f"SELECT * FROM {name}.ctl_orders WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 20", (1 + i,))
            admin.execute(f"SELECT * FROM {name}.dup_t WHERE a = %s AND b = %s", (i % 10, i))
            admin.execute(f"SELECT * FROM {name}.dup_t WHERE b = %s", (i,))
            admin.execute(f"SELECT * FROM {name}.dup_t WHERE b = %s AND id = %s", (i, i))
            admin.execute(f"SELECT * FROM {name}.ctl_tenants WHERE id = %s", (i + 1,))
        admin.execute("RESET enable_seqscan")
        for i in range(30):
            admin.execute(
                f"SELECT id, total FROM {name}.shop_orders WHERE tenant_id = %s AND status = %s "
                "ORDER BY created_at DESC LIMIT 20",
                (i % 50, "paid"),
            )
            # org_docs is read per org (its own tenant column): reported once org_id is configured
            admin.execute(f"SELECT id FROM {name}.org_docs WHERE org_id = %s", (i % 20,))
        flush(admin)
        yield name
        admin.execute(f"DROP SCHEMA {name} CASCADE")


def mine(findings, schema: str):
    """The findings about objects of ``schema`` (the sandbox is shared with other tests)."""
    return findings[findings["subject"].str.startswith(schema + ".")]


def pairs(findings) -> set[tuple[str, str]]:
    return set(zip(findings["kind"], findings["subject"], strict=True))


@pytest.fixture(scope="module")
def all_findings(schema, engine):
    """Every check with thresholds that fit a small test schema (sizes, not defaults)."""
    return mine(health.check(engine, per_check={"unused_indexes": {"min_size_bytes": 0}}), schema)


def test_every_planted_problem_is_found_with_its_kind_and_subject(all_findings, schema):
    expected = {
        ("unused_index", f"{schema}.unused_t_a_idx"),
        ("duplicate_index", f"{schema}.dup_a_b_again"),
        ("duplicate_index", f"{schema}.dup_a"),
        ("missing_fk_index", f"{schema}.fk_child"),
        ("invalid_index", f"{schema}.inv_t_v_key"),
        ("missing_tenant_index", f"{schema}.shop_orders"),
        ("seq_scan_large_table", f"{schema}.shop_orders"),
        ("table_bloat", f"{schema}.dead_t"),
        ("vacuum_overdue", f"{schema}.dead_t"),
        ("analyze_overdue", f"{schema}.dead_t"),
        ("sequence_exhaustion", f"{schema}.seq_t_id_seq"),
    }
    assert expected <= pairs(all_findings), expected - pairs(all_findings)


def test_no_control_is_flagged(all_findings, schema):
    flagged = all_findings[
        all_findings["subject"].str.contains(".ctl_", regex=False)
        | all_findings.get("table", all_findings["subject"]).fillna("").str.contains(".ctl_", regex=False)
    ]
    assert flagged.empty, flagged[["kind", "subject", "evidence"]].to_string()
    # the unique prefix and the index it prefixes are both needed; the original of a duplicate stays
    duplicates = set(all_findings.loc[all_findings["kind"] == "duplicate_index", "subject"])
    for kept in ("dup_b_key", "dup_b_id", "dup_a_b"):
        assert f"{schema}.{kept}" not in duplicates
    # in use, and small: no unused_index for the other planted tables' indexes either
    unused = all_findings[all_findings["kind"] == "unused_index"]["subject"]
    assert f"{schema}.ctl_orders_tenant_created_idx" not in set(unused)


def test_findings_carry_contract_fields_evidence_in_numbers_and_fix_sql(all_findings, schema):
    for column in ("kind", "severity", "subject", "evidence", "recommendation", "sql", "benefit_ms", "check"):
        assert column in all_findings.columns
    assert set(all_findings["severity"]) <= {"critical", "warning", "info"}
    tenant = all_findings[all_findings["kind"] == "missing_tenant_index"].iloc[0]
    assert "tenant_id" in tenant["evidence"] and "20,000 rows" in tenant["evidence"]
    assert "30 calls" in tenant["evidence"]
    assert tenant["sql"] == f"CREATE INDEX CONCURRENTLY shop_orders_tenant_id_idx ON {schema}.shop_orders (tenant_id);"
    scan = all_findings[all_findings["kind"] == "seq_scan_large_table"].iloc[0]
    assert "tenant_id (equality" in scan["evidence"] and "created_at (sort" in scan["evidence"]
    assert "(tenant_id, status, created_at)" in scan["sql"]
    fk = all_findings[all_findings["kind"] == "missing_fk_index"].iloc[0]
    assert f"{schema}.fk_child (parent_id)" in fk["sql"] and "fk_parent" in fk["evidence"]
    bloat = all_findings[all_findings["kind"] == "table_bloat"].iloc[0]
    assert "5,000 dead rows of 10,000 (50.0 %)" in bloat["evidence"]
    vacuum = all_findings[all_findings["kind"] == "vacuum_overdue"].iloc[0]
    assert "autovacuum is off for this table" in vacuum["evidence"]
    assert "RESET (autovacuum_enabled)" in vacuum["sql"]
    sequence = all_findings[all_findings["kind"] == "sequence_exhaustion"].iloc[0]
    assert sequence["severity"] == "critical" and "93.1 % of the sequence's integer range" in sequence["evidence"]
    assert f"feeds {schema}.seq_t.id" in sequence["evidence"]
    unused = all_findings[all_findings["subject"] == f"{schema}.unused_t_a_idx"].iloc[0]
    assert "0 index scans" in unused["evidence"] and "statistics collected" in unused["evidence"]
    assert unused["sql"] == f"DROP INDEX CONCURRENTLY {schema}.unused_t_a_idx;"


# -- thresholds: each argument flips its check's result ------------------------------------


def run(check, engine, **thresholds):
    from perfkit import db

    with db.session(engine) as conn:
        return check(conn, **thresholds)


def subjects(found, schema: str) -> set[str]:
    return {f["subject"] for f in found if f["subject"].startswith(schema + ".")}


def test_unused_indexes_thresholds(engine, schema):
    target = f"{schema}.unused_t_a_idx"
    assert target not in subjects(run(indexes.unused_indexes, engine), schema)  # default: 1 MB and up
    assert target in subjects(run(indexes.unused_indexes, engine, min_size_bytes=0), schema)
    # the control's index was scanned 20 times: unused only when up to 100 scans count as unused
    used = f"{schema}.ctl_orders_tenant_created_idx"
    assert used not in subjects(run(indexes.unused_indexes, engine, min_size_bytes=0), schema)
    assert used in subjects(run(indexes.unused_indexes, engine, min_size_bytes=0, max_scans=100), schema)
    fresh = run(indexes.unused_indexes, engine, min_size_bytes=0)
    old = run(indexes.unused_indexes, engine, min_size_bytes=0, min_stats_days=0)
    assert {f["severity"] for f in fresh if f["subject"] == target} == {"info"}
    assert {f["severity"] for f in old if f["subject"] == target} == {"warning"}


def test_duplicate_indexes_threshold(engine, schema):
    assert f"{schema}.dup_a" in subjects(run(indexes.duplicate_indexes, engine), schema)
    assert not subjects(run(indexes.duplicate_indexes, engine, min_size_bytes=10**12), schema)


def test_missing_fk_indexes_threshold(engine, schema):
    assert f"{schema}.fk_child" in subjects(run(indexes.missing_fk_indexes, engine), schema)
    assert f"{schema}.fk_child" not in subjects(run(indexes.missing_fk_indexes, engine, min_rows=10**6), schema)


def test_seq_scan_large_tables_thresholds(engine, schema):
    target = f"{schema}.shop_orders"
    assert target in subjects(run(tables.seq_scan_large_tables, engine), schema)
    assert target not in subjects(run(tables.seq_scan_large_tables, engine, min_rows=10**6), schema)
    assert target not in subjects(run(tables.seq_scan_large_tables, engine, min_seq_scans=10**6), schema)
    # the control is read by index: only flagged when any share of sequential scans counts
    control = f"{schema}.ctl_orders"
    assert control not in subjects(run(tables.seq_scan_large_tables, engine, min_seq_scans=1), schema)
    assert control in subjects(run(tables.seq_scan_large_tables, engine, min_seq_scans=1, min_seq_share=0.0), schema)


def test_missing_tenant_indexes_thresholds_and_configured_column(engine, schema):
    assert f"{schema}.shop_orders" in subjects(run(tables.missing_tenant_indexes, engine), schema)
    assert not subjects(run(tables.missing_tenant_indexes, engine, min_rows=10**6), schema)
    org = f"{schema}.org_docs"
    assert org not in subjects(run(tables.missing_tenant_indexes, engine), schema)
    configured = run(tables.missing_tenant_indexes, engine, tenant_columns=(*health.TENANT_COLUMNS, "org_id"))
    assert org in subjects(configured, schema)


def test_table_bloat_vacuum_and_analyze_thresholds(engine, schema):
    target = f"{schema}.dead_t"
    assert target not in subjects(run(maintenance.table_bloat, engine, min_dead_share=0.9), schema)
    assert target not in subjects(run(maintenance.table_bloat, engine, min_dead_tuples=10**6), schema)
    assert target not in subjects(run(maintenance.vacuum_overdue, engine, min_dead_tuples=10**6), schema)
    assert target not in subjects(run(maintenance.analyze_overdue, engine, min_modifications=10**6), schema)
    # the controls were analyzed after loading: overdue only if any change counts
    assert f"{schema}.ctl_orders" not in subjects(run(maintenance.analyze_overdue, engine, min_modifications=0), schema)


def test_low_cache_hit_thresholds(engine, schema):
    assert not subjects(run(tables.low_cache_hit, engine), schema)
    strict = run(tables.low_cache_hit, engine, min_hit_ratio=1.01, min_blocks=0)
    # a table read through its indexes misses the cache because of the server's memory, not its own use:
    # only the tables whose own pattern (sequential scans, dead rows) explains it are named
    assert f"{schema}.shop_orders" in subjects(strict, schema)
    assert f"{schema}.ctl_orders" not in subjects(strict, schema)
    assert any(f["subject"].startswith("database ") for f in strict)


def test_sequence_and_wraparound_thresholds(engine, schema):
    target = f"{schema}.seq_t_id_seq"
    assert target not in subjects(run(maintenance.sequence_exhaustion, engine, warning_share=0.95), schema)
    found = run(maintenance.sequence_exhaustion, engine, critical_share=0.99)
    assert [f["severity"] for f in found if f["subject"] == target] == ["warning"]
    assert not run(maintenance.xid_wraparound, engine)
    young = run(maintenance.xid_wraparound, engine, warning_share=0.0, limit=5)
    assert any(f["subject"] == "database perfkit" for f in young)
    assert 1 <= len([f for f in young if not f["subject"].startswith("database ")]) <= 5


def test_unknown_threshold_or_check_is_bad_input(engine):
    with pytest.raises(BadInputError, match="no check takes min_rowz"):
        health.check(engine, min_rowz=5)
    with pytest.raises(BadInputError, match="takes no min_rows"):
        health.check(engine, per_check={"unused_indexes": {"min_rows": 5}})
    with pytest.raises(BadInputError, match="no check is called"):
        health.check(engine, per_check={"unused_index": {}})


def test_thresholds_table_lists_every_check_with_its_defaults():
    table = health.thresholds()
    assert list(table) == health.check_names()
    assert table["connection_saturation"] == {"warning_share": 0.7, "critical_share": 0.8}
    assert table["unused_indexes"]["min_size_bytes"] == 1024 * 1024


# -- command line -------------------------------------------------------------------------


def test_cli_health_json_and_table(dsn, schema, capsys):
    code = cli.main(["health", "--dsn", dsn, "--json", "--check", "unused_indexes", "--check", "duplicate_indexes",
                     "--threshold", "unused_indexes.min_size_bytes=0"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    got = {(f["kind"], f["subject"]) for f in payload["findings"]}
    assert ("unused_index", f"{schema}.unused_t_a_idx") in got
    assert ("duplicate_index", f"{schema}.dup_a") in got
    assert {"kind", "severity", "subject", "evidence", "recommendation", "sql", "benefit_ms"} <= set(payload["findings"][0])

    code = cli.main(["health", "--dsn", dsn, "--check", "missing_tenant_indexes", "--tenant-column", "org_id"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{schema}.org_docs" in out and f"{schema}.shop_orders" in out
    assert "CREATE INDEX CONCURRENTLY" in out and "printed only" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--threshold", "min_rows"], "NAME=VALUE"),
        (["--threshold", "min_rows=lots"], "not a number"),
        (["--threshold", "min_rowz=5"], "no check takes min_rowz"),
        (["--check", "unused_index"], "no check called unused_index"),
        (["--threshold", "unused_indexes.min_rows=5"], "takes no min_rows"),
        (["--server-memory", "0"], "--server-memory"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, message, dsn, capsys):
    assert cli.main(["health", "--dsn", dsn, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_other_sessions_temp_tables_are_never_flagged(engine, sandbox):
    """Temp tables of a live session (e.g. an app's batch job) are not the schema's problem."""
    with sandbox.admin_connect() as other:
        other.execute("CREATE TEMP TABLE tmp_batch (id int, tenant_id int, created_at timestamptz)")
        other.execute("INSERT INTO tmp_batch SELECT g, g % 7, now() FROM generate_series(1, 30000) g")
        for _ in range(3):
            other.execute("SELECT count(*) FROM tmp_batch WHERE tenant_id = 3")
        other.execute("DELETE FROM tmp_batch WHERE id % 2 = 0")
        flush(other)
        found = health.check(engine, min_rows=1_000, min_seq_scans=1, min_modifications=100, min_dead_tuples=100)
    assert not found["subject"].str.contains("tmp_batch").any(), found[found["subject"].str.contains("tmp_batch")]


def test_one_assess_run_reads_pg_stat_statements_once(engine, schema, monkeypatch):
    """Counted on the statements perfkit really sends: every db.query call reading the view."""
    from perfkit import db

    sent: list[str] = []
    real = db.query

    def counting(engine_or_conn, sql, params=None):
        sent.append(sql)
        return real(engine_or_conn, sql, params)

    monkeypatch.setattr(db, "query", counting)
    result = health.assess(engine, per_check={"unused_indexes": {"min_size_bytes": 0}})
    reads = [s for s in sent if "pg_stat_statements s" in s]
    assert len(reads) == 1, reads
    assert result.data["context"].reads["statements"] == 1
    assert result.source == "health" and result.title == "Database health"
    found = mine(result.findings, schema)
    assert ("missing_tenant_index", f"{schema}.shop_orders") in pairs(found)
    assert set(result.findings["area"]) <= set(health.AREAS)
    assert set(result.facts) >= {"target", "counts", "by_area"}
    payload = result.to_json()
    assert "findings" in payload and "recommendations" in payload
    # the catalog reads are shared too: the table statistics once for the seven checks using them
    assert result.data["context"].reads["tables"] == 1 and result.data["context"].reads["indexes"] == 1
    # where space and cache go, from the same reads (the health charts draw them)
    assert f"{schema}.shop_orders" in set(result.tables["space"]["table"])
    assert result.tables["cache"]["name"].iloc[0] == "(whole database)"


def test_one_check_gives_only_its_own_recommendations(engine, schema):
    result = health.assess(engine, checks=[health.indexes.unused_indexes], min_size_bytes=0)
    assert set(result.tables["recommendations"]["kind"]) <= {"unused_index"}
    assert result.tables["index_advice"].empty
