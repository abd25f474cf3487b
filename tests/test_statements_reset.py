"""Stats resets in statements.diff: a full reset labels what vanished, a single statement's
reset is seen from figures that cannot move that way otherwise (issue 13)."""

from __future__ import annotations

import pandas as pd
import pytest

from perfkit import db, statements
from perfkit.sandbox import Sandbox

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def row(queryid: int, calls: float, total: float, mn: float, mx: float, stddev: float, at: pd.Timestamp, **extra) -> dict:
    counters = dict.fromkeys(statements.COUNTERS, 0.0)
    counters.update(calls=calls, total_exec_ms=total)
    return {"datname": "shop", "rolname": "app", "toplevel": True, "query": f"SELECT {queryid}", "server": "s",
            "queryid": queryid, **counters, "mean_exec_ms": total / calls, "min_exec_ms": mn, "max_exec_ms": mx,
            "stddev_exec_ms": stddev, "captured_at": at, **extra}


def test_statements_gone_in_a_full_reset_are_reset_not_evicted():
    later = T0 + pd.Timedelta(days=1)
    before = pd.DataFrame([row(1, 10, 20, 1, 3, 0.5, T0, stats_reset=T0 - pd.Timedelta(days=9)),
                           row(2, 5, 5, 1, 1, 0, T0, stats_reset=T0 - pd.Timedelta(days=9))])
    after = pd.DataFrame([row(1, 2, 4, 2, 2, 0, later, stats_reset=T0 + pd.Timedelta(hours=2))])
    changes = statements.diff(before, after).set_index("queryid")
    assert changes.attrs["stats_reset"] is True
    assert changes.loc[2, "status"] == "reset"  # vanished because everything was reset
    assert pd.isna(changes.loc[2, "calls"])
    assert changes.loc[1, "status"] == "reset"
    # the same vanishing without a reset is an eviction
    after_no_reset = pd.DataFrame([row(1, 12, 24, 1, 3, 0.5, later, stats_reset=T0 - pd.Timedelta(days=9))])
    plain = statements.diff(before, after_no_reset).set_index("queryid")
    assert plain.loc[2, "status"] == "evicted"
    assert plain.loc[1, "status"] == "changed"


@pytest.mark.parametrize(
    "after, why",
    [
        # 10 calls of 1..3 ms, then reset alone, then 12 calls of 2.5 ms: min rose
        (dict(calls=12, total=30, mn=2.5, mx=2.5, stddev=0.0), "min rose"),
        # 12 calls of 1.2..1.8 ms after a reset: max fell
        (dict(calls=12, total=18, mn=1.0, mx=1.8, stddev=0.2), "max fell"),
        # same min and max, but the 2 calls in between would have a mean below the minimum
        (dict(calls=12, total=20.5, mn=1.0, mx=3.0, stddev=0.5), "interval mean below min"),
    ],
    ids=["min-rose", "max-fell", "mean-outside"],
)
def test_single_statement_reset_before_17_is_seen(after, why):
    later = T0 + pd.Timedelta(days=1)
    before = pd.DataFrame([row(1, 10, 20, 1.0, 3.0, 0.5, T0, stats_reset=T0)])
    now = pd.DataFrame([row(1, after["calls"], after["total"], after["mn"], after["mx"], after["stddev"], later,
                            stats_reset=T0)])
    changes = statements.diff(before, now)
    assert changes.attrs["stats_reset"] is False
    mine = changes.iloc[0]
    assert mine["status"] == "reset", why
    assert mine["calls"] == after["calls"]  # a lower bound, not "changed, 2 calls"


def test_a_plain_interval_is_changed_with_a_note_that_a_reset_cannot_be_ruled_out():
    later = T0 + pd.Timedelta(days=1)
    before = pd.DataFrame([row(1, 10, 20, 1.0, 3.0, 0.5, T0, stats_reset=T0)])
    # 4 more calls of 2 ms: min, max, mean and variance all consistent
    sumsq_before = 10 * (0.5**2 + 2.0**2)
    sumsq = sumsq_before + 4 * 4.0
    mean = 28 / 14
    now = pd.DataFrame([row(1, 14, 28, 1.0, 3.0, (sumsq / 14 - mean**2) ** 0.5, later, stats_reset=T0)])
    changes = statements.diff(before, now)
    assert changes.iloc[0]["status"] == "changed"
    assert changes.iloc[0]["calls"] == 4
    assert "cannot be ruled out" in changes.attrs["reset_note"]
    # with stats_since (PostgreSQL 17+) the note is not needed, and stats_since decides
    before17 = before.assign(stats_since=T0 - pd.Timedelta(days=5))
    now17 = now.assign(stats_since=T0 - pd.Timedelta(days=5))
    assert statements.diff(before17, now17).attrs["reset_note"] == ""
    moved = now17.assign(stats_since=T0 + pd.Timedelta(hours=1))
    assert statements.diff(before17, moved).iloc[0]["status"] == "reset"


def test_single_statement_reset_on_postgresql_15():
    """pg_stat_statements_reset(userid, dbid, queryid) on one statement, then more calls than before."""
    with Sandbox() as sb:
        engine = db.connect(sb.dsn)
        try:
            with sb.admin_connect() as conn:
                conn.execute("CREATE TABLE r (id int)")
                conn.execute("INSERT INTO r SELECT generate_series(1, 20000)")
                conn.execute("CREATE TABLE q (id int)")
                for _ in range(3):
                    conn.execute("SELECT count(*) FROM r")  # the slow calls before the reset
                for _ in range(2):
                    conn.execute("SELECT count(*) FROM q")
                before = statements.snapshot(engine)
                mine = statements.find(before, "count(*) FROM r").iloc[0]
                conn.execute("SELECT pg_stat_statements_reset(userid, dbid, queryid) FROM pg_stat_statements "
                             "WHERE queryid = %s", (int(mine["queryid"]),))  # the test resets; perfkit never does
                conn.execute("TRUNCATE r")  # now the same statement is fast: its max falls
                for _ in range(7):
                    conn.execute("SELECT count(*) FROM r")
                for _ in range(2):
                    conn.execute("SELECT count(*) FROM q")
                after = statements.snapshot(engine)
        finally:
            engine.dispose()
    assert int(after.attrs.get("server_version_num", 150000)) // 10000 < 17
    changes = statements.diff(before, after)
    assert changes.attrs["stats_reset"] is False  # pg_stat_statements_info.stats_reset did not move
    reset = statements.find(changes, "count(*) FROM r").iloc[0]
    assert reset["status"] == "reset"
    assert reset["calls"] == 7  # counted since the reset, not "changed, 4 calls"
    other = statements.find(changes, "count(*) FROM q").iloc[0]
    assert other["status"] == "changed" and other["calls"] == 2
    assert "cannot be ruled out" in changes.attrs["reset_note"]
