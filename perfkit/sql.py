"""SQL that perfkit proposes: identifier quoting, qualified names, and fixes as objects.

A finding's fix is a :class:`Fix` (what to do, to which table, with which columns); its ``sql``
column is rendered from it with :func:`render`, so the same fix is written the same way
whatever check proposed it, and :func:`Fix.key` says when two findings propose one fix.
Nothing here touches a database: perfkit prints these statements, it never runs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

MAX_IDENTIFIER = 63  # NAMEDATALEN - 1 bytes
DEFAULT_SCHEMA = "public"
_BARE = re.compile(r"[a-z_][a-z0-9_$]*")
# Every keyword PostgreSQL's grammar does not accept as a bare column or table name in every
# position perfkit writes one (index columns, ON table, CREATE STATISTICS ... ON a, b): pglast's
# RESERVED_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS | COL_NAME_KEYWORDS, written out so that quoting a
# name does not import pglast (tests/test_sql.py checks they are the same sets).
KEYWORDS = frozenset({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character",
    "check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
    "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc",
    "distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float",
    "for", "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having",
    "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into",
    "is", "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object",
    "json_objectagg", "json_query", "json_scalar", "json_serialize", "json_table", "json_value",
    "lateral", "leading", "least", "left", "like", "limit", "localtime", "localtimestamp",
    "merge_action", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null",
    "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps",
    "overlay", "placing", "position", "precision", "primary", "real", "references", "returning",
    "right", "row", "select", "session_user", "setof", "similar", "smallint", "some", "substring",
    "symmetric", "system_user", "table", "tablesample", "then", "time", "timestamp", "to",
    "trailing", "treat", "trim", "true", "union", "unique", "user", "using", "values", "varchar",
    "variadic", "verbose", "when", "where", "window", "with", "xmlattributes", "xmlconcat",
    "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot",
    "xmlserialize", "xmltable"
})

ACTIONS = (
    "create_index",
    "drop_index",
    "reindex",
    "vacuum",
    "vacuum_full",
    "analyze",
    "create_statistics",
    "set",
    "alter_system",
    "alter_table",
    "reset_table",
    "create_extension",
    "alter_column_type",
    "alter_sequence",
    "cancel_backend",
    "terminate_backend",
    "grant",
)


def quote_ident(name: str) -> str:
    """``name`` as PostgreSQL needs it written: bare when it can be, double-quoted otherwise.

    Bare only when it is lower case ASCII (``[a-z_][a-z0-9_$]*``) and not a keyword the grammar
    reserves in some position (reserved, type/function-name and column-name keywords).
    """
    name = str(name)
    if _BARE.fullmatch(name) and name not in KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str | None, name: str) -> str:
    """``schema.name`` with each part quoted as needed (``name`` alone without a schema)."""
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)


def split_name(text: str, *, default_schema: str | None = None) -> tuple[str | None, str]:
    """``(schema, name)`` of a possibly qualified, possibly quoted name: ``public.orders``,
    ``"My Schema"."Orders"``, ``orders`` (schema ``default_schema``).

    Unquoted parts are folded to lower case, as PostgreSQL does; quoted ones are kept.
    """
    parts, current, quoted, i, text = [], "", False, 0, str(text).strip()
    was_quoted = False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == '"':
                if i + 1 < len(text) and text[i + 1] == '"':
                    current += '"'
                    i += 1
                else:
                    quoted = False
            else:
                current += char
        elif char == '"':
            quoted, was_quoted = True, True
        elif char == ".":
            parts.append(current if was_quoted else current.lower())
            current, was_quoted = "", False
        else:
            current += char
        i += 1
    parts.append(current if was_quoted else current.lower())
    parts = [p.strip() if not was_quoted else p for p in parts]
    if len(parts) >= 2:
        return parts[-2] or default_schema, parts[-1]
    return default_schema, parts[0]


def index_name(table: str, columns: Iterable[str], suffix: str = "idx") -> str:
    """A conventional name ``table_col1_col2_idx``, cut to PostgreSQL's 63 bytes."""
    words = [re.sub(r"[^a-z0-9_]+", "_", str(c).lower()).strip("_") or "expr" for c in columns]
    name = "_".join([table, *words, suffix])
    if len(name.encode()) > MAX_IDENTIFIER:
        keep = MAX_IDENTIFIER - len(suffix) - 1
        name = name.encode()[:keep].decode(errors="ignore").rstrip("_") + "_" + suffix
    return name


