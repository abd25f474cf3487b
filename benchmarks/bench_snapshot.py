"""Benchmark: `perfkit snapshot` against the bare SQL through psql, on 5,000 distinct statements.

Starts a sandbox, fills pg_stat_statements with 5,000 distinct statements, then times in one run:
  baseline  psql -c 'SELECT * FROM pg_stat_statements' (all rows, unaligned, to /dev/null)
  perfkit   statements.snapshot() + store.save() in this process (the library call)
  perfkit   `perfkit snapshot` as a command (includes Python start-up and imports)
and prints medians and ratios. Goal: the library call below 2x the bare SQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit import db, statements  # noqa: E402
from perfkit.sandbox import Sandbox  # noqa: E402
from perfkit.store import SnapshotStore  # noqa: E402


def fill(sandbox: Sandbox, distinct: int) -> None:
    """``distinct`` statements of different shapes: tables x column counts."""
    tables = 100
    columns = max(1, -(-distinct // tables))
    with sandbox.admin_connect() as conn:
        for t in range(tables):
            cols = ", ".join(f"c{i} int" for i in range(columns))
            conn.execute(f"CREATE TABLE bench_{t} ({cols})")
        made = 0
        for t in range(tables):
            for k in range(1, columns + 1):
                if made >= distinct:
                    return
                conn.execute(f"SELECT {', '.join(f'c{i}' for i in range(k))} FROM bench_{t}")
                made += 1


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with Sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        print(f"filling pg_stat_statements with {args.statements} distinct statements ...", file=sys.stderr)
        fill(sandbox, args.statements)
        engine = db.connect(sandbox.dsn)
        count = db.scalar(engine, "SELECT count(*) FROM pg_stat_statements")
        psql = str(sandbox.bindir / "psql")
        bare = [psql, "-X", "-q", "-A", "-d", sandbox.dsn, "-c", "SELECT * FROM pg_stat_statements", "-o", os.devnull]
        store = SnapshotStore(Path(tmp) / "store")

        def run_psql():
            subprocess.run(bare, check=True)

        def run_library():
            store.save(statements.snapshot(engine, server="bench"))

        cli = [sys.executable, "-m", "perfkit.cli", "snapshot", "--dsn", sandbox.dsn, "--store", str(Path(tmp) / "cli")]

        def run_cli():
            subprocess.run(cli, check=True, capture_output=True)

        run_psql(), run_library()  # warm caches on both sides
        psql_s = median_time(run_psql, args.repeat)
        lib_s = median_time(run_library, args.repeat)
        cli_s = median_time(run_cli, max(3, args.repeat // 2))
        engine.dispose()
    print(f"pg_stat_statements rows: {count}")
    print(f"psql, bare SELECT *               : {psql_s * 1000:8.1f} ms (median of {args.repeat})")
    print(f"perfkit snapshot (library + save) : {lib_s * 1000:8.1f} ms  ratio {lib_s / psql_s:5.2f}x  (goal < 2x)")
    print(f"perfkit snapshot (command line)   : {cli_s * 1000:8.1f} ms  ratio {cli_s / psql_s:5.2f}x  (includes Python start-up and imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
