"""Gatling readers: the report's stats.json / global_stats.json and the text simulation.log,
against a real Gatling 3.9.5 run and a constructed one with nested groups and KO requests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfkit import loadtests
from perfkit.errors import BadInputError
from perfkit.loadtests import gatling
from perfkit.loadtests.frames import SAMPLE_COLUMNS, SUMMARY_COLUMNS

FIX = Path(__file__).parent / "fixtures" / "loadtests"
REAL_LOG, REAL_STATS = FIX / "gatling_3.9_simulation.log", FIX / "gatling_3.9_stats.json"
GROUPS_LOG, GROUPS_STATS = FIX / "gatling_groups_simulation.log", FIX / "gatling_groups_stats.json"

CASES = [(FIX / name, declared.name, declared.gives == "samples")
         for declared in loadtests.FORMATS.values() if declared.tool == "gatling"
         for name in declared.fixtures]


@pytest.mark.parametrize("path, fmt, has_samples", CASES, ids=lambda c: getattr(c, "name", str(c)))
def test_gatling_files_are_detected_and_read_into_the_contract(path, fmt, has_samples):
    assert loadtests.detect(path) == fmt
    run = loadtests.read(path)
    assert run.format == fmt and run.tool == "gatling"
    assert list(run.samples.columns) == SAMPLE_COLUMNS
    assert list(run.summary.columns) == SUMMARY_COLUMNS
    assert run.summary["endpoint"].iloc[-1] == "ALL"
    assert run.has_samples is has_samples
    assert run.percentiles_from == ("samples" if has_samples else "tool")
    assert run.closed_loop is None and any("coordinated omission" in n for n in run.notes)
    if has_samples:
        assert str(run.samples["ts"].dtype) == "datetime64[ns, UTC]"
        assert run.samples["ts"].is_monotonic_increasing
        assert int(run.summary["requests"].iloc[-1]) == len(run.samples)


@pytest.mark.parametrize("log, stats", [(REAL_LOG, REAL_STATS), (GROUPS_LOG, GROUPS_STATS)],
                         ids=["real-3.9.5", "constructed-groups"])
def test_log_summary_agrees_with_the_reports_stats_within_gatlings_rounding(log, stats):
    from_log = loadtests.read(log).summary.set_index("endpoint")
    from_report = loadtests.read(stats).summary.set_index("endpoint")
    assert list(from_log.index) == list(from_report.index)
    assert (from_log["requests"] == from_report["requests"]).all()
    assert (from_log["failures"] == from_report["failures"]).all()
    assert (from_log["max_ms"] == from_report["max_ms"]).all()  # whole ms on both sides
    assert (np.abs(from_log["mean_ms"] - from_report["mean_ms"]) <= 0.5).all()  # Gatling rounds
    for column in ("p50_ms", "p95_ms", "p99_ms"):  # t-digest, rounded to the ms
        assert (np.abs(from_log[column] - from_report[column]) <= 1.0).all(), column
    assert from_report["p90_ms"].isna().all()  # not among Gatling's default 50/75/95/99


def test_real_log_records_and_latencies():
    run = loadtests.read(REAL_LOG)
    first = run.samples.iloc[0]
    # REQUEST\t\t01_Get_Specific_Post\t1767825935194\t1767825935216\tOK\t  (3.4+ layout, no group)
    assert first["endpoint"] == "01_Get_Specific_Post"
    assert first["ts"].value // 1_000_000 == 1767825935194
    assert first["latency_ms"] == 22.0 and first["ok"] and first["error"] is None
    assert run.tool_figures["gatling_version"] == "3.9.5"
    assert run.tool_figures["users_started"] == 20


def test_real_stats_json_and_global_stats_json_agree():
    tree = loadtests.read(REAL_STATS)
    flat = loadtests.read(FIX / "gatling_3.9_global_stats.json")
    assert tree.summary.iloc[-1].equals(flat.summary.iloc[-1])
    row = tree.summary.set_index("endpoint").loc["ALL"]
    assert (row["requests"], row["mean_ms"], row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (60, 16, 15, 23, 27)
    assert tree.tool_figures["percentiles"]["ALL"] == {"p75_ms": 18.0}
    assert tree.duration_s == pytest.approx(13.0)  # Gatling's 60 requests / 4.615 req/s
    assert any("ALL only" in note for note in flat.notes)


def test_groups_nest_into_the_request_path_and_are_not_counted_as_requests():
    log = loadtests.read(GROUPS_LOG)
    report = loadtests.read(GROUPS_STATS)
    names = {"users", "search", "checkout / reports", "checkout / payment / orders"}
    assert set(log.summary["endpoint"][:-1]) == names == set(report.summary["endpoint"][:-1])
    assert set(report.tool_figures["groups"]) == {"checkout", "checkout / payment"}
    assert log.tool_figures["group_records"] > 0
    assert int(report.summary["requests"].iloc[-1]) == 96
    ko = log.samples[~log.samples["ok"].astype(bool)]
    assert len(ko) == 3 and ko["error"].str.contains("found 50").all()


def test_percentile_indicators_can_be_overridden():
    run = loadtests.read(REAL_STATS, percentiles=(50, 90, 95, 99.9))
    all_row = run.summary.set_index("endpoint").loc["ALL"]
    assert all_row["p90_ms"] == 18 and pd.isna(all_row["p99_ms"])
    assert run.tool_figures["percentiles"]["ALL"] == {"p99.9_ms": 27.0}
    assert any("50/90/95/99.9" in note for note in run.notes)
    with pytest.raises(BadInputError, match="four numbers"):
        loadtests.read(REAL_STATS, percentiles=(50, 95))


def test_a_report_folder_is_read_through_its_js_stats_json(tmp_path):
    report = tmp_path / "apisimulation-20250101120000000"
    (report / "js").mkdir(parents=True)
    shutil.copy(REAL_STATS, report / "js" / "stats.json")
    shutil.copy(FIX / "gatling_3.9_global_stats.json", report / "js" / "global_stats.json")
    assert loadtests.detect(report) == "gatling-stats"
    run = loadtests.read(report)
    assert run.source.endswith("js/stats.json") and len(run.summary) == 4
    # a folder that is no Gatling report is still an error, and --latest still skips folders
    with pytest.raises(BadInputError, match="is a directory"):
        loadtests.read(tmp_path)
    shutil.copy(REAL_LOG, tmp_path / "simulation.log")
    assert loadtests.latest(tmp_path).name == "simulation.log"


@pytest.mark.parametrize("layout, record", [
    ("3.0-3.1 (scenario, user id)", "REQUEST\tapi users\t7\t{groups}\t{name}\t{start}\t{end}\t{status}\t{message}"),
    ("3.2-3.3 (user id)", "REQUEST\t7\t{groups}\t{name}\t{start}\t{end}\t{status}\t{message}"),
    ("3.4-3.12", "REQUEST\t{groups}\t{name}\t{start}\t{end}\t{status}\t{message}"),
])
def test_the_request_layouts_of_gatling_3_read_the_same(tmp_path, layout, record):
    # the REQUEST columns from Gatling's LogFileDataWriter across 3.x (built here: only 3.9 files
    # are at hand); the same requests must read the same whatever the layout
    lines = ["RUN\tsim.Api\tapi\t1700000000000\t \t3.3.1"]
    for i, (groups, name, status, message) in enumerate([
            ("", "home", "OK", " "), ("shop,cart", "add", "KO", "status.find.in(200), found 500"),
            ("shop", "list", "OK", " ")]):
        start = 1700000000100 + 10 * i
        lines.append(record.format(groups=groups, name=name, start=start, end=start + 5 + i,
                                   status=status, message=message))
    path = tmp_path / "simulation.log"
    path.write_text("\n".join(lines) + "\n")
    run = loadtests.read(path)
    assert list(run.samples["endpoint"]) == ["home", "shop / cart / add", "shop / list"]
    assert list(run.samples["latency_ms"]) == [5.0, 6.0, 7.0]
    assert list(run.samples["ok"]) == [True, False, True]
    assert run.samples["error"].iloc[1] == "status.find.in(200), found 500"


def test_truncated_records_name_the_line_or_are_skipped(tmp_path):
    lines = GROUPS_LOG.read_text().splitlines()
    index = next(i for i in range(20, len(lines)) if lines[i].startswith("REQUEST"))
    cut = list(lines)
    cut[index] = cut[index][: len(cut[index]) // 2]
    path = tmp_path / "cut.log"
    path.write_text("\n".join(cut) + "\n")
    with pytest.raises(BadInputError, match=rf"cut.log, line {index + 1}:"):
        loadtests.read(path)
    run = loadtests.read(path, skip_bad_lines=True)
    assert run.skipped_lines == 1 and len(run.samples) == 95
    # the last record cut mid-write
    path.write_text("\n".join(lines[:-1] + [lines[-1][:12]]))
    with pytest.raises(BadInputError, match=rf"line {len(lines)}"):
        loadtests.read(path)


def test_binary_simulation_log_points_to_the_reports_stats_json(tmp_path):
    # Gatling 3.13+: RUN record byte 0, then the version as an int length and its bytes
    path = tmp_path / "simulation.log"
    path.write_bytes(b"\x00\x00\x00\x00\x063.13.1\x00\x00\x00\x00\x15io.gatling.Sim" + bytes(range(40)))
    assert loadtests.detect(path) == "gatling-log"
    with pytest.raises(BadInputError, match=r"binary simulation.log .* js/stats.json"):
        loadtests.read(path)


@pytest.mark.parametrize("path", [REAL_LOG, REAL_STATS])
def test_empty_and_foreign_files_are_clear_errors(tmp_path, path):
    empty = tmp_path / path.name
    empty.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        loadtests.read(empty, loadtests.detect(path))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"type": "GROUP", "stats": {"name": "x"}, "contents": {}}))
    with pytest.raises(BadInputError, match="stats.json"):
        loadtests.read(other, "gatling-stats")
    log_without_requests = tmp_path / "users.log"
    log_without_requests.write_text("RUN\tsim.Api\tapi\t1700000000000\t \t3.9.5\nUSER\ts\tSTART\t1700000000001\n")
    with pytest.raises(BadInputError, match="no REQUEST records"):
        loadtests.read(log_without_requests)


def test_cli_reads_gatling_files(capsys, monkeypatch):
    import perfkit.cli
    from perfkit.cli import main

    monkeypatch.setattr(perfkit.cli, "COMMANDS", ("loadtest",))  # parse with this command alone
    assert main(["loadtest", "--json", str(GROUPS_STATS), str(REAL_LOG)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["format"] for r in doc["results"]] == ["gatling-stats", "gatling-log"]
    assert doc["results"][0]["summary"][-1]["requests"] == 96


def test_report_file_keeps_files_and_unknown_folders(tmp_path):
    assert gatling.report_file(REAL_LOG) == REAL_LOG
    assert gatling.report_file(tmp_path) == tmp_path


@pytest.mark.parametrize("start", ["99999999999999999999", "99999999999999999", "9223372036855"])
def test_a_timestamp_out_of_range_names_its_line(tmp_path, start):
    # beyond int64, or beyond what a timestamp holds (2262): the record's line, not the file
    lines = GROUPS_LOG.read_text().splitlines()
    index = next(i for i in range(20, len(lines)) if lines[i].startswith("REQUEST"))
    fields = lines[index].split("\t")
    status = fields.index("OK") if "OK" in fields else fields.index("KO")
    fields[status - 2], fields[status - 1] = start, start + "0"
    bad = list(lines)
    bad[index] = "\t".join(fields)
    path = tmp_path / "far.log"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(BadInputError, match=rf"far.log, line {index + 1}: .*out of range"):
        loadtests.read(path)
    assert loadtests.read(path, skip_bad_lines=True).skipped_lines == 1


@pytest.mark.parametrize("groups, name", [("2024", "1"), ("1700000000", "42"), ("7", "home")])
def test_numeric_group_and_request_names_are_not_the_gatling_2_layout(tmp_path, groups, name):
    path = tmp_path / "simulation.log"
    path.write_text("RUN\tsim.Api\tapi\t1700000000000\t \t3.9.5\n"
                    f"REQUEST\t{groups}\t{name}\t1700000000100\t1700000000105\tOK\t \n")
    run = loadtests.read(path)
    assert run.samples["endpoint"].tolist() == [f"{groups} / {name}"]
    assert run.samples["latency_ms"].tolist() == [5.0]


def test_the_gatling_2_layout_with_four_timestamps_is_refused(tmp_path):
    path = tmp_path / "simulation.log"
    path.write_text("RUN\tsim.Api\tapi\t1400000000000\t \t2.0\n"
                    "REQUEST\tapi\t7\t\thome\t1400000000100\t1400000000101\t1400000000104\t"
                    "1400000000105\tOK\t \n")
    with pytest.raises(BadInputError, match=r"line 2: .*Gatling 2.0-2.1 layout"):
        loadtests.read(path)


@pytest.mark.parametrize("percentiles", [("50", "75", "95", "99"), (50, 75, 95, "99"), "50,75,95,99",
                                         (50, 75, 95, 0), (True, 75, 95, 99), 99])
def test_bad_percentiles_option_is_named_and_the_file_not_blamed(percentiles):
    with pytest.raises(BadInputError, match=r"^percentiles= must be four numbers in \(0, 100\]") as caught:
        loadtests.read(REAL_STATS, percentiles=percentiles)
    assert caught.value.path is None


def test_percentiles_option_takes_numpy_numbers():
    run = loadtests.read(REAL_STATS, percentiles=np.array([50, 90, 95, 99.9]))
    assert run.tool_figures["indicators"] == (50.0, 90.0, 95.0, 99.9)
    assert run.tool_figures["percentiles"]["ALL"] == {"p99.9_ms": 27.0}
