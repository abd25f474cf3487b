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


@pytest.mark.parametrize("command", ["top", "health"])
def test_database_commands_fit_100_columns(command, tenant_db):
    assert too_wide(run(command, "--dsn", tenant_db)) == []
