"""N+1 detection against a real server: a planted N+1 workload and a clean one, logged and counted.

One module-scoped sandbox logs every statement (csvlog); pg_stat_statements sees the same workload.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import pandas as pd
import pytest

import perfkit.logs
from perfkit import nplusone
from perfkit.errors import BadInputError
from perfkit.sandbox import Sandbox

LOOKUPS_PER_REQUEST = 12     # rows the planted list query returns, so lookups per request
N1_REQUESTS = 3
CLEAN_REQUESTS = 2
UNTAGGED_LOOKUPS = 5
GAP_MS = 250
END = "nplusone workload end"

LIST_SQL = "SELECT id, customer_id\n  FROM invoices\n WHERE tenant_id = %s\n ORDER BY id LIMIT 12 {tag}"
LOOKUP_SQL = "SELECT id, name FROM customers WHERE id = %s {tag}"
CLEAN_SQL = (
    "SELECT i.id, c.name FROM invoices i JOIN customers c ON c.id = i.customer_id "
    "WHERE i.tenant_id = %s ORDER BY i.id LIMIT 10 {tag}"
)
COUNT_SQL = "SELECT count(*) FROM invoices WHERE tenant_id = %s {tag}"
UNTAGGED_LIST_SQL = "SELECT id, customer_id FROM invoices WHERE tenant_id = %s AND total > %s ORDER BY id LIMIT 5"
UNTAGGED_LOOKUP_SQL = "SELECT name FROM customers WHERE tenant_id = %s AND id = %s"


def tag(route: str, request_id: str) -> str:
    """An sqlcommenter comment; % doubled for psycopg's placeholders."""
    text = f"/*request_id='{quote(request_id, safe='')}',route='{quote(route, safe='')}'*/"
    return text.replace("%", "%%")


@pytest.fixture(scope="module")
def server():
    settings = {"log_destination": "'csvlog'", "log_min_duration_statement": "0"}
    with Sandbox(settings=settings) as sandbox:
        with sandbox.admin_connect() as conn:
            conn.execute(
                "CREATE TABLE customers (id int PRIMARY KEY, tenant_id int NOT NULL, name text NOT NULL);"
                "CREATE TABLE invoices (id int PRIMARY KEY, tenant_id int NOT NULL, customer_id int NOT NULL,"
                " total numeric NOT NULL)"
            )
            conn.execute("INSERT INTO customers SELECT g, g % 3, 'customer ' || g FROM generate_series(1, 60) g")
            conn.execute("INSERT INTO invoices SELECT g, g % 3, 1 + g % 60, g FROM generate_series(1, 300) g")
            conn.execute("SELECT pg_stat_statements_reset()")
        with sandbox.admin_connect(application_name="shop") as conn:
            for request in range(N1_REQUESTS):
                t = tag("/api/invoices", f"n1-{request}")
                rows = conn.execute(LIST_SQL.format(tag=t), (request % 3,)).fetchall()
                assert len(rows) == LOOKUPS_PER_REQUEST
                for _, customer_id in rows:
                    conn.execute(LOOKUP_SQL.format(tag=t), (customer_id,)).fetchall()
            for request in range(CLEAN_REQUESTS):
                t = tag("/api/customers", f"clean-{request}")
                conn.execute(CLEAN_SQL.format(tag=t), (request,)).fetchall()
                conn.execute(COUNT_SQL.format(tag=t), (request,)).fetchall()
        # an app without request comments: requests told apart by the connection going idle
        with sandbox.admin_connect(application_name="legacy") as conn:
            rows = conn.execute(UNTAGGED_LIST_SQL, (1, 10)).fetchall()
            for _, customer_id in rows:
                conn.execute(UNTAGGED_LOOKUP_SQL, (1, customer_id)).fetchall()
            time.sleep(GAP_MS * 2 / 1000)
            conn.execute(UNTAGGED_LIST_SQL, (2, 10)).fetchall()
            conn.execute("SELECT count(*) FROM customers").fetchall()
            conn.execute(f"SELECT '{END}'")
        deadline = time.monotonic() + 10
        while END not in "".join(p.read_text() for p in sandbox.log_files()) and time.monotonic() < deadline:
            time.sleep(0.05)
        snapshot = statement_snapshot(sandbox)
        yield sandbox, perfkit.logs.read(sandbox.log_files()), snapshot


