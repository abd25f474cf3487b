"""SLO verdicts, flags, run-vs-run comparison, charts and the ``perfkit loadtest`` command."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from perfkit import loadtests
from perfkit.cli import main
from perfkit.errors import BadInputError
from perfkit.loadtests import analysis
from perfkit.loadtests.frames import samples_frame, summarize
from perfkit.loadtests.run import LoadTestRun
from perfkit.loadtests.slo import verdict

matplotlib.use("Agg")
FIX = Path(__file__).parent / "fixtures" / "loadtests"


def synthetic_run(latencies, *, endpoint="/api/x", ok=None, start="2024-01-01", spacing_ms=10.0, tool="k6",
                  closed_loop=None) -> LoadTestRun:
    latencies = np.asarray(latencies, dtype=float)
    ts = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(latencies.size) * spacing_ms, unit="ms")
    samples = samples_frame(ts=ts, endpoint=[endpoint] * latencies.size, latency_ms=latencies,
                            ok=np.ones(latencies.size, bool) if ok is None else ok, tool=tool, source="mem")
    return LoadTestRun(samples=samples, summary=summarize(samples), tool=tool, format="synthetic",
                       source="mem", percentiles_from="samples", closed_loop=closed_loop)


# --- SLO ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, target, critical, higher, expected", [
    (400, 500, 1000, False, "pass"),
    (500, 500, 1000, False, "warning"),
    (1000, 500, 1000, False, "warning"),
    (1001, 500, 1000, False, "critical"),
    (0.02, 0.01, 0.05, False, "warning"),
    (0.06, 0.01, 0.05, False, "critical"),
    (150, 100, 50, True, "pass"),
    (75, 100, 50, True, "warning"),
    (49, 100, 50, True, "critical"),
    (float("nan"), 500, 1000, False, "n/a"),
])
def test_verdicts_follow_the_design_table(value, target, critical, higher, expected):
    assert verdict(value, target, critical, higher) == expected


def test_default_slo_on_a_real_run():
    run = loadtests.read(FIX / "locust.json")
    verdicts = loadtests.slo(run)
    table = verdicts.set_index(["endpoint", "metric"])["verdict"]
    assert table[("ALL", "error_rate")] == "critical"  # 11.7 % errors
    assert table[("/api/search", "error_rate")] == "warning"  # 5.0 %: not above 5 %
    assert table[("ALL", "p95_ms")] == "pass"
    assert ("/api/users", "rps") not in table.index  # throughput is judged on ALL only
    findings = loadtests.slo_findings(verdicts, run.summary)
    assert set(findings["kind"]) == {"slo_breach"}
    assert findings["severity"].iloc[0] == "critical"


def test_slo_toml_with_endpoint_classes(tmp_path):
    path = tmp_path / "slo.toml"
    path.write_text("""
[defaults]
error_rate = { target = 0.2, critical = 0.5 }

[classes.read_simple]
match = ["/api/users*", "/api/search"]
p95_ms = { target = 5, critical = 8 }

