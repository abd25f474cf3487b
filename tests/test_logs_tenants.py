"""The cost per tenant in the streaming pass (``perfkit logs``' ``tenants`` table and its noisy_tenant
findings) on a real log: the same table as ``perfkit.tenantcost.per_tenant`` on the DataFrame of every
entry, from bound tenant parameters (psycopg 3 binds on the server) and request-comment tags."""

from __future__ import annotations

import pandas as pd

import perfkit.logs
from perfkit import tenantcost


def test_cost_per_tenant_in_the_stream_matches_the_dataframe(sandbox, tenant_log):
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


def test_cost_per_tenant_from_bound_parameters_in_a_real_log(sandbox, tenant_log):
    """psycopg 3 binds parameters on the server, so PostgreSQL logs each one (DETAIL: parameters)."""
    logs = perfkit.logs.read(sandbox.log_files())
    logs = logs[logs["database"] == tenant_log]
    table = tenantcost.per_tenant(logs).set_index("tenant")
    assert table.loc["1", "calls"] == 20 and table.loc["6", "calls"] == 5
    assert table.loc["1", "from"] == "parameter" and table.loc["9", "from"] == "request comment"
    assert table.index[0] == "1" and table.loc["1", "share"] > 0.3
    assert tenantcost.NO_TENANT in table.index  # SET and SELECT 1 name no tenant
    noisy = tenantcost.noisy_tenants(tenantcost.per_tenant(logs))
    assert list(noisy["subject"]) == ["tenant 1"] and "of the logged database time" in noisy.iloc[0]["evidence"]


def test_a_log_without_tenants_has_an_empty_table():
    from pathlib import Path

    events = Path(__file__).resolve().parent / "fixtures" / "logs" / "events" / "postgresql.log"
    assessed = perfkit.logs.assess(events, jobs=1)
    assert assessed.tables["tenants"].empty
    assert list(assessed.tables["tenants"].columns) == tenantcost.TENANT_COLUMNS_OUT


def test_logged_parameters_are_read_as_postgresql_writes_them():
    assert tenantcost.parameters("$1 = '7', $2 = NULL, $3 = 'it''s'") == {1: "7", 2: None, 3: "it's"}
    assert tenantcost.parameters("") == {} and tenantcost.parameters(None) == {}
