"""What a person reads: the health check board, findings as cards when a table cannot fit, colour on
a terminal only, ratios as percentages, a recommendation kind's boilerplate said once."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pandas as pd

from perfkit import health, sections
from perfkit.display import cell_text, shared_advice, status_board
from perfkit.output import format_findings, format_table, paint, use_colour

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
LOG = SAMPLE / "logs" / "postgresql.json"
ESC = "\x1b["


def cli(*argv, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "100", "PERFKIT_PROGRESS": "0", **env}
    for name in ("NO_COLOR", "FORCE_COLOR"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run([sys.executable, "-m", "perfkit.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, env=environment, cwd=ROOT)


def on_a_terminal(*argv, **env) -> str:
    """What ``perfkit ARGV`` writes to a pseudo-terminal (python's pty module)."""
    environment = {**os.environ, "COLUMNS": "100", "PERFKIT_PROGRESS": "0", "TERM": "xterm", **env}
    for name in ("NO_COLOR", "FORCE_COLOR"):
        if name not in env:
            environment.pop(name, None)
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "perfkit.cli", *map(str, argv)], stdout=follower,
                               stderr=subprocess.DEVNULL, env=environment, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_the_board_has_every_check_passing_ones_too(tenant_db):
    from perfkit import db

    engine = db.connect(tenant_db)
    try:
        assessment = health.assess(engine)
    finally:
        engine.dispose()
    board = assessment.tables["board"]
    assert list(sorted(board["check"])) == sorted(health.check_names())
    status = dict(zip(board["check"], board["status"], strict=True))
    assert status["duplicate_indexes"] == "warning"  # invoices_created_again_idx
    assert status["missing_fk_indexes"] == "warning"
    assert status["invalid_indexes"] == "ok" and status["xid_wraparound"] == "ok"
    # problems lead; the counts are facts for --json and summary.json
    assert list(board["status"]).index("ok") > max(i for i, s in enumerate(board["status"]) if s == "warning")
    assert assessment.facts["board_counts"]["warning"] == (board["status"] == "warning").sum()
    assert assessment.facts["board_counts"]["ok"] + assessment.facts["board_counts"]["warning"] == len(health.CHECKS)
    payload = assessment.to_json()  # what --json prints
    assert len(payload["board"]) == len(health.CHECKS) and payload["board_counts"] == assessment.facts["board_counts"]
    # a check that could not run is "not run" with why, not ok
    from perfkit.errors import PermissionDenied
    from perfkit.health import _skipped

    failed = pd.concat([assessment.findings, pd.DataFrame([_skipped("lock_waits", PermissionDenied("no pg_monitor"))])])
    row = health.board(failed).set_index("check").loc["lock_waits"]
    assert row["status"] == "not run" and "no pg_monitor" in row["subject"]


def test_health_prints_the_board_and_cards_in_100_columns(tenant_db):
    done = cli("health", "--dsn", tenant_db)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    board = lines.index(next(line for line in lines if line.startswith(f"Checks ({len(health.CHECKS)})")))
    assert any("warning  duplicate_indexes (1)" in line for line in lines[board:board + 16])
    assert any("ok       invalid_indexes" in line for line in lines[board:board + 16])
    # findings as cards: severity and subject on one line, the evidence indented under it
    card = next(i for i, line in enumerate(lines) if line.startswith("WARNING duplicate_index"))
    assert "public.invoices_created_again_idx" in lines[card]
    assert lines[card + 1].startswith("    ") and "same definition" in lines[card + 1]
    assert ESC not in done.stdout  # piped: no colour


def test_a_sample_health_section_shows_the_board_in_html():
    section = sections.health(sections.load_sources(sample=SAMPLE))
    page = next(str(b) for b in section.blocks if isinstance(b, sections.Html) and "perfkit-board" in b)
    for name in health.check_names():
        assert f"<code>{name}</code>" in page
    assert page.count(">OK</span>") == section.facts["board_counts"]["ok"] > 10
    board = section.assessment.tables["board"].set_index("check")
    # a check added after the sample was saved is not passed off as ok
    assert board.loc["tenant_plans", "status"] == "not run" and "saved sample" in board.loc["tenant_plans", "subject"]
    assert ">WARNING</span>" in page
    board = pd.DataFrame([{"check": "x<y>", "status": "critical", "findings": 2, "subject": "<b>t</b>"}])
    assert "<b>t</b>" not in status_board(board) and "&lt;b&gt;t&lt;/b&gt;" in status_board(board)


