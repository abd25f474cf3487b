"""Readers of load-test outputs: real files from the real tools, agreement with their own figures,
and one test per trap from issue 8."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfkit import loadtests
from perfkit.errors import BadInputError, PerfkitError
from perfkit.loadtests import artillery, jmeter, k6, locust, pgbench, wrk
from perfkit.loadtests.frames import SAMPLE_COLUMNS, SUMMARY_COLUMNS

FIX = Path(__file__).parent / "fixtures" / "loadtests"

# (fixture, detected format, has samples): every fixture each reader module declares is read
CASES = [(name, declared.name, declared.gives == "samples")
         for declared in loadtests.FORMATS.values() for name in declared.fixtures]


@pytest.mark.parametrize("name, fmt, has_samples", CASES)
def test_every_fixture_is_detected_and_read_into_the_contract(name, fmt, has_samples):
    run = loadtests.read(FIX / name)
    assert loadtests.detect(FIX / name) == fmt
    assert run.format.startswith(fmt.split("-")[0])
    assert list(run.samples.columns) == SAMPLE_COLUMNS
    assert list(run.summary.columns) == SUMMARY_COLUMNS
    assert run.summary["endpoint"].iloc[-1] == "ALL"
    assert run.has_samples is has_samples
    assert run.percentiles_from == ("samples" if has_samples else run.percentiles_from)
    if has_samples:
        assert str(run.samples["ts"].dtype) == "datetime64[ns, UTC]"
        assert run.samples["ts"].is_monotonic_increasing or run.tool == "k6"
        assert int(run.summary["requests"].iloc[-1]) == len(run.samples)
    else:
        assert run.percentiles_from in ("tool", "histogram")
    assert run.notes, "every reader says something about its tool"


# --- k6 -----------------------------------------------------------------------------------------
def test_k6_json_percentiles_and_counts_agree_with_k6_summary():
    run = loadtests.read(FIX / "k6_points.ndjson")
    export = json.loads((FIX / "k6_summary_export.json").read_text())["metrics"]
    all_row = run.summary.iloc[-1]
    assert all_row["requests"] == export["http_reqs"]["count"]
    # trap: http_req_failed is a rate of failures, its "passes" count the FAILED requests
    assert all_row["failures"] == export["http_req_failed"]["passes"]
    trend = export["http_req_duration"]
    for column, key in [("mean_ms", "avg"), ("p50_ms", "med"), ("p90_ms", "p(90)"),
                        ("p95_ms", "p(95)"), ("max_ms", "max")]:
        assert all_row[column] == pytest.approx(trend[key], rel=1e-9)
    # per endpoint, against the submetrics http_req_duration{name:...}
    for row in run.summary.iloc[:-1].itertuples():
        sub = export[f"http_req_duration{{name:{row.endpoint}}}"]
        assert row.p95_ms == pytest.approx(sub["p(95)"], rel=1e-9)


def test_k6_summary_export_threshold_booleans_are_inverted():
    # trap: in --summary-export a threshold's value is true when it FAILED
    raw = json.loads((FIX / "k6_summary_export.json").read_text())["metrics"]
    assert raw["http_req_duration"]["thresholds"]["p(95)<50"] is True  # p95 ~64 ms: failed
    export = loadtests.read(FIX / "k6_summary_export.json")
    handle = loadtests.read(FIX / "k6_handle_summary.json")
    for run in (export, handle):
        verdicts = {t["threshold"]: t["ok"] for t in run.tool_figures["thresholds"]}
        assert verdicts == {"p(95)<50": False, "rate<0.5": True}
        assert any("thresholds failed" in n for n in run.notes)
    pd.testing.assert_frame_equal(export.summary, handle.summary)


def test_k6_csv_default_timestamps_are_whole_seconds():
    seconds = loadtests.read(FIX / "k6_results.csv")
    millis = loadtests.read(FIX / "k6_results_ms.csv")
    assert (seconds.samples["ts"].dt.microsecond == 0).all()
    assert (millis.samples["ts"].dt.microsecond != 0).any()
    assert any("whole seconds" in n for n in seconds.notes)
    # the counts and latencies are the same data
    for column in ("requests", "failures", "p50_ms", "p99_ms", "max_ms"):
        assert seconds.summary[column].tolist() == pytest.approx(millis.summary[column].tolist(), rel=1e-6)


def test_k6_json_and_csv_give_the_same_samples():
    ndjson = loadtests.read(FIX / "k6_points.ndjson").samples
    csv = loadtests.read(FIX / "k6_results_ms.csv").samples
    assert len(ndjson) == len(csv) == 90
    assert sorted(ndjson["latency_ms"].round(6)) == sorted(csv["latency_ms"].round(6))
    assert ndjson["ok"].sum() == csv["ok"].sum() == 70
    assert set(ndjson["method"].astype(str)) == {"GET", "POST"}


def test_k6_time_zone_offsets_are_normalized_to_utc():
    first = (FIX / "k6_points.ndjson").read_text().splitlines()
    point = next(json.loads(line) for line in first if '"http_req_duration"' in line and '"Point"' in line)
    assert point["data"]["time"].endswith("+01:00")
    run = loadtests.read(FIX / "k6_points.ndjson")
    end = pd.Timestamp(point["data"]["time"]).tz_convert("UTC")
    start = end - pd.Timedelta(milliseconds=point["data"]["value"])
    assert (abs(run.samples["ts"] - start) < pd.Timedelta(microseconds=1)).any()


def test_k6_json_filter_ignores_other_metrics_and_metric_lines(tmp_path):
    lines = [
        '{"type":"Metric","data":{"type":"trend","contains":"time"},"metric":"http_req_duration"}',
        '{"metric":"http_req_waiting","type":"Point","data":{"time":"2024-01-01T00:00:00Z","value":5,'
        '"tags":{"name":"http_req_duration","status":"200"}}}',
        '{"metric":"http_req_duration","type":"Point","data":{"time":"2024-01-01T00:00:01Z","value":7.5,'
        '"tags":{"name":"/a","method":"GET","status":"0","error":"dial: i/o timeout","error_code":"1050"}}}',
    ]
    path = tmp_path / "x.json"
    path.write_text("\n".join(lines) + "\n")
    run = k6.read_json(path)
    assert len(run.samples) == 1
    row = run.samples.iloc[0]
    assert row["latency_ms"] == 7.5 and row["status"] == 0 and not row["ok"]
    assert row["error"] == "dial: i/o timeout"


# --- Locust -------------------------------------------------------------------------------------
def test_locust_csv_lags_the_json_written_at_shutdown():
    csv = loadtests.read(FIX / "locust_stats.csv")
    js = loadtests.read(FIX / "locust.json")
    n_csv, n_json = int(csv.summary["requests"].iloc[-1]), int(js.summary["requests"].iloc[-1])
    assert n_json > n_csv  # trap: the CSV is rewritten once a second and missed the last second
    assert any("once a second" in n for n in csv.notes)
    # history (read through the sibling file) ends at the CSV's totals
    assert int(csv.history["requests_total"].iloc[-1]) == n_csv
    assert csv.history["users"].max() == 6


def test_locust_percentiles_are_bucket_values():
    js = loadtests.read(FIX / "locust.json")
    csv = loadtests.read(FIX / "locust_stats.csv")
    assert any("buckets" in n for n in js.notes)
    for column in ("p50_ms", "p90_ms", "p95_ms", "p99_ms"):
        values = pd.concat([js.summary[column], csv.summary[column]]).dropna()
        assert (values == values.round()).all()  # whole milliseconds (or 10 ms above 100)
        assert ((values < 100) | (values % 10 == 0)).all()
    # same run, the JSON one second later: percentiles agree within a bucket or two
    both = js.summary.merge(csv.summary, on="endpoint", suffixes=("_j", "_c"))
    for row in both.itertuples():
        width = 1 if row.p50_ms_c < 100 else 10
        assert abs(row.p50_ms_j - row.p50_ms_c) <= 2 * width


def test_locust_percentile_follows_locusts_own_method():
    # Locust: walk buckets from the slowest; the first where the rest is <= int(n * p)
    # (expected values computed with locust.stats.calculate_response_time_percentile, Locust 2.47)
    buckets = {10: 50, 20: 30, 100: 15, 500: 5}
    assert [locust.locust_percentile(buckets, 100, p) for p in (0.5, 0.8, 0.95, 0.99)] == [20, 100, 500, 500]
    expected = {"/api/users": [6, 8, 9, 29], "/api/search": [13, 16, 17, 18], "/api/missing": [3, 4, 4, 5],
                "/api/reports": [55, 79, 81, 400], "/api/orders": [18, 22, 22, 23], "ALL": [10, 54, 68, 81]}
    summary = loadtests.read(FIX / "locust.json").summary.set_index("endpoint")
    for endpoint, values in expected.items():
        assert summary.loc[endpoint, ["p50_ms", "p90_ms", "p95_ms", "p99_ms"]].tolist() == values


def test_locust_failures_are_counted_as_locust_counts_them():
    csv = loadtests.read(FIX / "locust_stats.csv")
    failures = csv.tool_figures["failures"]
    by_name = {}
    for row in failures:
        by_name[row["Name"]] = by_name.get(row["Name"], 0) + row["Occurrences"]
    summary = csv.summary.set_index("endpoint")
    for name, count in by_name.items():
        assert summary.loc[name, "failures"] == count


# --- Artillery ----------------------------------------------------------------------------------
def test_artillery_counts_5xx_from_codes_and_errors_from_errors():
    run = loadtests.read(FIX / "artillery_report.json")
    report = json.loads((FIX / "artillery_report.json").read_text())["aggregate"]
    counters = report["counters"]
    all_row = run.summary.iloc[-1]
    assert all_row["requests"] == counters["http.requests"]
    errors = sum(v for k, v in counters.items() if k.startswith("errors."))
    bad = sum(v for k, v in counters.items() if re.match(r"http\.codes\.[45]\d\d$", k))
    assert errors > 0 and bad > 0
    assert run.tool_figures["errors"] == errors  # Artillery's own count: transport errors only
    assert all_row["failures"] == errors + bad  # trap: 5xx are not errors for Artillery
    assert run.summary.iloc[:-1]["requests"].sum() == all_row["requests"]
    assert all_row["p95_ms"] == report["summaries"]["http.response_time"]["p95"]
    assert any("first byte" in n for n in run.notes)


def test_artillery_period_is_a_number_in_aggregate_and_a_string_in_intermediate():
    doc = json.loads((FIX / "artillery_report.json").read_text())
    assert isinstance(doc["aggregate"]["period"], int)
    assert isinstance(doc["intermediate"][0]["period"], str)
    run = loadtests.read(FIX / "artillery_report.json")
    assert str(run.history["ts"].dtype) == "datetime64[ns, UTC]"
    assert artillery._period_ts(doc["aggregate"]["period"]) == artillery._period_ts(str(doc["aggregate"]["period"]))
    assert run.history["requests"].sum() == doc["aggregate"]["counters"]["http.requests"]
    assert run.closed_loop is False


# --- ab -----------------------------------------------------------------------------------------
def test_ab_text_counts_and_length_failures():
    run = loadtests.read(FIX / "ab_search.txt")
    text = (FIX / "ab_search.txt").read_text()
    complete = int(re.search(r"Complete requests:\s+(\d+)", text).group(1))
    non2xx = int(re.search(r"Non-2xx responses:\s+(\d+)", text).group(1))
    assert run.summary["requests"].iloc[-1] == complete
    assert run.summary["failures"].iloc[-1] == non2xx
    assert run.tool_figures["length"] > 0
    assert any("Length failure" in n for n in run.notes)
    table = {int(p): float(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", text, re.M)}
    assert run.summary["p95_ms"].iloc[-1] == table[95]


def test_ab_gnuplot_rows_are_sorted_by_total_time_not_start():
    raw = pd.read_csv(FIX / "ab_gnuplot.tsv", sep="\t")
    assert raw["ttime"].is_monotonic_increasing
    assert not raw["seconds"].is_monotonic_increasing  # trap: not in start order
    run = loadtests.read(FIX / "ab_gnuplot.tsv")
    assert run.samples["ts"].is_monotonic_increasing
    assert run.samples["ok"].isna().all() and pd.isna(run.summary["failures"].iloc[-1])


def test_ab_percentiles_from_samples_agree_with_abs_own_table():
    samples = loadtests.read(FIX / "ab_gnuplot.tsv").summary.iloc[-1]
    text = loadtests.read(FIX / "ab_search.txt").summary.iloc[-1]
    csv = loadtests.read(FIX / "ab_percentiles.csv").summary.iloc[-1]
    assert samples["requests"] == text["requests"] == 300
    for column in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"):
        assert abs(samples[column] - text[column]) <= 1.0  # ab rounds to whole ms
        assert abs(samples[column] - csv[column]) <= 1.0
    assert abs(samples["mean_ms"] - text["mean_ms"]) <= 0.5


# --- wrk ----------------------------------------------------------------------------------------
def test_wrk_units_are_scaled_to_ms():
    assert wrk.to_ms("812.00", "us") == pytest.approx(0.812)
    assert wrk.to_ms("1.54", "s") == pytest.approx(1540)
    assert wrk.to_ms("2", "m") == 120_000
    seconds = loadtests.read(FIX / "wrk_seconds.txt").summary.iloc[-1]
    assert seconds["max_ms"] >= 1000  # printed in s
    text = (FIX / "wrk_seconds.txt").read_text()
    printed = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)s", text)
    assert printed and seconds["max_ms"] == pytest.approx(float(printed.group(1)) * 1000)


def test_wrk_timeouts_are_dropped_from_latency_but_counted_as_failures():
    run = loadtests.read(FIX / "wrk_timeouts.txt")
    text = (FIX / "wrk_timeouts.txt").read_text()
    timeouts = int(re.search(r"timeout (\d+)", text).group(1))
    completed = int(re.search(r"(\d+) requests in", text).group(1))
    assert timeouts > 0
    row = run.summary.iloc[-1]
    assert row["requests"] == completed + timeouts
    assert row["failures"] >= timeouts
    assert row["max_ms"] < 1000  # the 1.5 s requests timed out at 1 s and are not in latency
    assert any("timed out" in n for n in run.notes)


def test_wrk_non_2xx_are_failures():
    run = loadtests.read(FIX / "wrk_missing.txt")
    assert run.summary["error_rate"].iloc[-1] == 1.0


# --- JMeter -------------------------------------------------------------------------------------
def test_jmeter_variants_read_the_same_and_skip_transaction_controller_rows():
    runs = [loadtests.read(FIX / name) for name in
            ("jmeter_header.jtl", "jmeter_noheader.jtl", "jmeter_semicolon.jtl", "jmeter.xml.jtl")]
    rows = sum(1 for line in (FIX / "jmeter_noheader.jtl").read_text().splitlines() if re.match(r"^\d{13},", line))
    transactions = (FIX / "jmeter_noheader.jtl").read_text().count("Number of samples in transaction")
    assert transactions > 0
    for run in runs:
        assert len(run.samples) == rows - transactions  # trap: TC rows would double-count
        assert "checkout" not in set(run.samples["endpoint"].astype(str))
        assert any("Transaction Controller" in n for n in run.notes)
        pd.testing.assert_frame_equal(run.summary, runs[0].summary)
        assert run.samples["ts"].tolist() == runs[0].samples["ts"].tolist()


def test_jmeter_multiline_failure_messages_survive():
    for name in ("jmeter_header.jtl", "jmeter_semicolon.jtl", "jmeter.xml.jtl"):
        run = loadtests.read(FIX / name)
        errors = set(run.samples["error"].dropna())
        assert "search unavailable\nretry later" in errors, name


def test_jmeter_headerless_custom_columns_need_column_names(tmp_path):
    path = tmp_path / "custom.jtl"
    path.write_text("1700000000000|15|home|200|true\n1700000000100|25|home|500|false\n")
    with pytest.raises(BadInputError, match="columns="):
        jmeter.read_csv(path)
    run = jmeter.read_csv(path, columns=["timeStamp", "elapsed", "label", "responseCode", "success"])
    assert run.summary["failures"].iloc[-1] == 1 and run.summary["max_ms"].iloc[-1] == 25


# --- pgbench ------------------------------------------------------------------------------------
def _report_number(name: str, pattern: str) -> float:
    return float(re.search(pattern, (FIX / name).read_text(), re.M).group(1))


def test_pgbench_log_counts_and_means_agree_with_the_report():
    run = loadtests.read(FIX / "pgbench_tx.log")
    processed = _report_number("pgbench_report.txt", r"^number of transactions actually processed: (\d+)")
    failed = _report_number("pgbench_report.txt", r"^number of failed transactions: (\d+)")
    assert run.tool_figures["processed"] == processed
    assert run.tool_figures["failed"] == failed
    assert run.summary["failures"].iloc[-1] == failed
    mean = _report_number("pgbench_report.txt", r"^latency average = ([\d.]+) ms")
    assert run.summary["mean_ms"].iloc[-1] == pytest.approx(mean, abs=0.0015)  # report rounds to µs
    report = loadtests.read(FIX / "pgbench_report.txt").summary
    assert len(report) == 3
    assert sorted(report["requests"].iloc[:-1]) == sorted(run.summary["requests"].iloc[:-1])


def test_pgbench_skipped_and_failed_latencies():
    run = loadtests.read(FIX / "pgbench_skipped.log")
    skipped = _report_number("pgbench_skipped_report.txt", r"^number of transactions skipped: (\d+)")
    processed = _report_number("pgbench_skipped_report.txt", r"^number of transactions actually processed: (\d+)")
    assert run.tool_figures["skipped"] == skipped > 0
    assert (run.samples["error"] == "skipped").sum() == skipped
    assert run.samples["ok"].sum() == processed
    assert run.samples.loc[run.samples["error"] == "skipped", "latency_ms"].isna().all()
    # --failures-detailed writes the kind ("serialization") where a plain run writes "failed"
    tx = loadtests.read(FIX / "pgbench_tx.log")
    assert set(tx.samples["error"].dropna()) == {"serialization"}


def test_pgbench_timestamp_is_completion_time(tmp_path):
    path = tmp_path / "tx.log"
    path.write_text("0 1 250000 0 1700000000 500000\n0 2 failed 0 1700000001 0\n")
    run = pgbench.read_log(path)
    first = run.samples.iloc[0]
    assert first["latency_ms"] == 250
    assert first["ts"] == pd.Timestamp("2023-11-14 22:13:20.250000", tz="UTC")  # 20.5 s - 250 ms
    assert run.samples["error"].isna().tolist() == [True, False]
    assert run.samples["error"].iloc[1] == "failed"
    assert run.closed_loop is True


def test_pgbench_aggregate_logs_before_and_after_pg15(tmp_path):
    pg15 = loadtests.read(FIX / "pgbench_aggregate.log")
    assert pg15.tool_figures["columns"] == 15
    raw = np.loadtxt(FIX / "pgbench_aggregate.log")
    assert pg15.summary["requests"].iloc[-1] == raw[:, 1].sum()
    assert pg15.summary["mean_ms"].iloc[-1] == pytest.approx(raw[:, 2].sum() / raw[:, 1].sum() / 1000)
    # the documented pre-15 layouts: 6 columns; 11 with --rate and --latency-limit
    six = tmp_path / "six.log"
    six.write_text("1700000000 100 50000 30000000 200 2000\n1700000001 120 66000 40000000 210 1500\n")
    eleven = tmp_path / "eleven.log"
    eleven.write_text("1700000000 100 50000 30000000 200 2000 900 9000 1 50 3\n")
    run6 = loadtests.read(six)
    run11 = loadtests.read(eleven)
    assert run6.format == run11.format == "pgbench-aggregate"
    assert run6.summary["requests"].iloc[-1] == 220
    assert run6.summary["max_ms"].iloc[-1] == 2.0
    assert run11.summary["failures"].iloc[-1] == 3  # skipped
    assert any("before PostgreSQL 15" in n for n in run6.notes)


# --- bad input ----------------------------------------------------------------------------------
def test_unknown_format_lists_the_supported_ones(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(BadInputError) as err:
        loadtests.read(path)
    assert "k6-json" in str(err.value) and "pgbench-log" in str(err.value)
    with pytest.raises(BadInputError, match="supported formats"):
        loadtests.read(FIX / "locust.json", format="gatling")


@pytest.mark.parametrize("name", ["k6_points.ndjson", "artillery_report.json", "jmeter_header.jtl", "wrk_missing.txt"])
def test_an_empty_result_file_is_a_clear_error(tmp_path, name):
    path = tmp_path / name
    path.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        loadtests.read(path, loadtests.detect(FIX / name))


def _truncate_line(lines: list[str], index: int) -> list[str]:
    lines = list(lines)
    lines[index] = lines[index][: len(lines[index]) // 2]
    return lines


def test_truncated_ndjson_names_the_line_or_skips_it(tmp_path):
    lines = (FIX / "k6_points.ndjson").read_text().splitlines()
    index = next(i for i in range(200, len(lines)) if '"http_req_duration"' in lines[i])
    path = tmp_path / "cut.json"
    path.write_text("\n".join(_truncate_line(lines, index)) + "\n")
    with pytest.raises(BadInputError, match=rf"cut.json, line {index + 1}:"):
        loadtests.read(path)
    run = loadtests.read(path, skip_bad_lines=True)
    assert run.skipped_lines == 1
    assert len(run.samples) == 89  # the rows before and after are kept
    # the classic truncation: the last line cut mid-write
    path.write_text("\n".join(lines[:-40] + [lines[-40][:30]]))
    with pytest.raises(BadInputError, match=rf"line {len(lines) - 39}"):
        loadtests.read(path)


def test_truncated_csv_names_the_line_or_skips_it(tmp_path):
    lines = (FIX / "k6_results_ms.csv").read_text().splitlines()
    index = next(i for i in range(100, len(lines)) if lines[i].startswith("http_req_duration,"))
    path = tmp_path / "cut.csv"
    cut = list(lines)
    cut[index] = "http_req_duration,1795466"
    path.write_text("\n".join(cut) + "\n")
    with pytest.raises(BadInputError, match=rf"line {index + 1}"):
        loadtests.read(path)
    run = loadtests.read(path, skip_bad_lines=True)
    assert len(run.samples) == 89 and run.skipped_lines >= 1


def test_truncated_jtl_and_pgbench_log_name_the_line(tmp_path):
    lines = (FIX / "jmeter_header.jtl").read_text().splitlines()
    index = next(i for i in range(40, len(lines)) if ",users," in lines[i])
    path = tmp_path / "cut.jtl"
    path.write_text("\n".join(lines[:index] + [lines[index][:20]] + lines[index + 1:]) + "\n")
    with pytest.raises(BadInputError, match=rf"cut.jtl, line {index + 1}"):
        loadtests.read(path)
    assert len(loadtests.read(path, skip_bad_lines=True).samples) == 119
    log = (FIX / "pgbench_tx.log").read_text().splitlines()
    path = tmp_path / "cut.log"
    path.write_text("\n".join(log[:10] + ["3 17 1"] + log[10:]) + "\n")
    with pytest.raises(BadInputError, match=r"cut.log, line 11"):
        loadtests.read(path)
    assert len(loadtests.read(path, skip_bad_lines=True).samples) == len(log)


def test_errors_are_one_line_perfkit_errors(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"aggregate": {"counters": {"http.requests": "x"}}, "intermediate": []}')
    with pytest.raises(PerfkitError) as err:
        loadtests.read(path)
    assert "\n" not in str(err.value) and "broken.json" in str(err.value)


def test_gzipped_k6_output_is_read_through(tmp_path):
    import gzip

    path = tmp_path / "out.json.gz"
    path.write_bytes(gzip.compress((FIX / "k6_points.ndjson").read_bytes()))
    assert len(loadtests.read(path).samples) == 90


def test_latest_picks_the_newest_file(tmp_path):
    import os

    for i, name in enumerate(["b.json", "a.json", "c.json"]):
        shutil.copy(FIX / "artillery_report.json", tmp_path / name)
        os.utime(tmp_path / name, (1_700_000_000 + i, 1_700_000_000 + i))
    assert loadtests.latest(tmp_path).name == "c.json"
    with pytest.raises(BadInputError):
        loadtests.latest(tmp_path / "missing")


def test_cli_format_names_match_the_readers():
    from perfkit.commands.loadtest import FORMAT_NAMES
    from perfkit.loadtests.formats import FORMATS

    assert FORMAT_NAMES == tuple(FORMATS)
