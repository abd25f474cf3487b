"""perfkit.sql: quoting for every keyword, fixes as objects (key, covers, dicts, SQL read back),
and advice.recommend() merging on them (one fix once; nothing that exists or is dropped)."""

from __future__ import annotations

import json
import uuid

import pytest
from pglast import ast, keywords, parse_sql

from perfkit import advice, sql
from perfkit.findings import finding
from perfkit.health.indexes import duplicate_indexes
from perfkit.plans import parse

KEYWORDS = sorted(
    set(keywords.RESERVED_KEYWORDS) | set(keywords.TYPE_FUNC_NAME_KEYWORDS)
    | set(keywords.COL_NAME_KEYWORDS) | set(keywords.UNRESERVED_KEYWORDS)
)
# besides the keywords: names that need quotes for other reasons
ODD_NAMES = ["Orders", 'we"ird', "two words", "1st", "ümlaut", "a$b"]


def _names(items) -> list[str]:
    return [s.sval for s in items]


def _index_parts(stmt: ast.IndexStmt) -> list[str]:
    where = stmt.whereClause  # NullTest on a ColumnRef
    return [stmt.idxname, stmt.relation.schemaname, stmt.relation.relname, stmt.indexParams[0].name,
            stmt.indexParams[1].name, stmt.indexIncludingParams[0].name, _names(where.arg.fields)[-1]]


# kind -> (the fix for identifier w, the identifiers the parsed statements give back)
DDL_KINDS = {
    "create_index": (
        lambda w: sql.create_index(w, w, [w, sql.IndexColumn(w + "2", descending=True, nulls="last")],
                                   include=[w + "3"], where=f"{sql.quote_ident(w)} IS NOT NULL", name=w),
        lambda stmts, w: (_index_parts(stmts[0]), [w, w, w, w, w + "2", w + "3", w]),
    ),
    "drop_index": (
        lambda w: sql.drop_index(w, w),
        lambda stmts, w: (_names(stmts[0].objects[0]), [w, w]),
    ),
    "vacuum": (
        lambda w: sql.vacuum(w, w, verbose=True),
        lambda stmts, w: ([stmts[0].rels[0].relation.schemaname, stmts[0].rels[0].relation.relname,
                           stmts[0].is_vacuumcmd], [w, w, True]),
    ),
    "analyze": (
        lambda w: sql.analyze(w, w),
        lambda stmts, w: ([stmts[0].rels[0].relation.schemaname, stmts[0].rels[0].relation.relname,
                           stmts[0].is_vacuumcmd], [w, w, False]),
    ),
    "create_statistics": (
        lambda w: sql.create_statistics(w, w, [w, w + "2"], name=w),
        lambda stmts, w: (_names(stmts[0].defnames) + [e.name for e in stmts[0].exprs]
                          + [stmts[0].relations[0].schemaname, stmts[0].relations[0].relname,
                             stmts[1].rels[0].relation.relname],
                          [w, w, w, w + "2", w, w, w]),
    ),
    "alter_table": (
        lambda w: sql.alter_table(w, w, autovacuum_vacuum_scale_factor=0.01),
        lambda stmts, w: ([stmts[0].relation.schemaname, stmts[0].relation.relname,
                           stmts[0].cmds[0].def_[0].defname], [w, w, "autovacuum_vacuum_scale_factor"]),
    ),
    "trigram": (
        lambda w: sql.trigram_index(w, w, w),
        lambda stmts, w: ([stmts[0].extname, stmts[1].relation.schemaname, stmts[1].relation.relname,
                           stmts[1].indexParams[0].name, _names(stmts[1].indexParams[0].opclass)[0],
                           stmts[1].accessMethod],
                          ["pg_trgm", w, w, w, "gin_trgm_ops", "gin"]),
    ),
}


