"""Faults and bad input through `perfkit loadtest`: every case a one-line error naming the file
(and line) with exit 2, or the right figures; never a traceback, a hang or a silently wrong number."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfkit import loadtests
from perfkit.cli import main
from perfkit.errors import BadInputError

FIX = Path(__file__).parent / "fixtures" / "loadtests"


@pytest.fixture
def only_the_loadtest_command(monkeypatch):
    import perfkit.cli

    monkeypatch.setattr(perfkit.cli, "COMMANDS", ("loadtest",))


def fails(capsys, *argv) -> str:
    """Run `perfkit loadtest ARGV`, assert exit 2 and a one-line error; return that line."""
    assert main(["loadtest", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfkit: error: "), err
    return lines[0]


# --- gzip -------------------------------------------------------------------------------------
def test_corrupt_gz_is_one_line(only_the_loadtest_command, tmp_path, capsys):
    good = gzip.compress((FIX / "k6_results.csv").read_bytes())
    corrupt = tmp_path / "k6.csv.gz"
    corrupt.write_bytes(good[:10] + b"\xff" * 40 + good[50:])
    line = fails(capsys, corrupt)
    assert f"{corrupt}: not a readable gzip file" in line
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(good[: len(good) // 2])
    assert "truncated" in fails(capsys, truncated)


_GZ_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
_SOURCES = ["k6_results.csv", "k6_points.ndjson", "jmeter_header.jtl", "vegeta_results.json"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=400).map(lambda b: _GZ_HEADER + b),  # random bytes behind a gzip header
    st.tuples(st.sampled_from(_SOURCES), st.floats(0, 1)).map(  # a real file's gzip, cut anywhere
        lambda c: gzip.compress((FIX / c[0]).read_bytes())[: int(len(gzip.compress((FIX / c[0]).read_bytes())) * c[1])]),
), st.sampled_from([None, "k6-csv", "k6-json", "jmeter-csv", "vegeta-json"]), st.booleans())
def test_gzip_path_never_tracebacks(tmp_path_factory, data, format, summary_only):
    path = tmp_path_factory.mktemp("gz") / "result.json.gz"
    path.write_bytes(data)
    try:
        loadtests.read(path, format, summary_only=summary_only)
    except BadInputError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)


# --- only regular files -----------------------------------------------------------------------
def test_fifo_with_no_writer_is_refused_not_waited_on(only_the_loadtest_command, tmp_path, capsys):
    fifo = tmp_path / "results.csv"
    os.mkfifo(fifo)
    assert f"{fifo}: is a FIFO (named pipe), not a regular file" in fails(capsys, fifo)
    line = fails(capsys, FIX / "wrk_missing.txt", "--slo", fifo)
    assert f"{fifo}: is a FIFO (named pipe), not a regular file" in line
    assert "is a character device" in fails(capsys, "/dev/zero")


# --- --html -----------------------------------------------------------------------------------
def test_html_to_a_folder_a_missing_folder_or_a_full_disk(only_the_loadtest_command, tmp_path, capsys):
    wrk = FIX / "wrk_missing.txt"
    assert f"{tmp_path}: --html: is a folder" in fails(capsys, wrk, "--html", tmp_path)
    missing = tmp_path / "no" / "page.html"
    assert f"{missing}: --html: no such folder" in fails(capsys, wrk, "--html", missing)
    assert "/dev/full: --html: cannot write it (No space left on device)" in fails(capsys, wrk, "--html", "/dev/full")
    assert Path("/dev/full").is_char_device()  # written into, never renamed over
    out = tmp_path / "page.html"
    assert main(["loadtest", str(wrk), "--html", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["tool"] == "wrk"
    assert out.read_text().startswith("<!")
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # no temporary file left


# --- wrong numbers with exit 0 ----------------------------------------------------------------
def _locust(tmp_path, edit, header_too=False) -> Path:
    lines = (FIX / "locust_stats.csv").read_text().splitlines()
    path = tmp_path / "run_stats.csv"
    body = [edit(line) for line in lines[1:]]
    path.write_text("\n".join([edit(lines[0]) if header_too else lines[0], *body]) + "\n")
    return path


def test_locust_extra_column_or_trailing_comma_is_refused_at_its_line(only_the_loadtest_command, tmp_path, capsys):
    extra = _locust(tmp_path, lambda line: line + ",7")
    assert f"{extra}, line 2: truncated or malformed Locust stats CSV row: 23 field(s), the header has 22" \
        in fails(capsys, extra)
    trailing = _locust(tmp_path, lambda line: line + ",")
    assert "line 2" in (line := fails(capsys, trailing)) and "a trailing delimiter?" in line
    # a trailing comma on the header too is one more (empty) column: the figures are right
    both = _locust(tmp_path, lambda line: line + ",", header_too=True)
    assert main(["loadtest", "--json", str(both)]) == 0
    good = loadtests.read(FIX / "locust_stats.csv").summary
    summary = json.loads(capsys.readouterr().out)["results"][0]["summary"]
    assert [r["requests"] for r in summary] == good["requests"].tolist()
    assert [r["endpoint"] for r in summary] == good["endpoint"].tolist()


def test_locust_count_that_is_no_number_names_value_and_line(only_the_loadtest_command, tmp_path, capsys):
    lines = (FIX / "locust_stats.csv").read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "1x0"
    path = tmp_path / "bad_stats.csv"
    path.write_text("\n".join([*lines[:3], ",".join(cells), *lines[4:]]) + "\n")
    assert f"{path}, line 4: Locust stats CSV: Request Count '1x0' is not an integer" in fails(capsys, path)


def _jtl(tmp_path, row: int, column: int, value: str, name="run.jtl", source="jmeter_header.jtl", sep=",") -> Path:
    lines = (FIX / source).read_text().splitlines()
    cells = lines[row - 1].split(sep)
    cells[column] = value
    lines[row - 1] = sep.join(cells)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jtl_elapsed_eight_is_refused_or_skipped_and_counted(only_the_loadtest_command, tmp_path, capsys):
    path = _jtl(tmp_path, 4, 1, "eight")
    assert f"{path}, line 4: JTL elapsed 'eight' is not a duration in milliseconds" in fails(capsys, path)
    assert f"{path}, line 4: JTL elapsed 'eight'" in fails(capsys, "--summary-only", path)
    assert main(["loadtest", "--skip-bad-lines", "--json", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    full = loadtests.read(FIX / "jmeter_header.jtl").summary
    assert result["skipped_lines"] == 1 and "1 bad row(s) skipped" in result["notes"]
    assert result["summary"][-1]["requests"] == int(full["requests"].iloc[-1]) - 1


def test_jtl_timestamp_error_names_value_and_line(only_the_loadtest_command, tmp_path, capsys):
    path = _jtl(tmp_path, 6, 0, "17954663x0786")
    assert f"{path}, line 6: JTL timeStamp '17954663x0786' is not epoch milliseconds nor a date" in fails(capsys, path)
    dated = _jtl(tmp_path, 8, 0, "2024/13/45 10:00:00.000", "dated.jtl", "jmeter_semicolon.jtl", ";")
    assert f"{dated}, line 8: JTL timeStamp '2024/13/45 10:00:00.000'" in fails(capsys, dated)


def test_k6_csv_without_status_is_not_all_errors(only_the_loadtest_command, tmp_path, capsys):
    lines = (FIX / "k6_results.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = {header.index("status"), header.index("expected_response")}
    path = tmp_path / "k6.csv"
    path.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i not in drop)
                              for line in lines) + "\n")
    assert main(["loadtest", "--ci", "--json", str(path)]) == 0  # no critical breach from unknown outcomes
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert all(row["failures"] is None and row["error_rate"] is None for row in result["summary"])
    assert any("neither a status nor an expected_response" in note for note in result["notes"])
    assert not [v for v in result["slo"] if v["metric"] == "error_rate" and v["verdict"] in ("warning", "critical")]


_CSV_FIXTURES = ["locust_stats.csv", "locust_stats_history.csv", "k6_results.csv", "k6_results_ms.csv",
                 "hey_search.csv", "hey_timeouts.csv", "ab_gnuplot.tsv", "ab_percentiles.csv",
                 "jmeter_header.jtl", "jmeter_noheader.jtl", "jmeter_semicolon.jtl", "vegeta_results.csv"]


@pytest.mark.parametrize("name", _CSV_FIXTURES)
def test_a_truncated_csv_is_refused_at_its_line_or_said(tmp_path, name):
    """Cut anywhere inside a row: refused naming the line, or read with a note that says so;
    never blank figures with no word."""
    data = (FIX / name).read_bytes()
    total = loadtests.read(FIX / name).summary
    ends = [i for i, b in enumerate(data) if b == 0x0A]
    for cut in sorted({ends[len(ends) // 2] - 3, ends[len(ends) // 2] + 4, len(data) - 4, len(data) - 2}):
        if data[cut - 1:cut] == b"\n":
            continue
        path = tmp_path / name.replace(".", f"_{cut}.", 1)
        path.write_bytes(data[:cut])
        try:
            run = loadtests.read(path)
        except BadInputError as err:
            assert str(err).startswith(f"{path}, line "), str(err)
            continue
        said = any("cut short" in n or "skipped" in n for n in run.notes)
        same = len(run.summary) == len(total)
        assert said or (same and run.summary["requests"].notna().all()), (cut, run.notes)


# --- figures dropped with a false note --------------------------------------------------------
def test_wrk2_latency_output_is_read_with_its_percentiles(only_the_loadtest_command, capsys):
    assert main(["loadtest", "--json", str(FIX / "wrk2_latency.txt")]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["format"] == "wrk2" and result["percentiles_from"] == "histogram"
    row = result["summary"][-1]
    # the "Recorded Latency" lines (p50, p90, p99), p95 from the spectrum's 0.950000 row, the
    # histogram footer's mean and max, "60018 requests in 30.00s", "Requests/sec: 2000.28"
    assert (row["p50_ms"], row["p90_ms"], row["p95_ms"], row["p99_ms"]) == (6.67, 9.14, 10.015, 11.18)
    assert (row["mean_ms"], row["max_ms"], row["requests"], row["rps"]) == (6.602, 12.496, 60018, 2000.28)
    assert not any("no percentiles" in n for n in result["notes"])
    assert any("constant rate" in n for n in result["notes"])


def test_wrk2_uncorrected_section_is_not_taken_for_the_recorded_one(tmp_path):
    text = (FIX / "wrk2_latency.txt").read_text()
    cut = text.index("----------")
    uncorrected = ("  Latency Distribution (HdrHistogram - Uncorrected Latency (measured without taking delayed "
                   "starts into account))\n 50.000%    1.11ms\n 90.000%    2.22ms\n 99.000%    3.33ms\n")
    path = tmp_path / "wrk2_u.txt"
    path.write_text(text[:cut] + uncorrected + text[cut:])
    row = loadtests.read(path).summary.iloc[-1]
    assert (row["p50_ms"], row["p99_ms"]) == (6.67, 11.18)


def test_artillery_1x_report_is_read(only_the_loadtest_command, capsys):
    assert main(["loadtest", "--json", str(FIX / "artillery_1x_report.json")]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    doc = json.loads((FIX / "artillery_1x_report.json").read_text())["aggregate"]
    row = result["summary"][-1]
    assert row["endpoint"] == "ALL"
    assert row["requests"] == doc["requestsCompleted"] + 2 == 56  # + 2 ETIMEDOUT
    assert row["failures"] == 2 + doc["codes"]["503"] == 6
    assert (row["p50_ms"], row["p95_ms"], row["p99_ms"], row["max_ms"]) == (
        doc["latency"]["median"], doc["latency"]["p95"], doc["latency"]["p99"], doc["latency"]["max"])
    assert row["rps"] == doc["rps"]["mean"]


def test_artillery_1x_count_that_is_no_number_is_refused(only_the_loadtest_command, tmp_path, capsys):
    doc = json.loads((FIX / "artillery_1x_report.json").read_text())
    doc["aggregate"]["codes"]["200"] = "fifty"
    path = tmp_path / "a1.json"
    path.write_text(json.dumps(doc))
    assert f"{path}: Artillery 1.x report: codes.200 'fifty' is not a count" in fails(capsys, path)


# --- a folder the user may not enter (tests run as root: perfkit runs as nobody) -----------------
ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def run_as_nobody(*argv) -> tuple[int, str]:
    """``perfkit ARGV`` in a child process as uid/gid nobody when root: (exit code, stderr)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "perfkit.cli", *map(str, argv)]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, timeout=120, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, done.stderr.decode()


