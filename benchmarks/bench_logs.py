#!/usr/bin/env python3
"""Benchmark: ``perfkit logs`` beside pgBadger (``pgbadger -j 2``) on the same REAL server logs.

A sandbox cluster runs pgbench (simple and extended protocol) with log_min_duration_statement = 0
and logs to stderr, csvlog and jsonlog at once (the same statements in three formats, ~100 MB of
stderr by default). Each tool reads each file in its own process tree; the time and the peak
resident memory of the whole tree (workers included) are printed with their ratios. Then a 2 GB
stderr log (the real one repeated) is read by perfkit alone, for the memory goal (<= 1 GB). Last,
the executions each tool counted on the same log, side by side.

Each tool runs ``--rounds`` times on each log, the two in turn, perfkit ``--perfkit-runs`` times
after each pgBadger run (this machine's speed drifts from minute to minute: a run of 3 s samples
that drift over 3 s, pgBadger's 30 s average over it, so perfkit is sampled more often); the
medians and the ratio of the medians are printed, with the lowest and highest ratio of a round (a
pgBadger run against the median of the perfkit runs after it): how much the machine drifted.

Goals: perfkit >= 10x faster than ``pgbadger -j 2`` on every format; peak <= 1 GB on 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "%m [%p] user=%u,db=%d,app=%a,client=%h "
SETTINGS = {
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_filename": "'postgresql.log'",
    "log_rotation_size": "0",
    "log_rotation_age": "0",
    "log_line_prefix": f"'{PREFIX}'",
    "log_min_duration_statement": "0",
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_temp_files": "0",
    "log_autovacuum_min_duration": "0",
    "max_wal_size": "64MB",
    "checkpoint_timeout": "30s",
}
FORMATS = {"stderr": ("postgresql.log", "stderr"), "csvlog": ("postgresql.csv", "csv"),
           "jsonlog": ("postgresql.json", "jsonlog")}


def generate(folder: Path, megabytes: int) -> dict[str, Path]:
    """Real logs: pgbench against a sandbox until its stderr log has ``megabytes`` MB."""
    from perfkit.sandbox import Sandbox

    folder.mkdir(parents=True, exist_ok=True)
    with Sandbox(settings=SETTINGS) as sandbox:
        pgbench = str(sandbox.bindir / "pgbench")
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(sandbox.port), "PGUSER": "postgres",
               "PGDATABASE": sandbox.database}
        subprocess.run([pgbench, "-i", "-q", "-s", "5"], env=env, check=True, capture_output=True)
        stderr_log = sandbox.log_dir / FORMATS["stderr"][0]
        modes = ("simple", "extended")
        rounds = 0
        while not stderr_log.exists() or stderr_log.stat().st_size < megabytes * 2**20:
            mode = modes[rounds % 2]
            # -C now and then: connections and sessions in the log too
            extra = ["-C"] if rounds % 5 == 4 else []
            subprocess.run([pgbench, "-n", "-c", "4", "-j", "2", "-T", "5", "-M", mode, *extra], env=env,
                           check=True, capture_output=True)
            rounds += 1
        time.sleep(1.0)
        files = {}
        for kind, (name, _) in FORMATS.items():
            target = folder / name
            shutil.copyfile(sandbox.log_dir / name, target)
            files[kind] = target
    return files


def repeated(source: Path, target: Path, gigabytes: float) -> Path:
    """``source`` written again and again until ``target`` has ``gigabytes`` GB."""
    goal = int(gigabytes * 2**30)
    with open(target, "wb") as out:
        while out.tell() < goal:
            with open(source, "rb") as handle:
                shutil.copyfileobj(handle, out, 16 << 20)
    return target


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, the whole tree) and peak resident MiB of the process
    tree of ``argv`` (sampled every 50 ms). CPU seconds do not grow when other work shares the cores."""
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
    return seconds, cpu, peak / 2**20


def perfkit_argv(path: Path, out: Path | None = None) -> list[str]:
    code = ("import json, sys, perfkit.logs as L; a = L.assess(sys.argv[1]); "
            "open(sys.argv[2], 'w').write(json.dumps(a.facts, default=str)) if sys.argv[2] != '-' else None")
    return [sys.executable, "-c", code, str(path), str(out) if out else "-"]


def pgbadger_argv(path: Path, kind: str, out: Path) -> list[str]:
    argv = ["pgbadger", "-j", "2", "-q", "-f", FORMATS[kind][1], "-o", str(out), str(path)]
    if kind == "stderr":
        argv[1:1] = ["-p", PREFIX]
    return argv