@pytest.mark.parametrize("kind", sorted(DDL_KINDS))
def test_every_keyword_round_trips_through_quote_ident_and_pglast(kind):
    assert len(KEYWORDS) > 400  # all four of PostgreSQL's keyword lists
    build, parts = DDL_KINDS[kind]
    wrong = []
    for word in [*KEYWORDS, *ODD_NAMES]:
        text = build(word).sql
        try:
            statements = [raw.stmt for raw in parse_sql(text)]
        except Exception as err:  # noqa: BLE001 - collected and reported below
            wrong.append(f"{text!r}: {err}")
            continue
        got, expected = parts(statements, word)
        if got != expected:
            wrong.append(f"{text!r}: {got} != {expected}")
    assert not wrong, f"{len(wrong)} failed, e.g. " + "; ".join(wrong[:5])


def test_the_written_out_keywords_are_pglasts():
    # perfkit.sql spells the sets out so that quoting a name does not import pglast
    expected = set(keywords.RESERVED_KEYWORDS) | set(keywords.TYPE_FUNC_NAME_KEYWORDS) | set(keywords.COL_NAME_KEYWORDS)
    assert sql.KEYWORDS == expected


@pytest.mark.parametrize("word", ["left", "right", "join", "inner", "full", "like", "is", "verbose", "freeze"])
def test_the_words_the_old_plan_quoting_got_wrong_are_quoted(word):
    assert sql.quote_ident(word) == f'"{word}"'
    assert sql.quote_ident("tenant_id") == "tenant_id" and sql.quote_ident("name") == "name"  # unreserved: bare


# -- Fix: key, covers, dicts, SQL read back ---------------------------------------------------

def test_key_is_the_same_fix_whatever_the_name_quoting_or_schema():
    one = sql.create_index("public", "orders", ["tenant_id", "created_at"], name="a_idx")
    assert one.key() == sql.create_index(None, "orders", ["tenant_id", "created_at"]).key()
    assert one.key() == sql.parse_fix('CREATE INDEX "other" ON "public"."orders" ("tenant_id", created_at)').key()
    assert one.key() != sql.create_index("shop", "orders", ["tenant_id", "created_at"]).key()
    assert one.key() != sql.create_index("public", "orders", ["created_at", "tenant_id"]).key()
    assert one.key() != sql.create_index("public", "orders", ["tenant_id", "created_at"], where="paid").key()
    assert one.key() != sql.create_index("public", "orders", ["tenant_id", "created_at"], method="brin").key()
    assert one.key() != sql.create_index("public", "orders", ["tenant_id", "created_at"], include=["x"]).key()
    assert sql.drop_index(None, "orders_tenant_id_idx").key() == sql.drop_index("public", "orders_tenant_id_idx").key()
    assert sql.analyze(None, "t").key() == sql.analyze("public", "t").key() != sql.vacuum("public", "t").key()


def test_covers_is_a_left_prefix_on_the_same_table_and_method():
    wide = sql.create_index("public", "orders", ["tenant_id", "created_at"], include=["total"])
    assert wide.covers(sql.create_index(None, "orders", ["tenant_id"]))
    assert wide.covers(sql.create_index("public", "orders", ["tenant_id", "created_at"]))
    assert wide.covers(sql.create_index("public", "orders", ["tenant_id"], include=["created_at"]))
    assert not wide.covers(sql.create_index("public", "orders", ["created_at"]))
    assert not wide.covers(sql.create_index("public", "orders", ["tenant_id"], include=["status"]))
    assert not wide.covers(sql.create_index("shop", "orders", ["tenant_id"]))
    assert not wide.covers(sql.create_index("public", "orders", ["tenant_id"], method="hash"))
    assert not sql.create_index("public", "orders", ["tenant_id"]).covers(wide)
    assert not wide.covers(sql.drop_index("public", "x"))


ALL_KINDS = [
    sql.create_index("s", "t", [sql.IndexColumn("a", descending=True, nulls="last"), sql.IndexColumn("lower(b)", expression=True)],
                     include=["c"], where="d > 1", name="t_idx"),
    sql.trigram_index(None, "orders", "note"),
    sql.drop_index("s", "t_a_idx", table="t", columns=["a"]),
    sql.vacuum("s", "t"),
    sql.vacuum("s", "t", verbose=True, analyze=False),
    sql.analyze(None, "left"),
    sql.create_statistics("s", "t", ["a", "b"]),
    sql.set_local(work_mem="64MB"),
    sql.set_local(jit="off"),
    sql.alter_system(max_parallel_workers=8),
    sql.alter_table("s", "t", autovacuum_vacuum_scale_factor=0.01),
    sql.reset_table("s", "t", "autovacuum_enabled"),
]