def one_error_line(err: str) -> str:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


needs_setpriv = pytest.mark.skipif(os.geteuid() == 0 and __import__("shutil").which("setpriv") is None,
                                   reason="needs setpriv to drop root")


@pytest.fixture
def open_tmp():
    """A temporary folder every user may enter (pytest's tmp_path sits in a 0700 folder of root's)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="perfkit-perm-"))
    folder.chmod(0o755)
    yield folder
    for sub in folder.rglob("*"):
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o755)
    shutil.rmtree(folder)


@pytest.fixture
def locked(open_tmp):
    """A folder in ``open_tmp`` that will be made 0000 (made 0755 again afterwards, for the cleanup)."""
    folder = open_tmp / "locked"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)


@needs_setpriv
def test_gatling_report_folder_whose_js_folder_cannot_be_entered(open_tmp):
    report = open_tmp / "report"
    (report / "js").mkdir(parents=True)
    (report / "js" / "stats.json").write_bytes((FIX / "gatling_3.9_stats.json").read_bytes())
    report.chmod(0o755)
    (report / "js").chmod(0o000)
    try:
        code, err = run_as_nobody("loadtest", report)
    finally:
        (report / "js").chmod(0o755)
    assert code == 2
    assert one_error_line(err) == f"perfkit: error: {report / 'js' / 'stats.json'}: cannot read it (Permission denied)"


@needs_setpriv
def test_locust_stats_csv_in_a_folder_that_cannot_be_entered(open_tmp, locked):
    tmp_path = open_tmp
    for name in ("locust_stats.csv", "locust_stats_history.csv"):
        (locked / name).write_bytes((FIX / name).read_bytes())
    # the stats CSV given itself, and as the sibling of a readable history file (a symbolic link
    # into the locked folder: Path.exists() raised PermissionError there)
    (tmp_path / "run_stats.csv").symlink_to(locked / "locust_stats.csv")
    (tmp_path / "run_stats_history.csv").write_bytes((FIX / "locust_stats_history.csv").read_bytes())
    locked.chmod(0o000)
    code, err = run_as_nobody("loadtest", locked / "locust_stats.csv")
    assert code == 2
    assert one_error_line(err) == f"perfkit: error: {locked / 'locust_stats.csv'}: cannot read it (Permission denied)"
    code, err = run_as_nobody("loadtest", tmp_path / "run_stats_history.csv")
    assert code == 2
    assert one_error_line(err) == f"perfkit: error: {tmp_path / 'run_stats.csv'}: cannot read it (Permission denied)"
    code, err = run_as_nobody("loadtest", "--latest", locked)
    assert code == 2
    assert one_error_line(err) == f"perfkit: error: {locked}: cannot read it (Permission denied)"


# --- line length: a gzip bomb of one endless line, a line of hundreds of MB -----------------------
BOMB_HEADS = {  # a real first line of each text format, then one endless line
    "k6.ndjson": "k6_points.ndjson", "k6.csv": "k6_results.csv", "locust_stats.csv": "locust_stats.csv",
    "run.jtl": "jmeter_header.jtl", "hey.csv": "hey_search.csv", "vegeta.csv": "vegeta_results.csv",
    "wrk.txt": "wrk_seconds.txt", "ab.txt": "ab_reports.txt",
}
PEAK = """
import sys
from perfkit.cli import main
import perfkit.loadtests.formats  # imported (and compiled) before the peak is reset
try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak RSS (VmHWM): what reading the file takes, not importing
except OSError:
    pass