def pgbadger_executions(report: Path) -> int:
    """The executions pgBadger counted (its JSON output's overall query count)."""
    data = json.loads(report.read_text())
    overall = data.get("overall_stat", {})
    return int(overall.get("queries_number", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100, help="size of the real stderr log (default: 100)")
    parser.add_argument("--big-gb", type=float, default=2.0, help="size of the repeated log for the memory goal (0: skip it)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/perfkit-bench-logs"))
    parser.add_argument("--reuse", action="store_true", help="use the logs already in --dir")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--rounds", type=int, default=3, help="runs of pgBadger on each log (default: 3)")
    parser.add_argument("--perfkit-runs", type=int, default=3,
                        help="runs of perfkit after each pgBadger run (default: 3)")
    args = parser.parse_args()
    if shutil.which("pgbadger") is None:
        raise SystemExit("pgbadger is missing: scripts/setup.sh dev,bench installs it (apt-get install pgbadger)")
    if args.reuse and (args.dir / "postgresql.log").exists():
        files = {kind: args.dir / name for kind, (name, _) in FORMATS.items()}
    else:
        files = generate(args.dir, args.megabytes)
    # perfkit's bytecode, as pip install writes it (with PYTHONDONTWRITEBYTECODE set, an edited or
    # fresh checkout would be compiled from source in every run: not what a user's install does)
    import compileall

    compileall.compile_dir(str(ROOT / "perfkit"), quiet=1)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          + subprocess.run(["pgbadger", "--version"], capture_output=True, text=True).stdout.strip())
    print("wall: elapsed seconds; cpu: user + system seconds of the whole process tree (what a quiet machine")
    print(f"would spread over its cores); pgBadger runs {args.rounds} times on each log, perfkit "
          f"{args.perfkit_runs} times after each")
    print("(this machine's speed drifts from minute to minute: a ratio is taken of runs made side by side);")
    print("the medians are printed, and the ratio of the medians with its lowest and highest round")
    print(f"{'log':<8} {'MiB':>5} {'pgbadger wall/cpu':>18} {'perfkit wall/cpu':>17} {'wall':>6} {'(round range)':>14} "
          f"{'cpu':>6} {'pgbadger MiB':>12} {'perfkit MiB':>11} {'executions pgbadger / perfkit':>30}")
    for kind, path in files.items():
        badger_out = args.dir / f"pgbadger-{kind}.json"
        facts_out = args.dir / f"perfkit-{kind}.json"
        badger, perfkit = [], []
        rounds = []
        for _ in range(args.rounds):
            badger.append(measure(pgbadger_argv(path, kind, badger_out)))
            after = [measure(perfkit_argv(path, facts_out)) for _ in range(args.perfkit_runs)]
            perfkit.extend(after)
            rounds.append(badger[-1][0] / statistics.median(run[0] for run in after))
        badger_s, badger_cpu, badger_mib = (statistics.median(run[i] for run in badger) for i in range(3))
        perfkit_s, perfkit_cpu, perfkit_mib = (statistics.median(run[i] for run in perfkit) for i in range(3))
        counted = json.loads(facts_out.read_text())["executions"]
        print(f"{kind:<8} {path.stat().st_size / 2**20:>5,.0f} {badger_s:>8.1f} / {badger_cpu:>7.1f} "
              f"{perfkit_s:>7.1f} / {perfkit_cpu:>7.1f} {badger_s / perfkit_s:>5.1f}x {min(rounds):>6.1f}-{max(rounds):<5.1f}x "
              f"{badger_cpu / perfkit_cpu:>5.1f}x {max(run[2] for run in badger):>12,.0f} "
              f"{max(run[2] for run in perfkit):>11,.0f} {pgbadger_executions(badger_out):>16,} / {counted:,}",
              flush=True)
    if args.big_gb <= 0:
        return
    big = repeated(files["stderr"], args.dir / "postgresql-big.log", args.big_gb)
    big_s, big_cpu, big_mib = measure(perfkit_argv(big))
    print(f"stderr {big.stat().st_size / 2**30:.1f} GB (the real log repeated): perfkit {big_s:.1f} s wall, "
          f"{big_cpu:.1f} s cpu, peak {big_mib:,.0f} MiB (goal <= 1024)")
    big.unlink()
    if not args.keep and not args.reuse:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
