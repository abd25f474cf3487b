"""hey CSV and vegeta results: real hey runs (and vegeta's encodings written from real requests),
agreement with the tools' own figures, detection, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfkit import loadtests
from perfkit.cli import main
from perfkit.errors import BadInputError
from perfkit.loadtests.frames import SAMPLE_COLUMNS, SUMMARY_COLUMNS

FIX = Path(__file__).parent / "fixtures" / "loadtests"

CASES = [(name, declared.name) for declared in loadtests.FORMATS.values()
         if declared.tool in ("hey", "vegeta") for name in declared.fixtures]


def hey_summary(name: str) -> dict:
    """The figures hey printed in its text summary (a run with the same options)."""
    text = (FIX / name).read_text()
    return {
        "percentiles": {int(p): float(s) * 1000 for p, s in re.findall(r"^\s+(\d+)% in ([\d.]+) secs", text, re.M)},
        "status": {int(c): int(n) for c, n in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", text, re.M)},
        "errors": sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+\w+ \"", text, re.M)),
        "slowest_ms": float(re.search(r"Slowest:\s+([\d.]+) secs", text).group(1)) * 1000,
        "average_ms": float(re.search(r"Average:\s+([\d.]+) secs", text).group(1)) * 1000,
    }


def hey_percentile(latencies_ms: np.ndarray, pct: int) -> float:
    """hey's own percentile (requester/report.go latencies): the first sorted latency whose
    index * 100 / n reaches pct."""
    ordered = np.sort(latencies_ms)
    n = len(ordered)
    return float(next(ordered[i] for i in range(n) if i * 100 // n >= pct))


@pytest.mark.parametrize("name, fmt", CASES)
def test_fixtures_are_detected_and_read_into_the_contract(name, fmt):
    assert loadtests.detect(FIX / name) == fmt
    run = loadtests.read(FIX / name)
    assert run.format == fmt
    assert list(run.samples.columns) == SAMPLE_COLUMNS
    assert list(run.summary.columns) == SUMMARY_COLUMNS
    assert run.summary["endpoint"].iloc[-1] == "ALL"
    assert run.percentiles_from == "samples"
    assert str(run.samples["ts"].dtype) == "datetime64[ns, UTC]"
    assert run.samples["ts"].is_monotonic_increasing
    assert int(run.summary["requests"].iloc[-1]) == len(run.samples)
    assert run.samples["latency_ms"].notna().all()


def test_the_older_fixtures_are_not_taken_for_hey_or_vegeta():
    for path in sorted(FIX.iterdir()):
        if path.name.startswith(("hey_", "vegeta_")) or path.suffix == ".md":
            continue
        try:
            fmt = loadtests.detect(path)
        except BadInputError:
            continue  # e.g. locust_exceptions.csv, read through its siblings
        assert not fmt.startswith(("hey", "vegeta")), path.name


# --- hey ----------------------------------------------------------------------------------------
def test_hey_counts_and_status_codes_equal_heys_own_summary():
    run = loadtests.read(FIX / "hey_search.csv")
    own = hey_summary("hey_search.txt")  # the same options against a fresh target
    assert len(run.samples) == sum(own["status"].values()) == 300
    assert run.samples["status"].value_counts().to_dict() == own["status"] == {200: 285, 503: 15}
    all_row = run.summary.iloc[-1]
    assert all_row["failures"] == 15 and all_row["error_rate"] == pytest.approx(0.05)
    assert run.closed_loop is True
    assert any("coordinated omission" in n for n in run.notes)


def test_hey_percentiles_agree_with_heys_method_and_its_printed_run():
    run = loadtests.read(FIX / "hey_search.csv")
    latency = run.samples["latency_ms"].to_numpy()
    own = hey_summary("hey_search.txt")
    row = run.summary.iloc[-1]
    # hey's nearest-rank values over these samples sit next to perfkit's interpolated ones
    for pct, column in ((50, "p50_ms"), (90, "p90_ms"), (95, "p95_ms"), (99, "p99_ms")):
        assert abs(hey_percentile(latency, pct) - row[column]) <= 0.5, column
    # the printed summary is a second run with the same options (hey prints no summary with
    # -o csv) against the same deterministic target: the bulk of the distribution agrees
    for pct, column in ((50, "p50_ms"), (90, "p90_ms"), (95, "p95_ms")):
        assert row[column] == pytest.approx(own["percentiles"][pct], abs=1.0), column
    assert row["mean_ms"] == pytest.approx(own["average_ms"], abs=1.0)


def test_hey_leaves_errors_out_of_the_csv():
    run = loadtests.read(FIX / "hey_timeouts.csv")
    own = hey_summary("hey_timeouts.txt")
    # -n 200: five 1.5 s answers timed out (-t 1); hey's summary counts them as errors, its CSV
    # has only the 195 answered requests
    assert own["errors"] == 5 and own["status"] == {200: 195}
    assert len(run.samples) == own["status"][200] == 200 - own["errors"]
    assert run.summary["failures"].iloc[-1] == 0
    assert run.samples["latency_ms"].max() < 1000  # no timed-out request among them
    assert any("connection errors and timeouts are not in the file" in n for n in run.notes)


def test_hey_latency_and_start_offsets_are_read_from_seconds():
    lines = (FIX / "hey_search.csv").read_text().splitlines()
    first = lines[1].split(",")
    run = loadtests.read(FIX / "hey_search.csv", start="2024-05-01T12:00:00+02:00", endpoint="/api/search")
    offsets = [float(line.split(",")[7]) for line in lines[1:]]
    earliest = min(offsets)
    assert run.samples["ts"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00Z") + pd.Timedelta(seconds=earliest)
    match = run.samples[run.samples["ts"] == pd.Timestamp("2024-05-01T10:00:00Z")
                        + pd.Timedelta(seconds=float(first[7]))]
    assert float(first[0]) * 1000 in match["latency_ms"].round(6).tolist()
    assert run.summary["endpoint"].tolist() == ["/api/search", "ALL"]
    assert any("ts = start (2024-05-01T10:00:00+00:00)" in n for n in run.notes)


def test_hey_start_defaults_to_the_files_mtime_minus_the_run(tmp_path):
    path = tmp_path / "checkout.csv"
    shutil.copy(FIX / "hey_search.csv", path)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    run = loadtests.read(path)
    ends = run.samples["ts"] + pd.to_timedelta(run.samples["latency_ms"], unit="ms")
    assert abs((ends.max() - pd.Timestamp(1_700_000_000, unit="s", tz="UTC")).total_seconds()) < 1e-3
    assert run.summary["endpoint"].iloc[0] == "checkout"
    assert any("modification time" in n for n in run.notes)


def test_hey_bad_input(tmp_path):
    lines = (FIX / "hey_search.csv").read_text().splitlines()
    path = tmp_path / "cut.csv"
    path.write_text("\n".join(lines[:100] + [lines[100][:9]] + lines[101:]) + "\n")
    with pytest.raises(BadInputError, match=r"cut.csv, line 101"):
        loadtests.read(path)
    run = loadtests.read(path, skip_bad_lines=True)
    assert run.skipped_lines == 1 and len(run.samples) == 299
    path.write_text("\n".join(lines[:50] + ["0.0100,0.0002,0.0000,0.0000,0.0096,0.0001,200,0.5,9"] + lines[50:]))
    with pytest.raises(BadInputError, match=r"line 51"):
        loadtests.read(path)
    assert len(loadtests.read(path, skip_bad_lines=True).samples) == 300
    path.write_text(lines[0] + "\n")  # every request failed: hey writes the header only
    with pytest.raises(BadInputError, match="without requests"):
        loadtests.read(path)
    path.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        loadtests.read(path, "hey-csv")
    path.write_text("response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read\n0.1,0,0,0,0.1,0\n")
    assert loadtests.detect(path) == "hey-csv"
    with pytest.raises(BadInputError, match="before 0.1.2"):
        loadtests.read(path)


@pytest.mark.parametrize("before", [[], ["", '"a', 'b",1,2,3,4,5,6,7']], ids=["plain", "after_blank_and_quoted"])
def test_hey_unbalanced_quote_names_the_files_line(tmp_path, before):
    # pandas says "EOF inside string starting at row N" (records, 0-based, header = row 0) and
    # "Expected 8 fields in line N" (records, 1-based): both reported as the file's line
    lines = (FIX / "hey_search.csv").read_text().splitlines()
    head = [lines[0], *lines[1:10], *before]
    path = tmp_path / "quote.csv"
    path.write_text("\n".join([*head, '"' + lines[10], *lines[11:]]) + "\n")
    for skip in (False, True):  # the rest of the file is inside the string: nothing to skip to
        with pytest.raises(BadInputError, match=rf"quote.csv, line {len(head) + 1}: truncated"):
            loadtests.read(path, skip_bad_lines=skip)
    path.write_text("\n".join([*head, lines[10] + ",9", *lines[11:]]) + "\n")
    with pytest.raises(BadInputError, match=rf"quote.csv, line {len(head) + 1}: truncated"):
        loadtests.read(path)


@pytest.mark.parametrize("start", ["garbage", "NaT", [1, 2]])
def test_hey_bad_start_option_is_named_and_the_file_not_blamed(start):
    with pytest.raises(BadInputError, match=r"^start=.* is not a date and time") as caught:
        loadtests.read(FIX / "hey_search.csv", start=start)
    assert caught.value.path is None and "hey CSV" not in str(caught.value)


@pytest.mark.parametrize("name, endpoint", [("run.2024-05-01.csv", "run.2024-05-01"),
                                            ("api.example.com.csv.gz", "api.example.com"),
                                            ("search", "search")])
def test_hey_default_endpoint_is_the_file_name_without_its_extension(tmp_path, name, endpoint):
    import gzip

    data = (FIX / "hey_search.csv").read_bytes()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert loadtests.read(path, "hey-csv").summary["endpoint"].iloc[0] == endpoint


# --- vegeta -------------------------------------------------------------------------------------
def vegeta_results(name: str = "vegeta_results.json") -> list[dict]:
    return [json.loads(line) for line in (FIX / name).read_text().splitlines()]


def test_vegeta_counts_success_and_errors_as_vegeta_does():
    results = vegeta_results()
    run = loadtests.read(FIX / "vegeta_results.json")
    # vegeta's Metrics: success = code in [200, 400); status codes as a histogram; unique errors
    success = sum(200 <= r["code"] < 400 for r in results)
    assert run.tool_figures["requests"] == len(results) == len(run.samples) == 250
    assert run.tool_figures["success"] == pytest.approx(success / len(results))
    assert run.summary["failures"].iloc[-1] == len(results) - success == 33
    codes = {}
    for r in results:
        codes[str(r["code"])] = codes.get(str(r["code"]), 0) + 1
    assert run.tool_figures["status_codes"] == codes
    assert set(run.tool_figures["errors"]) == {r["error"] for r in results if r["error"]}
    # code 0 is no answer: a failure without a status, its error kept
    refused = run.samples[run.samples["error"].fillna("").str.contains("connection refused")]
    assert len(refused) == 25 and refused["status"].isna().all() and not refused["ok"].any()
    timeout = run.samples[run.samples["error"].fillna("").str.contains("Client.Timeout")]
    assert len(timeout) == 1 and timeout["latency_ms"].iloc[0] >= 1000
    assert set(run.samples.loc[run.samples["status"] == 503, "error"]) == {"503 Service Unavailable"}
    assert run.closed_loop is False
    assert not any("coordinated omission" in n and "understate" in n for n in run.notes)
    assert any("26 request(s) got no answer" in n for n in run.notes)


def test_vegeta_latency_percentiles_and_endpoints():
    results = vegeta_results()
    run = loadtests.read(FIX / "vegeta_results.json")
    latency_ms = np.array([r["latency"] for r in results]) / 1e6
    row = run.summary.iloc[-1]
    assert row["max_ms"] == pytest.approx(latency_ms.max())
    assert row["mean_ms"] == pytest.approx(latency_ms.mean())  # vegeta's mean: every result
    assert row["p95_ms"] == pytest.approx(np.percentile(latency_ms, 95))
    assert run.summary["endpoint"].tolist() == ["/api/mixed", "/api/orders", "/api/search", "/api/users", "ALL"]
    orders = run.samples[run.samples["endpoint"] == "/api/orders"]
    assert set(orders["method"]) == {"POST"}
    assert orders["status"].dropna().isin([201, 500]).all()


def test_vegeta_timestamps_with_offsets_and_nanoseconds_become_utc():
    first = vegeta_results()[0]
    run = loadtests.read(FIX / "vegeta_results.json")
    assert first["timestamp"].endswith("+01:00")
    stamp = pd.Timestamp(first["timestamp"]).tz_convert("UTC")
    assert run.samples["ts"].iloc[0] == stamp
    assert stamp.nanosecond or stamp.microsecond  # sub-second digits kept


def test_vegeta_json_and_csv_give_the_same_samples():
    from_json = loadtests.read(FIX / "vegeta_results.json").samples
    from_csv = loadtests.read(FIX / "vegeta_results.csv").samples
    columns = ["ts", "endpoint", "method", "latency_ms", "status", "ok"]
    pd.testing.assert_frame_equal(from_json[columns].astype(str), from_csv[columns].astype(str))
    assert from_json["error"].fillna("").tolist() == from_csv["error"].fillna("").tolist()


def test_vegeta_older_csv_layouts_and_results_without_url(tmp_path):
    rows = (FIX / "vegeta_results.csv").read_text().splitlines()
    path = tmp_path / "old.csv"
    # 9 fields (before method and URL were recorded): one endpoint, named after the attack
    path.write_text("\n".join(",".join(r.split(",")[:9]) for r in rows if r.count(",") == 11) + "\n")
    assert loadtests.detect(path) == "vegeta-csv"
    run = loadtests.read(path)
    assert run.summary["endpoint"].tolist() == ["perfkit", "ALL"]
    assert any("no URL" in n for n in run.notes)
    assert loadtests.read(path, endpoint="checkout").summary["endpoint"].iloc[0] == "checkout"


def test_vegeta_same_path_with_two_methods_names_both(tmp_path):
    lines = (FIX / "vegeta_results.json").read_text().splitlines()
    first = json.loads(lines[0])
    path = tmp_path / "two.json"
    path.write_text("\n".join([json.dumps(first), json.dumps({**first, "seq": 1, "method": "DELETE"})]) + "\n")
    run = loadtests.read(path)
    assert run.summary["endpoint"].tolist() == ["DELETE /api/users", "GET /api/users", "ALL"]


def test_vegeta_bad_input(tmp_path):
    lines = (FIX / "vegeta_results.json").read_text().splitlines()
    path = tmp_path / "cut.json"
    path.write_text("\n".join(lines[:120] + [lines[120][:70]] + lines[121:]) + "\n")
    assert loadtests.detect(path) == "vegeta-json"
    with pytest.raises(BadInputError, match=r"cut.json, line 121"):
        loadtests.read(path)
    run = loadtests.read(path, skip_bad_lines=True)
    assert run.skipped_lines == 1 and len(run.samples) == 249
    assert any("1 bad line(s) skipped" in n for n in run.notes)
    # the last line cut mid-write, and a line whose latency is not an integer
    path.write_text("\n".join(lines[:-1] + [lines[-1][:40]]))
    with pytest.raises(BadInputError, match=rf"line {len(lines)}"):
        loadtests.read(path)
    bad = json.loads(lines[3])
    bad["latency"] = "12ms"
    path.write_text("\n".join(lines[:3] + [json.dumps(bad)] + lines[4:]) + "\n")
    with pytest.raises(BadInputError, match=r"line 4"):
        loadtests.read(path)
    bad = json.loads(lines[3])
    bad["timestamp"] = "yesterday"
    path.write_text("\n".join(lines[:3] + [json.dumps(bad)] + lines[4:]) + "\n")
    with pytest.raises(BadInputError, match=r"line 4: vegeta result with an unreadable timestamp"):
        loadtests.read(path)
    assert len(loadtests.read(path, skip_bad_lines=True).samples) == 249
    path.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        loadtests.read(path, "vegeta-json")
    rows = (FIX / "vegeta_results.csv").read_text().splitlines()
    path = tmp_path / "cut.csv"
    path.write_text("\n".join(rows[:10] + [rows[10][:25]] + rows[11:]) + "\n")
    with pytest.raises(BadInputError, match=r"cut.csv, line 11"):
        loadtests.read(path)
    run = loadtests.read(path, skip_bad_lines=True)
    assert run.skipped_lines == 1 and len(run.samples) == 249


def test_vegeta_csv_reads_a_body_above_the_csv_field_limit(tmp_path):
    import base64
    import csv

    rows = (FIX / "vegeta_results.csv").read_text().splitlines()
    fields = rows[0].split(",")
    fields[6] = base64.b64encode(b"x" * 150_000).decode()  # 200,000 characters > 131,072
    path = tmp_path / "big.csv"
    path.write_text("\n".join([",".join(fields), *rows[1:]]) + "\n")
    limit = csv.field_size_limit()
    run = loadtests.read(path)
    assert len(run.samples) == 250 and run.skipped_lines == 0
    assert csv.field_size_limit() == limit  # the process-wide limit is restored


def test_vegeta_malformed_url_names_the_line(tmp_path):
    lines = (FIX / "vegeta_results.json").read_text().splitlines()
    bad = {**json.loads(lines[4]), "url": "http://[::1/api/users"}  # urlsplit: Invalid IPv6 URL
    path = tmp_path / "url.json"
    path.write_text("\n".join([*lines[:4], json.dumps(bad), *lines[5:]]) + "\n")
    with pytest.raises(BadInputError, match=r"url.json, line 5: .*Invalid IPv6 URL"):
        loadtests.read(path)
    assert loadtests.read(path, skip_bad_lines=True).skipped_lines == 1
    rows = (FIX / "vegeta_results.csv").read_text().splitlines()
    fields = rows[4].split(",")
    fields[10] = "http://[::1/api/users"
    path = tmp_path / "url.csv"
    path.write_text("\n".join([*rows[:4], ",".join(fields), *rows[5:]]) + "\n")
    with pytest.raises(BadInputError, match=r"url.csv, line 5: "):
        loadtests.read(path)


# --- command line -------------------------------------------------------------------------------
@pytest.fixture
def only_the_loadtest_command(monkeypatch):
    import perfkit.cli

    monkeypatch.setattr(perfkit.cli, "COMMANDS", ("loadtest",))


@pytest.mark.parametrize("name", ["hey_search.csv", "vegeta_results.json", "vegeta_results.csv"])
def test_cli_reads_hey_and_vegeta(only_the_loadtest_command, capsys, name):
    assert main(["loadtest", str(FIX / name)]) == 0
    out = capsys.readouterr().out
    tool = name.split("_")[0]
    assert f"{tool} ({loadtests.detect(FIX / name)})" in out
    assert "ALL" in out and "p95_ms" in out and "note:" in out
    assert main(["loadtest", "--json", str(FIX / name)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["tool"] == tool
    assert doc["results"][0]["summary"][-1]["endpoint"] == "ALL"


def test_cli_skip_bad_lines_for_vegeta(only_the_loadtest_command, tmp_path, capsys):
    lines = (FIX / "vegeta_results.json").read_text().splitlines()
    path = tmp_path / "cut.json"
    path.write_text("\n".join(lines[:5] + [lines[5][:50]] + lines[6:]) + "\n")
    assert main(["loadtest", str(path)]) == 2
    assert "line 6" in capsys.readouterr().err
    assert main(["loadtest", "--skip-bad-lines", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["skipped_lines"] == 1


def test_vegeta_note_says_perfkit_is_stricter_than_vegetas_success(tmp_path):
    lines = (FIX / "vegeta_results.json").read_text().splitlines()
    first = json.loads(lines[0])
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({**first, "code": 200, "error": "read: connection reset"}) + "\n")
    run = loadtests.read(path)
    assert run.tool_figures["success"] == 1.0 and run.summary["failures"].iloc[-1] == 1
    note = next(n for n in run.notes if n.startswith("failures are"))
    assert "or an error" in note and "code only" in note
    assert "what vegeta counts as failed" not in note


def test_docs_and_help_list_gatling_hey_and_vegeta(only_the_loadtest_command, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Gatling" in out and "hey" in out and "vegeta" in out
    for tool in ("Gatling", "hey", "vegeta"):
        assert tool in loadtests.__doc__.splitlines()[0] + loadtests.__doc__.splitlines()[1]
    docs = (Path(__file__).parent.parent / "docs" / "README-loadtests.md").read_text().splitlines()
    for number, line in enumerate(docs[1:], start=1):
        if line.startswith("#"):
            assert docs[number - 1] == "", f"no blank line before {line!r}"
    assert "(vegeta's success)" not in "\n".join(docs)


def test_http_ok_is_perfkits_success_rule():
    from perfkit.loadtests.run import http_ok

    codes = [0, 199, 200, 204, 302, 399, 400, 404, 500, 599, np.nan]
    assert http_ok(codes).tolist() == [False, False, True, True, True, True, False, False, False,
                                       False, False]
    assert http_ok(np.array([200, 503], dtype=np.int64)).tolist() == [True, False]
