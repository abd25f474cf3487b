"""autovacuum_lagging on a real log (tests/fixtures/logs/autovacuum.log, scripts/capture_autovacuum_log.py):
the per-table figures checked against the log's own lines read here with re, and the rule of
docs/README-logs.md (a backlog, a slow run, dead tuples held back) applied to them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import perfkit.logs
from perfkit.logs.assess import _scale_factor

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
RUN = re.compile(r'automatic vacuum of table "(?P<table>[^"]+)".*?\n\ttuples: (?P<removed>\d+) removed, (?P<remain>\d+) '
                 r"remain, (?P<held>\d+) are dead but not yet removable", re.S)


@pytest.fixture(scope="module")
def assessed():
    return perfkit.logs.assess(LOGS / "autovacuum.log", jobs=1)


def test_per_table_figures_match_the_log(assessed):
    text = (LOGS / "autovacuum.log").read_text()
    runs: dict[str, list] = {}
    for found in RUN.finditer(text):
        runs.setdefault(found["table"], []).append((int(found["removed"]), int(found["held"])))
    table = assessed.tables["autovacuum"].set_index(["action", "table"])
    for name, seen in runs.items():
        row = table.loc[("vacuum", name)]
        assert row["runs"] == len(seen)
        assert row["tuples_removed"] == sum(r for r, _ in seen)
        assert row["max_not_removable"] == max(h for _, h in seen)
    assert runs["perfkit.public.orders"] == [(0, 120000), (120000, 0)]


def test_lagging_tables_and_their_fix(assessed):
    lagging = assessed.findings[assessed.findings["kind"] == "autovacuum_lagging"].set_index("table")
    assert sorted(lagging.index) == ["perfkit.public.orders", "perfkit.public.queue"]  # not small (150 dead)
    orders = lagging.loc["perfkit.public.orders"]
    assert orders["reasons"] == ["backlog", "held_back"]
    assert orders["sql"] == "ALTER TABLE public.orders SET (autovacuum_vacuum_scale_factor = 0.05);"
    assert "120,000 dead tuples" in orders["evidence"]
    queue = lagging.loc["perfkit.public.queue"]  # 30,000 dead held back by the open snapshot: no scale factor helps
    assert queue["reasons"] == ["held_back"] and queue["fix"] is None and "snapshot" in queue["recommendation"]


def test_the_events_fixture_has_no_lagging_table():
    found = perfkit.logs.assess(LOGS / "events" / "postgresql.log", jobs=1).findings
    assert "autovacuum_lagging" not in set(found["kind"])


@pytest.mark.parametrize(("live", "factor"), [(50_000, 0.05), (180_000, 0.05), (1_000_000, 0.01), (3_000_000, 0.003),
                                              (10**9, 0.001)])
def test_scale_factor_lets_about_ten_thousand_dead_tuples_gather(live, factor):
    assert _scale_factor(live) == factor
