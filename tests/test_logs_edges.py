"""Requests that run across the edges of the byte ranges a large stderr log is read in.

A real server logs pgbench (BEGIN ... END transactions, simple and extended protocol) and an
application whose requests carry sqlcommenter ``request_id`` comments, each an N+1 inside a
transaction. The log is read in one pass and in many small byte ranges on two processes: the
requests, the N+1 findings and every other figure are the same; with the ranges' limits at
nothing (a range's requests cut at its start, as before the ranges were stitched) they are not,
so the comparison looks where it should.
"""

from __future__ import annotations

import importlib
import os
import subprocess

import pytest

from perfkit import nplusone
from perfkit.logs import stream

assess_module = importlib.import_module("perfkit.logs.assess")
PREFIX = "%m [%p] user=%u,db=%d,app=%a,client=%h "


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    import psycopg

    from perfkit.sandbox import Sandbox

    settings = {"log_destination": "'stderr'", "log_min_duration_statement": "0", "log_line_prefix": f"'{PREFIX}'",
                "log_filename": "'pg.log'"}
    with Sandbox(settings=settings) as sandbox:
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(sandbox.port), "PGUSER": "postgres",
               "PGDATABASE": sandbox.database}
        pgbench = str(sandbox.bindir / "pgbench")
        subprocess.run([pgbench, "-i", "-q", "-s", "1"], env=env, check=True, capture_output=True)
        for mode in ("simple", "extended"):
            subprocess.run([pgbench, "-n", "-c", "3", "-j", "1", "-t", "150", "-M", mode], env=env, check=True,
                           capture_output=True)
        with psycopg.connect(sandbox.dsn, autocommit=True) as conn:
            conn.execute("SET application_name = 'shop'")
            for request in range(60):
                with conn.transaction():
                    tag = f"/* request_id='r-{request}',route='/orders' */"
                    conn.execute(f"{tag} SELECT aid FROM pgbench_accounts WHERE bid = 1 LIMIT 12")
                    for row in range(12):  # the N+1: one query per row
                        conn.execute(f"{tag} SELECT abalance FROM pgbench_accounts WHERE aid = %s", (row + 1,))
        path = tmp_path_factory.mktemp("edges") / "pg.log"
        path.write_bytes((sandbox.log_dir / "pg.log").read_bytes())
    return path


def _ranges(monkeypatch) -> None:
    """Ranges of 16 KiB or so: 12 per process."""
    monkeypatch.setattr(stream, "RANGE_MIN_BYTES", 16 * 1024)
    monkeypatch.setattr(stream, "PIECES_PER_JOB", 12)


def _figures(path, monkeypatch, ranges: bool, engine: str = "auto") -> dict:
    """What does not depend on the ranges: not the labels of example requests, nor how many shapes
    each range parsed."""
    if ranges:
        _ranges(monkeypatch)
    scanned = stream.scan([path], stream.Settings(jobs=2 if ranges else 1, engine=engine, prefix=PREFIX))
    facts = assess_module.from_scan(scanned, n=10, slow_ms=200.0, include_noise=False, timezone=None).facts
    monkeypatch.undo()
    hits = {key: (hit["requests"], hit["executions"], round(hit["total_ms"], 6), hit["worst"]["repeats"],
                  sorted(hit["repeats"])) for key, hit in scanned.requests.hits.items()}
    big = {key: (b["requests"], sorted(b["sizes"])) for key, b in scanned.requests.big.items()}
    facts = {k: v for k, v in facts.items() if k not in ("shapes_parsed", "engines")}
    return {"requests": scanned.requests.requests, "hits": hits, "big": big, "facts": facts}


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_requests_across_range_edges_are_whole(log, monkeypatch, engine):
    one = _figures(log, monkeypatch, ranges=False, engine=engine)
    assert _figures(log, monkeypatch, ranges=True, engine=engine) == one
    # the log holds what the comparison needs: transactions, N+1 by request comment, many ranges
    assert one["requests"] > 600
    assert any(grouped == "request comment" and route == "/orders" for route, _, grouped in one["hits"])


def test_the_ranges_cut_requests_without_the_stitch(log, monkeypatch):
    """The same ranges with nothing kept for the range before: requests are cut at their edges."""
    one = _figures(log, monkeypatch, ranges=False)
    monkeypatch.setattr(nplusone, "_HEADS_MAX", 0)
    _ranges(monkeypatch)
    cut = stream.scan([log], stream.Settings(jobs=2, prefix=PREFIX))
    assert cut.requests.requests > one["requests"]


def test_a_head_past_its_limit_is_read_in_its_range(log, monkeypatch):
    """A connection's first statements past the limit: read in their range (cut there), nothing lost."""
    one = _figures(log, monkeypatch, ranges=False)
    monkeypatch.setattr(nplusone, "_HEAD_MAX", 2)
    _ranges(monkeypatch)
    scanned = stream.scan([log], stream.Settings(jobs=2, prefix=PREFIX))
    counted = sum(hit["executions"] for hit in scanned.requests.hits.values())
    assert scanned.requests.requests >= one["requests"]
    assert counted <= sum(hit[1] for hit in one["hits"].values())
    assert not scanned.requests.waiting and scanned.executions > 2000


def test_follow_adopts_the_next_ranges_state():
    """Unit level: a request open at one range's end goes on in the next range's first statements,
    and a BEGIN there starts the next range's own state."""
    from perfkit.logs.normalize import normalize

    select, begin, end = (normalize(t) for t in ("SELECT * FROM t WHERE id = 1", "BEGIN", "END"))
    epoch = stream._epoch_ms

    def feed(grouper, rows):
        for ms, shape in rows:
            grouper.add("c1", f"2024-01-01 00:00:00.{ms:03d} UTC", 1.0, shape.fingerprint, shape, "x", "app", epoch)

    first = nplusone.RequestGrouper(min_repeats=3)
    feed(first, [(1, begin), (2, select), (3, select)])
    second = nplusone.RequestGrouper(min_repeats=3, heads=True)
    feed(second, [(4, select), (5, end), (6, begin), (7, select), (8, select), (9, select), (10, end)])
    assert second.heads["c1"][0] == "ended" and len(second.heads["c1"][1]) == 3
    first.follow(second)
    first.close_all()
    whole = nplusone.RequestGrouper(min_repeats=3)
    feed(whole, [(1, begin), (2, select), (3, select), (4, select), (5, end), (6, begin), (7, select), (8, select),
                 (9, select), (10, end)])
    whole.close_all()
    assert first.requests == whole.requests == 2
    assert {k: (h["requests"], h["executions"]) for k, h in first.hits.items()} == \
        {k: (h["requests"], h["executions"]) for k, h in whole.hits.items()} != {}
