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

from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

MAX_IDENTIFIER = 63  # NAMEDATALEN - 1 bytes
DEFAULT_SCHEMA = "public"
_BARE = re.compile(r"[a-z_][a-z0-9_$]*")
# Every keyword PostgreSQL's grammar does not accept as a bare column or table name in every
# position perfkit writes one (index columns, ON table, CREATE STATISTICS ... ON a, b).
KEYWORDS = frozenset(RESERVED_KEYWORDS) | frozenset(TYPE_FUNC_NAME_KEYWORDS) | frozenset(COL_NAME_KEYWORDS)

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
                    " ".join((self.where or "").lower().split()))
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
        return render(self)

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


def drop_index(schema: str | None, name: str, *, table: str | None = None, columns: Iterable = ()) -> Fix:
    """A ``drop_index`` fix; ``table`` and the dropped index's key ``columns`` let advice tell a
    proposal that would build it again."""
    return Fix("drop_index", schema=schema, name=name, table=table, columns=_columns(columns))


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
    elif a in ("cancel_backend", "terminate_backend"):
        word = "terminate" if a == "terminate_backend" else "cancel"
        parts.append(f"SELECT pg_{word}_backend({int(dict(fix.settings)['pid'])});")
    parts += [render(t) for t in fix.then]
    if fix.comment:
        parts[-1] += f"  -- {fix.comment}"
    return "\n".join(parts)


def as_fix(value) -> Fix | None:
    """A Fix from a finding's ``fix`` value (a Fix, its dict, or empty)."""
    if isinstance(value, Fix):
        return value
    if isinstance(value, Mapping) and value.get("action"):
        return Fix.from_dict(value)
    return None


__all__ = [
    "ACTIONS", "KEYWORDS", "Fix", "IndexColumn", "alter_column_type", "alter_sequence", "alter_system",
    "alter_table", "analyze", "as_fix", "create_index", "create_statistics", "drop_index", "end_backend",
    "index_name", "qualified", "quote_ident", "reindex", "render", "reset_table", "set_local", "split_name",
    "trigram_index", "vacuum",
]