@dataclass(frozen=True)
class IndexColumn:
    """One key of an index: a column (or an expression), its order and operator class."""

    name: str
    descending: bool = False
    nulls: str | None = None  # "first" or "last"; None for the default of the order
    opclass: str | None = None
    expression: bool = False  # ``name`` is an SQL expression, written in parentheses

    def render(self) -> str:
        text = f"({self.name})" if self.expression else quote_ident(self.name)
        if self.opclass:
            text += f" {self.opclass}"
        if self.descending:
            text += " DESC"
        if self.nulls:
            text += f" NULLS {self.nulls.upper()}"
        return text


def _columns(values) -> tuple[IndexColumn, ...]:
    out = []
    for value in values or ():
        if isinstance(value, IndexColumn):
            out.append(value)
        elif isinstance(value, Mapping):
            out.append(IndexColumn(**value))
        else:
            out.append(IndexColumn(str(value)))
    return tuple(out)


@dataclass(frozen=True)
class Fix:
    """What a finding proposes to run, as data; ``sql`` renders it.

    Attributes
    ----------
    action:
        One of :data:`ACTIONS`.
    schema, table:
        The table acted on (``schema`` None when the evidence did not say: a plan without
        ``VERBOSE``; :meth:`key` then treats it as ``public``).
    name:
        The index (``create_index``, ``drop_index``, ``reindex``), the statistics object
        (``create_statistics``) or the extension (``create_extension``).
    columns:
        Index keys in order (``create_index``), or the columns of ``create_statistics``.
    include:
        ``INCLUDE`` columns of an index.
    where:
        The predicate of a partial index (SQL text).
    method:
        The index access method (``btree``, ``gin``, ``gist``, ``brin``, ``hash``).
    settings:
        ``(name, value)`` pairs: for ``set``/``alter_system`` the parameters, for
        ``alter_table`` the storage parameters, for ``reset_table`` the names (value ignored),
        for ``create_statistics`` the kinds (``("kinds", "dependencies, ndistinct, mcv")``).
    concurrently:
        ``CREATE/DROP INDEX CONCURRENTLY`` (no write lock); default True.
    requires:
        Fixes to run first (``CREATE EXTENSION pg_trgm`` before a trigram index).
    then:
        What to run after (``ANALYZE`` after ``CREATE STATISTICS``; ``SELECT pg_reload_conf()``
        after ``ALTER SYSTEM`` is rendered by the action itself).
    restart:
        ``alter_system`` of a setting that needs a server restart (rendered as a comment).
    """

    action: str
    schema: str | None = None
    table: str | None = None
    name: str | None = None
    columns: tuple[IndexColumn, ...] = ()
    include: tuple[str, ...] = ()
    where: str | None = None
    method: str = "btree"
    settings: tuple[tuple[str, str], ...] = ()
    concurrently: bool = True
    requires: tuple[Fix, ...] = ()
    then: tuple[Fix, ...] = ()
    restart: bool = False
    unique: bool = False
    verbose: bool = False
    comment: str = field(default="", compare=False)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fix action {self.action!r}; one of {', '.join(ACTIONS)}")
        object.__setattr__(self, "columns", _columns(self.columns))
        object.__setattr__(self, "include", tuple(self.include or ()))
        object.__setattr__(self, "settings", tuple((str(k), str(v)) for k, v in (self.settings or ())))
        object.__setattr__(self, "requires", tuple(self.requires or ()))
        object.__setattr__(self, "then", tuple(self.then or ()))
        if self.action == "create_index" and not self.name and self.table:
            keys = [c.name for c in self.columns]
            object.__setattr__(self, "name", index_name(self.table, keys, "trgm_idx" if self.method == "gin" and any(
                c.opclass == "gin_trgm_ops" for c in self.columns) else "idx"))

    # -- what it acts on ----------------------------------------------------------------------
    @property
    def target(self) -> str:
        """The qualified table (or, for a dropped index, the qualified index) it acts on."""
        if self.action in ("drop_index", "reindex") and self.name:
            return qualified(self.schema, self.name)
        return qualified(self.schema, self.table) if self.table else ""

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def key(self) -> tuple:
        """What makes two fixes the same fix: the action and what it acts on, whatever the name,
        the quoting or a missing ``public.``. Index proposals are the same when they build the same
        keys (order, opclass, method, predicate, include columns)."""
        schema = self.schema or DEFAULT_SCHEMA
        if self.action == "create_index":
            cols = tuple((c.name, c.descending, c.nulls, c.opclass, c.expression) for c in self.columns)
            return ("create_index", schema, self.table, self.method, cols, self.include,
                    " ".join((self.where or "").lower().split()), self.unique)
        if self.action in ("drop_index", "reindex"):
            return (self.action, schema, self.name)
        if self.action in ("vacuum", "vacuum_full", "analyze", "alter_table", "reset_table"):
            return (self.action, schema, self.table, self.settings if self.action.endswith("table") else ())
        if self.action == "create_statistics":
            return (self.action, schema, self.table, tuple(sorted(self.key_columns)))
        if self.action in ("set", "alter_system"):
            return (self.action, tuple(name for name, _ in self.settings))
        return (self.action, self.name, schema, self.table, self.key_columns, self.settings)

    def covers(self, other: Fix) -> bool:
        """True when this index proposal serves everything ``other`` does: same table, method,
        predicate, and ``other``'s keys are a left prefix of this one's (and its include columns
        are keys or include columns here)."""
        if self.action != "create_index" or other.action != "create_index":
            return False
        mine, theirs = self.key(), other.key()
        if mine[1:4] != theirs[1:4] or mine[6] != theirs[6]:
            return False
        if mine[4][: len(theirs[4])] != theirs[4]:
            return False
        have = set(self.key_columns) | set(self.include)
        return set(other.include) <= have

    # -- rendering ----------------------------------------------------------------------------
    @property
    def sql(self) -> str:
        # rendered once per fix (a fix is frozen): a plan's findings often share one fix object
        text = self.__dict__.get("_sql")
        if text is None:
            text = render(self)
            object.__setattr__(self, "_sql", text)
        return text

    def with_schema(self, schema: str | None) -> Fix:
        return replace(self, schema=schema) if not self.schema and schema else self

    def to_dict(self) -> dict:
        """JSON-ready: what the ``fix`` column and ``--json`` hold."""
        out = asdict(self)
        out["columns"] = [asdict(c) for c in self.columns]
        out["include"] = list(self.include)
        out["settings"] = [list(s) for s in self.settings]
        out["requires"] = [r.to_dict() for r in self.requires]
        out["then"] = [t.to_dict() for t in self.then]
        out["table"] = self.table
        out["qualified_table"] = qualified(self.schema, self.table) if self.table else None
        out["sql"] = self.sql
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Fix:
        data = dict(data)
        data.pop("sql", None)
        data.pop("qualified_table", None)
        data["requires"] = tuple(cls.from_dict(r) for r in data.get("requires") or ())
        data["then"] = tuple(cls.from_dict(t) for t in data.get("then") or ())
        data["settings"] = tuple(tuple(s) for s in data.get("settings") or ())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# -- constructors the checks use --------------------------------------------------------------
