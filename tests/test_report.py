"""``perfkit report`` end to end: papermill against the sandbox, the folder, HTML, summary.json, Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from perfkit import report

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
LOADTESTS = [SAMPLE / "loadtests" / "pgbench-before-index.log", SAMPLE / "loadtests" / "pgbench-after-index.log"]
PASSWORD = "Wk9-pw-never-shown"


def perfkit(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "perfkit.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd or ROOT,
        env={**os.environ, "PERFKIT_DSN": "", **(env or {})},
    )


def all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def shop_dsn(sandbox):
    """A database with the shop and a workload in it, read by a role that has a password."""
    from perfkit.demo import shop

    name = "report_shop"
    with sandbox.admin_connect("postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute("DROP ROLE IF EXISTS report_reader")
        conn.execute(f"CREATE ROLE report_reader LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
    with sandbox.admin_connect(name) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if sandbox.hypopg:
            conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        shop.build_shop(conn, shop.ShopSize.scaled(0.1))
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO report_reader")
        # as a DBA would after a deploy: this database's statistics start from the workload
        conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = %s), 0)", (name,))
        shop.run_workload(conn, requests=120)
    return f"postgresql://report_reader:{PASSWORD}@127.0.0.1:{sandbox.port}/{name}"


@pytest.fixture(scope="module")
def weekly_runs(shop_dsn, tmp_path_factory):
    """Three weekly runs on the same day: first, second (a -2 folder), and --force."""
    base = tmp_path_factory.mktemp("weekly")
    out, store = base / "reports", base / "store"
    common = ["--out", out, "--store", store, "--loadtest", LOADTESTS[0], "--loadtest", LOADTESTS[1],
              "--logs", SAMPLE / "logs" / "postgresql.json"]
    first = perfkit("report", "weekly", "--dsn", shop_dsn, *common)
    kept = base / "first"  # the first report as it was, before --force rewrites its folder
    if first.returncode == 0:
        shutil.copytree(first.stdout.strip().splitlines()[-1], kept)
    second = perfkit("report", "weekly", *common, env={"PERFKIT_DSN": shop_dsn})
    forced = perfkit("report", "weekly", "--dsn", shop_dsn, "--force", "--out", out, "--store", store)
    return {"out": out, "store": store, "first": kept, "runs": [first, second, forced]}


def test_weekly_report_folder_html_and_summary(weekly_runs):
    first = weekly_runs["runs"][0]
    assert first.returncode == 0, first.stderr
    written = Path(first.stdout.strip().splitlines()[-1])
    assert written.name == f"{dt.date.today():%Y-%m-%d}" and written.parent == weekly_runs["out"]
    folder = weekly_runs["first"]
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json", "weekly.html", "weekly.ipynb"]
    assert "Executing" in first.stderr  # papermill's progress bar, on stderr
    assert "without encryption" not in first.stderr and "IPKernelApp" not in first.stderr  # a quiet kernel

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["error"] is None
    assert summary["source"].endswith("/report_shop") and "report_reader@127.0.0.1" in summary["source"]
    assert summary["parameters"]["dsn"].startswith("postgresql://report_reader:***@")
    assert any("FROM invoices" in s["query"] for s in summary["top_statements"])
    assert summary["top_statements_basis"] == "since stats reset"  # the store was empty
    assert summary["compared_with"] == {"report": None, "snapshot": None}
    assert summary["sections"] == dict.fromkeys(
        ["workload", "week_over_week", "plan", "loadtest", "logs", "health", "recommendations", "overview"], "ok")
    assert set(summary["findings_by_severity"]) == {"critical", "warning", "info"}
    assert sum(summary["findings_by_severity"].values()) == len(summary["findings"])
    assert summary["slo_verdict"] in {"pass", "warning", "critical"}
    assert any(r["sql"].startswith("CREATE INDEX CONCURRENTLY") for r in summary["recommendations"])
    assert {"severity", "kind", "subject", "recommendation", "sql"} <= set(summary["recommendations"][0])
    assert {v["metric"] for v in summary["slo"]} >= {"p95_ms", "error_rate"}
    assert {v["source"] for v in summary["slo"]} == {p.name for p in LOADTESTS}
    kinds = {f["kind"] for f in summary["findings"]}
    assert {"missing_tenant_index", "n_plus_one"} <= kinds  # the shop's planted problems, from health and the log
    assert summary["paths"]["html"] == str(written / "weekly.html")
    # the first report says plainly that there is nothing to compare with yet
    assert len(list(weekly_runs["store"].rglob("*.parquet"))) >= 1

    page = (folder / "weekly.html").read_text()
    assert "<h1" in page and "Weekly performance report" in page and page.count("<h2") >= 3
    assert "No stored snapshot" in page
    # with a database and no plan file, the costliest statement's generic plan (nothing ran)
    assert "Generic plans (EXPLAIN without ANALYZE" in page
    assert re.search(r"queryid -?\d+: SELECT id, order_id, status, amount, created_at FROM invoices", page)
    assert page.count("data:image/png;base64,") >= 2
    assert "load_sources" not in page and "sections.weekly" not in page  # no code cells
    assert not re.search(r'class="[^"]*(jp-InputArea-editor|jp-InputPrompt)', page)
    assert "<script src=" not in page.replace("'", '"')  # nothing fetched from the network

    nb = nbformat.read(folder / "weekly.ipynb", as_version=4)
    assert nb.metadata["perfkit"]["status"] == "ok"
    assert nb.metadata["papermill"]["parameters"]["dsn"] == ""  # the DSN went through PERFKIT_DSN
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))

    index = (weekly_runs["out"] / "index.html").read_text()
    assert f"{written.name}/weekly.html" in index and ">ok<" in index


def test_second_run_same_day_gets_a_suffix_and_compares(weekly_runs):
    first, second, forced = weekly_runs["runs"]
    assert second.returncode == 0, second.stderr
    base = Path(first.stdout.strip().splitlines()[-1])
    folder = Path(second.stdout.strip().splitlines()[-1])
    assert folder.name == base.name + "-2"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["compared_with"]["report"]["folder"] == base.name
    baseline = summary["compared_with"]["snapshot"]
    assert baseline and Path(baseline["snapshot"]).exists() and baseline["hours_before"] < 1
    assert summary["top_statements_basis"] == "interval"
    assert "Compared with the snapshot of" in (folder / "weekly.html").read_text()
    # --force rewrites the day's first folder instead of making a third one
    assert forced.returncode == 0, forced.stderr
    assert Path(forced.stdout.strip().splitlines()[-1]) == base
    assert sorted(p.name for p in weekly_runs["out"].iterdir()) == [base.name, base.name + "-2", "index.html"]
    forced_summary = json.loads((base / "summary.json").read_text())
    assert forced_summary["sections"]["loadtest"].endswith("no load-test file given, so there are no SLO verdicts in this report.")
    assert forced_summary["sections"]["logs"].endswith("no log file given.")
    assert forced_summary["status"] == "ok" and forced_summary["slo_verdict"] is None
    index = (weekly_runs["out"] / "index.html").read_text()
    assert index.count("weekly.html") == 2


def test_no_password_anywhere(weekly_runs):
    for run in weekly_runs["runs"]:
        assert PASSWORD not in run.stdout and PASSWORD not in run.stderr
    text = all_text(weekly_runs["out"])
    assert "report_reader:***@" in text
    assert PASSWORD not in text
    assert not list(weekly_runs["out"].rglob(".*"))  # no temporary or partial file left behind


def test_wrong_password_fails_the_run_without_showing_it(shop_dsn, tmp_path):
    wrong = "Wrong-" + PASSWORD
    out = tmp_path / "reports"
    run = perfkit("report", "weekly", "--dsn", shop_dsn.replace(PASSWORD, wrong), "--out", out, "--store", tmp_path / "store")
    assert run.returncode == 4, run.stderr  # a report that failed part-way
    summary = json.loads((Path(run.stdout.strip().splitlines()[-1]) / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("AuthenticationFailed")
    assert wrong not in run.stdout + run.stderr and wrong not in all_text(out)
    assert PASSWORD not in all_text(out)


def test_failing_cell_leaves_partial_notebook_html_and_failed_summary(tmp_path):
    out = tmp_path / "reports"
    # a parameter the workload section cannot use: the cell raises, the run fails
    run = perfkit("report", "weekly", "--sample", "-p", "top_n", '"ten"', "--out", out)
    assert run.returncode == 4, run.stderr  # a report that failed part-way (partial report written)
    folder = Path(run.stdout.strip().splitlines()[-1])
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("TypeError")
    assert "report failed" in run.stderr
    nb = nbformat.read(folder / "weekly.ipynb", as_version=4)
    errors = [i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(errors) == 1
    assert "sections.weekly" in nb.cells[errors[0]].source
    assert all(not c.get("outputs") for c in nb.cells[errors[0] + 1:] if c.cell_type == "code")  # the rest never ran
    page = (folder / "weekly.html").read_text()
    assert "This report failed" in page and "Statement workload" in page and "The report stopped here" in page
    assert "TypeError" in page
    assert ">failed<" in (out / "index.html").read_text()


def test_any_notebook_with_parameters(tmp_path):
    out = tmp_path / "reports"
    run = perfkit("report", "01-workload", "-p", "top_n", "3", "--out", out)
    assert run.returncode == 0, run.stderr
    folder = Path(run.stdout.strip().splitlines()[-1])
    assert folder.name == f"{dt.date.today():%Y-%m-%d}-01-workload"
    nb = nbformat.read(folder / "01-workload.ipynb", as_version=4)
    assert nb.metadata["papermill"]["parameters"] == {"top_n": 3}
    assert json.loads((folder / "summary.json").read_text())["notebook"] == "01-workload"


def test_live_notebook_stores_its_snapshot_where_the_command_runs(shop_dsn, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PERFKIT_STORE"}
    run = subprocess.run([sys.executable, "-m", "perfkit.cli", "report", "01-workload", "--out", "reports"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**env, "PERFKIT_DSN": shop_dsn})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / Path(run.stdout.strip().splitlines()[-1])).name.endswith("-01-workload")
    assert list((tmp_path / "data" / "snapshots").rglob("*.parquet"))  # data/snapshots of the caller's folder
    assert not (ROOT / "notebooks" / "data").exists()
    summary = json.loads(next((tmp_path / "reports").glob("*/summary.json")).read_text())
    assert summary["source"].endswith("/report_shop") and PASSWORD not in json.dumps(summary)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "no-such-notebook"], "no notebook 'no-such-notebook'"),
        (["report", "01-workload", "-p", "colour", "blue"], "has no parameter 'colour'"),
        (["report", "weekly"], "the weekly report needs a database"),
        (["report", "weekly", "--sample", "--loadtest", "/nonexistent/k6.json"], "load-test file not found"),
        (["report", "01-workload", "-p", "store", f"postgresql://u:{PASSWORD}@h/db"], "holds a password"),
        (["report", "weekly", "--dsn", f"host=h password={PASSWORD} port=notaport x"], "not a valid connection string"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    from perfkit.cli import main

    monkeypatch.delenv("PERFKIT_DSN", raising=False)
    code = main([*args, "--out", str(tmp_path / "reports")])
    out = capsys.readouterr()
    assert code == 2, out.err
    assert message in out.err and out.err.strip().count("\n") == 0 and out.out == ""
    assert PASSWORD not in out.err
    assert not (tmp_path / "reports").exists()


def test_folders_suffix_force_and_atomic_writes(tmp_path):
    assert report.make_folder(tmp_path, "2026-01-05", force=False).name == "2026-01-05"
    assert report.make_folder(tmp_path, "2026-01-05", force=False).name == "2026-01-05-2"
    assert report.make_folder(tmp_path, "2026-01-05", force=False).name == "2026-01-05-3"
    assert report.make_folder(tmp_path, "2026-01-05", force=True).name == "2026-01-05"
    target = report.write_atomic(tmp_path / "a.json", "{}")
    assert target.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["a.json"]


def test_secrets_leave_parameters_for_the_environment():
    safe, dsn = report.split_secrets({"dsn": f"postgresql://u:{PASSWORD}@h/db", "top_n": 3}, None)
    assert safe == {"top_n": 3} and PASSWORD in dsn
    assert report.passwords_in(dsn) >= {PASSWORD}
    nested = {"a": [f"see postgresql://u:{PASSWORD}@h/db", {"b": f"x {PASSWORD} y"}]}
    assert PASSWORD not in json.dumps(report.redact_all(nested, {PASSWORD}))


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_in_headless_chromium(weekly_runs, tmp_path):
    binary = chromium_binary()
    if binary is None:
        on_debian = Path("/etc/debian_version").exists() and platform.system() == "Linux"
        if os.geteuid() == 0 and on_debian:
            pytest.fail("chromium is missing although scripts/setup.sh installs it when root on Debian")
        pytest.skip("chromium is not installed (scripts/setup.sh installs it when run as root on Debian)")
    page = weekly_runs["first"] / "weekly.html"
    shot = tmp_path / "report.png"
    profile = tempfile.mkdtemp(prefix="perfkit-chromium-")
    try:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,2400",
             f"--screenshot={shot}", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    colors = image.getcolors(maxcolors=1 << 24)
    assert len(colors) > 100  # text, tables and charts, not a blank page
    white = sum(count for count, rgb in colors if min(rgb) >= 250)
    assert white / (image.size[0] * image.size[1]) < 0.97


def test_live_plan_with_a_what_if_index(shop_dsn, sandbox):
    from perfkit import sections

    assert sandbox.hypopg, "hypopg is missing: scripts/setup.sh installs postgresql-NN-hypopg"
    src = sections.load_sources(shop_dsn)
    sql = "SELECT id, order_id, status, amount, created_at FROM invoices WHERE tenant_id = 3 ORDER BY created_at DESC LIMIT 50"
    deep = sections.plan(src, sql=sql, what_if="CREATE INDEX ON invoices (tenant_id, created_at)")
    assert not deep.skipped and "Seq Scan" in set(deep["plan"].nodes["node_type"])
    what = deep["what_if"]
    assert what.used and what.cost_after < what.cost_before
    assert any(isinstance(b, str) and b.startswith("What if `CREATE INDEX ON invoices") for b in deep.blocks)
    assert PASSWORD not in repr(src) and PASSWORD not in src.describe()
