"""A load test joined to the database work behind it: real pgbench runs with route-tagged scripts
against the sandbox, snapshots taken around them (by ``--run``, or stored by ``perfkit snapshot``),
database time per route checked against pg_stat_statements read independently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perfkit.cli import main

PGBENCH = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"

# the heavy route scans the table; the light one looks a row up by key
HEAVY = "\\set x random(1, 1000)\nSELECT count(*) FROM items WHERE v > :x /*route='script%200'*/;\n"
LIGHT = "\\set id random(1, 20000)\nSELECT v FROM items WHERE id = :id /*route='script%201'*/;\n"


@pytest.fixture(scope="module")
def routes_db(sandbox, new_database) -> str:
    name = "route_times"
    with new_database(name) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, g % 1000 FROM generate_series(1, 20000) g")
        conn.execute("ANALYZE items")
    return sandbox.dsn_for(name)


def _scripts(folder: Path) -> tuple[Path, Path]:
    heavy, light = folder / "heavy.sql", folder / "light.sql"
    heavy.write_text(HEAVY)
    light.write_text(LIGHT)
    return heavy, light


def _route_ms(sandbox, database: str) -> dict[str, float]:
    """Total execution time per route comment, straight from pg_stat_statements (not through perfkit)."""
    with sandbox.admin_connect(database, autocommit=True) as conn:
        rows = conn.execute("SELECT query, total_exec_time, calls FROM pg_stat_statements "
                            "WHERE query LIKE '%route=''script%'").fetchall()
    out = {}
    for query, total, calls in rows:
        route = "script 0" if "script%200" in query else "script 1"
        ms, n = out.get(route, (0.0, 0))
        out[route] = (ms + total, n + calls)
    return out


def _routes(doc) -> dict:
    return {r["endpoint"]: r for r in doc["routes"]}


def test_run_between_snapshots_gives_database_time_per_route(sandbox, routes_db, tmp_path, capsys):
    heavy, light = _scripts(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    before = _route_ms(sandbox, "route_times")
    command = (f"{PGBENCH} -n -c 2 -t 40 -f {heavy} -f {light} -l --log-prefix={results}/pgbench "
               f"{routes_db}")
    code = main(["loadtest", "--latest", str(results), "--dsn", routes_db, "--run", command,
                 "--store", str(tmp_path / "store"), "--json"])
    assert code == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "perfkit: running" in captured.err
    after = _route_ms(sandbox, "route_times")
    routes = _routes(doc)
    assert "(no route comment)" not in routes  # perfkit's own BEGIN/ROLLBACK around its snapshots are no route's
    assert doc["db_time"]["snapshots"] == "taken around --run"
    for route in ("script 0", "script 1"):
        expected_ms = after[route][0] - before.get(route, (0.0, 0))[0]
        expected_calls = after[route][1] - before.get(route, (0.0, 0))[1]
        row = routes[route]
        assert row["attributed_by"] == "route comment"
        assert abs(row["db_ms"] - expected_ms) <= 0.1 * expected_ms  # within 10 % of pg_stat_statements
        assert row["db_calls"] == expected_calls
        assert row["statements_per_request"] == pytest.approx(expected_calls / row["requests"])
    assert routes["script 0"]["requests"] + routes["script 1"]["requests"] == 80  # 2 clients x 40 transactions
    assert routes["ALL"]["requests"] == 80
    # the scan is the costly route
    assert routes["script 0"]["db_ms_per_request"] > routes["script 1"]["db_ms_per_request"]
    assert any("of the mean latency" in note for note in doc["notes"])
    assert len(list((tmp_path / "store").rglob("*.parquet"))) >= 2  # both snapshots kept


def test_stored_snapshots_around_a_run_and_the_terminal_table(sandbox, routes_db, tmp_path, capsys, monkeypatch):
    import subprocess

    heavy, light = _scripts(tmp_path)
    store = tmp_path / "store"
    assert main(["snapshot", "--dsn", routes_db, "--store", str(store)]) == 0
    subprocess.run([PGBENCH, "-n", "-c", "1", "-t", "20", "-f", str(heavy), "-f", str(light), "-l",
                    f"--log-prefix={tmp_path}/run", routes_db], check=True, capture_output=True)
    assert main(["snapshot", "--dsn", routes_db, "--store", str(store)]) == 0
    log = next(tmp_path.glob("run.*"))
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["loadtest", str(log), "--dsn", routes_db, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "Database time per route (the stored snapshots around the run):" in out
    lines = out.splitlines()
    assert any(line.startswith("script 0") and "route comment" in line for line in lines)
    assert max(len(line) for line in lines) <= 100
    share = next(line for line in lines if line.startswith("script 0"))
    assert "%" in share and not any(len(word) > 6 and word.endswith("%") for word in share.split())  # a fraction, shown once as %
    # a snapshot too far from the run would charge other work to it
    from perfkit import loadtests
    from perfkit.errors import BadInputError
    from perfkit.store import SnapshotStore

    run_ = loadtests.read(log)
    with pytest.raises(BadInputError, match="min away from the run"):
        loadtests.bracketing(SnapshotStore(store), *loadtests.window(run_), max_gap_s=0.0)


def test_no_snapshot_before_the_run_says_how_to_get_one(routes_db, tmp_path, capsys):
    import subprocess

    heavy, light = _scripts(tmp_path)
    subprocess.run([PGBENCH, "-n", "-t", "5", "-f", str(light), "-l", f"--log-prefix={tmp_path}/run", routes_db],
                   check=True, capture_output=True)
    store = tmp_path / "store"
    assert main(["snapshot", "--dsn", routes_db, "--store", str(store)]) == 0  # only after the run
    capsys.readouterr()
    log = next(tmp_path.glob("run.*"))
    assert main(["loadtest", str(log), "--dsn", routes_db, "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert "before its start" in err and "--run" in err and len(err.splitlines()) == 1
    assert main(["loadtest", str(log), "--run", "true"]) == 2
    assert "--run needs --dsn DSN" in capsys.readouterr().err
    # a usage mistake stops before the load test runs, not after it
    assert main(["loadtest", "--dsn", routes_db, "--run", f"touch {tmp_path}/ran"]) == 2
    assert "--run needs FILE... or --latest DIR" in capsys.readouterr().err and not (tmp_path / "ran").exists()


def test_the_notebook_section_shows_database_time_per_route(sandbox, routes_db, tmp_path):
    import subprocess

    from perfkit import sections

    heavy, light = _scripts(tmp_path)
    store = tmp_path / "store"
    assert main(["snapshot", "--dsn", routes_db, "--store", str(store)]) == 0
    subprocess.run([PGBENCH, "-n", "-t", "10", "-f", str(heavy), "-f", str(light), "-l",
                    f"--log-prefix={tmp_path}/run", routes_db], check=True, capture_output=True)
    assert main(["snapshot", "--dsn", routes_db, "--store", str(store)]) == 0
    src = sections.load_sources(routes_db, store=store, loadtest=[next(tmp_path.glob("run.*"))])
    section = sections.loadtest(src)
    routes = section.assessment.tables["routes"].set_index("endpoint")
    assert routes.loc["ALL", "requests"] == 10 and routes.loc["script 0", "attributed_by"] == "route comment"
    assert any(isinstance(b, str) and b.startswith("**Database time per route**") for b in section.blocks)
    no_store = sections.loadtest(sections.load_sources(routes_db, store=tmp_path / "empty",
                                                       loadtest=[next(tmp_path.glob("run.*"))]))
    assert "routes" not in no_store.assessment.tables
    assert any("no database time per route" in note for note in no_store.assessment.notes)


def test_run_masks_a_password_in_the_command(sandbox, routes_db, tmp_path, capsys):
    """--run prints the command it runs; a DSN's password in it (and in --dsn) is masked everywhere."""
    _, light = _scripts(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    secret_dsn = sandbox.dsn_for("route_times", "postgres", "s3cr3t-pw-in-dsn")
    command = f"{PGBENCH} -n -t 3 -f {light} -l --log-prefix={results}/pgbench {secret_dsn}"
    assert main(["loadtest", "--latest", str(results), "--dsn", secret_dsn, "--run", command,
                 "--store", str(tmp_path / "store")]) == 0
    captured = capsys.readouterr()
    assert "perfkit: running" in captured.err and "Database time per route" in captured.out
    assert "s3cr3t-pw-in-dsn" not in captured.out + captured.err