def create_index(schema: str | None, table: str, columns: Iterable, *, include: Iterable[str] = (),
                 where: str | None = None, method: str = "btree", name: str | None = None,
                 concurrently: bool = True, requires: Iterable[Fix] = ()) -> Fix:
    """A ``create_index`` fix; ``columns`` are names, :class:`IndexColumn`\\ s or dicts."""
    return Fix("create_index", schema=schema, table=table, name=name, columns=_columns(columns),
               include=tuple(include), where=where, method=method, concurrently=concurrently,
               requires=tuple(requires))


def trigram_index(schema: str | None, table: str, column: str) -> Fix:
    """A GIN trigram index for LIKE / ILIKE / regex filters, after ``CREATE EXTENSION pg_trgm``."""
    return create_index(schema, table, [IndexColumn(column, opclass="gin_trgm_ops")], method="gin",
                        requires=(Fix("create_extension", name="pg_trgm"),))


def drop_index(schema: str | None, name: str, *, table: str | None = None, columns: Iterable = (),
               method: str = "btree") -> Fix:
    """``DROP INDEX CONCURRENTLY``; ``table`` and ``columns`` (the dropped index's keys), when known,
    let a report see that a proposal would build the index it drops (:func:`perfkit.advice.recommend`)."""
    return Fix("drop_index", schema=schema, name=name, table=table, columns=_columns(columns), method=method)


