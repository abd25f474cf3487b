"""Secrets inside statement text: scrubbed by the parser (or a pattern), other text left byte for byte."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfkit import logs, secrets
from perfkit.logs.normalize import normalize
from perfkit.plans import parse

SECRET = "Zq8-planted-XyZ"  # never in any output


@pytest.fixture(autouse=True)
def no_remembered_passwords(monkeypatch):
    monkeypatch.setattr(secrets, "_REMEMBERED", set())
    monkeypatch.delenv("PGPASSWORD", raising=False)


# (statement as the server keeps or logs it, what perfkit shows): the parser's way
PARSED = [
    (f"ALTER ROLE app PASSWORD '{SECRET}'", "ALTER ROLE app PASSWORD '***'"),
    (f"alter role app with encrypted password '{SECRET}' valid until 'infinity'",
     "alter role app with encrypted password '***' valid until 'infinity'"),
    (f"CREATE ROLE bob LOGIN PASSWORD 'it''s-{SECRET}' IN ROLE pg_monitor", "CREATE ROLE bob LOGIN PASSWORD '***' IN ROLE pg_monitor"),
    (f"CREATE USER reader PASSWORD E'{SECRET}\\'x'", "CREATE USER reader PASSWORD '***'"),
    (f"CREATE USER MAPPING FOR app SERVER remote OPTIONS (user 'app', password '{SECRET}')",
     "CREATE USER MAPPING FOR app SERVER remote OPTIONS (user 'app', password '***')"),
    (f"ALTER USER MAPPING FOR app SERVER remote OPTIONS (SET password '{SECRET}', ADD password_required 'false')",
     "ALTER USER MAPPING FOR app SERVER remote OPTIONS (SET password '***', ADD password_required 'false')"),
    (f"CREATE SERVER s FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host 'db', \"password\" '{SECRET}')",
     "CREATE SERVER s FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host 'db', \"password\" '***')"),
    (f"SELECT dblink_connect('c', 'host=db user=app password={SECRET} dbname=shop')",
     "SELECT dblink_connect('c', 'host=db user=app password=*** dbname=shop')"),
    (f"select * from dblink('dbname=shop password=''{SECRET} x''', 'select 1') as t(a int)",
     "select * from dblink('dbname=shop password=***', 'select 1') as t(a int)"),
    (f"SELECT pgp_sym_encrypt(note, '{SECRET}') FROM notes", "SELECT pgp_sym_encrypt(note, '***') FROM notes"),
    (f"SELECT pgp_sym_decrypt(body, '{SECRET}'::text, 'cipher-algo=aes256') FROM t",
     "SELECT pgp_sym_decrypt(body, '***'::text, 'cipher-algo=aes256') FROM t"),
    (f"SELECT pgp_pub_decrypt(m, dearmor('{SECRET}'), '{SECRET}')", "SELECT pgp_pub_decrypt(m, dearmor('***'), '***')"),
    (f"select encrypt('data', '{SECRET}', 'aes'), hmac('x', '{SECRET}', 'sha256')",
     "select encrypt('data', '***', 'aes'), hmac('x', '***', 'sha256')"),
    (f"SELECT crypt('{SECRET}', gen_salt('bf'))", "SELECT crypt('***', gen_salt('bf'))"),
    (f"SELECT 'postgresql://app:{SECRET}@db/shop' AS url", "SELECT 'postgresql://app:***@db/shop' AS url"),
    (f"CREATE SUBSCRIPTION s CONNECTION 'host=db password={SECRET}' PUBLICATION p",
     "CREATE SUBSCRIPTION s CONNECTION 'host=db password=***' PUBLICATION p"),
    (f"select 1 /* postgresql://app:{SECRET}@db/shop */", "select 1 /* postgresql://app:***@db/shop */"),
    (f"UPDATE users SET password = '{SECRET}' WHERE id = 7", "UPDATE users SET password = '***' WHERE id = 7"),
    (f"SELECT id FROM users WHERE name = 'bob' AND password = '{SECRET}'",
     "SELECT id FROM users WHERE name = 'bob' AND password = '***'"),
    (f"INSERT INTO users (name, password_hash) VALUES ('bob', '{SECRET}')",
     "INSERT INTO users (name, password_hash) VALUES ('bob', '***')"),
    (f"SELECT 'é', pgp_sym_decrypt(d, 'ké-{SECRET}')", "SELECT 'é', pgp_sym_decrypt(d, '***')"),
]

# text that does not parse (cut short by track_activity_query_size, a plan's Filter, a log line)
UNPARSED = [
    (f"ALTER ROLE app PASSWORD '{SECRET}", "ALTER ROLE app PASSWORD '***'"),
    (f"CREATE ROLE bob PASSWORD '{SECRET}' LOGIN; garbage(((", "CREATE ROLE bob PASSWORD '***' LOGIN; garbage((("),
    (f"(pgp_sym_decrypt(data, '{SECRET}'::text) = 'x'::text)", "(pgp_sym_decrypt(data, '***'::text) = 'x'::text)"),
    (f"select dblink_connect('host=a password={SECRET} dbname=x') ((", "select dblink_connect('host=a password=*** dbname=x') (("),
    (f"CREATE USER MAPPING FOR app SERVER s OPTIONS (password '{SECRET}'", "CREATE USER MAPPING FOR app SERVER s OPTIONS (password '***'"),
    (f"connect to postgresql://app:{SECRET}@db/shop failed (", "connect to postgresql://app:***@db/shop failed ("),
]

# no secret in them: the very same text back (queryids, normalization and N+1 grouping read it)
CLEAN = [
    "SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY id LIMIT 20",
    "/*request_id='r1',route='%2Fapi%2Forders'*/ select * from orders where id = 42",
    "SELECT  password_changed_at ,  'two  spaces'  FROM users -- keeps its comment\n",
    "ALTER ROLE app PASSWORD NULL",
    "SELECT * FROM users WHERE password = $1",
    "ALTER USER MAPPING FOR app SERVER s OPTIONS (ADD password_required 'false')",
    "SELECT pgp_sym_encrypt(note, $1) FROM notes",
    "select 'é' as \"Ünïcode\", $$dollar 'quoted'$$",
    "SELECT token_count FROM stats WHERE id = 1",
    "CREATE ROLE bob LOGIN",
    "SELECT 'https://example.com/page' AS link",
    "",
]


@pytest.mark.parametrize("text, shown", PARSED + UNPARSED)
def test_a_secret_in_statement_text_is_scrubbed(text, shown):
    assert secrets.scrub_statement(text) == shown
    assert SECRET not in secrets.scrub_statement(text)


@pytest.mark.parametrize("text", CLEAN)
def test_a_statement_without_a_secret_is_unchanged_byte_for_byte(text):
    assert secrets.scrub_statement(text) is text or secrets.scrub_statement(text) == text
    assert secrets.scrub_statement(text).encode() == text.encode()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_text_without_a_secret_word_comes_back_unchanged(text):
    if not secrets.may_hold_secret(text):
        assert secrets.scrub_statement(text) == text


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=24),
    form=st.sampled_from([
        "ALTER ROLE app PASSWORD {lit}", "CREATE ROLE app LOGIN ENCRYPTED PASSWORD {lit} VALID UNTIL 'x'",
        "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password {lit})",
        "SELECT pgp_sym_encrypt('x', {lit})", "SELECT pgp_sym_decrypt(d, {lit}::text)",
        "ALTER ROLE app PASSWORD {lit", "SELECT encrypt(d, {lit}, 'aes') FROM t WHERE (",
    ]),
)
def test_any_planted_password_is_scrubbed(password, form):
    literal = "'" + password.replace("'", "''") + "'"
    text = form.replace("{lit}", literal).replace("{lit", literal[:-1])
    scrubbed = secrets.scrub_statement(text)
    assert password not in scrubbed and literal not in scrubbed


def test_a_column_is_scrubbed_once_per_distinct_text_and_returned_as_is_when_clean():
    clean = pd.Series(CLEAN * 100)
    assert secrets.scrub_statements(clean) is clean
    mixed = pd.Series([PARSED[0][0], None, "select 1", PARSED[0][0]], dtype=object)
    assert secrets.scrub_statements(mixed).tolist() == [PARSED[0][1], None, "select 1", PARSED[0][1]]
    assert secrets.scrub_statements(["x", None, PARSED[1][0]]) == ["x", None, PARSED[1][1]]


def test_a_known_password_is_masked_in_statement_text_too():
    secrets.remember(f"postgresql://app:{SECRET}@db/shop")
    assert secrets.scrub_statement(f"select '{SECRET}'") == "select '***'"


def test_normalize_keeps_no_secret_of_text_that_does_not_parse():
    assert SECRET not in normalize(f"ALTER ROLE app PASSWORD '{SECRET}").normalized


def test_log_entries_are_scrubbed_as_they_are_read(tmp_path):
    lines = [
        f"2024-05-01 10:00:00.000 UTC [101] LOG:  statement: ALTER ROLE app PASSWORD '{SECRET}'",
        "2024-05-01 10:00:00.100 UTC [101] LOG:  duration: 0.500 ms",
        f"2024-05-01 10:00:01.000 UTC [102] LOG:  duration: 250.000 ms  statement: SELECT pgp_sym_decrypt(d, '{SECRET}') FROM t",
        "2024-05-01 10:00:02.000 UTC [103] LOG:  duration: 1.000 ms  statement: SELECT id FROM orders WHERE id = 1",
        f"2024-05-01 10:00:03.000 UTC [104] ERROR:  syntax error at or near \"(\" in dblink('host=a password={SECRET}')",
    ]
    path = tmp_path / "postgresql.log.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    frame = logs.read(path, prefix="%m [%p] ")
    text = frame.astype(str).to_csv()
    assert SECRET not in text
    assert frame["statement"].tolist()[:3] == [
        "ALTER ROLE app PASSWORD '***'", "SELECT pgp_sym_decrypt(d, '***') FROM t", "SELECT id FROM orders WHERE id = 1"]
    analysis = logs.analyze(frame) if hasattr(logs, "analyze") else None
    if analysis is not None:
        assert SECRET not in json.dumps(analysis, default=str)


def test_a_plan_is_scrubbed_as_it_is_read():
    document = [{
        "Query Text": f"SELECT * FROM notes WHERE pgp_sym_decrypt(body, '{SECRET}') = 'x'",
        "Plan": {"Node Type": "Seq Scan", "Relation Name": "notes", "Plan Rows": 1,
                 "Filter": f"(pgp_sym_decrypt(body, '{SECRET}'::text) = 'x'::text)"},
    }]
    for source in (document, json.dumps(document)):
        plan = parse(source)
        shown = json.dumps({"query": plan.query, "document": plan.document, "nodes": plan.nodes.astype(str).to_dict()})
        assert SECRET not in shown and "'***'" in shown
    text = f"Seq Scan on users  (cost=0.00..1.01 rows=1 width=4)\n  Filter: (password = '{SECRET}'::text)"
    plan = parse(text)
    assert SECRET not in json.dumps(plan.document) and SECRET not in plan.nodes.astype(str).to_csv()


def test_a_snapshot_stored_before_scrubbing_is_scrubbed_when_loaded(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfkit.store import SnapshotStore

    secret = "Kq7-stored-unscrubbed-9Zx"
    folder = tmp_path / "server=old" / "date=2026-01-01"
    folder.mkdir(parents=True)
    path = folder / "000000.parquet"
    pq.write_table(pa.table({"queryid": [1, 2], "query": [f"ALTER ROLE app PASSWORD '{secret}'", "SELECT 1"]}), path)
    loaded = SnapshotStore(tmp_path).load(path)
    assert secret not in " ".join(loaded["query"]) and loaded["query"].tolist()[1] == "SELECT 1"


def test_a_json_plan_is_scrubbed_whatever_escapes_hide_the_words(monkeypatch):
    """The JSON pre-check skips the walk only when no secret word is in the text as written:
    ``\\u`` and ``\\/`` escapes (which can hide one) and a remembered password make it walk."""
    def filtered(condition: str) -> str:
        document = '[{"Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Filter": "' + condition + '"}}]'
        return parse(document).nodes["detail"].iat[0]["Filter"]

    assert filtered(r"(pass\u0077ord = 'Sup3rS3cretValue'::text)") == "(password = '***'::text)"
    assert filtered(r"(url = 'postgresql:\/\/bob:Sup3rS3cretValue@db\/x'::text)") == "(url = 'postgresql://bob:***@db/x'::text)"
    assert filtered("(note = 'Sup3rS3cretValue'::text)") == "(note = 'Sup3rS3cretValue'::text)"  # nothing to hide
    monkeypatch.setenv("PGPASSWORD", "Sup3rS3cretValue")  # a password the process knows is masked anywhere
    assert filtered("(note = 'Sup3rS3cretValue'::text)") == "(note = '***'::text)"
