#!/usr/bin/env python3
"""Fleet benchmarks (prints ratios; never asserted).

1. Collection: 20 servers (databases on two sandbox clusters) snapshotted by
   ``perfkit.fleet.collect`` with 8 jobs, against the sum of their one-by-one snapshot times.
   Goal >= 5x.
2. The fleet page's queries (``perfkit.fleetreport.fleet_frames``: DuckDB over the store's files)
   on a synthetic store of 200 servers x 52 weekly snapshots x 2,000 statements (20.8 M rows,
   generated into a temporary folder, never committed), against ``pandas.read_parquet`` of the
   same files and the same results computed in pandas: time and peak memory (each side in a
   fresh process). Goal >= 10x faster and <= 1 GB.

    .venv/bin/python benchmarks/bench_fleet.py [--skip-collection] [--skip-store] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVERS, WEEKS, STATEMENTS = 200, 52, 2000


# -- 1. collection ------------------------------------------------------------------------------
# A TCP proxy that delays every chunk by DELAY seconds each way: servers "20 ms away" (run in its own
# process, so it takes nothing from the collector's interpreter).
PROXY = r"""
import asyncio, sys
listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def pump(reader, writer):
    try:
        while data := await reader.read(65536):
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
async def handle(client_r, client_w):
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def _proxy(upstream: int, delay: float):
    from perfkit.sandbox import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", PROXY, str(port), str(upstream), str(delay)],
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    return port, proc


def bench_collection(count: int = 20, jobs: int = 8, delay: float = 0.010) -> None:
    from perfkit.fleet import Fleet, Server, collect
    from perfkit.sandbox import Sandbox
    from perfkit.store import SnapshotStore

    clusters = [Sandbox(settings={"shared_buffers": "32MB"}).start() for _ in range(2)]
    try:
        servers = []
        for i in range(count):
            cluster = clusters[i % 2]
            name = f"app{i:02d}"
            with cluster.admin_connect() as conn:
                conn.execute(f"CREATE DATABASE {name}")
            with cluster.admin_connect(name) as conn:
                conn.execute("CREATE EXTENSION pg_stat_statements")
                conn.execute(f"CREATE TABLE t{i} AS SELECT g AS id FROM generate_series(1, 1000) g")
                for k in range(50):
                    conn.execute(f"SELECT count(*) FROM t{i} WHERE id > %s", (k,))
            servers.append(Server(name=name, dsn=cluster.dsn_for(name), tags={"env": "bench"}))
        proxies = [_proxy(cluster.port, delay) for cluster in clusters]
        far = [Server(name=s.name, dsn=s.dsn.replace(f":{clusters[i % 2].port}/", f":{proxies[i % 2][0]}/"),
                      tags=s.tags) for i, s in enumerate(servers)]
        for label, members in (("on this machine", servers), (f"{delay * 2000:.0f} ms round trip away (a delaying proxy)", far)):
            fleet = Fleet(path=Path("bench.toml"), servers=members)
            with tempfile.TemporaryDirectory() as folder:
                store = SnapshotStore(folder)
                collect(fleet, store, jobs=jobs)  # warm up (imports, first connections)
                one_by_one = collect(fleet, store, jobs=1)
                serial = sum(o.seconds for o in one_by_one)
                started = time.perf_counter()
                parallel = collect(fleet, store, jobs=jobs)
                wall = time.perf_counter() - started
            assert all(o.ok for o in one_by_one + parallel), [o.error for o in one_by_one + parallel if not o.ok]
            statements = sum(o.statements for o in parallel)
            print(f"collection, {count} servers {label} ({statements:,} statements): one by one {serial:.2f} s in all, "
                  f"--jobs {jobs} {wall:.2f} s wall: {serial / wall:.1f}x (goal >= 5x)")
    finally:
        for _, proc in locals().get("proxies", []):
            proc.terminate()
            proc.wait(10)
        for cluster in clusters:
            cluster.stop()


