#!/usr/bin/env python3
"""Regenerate tests/fixtures/logs/autovacuum.log from a real PostgreSQL server (perfkit.sandbox).

autovacuum_lagging's evidence: one table (``orders``, 300,000 rows) where 120,000 rows are deleted
at once, so that autovacuum, at the default autovacuum_vacuum_scale_factor (0.2), finds a backlog
of 120,000 dead tuples in one run; one table (``queue``) whose dead rows an open REPEATABLE READ
transaction keeps (vacuum runs and cannot remove them: "dead but not yet removable"); one small
table (``small``) vacuumed after a few deletes (no finding). Only the stderr log is kept.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import psycopg

from perfkit.sandbox import Sandbox

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "logs"
SETTINGS = {
    "log_destination": "'stderr'",
    "log_filename": "'postgresql.log'",
    "log_line_prefix": "'%m [%p] user=%u,db=%d,app=%a,client=%h '",
    "log_timezone": "'UTC'",
    "log_autovacuum_min_duration": "0",
    "autovacuum_naptime": "'1s'",
}


def _wait_for(sandbox: Sandbox, texts: list[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        log = (sandbox.log_dir / "postgresql.log").read_text()
        if all(t in log for t in texts):
            return
        time.sleep(0.3)
    raise SystemExit(f"autovacuum did not log {texts} in {seconds} s")


def capture(out: Path) -> None:
    with Sandbox(settings=SETTINGS) as sandbox:
        with sandbox.admin_connect(application_name="setup", autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL)")
            conn.execute("INSERT INTO orders SELECT g, g % 1000 FROM generate_series(1, 300000) g")
            conn.execute("CREATE TABLE queue (id int PRIMARY KEY, job int NOT NULL)")
            conn.execute("INSERT INTO queue SELECT g, g FROM generate_series(1, 60000) g")
            conn.execute("CREATE TABLE small (id int PRIMARY KEY)")
            conn.execute("INSERT INTO small SELECT generate_series(1, 200)")
            conn.execute("VACUUM ANALYZE orders, queue, small")
        holder = psycopg.connect(sandbox.dsn, application_name="report-job")
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM queue").fetchall()  # a snapshot older than the deletes
        with sandbox.admin_connect(application_name="setup", autocommit=True) as conn:
            conn.execute("DELETE FROM orders WHERE id <= 120000")
            conn.execute("DELETE FROM queue WHERE id <= 30000")
            conn.execute("DELETE FROM small WHERE id <= 150")
        _wait_for(sandbox, ['automatic vacuum of table "perfkit.public.orders"',
                            'automatic vacuum of table "perfkit.public.queue"',
                            'automatic vacuum of table "perfkit.public.small"'])
        holder.rollback()
        holder.close()
        time.sleep(1.5)
        shutil.copyfile(sandbox.log_dir / "postgresql.log", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "autovacuum.log")
    capture(parser.parse_args().out)


if __name__ == "__main__":
    main()
