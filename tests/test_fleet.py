"""A fleet: the fleet file, `snapshot --fleet` over five real clusters (one stopped) into a store
on a real S3-compatible server (moto), and `report fleet` ranking the server made slower first.

Five clusters: the session sandbox and four small ones (shared_buffers 16MB) started in parallel
(about 11 s on this 2-core machine, measured), each with its own work_mem so the settings
comparison has something to find.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_store_typed import s3_root  # noqa: F401 - the moto S3 server fixture, reused

from perfkit import cli
from perfkit.errors import BadInputError
from perfkit.fleet import load_fleet
from perfkit.sandbox import Sandbox
from perfkit.store import SnapshotStore

PASSWORD = "Fl33t-Pw-7qK2zX9"  # a password written in a fleet DSN: must never be shown
NAMES = ("orders", "billing", "search", "slow", "gone")


def _workload(sandbox: Sandbox, name: str, delay: float) -> None:
    """The server's own workload: 20 calls of a statement whose time per call is ``delay``, and
    one statement only this server runs."""
    with sandbox.admin_connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pace (d float8)")
        conn.execute("CREATE OR REPLACE FUNCTION work(int) RETURNS int LANGUAGE sql AS "
                     "'SELECT $1 FROM (SELECT pg_sleep((SELECT d FROM pace LIMIT 1))) s'")
        conn.execute("DELETE FROM pace")
        conn.execute("INSERT INTO pace VALUES (%s)", (delay,))
        for i in range(20):
            conn.execute("SELECT work(%s)", (i,))
        conn.execute(f"CREATE TABLE IF NOT EXISTS only_{name} (id int)")
        for i in range(5):
            conn.execute(f"SELECT count(*) FROM only_{name} WHERE id > %s", (i,))


@pytest.fixture(scope="module")
def clusters(sandbox):
    """name -> Sandbox: the session sandbox ("orders") and four small clusters."""
    def start(index: int) -> Sandbox:
        return Sandbox(settings={"shared_buffers": "16MB", "max_connections": "20",
                                 "work_mem": f"{8 + index}MB"}).start()

    with ThreadPoolExecutor(4) as pool:
        extra = list(pool.map(start, range(4)))
    found = dict(zip(NAMES, [sandbox, *extra], strict=True))
    with found["billing"].admin_connect() as conn:  # a role with a real password (scram on 127.0.0.1)
        conn.execute(f"CREATE ROLE fleet_reader LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("GRANT pg_read_all_stats TO fleet_reader")
    try:
        yield found
    finally:
        for cluster in extra:
            cluster.stop()


def _fleet_file(tmp_path: Path, clusters: dict) -> Path:
    service = tmp_path / "pg_service.conf"
    service.write_text(f"[search-svc]\nhost=127.0.0.1\nport={clusters['search'].port}\ndbname=perfkit\nuser=postgres\n")
    billing = clusters["billing"]
    text = f"""
connect_timeout = 3

[[server]]
name = "orders"
dsn = "{clusters['orders'].dsn}"
env = "test"
team = "shop"

[[server]]
name = "billing"
dsn = "postgresql://fleet_reader:{PASSWORD}@127.0.0.1:{billing.port}/perfkit"
env = "test"

[[server]]
name = "search"
service = "search-svc"
env = "test"

[[server]]
name = "slow"
dsn = "{clusters['slow'].dsn}"
env = "test"

