#!/usr/bin/env python3
"""Capture the real EXPLAIN plans in tests/fixtures/plans from a throwaway PostgreSQL.

Builds a schema (a million orders) in a perfkit Sandbox, then captures one plan per rule (JSON,
through perfkit.plans.explain) and the text forms people paste (through psql). Usage:
    .venv/bin/python scripts/capture_plan_fixtures.py [--out tests/fixtures/plans] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit import db  # noqa: E402
from perfkit.plans import explain  # noqa: E402
from perfkit.sandbox import Sandbox, find_bindir  # noqa: E402

SCHEMA = """
DROP TABLE IF EXISTS audit, events, orders, customers CASCADE;
CREATE TABLE customers (
    id int PRIMARY KEY, name text NOT NULL, city text NOT NULL, zip text NOT NULL, tier int NOT NULL
);
INSERT INTO customers
SELECT i, 'customer ' || i, 'city' || (i % 100), 'zip' || (i % 100), i % 5 FROM generate_series(1, 20000) i;
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    tenant_id int NOT NULL,
    customer_id int NOT NULL REFERENCES customers (id),
    status text NOT NULL,
    region_id int NOT NULL,
    zone_id int NOT NULL,          -- always equal to region_id: correlated with it
    created_at timestamptz NOT NULL,
    amount numeric(10, 2) NOT NULL,
    note text NOT NULL
);
INSERT INTO orders
SELECT i, i % 50, 1 + (i % 20000), (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4],
       i % 1000, i % 1000, timestamptz '2024-01-01' + i * interval '30 seconds', (i % 1000) / 10.0, md5(i::text)
