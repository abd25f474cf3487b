"""The demo: a throwaway PostgreSQL, a multi-tenant shop, a workload, and what perfkit sees in it.

``run_demo()`` prints progress on stderr and returns the snapshots, the diff and step timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from perfkit import db, statements, workload
from perfkit.output import progress, say
from perfkit.sandbox import Sandbox


@dataclass
class DemoResult:
    dsn: str
    before: pd.DataFrame
    after: pd.DataFrame
    changes: pd.DataFrame
    requests: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)


def run_demo(*, scale: float = 1.0, requests: int = 400, keep: bool = False, state_path=None) -> DemoResult:
    """Start a sandbox, build the shop, snapshot, run the workload, snapshot again, diff.

    Parameters
    ----------
    scale:
        Multiplies the shop's row counts (1.0: 60,000 orders and invoices).
    requests:
        Web requests the workload runs.
    keep:
        Leave the sandbox running (its state saved for ``perfkit sandbox stop``).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    say("[1/5] starting a throwaway PostgreSQL with pg_stat_statements ...")
    sandbox = Sandbox().start()
    timings["start sandbox"] = time.perf_counter() - t0
    try:
        with sandbox.admin_connect() as conn:
            t = time.perf_counter()
            size = workload.ShopSize.scaled(scale)
            say(f"[2/5] building a multi-tenant shop ({size.tenants} tenants, {size.orders:,} orders and invoices) ...")
            workload.build_shop(conn, size)
            timings["build shop"] = time.perf_counter() - t
            engine = db.connect(sandbox.dsn)
            t = time.perf_counter()
            say("[3/5] snapshot of pg_stat_statements before the workload ...")
            before = statements.snapshot(engine, server="demo")
            timings["snapshot"] = time.perf_counter() - t
            t = time.perf_counter()
            say(f"[4/5] running {requests} web requests (/api/invoices, /api/orders/<id>, /api/dashboard/analytics, /api/products) ...")
            with progress(total=requests, desc="requests", unit="req") as bar:
                result = workload.run_workload(conn, requests=requests, progress=lambda _: bar.update(1))
            timings["workload"] = time.perf_counter() - t
            t = time.perf_counter()
            say("[5/5] snapshot after, and the difference ...")
            after = statements.snapshot(engine, server="demo")
            changes = statements.diff(before, after)
            timings["diff"] = time.perf_counter() - t
            engine.dispose()
        if keep:
            from perfkit.sandbox import DEFAULT_STATE_DIR

            sandbox.state().save(state_path or DEFAULT_STATE_DIR / "state.json")
        return DemoResult(sandbox.dsn, before, after, changes, result.requests, timings)
    finally:
        if not keep:
            sandbox.stop()
