"""Live logs: two real servers write csvlog, jsonlog and two stderr prefixes; perfkit reads them all.

Also the ``perfkit logs`` command and the duration histogram, on the real fixture logs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import perfkit.logs
from perfkit import cli
from perfkit.charts.logs import duration_histogram

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "logs"


def capture_script():
    spec = importlib.util.spec_from_file_location("capture_log_fixtures", ROOT / "scripts" / "capture_log_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The logs the fixture script captures, written now by two fresh servers."""
    folder = tmp_path_factory.mktemp("live-logs")
    capture_script().capture(folder)
    return folder


def shapes(path: Path) -> list[tuple[str, str]]:
    runs = perfkit.logs.executions(perfkit.logs.read(path))
    runs = runs[runs["statement"].str.contains("fixture|no_such_table|invoices|customers|literal", regex=True)]
    return list(zip(runs["phase"], runs["normalized"], strict=True))


@pytest.mark.parametrize("name", ["csvlog.csv", "jsonlog.json", "stderr-default.log", "stderr-pgbadger.log"])
def test_live_logs_read_like_the_fixtures(live, name):
    fresh = perfkit.logs.read(live / name)
    assert fresh.attrs["skipped_lines"] == 0
    assert shapes(live / name) == shapes(FIXTURES / name)
    plans = fresh[fresh["phase"] == "plan"]
    assert plans["plan"].str.startswith("{").any()        # auto_explain JSON
    assert plans["plan"].str.contains(r"\(cost=").any()   # auto_explain text
    assert fresh["statement"].str.contains("\n  FROM invoices\n", regex=False).any()


def test_live_logs_find_the_fixture_n_plus_one(live):
    from perfkit import nplusone

    for name in ("csvlog.csv", "jsonlog.json", "stderr-default.log", "stderr-pgbadger.log"):
        found = nplusone.from_logs(perfkit.logs.read(live / name))
        repeated = found[found["pattern"] == "repeated_statement"]
        assert repeated["route"].tolist() == ["/api/invoices"], name
        assert repeated["repeats"].tolist() == [4], name


# -- the command line ---------------------------------------------------------------------------

def run_cli(monkeypatch, capsys, *argv):
    # only the logs command: the other commands' modules are other branches' work
    monkeypatch.setattr(cli, "COMMANDS", ("logs",))
    code = cli.main(["logs", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, FIXTURES / "csvlog.csv", "--json", "--slow-ms", "100")
    assert code == 0
    payload = json.loads(out)
    kinds = {f["kind"] for f in payload["findings"]}
    assert {"n_plus_one", "slow_statement"} <= kinds
    n1 = next(f for f in payload["findings"] if f["kind"] == "n_plus_one")
    assert n1["subject"] == "/api/invoices" and n1["repeats"] == 4
    assert payload["most_frequent"][0]["calls"] == 4
    assert "row_misestimate" in kinds  # from the auto_explain plans, via perfkit.plans
    assert payload["slowest"][0]["duration_ms"] >= payload["slowest"][-1]["duration_ms"]
    assert payload["formats"] == {str(FIXTURES / "csvlog.csv"): "csvlog"}
    assert set(payload["findings"][0]) >= {"kind", "severity", "subject", "evidence", "recommendation", "sql", "benefit_ms"}


def test_cli_tables(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, FIXTURES / "stderr-pgbadger.log",
                             "--prefix", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ")
    assert code == 0
    assert "Slowest statements" in out and "Most frequent statements" in out and "Findings" in out
    assert "/api/invoices" in out
    assert "read " in err and "entries" in err


def test_cli_bad_prefix_exits_2_with_file_and_line(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, FIXTURES / "stderr-pgbadger.log", "--prefix", "%m [%p] ")
    assert code == 2 and out == ""
    assert err.startswith(f"perfkit: error: {FIXTURES / 'stderr-pgbadger.log'}, line 1: ")
    assert len(err.strip().splitlines()) == 1


def test_cli_skip_bad_lines_reports_the_count(monkeypatch, capsys, tmp_path):
    damaged = tmp_path / "damaged.log"
    lines = (FIXTURES / "stderr-default.log").read_text().split("\n")
    damaged.write_text("\n".join(lines[:3] + ["garbage that is no log line"] + lines[3:]))
    for extra in ([], ["--skip-bad-lines"]):  # a stray line is a note either way, not a stop
        code, out, err = run_cli(monkeypatch, capsys, damaged, "--json", *extra)
        assert code == 0
        payload = json.loads(out)
        assert payload["skipped_lines"] == 1 and payload["bad_records"][0]["line"] == 4
        assert "the line does not match" in payload["bad_records"][0]["reason"]
        assert any("skipped 1 line(s) that are not log records" in note for note in payload["notes"])


# -- the chart ----------------------------------------------------------------------------------

def test_duration_histogram_has_a_panel_per_shape():
    logs = perfkit.logs.read(FIXTURES / "csvlog.csv")
    figure = duration_histogram(logs, top=3)
    assert isinstance(figure, Figure)
    panels = [ax for ax in figure.axes if ax.get_title(loc="left")]
    assert len(panels) == 3
    # each panel over its own shape's range: log scale only when its durations span ten times or more
    assert panels[0].get_xscale() == "linear"  # one CREATE DATABASE: a single duration
    assert "CREATE DATABASE" in panels[0].get_title(loc="left")  # most total time first
    empty = duration_histogram(logs.iloc[0:0])
    assert isinstance(empty, Figure) and not empty.axes[0].axison
