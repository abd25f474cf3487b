"""Benchmark perfkit's k6 NDJSON and JMeter JTL readers against plain pandas and columnar readers.

Generates the files in a temporary directory, runs every reader in its own subprocess (time and
peak RSS from getrusage(RUSAGE_CHILDREN)) and prints the ratios. Usage:
    python benchmarks/bench_loadtests.py [--points 500000] [--requests 200000] [--jtl-rows 1000000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

TAGS = ('"expected_response":"{e}","group":"","method":"GET","name":"http://127.0.0.1/api/{n}",'
        '"proto":"HTTP/1.1","scenario":"default","status":"{s}","url":"http://127.0.0.1/api/{n}"')
REALISTIC = ["http_reqs", "http_req_duration", "http_req_blocked", "http_req_connecting",
             "http_req_tls_handshaking", "http_req_sending", "http_req_waiting", "http_req_receiving",
             "http_req_failed"]


def write_k6(path: Path, requests: int, metrics: list[str]) -> None:
    rng = random.Random(1)
    names = ["users", "orders", "reports", "search", "login"]
    with open(path, "w") as out:
        for metric in metrics:
            out.write(json.dumps({"type": "Metric", "data": {"type": "trend", "contains": "time",
                                                             "thresholds": [], "submetrics": None},
                                  "metric": metric}, separators=(",", ":")) + "\n")
        for i in range(requests):
            second, micros = divmod(i * 137, 1_000_000)
            stamp = f"2024-05-01T10:{(second // 60) % 60:02d}:{second % 60:02d}.{micros:06d}123+02:00"
            status = 500 if rng.random() < 0.01 else 200
            tags = "{" + TAGS.replace("{n}", names[i % 5]).replace("{s}", str(status)).replace(
                "{e}", "false" if status == 500 else "true") + "}"
            value = rng.lognormvariate(3, 0.5)
            for metric in metrics:
                v = value if metric == "http_req_duration" else 1 if metric == "http_reqs" else value / 7
                out.write(f'{{"metric":"{metric}","type":"Point","data":{{"time":"{stamp}",'
                          f'"value":{v:.6f},"tags":{tags}}}}}\n')


def write_jtl(path: Path, rows: int) -> None:
    rng = random.Random(2)
    header = ("timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,"
              "failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect\n")
    with open(path, "w") as out:
        out.write(header)
        for i in range(rows):
            fail = rng.random() < 0.01
            message = '"assertion failed:\nexpected 200\nbut got 500"' if fail else ""
            out.write(f"{1714550400000 + i * 3},{rng.randint(2, 400)},label {i % 7},"
                      f"{500 if fail else 200},{'Server Error' if fail else 'OK'},Thread Group 1-{i % 50},"
                      f"text,{'false' if fail else 'true'},{message},1234,321,50,50,"
                      f"http://127.0.0.1/api/{i % 7},{rng.randint(1, 300)},0,{rng.randint(0, 3)}\n")


# Each reader runs in a fresh interpreter: ``python -c CODE path``; it prints the row count.
READERS = {
    "perfkit": "from perfkit.loadtests import read; import sys; print(len(read(sys.argv[1]).samples))",
    "pandas": ("import pandas as pd, sys; d = pd.read_json(sys.argv[1], lines=True); "
               "d = d[(d['type'] == 'Point') & (d['metric'] == 'http_req_duration')]; "
               "f = pd.json_normalize(d['data'].tolist()); print(len(f))"),
    "pyarrow": ("import pyarrow.json as j, pyarrow.compute as c, sys; t = j.read_json(sys.argv[1]); "
                "t = t.filter(c.and_(c.equal(t['type'], 'Point'), c.equal(t['metric'], 'http_req_duration'))); "
                "print(t.num_rows)"),
    "duckdb": ("import duckdb, sys; print(duckdb.execute(\"select count(*) from read_json_auto('\" + sys.argv[1] + "
               "\"', format='newline_delimited') where type='Point' and metric='http_req_duration'\").fetchone()[0])"),
    "polars": ("import polars as pl, sys; d = pl.read_ndjson(sys.argv[1], infer_schema_length=None); "
               "print(d.filter((pl.col('type') == 'Point') & (pl.col('metric') == 'http_req_duration')).height)"),
}
JTL_READERS = {
    "perfkit": "from perfkit.loadtests import read; import sys; print(len(read(sys.argv[1]).samples))",
    "pandas-c": "import pandas as pd, sys; print(len(pd.read_csv(sys.argv[1])))",
    "pandas-pyarrow": "import pandas as pd, sys; print(len(pd.read_csv(sys.argv[1], engine='pyarrow')))",
    "polars": "import polars as pl, sys; print(pl.read_csv(sys.argv[1], infer_schema_length=10000).height)",
}
NEEDS = {"duckdb": "duckdb", "polars": "polars", "pyarrow": "pyarrow"}


def measure_isolated(code: str, path: Path) -> tuple[float, float, str]:
    """Run ``measure`` in a fresh child so RUSAGE_CHILDREN holds that reader alone."""
    runner = (
        "import resource, subprocess, sys, time; start = time.perf_counter(); "
        "p = subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], capture_output=True, text=True); "
        "s = time.perf_counter() - start; r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; "
        "out = p.stdout.strip() if p.returncode == 0 else 'FAILED: ' + (p.stderr.strip().splitlines() or ['?'])[-1][:100]; "
        "print(s); print(r); print(out)"
    )
    proc = subprocess.run([sys.executable, "-c", runner, code, str(path)], capture_output=True, text=True)
    seconds, rss, output = proc.stdout.splitlines()[:3]
    return float(seconds), float(rss), output


def run_suite(title: str, path: Path, readers: dict, reference: str) -> None:
    size_mb = path.stat().st_size / 1e6
    print(f"\n{title}: {path.name}, {size_mb:,.0f} MB")
    results = {}
    for name, code in readers.items():
        module = NEEDS.get(name.split("-")[0])
        if module and importlib.util.find_spec(module) is None:
            print(f"  {name:15s} not installed: skipped")
            continue
        seconds, rss, output = measure_isolated(code, path)
        results[name] = (seconds, rss, output)
        print(f"  {name:15s} {seconds:7.2f} s  peak RSS {rss:7,.0f} MB ({rss / size_mb:4.2f}x file)  rows {output}",
              flush=True)
    if reference in results:
        base = results[reference][0]
        for name, (seconds, _, output) in results.items():
            if name != reference and not output.startswith("FAILED"):
                print(f"  ratio {name} / {reference}: {seconds / base:5.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500_000, help="duration-only k6 points")
    parser.add_argument("--requests", type=int, default=200_000, help="requests in the realistic k6 file")
    parser.add_argument("--jtl-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-pandas-json", action="store_true", help="skip the slow pandas k6 baseline")
    args = parser.parse_args()
    found = [name for name, module in NEEDS.items() if importlib.util.find_spec(module)]
    print(f"baselines found: pandas, {', '.join(found) or 'none of duckdb/polars/pyarrow'}; "
          f"{os.cpu_count()} CPU(s), python {sys.version.split()[0]}")
    readers = dict(READERS)
    if args.skip_pandas_json:
        readers.pop("pandas")
    with tempfile.TemporaryDirectory(prefix="perfkit-bench-") as name:
        tmp = Path(name)
        plain = tmp / "k6_duration_only.json"
        write_k6(plain, args.points, ["http_req_duration"])
        run_suite(f"k6 NDJSON, {args.points:,} http_req_duration points", plain, readers, "perfkit")
        plain.unlink()
        realistic = tmp / "k6_realistic.json"
        write_k6(realistic, args.requests, REALISTIC)
        run_suite(f"k6 NDJSON, {args.requests:,} requests x {len(REALISTIC)} metrics", realistic,
                  readers, "perfkit")
        realistic.unlink()
        jtl = tmp / "results.jtl"
        write_jtl(jtl, args.jtl_rows)
        run_suite(f"JMeter JTL, {args.jtl_rows:,} rows (1 % multi-line failure messages)", jtl,
                  JTL_READERS, "perfkit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