code = main(sys.argv[1:])
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(code, peak // 1024)
"""


_LINES: dict[int, bytes] = {}


def _endless_line(path: Path, head: bytes, line_bytes: int, gz: bool) -> None:
    """``head`` then one line of ``line_bytes`` bytes; gzipped as two members (the header, then the
    long line, compressed once per size for every test: gzip readers read members back to back)."""
    import zlib

    block = b"a" * (1 << 20)
    with open(path, "wb") as out:
        if not gz:
            out.write(head)
            for _ in range(line_bytes // len(block)):
                out.write(block)
            out.write(b"\n")
            return
        if line_bytes not in _LINES:
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            parts = [packer.compress(block) for _ in range(line_bytes // len(block))]
            _LINES[line_bytes] = b"".join(parts) + packer.compress(b"\n") + packer.flush()
        header = zlib.compressobj(9, zlib.DEFLATED, 31)
        out.write(header.compress(head) + header.flush())
        out.write(_LINES[line_bytes])


def _loadtest_peak(*argv) -> tuple[int, str, int]:
    """`perfkit loadtest ARGV` in a child process: (exit code, stderr, peak RSS in MiB)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PEAK, "loadtest", *map(str, argv)], capture_output=True,
                          timeout=300, cwd=ROOT, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    code, peak = done.stdout.decode().split()
    return int(code), done.stderr.decode(), int(peak)


