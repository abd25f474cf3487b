"""The fast and out-of-core load-test paths give the same results as the reference readers.

k6 NDJSON goes through DuckDB (whole-file scan, or a byte filter first for mixed files), JMeter
CSV through pyarrow's CSV reader, ``summary_only`` through DuckDB aggregates. Each is checked
against the line-by-line / pandas reader it replaces. No timings here (see benchmarks/).
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pandas as pd
import pytest

from perfkit import loadtests
from perfkit.errors import BadInputError
from perfkit.loadtests import duck, jmeter, k6

FIX = Path(__file__).parent / "fixtures" / "loadtests"

def test_duckdb_is_available():
    """duckdb is a dependency: the fast and out-of-core paths must not silently fall back."""
    assert duck.available()


def _same_samples(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    for column in new.columns:
        a, b = new[column], old[column]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert isinstance(b.dtype, pd.CategoricalDtype), column
            a, b = a.astype(object), b.astype(object)
        assert a.dtype == b.dtype, column
        assert a.equals(b), column


def _same_run(new, old) -> None:
    _same_samples(new.samples, old.samples)
    pd.testing.assert_frame_equal(new.summary, old.summary, check_exact=True)
    assert new.notes == old.notes
    assert new.tool_figures == old.tool_figures


def _k6_reference(monkeypatch, path):
    with monkeypatch.context() as patch:
        patch.setattr(k6, "_points_duckdb", lambda _path: None)  # the block/pyarrow reader
        return loadtests.read(path)


def _write_k6(path: Path, requests: int, metrics: list[str], seed: int = 3) -> None:
    rng = random.Random(seed)
    lines = [json.dumps({"type": "Metric", "data": {"type": "trend"}, "metric": m}) for m in metrics]
    for i in range(requests):
        status = rng.choice(["200", "200", "200", "503", "0"])
        tags = {"name": f"/api/{rng.choice(['a', 'b', 'c'])}", "method": rng.choice(["GET", "POST"]),
                "status": status, "url": "http://x/api"}
        if status != "0":
            tags["expected_response"] = "true" if status == "200" else "false"
        else:
            tags["error"] = "dial: i/o timeout"
        stamp = f"2024-05-01T10:00:{i // 100:02d}.{rng.randrange(10**9):09d}+02:00"
        for metric in metrics:
            value = rng.lognormvariate(3, 0.7) if metric == "http_req_duration" else 1.0
            lines.append(json.dumps({"metric": metric, "type": "Point",
                                     "data": {"time": stamp, "value": value, "tags": tags}}))
    path.write_text("\n".join(lines) + "\n")


# --- k6 NDJSON -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mostly_points", [True, False])
def test_k6_duckdb_paths_equal_the_reference_reader(monkeypatch, mostly_points):
    path = FIX / "k6_points.ndjson"
    monkeypatch.setattr(k6, "_mostly_points", lambda _path: mostly_points)
    assert k6._points_duckdb(path) is not None  # DuckDB did read it
    _same_run(loadtests.read(path), _k6_reference(monkeypatch, path))


@pytest.mark.parametrize("metrics", [["http_req_duration"], ["http_reqs", "http_req_duration", "http_req_waiting"]])
def test_k6_generated_files_equal_the_reference_reader(monkeypatch, tmp_path, metrics):
    path = tmp_path / "k6.json"
    _write_k6(path, 600, metrics)
    assert k6._mostly_points(path) == (len(metrics) == 1)
    run = loadtests.read(path)
    assert len(run.samples) == 600
    _same_run(run, _k6_reference(monkeypatch, path))


def test_k6_gzip_through_duckdb(monkeypatch, tmp_path):
    path = tmp_path / "out.json.gz"
    path.write_bytes(gzip.compress((FIX / "k6_points.ndjson").read_bytes()))
    for mostly_points in (True, False):
        monkeypatch.setattr(k6, "_mostly_points", lambda _path, m=mostly_points: m)
        assert k6._points_duckdb(path) is not None
        _same_run(loadtests.read(path), _k6_reference(monkeypatch, path))


def test_k6_byte_filter_keeps_crlf_blank_lines_and_a_last_line_without_break(monkeypatch, tmp_path):
    lines = (FIX / "k6_points.ndjson").read_text().splitlines()
    path = tmp_path / "crlf.json"
    path.write_bytes(("\r\n".join(lines[:50]) + "\r\n\r\n" + "\r\n".join(lines[50:])).encode())
    monkeypatch.setattr(k6, "_mostly_points", lambda _path: False)
    assert k6._points_duckdb(path) is not None
    _same_run(loadtests.read(path), _k6_reference(monkeypatch, path))


def test_k6_a_line_cut_short_anywhere_falls_back_and_is_named(monkeypatch, tmp_path):
    lines = (FIX / "k6_points.ndjson").read_text().splitlines()
    index = next(i for i in range(100, len(lines)) if '"http_req_duration"' not in lines[i])
    lines[index] = lines[index][:25]
    path = tmp_path / "cut.json"
    path.write_text("\n".join(lines) + "\n")
    for mostly_points in (True, False):
        monkeypatch.setattr(k6, "_mostly_points", lambda _path, m=mostly_points: m)
        assert k6._points_duckdb(path) is None
        with pytest.raises(BadInputError, match=rf"cut.json, line {index + 1}"):
            loadtests.read(path)


def test_k6_nanosecond_stamps_survive_the_duckdb_path():
    first = next(json.loads(line) for line in (FIX / "k6_points.ndjson").read_text().splitlines()
                 if '"http_req_duration"' in line and '"Point"' in line)
    run = loadtests.read(FIX / "k6_points.ndjson")
    end = pd.Timestamp(first["data"]["time"]).tz_convert("UTC")
    assert end.nanosecond != 0  # the fixture has sub-microsecond digits
    assert (run.samples["ts"] + pd.to_timedelta(run.samples["latency_ms"], unit="ms") == end).any()


# --- JMeter CSV ----------------------------------------------------------------------------------
def _jtl_reference(monkeypatch, path, **options):
    with monkeypatch.context() as patch:
        patch.setattr(jmeter, "_typed_pandas", lambda *args: None)
        patch.setattr(jmeter, "_typed_arrow", lambda *args: None)  # the whole-file pandas reader
        return loadtests.read(path, **options)


@pytest.mark.parametrize("name", ["jmeter_header.jtl", "jmeter_noheader.jtl", "jmeter_semicolon.jtl"])
def test_jtl_fast_paths_equal_the_pandas_reader(monkeypatch, name):
    reference = _jtl_reference(monkeypatch, FIX / name)
    _same_run(loadtests.read(FIX / name), reference)  # segments parsed by pandas in threads
    with monkeypatch.context() as patch:
        patch.setattr(jmeter, "_typed_pandas", lambda *args: None)  # pyarrow's reader
        _same_run(loadtests.read(FIX / name), reference)


def test_jtl_segments_in_parallel_and_a_cut_inside_a_quoted_message(monkeypatch, tmp_path):
    path = tmp_path / "gen.jtl"
    _write_jtl(path, 3000)
    monkeypatch.setattr(jmeter, "_SEGMENT_MIN", 0)  # cut even a small file
    monkeypatch.setattr(jmeter, "_cores", lambda: 4)  # 8 segments
    segments = jmeter._segments(path, True, 8)
    assert len(segments) == 8 and segments[0][0] > 0 and segments[-1][1] == path.stat().st_size
    # messages on one line: no cut lands inside quotes, every segment is parsed by pandas; the
    # segments differ (some read the codes as numbers, others with "Non HTTP ..." as text)
    single = tmp_path / "single.jtl"
    single.write_text(path.read_text().replace("failed:\nexpected", "failed: expected"))
    assert jmeter._typed_pandas(single, jmeter.DEFAULT_COLUMNS, ",", True) is not None
    _same_run(loadtests.read(single), _jtl_reference(monkeypatch, single))
    # cuts inside multi-line messages merge their segments: still parsed by pandas, same rows
    assert jmeter._typed_pandas(path, jmeter.DEFAULT_COLUMNS, ",", True) is not None
    _same_run(loadtests.read(path), _jtl_reference(monkeypatch, path))
    # one message of many lines across the middle of the file: the cut lands inside its quotes
    lines = path.read_text().split("\n")
    middle = len(lines) // 2
    message = '"' + "\n".join(f"line {i}, with a comma" for i in range(4000)) + '"'
    lines[middle] = lines[middle].replace(",TRUE,,", f",false,{message},", 1).replace(",false,,", f",false,{message},", 1)
    assert message in lines[middle]
    path.write_text("\n".join(lines))
    monkeypatch.setattr(jmeter, "_cores", lambda: 1)  # 2 segments: cut in the middle
    start = jmeter._segments(path, True, 2)[1][0]
    assert b"with a comma\nline" in path.read_bytes()[start - 30:start + 30]  # inside the message
    parsed = []
    original = jmeter._ByteRange.__init__
    monkeypatch.setattr(jmeter._ByteRange, "__init__",
                        lambda self, p, start, end: parsed.append((start, end)) or original(self, p, start, end))
    assert jmeter._typed_pandas(path, jmeter.DEFAULT_COLUMNS, ",", True) is not None
    size = path.stat().st_size
    assert len(parsed) == 3 and parsed[-1] == (min(p[0] for p in parsed), size)  # halves, then as one
    run = loadtests.read(path)
    assert sum(1 for e in run.samples["error"].dropna() if e.startswith("line 0")) == 1
    _same_run(run, _jtl_reference(monkeypatch, path))


def test_jtl_labels_that_look_like_numbers_stay_as_written(monkeypatch, tmp_path):
    path = tmp_path / "numbers.jtl"
    rows = [f"{1714550400000 + i},{10 + i},{label},200,OK,t,text,true,,1,1,1,1,http://h/,1,0,0"
            for i, label in enumerate(["01", "1", "1.0", "2"] * 5)]
    path.write_text(",".join(jmeter.DEFAULT_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    run = loadtests.read(path)
    assert sorted(run.summary["endpoint"][:-1]) == ["01", "1", "1.0", "2"]
    _same_run(run, _jtl_reference(monkeypatch, path))


def _write_jtl(path: Path, rows: int, newline: str = "\n") -> None:
    rng = random.Random(5)
    out = ["timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,"
           "failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"]
    for i in range(rows):
        fail = rng.random() < 0.2
        code = rng.choice(["500", "Non HTTP response code: java.net.SocketException"]) if fail else "200"
        message = '"assertion failed:\nexpected 200, got ""500"""' if fail and i % 2 else ""
        out.append(f"{1714550400000 + rng.randrange(10**6)},{rng.randint(1, 900)},label {i % 4},{code},"
                   f"{'Server Error' if fail else 'OK'},t 1-{i % 3},text,{'false' if fail else 'TRUE'},"
                   f"{message},10,20,3,3,http://h/{i % 4},5,0,1")
    path.write_text(newline.join(out) + newline)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_jtl_quoted_multiline_messages_and_text_codes(monkeypatch, tmp_path, newline):
    path = tmp_path / "gen.jtl"
    _write_jtl(path, 400, newline)
    run = loadtests.read(path)
    assert len(run.samples) == 400
    assert 'assertion failed:\nexpected 200, got "500"' in set(run.samples["error"].dropna())
    assert run.samples["status"].isna().any()  # "Non HTTP response code: ..." is no number
    _same_run(run, _jtl_reference(monkeypatch, path))


