"""``perfkit snapshot``, ``top`` and ``diff`` end to end against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from perfkit.store import SnapshotStore


def perfkit(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "perfkit.cli", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def test_top_json_and_table(dsn, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int)")
    for _ in range(25):
        admin.execute(f"SELECT count(*) FROM {marker}")
    out = perfkit("top", "--dsn", dsn, "--by", "calls", "-n", "200", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["by"] == "calls"
    mine = [s for s in payload["statements"] if f"FROM {marker}" in s["query"] and "count" in s["query"]]
    assert mine and mine[0]["calls"] == 25
    assert {"queryid", "total_exec_ms", "mean_exec_ms", "captured_at"} <= set(mine[0])
    table = perfkit("top", "--dsn", dsn, "-n", "5")
    assert table.returncode == 0 and "total ms" in table.stdout


def test_bad_inputs_exit_2_with_one_line(dsn, sandbox, admin, marker):
    bad_by = perfkit("top", "--dsn", dsn, "--by", "slowest")
    assert bad_by.returncode == 2 and "invalid choice" in bad_by.stderr
    assert bad_by.stderr.strip().count("\n") == 0
    admin.execute(f"CREATE DATABASE {marker}")
    no_ext = perfkit("top", "--dsn", sandbox.dsn_for(marker))
    assert no_ext.returncode == 3  # a missing extension is the environment
    assert no_ext.stderr.strip().count("\n") == 0 and "CREATE EXTENSION pg_stat_statements" in no_ext.stderr
    bad_since = perfkit("diff", "--since", "lastweek", "--store", "/nonexistent")
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr
    empty = perfkit("diff", "--store", "/nonexistent/store")
    assert empty.returncode == 2 and "no snapshots stored" in empty.stderr


def test_snapshot_then_diff_since_7d(dsn, admin, marker, tmp_path):
    store_dir = tmp_path / "store"
    admin.execute(f"CREATE TABLE {marker} (id int)")
    for _ in range(3):
        admin.execute(f"SELECT count(*) FROM {marker}")
    first = perfkit("snapshot", "--dsn", dsn, "--store", str(store_dir), "--server", "shop", "--json")
    assert first.returncode == 0, first.stderr
    first_path = json.loads(first.stdout)["path"]
    # make the first snapshot a week old, as if taken last Monday
    store = SnapshotStore(store_dir)
    old = store.load(first_path)
    old["captured_at"] = old["captured_at"] - pd.Timedelta(days=7)
    store.save(old)
    os.unlink(first_path)
    for _ in range(5):
        admin.execute(f"SELECT count(*) FROM {marker}")
    out = perfkit("diff", "--dsn", dsn, "--store", str(store_dir), "--server", "shop", "--since", "7d", "-n", "500", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert 6.9 * 24 < payload["interval"]["hours"] < 7.1 * 24
    mine = [s for s in payload["statements"] if f"FROM {marker}" in s["query"] and "count" in s["query"]]
    assert mine[0]["calls"] == 5 and mine[0]["status"] == "changed"
    assert payload["stats_reset"] is False
    human = perfkit("diff", "--store", str(store_dir), "--server", "shop")
    assert human.returncode == 0, human.stderr
    assert "statements:" in human.stdout and "changed" in human.stdout


@pytest.mark.parametrize("command", ["snapshot", "top", "diff", "sandbox"])
def test_help(command):
    out = perfkit(command, "--help")
    assert out.returncode == 0 and "--json" in out.stdout


def test_by_choices_match_the_library():
    from perfkit.commands.top import TOP_CHOICES
    from perfkit.statements import TOP_ORDERS

    assert TOP_CHOICES == tuple(TOP_ORDERS)
