#!/usr/bin/env python3
"""Regenerate data/sample/ from a real throwaway PostgreSQL (perfkit.sandbox) and real tools.

Snapshots around the shop workload, EXPLAIN plans, the server's own log, pgbench runs, health findings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit import db, statements  # noqa: E402
from perfkit.demo import shop  # noqa: E402
from perfkit.output import to_jsonable  # noqa: E402
from perfkit.sandbox import Sandbox  # noqa: E402
from perfkit.store import SnapshotStore  # noqa: E402

SERVER = "sample"
SCALE = 0.5
REQUESTS = 400
LOGGED_REQUESTS = 40
PGBENCH_SECONDS = 4
PGBENCH_RATE = 150  # open loop: transactions per second scheduled, whatever the latency
# The invoices list endpoint, as pgbench runs it: a random tenant's latest 50 invoices.
PGBENCH_SCRIPT = """\\set tenant random(1, 30)
SELECT id, order_id, status, amount, created_at FROM invoices WHERE tenant_id = :tenant ORDER BY created_at DESC LIMIT 50;
"""
PLANS = {
    # the tenant invoice list without an index leading with tenant_id (planted in the shop)
    "invoices-by-tenant": "SELECT id, order_id, status, amount, created_at FROM invoices "
                          "WHERE tenant_id = 3 ORDER BY created_at DESC LIMIT 50",
    # the dashboard's per-order item sum (the N+1's inner statement) joined for a whole tenant
    "tenant-revenue": "SELECT o.id, sum(i.quantity * i.price) FROM orders o JOIN order_items i ON i.order_id = o.id "
                      "WHERE o.tenant_id = 3 GROUP BY o.id ORDER BY 2 DESC LIMIT 20",
}
# A batch import between the two snapshots: every invoice again, a month later (the table doubles).
GROWTH_SQL = """
INSERT INTO invoices (tenant_id, order_id, status, amount, created_at)
SELECT tenant_id, order_id, status, amount, created_at + interval '30 days' FROM invoices
"""
FIX_SQL = "CREATE INDEX invoices_tenant_created_idx ON invoices (tenant_id, created_at DESC)"


def say(text: str) -> None:
    print(f"make_sample_data: {text}", file=sys.stderr, flush=True)


def snapshots(sandbox: Sandbox, out: Path) -> dict:
    """Two "weeks" of the shop: statistics reset after the build, a week of requests, a snapshot;
    then the data grows (a batch import doubles the invoices), another week of requests, a snapshot."""
    store_dir = out / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = SnapshotStore(store_dir)
    engine = db.connect(sandbox.dsn)
    with sandbox.admin_connect() as conn:
        size = shop.build_shop(conn, shop.ShopSize.scaled(SCALE))
        conn.execute("SELECT pg_stat_statements_reset()")
        first_week = shop.run_workload(conn, requests=REQUESTS, seed=5)
        before = statements.snapshot(engine, server=SERVER)
        first = store.save(before)
        conn.execute(GROWTH_SQL)
        conn.execute("ANALYZE")
        second_week = shop.run_workload(conn, requests=REQUESTS, seed=11)
        after = statements.snapshot(engine, server=SERVER)
        second = store.save(after)
    engine.dispose()
    return {"shop": size.__dict__, "requests": [first_week.requests, second_week.requests], "before": first, "after": second}


def plans(sandbox: Sandbox, out: Path) -> list[Path]:
    """EXPLAIN (ANALYZE, BUFFERS) of two shop statements, as JSON and as text."""
    folder = out / "plans"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = []
    with sandbox.admin_connect() as conn:
        for name, sql in PLANS.items():
            plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) {sql}").fetchone()[0]
            text = "\n".join(r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}").fetchall())
            written.append(folder / f"{name}.json")
            written[-1].write_text(json.dumps(plan, indent=2) + "\n")
            (folder / f"{name}.txt").write_text(text + "\n")
            (folder / f"{name}.sql").write_text(sql + "\n")
    return written


def server_log(sandbox: Sandbox, out: Path) -> Path:
    """A short workload with every statement logged (jsonlog) and auto_explain for plans above 5 ms."""
    folder = out / "logs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with sandbox.admin_connect() as conn:
        conn.execute("SELECT pg_rotate_logfile()")
        time.sleep(1.1)  # a new log file name (the file name holds the second)
        conn.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
        conn.execute("ALTER SYSTEM SET auto_explain.log_min_duration = 5")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
    with sandbox.admin_connect() as conn:
        shop.run_workload(conn, requests=LOGGED_REQUESTS, seed=23)
    with sandbox.admin_connect() as conn:
        conn.execute("ALTER SYSTEM RESET log_min_duration_statement")
        conn.execute("ALTER SYSTEM RESET auto_explain.log_min_duration")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(1.0)
    logs = [p for p in sandbox.log_files() if p.suffix == ".json"]
    target = folder / "postgresql.json"
    shutil.copyfile(logs[-1], target)
    return target


def pgbench(sandbox: Sandbox, out: Path) -> list[Path]:
    """Two open-loop pgbench runs of the invoice list (per-transaction logs): before and after the fix index."""
    folder = out / "loadtests"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("pgbench-*"):
        old.unlink()
    binary = sandbox.bindir / "pgbench"
    script = folder / "invoices.pgbench.sql"
    script.write_text(PGBENCH_SCRIPT)
    written = []
    for label in ("before-index", "after-index"):
        if label == "after-index":
            with sandbox.admin_connect() as conn:
                conn.execute(FIX_SQL)
                conn.execute("ANALYZE invoices")
                sql = PLANS["invoices-by-tenant"]
                plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) {sql}").fetchone()[0]
                (out / "plans" / "invoices-by-tenant-after-index.json").write_text(json.dumps(plan, indent=2) + "\n")
        prefix = folder / f"pgbench-{label}"
        cmd = [str(binary), "-n", "-f", script.name, "-c", "4", "-j", "1", "-T", str(PGBENCH_SECONDS), "--rate", str(PGBENCH_RATE),
               "--log", f"--log-prefix={prefix}", sandbox.dsn]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"pgbench failed: {done.stderr.strip()}")
        logs = sorted(folder.glob(f"pgbench-{label}.*"))
        final = folder / f"pgbench-{label}.log"
        logs[0].rename(final)
        (folder / f"pgbench-{label}-report.txt").write_text(done.stdout)
        written.append(final)
    return written


def health(sandbox: Sandbox, out: Path) -> list[Path]:
    """perfkit.health's findings and perfkit.advice's index advice on the shop (before the fix index)."""
    from perfkit import advice
    from perfkit import health as health_checks

    folder = out / "health"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    engine = db.connect(sandbox.dsn)
    found = health_checks.check(engine)
    snap = statements.snapshot(engine, server=SERVER)
    ideas = advice.index_advice(engine, statements=snap[snap["datname"] == sandbox.database])
    # where space and cache go (what the health charts draw; health.assess keeps them as tables)
    ctx = health_checks.Context(engine)
    space, cache = health_checks.space.space(ctx), health_checks.space.cache(ctx)
    engine.dispose()
    written = []
    for name, frame in (("findings.json", found), ("index_advice.json", ideas), ("space.json", space),
                        ("cache.json", cache)):
        written.append(folder / name)
        written[-1].write_text(json.dumps(to_jsonable(frame), indent=2) + "\n")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "data" / "sample"), help="the sample folder (default data/sample)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with Sandbox() as sandbox:
        say(f"PostgreSQL {sandbox.version} sandbox on port {sandbox.port}")
        facts = snapshots(sandbox, out)
        say(f"snapshots: {facts['before'].name}, {facts['after'].name}; requests {facts['requests']}")
        say(f"plans: {[p.name for p in plans(sandbox, out)]}")
        say(f"health: {[p.name for p in health(sandbox, out)]}")
        say(f"log: {server_log(sandbox, out)}")
        say(f"pgbench: {[p.name for p in pgbench(sandbox, out)]}")
        (out / "origin.json").write_text(json.dumps(to_jsonable({
            "postgresql": sandbox.version, "shop": facts["shop"], "requests": facts["requests"],
            "script": "scripts/make_sample_data.py"}), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