def test_jtl_gzip_and_short_rows(monkeypatch, tmp_path):
    path = tmp_path / "gen.jtl.gz"
    data = (FIX / "jmeter_header.jtl").read_bytes()
    path.write_bytes(gzip.compress(data))
    assert jmeter._typed_pandas(path, jmeter.DEFAULT_COLUMNS, ",", True) is None  # no byte ranges of gzip
    _same_run(loadtests.read(path, format="jmeter-csv"), _jtl_reference(monkeypatch, path, format="jmeter-csv"))
    lines = data.decode().splitlines()
    lines[40] = lines[40][:20]
    cut = tmp_path / "cut.jtl"
    cut.write_text("\n".join(lines) + "\n")
    assert jmeter._typed_arrow(cut, jmeter.DEFAULT_COLUMNS, ",", True) is None
    with pytest.raises(BadInputError, match="cut.jtl, line 41"):
        loadtests.read(cut)


# --- summary_only (out of core) ------------------------------------------------------------------
def _same_summary(out_of_core, in_memory) -> None:
    summary, reference = out_of_core.summary, in_memory.summary
    assert summary["endpoint"].tolist() == reference["endpoint"].tolist()
    for column in ("requests", "failures"):  # counts are exact
        assert summary[column].tolist() == reference[column].tolist(), column
    pd.testing.assert_frame_equal(summary, reference, check_exact=False, rtol=1e-9)
    assert out_of_core.samples.empty and list(out_of_core.samples.columns) == loadtests.SAMPLE_COLUMNS
    assert out_of_core.percentiles_from == "samples"


