"""What a statement would call and read, judged before EXPLAIN ANALYZE executes it.

A read-only transaction that is rolled back stops writes through the session itself, not writes
through side doors: dblink and postgres_fdw open their own connections, pg_terminate_backend
signals another session, statistics resets, advisory locks and sequences ignore the rollback.
:func:`side_doors` parses the statement with PostgreSQL's parser (pglast), resolves every function
call in the target database (name, schema and argument count; every overload must be safe),
every operator, and every relation (views expanded through ``pg_get_viewdef``, recursively;
partitions and inheritance children looked at), and returns what it refuses, one line each.

A function is safe when it is on the deny list of none of the doors below and
- it is built in (``pg_catalog``) and IMMUTABLE or STABLE, or on the short list of harmless
  VOLATILE built-ins (``random()``, ``clock_timestamp()``, ``pg_sleep()``, ...), or
- it belongs to an extension or a user and is marked IMMUTABLE or STABLE (``pg_proc.provolatile``;
  PostgreSQL refuses INSERT/UPDATE/DELETE inside such a function, but a mislabelled one can still
  call a VOLATILE function: the label is trusted, the docs say so), or it is a reader of an
  extension on the short list (``pg_stat_statements()``).
A relation is safe when it is a table, a partitioned table, a view or a materialized view with no
foreign table among its partitions or children; a view is safe when its definition is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pglast.parser import ParseError, parse_sql_json
from psycopg import sql as pgsql

from perfkit import db, parsetree

# why a function family is a side door, matched on the function name (any schema)
_DOORS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("dblink",), "opens its own connection, outside perfkit's read-only transaction and its rollback"),
    (("postgres_fdw",), "opens its own connection, outside perfkit's read-only transaction and its rollback"),
    (("pg_terminate_backend", "pg_cancel_backend", "pg_signal_backend", "pg_log_backend_memory_contexts"),
     "signals another server process"),
    (("pg_stat_statements_reset", "pg_stat_reset"),
     "resets statistics (perfkit never resets them)"),
    (("pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_create_restore_point", "pg_promote",
      "pg_wal_replay", "pg_backup_", "pg_start_backup", "pg_stop_backup", "pg_logical_emit_message",
      "pg_replication_origin", "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
      "pg_drop_replication_slot", "pg_copy_", "pg_logical_slot_", "pg_replication_slot_advance",
      "pg_import_system_collations"),
     "changes server state outside the transaction"),
    (("lo_", "loread", "lowrite"), "works on large objects and server files"),
    (("pg_notify",), "sends a notification to other sessions"),
    (("set_config",), "changes a setting of the session"),
    (("pg_advisory", "pg_try_advisory"), "takes an advisory lock (session locks outlive the rollback)"),
    (("nextval", "setval"), "advances a sequence (sequences are not rolled back)"),
    (("pg_file_", "pg_logdir_ls"), "writes server files"),
)
_EXACT_DOORS = {"set_config", "nextval", "setval", "pg_notify", "pg_reload_conf", "pg_rotate_logfile", "loread",
                "lowrite", "pg_promote", "pg_switch_wal"}
# VOLATILE built-ins that read or wait but change nothing
_HARMLESS_VOLATILE = {
    "random", "random_normal", "setseed", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7",
    "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_lock_status", "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids", "pg_isolation_test_session_is_blocked", "txid_current",
    "txid_current_if_assigned", "pg_current_xact_id", "pg_current_xact_id_if_assigned", "pg_stat_get_activity",
    "pg_backend_pid", "pg_current_snapshot", "txid_current_snapshot", "pg_get_wait_events",
}
# VOLATILE readers of extensions (extension, function)
_HARMLESS_EXTENSION = {("pg_stat_statements", "pg_stat_statements"), ("pg_stat_statements", "pg_stat_statements_info"),
                       ("hypopg", "hypopg"), ("hypopg", "hypopg_list_indexes"), ("pg_trgm", "show_trgm"),
                       ("uuid-ossp", "uuid_generate_v1"), ("uuid-ossp", "uuid_generate_v4"),
                       ("pgcrypto", "gen_random_bytes"), ("pgcrypto", "gen_salt")}
_TRUSTED_SCHEMAS = {"pg_catalog", "information_schema"}
_SAFE_RELKINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "S": "sequence"}
_MAX_VIEW_DEPTH = 32
_TARGETED = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}

FUNCTIONS_SQL = db.PERFKIT_TAG + """
SELECT p.oid::regprocedure::text AS signature, n.nspname AS schema, p.proname AS name, p.provolatile AS volatility,
       p.prokind AS kind, e.extname AS extension,
       coalesce((SELECT bool_or(f.provolatile = 'v' AND fn.nspname <> 'pg_catalog')
                 FROM pg_aggregate a JOIN pg_proc f ON f.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn)
                 JOIN pg_namespace fn ON fn.oid = f.pronamespace
                 WHERE a.aggfnoid = p.oid), false) AS volatile_support
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
     AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
