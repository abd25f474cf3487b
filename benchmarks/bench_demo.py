"""Wall time of ``perfkit demo`` per step (default scale and load), and the p95 it measures before and after.

Run: ``.venv/bin/python benchmarks/bench_demo.py [--scale 1.0] [--users 10] [--duration 30]``; prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from perfkit.demo import DemoOptions, run_demo
from perfkit.output import format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfkit-bench-demo-") as out:
        t0 = time.perf_counter()
        result = run_demo(DemoOptions(scale=args.scale, users=args.users, duration_s=args.duration, out=Path(out)))
        wall = time.perf_counter() - t0
    timings = pd.DataFrame({"step": list(result.timings), "seconds": list(result.timings.values())})
    timings.loc[len(timings)] = ["total (steps)", timings["seconds"].sum()]
    timings.loc[len(timings)] = ["total (run_demo wall)", wall]
    size = result.size
    print(f"perfkit demo: scale {args.scale} ({size.orders:,} orders, {size.tenants} tenants), "
          f"Locust {args.users} users x {args.duration} s per load test")
    print(format_table(timings))
    if not result.p95.empty:
        print()
        print(format_table(result.p95, ["endpoint", "p95_before_ms", "p95_after_ms", "p95_change"]))
    if result.skipped:
        print("\nskipped: " + "; ".join(f"{k} ({v})" for k, v in result.skipped.items()))


if __name__ == "__main__":
    main()