FROM generate_series(1, %(rows)s) i;
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE TABLE events (id bigint, account_id int, kind text) WITH (autovacuum_enabled = false);
INSERT INTO events SELECT i, i % 50000, 'k' || (i % 7) FROM generate_series(1, 200000) i;
CREATE INDEX events_account_id_idx ON events (account_id);
CREATE TABLE audit (order_id bigint, changed_at timestamptz, old_amount numeric, new_amount numeric);
CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit VALUES (NEW.id, clock_timestamp(), OLD.amount, NEW.amount);
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION audit_order();
CREATE FUNCTION explain_lines(statement text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, BUFFERS) ' || statement LOOP RETURN NEXT line; END LOOP;
END $$;
CREATE FUNCTION explain_text(statement text) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(line, E'\\n') FROM explain_lines(statement) AS line
$$;
ANALYZE customers; ANALYZE orders; ANALYZE events;
"""

NO_PARALLEL = {"max_parallel_workers_per_gather": "0"}

SEQ_SCAN_SQL = "SELECT id, amount, created_at FROM orders WHERE tenant_id = 7 AND status = 'paid' ORDER BY created_at DESC"
MISESTIMATE_SQL = "SELECT count(*) FROM orders WHERE region_id = 7 AND zone_id = 7"
SORT_SQL = "SELECT id, note FROM orders WHERE tenant_id < 4 ORDER BY note"
HASH_SQL = (
    "SELECT c.city, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.tenant_id < 10 GROUP BY c.city"
)
HASHAGG_SQL = "SELECT note, count(*) FROM orders WHERE tenant_id < 20 GROUP BY note"
NESTED_SQL = "SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.tier = 1"
HEAP_SQL = "SELECT count(*) FROM events WHERE account_id BETWEEN 100 AND 20000"
WORKERS_SQL = "SELECT count(*) FROM orders WHERE note LIKE '%abc%'"
JIT_SQL = "SELECT tier, sum(length(name)), avg(id) FROM customers WHERE city <> 'nowhere' GROUP BY tier"
PLANNING_SQL = "SELECT count(*) FROM " + ", ".join(f"customers c{i}" for i in range(12)) + " WHERE " + " AND ".join(
    f"c{i}.id = c{i + 1}.id" for i in range(11)
) + " AND c0.id < 50"
TRIGGER_SQL = "UPDATE orders SET amount = amount + 1 WHERE id <= 2000"
FK_SQL = (
    "INSERT INTO orders SELECT 2000000 + i, 1, 1 + i % 20000, 'new', 1, 1, now(), 1, 'x' "
    "FROM generate_series(1, 5000) i"
)
INITPLAN_SQL = (
    "SELECT id, amount FROM orders WHERE tenant_id = 3 "
    "AND amount > (SELECT avg(amount) * 1.9 FROM orders WHERE tenant_id = 3)"
)
INITPLAN_JOIN_SQL = (
    "SELECT c.name, o.id FROM customers c JOIN orders o ON o.customer_id = c.id "
    "WHERE c.tier = (SELECT max(tier) FROM customers) AND o.tenant_id = 4 AND o.id < 100000"
)
CTE_SQL = (
    "WITH totals AS MATERIALIZED (SELECT customer_id, sum(amount) AS total FROM orders "
    "WHERE tenant_id < 5 GROUP BY customer_id) "
    "SELECT a.customer_id, a.total, b.total FROM totals a JOIN totals b ON b.customer_id = a.customer_id + 1 "
    "WHERE a.total > 100"
)
GATHER_SQL = "SELECT status, count(*), avg(amount) FROM orders GROUP BY status"
NEVER_SQL = "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = -1"

# name -> (sql, settings, allow_writes, what it shows)
JSON_CASES = {
    "seq_scan": (SEQ_SCAN_SQL, NO_PARALLEL, False, "Seq Scan on a million rows keeping 1 %, sorted"),
    "misestimate": (MISESTIMATE_SQL, NO_PARALLEL, False, "correlated columns region_id = zone_id: estimate 1 row, 1000 actual"),
    "sort_spill": (SORT_SQL, {**NO_PARALLEL, "work_mem": "64kB"}, False, "external merge sort with work_mem = 64kB"),
    "hash_spill": (HASH_SQL, {**NO_PARALLEL, "work_mem": "64kB"}, False, "hash join with Batches > 1 at work_mem = 64kB"),
    "hashagg_spill": (HASHAGG_SQL, {**NO_PARALLEL, "work_mem": "64kB", "enable_sort": "off"}, False, "HashAggregate spilling to disk"),
    "nested_loop": (NESTED_SQL, {**NO_PARALLEL, "enable_hashjoin": "off", "enable_mergejoin": "off", "enable_memoize": "off"}, False, "nested loop whose inner index scan runs 4,000 times"),
    "nested_loop_memoize": (NESTED_SQL, {**NO_PARALLEL, "enable_hashjoin": "off", "enable_mergejoin": "off"}, False, "nested loop over a Memoize run 1,000,000 times (per-loop times round to 0.000)"),
    "heap_fetches": (HEAP_SQL, {**NO_PARALLEL, "enable_seqscan": "off", "enable_bitmapscan": "off"}, False, "index-only scan on a never-vacuumed table"),
    "workers_not_launched": (WORKERS_SQL, {"max_parallel_workers": "0"}, False, "Gather planned 2 workers, max_parallel_workers = 0 launched none"),
    "jit": (JIT_SQL, {"jit": "on", "jit_above_cost": "0", "jit_inline_above_cost": "0", "jit_optimize_above_cost": "0"}, False, "JIT forced on a 20,000-row query"),
    "slow_planning": (PLANNING_SQL, {"join_collapse_limit": "16", "from_collapse_limit": "16", "geqo_threshold": "20"}, False, "12-way join planned exhaustively"),
    "trigger": (TRIGGER_SQL, NO_PARALLEL, True, "UPDATE firing a row trigger 2,000 times (rolled back)"),
    "trigger_fk": (FK_SQL, NO_PARALLEL, True, "INSERT of 5,000 rows checked by the foreign key trigger (rolled back)"),
    "initplan": (INITPLAN_SQL, NO_PARALLEL, False, "InitPlan used by the Seq Scan it hangs under"),
    "initplan_join": (INITPLAN_JOIN_SQL, NO_PARALLEL, False, "InitPlan hanging under a join, used by a scan below it"),
    "cte": (CTE_SQL, NO_PARALLEL, False, "a MATERIALIZED CTE read by two CTE Scans"),
    "gather": (GATHER_SQL, {}, False, "parallel aggregate: Gather Merge, 2 workers"),
}


def psql(bindir: Path, dsn: str, script: str, *args: str) -> str:
    """Run a psql script and return its standard output."""
    result = subprocess.run(
        [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, *args, "-f", "-"],
        input=script, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"psql failed: {result.stderr.strip()}")
    return result.stdout


def sets(settings: dict[str, str]) -> str:
    return "".join(f"SET {name} = '{value}';\n" for name, value in settings.items())


def auto_explain_message(sandbox: Sandbox, marker: str) -> str:
    """The message of the auto_explain log entry whose query contains ``marker``."""
    for _ in range(50):
        for path in sandbox.log_files():
            if path.suffix != ".json":
                continue
            for line in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                message = entry.get("message", "")
                if "plan:" in message and marker in message:
                    return message
        time.sleep(0.2)
    raise SystemExit(f"no auto_explain entry for {marker}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "plans"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--only", default="",
        help="comma-separated JSON case names (and/or after_index) to capture; skips the text forms",
    )
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bindir = find_bindir()

    with Sandbox() as sandbox:
        dsn = sandbox.dsn
        print(f"sandbox PostgreSQL {sandbox.version}; building {args.rows:,} orders", file=sys.stderr)
        with sandbox.admin_connect() as admin:
            admin.execute(SCHEMA.replace("%(rows)s", str(args.rows)))
            admin.execute("CHECKPOINT")
        engine = db.connect(dsn, statement_timeout="120s")

        for name, (sql, settings, writes, _) in JSON_CASES.items():
            if only and name not in only:
                continue
            if name.startswith("trigger"):
                before = db.scalar(engine, "SELECT count(*) FROM audit") if name == "trigger" else None
            plan = explain(engine, sql, analyze=True, settings=settings, allow_writes=writes)
            (out / f"{name}.json").write_text(json.dumps([plan.document], indent=2) + "\n")
            if name == "trigger":
                assert db.scalar(engine, "SELECT count(*) FROM audit") == before, "the UPDATE was not rolled back"
            print(f"  {name}.json: {len(plan.nodes)} nodes, {plan.execution_ms:.1f} ms", file=sys.stderr)
        if not only or "after_index" in only:
            # the same statement once the index seq_scan_large_table recommends exists
            with sandbox.admin_connect() as admin:
                admin.execute("CREATE INDEX orders_tenant_id_status_created_at_idx ON orders (tenant_id, status, created_at)")
            after = explain(engine, SEQ_SCAN_SQL, analyze=True, settings=NO_PARALLEL)
            (out / "seq_scan_after_index.json").write_text(json.dumps([after.document], indent=2) + "\n")
            with sandbox.admin_connect() as admin:
                admin.execute("DROP INDEX orders_tenant_id_status_created_at_idx")
        if only:
            engine.dispose()
            return 0
        plain = explain(engine, SEQ_SCAN_SQL, settings=NO_PARALLEL)
        (out / "plain.json").write_text(json.dumps([plain.document], indent=2) + "\n")

        # --- text forms, through psql -----------------------------------------------------------
        analyze = "EXPLAIN (ANALYZE, BUFFERS)"
        text = psql(bindir, dsn, sets(NO_PARALLEL) + f"{analyze} {SEQ_SCAN_SQL};\n")
        (out / "text_psql_aligned.txt").write_text(text)
        # the old (PostgreSQL <= 9.3) footer, derived from the aligned capture
        old = []
        skip_block = False
        for line in text.splitlines():
            if line.strip() == "Planning:":
                skip_block = True
                continue
            if skip_block and line.startswith("   "):
                continue
            skip_block = False
            if "Planning Time:" in line:
                continue
            old.append(line.replace("Execution Time:", "Total runtime:"))
        rows = sum(1 for line in old[2:] if line.startswith(" ") and not line.startswith(" ("))
        old = [re.sub(r"^\(\d+ rows\)$", f"({rows} rows)", line) for line in old]
        (out / "text_total_runtime.txt").write_text("\n".join(old) + "\n")

        unicode = "\\pset linestyle unicode\n\\pset border 2\n"
        (out / "text_unicode_border2.txt").write_text(
            psql(bindir, dsn, unicode + sets(NO_PARALLEL) + f"{analyze} {INITPLAN_JOIN_SQL};\n")
        )
        quoted = CTE_SQL.replace("'", "''")
        (out / "text_plus_continuation.txt").write_text(
            psql(bindir, dsn, sets(NO_PARALLEL) + f"SELECT explain_text('{quoted}') AS \"QUERY PLAN\";\n")
        )
        (out / "json_psql_plus.txt").write_text(
            psql(bindir, dsn, f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {GATHER_SQL};\n")
        )
        hash_quoted = HASH_SQL.replace("'", "''")
        copied = psql(
            bindir, dsn,
            sets({**NO_PARALLEL, "work_mem": "64kB"})
            + f"COPY (SELECT line AS \"QUERY PLAN\" FROM explain_lines('{hash_quoted}') AS line) "
            "TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE *);\n",
        )
        list(csv.reader(io.StringIO(copied)))  # it is valid CSV
        (out / "text_pgadmin_quoted.txt").write_text(copied)
        (out / "text_costs_off.txt").write_text(psql(bindir, dsn, sets(NO_PARALLEL) + f"EXPLAIN (COSTS OFF) {CTE_SQL};\n"))
        (out / "text_timing_off.txt").write_text(psql(bindir, dsn, f"EXPLAIN (ANALYZE, TIMING OFF) {GATHER_SQL};\n"))
        (out / "text_never_executed.txt").write_text(
            psql(bindir, dsn, sets(NO_PARALLEL) + f"{analyze} {NEVER_SQL};\n", "-A", "-t")
        )
        (out / "text_trigger_fk.txt").write_text(
            psql(bindir, dsn, "BEGIN;\n" + sets(NO_PARALLEL) + f"EXPLAIN (ANALYZE) {FK_SQL};\nROLLBACK;\n")
        )
        (out / "text_misestimate.txt").write_text(psql(bindir, dsn, sets(NO_PARALLEL) + f"{analyze} {MISESTIMATE_SQL};\n"))
        (out / "text_sort_spill.txt").write_text(
            psql(bindir, dsn, sets({**NO_PARALLEL, "work_mem": "64kB"}) + f"{analyze} {SORT_SQL};\n")
        )
        (out / "text_jit.txt").write_text(
            psql(bindir, dsn, sets(JSON_CASES["jit"][1]) + f"{analyze} {JIT_SQL};\n")
        )

        # --- auto_explain, from the server log ---------------------------------------------------
        for fmt, query, filename in (("text", NESTED_SQL, "auto_explain_text.log"), ("json", MISESTIMATE_SQL, "auto_explain.json")):
            marker = f"fixture_{fmt}"
            psql(
                bindir, dsn,
                sets({**NO_PARALLEL, "enable_hashjoin": "off", "enable_mergejoin": "off"})
                + f"LOAD 'auto_explain';\nSET auto_explain.log_min_duration = 0;\nSET auto_explain.log_format = '{fmt}';\n"
                + f"SET auto_explain.log_analyze = on;\nSET auto_explain.log_buffers = on;\n/* {marker} */ {query};\n",
            )
            message = auto_explain_message(sandbox, marker)
            if fmt == "json":
                (out / filename).write_text(message.split("plan:", 1)[1].strip() + "\n")
            else:
                # the stderr log format: prefix on the first line, a tab before each continuation line
                body = message.replace("\n", "\n\t")
                (out / filename).write_text(f"2024-05-02 10:11:12.345 UTC [4242] LOG:  {body}\n")
        engine.dispose()
    print(f"wrote {len(list(out.iterdir()))} files to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