def reindex(schema: str | None, name: str, *, table: str | None = None, columns: Iterable = ()) -> Fix:
    """``REINDEX INDEX CONCURRENTLY`` (rebuilds an invalid index in place)."""
    return Fix("reindex", schema=schema, name=name, table=table, columns=_columns(columns))


def alter_column_type(schema: str | None, table: str, column: str, type_: str, *, comment: str = "") -> Fix:
    """``ALTER TABLE t ALTER COLUMN c TYPE type`` (e.g. an integer key moved to bigint)."""
    return Fix("alter_column_type", schema=schema, table=table, columns=_columns([column]),
               settings=(("type", type_),), comment=comment)


def alter_sequence(schema: str | None, name: str, type_: str) -> Fix:
    """``ALTER SEQUENCE s AS type``."""
    return Fix("alter_sequence", schema=schema, name=name, settings=(("as", type_),))


def end_backend(pid: int, *, terminate: bool = True, comment: str = "") -> Fix:
    """``SELECT pg_terminate_backend(pid)`` (or ``pg_cancel_backend`` with ``terminate=False``)."""
    return Fix("terminate_backend" if terminate else "cancel_backend", settings=(("pid", int(pid)),),
               comment=comment)


def grant(schema: str | None, name: str, role: str, *, privilege: str = "SELECT", on: str = "SEQUENCE") -> Fix:
    """``GRANT privilege ON SEQUENCE schema.name TO role`` (``on``: SEQUENCE, TABLE; ``name`` ``*``
    with ``on="ALL SEQUENCES IN SCHEMA"`` grants on every one of the schema)."""
    return Fix("grant", schema=schema, name=name, settings=(("privilege", privilege), ("on", on), ("role", role)))


def vacuum(schema: str | None, table: str, *, analyze: bool = True, verbose: bool = False) -> Fix:
    then = ()
    return Fix("vacuum", schema=schema, table=table, settings=(("analyze", "on"),) if analyze else (),
               verbose=verbose, then=then)


def analyze(schema: str | None, table: str) -> Fix:
    return Fix("analyze", schema=schema, table=table)


def create_statistics(schema: str | None, table: str, columns: Iterable[str], *,
                      kinds: str = "dependencies, ndistinct, mcv", name: str | None = None) -> Fix:
    columns = list(columns)
    return Fix("create_statistics", schema=schema, table=table, columns=_columns(columns),
               name=name or index_name(table, columns, "stats"), settings=(("kinds", kinds),),
               then=(analyze(schema, table),))


def set_local(**settings) -> Fix:
    """``SET name = 'value'`` for the session (the query's own connection)."""
    return Fix("set", settings=tuple(settings.items()))


def alter_system(*, restart: bool = False, **settings) -> Fix:
    """``ALTER SYSTEM SET ...`` then a reload (or, with ``restart``, a note to restart)."""
    return Fix("alter_system", settings=tuple(settings.items()), restart=restart)


def alter_table(schema: str | None, table: str, **options) -> Fix:
    """``ALTER TABLE t SET (option = value, ...)`` (storage parameters such as autovacuum's)."""
    return Fix("alter_table", schema=schema, table=table, settings=tuple(options.items()))


