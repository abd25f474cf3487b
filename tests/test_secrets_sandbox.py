"""Secrets planted in a real server (pg_stat_statements, its log) reach no artifact and no --json output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from perfkit import logs

ROOT = Path(__file__).resolve().parent.parent
PLANTED = {
    "create_role": "Planted-CreateRole-7Qx",
    "alter_role": "Planted-AlterRole-8Rw",
    "encrypted": "Planted-Encrypted-9Sv",
    "mapping": "Planted-Mapping-1Tu",
    "mapping_set": "Planted-MappingSet-2Ut",
    "pgp_key": "Planted-PgpKey-3Vs",
    "conninfo": "Planted-Conninfo-4Wr",
    "url": "Planted-Url-5Xq",
}


def perfkit(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "perfkit.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PERFKIT_DSN": "", **(env or {})},
    )


def hits(text: str) -> list[str]:
    return [name for name, secret in PLANTED.items() if secret in text]


@pytest.fixture(scope="module")
def planted(sandbox, tmp_path_factory):
    """A database whose pg_stat_statements and server log hold every planted secret."""
    name = "secrets_probe"
    with sandbox.admin_connect("postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute("DROP ROLE IF EXISTS probe_app")
    available = set()
    with sandbox.admin_connect(name) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}
        conn.execute("SET log_statement = 'all'")  # this session only: every statement in the log
        conn.execute("SHOW pg_stat_statements.track_utility").fetchone()
        # Every planted statement is made expensive (repeated, password hashing, pg_sleep) so that
        # it leads the report's top lists (workload by total time and calls, the log's slowest and
        # most frequent): with scrubbing switched off the weekly report then holds the secrets.
        for _ in range(20):
            conn.execute("DROP ROLE IF EXISTS probe_app")
            conn.execute(f"CREATE ROLE probe_app LOGIN PASSWORD '{PLANTED['create_role']}'")
        for _ in range(100):  # each hashes the password (SCRAM, 4096 iterations)
            conn.execute(f"ALTER ROLE probe_app PASSWORD '{PLANTED['alter_role']}'")
            conn.execute(f"ALTER ROLE probe_app WITH ENCRYPTED PASSWORD '{PLANTED['encrypted']}'")
        slow = "pg_sleep(0.05)"
        if "postgres_fdw" in available:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
            conn.execute("CREATE SERVER probe_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'x')")
            conn.execute("CREATE USER MAPPING FOR probe_app SERVER probe_remote "
                         f"OPTIONS (user 'probe_app', password '{PLANTED['mapping']}')")
            for _ in range(50):
                conn.execute("ALTER USER MAPPING FOR probe_app SERVER probe_remote "
                             f"OPTIONS (SET password '{PLANTED['mapping_set']}')")
        else:
            for _ in range(5):
                conn.execute(f"SELECT {slow}, 'CREATE USER MAPPING FOR a SERVER s OPTIONS (password ''{PLANTED['mapping']}'')' AS t")
                conn.execute(f"SELECT {slow}, 'OPTIONS (SET password ''{PLANTED['mapping_set']}'')' AS t")
        if "pgcrypto" in available:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
            for _ in range(5):
                conn.execute(f"SELECT {slow}, pgp_sym_decrypt(pgp_sym_encrypt('data', '{PLANTED['pgp_key']}'), "
                             f"'{PLANTED['pgp_key']}')")
        else:
            for _ in range(5):
                conn.execute(f"SELECT {slow}, 'pgp_sym_encrypt(data, ''{PLANTED['pgp_key']}'')' AS t")
        for _ in range(5):
            # dblink's connection string as text (dblink would open a connection of its own)
            conn.execute(f"SELECT {slow}, 'host=127.0.0.1 user=probe_app password={PLANTED['conninfo']} dbname=x' "
                         "AS dblink_conninfo")
            conn.execute(f"SELECT {slow} AS one /* postgresql://probe_app:{PLANTED['url']}@127.0.0.1/x */")
            # pg_stat_statements keeps comments word for word (constants become $n): secrets in
            # comments of the costliest statements reach the report's plan section unless scrubbed
            conn.execute(f"SELECT {slow} AS two /* host=127.0.0.1 user=probe_app password={PLANTED['conninfo']} */")
            conn.execute(f"SELECT {slow} AS three /* ALTER ROLE probe_app PASSWORD '{PLANTED['alter_role']}' */")
        conn.execute("RESET log_statement")
    log_files = [p for p in sandbox.log_files() if p.suffix in (".json", ".csv")]
    raw_log = "\n".join(p.read_text(errors="replace") for p in log_files)
    assert not set(PLANTED) - set(hits(raw_log)), "the server log should hold every planted secret"
    base = tmp_path_factory.mktemp("secrets")
    return {"dsn": sandbox.dsn_for(name), "logs": log_files, "base": base, "extensions": available}


@pytest.fixture(scope="module")
def runs(planted):
    base, dsn = planted["base"], planted["dsn"]
    store, out = base / "store", base / "reports"
    results = {
        "snapshot": perfkit("snapshot", "--dsn", dsn, "--store", store, "--server", "probe", "--json"),
        "top": perfkit("top", "--dsn", dsn, "--json", "-n", "500", "--all"),
        "diff": perfkit("diff", "--dsn", dsn, "--store", store, "--server", "probe", "--json", "-n", "500", "--all"),
        "logs": perfkit("logs", *planted["logs"], "--json", "-n", "500", "--all", "--skip-bad-lines"),
        "report": perfkit("report", "weekly", "--dsn", dsn, "--logs", planted["logs"][-1], "--store", store, "--out", out),
    }
    return {**results, "store": store, "out": out}


def test_every_json_output_is_free_of_planted_secrets(runs):
    for name in ("snapshot", "top", "diff", "logs"):
        run = runs[name]
        assert run.returncode == 0, (name, run.stderr)
        json.loads(run.stdout)
        assert hits(run.stdout + run.stderr) == [], name
    top = json.loads(runs["top"].stdout)
    utility = [s["query"] for s in top["statements"] if "probe_app" in s["query"]]
    # the positive control: the utility statements are there, scrubbed
    assert any("PASSWORD '***'" in q for q in utility), utility


def test_the_snapshot_store_holds_no_planted_secret(runs):
    store = Path(runs["store"])
    files = sorted(store.rglob("*.parquet"))
    snapshots = [p for p in files if p.relative_to(store).parts[0].startswith("server=")]
    # the report's captured plans are kept in the store too (the plan_history dataset): checked as well
    assert snapshots and any(p.relative_to(store).parts[:2] == ("_datasets", "plan_history") for p in files)
    for path in files:
        assert hits(path.read_bytes().decode("latin-1")) == [], path
        table = pq.read_table(path)
        cells = [str(v) for column in table.columns for v in column.to_pylist() if isinstance(v, str)]
        assert cells and hits("\n".join(cells)) == [], path
        if path in snapshots:  # the positive control: the utility statement is there, scrubbed
            assert any("PASSWORD '***'" in cell for cell in cells), path


def test_the_weekly_report_holds_no_planted_secret(runs):
    run = runs["report"]
    assert run.returncode == 0, run.stderr[-2000:]
    assert hits(run.stdout + run.stderr) == []
    folder = Path(run.stdout.strip().splitlines()[-1])
    written = {p.name: p for p in folder.rglob("*") if p.is_file()}
    assert {"summary.json"} <= set(written) and any(n.endswith(".html") for n in written) and any(
        n.endswith(".ipynb") for n in written)
    for path in written.values():
        assert hits(path.read_bytes().decode("utf-8", "replace")) == [], path


def test_the_log_reader_keeps_the_entries_scrubbed(planted):
    frame = logs.read(planted["logs"], skip_bad_lines=True)
    text = "\n".join(frame[c].astype(str).str.cat(sep="\n") for c in ("statement", "normalized", "message", "detail"))
    assert hits(text) == []
    assert "ALTER ROLE probe_app PASSWORD '***'" in set(frame["statement"])