# -- 2. the synthetic store --------------------------------------------------------------------------
def generate_store(root: Path) -> float:
    """200 servers x 52 weekly snapshots x 2,000 statements in the store's layout; seconds taken."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfkit.store import MANIFEST_KEY, SCHEMA_KEY, SCHEMA_VERSION, SNAPSHOT_SCHEMA

    started = time.perf_counter()
    rng = np.random.default_rng(20)
    start = pd.Timestamp("2025-12-01 06:00", tz="UTC")
    texts = [f"SELECT c{j % 40}, count(*) FROM items_{j % 300} WHERE tenant_id = $1 AND k{j} > $2 GROUP BY 1"
             for j in range(STATEMENTS)]
    base_mean = rng.lognormal(0, 1.2, STATEMENTS)
    base_calls = rng.integers(10, 5000, STATEMENTS)
    reset = pa.array([start.value // 1000] * STATEMENTS, pa.timestamp("us", tz="UTC"))
    for s in range(SERVERS):
        server = f"srv{s:03d}"
        done = root / f"server={server}" / "_done"
        if done.exists():  # resumable: a server's 52 files are written once
            continue
        rng = np.random.default_rng(1000 + s)
        # the same statements, differently spelled on some servers (case, spaces): other queryids
        shown = [t.lower() if s % 3 == 1 else (t.replace(" ", "  ") if s % 3 == 2 else t) for t in texts]
        query = pa.array(shown, pa.string())
        queryid = pa.array(rng.integers(-2**62, 2**62, STATEMENTS), pa.int64())
        slow = rng.random(STATEMENTS) < (0.05 if s % 10 == 0 else 0.0)
        total_calls = np.zeros(STATEMENTS, dtype=np.int64)
        total_ms = np.zeros(STATEMENTS)
        for w in range(WEEKS):
            calls = (base_calls * rng.uniform(0.8, 1.2, STATEMENTS)).astype(np.int64)
            mean = base_mean * np.where(slow & (w == WEEKS - 1), 3.0, 1.0) * rng.uniform(0.95, 1.05, STATEMENTS)
            total_calls += calls
            total_ms += calls * mean
            when = start + pd.Timedelta(weeks=w)
            stem = f"{when:%Y%m%dT%H%M%S.%fZ}-{s:04x}{w:04x}"
            columns = {
                "queryid": queryid, "datname": pa.array(["app"] * STATEMENTS), "rolname": pa.array(["app"] * STATEMENTS),
                "toplevel": pa.array([True] * STATEMENTS), "query": query, "calls": pa.array(total_calls),
                "total_exec_ms": pa.array(total_ms), "mean_exec_ms": pa.array(total_ms / total_calls),
                "rows": pa.array(total_calls * 3), "shared_blks_hit": pa.array(total_calls * 40),
                "shared_blks_read": pa.array(total_calls // 7),
                "captured_at": pa.array([when.value // 1000] * STATEMENTS, pa.timestamp("us", tz="UTC")),
                "stats_reset": reset, "dealloc": pa.array([0] * STATEMENTS, pa.int64()),
                "snapshot_id": pa.array([stem] * STATEMENTS),
            }
            arrays = [columns[f.name] if f.name in columns else pa.nulls(STATEMENTS, f.type) for f in SNAPSHOT_SCHEMA]
            table = pa.Table.from_arrays(arrays, schema=SNAPSHOT_SCHEMA).replace_schema_metadata({
                SCHEMA_KEY: SCHEMA_VERSION.encode(),
                MANIFEST_KEY: json.dumps([{"id": stem, "captured_at": when.isoformat()}]).encode()})
            folder = root / f"server={server}" / f"date={when:%Y-%m-%d}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / f"{stem}.parquet", compression="zstd")
        done.write_text("ok")
    (root / "_complete").write_text("ok")
    return time.perf_counter() - started


def _run_duckdb(root: str) -> dict:
    from perfkit.fleetreport import fleet_frames
    from perfkit.store import SnapshotStore

    store = SnapshotStore(root)
    started = time.perf_counter()
    frames = fleet_frames(store, [f"srv{s:03d}" for s in range(SERVERS)], since="7d")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "servers": len(frames["servers"]), "worst": frames["servers"].sort_values(
        "worse_s").iloc[-1]["server"], "statements": len(frames["statements"]),
        "files": int(len(set(frames["picked"]["file"]))), "trend": len(frames["trend"])}


def _run_pandas(root: str) -> dict:
    """The same tables from pandas.read_parquet of the same files (all their columns, as read_parquet does)."""
    import pandas as pd

    from perfkit.fleetreport import picked_snapshots
    from perfkit.store import SnapshotStore

    store = SnapshotStore(root)
    started = time.perf_counter()
    picked, listing = picked_snapshots(store, [f"srv{s:03d}" for s in range(SERVERS)], "7d")
    recent = listing[listing["captured_at"] >= listing["captured_at"].max() - pd.Timedelta(weeks=12)]
    files = sorted(set(picked["file"]) | set(recent["file"]))
    frames = [pd.read_parquet(f).assign(server=Path(f).parent.parent.name[7:]) for f in files]
    snaps = pd.concat(frames, ignore_index=True)
    per = snaps.groupby(["server", "snapshot_id"]).agg(captured_at=("captured_at", "first"),
                                                      total_ms=("total_exec_ms", "sum")).reset_index()
    per = per.sort_values(["server", "captured_at"])
    per["exec_ms"] = per.groupby("server")["total_ms"].diff()
    trend = per.dropna().groupby("server")["exec_ms"].agg(["count", "median", "last"])
    keys = ["server", "queryid", "datname", "rolname"]
    a = snaps.merge(picked[picked["role"] == "latest"][["server", "snapshot_id"]])
    b = snaps.merge(picked[picked["role"] == "base"][["server", "snapshot_id"]])
    changes = a.merge(b[keys + ["calls", "total_exec_ms", "mean_exec_ms"]], on=keys, suffixes=("", "_b"))
    changes["d_calls"] = changes["calls"] - changes["calls_b"]
    changes["d_ms"] = changes["total_exec_ms"] - changes["total_exec_ms_b"]
    changes["worse"] = (changes["d_ms"] - changes["mean_exec_ms_b"] * changes["d_calls"]).clip(lower=0)
    servers = changes.groupby("server").agg(worse_s=("worse", "sum"), exec_s=("d_ms", "sum")) / 1000
    changes["normalized"] = changes["query"].str.replace(r"\s+", " ", regex=True).str.lower()
    statements = changes.groupby("normalized")["d_ms"].sum().nlargest(60)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "servers": len(servers), "worst": servers["worse_s"].idxmax(),
            "statements": len(statements), "files": len(files), "trend": len(trend)}


def _child(kind: str, root: str) -> None:
    import resource

    result = (_run_duckdb if kind == "duckdb" else _run_pandas)(root)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, default=str))


def _measure(kind: str, root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(root)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_store(keep: str | None) -> None:
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="perfkit-bench-fleet-"))
    try:
        if not (root / "_complete").exists():
            took = generate_store(root)
            print(f"synthetic store: {SERVERS} servers x {WEEKS} weeks x {STATEMENTS:,} statements "
                  f"= {SERVERS * WEEKS * STATEMENTS:,} rows in {took:.0f} s")
        size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        print(f"synthetic store: {size / 2**20:,.0f} MiB in {SERVERS * WEEKS:,} files at {root}")
        duck = _measure("duckdb", root)
        pand = _measure("pandas", root)
        print(f"fleet page queries, DuckDB: {duck['seconds']:.2f} s, peak {duck['peak_mb']:,.0f} MB "
              f"({duck['files']} files of latest/baseline; trend over {duck['trend']} servers); worst server {duck['worst']}")
        print(f"the same with pandas.read_parquet: {pand['seconds']:.2f} s, peak {pand['peak_mb']:,.0f} MB "
              f"({pand['files']} files); worst server {pand['worst']}")
        print(f"ratio: {pand['seconds'] / duck['seconds']:.1f}x faster, {pand['peak_mb'] / duck['peak_mb']:.1f}x "
              f"less memory (goal >= 10x and <= 1 GB)")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-collection", action="store_true")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--keep", default=None, metavar="DIR", help="generate the synthetic store here and keep it")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    if not args.skip_collection:
        bench_collection()
    if not args.skip_store:
        bench_store(args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