@pytest.mark.parametrize("fix", ALL_KINDS, ids=[f"{f.action}-{i}" for i, f in enumerate(ALL_KINDS)])
def test_to_dict_from_dict_and_parse_fix_round_trip(fix):
    data = json.loads(json.dumps(fix.to_dict()))
    assert data["sql"] == fix.sql and data["action"] == fix.action
    back = sql.Fix.from_dict(data)
    assert back == fix and back.sql == fix.sql
    assert sql.as_fix(data) == fix and sql.as_fix(fix) is fix and sql.as_fix(None) is None
    parsed = sql.parse_fix(fix.sql)  # what a finding saved with only its sql text comes back as
    assert parsed.key() == fix.key() and parsed.sql == fix.sql


def test_parse_fix_reads_what_findings_used_to_carry():
    assert sql.parse_fix("CREATE INDEX CONCURRENTLY x ON s.t (a, b);").key_columns == ("a", "b")
    expression = sql.parse_fix("CREATE INDEX x ON t (lower(a));")
    assert expression.columns[0].expression and expression.columns[0].name == "lower(a)"
    assert sql.parse_fix("DROP INDEX CONCURRENTLY s.x;").key() == ("drop_index", "s", "x")
    upkeep = sql.parse_fix("ALTER TABLE s.t RESET (autovacuum_enabled);\nVACUUM (VERBOSE, ANALYZE) s.t;")
    assert upkeep.action == "reset_table" and [t.action for t in upkeep.then] == ["vacuum"]
    for nothing in ("", "   ", "SELECT 1", "CREATE INDEX x ON", "-- a comment"):
        assert sql.parse_fix(nothing) is None
    assert sql.finding_fix({"sql": "ANALYZE t;", "fix": None}) == sql.analyze(None, "t")
    assert sql.finding_fix({"sql": "", "fix": sql.vacuum("s", "t").to_dict()}) == sql.vacuum("s", "t")
    assert sql.finding_fix({"sql": float("nan"), "fix": float("nan")}) is None


# -- recommend(): findings frames in, one fix once ----------------------------------------------

def _index(kind, schema, table, columns, **extra):
    fix = sql.create_index(schema, table, columns)
    return finding(kind, "warning", f"{table} ({', '.join(columns)})", f"{kind} saw it", "Index it.", fix=fix, **extra)


def _plan_scan(filter_text: str, relation: str = "orders") -> list[dict]:
    """The plan rules' own findings for a Seq Scan on ``relation`` (no VERBOSE: no schema)."""
    plan = {"Plan": {"Node Type": "Seq Scan", "Relation Name": relation, "Alias": relation, "Filter": filter_text,
                     "Rows Removed by Filter": 999000, "Plan Rows": 1000, "Actual Rows": 1000, "Actual Loops": 1,
                     "Actual Total Time": 90.0}, "Execution Time": 91.0}
    return parse(plan).find(["seq_scan_large_table"]).to_dict(orient="records")