LEFT JOIN pg_extension e ON e.oid = d.refobjid
WHERE p.proname = %(name)s
  AND CASE WHEN %(schema)s::text IS NULL THEN n.nspname = ANY (current_schemas(true)) ELSE n.nspname = %(schema)s END
  AND (%(any_count)s::bool OR %(nargs)s::int BETWEEN p.pronargs - p.pronargdefaults AND p.pronargs
       OR (p.provariadic <> 0 AND %(nargs)s::int >= p.pronargs - 1))
ORDER BY 1
"""

OPERATORS_SQL = db.PERFKIT_TAG + """
SELECT o.oid::regoperator::text AS signature, f.oid::regprocedure::text AS function, fn.nspname AS schema,
       f.proname AS name, f.provolatile AS volatility, e.extname AS extension
FROM pg_operator o
JOIN pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_proc f ON f.oid = o.oprcode
JOIN pg_namespace fn ON fn.oid = f.pronamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = f.oid
     AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
LEFT JOIN pg_extension e ON e.oid = d.refobjid
WHERE o.oprname = %(name)s
  AND CASE WHEN %(schema)s::text IS NULL THEN n.nspname = ANY (current_schemas(true)) ELSE n.nspname = %(schema)s END
"""

RELATION_SQL = db.PERFKIT_TAG + """
SELECT c.oid::bigint AS oid, c.oid::regclass::text AS name, n.nspname AS schema, c.relkind::text AS relkind,
       (SELECT string_agg(f.oid::regclass::text, ', ')
        FROM pg_inherits i JOIN pg_class f ON f.oid = i.inhrelid AND f.relkind = 'f'
        WHERE i.inhparent = c.oid) AS foreign_children,
       (SELECT array_agg(i.inhrelid::bigint) FROM pg_inherits i WHERE i.inhparent = c.oid) AS children,
       CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(name)s)
