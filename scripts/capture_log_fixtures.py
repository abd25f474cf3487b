#!/usr/bin/env python3
"""Regenerate tests/fixtures/logs/ from real PostgreSQL servers (perfkit.sandbox).

Runs one small tagged workload on two throwaway servers and copies the logs they write.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from perfkit.sandbox import Sandbox

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "logs"
END_MARKER = "perfkit fixture end"
COMMON = {
    "log_min_duration_statement": "0",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_format": "'text'",
    "log_timezone": "'UTC'",
}
# server 1: all three destinations at once, PostgreSQL's default prefix
SERVER_ALL = {**COMMON, "log_destination": "'csvlog,jsonlog,stderr'", "log_line_prefix": "'%m [%p] '"}
# server 2: stderr with pgBadger's recommended prefix
PGBADGER_PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
SERVER_PGBADGER = {**COMMON, "log_destination": "'stderr'", "log_line_prefix": f"'{PGBADGER_PREFIX}'"}


def comment(route: str, request_id: str) -> str:
    """An sqlcommenter comment (values URL-encoded)."""
    from urllib.parse import quote

    return f"/*request_id='{quote(request_id, safe='')}',route='{quote(route, safe='')}'*/"


def workload(sandbox: Sandbox) -> None:
    """Two tagged requests (one N+1 with 4 lookups, one clean), a multi-line statement,
    a failing statement and auto_explain plans in text and JSON."""
    with sandbox.admin_connect(application_name="fixture") as conn:
        conn.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, tenant_id int NOT NULL, name text NOT NULL);"
            "CREATE TABLE invoices (id int PRIMARY KEY, tenant_id int NOT NULL, customer_id int NOT NULL, total numeric)"
        )
        conn.execute("INSERT INTO customers SELECT g, g % 2, 'customer ' || g FROM generate_series(1, 20) g")
        conn.execute("INSERT INTO invoices SELECT g, g % 2, 1 + g % 20, g * 1.5 FROM generate_series(1, 40) g")
        # psycopg reads % as a placeholder in statements with parameters
        tag = comment("/api/invoices", "fixture-n1").replace("%", "%%")
        rows = conn.execute(
            f"SELECT id, customer_id\n  FROM invoices\n WHERE tenant_id = %s\n ORDER BY id\n LIMIT 4 {tag}", (1,)
        ).fetchall()
        for _, customer_id in rows:
            conn.execute(f"SELECT id, name FROM customers WHERE id = %s {tag}", (customer_id,))
        tag = comment("/api/customers", "fixture-clean")
        conn.execute(
            "SELECT i.id, c.name FROM invoices i JOIN customers c ON c.id = i.customer_id "
            f"WHERE i.tenant_id = 1 ORDER BY i.id LIMIT 4 {tag}"
        )
        conn.execute("SELECT 'a literal\nwith a newline' AS two_lines, 42 AS answer")
        try:
            conn.execute("SELECT * FROM no_such_table")
        except Exception:  # the server logs the error with its statement, which is the point
            pass
        conn.execute("SET auto_explain.log_format = 'json'")
        conn.execute("SELECT count(*) FROM invoices WHERE total > 10")
        conn.execute(f"SELECT '{END_MARKER}'")


def wait_for_marker(sandbox: Sandbox, count: int, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sandbox.log_files()
        if len(files) >= count and all(END_MARKER in f.read_text(errors="replace") for f in files):
            return files
        time.sleep(0.1)
    raise SystemExit(f"the server did not write the end marker to {count} log files within {timeout} s")


def capture(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with Sandbox(settings=SERVER_ALL) as sandbox:
        workload(sandbox)
        for path in wait_for_marker(sandbox, 3):
            name = {".csv": "csvlog.csv", ".json": "jsonlog.json", ".log": "stderr-default.log"}[path.suffix]
            shutil.copy(path, out / name)
            written.append(out / name)
    with Sandbox(settings=SERVER_PGBADGER) as sandbox:
        workload(sandbox)
        (path,) = wait_for_marker(sandbox, 1)
        shutil.copy(path, out / "stderr-pgbadger.log")
        written.append(out / "stderr-pgbadger.log")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help=f"folder to write (default: {HERE})")
    args = parser.parse_args()
    for path in capture(args.out):
        print(f"{path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