def reset_table(schema: str | None, table: str, *options: str) -> Fix:
    return Fix("reset_table", schema=schema, table=table, settings=tuple((o, "") for o in options))


def _literal(value: str) -> str:
    text = str(value)
    if re.fullmatch(r"-?\d+(\.\d+)?", text) or text.lower() in ("on", "off", "true", "false"):
        return text
    return "'" + text.replace("'", "''") + "'"


def render(fix: Fix) -> str:
    """The SQL of ``fix``: one or more statements, each ending in ``;`` (printed, never run)."""
    parts = [render(r) for r in fix.requires]
    a = fix.action
    table = qualified(fix.schema, fix.table) if fix.table else ""
    how = " CONCURRENTLY" if fix.concurrently else ""
    if a == "create_index":
        unique = " UNIQUE" if fix.unique else ""
        using = f" USING {fix.method}" if fix.method and fix.method != "btree" else ""
        sql = (f"CREATE{unique} INDEX{how} {quote_ident(fix.name)} ON {table}{using} "
               f"({', '.join(c.render() for c in fix.columns)})")
        if fix.include:
            sql += f" INCLUDE ({', '.join(quote_ident(c) for c in fix.include)})"
        if fix.where:
            sql += f" WHERE {fix.where}"
        parts.append(sql + ";")
    elif a == "drop_index":
        parts.append(f"DROP INDEX{how} {qualified(fix.schema, fix.name)};")
    elif a == "reindex":
        parts.append(f"REINDEX INDEX{how} {qualified(fix.schema, fix.name)};")
    elif a in ("vacuum", "vacuum_full"):
        options = [o.upper() for o, v in fix.settings if v not in ("off", "false")]
        if a == "vacuum_full":
            options.insert(0, "FULL")
        if fix.verbose:
            options.insert(0, "VERBOSE")
        opts = f" ({', '.join(options)})" if options else ""
        note = "  -- locks the table: prefer pg_repack" if a == "vacuum_full" else ""
        parts.append(f"VACUUM{opts} {table};{note}")
    elif a == "analyze":
        parts.append(f"ANALYZE {table};")
    elif a == "create_statistics":
        kinds = dict(fix.settings).get("kinds", "dependencies, ndistinct, mcv")
        parts.append(f"CREATE STATISTICS {qualified(fix.schema, fix.name)} ({kinds}) ON "
                     f"{', '.join(quote_ident(c) for c in fix.key_columns)} FROM {table};")
    elif a == "set":
        parts += [f"SET {quote_ident(name)} = {_literal(value)};" for name, value in fix.settings]
    elif a == "alter_system":
        parts += [f"ALTER SYSTEM SET {quote_ident(name)} = {_literal(value)};" for name, value in fix.settings]
        parts[-1] += "  -- then restart the server" if fix.restart else ""
        if not fix.restart:
            parts.append("SELECT pg_reload_conf();")
    elif a == "alter_table":
        options = ", ".join(f"{name} = {value}" for name, value in fix.settings)
        parts.append(f"ALTER TABLE {table} SET ({options});")
    elif a == "reset_table":
        parts.append(f"ALTER TABLE {table} RESET ({', '.join(name for name, _ in fix.settings)});")
    elif a == "create_extension":
        parts.append(f"CREATE EXTENSION IF NOT EXISTS {quote_ident(fix.name)};")
    elif a == "alter_column_type":
        kind = dict(fix.settings)["type"]
        parts.append(f"ALTER TABLE {table} ALTER COLUMN {quote_ident(fix.columns[0].name)} TYPE {kind};")
    elif a == "alter_sequence":
        parts.append(f"ALTER SEQUENCE {qualified(fix.schema, fix.name)} AS {dict(fix.settings)['as']};")
    elif a == "grant":
        options = dict(fix.settings)
        target = quote_ident(fix.schema or DEFAULT_SCHEMA) if options["on"].startswith("ALL ") else qualified(
            fix.schema, fix.name)
        parts.append(f"GRANT {options['privilege']} ON {options['on']} {target} TO {quote_ident(options['role'])};")
    elif a in ("cancel_backend", "terminate_backend"):
        word = "terminate" if a == "terminate_backend" else "cancel"
        parts.append(f"SELECT pg_{word}_backend({int(dict(fix.settings)['pid'])});")
    parts += [render(t) for t in fix.then]
    if fix.comment:
        parts[-1] += f"  -- {fix.comment}"
    return "\n".join(parts)