@pytest.mark.parametrize("name", sorted(BOMB_HEADS))
def test_gzip_bomb_of_one_1gib_line_is_refused_with_bounded_memory(tmp_path, name):
    head = (FIX / BOMB_HEADS[name]).read_bytes().splitlines(True)[0]
    bomb = tmp_path / f"{name}.gz"
    _endless_line(bomb, head, 1 << 30, gz=True)
    assert bomb.stat().st_size < 1100 << 10  # about 1 MB for 1 GiB
    for extra in ([], ["--summary-only"]):
        code, err, peak = _loadtest_peak(*extra, bomb)
        assert code == 2
        assert one_error_line(err) == (f"perfkit: error: {bomb}, line 2: a line longer than 64 MiB, the most "
                                       "perfkit reads (a binary file, or a decompression bomb?)")
        assert peak < 300, f"peak RSS {peak} MiB"


@pytest.mark.parametrize("name", ["k6.ndjson", "run.jtl", "locust_stats.csv", "wrk.txt"])
def test_uncompressed_line_of_200_mib_is_refused_with_bounded_memory(tmp_path, name):
    head = (FIX / BOMB_HEADS[name]).read_bytes().splitlines(True)[0]
    path = tmp_path / name
    _endless_line(path, head, 200 << 20, gz=False)
    code, err, peak = _loadtest_peak(path)
    assert code == 2
    assert one_error_line(err).startswith(f"perfkit: error: {path}, line 2: a line longer than 64 MiB")
    assert peak < 300, f"peak RSS {peak} MiB"


def test_text_reader_refuses_a_long_line_as_it_reads(tmp_path, monkeypatch):
    """The readers' own open path (read_bytes) bounds the line too, not only the pre-check."""
    from perfkit import fileio

    monkeypatch.setattr(fileio, "READ_CHUNK", 1024)
    path = tmp_path / "locust_stats.csv"
    path.write_bytes((FIX / "locust_stats.csv").read_bytes() + b"x" * 5000 + b"\n")
    from perfkit.loadtests.run import read_bytes

    chunks = fileio.bounded_chunks(open(path, "rb"), path, max_line=4096)  # noqa: SIM115
    with pytest.raises(BadInputError, match=r"line \d+: a line longer than"):
        b"".join(chunks)
    assert read_bytes(path).endswith(b"x\n")  # under the real limit: read
