"""Benchmark perfkit's k6 NDJSON and JMeter JTL readers against plain pandas and columnar readers.

Generates the files in a temporary directory, runs every reader in its own subprocess (wall
time, CPU time and peak RSS from getrusage(RUSAGE_CHILDREN); the best of --repeat runs, since
the machine may be shared), prints the ratios and the issue's goals, met or not, then
summarizes a file larger than the memory it is allowed (out of core). Usage:
    python benchmarks/bench_loadtests.py [--points 2000000] [--requests 200000] [--jtl-rows 5000000]

Every columnar baseline builds the matching rows' columns in its own format (a pyarrow Table,
a polars DataFrame, DuckDB's Arrow result); ``duckdb-count`` only counts them (shown, not a
goal reference). perfkit builds the samples DataFrame *and* the summary.
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


def write_k6(path: Path, requests: int, metrics: list[str]) -> int:
    """Write the file; return how many requests failed (status 500)."""
    rng = random.Random(1)
    failures = 0
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
            failures += status == 500
            tags = "{" + TAGS.replace("{n}", names[i % 5]).replace("{s}", str(status)).replace(
                "{e}", "false" if status == 500 else "true") + "}"
            value = rng.lognormvariate(3, 0.5)
            for metric in metrics:
                v = value if metric == "http_req_duration" else 1 if metric == "http_reqs" else value / 7
                out.write(f'{{"metric":"{metric}","type":"Point","data":{{"time":"{stamp}",'
                          f'"value":{v:.6f},"tags":{tags}}}}}\n')
    return failures


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
    "duckdb": ("import duckdb, sys; c = duckdb.connect(); c.execute('SET enable_progress_bar = false'); "
               "t = c.sql(\"select data.time, data.value, data.tags from read_json_auto('\" + sys.argv[1] + "
               "\"', format='newline_delimited') where type='Point' and metric='http_req_duration'\"); "
               "t = t.to_arrow_table() if hasattr(t, 'to_arrow_table') else t.fetch_arrow_table(); print(t.num_rows)"),
    "duckdb-count": ("import duckdb, sys; print(duckdb.execute(\"select count(*) from read_json_auto('\" + sys.argv[1] + "
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


def measure_isolated(code: str, path: Path, env: dict | None = None) -> tuple[float, float, float, str]:
    """Run ``code`` in a fresh child so RUSAGE_CHILDREN holds that reader alone.

    Returns (wall seconds, CPU seconds, peak RSS MB, the child's output or FAILED: reason).
    """
    runner = (
        "import resource, subprocess, sys, time; start = time.perf_counter(); "
        "p = subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], capture_output=True, text=True); "
        "s = time.perf_counter() - start; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "out = p.stdout.strip() if p.returncode == 0 else 'FAILED: ' + (p.stderr.strip().splitlines() or ['?'])[-1][:160]; "
        "print(s); print(u.ru_utime + u.ru_stime); print(u.ru_maxrss / 1024); print(out)"
    )
    proc = subprocess.run([sys.executable, "-c", runner, code, str(path)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    seconds, cpu, rss, output = (proc.stdout.splitlines() + ["", "", "", ""])[:4]
    return float(seconds), float(cpu), float(rss), output.replace("\\n", " ")


def run_suite(title: str, path: Path, readers: dict, repeat: int, once: tuple = ("pandas",)) -> dict:
    """Run each reader (best of ``repeat`` wall times; the slow pandas JSON baseline once)."""
    size_mb = path.stat().st_size / 1e6
    print(f"\n{title}: {path.name}, {size_mb:,.0f} MB (best of {repeat} runs; pandas once)")
    results = {}
    for name, code in readers.items():
        module = NEEDS.get(name.split("-")[0])
        if module and importlib.util.find_spec(module) is None:
            print(f"  {name:15s} not installed: skipped")
            continue
        runs = [measure_isolated(code, path) for _ in range(1 if name in once else repeat)]
        seconds, cpu, rss, output = min(runs)
        results[name] = (seconds, cpu, max(r[2] for r in runs), output)
        print(f"  {name:15s} {seconds:7.2f} s  cpu {cpu:6.2f} s  peak RSS {results[name][2]:7,.0f} MB "
              f"({results[name][2] / size_mb:4.2f}x file)  rows {output}", flush=True)
    return {"size_mb": size_mb, **{k: v for k, v in results.items() if not v[3].startswith("FAILED")}}


def _goal(text: str, met: bool | None) -> None:
    print(f"  GOAL {text}: {'met' if met else 'n/a' if met is None else 'NOT met'}")


def k6_goals(results: dict, realistic: bool) -> None:
    """The issue's k6 goals, from one suite's results."""
    if "perfkit" not in results:
        print("  perfkit failed: no goals")
        return
    seconds, _, rss, _ = results["perfkit"]
    if "pandas" in results:
        _goal(f"at least 10x faster than pandas ({results['pandas'][0] / seconds:.1f}x)",
              results["pandas"][0] / seconds >= 10)
    columnar = {k: v for k, v in results.items() if k in ("pyarrow", "duckdb", "polars")}
    if columnar:
        fastest = min(columnar, key=lambda k: columnar[k][0])
        ratio = seconds / columnar[fastest][0]
        _goal(f"within 1.5x of the fastest columnar reader ({fastest}): perfkit / {fastest} = {ratio:.2f}x",
              ratio <= 1.5)
        if realistic:
            _goal(f"realistic file: faster than every columnar reader (perfkit / {fastest} = {ratio:.2f}x)",
                  ratio < 1.0)
    _goal(f"peak memory at most 2x the file ({rss:,.0f} MB = {rss / results['size_mb']:.2f}x)",
          rss <= 2 * results["size_mb"])
    if "duckdb-count" in results:
        print(f"  (duckdb counting the matching rows only, no columns: {results['duckdb-count'][0]:.2f} s)")


def jtl_goals(results: dict) -> None:
    if "perfkit" not in results:
        print("  perfkit failed: no goals")
        return
    seconds = results["perfkit"][0]
    if "pandas-c" in results:
        ratio = seconds / results["pandas-c"][0]
        _goal(f"no slower than pandas' C engine (perfkit / pandas-c = {ratio:.2f}x)", ratio <= 1.0)
    if "polars" in results:
        ratio = seconds / results["polars"][0]
        _goal(f"within 1.25x of polars (perfkit / polars = {ratio:.2f}x)", ratio <= 1.25)


# A child that may map only HEADROOM more bytes than it has at start-up (RLIMIT_AS on top of
# the interpreter, pandas, pyarrow and DuckDB's own mappings), then reads or summarizes.
LIMITED = """
import resource, sys, time
from perfkit import loadtests
from perfkit.loadtests import duck
import numpy as np
with duck.connect() as con:
    con.sql("SELECT 1").fetchall()  # DuckDB's own start-up mappings come before the limit
np.zeros(1)
used = next(int(line.split()[1]) << 10 for line in open("/proc/self/status") if line.startswith("VmSize:"))
limit = used + HEADROOM
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.perf_counter()
run = loadtests.read(sys.argv[1], summary_only=SUMMARY)
total = run.summary.iloc[-1]
print(f"{int(total['requests'])} requests, {int(total['failures'])} failures, p99 {total['p99_ms']:.3f} ms "
      f"in {time.perf_counter() - start:.1f} s")
"""


def out_of_core_demo(source: Path, copies: int, failures: int, points: int, headroom_mb: int) -> None:
    """Summarize a file larger than the memory the child may use; the in-memory read fails there."""
    big = source.with_name("k6_larger_than_memory.json")
    with open(big, "wb") as out:
        for _ in range(copies):
            with open(source, "rb") as part:
                while chunk := part.read(64 << 20):
                    out.write(chunk)
    size_mb = big.stat().st_size / 1e6
    print(f"\nLarger than memory: {big.name}, {size_mb:,.0f} MB ({copies} x the duration-only file, "
          f"{copies * points:,} requests, {copies * failures:,} failed); each child may map "
          f"{headroom_mb} MB beyond its start-up mappings (RLIMIT_AS)")
    # glibc's per-thread arenas and pyarrow's allocator reserve address space they never use:
    # without these, RLIMIT_AS would measure reservations, not memory
    env = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    for label, summary in (("read (samples in memory)", False), ("read(summary_only=True)", True)):
        code = LIMITED.replace("HEADROOM", str(headroom_mb << 20)).replace("SUMMARY", str(summary))
        seconds, _, rss, output = measure_isolated(code, big, env)
        print(f"  {label:26s} {seconds:6.2f} s  peak RSS {rss:6,.0f} MB  {output}")
    print(f"  expected: {copies * points} requests, {copies * failures} failures (counts must match exactly)")
    big.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000, help="duration-only k6 points (the issue's size)")
    parser.add_argument("--requests", type=int, default=200_000, help="requests in the realistic k6 file")
    parser.add_argument("--jtl-rows", type=int, default=5_000_000, help="JTL rows (the issue's size)")
    parser.add_argument("--skip-pandas-json", action="store_true", help="skip the slow pandas k6 baseline")
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader (the best is shown)")
    parser.add_argument("--copies", type=int, default=1, help="duration-only files in the larger-than-memory file")
    parser.add_argument("--headroom-mb", type=int, default=400, help="memory the out-of-core child may use")
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
        failures = write_k6(plain, args.points, ["http_req_duration"])
        results = run_suite(f"k6 NDJSON, {args.points:,} http_req_duration points", plain, readers, args.repeat)
        k6_goals(results, realistic=False)
        out_of_core_demo(plain, args.copies, failures, args.points, args.headroom_mb)
        plain.unlink()
        realistic = tmp / "k6_realistic.json"
        write_k6(realistic, args.requests, REALISTIC)
        results = run_suite(f"k6 NDJSON, {args.requests:,} requests x {len(REALISTIC)} metrics", realistic,
                            readers, args.repeat)
        k6_goals(results, realistic=True)
        realistic.unlink()
        jtl = tmp / "results.jtl"
        write_jtl(jtl, args.jtl_rows)
        results = run_suite(f"JMeter JTL, {args.jtl_rows:,} rows (1 % multi-line failure messages)", jtl,
                            JTL_READERS, args.repeat, once=())
        jtl_goals(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
