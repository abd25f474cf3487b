"""One test per exit code, through the real command line (README "Exit codes", ``perfkit --help``).

1 a gate failed and 70 an internal error as processes here (``python -m perfkit``); 0 as a
process in tests/test_wheel.py (every command there); 2 and 3 as processes in
tests/test_cli_statements.py (test_bad_inputs_exit_2_with_one_line: a bad option, a bad --since,
an empty store, a missing extension) and tests/test_db.py
(test_cli_connection_failure_json_and_stderr_have_no_password). The variants of each code run
through ``perfkit.cli.main``, the same entry point in this process (a process costs ~2 s of
imports). 4, a report that failed part-way: tests/test_report.py
(test_failing_cell_leaves_partial_notebook_html_and_failed_summary,
test_wrong_password_fails_the_run_without_showing_it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from perfkit import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
PLAN = SAMPLE / "plans" / "invoices-by-tenant.json"  # one warning: rows removed by a filter
LOG = SAMPLE / "logs" / "postgresql.json"  # one critical N+1
BEFORE, AFTER = SAMPLE / "loadtests" / "pgbench-before-index.log", SAMPLE / "loadtests" / "pgbench-after-index.log"
CRASH = ("import sys; from perfkit import cli; from perfkit.commands import plan; "
         "plan.run = lambda args: {}['no such key']; sys.exit(cli.main(sys.argv[1:]))")


def unused_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def main(*args) -> int:
    """``perfkit ARGS`` in this process: its exit code (argparse's own exit included)."""
    try:
        return cli.main([str(a) for a in args])
    except SystemExit as done:
        return int(done.code or 0)


@pytest.mark.parametrize("code, args", [
    (1, ("-m", "perfkit", "plan", PLAN, "--fail-on", "warning")),
    (70, ("-c", CRASH, "plan", PLAN)),  # a bug stands in for one: the real entry point, a command that raises
], ids=["1-gate", "70-internal"])
def test_exit_code_of_the_process(code, args, tmp_path):
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PERFKIT_CRASH_DIR": str(tmp_path)})
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if code == 70:
        assert done.stderr.count("\n") == 1, done.stderr  # one line
        assert "internal error" in done.stderr and "KeyError" in done.stderr
        saved = list(tmp_path.glob("perfkit-crash-*.txt"))
        assert len(saved) == 1 and str(saved[0]) in done.stderr
        assert "Traceback" in saved[0].read_text() and saved[0].stat().st_mode & 0o777 == 0o600


def test_help_documents_every_exit_code(capsys):
    assert main("--help") == 0
    shown = capsys.readouterr().out
    for line in ("0   ok", "1   a gate failed", "2   bad input", "3   the environment", "4   a report run failed",
                 "70  an internal error"):
        assert line in shown
    for command in ("health", "diff", "logs", "plan"):
        assert main(command, "--help") == 0
        assert "--fail-on SEVERITY" in capsys.readouterr().out


def test_fail_on_gates_plan_logs_diff(capsys):
    assert main("plan", PLAN, "--fail-on", "critical") == 0  # its finding is a warning
    assert main("plan", PLAN, "--fail-on", "warning", "--json") == 1  # the gate holds with --json
    assert main("logs", LOG, "--fail-on", "critical") == 1
    assert main("logs", LOG) == 0
    diff = ("diff", "--store", SAMPLE / "store", "--server", "sample")
    assert main(*diff, "--fail-on", "critical") == 0
    assert main(*diff, "--fail-on", "warning", "--format", "markdown") == 1  # a per-call regression (warning)


def test_loadtest_ci_gate(tmp_path, capsys):
    slo = tmp_path / "slo.toml"
    slo.write_text("[defaults]\np95_ms = { target = 1, critical = 2 }\n")
    assert main("loadtest", BEFORE, AFTER, "--ci") == 0
    assert main("loadtest", BEFORE, AFTER, "--ci", "--slo", slo) == 1
    assert "critical" in capsys.readouterr().out
    assert main("loadtest", BEFORE, AFTER, "--slo", slo) == 0  # no --ci: no gate


def test_health_fail_on(tenant_db, capsys):
    # the planted tenant database has a duplicate index (a warning)
    check = ("health", "--dsn", tenant_db, "--check", "duplicate_indexes")
    assert main(*check, "--fail-on", "warning") == 1
    assert main(*check, "--fail-on", "critical") == 0


def test_unreachable_server_is_3(capsys):
    dsn = f"host=127.0.0.1 port={unused_port()} dbname=x user=x connect_timeout=2"
    assert main("health", "--dsn", dsn, "--fail-on", "info") == 3  # the environment, never a gate
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_usage_is_2(tmp_path, capsys):
    assert main("plan", SAMPLE / "no-such-plan.json") == 2
    assert main("plan", "--fail-on", "severe", PLAN) == 2
    assert main("loadtest", BEFORE, "--input-format", "k6", "--format", "k6-csv") == 2
    assert main("health", "--dsn", "host=/nonexistent", "--junit", tmp_path / "x.xml") == 2
    assert "--fail-on" in capsys.readouterr().err


@pytest.mark.parametrize("command", [("plan", PLAN), ("logs", LOG)])
def test_json_carries_the_versions(command, capsys):
    from perfkit import __version__

    assert main(*command, "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload)[:2] == ["schema_version", "perfkit_version"]
    assert payload["schema_version"] == 1 and payload["perfkit_version"] == __version__
