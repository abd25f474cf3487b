"""The workload-wide index advisor on 500 distinct statements over 50 tables: its time against the time
spent inside EXPLAIN and hypopg (the floor), and its hypopg calls against one per (statement, candidate) pair.

Run: ``.venv/bin/python benchmarks/bench_advice.py [--tables 50] [--statements 500] [--rows 2000]``; prints,
never asserts (a throwaway sandbox PostgreSQL with hypopg is started for it).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from perfkit import advice, advisor, db
from perfkit.output import format_table
from perfkit.sandbox import Sandbox

SHAPES = (
    "SELECT id, status FROM {t} WHERE tenant_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT 50",
    "SELECT count(*) FROM {t} WHERE tenant_id = $1 AND deleted_at IS NULL",
    "SELECT sum(amount) FROM {t} WHERE account_id = $1",
    "SELECT * FROM {t} WHERE a = $1",
    "SELECT id FROM {t} WHERE a = $1 AND b > $2",
    "SELECT id, b FROM {t} WHERE b = $1 ORDER BY created_at LIMIT 20",
    "SELECT * FROM {t} WHERE id = $1",
    "SELECT count(*) FROM {t} WHERE tenant_id = $1 AND created_at > now() - interval $2",
    "UPDATE {t} SET status = $1 WHERE tenant_id = $2 AND a = $3",
    "DELETE FROM {t} WHERE created_at < $1 AND status = $2",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--statements", type=int, default=500)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    with Sandbox() as sb:
        with sb.admin_connect() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
            for i in range(args.tables):
                conn.execute(f"CREATE TABLE t{i} (id int PRIMARY KEY, tenant_id int, status text, created_at timestamptz, "
                             "deleted_at timestamptz, account_id int, amount numeric, a int, b int)")
                conn.execute(f"INSERT INTO t{i} SELECT g, g % 50, (ARRAY['a','b','c'])[1 + g % 3], now() - g * interval '1 s', "
                             f"CASE WHEN g % 5 = 0 THEN now() END, g % 100, g, g % 300, g % 77 "
                             f"FROM generate_series(1, {args.rows}) g")
            conn.execute("ANALYZE")
        rows = []
        for n in range(args.statements):
            table, shape = n % args.tables, SHAPES[(n // args.tables) % len(SHAPES)]
            calls = 10 + (n * 37) % 1000
            mean = 0.5 + (n * 13) % 20
            rows.append({"queryid": n, "query": shape.format(t=f"t{table}") + (f" -- v{n}" if n >= 10 * args.tables else ""),
                         "calls": calls, "mean_exec_ms": mean, "total_exec_ms": calls * mean})
        statements = pd.DataFrame(rows)
        engine = db.connect(sb.dsn)
        try:
            existing = advice.existing_indexes(engine)
            started = time.perf_counter()
            result = advisor.advise(engine, statements, existing=existing, top_n=args.statements)
            wall = time.perf_counter() - started
        finally:
            engine.dispose()
    facts = result.facts
    table = pd.DataFrame([
        ("statements costed", facts["statements"]),
        ("candidates", facts["candidates"]),
        ("proposals", facts["chosen"]),
        ("hypopg calls (create, size, EXPLAIN with it, drop)", facts["hypopg_calls"]),
        ("EXPLAINs", facts["explains"]),
        ("(candidate, statement on its table) pairs costed", facts["pairs"]),
        ("one per (statement, candidate) pair would be", facts["all_pairs"]),
        ("wall time (s)", round(wall, 2)),
        ("inside EXPLAIN / hypopg: the floor (s)", round(facts["server_seconds"], 2)),
        ("advisor's own work (s)", round(wall - facts["server_seconds"], 2)),
        ("notes (not costed)", len(result.notes)),
    ], columns=["measure", "value"])
    print(f"bench_advice: {args.statements} statements over {args.tables} tables of {args.rows:,} rows")
    print(format_table(table))


if __name__ == "__main__":
    main()
