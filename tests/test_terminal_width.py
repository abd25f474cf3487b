"""What a person reads in a 100-column terminal: no line of perfkit's output is wider (COLUMNS=100)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
WIDTH = 100


def run(*argv) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "PERFKIT_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-m", "perfkit.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def too_wide(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH]


@pytest.mark.parametrize("argv", [
    ("loadtest", SAMPLE / "loadtests" / "pgbench-before-index.log", SAMPLE / "loadtests" / "pgbench-after-index.log"),
    ("loadtest", ROOT / "tests" / "fixtures" / "report" / "locust-demo_stats.csv"),
    ("logs", SAMPLE / "logs" / "postgresql.json"),
    ("plan", SAMPLE / "plans" / "invoices-by-tenant.json", SAMPLE / "plans" / "invoices-by-tenant-after-index.json"),
    ("diff", "--store", SAMPLE / "store"),
], ids=["loadtest-compare", "loadtest-locust", "logs", "plan-compare", "diff"])
def test_file_commands_fit_100_columns(argv):
    assert too_wide(run(*argv)) == []


@pytest.fixture(scope="module")
def busy_dsn(sandbox):
    """A database with a tenant table, a duplicate index and some statements in pg_stat_statements."""
    name = "terminal_width"
    with sandbox.admin_connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    with sandbox.admin_connect(name, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE tenants (id int PRIMARY KEY)")
        conn.execute("INSERT INTO tenants SELECT generate_series(1, 20)")
        conn.execute("CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants(id),"
                     " created_at timestamptz DEFAULT now(), note text)")
        conn.execute("INSERT INTO invoices SELECT g, 1 + g % 20, now(), repeat('x', 20) FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX invoices_created_idx ON invoices (created_at)")
        conn.execute("CREATE INDEX invoices_created_again_idx ON invoices (created_at)")
        conn.execute("ANALYZE")
        for tenant in range(1, 21):
            conn.execute("SELECT id, note FROM invoices WHERE tenant_id = %s AND note LIKE %s ORDER BY created_at DESC "
                         "LIMIT 20 -- a statement longer than a terminal is wide, with a comment at its end",
                         (tenant, "x%"))
    return sandbox.dsn_for(name)


@pytest.mark.parametrize("command", ["top", "health"])
def test_database_commands_fit_100_columns(command, busy_dsn):
    assert too_wide(run(command, "--dsn", busy_dsn)) == []