def test_one_fix_once_with_or_without_schema_the_wider_index_wins():
    health = [_index("missing_tenant_index", "public", "orders", ["tenant_id", "created_at"])]
    plan = _plan_scan("(tenant_id = 7)")
    assert plan[0]["sql"] == "CREATE INDEX CONCURRENTLY orders_tenant_id_idx ON orders (tenant_id);"
    merged = advice.recommend(health=health, plan_findings=plan)
    assert len(merged) == 1
    row = merged.iloc[0]
    assert row["sql"] == "CREATE INDEX CONCURRENTLY orders_tenant_id_created_at_idx ON public.orders (tenant_id, created_at);"
    assert isinstance(row["fix"], sql.Fix) and row["fix"].key_columns == ("tenant_id", "created_at")
    assert row["sources"] == ["missing_tenant_index", "seq_scan_large_table"]
    # the same index with and without public. (one as old sql text only): once
    same = [finding("missing_fk_index", "warning", "public.invoices", "fk", "Index it.",
                    "CREATE INDEX CONCURRENTLY invoices_order_id_idx ON public.invoices (order_id);"),
            _index("rows_removed_by_filter", None, "invoices", ["order_id"])]
    merged = advice.recommend(health=same)
    assert len(merged) == 1 and merged.iloc[0]["sources"] == ["missing_fk_index", "rows_removed_by_filter"]
    assert merged.iloc[0]["fix"].key() == sql.create_index("public", "invoices", ["order_id"]).key()


def test_a_schema_less_fix_is_in_the_schema_the_others_name_for_its_table():
    health = [_index("missing_tenant_index", "shop", "orders", ["tenant_id", "created_at"])]
    merged = advice.recommend(health=health, plan_findings=_plan_scan("(tenant_id = 7)"))
    assert len(merged) == 1 and merged.iloc[0]["fix"].schema == "shop"
    alone = advice.recommend(health=health, plan_findings=_plan_scan("(status = 'x'::text)"))
    assert set(alone["sql"]) == {
        "CREATE INDEX CONCURRENTLY orders_tenant_id_created_at_idx ON shop.orders (tenant_id, created_at);",
        "CREATE INDEX CONCURRENTLY orders_status_idx ON shop.orders (status);",
    }
    # two schemas have an orders table: the plan's stays unqualified (public for matching)
    both = health + [_index("missing_fk_index", "public", "orders", ["customer_id"])]
    unsure = advice.recommend(health=both, plan_findings=_plan_scan("(status = 'x'::text)"))
    assert "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);" in set(unsure["sql"])


def test_an_existing_or_prefix_covered_index_is_never_proposed():
    existing = [sql.create_index("public", "orders", [sql.IndexColumn("tenant_id"), sql.IndexColumn("created_at", descending=True)],
                                 name="orders_tenant_created_idx"),
                sql.create_index("public", "orders", ["status"], where="(status = 'new'::text)", name="orders_new_idx")]
    health = [_index("missing_tenant_index", "public", "orders", ["tenant_id", "created_at"]),
              _index("index_advice", "public", "orders", ["tenant_id", "status"]),
              _index("seq_scan_large_table", "public", "orders", ["status"])]
    merged = advice.recommend(health=health, plan_findings=_plan_scan("(tenant_id = 7)"), existing=existing)
    # (tenant_id, created_at) exists (scanned backwards for the DESC); (tenant_id) is its prefix;
    # the partial index on status does not serve every status lookup
    assert sorted(merged["subject"]) == ["orders (status)", "orders (tenant_id, status)"]
    assert len(advice.recommend(health=health, plan_findings=_plan_scan("(tenant_id = 7)"))) == 3


def test_a_proposal_never_contradicts_a_drop_in_the_same_list():
    # the weekly report: the plan proposes orders_tenant_id_idx, health says it duplicates orders_tenant_idx
    drop = finding("duplicate_index", "warning", "public.orders_tenant_id_idx",
                   "orders_tenant_id_idx (btree (tenant_id)) has the same definition as orders_tenant_idx",
                   "Drop orders_tenant_id_idx: orders_tenant_idx serves the same lookups.",
                   fix=sql.drop_index("public", "orders_tenant_id_idx", table="orders", columns=["tenant_id"]))
    plan = _plan_scan("(tenant_id = 7)")
    merged = advice.recommend(health=[drop], plan_findings=plan)
    assert list(merged["kind"]) == ["duplicate_index"]
    assert merged.iloc[0]["sql"] == "DROP INDEX CONCURRENTLY public.orders_tenant_id_idx;"
    assert merged.iloc[0]["fix"].action == "drop_index"
    # a wider index than the dropped one is still proposed
    wider = advice.recommend(health=[drop], plan_findings=_plan_scan("((tenant_id = 7) AND (status = 'x'::text))"))
    assert sorted(wider["kind"]) == ["duplicate_index", "seq_scan_large_table"]
    # an old finding (sql text and a table column only): its keys come from the existing index
    old = finding("duplicate_index", "warning", "public.orders_tenant_id_idx", "same definition", "Drop it.",
                  "DROP INDEX CONCURRENTLY public.orders_tenant_id_idx;", table="public.orders")
    existing = [sql.create_index("public", "orders", ["tenant_id"], name="orders_tenant_id_idx")]
    assert list(advice.recommend(health=[old], plan_findings=plan, existing=existing)["kind"]) == ["duplicate_index"]
    assert len(advice.recommend(health=[old], plan_findings=plan)) == 2  # without the keys nothing says so