[classes.read_complex]
match = ["re:^/api/rep"]
p95_ms = { target = 50, critical = 100 }
rps = { target = 50, critical = 10 }
""")
    run = loadtests.read(FIX / "locust.json")
    table = loadtests.slo(run, path).set_index(["endpoint", "metric"])
    assert table.loc[("/api/users", "p95_ms"), "class"] == "read_simple"
    assert table.loc[("/api/users", "p95_ms"), "verdict"] == "critical"  # 9 ms > 8
    assert table.loc[("/api/reports", "p95_ms"), "verdict"] == "warning"  # 81 ms
    assert table.loc[("/api/reports", "rps"), "verdict"] == "warning"  # 22.6 req/s
    assert table.loc[("ALL", "error_rate"), "verdict"] == "pass"  # 11.7 % < 20 %
    assert table.loc[("/api/missing", "error_rate"), "verdict"] == "critical"


@pytest.mark.parametrize("text, message", [
    ("[defaults\n", "line 1"),
    ("[defaults]\np95 = { target = 1, critical = 2 }\n", "unknown metric"),
    ("[defaults]\np95_ms = 500\n", "target and critical"),
    ("[defaults]\nerror_rate = { target = 1, critical = 5 }\n", "fraction"),
    ("[defaults]\np95_ms = { target = 900, critical = 100 }\n", "beyond target"),
    ("[classes.write]\np95_ms = { target = 1, critical = 2 }\n", "match"),
    ("[slo]\n", "unknown section"),
])
def test_bad_slo_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "slo.toml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as err:
        loadtests.load_targets(path)
    assert "slo.toml" in str(err.value) and "\n" not in str(err.value)


def test_slo_class_methods_use_the_samples():
    run = loadtests.read(FIX / "k6_points.ndjson")
    targets = {"classes": {"write": {"match": ["*"], "methods": ["POST"],
                                     "p95_ms": {"target": 1, "critical": 2}}}}
    table = loadtests.slo(run, targets)
    classes = table.drop_duplicates("endpoint").set_index("endpoint")["class"]
    assert classes[[e for e in classes.index if e.endswith("/api/orders")][0]] == "write"
    assert classes[[e for e in classes.index if e.endswith("/api/users")][0]] == ""


# --- flags --------------------------------------------------------------------------------------
def test_high_variance_when_max_is_ten_times_the_mean():
    run = synthetic_run([10.0] * 99 + [1500.0])
    kinds = analysis.flags(run)
    assert "high_variance" in set(kinds["kind"])
    calm = synthetic_run([10.0] * 99 + [50.0])
    assert "high_variance" not in set(analysis.flags(calm)["kind"])


def test_coordinated_omission_for_closed_loop_tools_only():
    closed = loadtests.read(FIX / "wrk_missing.txt")
    open_ = loadtests.read(FIX / "artillery_report.json")
    assert "coordinated_omission" in set(analysis.flags(closed)["kind"])
    assert "coordinated_omission" not in set(analysis.flags(open_)["kind"])
    assert any("coordinated omission" in n for n in closed.notes)


def test_degradation_when_latency_grows_with_load_and_throughput_does_not():
    # 30 s at a steady 50 req/s; latency climbs from 20 ms to 400 ms (concurrency 1 -> 20)
    rows = []
    for second in range(30):
        latency = 20 + second * 13
        rows += [latency] * 50
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.repeat(np.arange(30), 50) * 1000
                                                                 + np.tile(np.arange(50) * 20, 30), unit="ms")
    samples = samples_frame(ts=ts, endpoint=["/x"] * len(rows), latency_ms=rows, ok=[True] * len(rows),
                            tool="k6", source="mem")
    run = LoadTestRun(samples=samples, summary=summarize(samples), tool="k6", format="x", source="mem",
                      percentiles_from="samples")
    assert "throughput_degradation" in set(analysis.flags(run)["kind"])
    steady = synthetic_run(np.full(1500, 20.0), spacing_ms=20)
    assert "throughput_degradation" not in set(analysis.flags(steady)["kind"])


def test_error_burst_is_found_in_time():
    ok = np.ones(3000, bool)
    ok[1500:1560] = False  # 60 failures inside one second of a 30 s run
    run = synthetic_run(np.full(3000, 5.0), ok=ok)
    burst = analysis.flags(run)
    assert "error_burst" in set(burst["kind"])
    spread = np.ones(3000, bool)
    spread[::50] = False
    assert "error_burst" not in set(analysis.flags(synthetic_run(np.full(3000, 5.0), ok=spread))["kind"])


# --- compare ------------------------------------------------------------------------------------
def test_compare_a_run_with_itself_finds_nothing():
    run = loadtests.read(FIX / "jmeter_header.jtl")
    result = loadtests.compare(run, run, n_boot=200)
    assert result.findings.empty
    row = result.table.set_index("endpoint").loc["ALL"]
    assert row["p95_diff_low"] <= 0 <= row["p95_diff_high"]


def test_compare_finds_a_p95_regression_with_an_interval_excluding_zero():
    rng = np.random.default_rng(1)
    a = synthetic_run(rng.lognormal(3, 0.3, 2000))
    b = synthetic_run(rng.lognormal(3, 0.3, 2000) * 1.5)
    result = loadtests.compare(a, b, n_boot=300)
    regression = result.findings[result.findings["kind"] == "regression"]
    assert set(regression["subject"]) == {"/api/x", "ALL"}
    row = result.table.set_index("endpoint").loc["ALL"]
    assert row["p95_diff_low"] > 0 and row["p95_change"] == pytest.approx(0.5, abs=0.15)


def test_compare_ignores_a_real_but_small_change():
    rng = np.random.default_rng(2)
    base = rng.lognormal(3, 0.2, 20000)
    a, b = synthetic_run(base), synthetic_run(base * 1.04)  # +4 %: certain, under the 10 % threshold
    result = loadtests.compare(a, b, n_boot=200)
    assert result.table["p95_diff_low"].iloc[-1] > 0
    assert result.findings.empty


def test_compare_error_rate_regression_and_aggregate_runs():
    a = loadtests.read(FIX / "k6_summary_export.json")
    good = synthetic_run(np.full(1000, 5.0))
    ok = np.ones(1000, bool)
    ok[:100] = False
    bad = synthetic_run(np.full(1000, 5.0), ok=ok)
    found = loadtests.compare(good, bad, n_boot=50).findings
    assert (found["kind"] == "regression").any() and found["evidence"].str.contains("error rate").any()
    result = loadtests.compare(a, a)  # aggregates only: no interval, no p95 regression
    assert result.table["p95_diff_low"].isna().all() and result.findings.empty


# --- charts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["k6_points.ndjson", "locust_stats.csv", "artillery_report.json", "wrk_missing.txt"])
def test_charts_return_figures(name):
    from matplotlib.figure import Figure

    from perfkit import charts

    run = loadtests.read(FIX / name)
    for chart in (charts.latency_over_time, charts.throughput_over_time, charts.latency_cdf,
                  charts.latency_histogram):
        fig = chart(run)
        assert isinstance(fig, Figure) and fig.axes
    if run.has_samples:
        assert len(charts.latency_cdf(run).axes[0].lines) == run.samples["endpoint"].nunique()


# --- command line -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def only_the_loadtest_command(monkeypatch):
    # the other subcommands live in modules written elsewhere; parse with this one alone
    import perfkit.cli

    monkeypatch.setattr(perfkit.cli, "COMMANDS", ("loadtest",))


def test_cli_prints_the_summary_with_verdicts(capsys):
    assert main(["loadtest", str(FIX / "locust.json")]) == 0
    out = capsys.readouterr().out
    assert "/api/reports" in out and "ALL" in out and "critical" in out and "p95_ms" in out


def test_cli_ci_exit_codes(tmp_path, capsys):
    assert main(["loadtest", "--ci", str(FIX / "locust.json")]) == 1  # critical error rate
    lenient = tmp_path / "slo.toml"
    lenient.write_text("[defaults]\nerror_rate = { target = 0.5, critical = 0.9 }\n"
                       "rps = { target = 1, critical = 0.5 }\n")
    assert main(["loadtest", "--ci", "--slo", str(lenient), str(FIX / "ab_reports.txt")]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{\"nope\": 1}")
    assert main(["loadtest", "--ci", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and err.count("\n") == 1


def test_cli_json_html_and_latest(tmp_path, capsys):
    import os
    import shutil

    folder = tmp_path / "runs"
    folder.mkdir()
    for i, name in enumerate(["k6_points.ndjson", "pgbench_tx.log"]):
        shutil.copy(FIX / name, folder / name)
        os.utime(folder / name, (1_700_000_000 + i, 1_700_000_000 + i))
    html = tmp_path / "report.html"
    assert main(["loadtest", "--latest", str(folder), "--json", "--html", str(html)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["tool"] == "pgbench"
    assert doc["results"][0]["summary"][-1]["endpoint"] == "ALL"
    assert {"kind", "severity", "subject", "evidence", "recommendation", "sql", "benefit_ms"} <= set(doc["findings"][0])
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page and "script 1" in page


def test_cli_skip_bad_lines(tmp_path, capsys):
    lines = (FIX / "k6_points.ndjson").read_text().splitlines()
    index = next(i for i in range(50, len(lines)) if '"http_req_duration"' in lines[i])
    lines[index] = lines[index][:40]
    path = tmp_path / "cut.json"
    path.write_text("\n".join(lines) + "\n")
    assert main(["loadtest", str(path)]) == 2
    assert f"line {index + 1}" in capsys.readouterr().err
    assert main(["loadtest", "--skip-bad-lines", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["skipped_lines"] == 1


# --- summary percentiles ---------------------------------------------------------------------------
@pytest.mark.parametrize("top, missing", [(3, 0.0), (50, 0.2), (5000, 0.0), (2_000_000, 0.0)])
def test_summary_percentiles_equal_numpy_for_whole_millisecond_latencies(monkeypatch, top, missing):
    from perfkit.loadtests import frames

    monkeypatch.setattr(frames, "_CHUNK", 3)  # several counting steps even on a few rows
    # whole milliseconds are counted (bincount), not selected: the figures must be numpy's, bit for bit;
    # when (largest latency + 1) x endpoints exceeds 2**22 cells (top 2,000,000 with 3 endpoints) the
    # selection path runs, and must agree too
    rng = np.random.default_rng(top)
    for n in (1, 2, 7, 400):
        latency = rng.integers(0, top, n).astype(float)
        latency[rng.random(n) < missing] = np.nan
        endpoint = rng.choice(["/a", "/b", "/c"], n)
        samples = samples_frame(ts=pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
                                endpoint=endpoint, latency_ms=latency, ok=np.ones(n, bool), tool="x", source="mem")
        summary = summarize(samples).set_index("endpoint")
        for name in [*sorted(set(endpoint)), "ALL"]:
            values = latency if name == "ALL" else latency[endpoint == name]
            values = values[~np.isnan(values)]
            got = summary.loc[name, ["p50_ms", "p90_ms", "p95_ms", "p99_ms"]].to_numpy(dtype=float)
            if values.size == 0:
                assert np.isnan(got).all()
                continue
            assert np.array_equal(got, np.percentile(values, [50, 90, 95, 99])), (name, n)
            assert summary.loc[name, "mean_ms"] == values.mean() and summary.loc[name, "max_ms"] == values.max()


def test_summary_percentiles_of_fractional_latencies_are_selected():
    samples = samples_frame(ts=pd.date_range("2024-01-01", periods=4, freq="s", tz="UTC"), endpoint=["/a"] * 4,
                            latency_ms=[0.5, 1.25, 2.0, 10.0], tool="x", source="mem")
    row = summarize(samples).iloc[-1]
    assert row["p50_ms"] == np.percentile([0.5, 1.25, 2.0, 10.0], 50) == 1.625


def test_minus_ms_gives_pandas_nanoseconds():
    from perfkit.loadtests.frames import minus_ms

    rng = np.random.default_rng(5)
    latency = np.concatenate([rng.lognormal(3, 1.5, 20_000), np.round(rng.lognormal(3, 1, 20_000), 6),
                              np.round(rng.lognormal(3, 1, 20_000), 3), [0.0, 1.0, 2.5, 1e7 + 0.123456789, np.nan]])
    end = pd.Timestamp("2024-05-01T10:00:00.123456789", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 10**12, latency.size), unit="ns")
    end = end.where(np.arange(latency.size) != 7, pd.NaT)  # a missing stamp
    want = pd.Series(end) - pd.to_timedelta(latency, unit="ms")
    got = pd.Series(minus_ms(end, latency))
    assert got.dtype == want.dtype
    assert got.equals(want)


def test_summary_with_many_endpoints_equals_a_groupby():
    rng = np.random.default_rng(9)
    n = 6000
    endpoint = np.array([f"/users/{i}" for i in rng.integers(0, 40, n)])  # 40 endpoints: the sorted path
    latency = rng.lognormal(3, 1, n)
    latency[rng.random(n) < 0.05] = np.nan
    samples = samples_frame(ts=pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="ms"),
                            endpoint=endpoint, latency_ms=latency, ok=rng.random(n) > 0.1, tool="x", source="mem")
    summary = summarize(samples).set_index("endpoint")
    frame = pd.DataFrame({"endpoint": endpoint, "latency": latency, "failed": ~samples["ok"].to_numpy(bool)})
    for name, group in frame.groupby("endpoint"):
        row = summary.loc[name]
        known = group["latency"].dropna().to_numpy()
        assert row["requests"] == len(group) and row["failures"] == group["failed"].sum()
        assert row["mean_ms"] == known.mean() and row["max_ms"] == known.max()
        assert np.array_equal(row[["p50_ms", "p90_ms", "p95_ms", "p99_ms"]].to_numpy(float),
                              np.percentile(known, [50, 90, 95, 99]))
    assert summary.loc["ALL", "requests"] == n


def test_run_length_with_missing_stamps_and_microsecond_units():
    from perfkit.loadtests.frames import run_duration_s

    ts = pd.Series(pd.to_datetime(["2024-01-01T00:00:00", None, "2024-01-01T00:00:10"], utc=True)).dt.as_unit("us")
    samples = pd.DataFrame({"ts": ts, "latency_ms": [5.0, 7.0, 1.0]})
    assert run_duration_s(samples) == pytest.approx(10.001)
    samples["latency_ms"] = [5.0, 7.0, np.inf]
    with pytest.raises(ValueError, match="not a duration"):
        run_duration_s(samples)