def test_findings_are_a_table_when_it_fits_and_cards_when_not():
    short = pd.DataFrame([{"severity": "warning", "kind": "k", "subject": "s", "evidence": "short"}])
    assert format_findings(short, width=100).splitlines()[0].split() == ["severity", "kind", "subject", "evidence"]
    long = short.assign(evidence="word " * 60, recommendation="do this " * 20)
    cards = format_findings(long, ["severity", "kind", "subject", "evidence", "recommendation"], width=100)
    lines = cards.splitlines()
    assert lines[0] == "WARNING k · s"
    assert all(line.startswith("    ") for line in lines[1:]) and any(line.startswith("    fix: ") for line in lines)
    assert max(map(len, lines)) <= 100
    assert " ".join(cards.split()).count("word") == 60  # nothing cut


def test_colour_on_a_terminal_never_piped_nor_with_no_color(monkeypatch):
    plan = SAMPLE / "plans" / "invoices-by-tenant.json"
    assert "\x1b[33mWARNING\x1b[0m" in on_a_terminal("plan", plan)
    # NO_COLOR on a terminal; piped (the health and loadtest runs here are piped: no escape codes);
    # FORCE_COLOR colours a pipe
    import io

    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.setenv("TERM", "xterm")
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert use_colour(terminal)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not use_colour(terminal)
    os.close(leader)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert use_colour(io.StringIO())
    monkeypatch.setenv("FORCE_COLOR", "0")
    assert not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not use_colour(io.StringIO())
    assert paint("critical", colour=True) == "\x1b[1;31mcritical\x1b[0m" and paint("critical", colour=False) == "critical"


def test_ratios_are_percentages():
    assert cell_text(-0.81, "p95_change") == "−81 %"
    assert cell_text(0.993, "hit_ratio") == "99.3 %"
    assert cell_text(0.25, "share_total") == "25 %"
    assert cell_text(12.34, "pct_total") == "12.3 %"
    assert cell_text(5.0, "self_ms_change") == "5" and cell_text(5.0, "shared_hit") == "5"
    frame = pd.DataFrame({"name": ["a"], "saved": [0.5]})
    frame.attrs["units"] = {"saved": "fraction"}
    assert format_table(frame).splitlines()[2].split() == ["a", "50", "%"]
    compared = cli("loadtest", SAMPLE / "loadtests" / "pgbench-before-index.log",
                   SAMPLE / "loadtests" / "pgbench-after-index.log").stdout
    assert "−84 %" in compared and "-0.84" not in compared and ESC not in compared


def test_a_kinds_boilerplate_is_said_once():
    src = sections.load_sources(sample=SAMPLE)
    part = sections.health(src)
    advice = sections.recommendations(src, [part])
    ranked = advice["recommendations"]
    sentence = ranked.loc[ranked["kind"] == "index_advice", "recommendation"].iloc[0]
    assert (ranked["kind"] == "index_advice").sum() >= 2
    text = "\n".join(b for b in advice.blocks if isinstance(b, str))
    assert text.count(sentence) == 1 and "For every `index_advice`" in text
    table = next(b for b in advice.blocks if isinstance(b, pd.DataFrame))
    assert not table.loc[table["kind"] == "index_advice", "recommendation"].str.contains("CONCURRENTLY").any()
    kept, shared = shared_advice(pd.DataFrame({"kind": ["a", "a", "b"], "recommendation": [
        "Index x. Then compare.", "Index y. Then compare.", "Then compare."]}))
    assert shared == {"a": "Then compare."} and list(kept["recommendation"]) == ["Index x.", "Index y.", "Then compare."]


def test_the_loadtest_html_page_escapes_and_shows_percentages(tmp_path):
    from perfkit import cli

    page = tmp_path / "load.html"
    locust = ROOT / "tests" / "fixtures" / "report" / "locust-demo_stats.csv"
    assert cli.main(["loadtest", str(locust), "--html", str(page)]) == 0
    text = page.read_text()
    assert "/api/orders/&lt;id&gt;" in text and "/api/orders/<id>" not in text
    assert '<td style="text-align:right">0 %</td>' in text  # error_rate
    assert 'class="pass">pass</td>' in text
