#!/usr/bin/env python3
"""Capture tests/fixtures/plans/styles: one real plan printed by psql in every frame style, with twins.

Runs psql (PostgreSQL 15) against a throwaway perfkit Sandbox with ``track_io_timing = on``.
Each ``*.txt`` is psql's own output (``-P`` options as named); its JSON twin ``*.json`` is
``EXPLAIN (FORMAT JSON)`` of the same statement with the same options. ``plain_*`` twins are
``EXPLAIN`` without ANALYZE (same plan, same costs: equal in every column); ``analyze_*`` twins are
two executions (rows and loops equal, times and I/O read times differ by run).
Usage: .venv/bin/python scripts/capture_psql_style_fixtures.py [--out tests/fixtures/plans/styles]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit.sandbox import Sandbox  # noqa: E402

PSQL = "/usr/lib/postgresql/15/bin/psql"
SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, kind int NOT NULL, v text NOT NULL);
INSERT INTO items SELECT g, g % 100, md5(g::text) FROM generate_series(1, 20000) g;
CREATE TABLE "mytable:2020-12-09" (id int, name text);
INSERT INTO "mytable:2020-12-09" SELECT g, 'n' || g FROM generate_series(1, 500) g;
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Big Orders" (id int, item_id int, amount numeric);
INSERT INTO "Sales"."Big Orders" SELECT g, 1 + g % 20000, g FROM generate_series(1, 300000) g;
ANALYZE;
"""
QUERY = ("SELECT m.name, i.v, sum(o.amount) FROM \"mytable:2020-12-09\" m JOIN items i ON i.id = m.id "
         "JOIN \"Sales\".\"Big Orders\" o ON o.item_id = i.id WHERE i.kind < 50 GROUP BY m.name, i.v")
STYLES = {
    "border0": ["border=0"],
    "border1": ["border=1"],
    "border2": ["border=2"],
    "oldascii_border1": ["linestyle=old-ascii", "border=1"],
    "oldascii_border2": ["linestyle=old-ascii", "border=2"],
    "unicode_border1": ["linestyle=unicode", "border=1"],
    "unicode_border2": ["linestyle=unicode", "border=2"],
    "unicode_double_border": ["linestyle=unicode", "border=2", "unicode_border_linestyle=double"],
    "unicode_double_header": ["linestyle=unicode", "border=2", "unicode_header_linestyle=double"],
    "unicode_double_both": ["linestyle=unicode", "border=2", "unicode_border_linestyle=double",
                            "unicode_header_linestyle=double"],
    "wrapped80_border1": ["format=wrapped", "columns=80", "border=1"],
    "wrapped80_border2": ["format=wrapped", "columns=80", "border=2"],
    "wrapped80_unicode2": ["format=wrapped", "columns=80", "linestyle=unicode", "border=2"],
    "wrapped80_oldascii1": ["format=wrapped", "columns=80", "linestyle=old-ascii", "border=1"],
    "wrapped80_border0": ["format=wrapped", "columns=80", "border=0"],
}


