#!/usr/bin/env python3
"""Regenerate data/sample/fleet/: a small fleet store from real throwaway clusters (perfkit.sandbox).

Three clusters ("orders", "billing", "search"), each with its own small workload: 20 calls of a
shared statement (``SELECT work($1)``, whose time per call is the value in table ``pace``) and a
few of its own. Three snapshots each, taken with ``perfkit.statements.snapshot`` and saved with
``perfkit.store.SnapshotStore`` (the real capture times: seconds apart, not weeks); before the
third, "billing" is made slower (``pace`` 1 ms -> 15 ms per call), a real regression. About 20 s.

    .venv/bin/python scripts/make_sample_fleet.py
"""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit import db, statements  # noqa: E402
from perfkit.sandbox import Sandbox  # noqa: E402
from perfkit.store import SnapshotStore  # noqa: E402

OUT = ROOT / "data" / "sample" / "fleet"
SERVERS = {"orders": ("prod", "shop", "8MB"), "billing": ("prod", "payments", "16MB"), "search": ("staging", "shop", "8MB")}
FLEET_TOML = """# The sample fleet: three servers named by libpq services (pg_service.conf), as a real fleet
# file would name them. The notebook 05-fleet reads the snapshots in store/ and does not connect.

store = "store"  # relative to this file

[[server]]
name = "orders"
service = "orders-prod"
env = "prod"
team = "shop"
region = "eu-west-1"

[[server]]
name = "billing"
service = "billing-prod"
env = "prod"
team = "payments"
region = "eu-west-1"

[[server]]
name = "search"
service = "search-staging"
env = "staging"
team = "shop"
region = "us-east-1"
"""


def workload(sandbox: Sandbox, name: str, delay: float) -> None:
    with sandbox.admin_connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pace (d float8)")
        conn.execute("CREATE OR REPLACE FUNCTION work(int) RETURNS int LANGUAGE sql AS "
                     "'SELECT $1 FROM (SELECT pg_sleep((SELECT d FROM pace LIMIT 1))) s'")
        conn.execute("DELETE FROM pace")
        conn.execute("INSERT INTO pace VALUES (%s)", (delay,))
        conn.execute(f"CREATE TABLE IF NOT EXISTS {name}_items AS SELECT g AS id, g % 97 AS k FROM generate_series(1, 5000) g")
        for i in range(20):
            conn.execute("SELECT work(%s)", (i,))
            conn.execute(f"SELECT count(*) FROM {name}_items WHERE k = %s", (i,))


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "store").mkdir(parents=True)
    (OUT / "perfkit.toml").write_text(FLEET_TOML)
    store = SnapshotStore(OUT / "store")

    def start(item):
        name, (_, _, work_mem) = item
        return name, Sandbox(settings={"shared_buffers": "16MB", "max_connections": "20", "work_mem": work_mem}).start()

    with ThreadPoolExecutor(3) as pool:
        clusters = dict(pool.map(start, SERVERS.items()))
    try:
        for week in range(3):
            for name, cluster in clusters.items():
                workload(cluster, name, 0.015 if (name == "billing" and week == 2) else 0.001)
                engine = db.connect(cluster.dsn)
                snap = statements.snapshot(engine, server=name)
                engine.dispose()
                print(store.save(snap, server=name))
    finally:
        for cluster in clusters.values():
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