@pytest.mark.parametrize("name", ["k6_points.ndjson", "jmeter_header.jtl", "jmeter_noheader.jtl"])
def test_summary_only_equals_the_in_memory_summary(name):
    run = loadtests.read(FIX / name, summary_only=True)
    _same_summary(run, loadtests.read(FIX / name))
    assert any("out of core" in note for note in run.notes)


def test_summary_only_on_generated_and_gzipped_files(tmp_path):
    k6_path = tmp_path / "k6.json.gz"
    _write_k6(tmp_path / "k6.json", 700, ["http_reqs", "http_req_duration"])
    k6_path.write_bytes(gzip.compress((tmp_path / "k6.json").read_bytes()))
    _same_summary(loadtests.read(k6_path, summary_only=True), loadtests.read(k6_path))
    jtl = tmp_path / "gen.jtl"
    _write_jtl(jtl, 500)
    run = loadtests.read(jtl, summary_only=True, memory_limit="64MB")
    _same_summary(run, loadtests.read(jtl))
    assert run.tool_figures == loadtests.read(jtl).tool_figures


def test_summary_only_falls_back_where_duckdb_cannot_and_drops_samples_elsewhere(tmp_path):
    # formatted JTL timestamps: read in memory, samples dropped, same summary
    run = loadtests.read(FIX / "jmeter_semicolon.jtl", summary_only=True)
    _same_summary(run, loadtests.read(FIX / "jmeter_semicolon.jtl"))
    assert any("read in memory" in note for note in run.notes)
    # a format without an out-of-core path
    locust = loadtests.read(FIX / "ab_gnuplot.tsv", summary_only=True)
    assert locust.samples.empty
    pd.testing.assert_frame_equal(locust.summary, loadtests.read(FIX / "ab_gnuplot.tsv").summary)
    # bad input is still named
    lines = (FIX / "k6_points.ndjson").read_text().splitlines()
    path = tmp_path / "cut.json"
    path.write_text("\n".join(lines[:-40] + [lines[-40][:30]]))
    with pytest.raises(BadInputError, match=rf"line {len(lines) - 39}"):
        loadtests.read(path, summary_only=True)
    with pytest.raises(BadInputError, match="skip_bad_lines"):
        loadtests.read(path, summary_only=True, skip_bad_lines=True)
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    with pytest.raises(BadInputError, match="empty"):
        loadtests.read(empty, "k6-json", summary_only=True)