def psql(dsn: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([PSQL, dsn, "-X", *args], input=stdin, capture_output=True, text=True, check=True)
    return done.stdout


def terminal_wrap(text: str, width: int) -> str:
    """What a terminal (or an e-mail) of ``width`` columns does to long lines."""
    out = []
    for line in text.split("\n"):
        while len(line) > width:
            out.append(line[:width])
            line = line[width:]
        out.append(line)
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "plans" / "styles"))
    parser.add_argument("--dsn", default=None, help="use this server instead of a new sandbox")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sandbox = None
    dsn = args.dsn
    if dsn is None:
        sandbox = Sandbox(settings={"track_io_timing": "on"}).start()
        dsn = sandbox.dsn
    try:
        psql(dsn, "-q", "-c", 'DROP TABLE IF EXISTS items, "mytable:2020-12-09"; DROP SCHEMA IF EXISTS "Sales" CASCADE')
        psql(dsn, "-q", stdin=SCHEMA)
        setup = "SET max_parallel_workers_per_gather = 0; SET track_io_timing = on;"
        plain = f"EXPLAIN (BUFFERS) {QUERY};"
        analyze = f"EXPLAIN (ANALYZE, BUFFERS) {QUERY};"
        (out / "plain.json").write_text(psql(dsn, "-q", "-A", "-t", "-c", setup, "-c", f"EXPLAIN (BUFFERS, FORMAT JSON) {QUERY}"))
        (out / "analyze.json").write_text(psql(dsn, "-q", "-A", "-t", "-c", setup, "-c", f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {QUERY}"))
        for name, options in STYLES.items():
            flags = [f"-P{o}" for o in options]
            (out / f"plain_{name}.txt").write_text(psql(dsn, "-q", *flags, "-c", setup, "-c", plain))
        (out / "analyze_border1.txt").write_text(psql(dsn, "-q", "-c", setup, "-c", analyze))
        (out / "analyze_unicode_double_both.txt").write_text(
            psql(dsn, "-q", *[f"-P{o}" for o in STYLES["unicode_double_both"]], "-c", setup, "-c", analyze))
        # the prompt and the command above the plan: psql -e echoes it, a prompt as people paste it
        echoed = psql(dsn, "-q", "-e", "-c", setup, "-c", plain)
        (out / "plain_prompt_echo.txt").write_text("perfkit=# " + echoed)
        # a whole session: \timing, SET, a first statement, then the EXPLAIN (psql -a echoes the input)
        session = ("\\timing on\nSET work_mem = '4MB';\nSELECT count(*) FROM items WHERE v LIKE '[a%';\n"
                   f"-- plan copied from https://example.org/ticket/42\n{setup}\n{plain}\n")
        (out / "plain_transcript.txt").write_text(psql(dsn, "-a", stdin=session))
        two = f"{plain}\nEXPLAIN SELECT * FROM items WHERE id = 42;\n"
        (out / "plain_two_plans.txt").write_text(psql(dsn, "-a", "-c", setup, stdin=two) if False else
                                                 psql(dsn, "-a", stdin=setup + "\n" + two))
        # I/O timings: a table larger than a quarter of shared_buffers is read through a ring
        # buffer, so every scan reads it again from the kernel (track_io_timing = on)
        psql(dsn, "-q", "-c", "DROP TABLE IF EXISTS big", "-c",
             "CREATE TABLE big AS SELECT g AS id, g % 1000 AS k, md5(g::text) || md5(g::text) AS pad "
             "FROM generate_series(1, 400000) g")
        io_query = "SELECT count(*) FROM big WHERE k = 7"
        (out / "io_analyze.json").write_text(psql(dsn, "-q", "-A", "-t", "-c", setup, "-c",
                                                  f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {io_query}"))
        (out / "io_analyze.txt").write_text(psql(dsn, "-q", "-c", setup, "-c", f"EXPLAIN (ANALYZE, BUFFERS) {io_query}"))
        psql(dsn, "-q", "-c", "CREATE INDEX big_k_idx ON big (k)")
        if sandbox is not None:  # an empty shared_buffers: every page of big is read again
            sandbox._run([str(sandbox.bindir / "pg_ctl"), "-D", str(sandbox.data_dir), "-l", str(sandbox.server_log),
                          "-m", "fast", "-w", "-t", "60", "restart"], "restarting the server")
        # waiting on reads: an index scan visiting pages no scan has brought into shared_buffers yet
        # (the JSON reads one range of k, the text another: each a first read after the restart)
        forced = setup + " SET enable_bitmapscan = off; SET enable_seqscan = off;"
        bound = "SELECT sum(length(pad)) FROM big WHERE k BETWEEN {} AND {}"
        (out / "io_bound.json").write_text(psql(dsn, "-q", "-A", "-t", "-c", forced, "-c",
                                                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {bound.format(600, 612)}"))
        (out / "io_bound.txt").write_text(psql(dsn, "-q", "-c", forced, "-c",
                                               f"EXPLAIN (ANALYZE, BUFFERS) {bound.format(700, 712)}"))
        psql(dsn, "-q", "-c", "ANALYZE big")
        border1 = (out / "plain_border1.txt").read_text()
        (out / "plain_terminal80.txt").write_text(terminal_wrap(border1, 80))
        (out / "plain_terminal120.txt").write_text(terminal_wrap(border1, 120))
        # pgAdmin copies each line in double quotes; a spreadsheet cell: one pair around all lines
        body = psql(dsn, "-q", "-A", "-t", "-c", setup, "-c", plain).rstrip("\n").split("\n")
        (out / "plain_pgadmin.txt").write_text("\n".join('"' + b.replace('"', '""') + '"' for b in body) + "\n")
        (out / "plain_spreadsheet.txt").write_text('"' + "\n".join(b.replace('"', '""') for b in body) + '"\n')
        (out / "plain_single_quoted.txt").write_text("\n".join("'" + b + "'" for b in body) + "\n")
        # DBeaver's text result view: padded values with a bar after each one
        width = max(len(b) for b in body)
        dbeaver = ["QUERY PLAN".ljust(width) + "|", "-" * width + "+"] + [b.ljust(width) + "|" for b in body]
        (out / "plain_dbeaver.txt").write_text("\n".join(dbeaver) + "\n")
    finally:
        if sandbox is not None:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
