#!/usr/bin/env python3
"""Regenerate tests/fixtures/logs/events/ from a real PostgreSQL server (perfkit.sandbox).

One server logs to stderr, csvlog and jsonlog at once with everything pgBadger reads switched on
(log_temp_files = 0, log_checkpoints, log_autovacuum_min_duration = 0, log_lock_waits,
log_connections, log_disconnections, auto_explain); the workload makes each kind of event happen:
temp files, requested checkpoints, autovacuum and autoanalyze, a lock wait and a forced deadlock,
short connections, errors and a cancelled statement, an empty statement, psycopg 3 with
prepare_threshold=0 (server-side binding) and sqlcommenter tags (an N+1), perfkit's own session,
and a pool-like connection without request comments.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path

import psycopg

from perfkit.sandbox import Sandbox

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "logs" / "events"
PREFIX = "%m [%p] user=%u,db=%d,app=%a,client=%h "
SETTINGS = {
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_filename": "'postgresql.log'",
    "log_line_prefix": f"'{PREFIX}'",
    "log_timezone": "'UTC'",
    "log_min_duration_statement": "0",
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "deadlock_timeout": "'200ms'",
    "log_temp_files": "0",
    "log_autovacuum_min_duration": "0",
    "autovacuum_naptime": "'1s'",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_format": "'text'",
    "auto_explain.log_analyze": "off",
}
END_MARKER = "perfkit events fixture end"


def tag(route: str, request_id: str) -> str:
    from urllib.parse import quote

    return f"/*request_id='{quote(request_id, safe='')}',route='{quote(route, safe='')}'*/"


def workload(sandbox: Sandbox) -> None:
    dsn = sandbox.dsn
    with sandbox.admin_connect(application_name="setup", autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL, note text)")
        conn.execute("INSERT INTO items SELECT g, g % 50, 'note ' || g FROM generate_series(1, 3000) g")
        # temporary files: sorts larger than a tiny work_mem
        conn.execute("SET work_mem = '64kB'")
        for _ in range(3):
            conn.execute("SELECT g FROM generate_series(1, 60000) g ORDER BY g DESC LIMIT 1").fetchall()
        conn.execute("RESET work_mem")
        conn.execute("CHECKPOINT")
        # errors and a cancelled statement
        for sql in ("SELECT * FROM no_such_table", "SELECT 1 / 0", "SELECT * FROM no_such_table"):
            try:
                conn.execute(sql)
            except psycopg.Error:
                pass
        conn.execute("SET statement_timeout = '100ms'")
        try:
            conn.execute("SELECT pg_sleep(2)")
        except psycopg.Error:
            pass
        conn.execute("RESET statement_timeout")
        conn.execute("")  # an empty statement: logged with an empty text
        # autovacuum: enough dead rows for the 1 s naptime to pick the table up
        conn.execute("DELETE FROM items WHERE id > 1500")
    # server-side binding (psycopg 3, prepare_threshold=0) with sqlcommenter tags: an N+1
    with psycopg.connect(dsn, application_name="shop", prepare_threshold=0, autocommit=True) as conn:
        for request in range(2):
            t = tag("/api/owners", f"req-{request}").replace("%", "%%")
            rows = conn.execute(f"SELECT id, owner FROM items WHERE id <= %s ORDER BY id {t}", (5,)).fetchall()
            for _, owner in rows:
                conn.execute(f"SELECT count(*) FROM items WHERE owner = %s {t}", (owner,)).fetchall()
    # perfkit's own session: a list then lookups, never an N+1
    with psycopg.connect(dsn, application_name="perfkit", autocommit=True) as conn:
        conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' LIMIT 3").fetchall()
        for oid in (1, 2, 3, 4):
            conn.execute("SELECT relname FROM pg_class WHERE oid = %s", (oid,)).fetchall()
    # a pool-like connection without request comments: the same lookup, cut only by idle time
    with psycopg.connect(dsn, application_name="pool", autocommit=True) as conn:
        for _ in range(2):
            for owner in (1, 2, 3, 4):
                conn.execute("SELECT note FROM items WHERE owner = %s LIMIT 1", (owner,)).fetchall()
            time.sleep(1.2)
    # short connections: sessions and connection rate
    for n in range(4):
        with psycopg.connect(dsn, application_name=f"cron-{n}", autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()
    # a lock wait and a forced deadlock between two sessions
    first = psycopg.connect(dsn, application_name="worker-a")
    second = psycopg.connect(dsn, application_name="worker-b")
    first.execute("UPDATE items SET note = 'a' WHERE id = 1")
    second.execute("UPDATE items SET note = 'b' WHERE id = 2")
    errors = []

    def cross() -> None:
        try:
            first.execute("UPDATE items SET note = 'a' WHERE id = 2")
        except psycopg.Error as err:
            errors.append(err)

    waiter = threading.Thread(target=cross)
    waiter.start()
    time.sleep(0.5)  # past deadlock_timeout: the first session's wait is logged
    try:
        second.execute("UPDATE items SET note = 'b' WHERE id = 1")
    except psycopg.Error as err:
        errors.append(err)
    waiter.join()
    for conn in (first, second):
        conn.rollback()
        conn.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = (sandbox.log_dir / "postgresql.log").read_text()
        if 'automatic vacuum of table "perfkit.public.items"' in text:
            break
        time.sleep(0.3)
    with sandbox.admin_connect(application_name="setup", autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        conn.execute(f"SELECT '{END_MARKER}'")


def capture(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with Sandbox(settings=SETTINGS) as sandbox:
        workload(sandbox)
        deadline = time.monotonic() + 10
        names = ("postgresql.log", "postgresql.csv", "postgresql.json")
        while time.monotonic() < deadline and not all(
                END_MARKER in (sandbox.log_dir / n).read_text() for n in names if (sandbox.log_dir / n).exists()):
            time.sleep(0.1)
        for name in names:
            shutil.copyfile(sandbox.log_dir / name, folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    capture(parser.parse_args().out)


if __name__ == "__main__":
    main()
