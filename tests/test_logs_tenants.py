"""The cost per tenant in the streaming pass (``perfkit logs``' ``tenants`` table and its noisy_tenant
findings) on a real log: the same table as ``perfkit.tenantcost.per_tenant`` on the DataFrame of every
entry, from bound tenant parameters (psycopg 3 binds on the server) and request-comment tags."""

from __future__ import annotations

import time

import pandas as pd

import perfkit.logs
from perfkit import tenantcost


def test_cost_per_tenant_in_the_stream_matches_the_dataframe(sandbox):
    name = "tenant_stream"
    with sandbox.admin_connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    with sandbox.admin_connect(name, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, tenant_id int NOT NULL, total numeric)")
        conn.execute("INSERT INTO orders SELECT g, CASE WHEN g % 4 = 0 THEN 2 + g % 5 ELSE 1 END, g"
                     " FROM generate_series(1, 40000) g")
        conn.execute("SET log_min_duration_statement = 0")
        for round_ in range(20):
            for tenant in (1, 2, 3, 4, 5, 6):  # tenant 1 asks four times as often as the others
                if tenant == 1 or round_ % 4 == 0:
                    conn.execute("SELECT sum(total) FROM orders WHERE tenant_id = %s", (tenant,))
        conn.execute("SELECT count(*) FROM orders /*tenant='9'*/")
    time.sleep(0.5)  # the logging collector writes asynchronously
    files = sandbox.log_files()
    streamed = perfkit.logs.assess(files, jobs=1)
    table = streamed.tables["tenants"].set_index("tenant")
    expected = tenantcost.per_tenant(perfkit.logs.read(files)).set_index("tenant")
    assert table.loc["1", "calls"] == expected.loc["1", "calls"] >= 20
    assert table.loc["9", "from"] == "request comment" and table.loc["1", "from"] == "parameter"
    pd.testing.assert_frame_equal(table[["calls", "statements", "from"]].sort_index(),
                                  expected[["calls", "statements", "from"]].sort_index(), check_dtype=False)
    pd.testing.assert_series_equal(table["db_ms"].sort_index(), expected["db_ms"].sort_index(), rtol=1e-9,
                                   check_dtype=False)
    noisy = streamed.findings[streamed.findings["kind"] == "noisy_tenant"]
    assert list(noisy["subject"]) == ["tenant 1"]


def test_a_log_without_tenants_has_an_empty_table():
    from pathlib import Path

    events = Path(__file__).resolve().parent / "fixtures" / "logs" / "events" / "postgresql.log"
    assessed = perfkit.logs.assess(events, jobs=1)
    assert assessed.tables["tenants"].empty
    assert list(assessed.tables["tenants"].columns) == tenantcost.TENANT_COLUMNS_OUT
