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