"""

CHILD_SQL = RELATION_SQL.replace("c.oid = to_regclass(%(name)s)", "c.oid = %(oid)s::oid")


@dataclass
class Calls:
    """What the parser finds in one statement: function calls, operators and relations."""

    functions: list[tuple[str | None, str, int]] = field(default_factory=list)  # (schema, name, argument count)
    operators: list[tuple[str | None, str]] = field(default_factory=list)
    relations: list[tuple[str | None, str]] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)


@dataclass
class Verdict:
    """What :func:`side_doors` found.

    Attributes
    ----------
    refused:
        One line per function, operator or relation EXPLAIN ANALYZE must not execute without
        allow_writes, naming it and why.
    user_functions:
        Signatures of the IMMUTABLE/STABLE functions outside ``pg_catalog`` the statement calls
        (directly or through a view): the planner may run them while planning (constant folding,
        estimates), even under plain EXPLAIN.
    tables:
        OIDs of the tables the statement reads or writes (views expanded), for the sequences they use.
    """

    refused: list[str] = field(default_factory=list)
    user_functions: list[str] = field(default_factory=list)
    tables: list[int] = field(default_factory=list)


def _name(items: list) -> list[str]:
    out = []
    for item in items or []:
        if isinstance(item, dict) and "String" in item:
            value = item["String"]
            out.append(value.get("sval", value.get("str", "")))
    return out


def find_calls(tree: Any) -> Calls:
    """Every FuncCall, operator (A_Expr) and RangeVar of a pglast JSON tree, and the CTE names."""
    calls = Calls()
    for key, value in parsetree.items(tree):
        if key == "FuncCall" and isinstance(value, dict):
            parts = _name(value.get("funcname", []))
            if parts:
                nargs = 0 if value.get("agg_star") else len(value.get("args", []) or [])
                calls.functions.append((parts[-2] if len(parts) > 1 else None, parts[-1], nargs))
        elif key == "A_Expr" and isinstance(value, dict):
            parts = _name(value.get("name", []))
            if parts and value.get("kind") not in ("AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN", "AEXPR_BETWEEN_SYM",
                                                   "AEXPR_NOT_BETWEEN_SYM"):
                calls.operators.append((parts[-2] if len(parts) > 1 else None, parts[-1]))
        elif key == "RangeVar" and isinstance(value, dict):
            calls.relations.append((value.get("schemaname"), value.get("relname", "")))
        elif key in _TARGETED and isinstance(value, dict) and isinstance(value.get("relation"), dict):
            target = value["relation"]  # a typed field: pglast writes the RangeVar without its tag
            calls.relations.append((target.get("schemaname"), target.get("relname", "")))
        elif key == "CommonTableExpr" and isinstance(value, dict):
            calls.ctes.add(value.get("ctename", ""))
    return calls


def _parse(sql: str) -> Any:
    return json.loads(parse_sql_json(sql))


def _door(name: str) -> str | None:
    for prefixes, why in _DOORS:
        for prefix in prefixes:
            if name == prefix or (prefix not in _EXACT_DOORS and name.startswith(prefix)):
                return why
    return None


def _shown(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _judge_function(row: dict) -> str | None:
    """Why one resolved function (a pg_proc row) is unsafe, or None."""
    name, schema, extension = row["name"], row["schema"], row["extension"]
    why = _door(name)
    if why is None and extension in ("dblink", "postgres_fdw"):
        why = "opens its own connection, outside perfkit's read-only transaction and its rollback"
    if why:
        return why
    if row.get("volatile_support"):
        return "is an aggregate whose support functions are VOLATILE"
    if row["volatility"] in ("i", "s"):
        return None
    if schema in _TRUSTED_SCHEMAS and name in _HARMLESS_VOLATILE:
        return None
    if extension and (extension, name) in _HARMLESS_EXTENSION:
        return None
    if schema in _TRUSTED_SCHEMAS:
        return "is a VOLATILE built-in function perfkit does not know to be harmless"
    return "is VOLATILE: it may write, signal or open a connection, and nothing rolls that back for it"


def _fetch(raw: psycopg.Connection, sql: str, params: dict) -> list[dict]:
    cursor = raw.execute(sql, params)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class _Walker:
    def __init__(self, raw: psycopg.Connection):
        self.raw = raw
        self.verdict = Verdict()
        self.seen_functions: set[tuple] = set()
        self.seen_operators: set[tuple] = set()
        self.seen_relations: set[int] = set()

    def refuse(self, line: str) -> None:
        if line not in self.verdict.refused:
            self.verdict.refused.append(line)

    def statement(self, tree: Any, depth: int, via: str = "") -> None:
        calls = find_calls(tree)
        suffix = f" (through {via})" if via else ""
        for key in calls.functions:
            if key not in self.seen_functions:
                self.seen_functions.add(key)
                self.function(*key, suffix)
        for key in calls.operators:
            if key not in self.seen_operators:
                self.seen_operators.add(key)
                self.operator(*key, suffix)
        for schema, name in calls.relations:
            self.relation(schema, name, depth, suffix, cte=schema is None and name in calls.ctes)

    def function(self, schema: str | None, name: str, nargs: int, suffix: str) -> None:
        why = _door(name)
        if why:  # named for what it is, resolved or not
            self.refuse(f"{_shown(schema, name)}(){suffix} {why}")
            return
        params = {"name": name, "schema": schema, "nargs": nargs, "any_count": False}
        rows = _fetch(self.raw, FUNCTIONS_SQL, params)
        if not rows:  # a count perfkit cannot match (VARIADIC "any", defaults): every function of the name
            rows = _fetch(self.raw, FUNCTIONS_SQL, {**params, "any_count": True})
        if not rows:
            return  # no such function: the server refuses the statement itself
        for row in rows:
            reason = _judge_function(row)
            if reason:
                self.refuse(f"{row['signature']}{suffix} {reason}")
                return
        for row in rows:
            if row["schema"] not in _TRUSTED_SCHEMAS and row["signature"] not in self.verdict.user_functions:
                self.verdict.user_functions.append(row["signature"])

    def operator(self, schema: str | None, name: str, suffix: str) -> None:
        for row in _fetch(self.raw, OPERATORS_SQL, {"name": name, "schema": schema}):
            reason = _judge_function(row)
            if reason:
                self.refuse(f"operator {row['signature']}{suffix} calls {row['function']}, which {reason}")
                return

    def relation(self, schema: str | None, name: str, depth: int, suffix: str, *, cte: bool) -> None:
        qualified = pgsql.Identifier(*(p for p in (schema, name) if p)).as_string(self.raw)
        rows = _fetch(self.raw, RELATION_SQL, {"name": qualified})
        if not rows:
            return  # a CTE, or no such relation (the server says so)
        row = rows[0]
        if cte and row["relkind"] != "f":
            return
        self.examine(row, depth, suffix)

    def examine(self, row: dict, depth: int, suffix: str) -> None:
        oid = int(row["oid"])
        if oid in self.seen_relations:
            return
        self.seen_relations.add(oid)
        kind = row["relkind"]
        if kind == "f":
            self.refuse(f"{row['name']}{suffix} is a foreign table: reading it opens a connection to another server")
            return
        if kind not in _SAFE_RELKINDS:
            self.refuse(f"{row['name']}{suffix} is a relation of kind {kind!r}, which perfkit does not execute")
            return
        if kind in ("r", "p"):
            self.verdict.tables.append(oid)
        if row.get("foreign_children"):
            self.refuse(f"{row['name']}{suffix} has foreign tables among its partitions or children "
                        f"({row['foreign_children']}): reading them opens connections to other servers")
        for child in row.get("children") or []:
            child_rows = _fetch(self.raw, CHILD_SQL, {"oid": int(child)})
            if child_rows:
                self.examine(child_rows[0], depth, suffix or f" (through {row['name']})")
        if kind == "v" and row["schema"] not in _TRUSTED_SCHEMAS:
            if depth >= _MAX_VIEW_DEPTH:
                self.refuse(f"{row['name']} nests views more than {_MAX_VIEW_DEPTH} deep; perfkit cannot check it")
                return
            try:
                tree = _parse(str(row["definition"]))
            except ParseError:
                self.refuse(f"view {row['name']}: its definition does not parse, so perfkit cannot check it")
                return
            self.statement(tree, depth + 1, via=f"view {row['name']}")


def side_doors(raw: psycopg.Connection, sql: str) -> Verdict:
    """Judge ``sql`` (one statement) against the catalog of the database ``raw`` is connected to.

    Every query goes through the extended protocol with parameters; nothing is executed but
    catalog reads. The caller owns the transaction (roll it back afterwards).
    """
    walker = _Walker(raw)
    walker.statement(_parse(sql), 0)
    return walker.verdict


SEQUENCES_SQL = db.PERFKIT_TAG + """
SELECT s.oid::regclass::text AS name, pg_sequence_last_value(s.oid) AS last_value, q.seqincrement AS increment,
       q.seqstart AS start
