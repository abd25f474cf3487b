#!/usr/bin/env python3
"""Benchmark: perfkit.logs.read on a large generated csvlog vs pandas.read_csv on the same file.

Prints read time, the ratio to the baseline and peak memory (each read in its own process).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROUTES = ["/api/invoices", "/api/customers", "/api/orders", "/api/reports/monthly"]
PLAN = (
    "Query Text: SELECT id, customer_id FROM invoices WHERE tenant_id = {t} ORDER BY id LIMIT 20\n"
    "Limit  (cost=0.28..8.61 rows=20 width=8) (actual time=0.010..0.020 rows=20 loops=1)\n"
    "  ->  Index Scan using invoices_pkey on invoices  (cost=0.28..41.93 rows=100 width=8) "
    "(actual time=0.009..0.017 rows=20 loops=1)\n"
    "        Filter: (tenant_id = {t})\n"
    "        Rows Removed by Filter: 40"
)


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """A csvlog in PostgreSQL 15's 26 columns: tagged requests with N+1 lookups, plans, errors."""
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    written = 0
    entry = 0
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        while written < lines:
            entry += 1
            pid = 1000 + entry % 40
            ts = start + timedelta(milliseconds=entry * 3)
            tenant = rng.randrange(1, 500)
            route = ROUTES[entry % len(ROUTES)]
            comment = f"/*request_id='r{entry // 12}',route='{route.replace('/', '%2F')}'*/"
            kind = entry % 20
            detail = ""
            if kind == 0:
                message = f"duration: {rng.uniform(0.5, 900):.3f} ms  plan:\n" + PLAN.format(t=tenant)
            elif kind < 14:
                message = (f"duration: {rng.uniform(0.01, 2):.3f} ms  execute <unnamed>: "
                           f"SELECT id, name FROM customers WHERE id = $1 {comment}")
                detail = f"parameters: $1 = '{rng.randrange(1, 100000)}'"
            elif kind < 19:
                message = (f"duration: {rng.uniform(0.1, 50):.3f} ms  statement: SELECT i.id, c.name FROM invoices i "
                           f"JOIN customers c ON c.id = i.customer_id WHERE i.tenant_id = {tenant} "
                           f"AND i.total > {rng.randrange(1000)} ORDER BY i.id LIMIT 20 {comment}")
            else:
                message = f"duration: {rng.uniform(0.1, 5):.3f} ms  statement: UPDATE invoices SET total = {rng.randrange(10**6)} WHERE id = {entry}"
            stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d} UTC"
            writer.writerow([
                stamp, "app", "shop", pid, f"10.0.0.{pid % 250}:5{pid}", f"6630a1b2.{pid:x}", entry, "SELECT",
                "2024-05-01 00:00:00 UTC", f"3/{entry}", 0, "LOG", "00000", message, detail, "", "", "", "", "",
                "", "", "shop-web", "client backend", "", rng.randrange(-2**62, 2**62),
            ])
            written += message.count("\n") + 1
    return written


def measure(task: str, path: str) -> None:
    """Run one read in this process; print seconds, peak RSS (MiB) and rows as JSON."""
    import pandas as pd

    started = time.perf_counter()
    if task == "pandas.read_csv":
        from perfkit.logs.formats import CSV_COLUMNS

        rows = len(pd.read_csv(path, header=None, names=CSV_COLUMNS, dtype=str, keep_default_na=False))
    elif task == "pandas.read_json":
        rows = len(pd.read_json(path, lines=True, dtype=False))
    else:
        import perfkit.logs

        if task == "most_frequent(read_chunks())":
            rows = int(perfkit.logs.most_frequent(perfkit.logs.read_chunks(path), n=10**9)["calls"].sum())
        else:
            rows = len(perfkit.logs.read(path))
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps([seconds, peak_mib, rows]))


def run(task: str, path: Path) -> tuple[float, float, int]:
    """One read in a fresh Python process, so peak memory is that read's alone."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", task, str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{task} on {path} failed:\n{done.stderr}")
    seconds, peak, rows = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, peak, rows


def to_jsonlog(source: Path, target: Path) -> None:
    from perfkit.logs.formats import CSV_COLUMNS

    keys = {"ts": "timestamp", "user": "user", "database": "dbname", "pid": "pid", "session_id": "session_id",
            "session_line": "line_num", "vxid": "vxid", "level": "error_severity", "message": "message",
            "detail": "detail", "application": "application_name", "query_id": "query_id"}
    with open(source, newline="") as handle, open(target, "w") as out:
        for record in csv.reader(handle):
            row = dict(zip(CSV_COLUMNS, record, strict=True))
            out.write(json.dumps({keys[k]: v for k, v in row.items() if k in keys and v != ""}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_500_000, help="lines of csvlog to generate (default: 1.5 million)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/perfkit-bench-logs"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--measure", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    csv_path = args.dir / "postgresql.csv"
    lines = generate(csv_path, args.lines)
    json_path = args.dir / "postgresql.json"
    to_jsonlog(csv_path, json_path)
    gz_path = args.dir / "postgresql.csv.gz"
    with open(csv_path, "rb") as source, gzip.open(gz_path, "wb", compresslevel=1) as target:
        shutil.copyfileobj(source, target)
    print(f"generated {lines:,} lines of csvlog ({csv_path.stat().st_size / 2**20:,.0f} MiB) in {args.dir}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    rows = [
        ("csvlog", "pandas.read_csv", csv_path, None),
        ("csvlog", "perfkit.logs.read", csv_path, "pandas.read_csv"),
        ("csvlog.gz", "perfkit.logs.read", gz_path, "pandas.read_csv"),
        ("csvlog", "most_frequent(read_chunks())", csv_path, "pandas.read_csv"),
        ("jsonlog", "pandas.read_json", json_path, None),
        ("jsonlog", "perfkit.logs.read", json_path, "pandas.read_json"),
    ]
    baseline = {}
    print("rows: entries read (for most_frequent over chunks: the executions it counted)")
    print(f"{'file':<10} {'reader':<36} {'rows':>10} {'seconds':>8} {'ratio':>7} {'peak MiB':>9}")
    for label, task, path, base in rows:
        seconds, peak, count = run(task, path)
        if base is None:
            baseline[task] = seconds
        ratio = seconds / baseline[base] if base else 1.0
        print(f"{label:<10} {task:<36} {count:>10,} {seconds:>8.2f} {ratio:>6.1f}x {peak:>9,.0f}", flush=True)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