[[server]]
name = "gone"
dsn = "postgresql://fleet_reader:{PASSWORD}@127.0.0.1:{clusters['gone'].port}/perfkit"
env = "test"
"""
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def _no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


def test_snapshot_fleet_stores_four_reports_the_stopped_one_and_report_ranks_the_slowed_server_first(
        clusters, s3_root, tmp_path, monkeypatch, capsys):  # noqa: F811 - s3_root is the fixture
    fleet = _fleet_file(tmp_path, clusters)
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "pg_service.conf"))
    root = s3_root.replace("/store?", "/fleet?")
    for name in NAMES[:4]:
        _workload(clusters[name], name, 0.001)
    clusters["gone"].stop()  # stopped before collection

    assert cli.main(["snapshot", "--fleet", str(fleet), "--store", root, "--jobs", "8", "--json"]) == 3
    first = capsys.readouterr()
    _no_password(first.out, first.err)
    outcome = {o["server"]: o for o in json.loads(first.out)["servers"]}
    assert [n for n in NAMES if outcome[n]["ok"]] == ["orders", "billing", "search", "slow"]
    assert outcome["gone"]["ok"] is False and "cannot connect" in outcome["gone"]["error"]
    assert all(outcome[n]["path"].startswith(f"s3://perfkit/fleet/server={n}/") for n in NAMES[:4])
    assert "a password is written in this dsn" in first.err and "[5/5]" in first.err

    for name in NAMES[:4]:  # the second week: "slow" takes 20x longer per call
        _workload(clusters[name], name, 0.02 if name == "slow" else 0.001)
    assert cli.main(["snapshot", "--fleet", str(fleet), "--store", root]) == 3
    second = capsys.readouterr()
    _no_password(second.out, second.err)
    assert re.search(r"^gone: failed: cannot connect", second.out, re.M)
    assert "4 of 5 servers stored; failed: gone" in second.err

    out = tmp_path / "reports"
    assert cli.main(["report", "fleet", "--fleet", str(fleet), "--store", root, "--out", str(out),
                     "--since", "1h", "--json"]) == 0
    shown = capsys.readouterr()
    _no_password(shown.out, shown.err, (out / "fleet.html").read_text(), (out / "fleet.json").read_text())
    page = json.loads((out / "fleet.json").read_text())
    servers = page["servers"]
    assert servers[0]["server"] == "slow" and servers[0]["worse_s"] > 0.2
    assert all(s["worse_s"] < 0.1 for s in servers[1:])
    status = {s["server"]: s["status"] for s in servers}
    assert status["gone"] == "no snapshots; unreachable now" and status["orders"] == "ok"
    assert {r["server"] for r in page["regressions"]} == {"slow"}  # work() and the query inside it
    assert page["regressions"][0]["severity"] == "critical" and "work" in page["regressions"][0]["subject"]
    shared = [s for s in page["statements"] if "work(" in s["query"]]
    # one text across four servers, under more than one queryid (the function's oid differs between clusters)
    assert shared and shared[0]["servers"] == 4 and shared[0]["queryids"] >= 2
    work_mem = [s for s in page["settings"] if s["setting"] == "work_mem"]
    assert work_mem and work_mem[0]["tag"] == "env=test" and "gone" not in work_mem[0]["values"]
    assert any("not reachable now" in note for note in page["notes"])
    html = (out / "fleet.html").read_text()
    assert "<h2>Servers, the most time lost first</h2>" in html and "<script" not in html

    # --per-server: the weekly report of each server (here one: a kernel per server is slow), linked
    text = fleet.read_text()
    one = tmp_path / "billing.toml"
    one.write_text(text[:text.index("[[server]]")] + text[text.index('[[server]]\nname = "billing"'):
                                                          text.index('[[server]]\nname = "search"')])
    out = tmp_path / "per-server"
    assert cli.main(["report", "fleet", "--fleet", str(one), "--store", root, "--out", str(out), "--since", "1h",
                     "--per-server"]) == 0
    shown = capsys.readouterr()
    _no_password(shown.out, shown.err, *(f.read_text(errors="replace") for f in out.rglob("*") if f.is_file()))
    row, = json.loads((out / "fleet.json").read_text())["servers"]
    assert row["report"] == "ok" and (out / row["href"]).is_file() and row["findings_warning"] is not None
    assert f'<a href="{row["href"]}">ok</a>' in (out / "fleet.html").read_text()
    # the report's own snapshot landed in the fleet's S3 store, under the server's fleet name
    assert len(SnapshotStore(root).list("billing")) == 3
    assert not list(Path("notebooks").glob("s3*")) and not (Path(__file__).parent.parent / "notebooks" / "s3:").exists()


@pytest.mark.parametrize(("text", "message"), [
    ('[[server]]\nname = "a"\ndsn = "host=x"\nport = 5\n', "fleet.toml, line 4: unknown server setting 'port'"),
    ('store = "x"\n[[server]]\nname = "a\n', "fleet.toml, line 3: not valid TOML"),
    ('[[server]]\nname = "a"\nenv = "prod"\n', "fleet.toml, line 1: a server needs exactly one of dsn"),
    ('[[server]]\nname = "a"\nservice = "s"\n[[server]]\nname = "a"\nservice = "t"\n',
     "fleet.toml, line 4: server name 'a' is used twice (first at line 1)"),
    ('[slo.env]\nprod = "missing.toml"\n[[server]]\nservice = "s"\n', "fleet.toml, line 2: SLO file missing.toml"),
    ('[[server]]\ndsn = "postgresql://u:Pw-zz9@h:5432/db?bogus=1"\n', "fleet.toml, line 2: dsn is not a valid connection string"),
    ('jobs = 0\n[[server]]\nservice = "s"\n', "fleet.toml, line 1: jobs must be a whole number above 0"),
    ("", "fleet.toml: no servers"),
])
def test_a_bad_fleet_file_is_one_line_with_its_line(tmp_path, text, message):
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(BadInputError) as caught:
        load_fleet(path)
    shown = str(caught.value)
    assert shown.replace(str(tmp_path) + "/", "").startswith(message) and "\n" not in shown
    assert "Pw-zz9" not in shown


def test_fleet_file_names_tags_and_slo_per_tag(tmp_path):
    (tmp_path / "prod-slo.toml").write_text("[default]\np95_ms = 300\n")
    path = tmp_path / "perfkit.toml"
    path.write_text('store = "snaps"\n[slo.env]\nprod = "prod-slo.toml"\n\n[[server]]\nservice = "orders-prod"\nenv = "prod"\n'
                    'region = "eu"\ntags = { tier = "gold" }\n\n[[server]]\ndsn = "host=db2 port=6432 dbname=shop"\n'
                    'env = "staging"\n')
    fleet = load_fleet(path)
    first, second = fleet.servers
    assert (first.name, first.dsn, first.tags) == ("orders-prod", "service=orders-prod",
                                                   {"env": "prod", "region": "eu", "tier": "gold"})
    assert first.slo == str((tmp_path / "prod-slo.toml").resolve()) and second.slo is None
    assert second.name == "db2-6432-shop" and fleet.warnings == []
    assert fleet.store == str((tmp_path / "snaps").resolve())  # a folder: relative to the fleet file
    assert [s.name for s in fleet.tagged()[("env", "prod")]] == ["orders-prod"]


def test_fleet_queries_read_files_an_older_perfkit_wrote(tmp_path):
    """Files without the columns of the declared schema (no snapshot_id, stats_since, dealloc) are
    read beside typed ones: DuckDB matches by name, and unions the schemas when it must."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfkit.fleet import Fleet, Server
    from perfkit.fleetreport import build
    from perfkit.store import SnapshotStore

    store = SnapshotStore(tmp_path / "store")
    at = pd.Timestamp("2026-11-20 08:00", tz="UTC")

    def frame(calls: int, mean: float, when) -> pd.DataFrame:
        return pd.DataFrame({"queryid": [7], "datname": ["app"], "rolname": ["app"], "toplevel": [True],
                             "query": ["SELECT * FROM orders WHERE id = $1"], "calls": [calls],
                             "total_exec_ms": [calls * mean], "mean_exec_ms": [mean], "captured_at": [when]})

    store.save(frame(100, 1.0, at - pd.Timedelta(days=7)), server="typed")
    store.save(frame(200, 1.0, at), server="typed")  # the same pace: 100 calls at 1 ms
    for calls, total, when in ((100, 100.0, at - pd.Timedelta(days=7)), (200, 700.0, at)):  # 6 ms a call now
        folder = tmp_path / "store" / "server=old" / f"date={when:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        old = frame(calls, total / calls, when).assign(total_exec_ms=total).drop(columns=["toplevel"])
        pq.write_table(pa.Table.from_pandas(old, preserve_index=False), folder / f"{when:%Y%m%dT%H%M%S.%fZ}-0abc.parquet")
    fleet = Fleet(path=tmp_path / "f.toml", servers=[Server("typed", "host=x"), Server("old", "host=y")])
    page = build(fleet, store, live=False)
    assert list(page.servers["server"]) == ["old", "typed"]
    assert page.servers["worse_s"].iloc[0] == pytest.approx(0.5) and page.servers["worse_s"].iloc[1] == 0
    assert list(page.regressions["server"]) == ["old"]
    assert page.statements["servers"].iloc[0] == 2 and page.statements["calls"].iloc[0] == 200


@pytest.mark.parametrize(("args", "message"), [
    (["snapshot", "--jobs", "3"], "--jobs goes with --fleet FILE"),
    (["snapshot", "--fleet", "missing.toml"], "missing.toml: fleet file not found"),
    (["snapshot", "--fleet"], "no fleet: give --fleet FILE or write perfkit.toml here"),
    (["report", "fleet", "--fleet", "f.toml", "--sample"], "report fleet takes its servers from --fleet FILE"),
    (["report", "fleet", "--fleet", "f.toml", "--since", "soon"], "--since must look like 7d"),
])
def test_fleet_command_line_mistakes_exit_2_in_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.toml").write_text('[[server]]\nservice = "nowhere"\n')
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
