"""Where the evidence comes from, said and chosen right: a live statement wins over the sample plan
in 02-plan, explain without --analyze says what --analyze would add, diff names its snapshots
(--from/--to, --since in seconds), and a server nobody listens on is named with the DSN's origin."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from perfkit import cli, db, sections
from perfkit.errors import BadInputError, DatabaseUnreachable
from perfkit.store import SnapshotStore, parse_since

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
PLAN = SAMPLE / "plans" / "invoices-by-tenant.json"
AFTER = SAMPLE / "plans" / "invoices-by-tenant-after-index.json"
STORE = SAMPLE / "store"


def test_a_live_statement_wins_over_the_sample_plan(tenant_db):
    src = sections.load_sources(tenant_db, sample=SAMPLE, plans=str(PLAN))
    try:
        sql = "SELECT id FROM invoices WHERE tenant_id = 3 ORDER BY created_at DESC LIMIT 5"
        deep = sections.plan(src, sql=sql, compare_with=str(AFTER))
    finally:
        src.engine.dispose()
    assert not deep.skipped
    assert deep.facts["plan_source"] == "sql"
    text = "\n".join(b for b in deep.blocks if isinstance(b, str))
    assert "Plan source: `sql` explained on" in text and "tenant_problems" in text
    assert "Not read: invoices-by-tenant.json" in text
    assert "Not compared with invoices-by-tenant-after-index.json" in text
    assert any(sql[:40] in b for b in deep.blocks if isinstance(b, str))  # the plan shown is the live one
    sample = sections.plan(sections.load_sources(sample=SAMPLE, plans=str(PLAN)))
    assert sample.facts["plan_source"] == "files"
    assert "Plan source: invoices-by-tenant.json (the sample data)." in sample.blocks


def test_explain_without_analyze_hints_at_it(tenant_db, capsys):
    code = cli.main(["explain", "--dsn", tenant_db, "--sql", "SELECT id FROM invoices WHERE tenant_id = $1"])
    out = capsys.readouterr().out
    assert code == 0
    hint = " ".join(out[out.index("hint: "):].split())
    assert "--analyze --param VALUE1" in hint and "actual rows and times" in hint
    cli.main(["explain", "--dsn", tenant_db, "--sql", "SELECT 1", "--analyze"])
    assert "hint:" not in capsys.readouterr().out


def test_diff_names_its_snapshots_and_takes_seconds(capsys):
    assert parse_since("90s") == pd.Timedelta(seconds=90) and parse_since("2 sec") == pd.Timedelta(seconds=2)
    with pytest.raises(BadInputError, match="90s"):
        parse_since("9x")
    assert cli.main(["snapshot", "--list", "--store", str(STORE)]) == 0
    listing = capsys.readouterr().out
    ids = [p.stem for p in SnapshotStore(STORE).list()["path"]]
    assert all(i in listing for i in ids) and len(ids) == 2
    assert cli.main(["diff", "--store", str(STORE), "--from", ids[0][:15], "--to", ids[1]]) == 0
    out = capsys.readouterr().out
    assert f"--from {ids[0]}" in out.splitlines()[0] and "changed" in out
    assert cli.main(["diff", "--store", str(STORE), "--since", "2s"]) == 0
    assert "asked for 2s" in capsys.readouterr().out
    assert cli.main(["diff", "--store", str(STORE), "--from", ids[1], "--to", ids[0]]) == 2  # bad input
    assert "not older" in capsys.readouterr().err
    with pytest.raises(BadInputError, match="more than one"):
        SnapshotStore(STORE).find(ids[0][:8])


def test_no_server_listening_says_so_and_where_the_settings_came_from(monkeypatch, tmp_path):
    monkeypatch.delenv("PERFKIT_DSN", raising=False)
    for name in ("PGHOSTADDR", "PGSERVICE", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGHOST", str(tmp_path))
    monkeypatch.setenv("PGPORT", "5999")
    with pytest.raises(DatabaseUnreachable) as caught:
        db.connect()
    message = str(caught.value)
    assert f"no server listens on the socket {tmp_path}/.s.PGSQL.5999" in message
    assert f"PGHOST={tmp_path}" in message and "no --dsn or $PERFKIT_DSN" in message
    with pytest.raises(DatabaseUnreachable) as caught:
        db.connect("host=127.0.0.1 port=1 user=u password=hunter2secret connect_timeout=3")
    message = str(caught.value)
    assert "no server listens on 127.0.0.1 port 1" in message and "the DSN given" in message
    assert "hunter2" not in message
    monkeypatch.setenv("PERFKIT_DSN", "postgresql://u:hunter2secret@127.0.0.1:1/x")
    with pytest.raises(DatabaseUnreachable) as caught:
        db.connect()
    assert "$PERFKIT_DSN" in str(caught.value) and "hunter2" not in str(caught.value)
