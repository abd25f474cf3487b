"""Plan changes week over week: fingerprints kept beside the snapshots, plan_changed around an index."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from perfkit import plans, statements
from perfkit.plans.history import PlanHistory, changes_between, fingerprint, record_plans
from perfkit.store import SnapshotStore


def _captured(engine, marker):
    snap = statements.snapshot(engine)
    snap = snap[snap["query"].str.contains(marker, regex=False)]
    captured, notes = plans.costliest(engine, snap, n=1)
    assert len(captured) == 1, notes
    return captured


def test_plan_changed_when_an_index_goes_and_nothing_when_unchanged(admin, engine, tmp_path, marker):
    admin.execute(f"CREATE TABLE {marker} (id int, k int, pad text)")
    admin.execute(f"INSERT INTO {marker} SELECT g, g % 5000, md5(g::text) FROM generate_series(1, 60000) g")
    admin.execute(f"CREATE INDEX {marker}_k ON {marker} (k)")
    admin.execute(f"ANALYZE {marker}")
    query = f"SELECT count(pad) FROM {marker} WHERE k = %s"
    for value in range(20):
        admin.execute(query, (value,))
    week1, week2, week3 = (pd.Timestamp("2026-01-05", tz="UTC") + pd.Timedelta(days=7 * i) for i in range(3))
    store = tmp_path / "snapshots"
    changed, _ = record_plans(store, "sandbox", _captured(engine, marker), captured_at=week1)
    assert changed == []  # nothing to compare with yet
    changed, _ = record_plans(store, "sandbox", _captured(engine, marker), captured_at=week2)
    assert changed == []  # the same plan: nothing
    admin.execute(f"DROP INDEX {marker}_k")
    for value in range(20):  # slower now: the mean time rises
        admin.execute(query, (value,))
    captured = _captured(engine, marker)
    changed, comparisons = record_plans(store, "sandbox", captured, captured_at=week3)
    assert [f["kind"] for f in changed] == ["plan_changed"]
    assert changed[0]["severity"] == "warning" and "(slower)" in changed[0]["evidence"]
    assert "Index Scan" in changed[0]["evidence"] or "Bitmap" in changed[0]["evidence"]
    (queryid, comparison), = comparisons.items()
    assert queryid == captured[0][1].extra["queryid"]
    assert set(comparison.nodes["status"]) & {"replaced", "added", "removed"}
    # kept in their own files beside the snapshots, which stay untouched
    history = PlanHistory(store).load("sandbox")
    assert len(history) == 3 and history["fingerprint"].nunique() == 2
    assert fingerprint(captured[0][1]) == history["fingerprint"].iat[-1]
    assert SnapshotStore(store).servers() == [] and SnapshotStore(store).list().empty
    result = plans.assess(captured, plan_changes=(changed, comparisons))
    assert "plan_changed" in set(result.findings["kind"]) and queryid in result.data["plan_changes"]
    # what `perfkit diff` shows between two stored weeks
    assert changes_between(store, "sandbox", [queryid], week1, week2)[0] == []  # unchanged: nothing
    between, attached = changes_between(store, "sandbox", [queryid, None], week2, week3)
    assert [f["kind"] for f in between] == ["plan_changed"] and between[0]["severity"] == "warning"
    assert list(attached) == [queryid]


def test_perfkit_explain_queryid_stores_the_fingerprint_and_says_when_it_changed(admin, engine, dsn, tmp_path, marker,
                                                                                   monkeypatch, capsys):
    import json

    from perfkit.cli import main

    admin.execute(f"CREATE TABLE {marker} (id int, k int)")
    admin.execute(f"INSERT INTO {marker} SELECT g, g % 1000 FROM generate_series(1, 20000) g")
    admin.execute(f"CREATE INDEX {marker}_k ON {marker} (k)")
    admin.execute(f"ANALYZE {marker}")
    admin.execute(f"SELECT count(*) FROM {marker} WHERE k = %s", (3,))
    snap = statements.snapshot(engine)
    mine = snap["query"].str.contains(marker, regex=False) & snap["query"].str.startswith("SELECT count")
    queryid = int(snap.loc[mine, "queryid"].iat[0])
    monkeypatch.setenv("PERFKIT_STORE", str(tmp_path))
    assert main(["explain", "--dsn", dsn, "--queryid", str(queryid), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert "plan_changed" not in {f["kind"] for f in first["findings"]}
    admin.execute(f"DROP INDEX {marker}_k")
    assert main(["explain", "--dsn", dsn, "--queryid", str(queryid), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert "plan_changed" in {f["kind"] for f in second["findings"]}
    stored = SnapshotStore(tmp_path).list_dataset("plan_history")
    assert len(stored) == 2 and not (tmp_path / "plans").exists()  # the store's dataset, not files of its own
    assert len(PlanHistory(tmp_path).load(stored["server"].iat[0])) == 2


FIXTURES = Path(__file__).parent / "fixtures" / "plans"


def _fixture_plan(name: str, queryid: int = 42, mean_ms: float = 10.0):
    plan = plans.parse_file(FIXTURES / name)
    plan.extra.update(queryid=queryid, mean_ms=mean_ms)
    return plan


def test_history_is_a_dataset_of_the_store_and_the_old_layout_is_still_read(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfkit.plans.history import HISTORY_COLUMNS, shape

    week1, week2, week3 = (pd.Timestamp("2026-02-02", tz="UTC") + pd.Timedelta(days=7 * i) for i in range(3))
    before = _fixture_plan("seq_scan.json", mean_ms=250.0)
    # a row as the perfkit before the dataset wrote it: <store>/plans/server=<id>/<time>-<tag>.parquet
    legacy = tmp_path / "plans" / "server=db1"
    legacy.mkdir(parents=True)
    old = pd.DataFrame([{"queryid": 42, "captured_at": week1, "fingerprint": fingerprint(before),
                         "shape": "\n".join(shape(before)), "mean_ms": 250.0,
                         "document": json.dumps(before.document)}], columns=HISTORY_COLUMNS)
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), legacy / "20260202T000000.000000Z-abcd.parquet")
    # the same plan again: nothing; the index plan: plan_changed against the old layout's row
    assert record_plans(tmp_path, "db1", [("q", _fixture_plan("seq_scan.json", mean_ms=251.0))], captured_at=week2)[0] == []
    after = _fixture_plan("seq_scan_after_index.json", mean_ms=170.0)
    changed, comparisons = record_plans(tmp_path, "db1", [("q", after)], captured_at=week3)
    assert [(f["kind"], f["severity"]) for f in changed] == [("plan_changed", "info")]  # faster: info
    assert comparisons[42].shape_changed and comparisons[42].fingerprint_after == fingerprint(after)
    history = PlanHistory(tmp_path).load("db1")
    assert list(history["captured_at"]) == [week1, week2, week3]
    assert list(history["fingerprint"]) == [fingerprint(before), fingerprint(before), fingerprint(after)]
    listing = SnapshotStore(tmp_path).list_dataset("plan_history", "db1")
    assert len(listing) == 2 and all("_datasets/plan_history/server=db1/date=" in str(p) for p in listing["path"])
    assert len(list(legacy.iterdir())) == 1  # the old file is read, never rewritten
    assert changes_between(tmp_path, "db1", [42], week1, week2)[0] == []
    assert [f["kind"] for f in changes_between(tmp_path, "db1", [42], week2, week3)[0]] == ["plan_changed"]


def test_perfkit_plan_before_after_says_whether_the_shape_changed(capsys):
    import json

    from perfkit.cli import main

    before, after = str(FIXTURES / "seq_scan.json"), str(FIXTURES / "seq_scan_after_index.json")
    assert main(["plan", before, after]) == 0
    out = capsys.readouterr().out
    old, new = fingerprint(plans.parse_file(before)), fingerprint(plans.parse_file(after))
    assert f"The plan's shape changed (fingerprint {old} became {new})." in " ".join(out.split())
    assert main(["plan", before, after, "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)["comparison"]
    assert comparison["shape_changed"] is True
    assert (comparison["fingerprint_before"], comparison["fingerprint_after"]) == (old, new)
    assert main(["plan", before, before, "--json"]) == 0
    same = json.loads(capsys.readouterr().out)["comparison"]
    assert same["shape_changed"] is False and f"shape is unchanged (fingerprint {old})" in same["summary"]