@pytest.fixture()
def planted(sandbox):
    schema = "fx_" + uuid.uuid4().hex[:8]
    with sandbox.admin_connect() as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(f'CREATE TABLE {schema}.ledger (id int PRIMARY KEY, tenant_id int, created_at timestamptz, '
                      f'"left" text, note text, total numeric, tags int[])')
        admin.execute(f"CREATE INDEX ledger_tenant_idx ON {schema}.ledger (tenant_id)")
        admin.execute(f"CREATE INDEX ledger_tenant_id_idx ON {schema}.ledger (tenant_id)")  # the duplicate
        admin.execute(f'CREATE INDEX ledger_wide_idx ON {schema}.ledger (tenant_id, created_at DESC NULLS LAST, "left") '
                      f"INCLUDE (total) WHERE total > 0")
        admin.execute(f"CREATE INDEX ledger_note_idx ON {schema}.ledger (lower(note) text_pattern_ops)")
        admin.execute(f"CREATE INDEX ledger_tags_idx ON {schema}.ledger USING gin (tags)")
        yield schema
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_existing_indexes_read_pg_index(engine, planted):
    found = {f.name: f for f in advice.existing_indexes(engine) if f.schema == planted}
    assert set(found) == {"ledger_pkey", "ledger_tenant_idx", "ledger_tenant_id_idx", "ledger_wide_idx",
                          "ledger_note_idx", "ledger_tags_idx"}
    assert found["ledger_pkey"].unique and found["ledger_pkey"].key_columns == ("id",)
    wide = found["ledger_wide_idx"]
    assert wide.columns == (sql.IndexColumn("tenant_id"), sql.IndexColumn("created_at", descending=True, nulls="last"),
                            sql.IndexColumn("left"))
    assert wide.include == ("total",) and wide.where == "total > 0::numeric" and wide.method == "btree"
    note = found["ledger_note_idx"].columns[0]
    assert note.expression and note.name == "lower(note)" and note.opclass == "text_pattern_ops"
    assert found["ledger_tags_idx"].method == "gin" and found["ledger_tags_idx"].key_columns == ("tags",)
    assert all(f.table == "ledger" for f in found.values())
    # the real duplicate_index check (sql text and a table column) with the plan's own finding:
    # recommend(engine=) reads the indexes and keeps only the drop
    with engine.connect() as conn:
        drops = [d for d in duplicate_indexes(conn) if d["subject"].startswith(planted + ".")]
    assert [d["subject"] for d in drops] == [f"{planted}.ledger_tenant_id_idx"]
    plan = _plan_scan("(tenant_id = 7)", relation="ledger")
    assert plan[0]["sql"] == "CREATE INDEX CONCURRENTLY ledger_tenant_id_idx ON ledger (tenant_id);"
    merged = advice.recommend(health=drops, plan_findings=plan, engine=engine)
    assert list(merged["kind"]) == ["duplicate_index"]
    # a plan proposal nothing serves yet is kept, in the schema the catalog names for its table
    other = advice.recommend(plan_findings=_plan_scan("(created_at > now())", relation="ledger"), engine=engine)
    assert list(other["sql"]) == [f"CREATE INDEX CONCURRENTLY ledger_created_at_idx ON {planted}.ledger (created_at);"]