def test_cli_summary_only(capsys):
    from perfkit.cli import main

    assert main(["loadtest", "--summary-only", "--json", str(FIX / "k6_points.ndjson")]) == 0
    doc = json.loads(capsys.readouterr().out)
    result = doc["results"][0]
    assert any("out of core" in note for note in result["notes"])
    reference = loadtests.read(FIX / "k6_points.ndjson").summary
    assert [row["requests"] for row in result["summary"]] == reference["requests"].tolist()


@pytest.mark.parametrize("column, value, expected", [
    ("timeStamp", "99999999999999", "line|timeStamp|out of bounds|Out of bounds"),  # past 2262
    ("elapsed", "inf", "not a duration"),
])
def test_jtl_values_out_of_range_are_named_not_wrapped(tmp_path, column, value, expected):
    lines = (FIX / "jmeter_header.jtl").read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[5].split(",")
    fields[header.index(column)] = value
    lines[5] = ",".join(fields)
    path = tmp_path / "range.jtl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInputError, match=expected):
        loadtests.read(path)


def test_jtl_status_that_is_no_code_is_missing(monkeypatch, tmp_path):
    lines = (FIX / "jmeter_header.jtl").read_text().splitlines()
    fields = lines[5].split(",")
    fields[3] = "1e300"
    lines[5] = ",".join(fields)
    path = tmp_path / "code.jtl"
    path.write_text("\n".join(lines) + "\n")
    run = loadtests.read(path)
    assert run.samples["status"].isna().sum() == 1
    _same_run(run, _jtl_reference(monkeypatch, path))


def test_k6_csv_infinite_value_is_named(tmp_path):
    lines = (FIX / "k6_results.csv").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("http_req_duration,"))
    fields = lines[index].split(",")
    fields[2] = "inf"
    lines[index] = ",".join(fields)
    path = tmp_path / "inf.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInputError, match=rf"inf.csv, line {index + 1}"):
        loadtests.read(path)