# -- reading SQL text back (findings saved before fixes were objects) -------------------------
def _range(node) -> tuple[str | None, str]:
    return node.schemaname or None, node.relname


def _expression_text(node) -> str:
    from pglast.stream import RawStream

    return RawStream()(node)


def _parsed(stmt) -> Fix | None:
    """The Fix of one parsed statement, or None for a statement perfkit does not propose."""
    from pglast import ast
    from pglast.enums import ObjectType, SortByDir, SortByNulls

    if isinstance(stmt, ast.IndexStmt):
        schema, table = _range(stmt.relation)
        columns = []
        for elem in stmt.indexParams or ():
            columns.append(IndexColumn(
                elem.name if elem.name else _expression_text(elem.expr),
                descending=elem.ordering == SortByDir.SORTBY_DESC,
                nulls={SortByNulls.SORTBY_NULLS_FIRST: "first", SortByNulls.SORTBY_NULLS_LAST: "last"}.get(
                    elem.nulls_ordering),
                opclass=".".join(s.sval for s in elem.opclass) if elem.opclass else None,
                expression=not elem.name,
            ))
        return Fix("create_index", schema=schema, table=table, name=stmt.idxname, columns=tuple(columns),
                   include=tuple(e.name for e in stmt.indexIncludingParams or () if e.name),
                   where=_expression_text(stmt.whereClause) if stmt.whereClause is not None else None,
                   method=stmt.accessMethod or "btree", concurrently=bool(stmt.concurrent),
                   unique=bool(stmt.unique))
    if isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_INDEX and stmt.objects:
        names = [s.sval for s in stmt.objects[0]]
        return Fix("drop_index", schema=names[-2] if len(names) > 1 else None, name=names[-1],
                   concurrently=bool(stmt.concurrent))
    if isinstance(stmt, ast.ReindexStmt) and stmt.relation is not None:
        schema, name = _range(stmt.relation)
        return Fix("reindex", schema=schema, name=name,
                   concurrently=any(d.defname == "concurrently" for d in stmt.params or ()))
    if isinstance(stmt, ast.VacuumStmt) and stmt.rels and stmt.rels[0].relation is not None:
        schema, table = _range(stmt.rels[0].relation)
        options = [d.defname.lower() for d in stmt.options or ()]
        if not stmt.is_vacuumcmd:
            return Fix("analyze", schema=schema, table=table)
        return Fix("vacuum_full" if "full" in options else "vacuum", schema=schema, table=table,
                   settings=tuple((o, "on") for o in options if o not in ("full", "verbose")),
                   verbose="verbose" in options)
    if isinstance(stmt, ast.CreateStatsStmt) and stmt.relations:
        schema, table = _range(stmt.relations[0])
        names = [s.sval for s in stmt.defnames or ()]
        kinds = ", ".join(s.sval for s in stmt.stat_types or ()) or "dependencies, ndistinct, mcv"
        return Fix("create_statistics", schema=schema, table=table, name=names[-1] if names else None,
                   columns=tuple(e.name if e.name else _expression_text(e.expr) for e in stmt.exprs or ()),
                   settings=(("kinds", kinds),))
    if isinstance(stmt, ast.AlterSystemStmt) and stmt.setstmt is not None and stmt.setstmt.args:
        return Fix("alter_system", settings=((stmt.setstmt.name, _setting_value(stmt.setstmt.args)),))
    if isinstance(stmt, ast.VariableSetStmt) and stmt.name and stmt.args:
        return Fix("set", settings=((stmt.name, _setting_value(stmt.args)),))
    if isinstance(stmt, ast.AlterTableStmt) and stmt.relation is not None and len(stmt.cmds or ()) == 1:
        schema, table = _range(stmt.relation)
        cmd = stmt.cmds[0]
        options = cmd.def_ or ()
        if cmd.subtype.name == "AT_SetRelOptions":
            return Fix("alter_table", schema=schema, table=table,
                       settings=tuple((d.defname, _setting_value((d.arg,)) if d.arg is not None else "on")
                                      for d in options))
        if cmd.subtype.name == "AT_ResetRelOptions":
            return Fix("reset_table", schema=schema, table=table, settings=tuple((d.defname, "") for d in options))
    if isinstance(stmt, ast.CreateExtensionStmt):
        return Fix("create_extension", name=stmt.extname)
    return None


