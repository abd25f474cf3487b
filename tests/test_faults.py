"""Faults and bad input through the real command line: one line and an exit code, never a
traceback or a hang (issue 13)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perfkit.logs
from perfkit.errors import BadInputError
from perfkit.logs import formats
from perfkit.plans import parse
from perfkit.sections import Section, guarded
from perfkit.store import parse_since

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "tests" / "fixtures" / "logs"
PLANS = ROOT / "tests" / "fixtures" / "plans"


def run_perfkit(*argv: str, stdout=subprocess.PIPE, stdin=None, timeout: float = 60, user: int | None = None):
    """``perfkit ARGV`` in a child process (optionally as another uid): (exit code, stdout, stderr)."""
    command = [sys.executable, "-m", "perfkit.cli", *argv]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, stdin=stdin, timeout=timeout, env=env,
                          cwd=ROOT, check=False)
    out = done.stdout.decode() if isinstance(done.stdout, bytes) else ""
    return done.returncode, out, done.stderr.decode()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- hangs: only regular files are read ------------------------------------------------------------
@pytest.mark.parametrize("command", ["plan", "logs"])
def test_fifo_without_writer_is_refused_at_once(tmp_path, command):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run_perfkit(command, str(fifo), timeout=30)
    assert code == 2
    assert one_line(err) == f"perfkit: error: {fifo}: is a FIFO (named pipe), not a regular file: give a file"


@pytest.mark.parametrize("command", ["plan", "logs"])
def test_dev_zero_is_refused(command):
    code, _, err = run_perfkit(command, "/dev/zero", timeout=30)
    assert code == 2
    assert "/dev/zero: is a character device, not a regular file" in one_line(err)


def test_plan_from_endless_stdin_stops_at_the_size_limit():
    with open("/dev/zero", "rb") as zero:
        code, _, err = run_perfkit("plan", "-", stdin=zero, timeout=60)
    assert code == 2
    assert one_line(err) == "perfkit: error: <stdin>: the input is larger than 256 MiB, the most perfkit reads"


def test_plan_line_length_limit(monkeypatch):
    import importlib

    plan_parse = importlib.import_module("perfkit.plans.parse")
    monkeypatch.setattr(plan_parse, "MAX_LINE_CHARS", 100)
    text = "Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  Filter: " + "x" * 200 + "\n"
    with pytest.raises(BadInputError, match=r"p.txt, line 2: a line longer than"):
        parse(text, path="p.txt")


def _bomb(path: Path, line_bytes: int) -> None:
    """A gzip file of one log line and then one line of ``line_bytes`` bytes (about 1,000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"a" * (1 << 20)
    with open(path, "wb") as out:
        out.write(packer.compress(b"2024-01-05 08:35:00.000 UTC [1] LOG:  starting\n"))
        for _ in range(line_bytes // len(block)):
            out.write(packer.compress(block))
        out.write(packer.compress(b"\n"))
        out.write(packer.flush())


def test_gzip_bomb_is_refused_with_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.log.gz"
    _bomb(bomb, 160 << 20)  # 160 MiB line in about 160 kB
    assert bomb.stat().st_size < 1 << 20
    code, _, err = run_perfkit("logs", str(bomb))
    assert code == 2
    assert one_line(err).startswith(f"perfkit: error: {bomb}, line 2: a line longer than 64 MiB")
    tracemalloc.start()
    try:
        with pytest.raises(BadInputError, match="line 2: a line longer than 64 MiB"):
            perfkit.logs.read(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_damaged_gzip_still_names_file_and_line(tmp_path):
    good = (LOGS / "stderr-default.log").read_bytes()
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress(good)[:-40])
    code, _, err = run_perfkit("logs", str(cut))
    assert code == 2
    assert "cut.log.gz, line" in one_line(err)


# -- tracebacks -----------------------------------------------------------------------------------
def test_jsonlog_line_nested_100000_deep(tmp_path):
    log = tmp_path / "deep.json"
    first = json.dumps({"timestamp": "2024-01-05 08:35:00.000 UTC", "pid": 1, "error_severity": "LOG",
                        "message": "duration: 1.000 ms  statement: select 1"})
    log.write_text(first + "\n" + '{"message":' + "[" * 100_000 + "]" * 100_000 + "}\n")
    code, _, err = run_perfkit("logs", str(log))
    assert code == 2
    assert one_line(err) == f"perfkit: error: {log}, line 2: a JSON value nested too deeply to read, not a jsonlog line"
    code, out, err = run_perfkit("logs", str(log), "--skip-bad-lines", "--json")
    assert code == 0, err
    assert "Traceback" not in err
    assert json.loads(out)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_log_in_an_unreadable_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    shutil.copy(LOGS / "stderr-default.log", folder / "pg.log")
    folder.chmod(0o000)
    tmp_path.chmod(0o755)
    try:
        code, _, err = run_perfkit("logs", str(folder / "pg.log"), user=65534 if os.geteuid() == 0 else None)
    finally:
        folder.chmod(0o755)
    assert code == 2
    assert one_line(err) == f"perfkit: error: {folder / 'pg.log'}: cannot read it (Permission denied)"


@pytest.mark.parametrize("extra", [["--json"], []])
def test_output_to_dev_full(extra):
    with open("/dev/full", "wb") as full:
        code, _, err = run_perfkit("plan", str(PLANS / "cte.json"), *extra, stdout=full)
    assert code == 3
    assert "No space left on device" in one_line(err)


def test_diff_since_too_far_back(tmp_path):
    code, _, err = run_perfkit("diff", "--store", str(tmp_path), "--since", "10000000000d")
    assert code == 2
    assert one_line(err) == "perfkit: error: --since 10000000000d is too far back (at most 100 years)"


@given(st.text(max_size=30) | st.from_regex(r"\A\d{1,30}(\.\d{1,5})?(m|min|h|d|w)\Z"))
@settings(max_examples=200, deadline=None)
def test_since_never_tracebacks(text):
    try:
        since = parse_since(text)
    except BadInputError as err:
        assert "\n" not in str(err)
    else:
        assert since.days <= 100 * 365


# -- report sections -----------------------------------------------------------------------------
def test_guarded_skips_a_bad_file_even_when_the_error_has_no_path(tmp_path):
    def pathless() -> Section:
        raise BadInputError("a stats CSV header lacks 'Name'")

    def unreadable() -> Section:
        raise PermissionError(13, "Permission denied", str(tmp_path / "b.csv"))

    skipped = guarded("Load-test files", pathless, files=[tmp_path / "a.csv"])
    assert skipped.skipped == f"Load-test files: {tmp_path / 'a.csv'}: a stats CSV header lacks 'Name'"
    skipped = guarded("Load-test files", unreadable, files=[tmp_path / "b.csv"])
    assert skipped.skipped == f"Load-test files: {tmp_path / 'b.csv'}: cannot read it (Permission denied)"
    skipped = guarded("Load-test files", lambda: gzip.decompress(b"\x1f\x8b\x08\x00garbage"), files=["c.gz"])
    assert skipped.skipped.startswith("Load-test files: c.gz: cannot read it")
    with pytest.raises(BadInputError):  # an option error of a section without files still fails
        guarded("Workload", pathless)


# -- syslog and pgbouncer -------------------------------------------------------------------------
def test_syslog_is_read():
    frame = perfkit.logs.read(LOGS / "syslog-rsyslog.log")
    assert frame.attrs["formats"] == {str(LOGS / "syslog-rsyslog.log"): "syslog"}
    assert frame.attrs["prefixes"][str(LOGS / "syslog-rsyslog.log")] == "%m [%p] user=%u,db=%d,app=%a "
    assert frame.attrs["skipped_lines"] == 0
    statements = frame[frame["phase"].isin(["statement", "execute"])]
    assert len(statements) == 6
    assert statements["statement"].iloc[0] == "SELECT id, total\nFROM orders\nWHERE customer_id = 42"
    long = "SELECT " + ", ".join(f"o.column_number_{i}" for i in range(120)) + " FROM orders o WHERE o.id = 1"
    assert long in set(statements["statement"])  # three syslog pieces glued back
    assert frame.loc[frame["phase"] == "execute", "parameters"].tolist() == ["$1 = '7'"]
    error = frame[frame["level"] == "ERROR"].iloc[0]
    assert error["statement"] == "SELECT * FROM missing"
    assert frame["pid"].tolist()[:2] == [4242, 4301]
    assert frame["ts"].iloc[1].strftime("%m-%d %H:%M:%S") == "01-05 08:35:01"
    assert frame["user"].iloc[3] == "report" and frame["application"].iloc[3] == "cron"


def test_syslog_rfc3339_layout(tmp_path):
    log = tmp_path / "pg.log"
    log.write_text(
        "2024-01-05T08:35:01.123456+01:00 db1 postgres[77]: [1-1] LOG:  duration: 2.000 ms  statement: SELECT 1\n"
        "2024-01-05T08:35:02.5Z db1 postgres[77]: [2-1] LOG:  duration: 3.000 ms  statement: SELECT 2\n"
    )
    frame = perfkit.logs.read(log)
    assert [t.isoformat() for t in frame["ts"]] == ["2024-01-05T07:35:01.123000+00:00", "2024-01-05T08:35:02.500000+00:00"]
    assert frame["duration_ms"].tolist() == [2.0, 3.0]


def test_syslog_through_the_command_line():
    code, out, err = run_perfkit("logs", str(LOGS / "syslog-rsyslog.log"), "--json")
    assert code == 0, err
    assert json.loads(out)["slowest"][0]["duration_ms"] == 1503.0


def test_pgbouncer_log_is_named(tmp_path):
    log = tmp_path / "pgbouncer.log"
    log.write_text(
        "2024-01-05 08:35:00.101 UTC [812] LOG kernel file descriptor limit: 1024 (hard: 524288)\n"
        "2024-01-05 08:35:00.102 UTC [812] LOG listening on 127.0.0.1:6432\n"
        "2024-01-05 08:35:01.220 UTC [812] LOG C-0x55d0a1b2c3d0: shop/app@127.0.0.1:50412 login attempt: db=shop user=app tls=no\n"
        "2024-01-05 08:35:01.221 UTC [812] LOG S-0x55d0a1b2d4e0: shop/app@127.0.0.1:5432 new connection to server (from 127.0.0.1:50413)\n"
        "2024-01-05 08:36:00.000 UTC [812] LOG stats: 3 xacts/s, 5 queries/s, in 700 B/s, out 1200 B/s, xact 800 us, query 400 us, wait 10 us\n"
    )
    for extra in ([], ["--prefix", "%m [%p] "]):
        code, _, err = run_perfkit("logs", str(log), *extra)
        assert code == 2
        line = one_line(err)
        assert line.startswith(f"perfkit: error: {log}, line 1: this is a pgbouncer log; perfkit reads PostgreSQL's server logs")
        assert "--prefix" not in line


# -- deep nesting -------------------------------------------------------------------------------
@given(depth=st.integers(1, 3000), where=st.sampled_from(["message", "detail", "top"]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_jsonlog_nesting_never_tracebacks(tmp_path, depth, where):
    nested = "[" * depth + "]" * depth
    if where == "top":
        line = nested
    else:
        line = '{"message": "x", "timestamp": "2024-01-05 08:35:00.000 UTC", "' + where + '": ' + nested + "}"
    records = list(formats.read_jsonlog([(1, line)]))
    assert len(records) == 1
    assert isinstance(records[0], formats.BadRecord)


def _deep_plan(depth: int) -> str:
    lines = []
    for level in range(depth):
        indent = "" if level == 0 else " " * (6 * level - 6) + "  ->  "
        lines.append(f"{indent}Nested Loop  (cost=0.00..{depth - level}.00 rows=10 width=8) "
                     "(actual time=0.010..1.000 rows=10 loops=1)")
        lines.append(" " * (6 * level + 6) + "Join Filter: (a.id = b.id)")
    return "\n".join(lines) + "\nPlanning Time: 0.100 ms\nExecution Time: 1.000 ms\n"


def _timed(text: str) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        plan = parse(text)
        best = min(best, time.perf_counter() - start)
    assert len(plan.nodes) == text.count("Nested Loop")
    return best


def test_deep_text_plan_parses_in_linear_time():
    small, large = _deep_plan(2000), _deep_plan(4000)
    small_s, large_s = _timed(small), _timed(large)
    assert small_s < 5.0
    # EXPLAIN indents each level, so the text grows with the square of the depth (24 MB and
    # 96 MB here): linear time is about 4x; the cubic parser was about 8x (83 s at 2,000 deep)
    per_byte = (large_s / len(large)) / (small_s / len(small))
    assert per_byte < 1.6, f"{small_s:.2f} s for {len(small)} bytes, {large_s:.2f} s for {len(large)} bytes"


@given(st.lists(st.integers(0, 60), min_size=1, max_size=300))
@settings(max_examples=60, deadline=None)
def test_text_plan_random_nesting_never_tracebacks(steps):
    lines = ["Nested Loop  (cost=0.00..1.00 rows=1 width=4)"]
    for step in steps:
        lines.append(" " * step + "->  Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)")
        lines.append(" " * (step + 6) + "Filter: (x = 1)")
    start = time.perf_counter()
    try:
        parse("\n".join(lines))
    except BadInputError as err:
        assert "\n" not in str(err)
    assert time.perf_counter() - start < 5
