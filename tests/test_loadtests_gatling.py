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

CASES = [
    (REAL_LOG, "gatling-log", True),
    (REAL_STATS, "gatling-stats", False),
    (FIX / "gatling_3.9_global_stats.json", "gatling-stats", False),
    (GROUPS_LOG, "gatling-log", True),
    (GROUPS_STATS, "gatling-stats", False),
]


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