def statement_snapshot(sandbox: Sandbox) -> pd.DataFrame:
    """pg_stat_statements in the snapshot's column names (what perfkit.statements.snapshot gives)."""
    sql = (
        "SELECT queryid, query, calls, total_exec_time AS total_exec_ms, mean_exec_time AS mean_exec_ms, rows "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with sandbox.admin_connect() as conn:
        cur = conn.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def test_planted_n_plus_one_is_found_with_its_count(server):
    _, logs, _ = server
    found = nplusone.from_logs(logs)
    tagged = found[(found["pattern"] == "repeated_statement") & (found["route"] == "/api/invoices")]
    assert len(tagged) == 1
    hit = tagged.iloc[0]
    assert hit["kind"] == "n_plus_one"
    assert hit["repeats"] == LOOKUPS_PER_REQUEST
    assert hit["requests"] == N1_REQUESTS
    assert hit["statement"] == "SELECT id, name FROM customers WHERE id = $1"
    assert hit["after"].startswith("SELECT id, customer_id FROM invoices WHERE tenant_id = $1")
    assert hit["sql"] == "SELECT id, name FROM customers WHERE id = ANY($1)"
    assert hit["grouped_by"] == "request comment" and hit["confidence"] == "high"
    assert f"ran {LOOKUPS_PER_REQUEST} times in one request to /api/invoices" in hit["evidence"]
    assert hit["benefit_ms"] > 0


def test_request_over_ten_statements_is_flagged_and_explained(server):
    _, logs, _ = server
    found = nplusone.from_logs(logs)
    many = found[(found["pattern"] == "too_many_statements") & (found["route"] == "/api/invoices")]
    assert len(many) == 1
    assert many.iloc[0]["statements"] == LOOKUPS_PER_REQUEST + 1
    assert many.iloc[0]["severity"] == "info"  # the repeated lookup explains it


def test_clean_workload_is_not_flagged(server):
    _, logs, _ = server
    found = nplusone.from_logs(logs)
    assert not (found["route"] == "/api/customers").any()
    assert not found["evidence"].str.contains("JOIN customers").any()
    assert set(found["route"]) <= {"/api/invoices", ""}


def test_untagged_requests_are_cut_at_idle_gaps(server):
    _, logs, _ = server
    found = nplusone.from_logs(logs, gap_ms=GAP_MS)
    untagged = found[found["statement"] == "SELECT name FROM customers WHERE tenant_id = $1 AND id = $2"]
    assert len(untagged) == 1
    assert untagged.iloc[0]["repeats"] == UNTAGGED_LOOKUPS
    assert untagged.iloc[0]["grouped_by"] == "connection and time gap"
    # a time gap alone is a hint, never a warning with a fix: a pool or pgbench looks the same
    assert untagged.iloc[0]["severity"] == "info" and untagged.iloc[0]["confidence"] == "low"
    assert untagged.iloc[0]["sql"] == ""
    groups = nplusone.requests(logs, gap_ms=GAP_MS)
    legacy = groups[(groups["application"] == "legacy") & ~groups["control"]]
    assert legacy.groupby("request").size().tolist() == [1 + UNTAGGED_LOOKUPS, 3]


def test_thresholds_are_arguments(server):
    _, logs, _ = server
    stricter = nplusone.from_logs(logs, min_repeats=LOOKUPS_PER_REQUEST + 1, max_statements=50)
    assert not (stricter["route"] == "/api/invoices").any()
    critical = nplusone.from_logs(logs, critical_repeats=LOOKUPS_PER_REQUEST)
    hit = critical[(critical["route"] == "/api/invoices") & (critical["pattern"] == "repeated_statement")]
    assert hit.iloc[0]["severity"] == "critical"
    with pytest.raises(BadInputError):
        nplusone.from_logs(logs, min_repeats=1)


def test_pg_stat_statements_alone_finds_the_lookup(server):
    _, _, snapshot = server
    found = nplusone.from_statements(snapshot)
    lookup = snapshot[snapshot["query"].str.startswith("SELECT id, name FROM customers WHERE id = $1")]
    listing = snapshot[snapshot["query"].str.startswith("SELECT id, customer_id\n  FROM invoices")]
    assert len(lookup) == 1 and len(listing) == 1
    assert found["queryid"].tolist() == [lookup.iloc[0]["queryid"]]
    hit = found.iloc[0]
    assert hit["list_queryid"] == listing.iloc[0]["queryid"]
    assert hit["calls"] == N1_REQUESTS * LOOKUPS_PER_REQUEST
    assert hit["ratio"] == pytest.approx(LOOKUPS_PER_REQUEST)
    assert hit["confidence"] == "low" and hit["severity"] == "info"
    assert hit["sql"].endswith("WHERE id = ANY($1)")


def test_pg_stat_statements_with_request_count_reports_calls_per_request(server):
    _, _, snapshot = server
    found = nplusone.from_statements(snapshot, request_count=N1_REQUESTS)
    hit = found[found["statement"].str.startswith("SELECT id, name FROM customers")].iloc[0]
    assert hit["calls_per_request"] == pytest.approx(LOOKUPS_PER_REQUEST)
    assert hit["severity"] == "warning"
    assert f"{LOOKUPS_PER_REQUEST:.1f} calls per request" in hit["evidence"]


def test_pg_stat_statements_detector_needs_the_snapshot_columns():
    with pytest.raises(BadInputError, match="rows"):
        nplusone.from_statements(pd.DataFrame({"queryid": [1], "query": ["SELECT 1"], "calls": [1],
                                               "total_exec_ms": [1.0], "mean_exec_ms": [1.0]}))


@pytest.mark.parametrize(
    ("statement", "tags"),
    [
        ("SELECT 1 /*route='%2Fapi%2Finvoices',request_id='a1'*/", {"route": "/api/invoices", "request_id": "a1"}),
        ("SELECT 1 /*action='x',note='it\\'s'*/", {"action": "x", "note": "it's"}),
        ("SELECT 1 /*application:Shop,controller:invoices,action:index*/",
         {"application": "Shop", "controller": "invoices", "action": "index"}),
        ("SELECT '/*route=''x''*/' AS text", {}),
        ("SELECT 1 /* just a note */", {}),
        ("SELECT 1 -- route='x'", {}),
        ("SELECT 1", {}),
    ],
)
def test_request_tags(statement, tags):
    assert nplusone.request_tags(statement) == tags


@pytest.mark.parametrize(
    ("query", "keys", "rewrite"),
    [
        ("SELECT * FROM t WHERE id = $1", ("id",), "SELECT * FROM t WHERE id = ANY($1)"),
        ("SELECT * FROM t WHERE tenant_id = $1 AND customer_id = $2 AND deleted_at IS NULL",
         ("tenant_id", "customer_id"),
         "SELECT * FROM t WHERE tenant_id = $1 AND customer_id = ANY($2) AND deleted_at IS NULL"),
        ("SELECT * FROM t WHERE id > $1", (), None),
        ("SELECT count(*) FROM t GROUP BY a", (), None),
        ("SELECT * FROM a JOIN b ON a.id = b.a_id WHERE a.id = $1", (), None),
        ("UPDATE t SET a = $1 WHERE id = $2", (), None),
        ("not sql at all", (), None),
    ],
)
def test_key_lookup_shapes(query, keys, rewrite):
    assert nplusone.key_lookup(query) == keys
    assert nplusone.any_rewrite(query) == rewrite
