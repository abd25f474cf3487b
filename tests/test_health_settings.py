"""perfkit.health settings review: each setting weighed against memory and workload evidence, thresholds flip it."""

from __future__ import annotations

import uuid

import pytest

from perfkit import db
from perfkit.health import settings

GB = 1024**3
MB = 1024**2


@pytest.fixture(scope="module")
def spilling(sandbox):
    """A statement that sorts to disk (work_mem 64kB in its session), recorded by pg_stat_statements."""
    schema = "hx_" + uuid.uuid4().hex[:8]
    with sandbox.admin_connect() as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(f"CREATE TABLE {schema}.events (id int, payload text)")
        admin.execute(f"INSERT INTO {schema}.events SELECT g, md5(g::text) FROM generate_series(1, 30000) g")
        admin.execute(f"ANALYZE {schema}.events")
        admin.execute("SET work_mem = '64kB'")
        for _ in range(3):
            admin.execute(f"SELECT id, payload FROM {schema}.events ORDER BY payload").fetchall()
        admin.execute("SELECT pg_stat_force_next_flush()")
        yield schema
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def run(check, engine, **thresholds):
    with db.session(engine) as conn:
        return check(conn, **thresholds)


def test_work_mem_spills_are_evidence(engine, spilling):
    found = run(settings.work_mem, engine, min_temp_bytes=1, memory_bytes=64 * GB)
    spill = [f for f in found if "spilled" in f["evidence"]]
    assert spill and spill[0]["kind"] == "setting_work_mem"
    assert f"{spilling}.events ORDER BY payload" in spill[0]["evidence"]
    assert "work_mem is 4MB" in spill[0]["evidence"]
    assert "ALTER SYSTEM SET work_mem" in spill[0]["sql"]
    assert not [f for f in run(settings.work_mem, engine, min_temp_bytes=10**15, memory_bytes=64 * GB) if "spilled" in f["evidence"]]


def test_work_mem_times_connections_above_memory(engine):
    # 4 MB x 100 connections = 400 MB: more than a 256 MB machine, fine on a 64 GB one
    small = run(settings.work_mem, engine, min_temp_bytes=10**15, memory_bytes=256 * MB)
    assert [f["kind"] for f in small] == ["setting_work_mem"] and "more than" in small[0]["evidence"]
    assert run(settings.work_mem, engine, min_temp_bytes=10**15, memory_bytes=64 * GB) == []


@pytest.mark.parametrize(
    "memory, severity",
    [(8 * GB, "warning"), (512 * MB, None), (256 * MB, "info")],
)
def test_shared_buffers_against_memory(engine, memory, severity):
    # the sandbox runs with 128MB: 1.6 % of 8 GB, 25 % of 512 MB, 50 % of 256 MB
    found = run(settings.shared_buffers, engine, memory_bytes=memory)
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    assert all(f["kind"] == "setting_shared_buffers" for f in found)
    assert not run(settings.shared_buffers, engine, memory_bytes=8 * GB, min_share=0.01)


def test_effective_cache_size_against_memory(engine):
    # 4GB is half of 8 GB (not below min_share 0.5) and a quarter of 16 GB
    assert run(settings.effective_cache_size, engine, memory_bytes=8 * GB) == []
    found = run(settings.effective_cache_size, engine, memory_bytes=16 * GB)
    assert [f["kind"] for f in found] == ["setting_effective_cache_size"]
    assert "25.0 % of 16.0 GB" in found[0]["evidence"]
    assert run(settings.effective_cache_size, engine, memory_bytes=16 * GB, min_share=0.2) == []


def test_random_page_cost_with_a_cached_workload(engine):
    found = run(settings.random_page_cost, engine, min_hit_ratio=0.0, min_blocks=0)
    assert [f["kind"] for f in found] == ["setting_random_page_cost"]
    assert "random_page_cost is 4" in found[0]["evidence"] and "1.1" in found[0]["sql"]
    assert run(settings.random_page_cost, engine, min_hit_ratio=0.0, min_blocks=0, max_cost=4.0) == []
    assert run(settings.random_page_cost, engine, min_hit_ratio=1.01, min_blocks=0) == []


def test_autovacuum_scale_factors_on_large_tables(engine, spilling):
    assert run(settings.autovacuum, engine) == []  # no table of a million rows here
    found = run(settings.autovacuum, engine, large_table_rows=20_000, limit=1000)
    kinds = {f["kind"] for f in found}
    assert kinds == {"setting_autovacuum_vacuum_scale_factor", "setting_autovacuum_analyze_scale_factor"}
    vacuum = next(f for f in found if f["kind"] == "setting_autovacuum_vacuum_scale_factor")
    assert f"ALTER TABLE {spilling}.events SET (autovacuum_vacuum_scale_factor = 0.02);" in vacuum["sql"]
    assert run(settings.autovacuum, engine, large_table_rows=20_000, max_vacuum_scale_factor=0.5,
               max_analyze_scale_factor=0.5) == []


def test_max_connections_review_thresholds(engine):
    assert run(settings.max_connections, engine) == []
    pooler = run(settings.max_connections, engine, pooler_connections=1)
    assert [f["severity"] for f in pooler] == ["warning"] and "PgBouncer" in pooler[0]["recommendation"]
    high = run(settings.max_connections, engine, high_max_connections=100)
    assert [f["severity"] for f in high] == ["info"] and "max_connections is 100" in high[0]["evidence"]


def test_machine_memory_given_or_read_for_a_local_server(engine):
    with db.session(engine) as conn:
        given, words = settings.machine_memory(conn, 3 * GB)
        assert given == 3 * GB and "as given" in words
        local, words = settings.machine_memory(conn)
        assert local and local > 0 and "the server is local" in words