FROM pg_class s JOIN pg_sequence q ON q.seqrelid = s.oid
WHERE s.relkind = 'S' AND s.oid IN (
    SELECT d.objid FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY (%(tables)s::oid[]) AND d.deptype IN ('a', 'i')
    UNION
    SELECT d.refobjid FROM pg_depend d JOIN pg_attrdef a ON a.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
      AND a.adrelid = ANY (%(tables)s::oid[]))
ORDER BY 1
"""


def sequence_values(raw: psycopg.Connection, tables: list[int]) -> dict[str, tuple]:
    """``{sequence: (last_value or None, increment, start)}`` for the sequences the tables own or
    use in a column default (serial, identity, ``DEFAULT nextval(...)``)."""
    if not tables:
        return {}
    return {row["name"]: (row["last_value"], int(row["increment"]), int(row["start"]))
            for row in _fetch(raw, SEQUENCES_SQL, {"tables": [int(t) for t in tables]})}


def advanced(before: dict[str, tuple], after: dict[str, tuple]) -> dict[str, int]:
    """``{sequence: values consumed}`` between two :func:`sequence_values` readings (0s left out)."""
    out = {}
    for name, (last, increment, start) in after.items():
        if last is None:
            continue
        previous = before.get(name, (None, increment, start))[0]
        base = int(previous) if previous is not None else int(start) - increment
        steps = (int(last) - base) // increment if increment else 0
        if steps:
            out[name] = steps
    return out


__all__ = ["Calls", "Verdict", "advanced", "find_calls", "sequence_values", "side_doors"]
