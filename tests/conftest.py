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