def _setting_value(args) -> str:
    from pglast import ast

    values = []
    for arg in args:
        if isinstance(arg, ast.A_Const) and arg.val is not None:
            val = arg.val
            values.append(str(getattr(val, "sval", None) or getattr(val, "ival", None)
                              or getattr(val, "fval", None) or getattr(val, "boolval", "")))
        elif isinstance(arg, ast.TypeName):
            values.append(".".join(n.sval for n in arg.names))
        else:
            values.append(_expression_text(arg))
    return ", ".join(values)


def parse_fix(sql_text: str) -> Fix | None:
    """The Fix a piece of SQL text proposes (PostgreSQL's own parser, pglast), or None.

    For findings that arrive with ``sql`` but no ``fix`` (saved by an older perfkit, e.g. the
    JSON files under ``data/sample``): the one place SQL text is read back. ``CREATE EXTENSION``
    before the main statement becomes its ``requires``, what follows it its ``then``; a
    ``SELECT pg_reload_conf()`` after ``ALTER SYSTEM`` is part of it. None when the text does not
    parse or holds nothing perfkit proposes.
    """
    text = str(sql_text or "").strip()
    if not text:
        return None
    import pglast  # (only for a text to read: a finding without SQL needs no parser)

    try:
        statements = [raw.stmt for raw in pglast.parse_sql(text)]
    except pglast.parser.ParseError:
        return None
    requires, main, then = [], None, []
    for stmt in statements:
        fix = _parsed(stmt)
        if fix is None:
            if isinstance(stmt, pglast.ast.SelectStmt) and main is not None and main.action == "alter_system":
                continue  # the reload alter_system renders itself
            return None
        if main is None and fix.action == "create_extension":
            requires.append(fix)
        elif main is None:
            main = fix
        elif fix.action == "alter_system" and main.action == "alter_system":
            main = replace(main, settings=main.settings + fix.settings)
        elif fix.action == "set" and main.action == "set":
            main = replace(main, settings=main.settings + fix.settings)
        else:
            then.append(fix)
    if main is None:
        return requires[0] if len(requires) == 1 else None
    return replace(main, requires=tuple(requires), then=tuple(then))


def finding_fix(row: Mapping) -> Fix | None:
    """The Fix of a finding row: its ``fix`` (a Fix or its dict), else read from its ``sql``."""
    fix = as_fix(row.get("fix"))
    if fix is not None:
        return fix
    return parse_fix(row.get("sql") or "") if isinstance(row.get("sql"), str) else None


def as_fix(value) -> Fix | None:
    """A Fix from a finding's ``fix`` value (a Fix, its dict, or empty)."""
    if isinstance(value, Fix):
        return value
    if isinstance(value, Mapping) and value.get("action"):
        return Fix.from_dict(value)
    return None


__all__ = [
    "ACTIONS", "KEYWORDS", "Fix", "IndexColumn", "alter_column_type", "alter_sequence", "alter_system", "grant",
    "alter_table", "analyze", "as_fix", "create_index", "create_statistics", "drop_index", "end_backend",
    "finding_fix", "index_name", "parse_fix", "qualified", "quote_ident", "reindex", "render", "reset_table",
    "set_local", "split_name", "trigram_index", "vacuum",
]
