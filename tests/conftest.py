"""Shared fixtures: one real throwaway PostgreSQL (perfkit.sandbox) for the whole session."""

from __future__ import annotations

import os
import uuid

import matplotlib
import pytest

matplotlib.use("Agg")

os.environ.setdefault("PERFKIT_PROGRESS", "0")


@pytest.fixture(scope="session")
def sandbox():
    """A running sandbox cluster with pg_stat_statements (and hypopg when installed)."""
    from perfkit.sandbox import Sandbox

    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def dsn(sandbox) -> str:
    return sandbox.dsn


@pytest.fixture(scope="session")
def engine(sandbox):
    """A perfkit engine: read-only sessions with perfkit's timeouts."""
    from perfkit import db

    eng = db.connect(sandbox.dsn)
    yield eng
    eng.dispose()


@pytest.fixture()
def admin(sandbox):
    """A read-write superuser psycopg connection (autocommit) for building schemas and workloads."""
    with sandbox.admin_connect() as conn:
        yield conn


@pytest.fixture()
def marker() -> str:
    """A unique word to tag the statements of one test in pg_stat_statements."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def new_database(sandbox):
    """A factory: ``new_database(name)`` drops and creates database ``name`` on the sandbox, with
    pg_stat_statements, and returns an autocommit superuser connection to it (a context manager)."""

    def make(name: str, *, statements: bool = True):
        with sandbox.admin_connect(autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        conn = sandbox.admin_connect(name, autocommit=True)
        if statements:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return conn

    return make


@pytest.fixture(scope="session")
def tenant_db(sandbox, new_database) -> str:
    """A database of its own with planted problems and a workload: a tenant table no index leads
    with, an unindexed foreign key, a duplicate index, and long per-tenant statements in
    pg_stat_statements. Its DSN."""
    name = "tenant_problems"
    with new_database(name) as conn:
        conn.execute("CREATE TABLE tenants (id int PRIMARY KEY)")
        conn.execute("INSERT INTO tenants SELECT generate_series(1, 50)")
        conn.execute("CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants(id),"
                     " created_at timestamptz NOT NULL DEFAULT now(), total numeric, note text)")
        conn.execute("INSERT INTO invoices SELECT g, 1 + g % 50, now() - g * interval '1 minute', g, repeat('x', 20)"
                     " FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX invoices_created_idx ON invoices (created_at)")
        conn.execute("CREATE INDEX invoices_created_again_idx ON invoices (created_at)")
        conn.execute("ANALYZE")
        for tenant in range(1, 21):
            conn.execute("SELECT id, note FROM invoices WHERE tenant_id = %s AND note LIKE %s ORDER BY created_at DESC "
                         "LIMIT 20 -- a statement longer than a terminal is wide, with a comment at its end",
                         (tenant, "x%"))
    return sandbox.dsn_for(name)


@pytest.fixture(scope="session")
def tenant_log(sandbox, new_database) -> str:
    """A database whose statements the server logs with their bound parameters (psycopg 3 binds on
    the server): tenant 1 asks four times as often as tenants 2-6, one statement names tenant 9 in
    a request comment, and two name no tenant. Its name; the entries are in ``sandbox.log_files()``."""
    import time

    name = "tenant_cost"
    with new_database(name, statements=False) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, tenant_id int NOT NULL, total numeric)")
        conn.execute("INSERT INTO orders SELECT g, CASE WHEN g % 4 = 0 THEN 2 + g % 5 ELSE 1 END, g"
                     " FROM generate_series(1, 40000) g")
        conn.execute("SET log_min_duration_statement = 0")
        for round_ in range(20):
            for tenant in (1, 2, 3, 4, 5, 6):
                if tenant == 1 or round_ % 4 == 0:
                    conn.execute("SELECT sum(total) FROM orders WHERE tenant_id = %s", (tenant,))
        conn.execute("SELECT count(*) FROM orders /*tenant='9'*/")
        conn.execute("SELECT 1")
    time.sleep(0.5)  # the logging collector writes asynchronously
    return name
