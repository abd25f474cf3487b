"""Read EXPLAIN's text format (as pasted from psql, pgAdmin, logs or auto_explain).

``parse_text_lines(lines)`` returns the same document shape EXPLAIN (FORMAT JSON) has.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from perfkit.errors import BadInputError

NODE_TYPES = {
    "Result", "ProjectSet", "ModifyTable", "Append", "Merge Append", "Recursive Union",
    "BitmapAnd", "BitmapOr", "Nested Loop", "Merge Join", "Hash Join", "Seq Scan", "Sample Scan",
    "Gather", "Gather Merge", "Index Scan", "Index Only Scan", "Bitmap Index Scan",
    "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan", "Subquery Scan", "Function Scan",
    "Table Function Scan", "Values Scan", "CTE Scan", "Named Tuplestore Scan", "WorkTable Scan",
    "Foreign Scan", "Custom Scan", "Materialize", "Memoize", "Sort", "Incremental Sort", "Group",
    "Aggregate", "WindowAgg", "Unique", "SetOp", "LockRows", "Limit", "Hash",
}

_NUM = r"-?\d+(?:\.\d+)?"
_NODE = re.compile(
    rf"^(?P<indent> *)(?P<arrow>->\s+)?(?P<title>.*?)"
    rf"(?:\s+\(cost=(?P<startup_cost>{_NUM})\.\.(?P<total_cost>{_NUM})\s+rows=(?P<plan_rows>{_NUM})\s+width=(?P<width>\d+)\))?"
    rf"(?:\s+\((?:actual(?:\s+time=(?P<startup_time>{_NUM})\.\.(?P<total_time>{_NUM}))?\s+rows=(?P<rows>{_NUM})\s+loops=(?P<loops>\d+)|(?P<never>never executed))\))?"
    r"\s*$"
)
# The usual node line (a title starting with a letter, without "(", then the cost figures): the
# same groups as _NODE but for the title's trailing spaces (callers strip it), found without
# _NODE's lazy title, which tries the figures at every character; other lines are read by _NODE.
_NODE_USUAL = re.compile(
    rf"^(?P<indent> *)(?P<arrow>->\s+)?(?P<title>[A-Za-z][^(\n]*)"
    rf"\s+\(cost=(?P<startup_cost>{_NUM})\.\.(?P<total_cost>{_NUM})\s+rows=(?P<plan_rows>{_NUM})\s+width=(?P<width>\d+)\)"
    rf"(?:\s+\((?:actual(?:\s+time=(?P<startup_time>{_NUM})\.\.(?P<total_time>{_NUM}))?\s+rows=(?P<rows>{_NUM})\s+loops=(?P<loops>\d+)|(?P<never>never executed))\))?"
    r"\s*$"
)
# (the key's characters exclude ":", so it ends at the first colon; callers strip the value)
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9 _/\-().,]*):(?:\s+(?P<value>.*))?$")
_LABEL = re.compile(r"^(?P<indent> *)(?P<label>(?:InitPlan|SubPlan)\s+\d+.*|CTE\s+\S.*)$")
_JOIN_TYPES = r"(Left|Right|Full|Semi|Anti|Right Semi|Right Anti)"
_JOIN = re.compile(rf"^(?:(Hash|Merge)(?:\s+{_JOIN_TYPES})?\s+Join|(Nested Loop)(?:\s+{_JOIN_TYPES}\s+Join)?)$")
_AGG = re.compile(r"^(?:(Partial|Finalize)\s+)?(HashAggregate|GroupAggregate|MixedAggregate|Aggregate)$")
_SETOP = re.compile(r"^(HashSetOp|SetOp)(?:\s+(.+))?$")
_MODIFY = re.compile(r"^(?:Foreign\s+)?(Insert|Update|Delete|Merge)$")
_USING = re.compile(r'^(?P<type>.+?)(?P<backward>\s+Backward)?\s+using\s+(?P<index>"(?:[^"]|"")*"|\S+)$')
_IDENT = r'(?:"(?:[^"]|"")*"|[^\s."]+)'
# ``schema.table alias``, each part perhaps in double quotes (``"Sales"."Big Orders" o``)
_TARGET = re.compile(rf"^(?P<first>{_IDENT})(?:\.(?P<second>{_IDENT}))?(?:\s+(?P<alias>.+))?$")


def unquote(name: str) -> str:
    """An identifier as the catalog holds it: ``"My Table"`` -> ``My Table`` (``""`` -> ``"``)."""
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name
_TRIGGER = re.compile(
    r"^Trigger(?:\s+(?!for constraint)(?P<name>\S+))?(?:\s+for constraint\s+(?P<constraint>\S+))?"
    rf"(?:\s+on\s+(?P<relation>\S+))?:\s+(?:time=(?P<time>{_NUM})\s+)?calls=(?P<calls>\d+)\s*$"
)
_KB = re.compile(r"(-?\d+)\s*kB")
_WAL_PAIRS = re.compile(r"(records|fpi|bytes)=(\d+)")
_PAIR = re.compile(r"([A-Z][A-Za-z\- ]*?):\s+(\S+(?:\s+\(originally\s+\d+\))?)")
_ORIGINALLY = re.compile(r"(\d+)(?:\s+\(originally\s+(\d+)\))?")
_SORT_SPACE = re.compile(r"(Memory|Disk):\s*(-?\d+)kB")
_HEAP_BLOCKS = re.compile(r"(exact|lossy)=(\d+)")

_AGG_STRATEGY = {"HashAggregate": "Hashed", "GroupAggregate": "Sorted", "MixedAggregate": "Mixed", "Aggregate": "Plain"}
_TOP_LEVEL = {
    "Planning Time", "Execution Time", "Total runtime", "Planning", "JIT", "Settings",
    "Serialization", "Query Identifier", "Triggers",
}
_INTEGER_KEYS = {
    "Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck",
    "Heap Fetches", "Workers Planned", "Workers Launched", "Index Searches", "Rows Removed by Conflict Filter",
}
_LIST_KEYS = {"Sort Key", "Group Key", "Presorted Key", "Output", "Params Evaluated", "Conflict Arbiter Indexes"}


def split_top_level(text: str) -> list[str]:
    """Split ``a, f(b, c), 'x,y'`` at the commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth <= 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def decode_title(title: str) -> dict:
    """JSON keys for a node title such as ``Parallel Index Scan Backward using i on s.t x``."""
    node: dict[str, Any] = {}
    name = title.strip()
    for prefix, key in (("Async ", "Async Capable"), ("Parallel ", "Parallel Aware")):
        if name.startswith(prefix):
            node[key] = True
            name = name[len(prefix):]
    target = None
    if " on " in name:
        name, target = name.split(" on ", 1)
        name, target = name.strip(), target.strip()
    using = _USING.match(name)
    if using:
        name = using.group("type")
        node["Index Name"] = unquote(using.group("index"))
        node["Scan Direction"] = "Backward" if using.group("backward") else "Forward"
    elif name.endswith(" Backward"):
        name = name[: -len(" Backward")]
        node["Scan Direction"] = "Backward"
    # each pattern tried only when the ones before did not match (the same result as trying all)
    join = agg = setop = modify = None
    if not name.startswith("Custom Scan") and not (join := _JOIN.match(name)) and not (agg := _AGG.match(name)):
        if not (setop := _SETOP.match(name)):
            modify = _MODIFY.match(name)
    if name.startswith("Custom Scan"):
        provider = re.match(r"Custom Scan\s*\((.*)\)", name)
        node["Node Type"] = "Custom Scan"
        if provider:
            node["Custom Plan Provider"] = provider.group(1)
    elif join:
        node["Node Type"] = "Nested Loop" if join.group(3) else f"{join.group(1)} Join"
        node["Join Type"] = (join.group(4) if join.group(3) else join.group(2)) or "Inner"
    elif agg:
        node["Node Type"] = "Aggregate"
        node["Strategy"] = _AGG_STRATEGY[agg.group(2)]
        node["Partial Mode"] = agg.group(1) or "Simple"
    elif setop:
        node["Node Type"] = "SetOp"
        node["Strategy"] = "Hashed" if setop.group(1) == "HashSetOp" else "Sorted"
        if setop.group(2):
            node["Command"] = setop.group(2)
    elif modify and target is not None:
        node["Node Type"] = "ModifyTable"
        node["Operation"] = modify.group(1)
    else:
        node["Node Type"] = name
    kind = node["Node Type"]
    if target:
        parsed = _TARGET.match(target)
        schema = None
        if parsed:
            first = parsed.group("first")
            if parsed.group("second") is not None:
                schema, first = unquote(first), parsed.group("second")
            first = unquote(first)
            alias = parsed.group("alias")
            alias = unquote(alias.strip()) if alias else None
        else:
            words = target.split(" ", 1)
            first = words[0]
            alias = words[1].strip() if len(words) > 1 else None
        if kind == "Bitmap Index Scan":
            node["Index Name"] = first
        elif kind in ("CTE Scan", "WorkTable Scan"):
            node["CTE Name"] = first
            node["Alias"] = alias or first
        elif kind == "Function Scan":
            node["Function Name"] = first if schema is None else f"{schema}.{first}"
            node["Alias"] = alias or first
        elif kind in ("Subquery Scan", "Values Scan", "Table Function Scan"):
            node["Alias"] = unquote(target)
        elif kind == "Named Tuplestore Scan":
            node["Tuplestore Name"] = first
            node["Alias"] = alias or first
        else:
            if schema is not None:
                node["Schema"] = schema
            node["Relation Name"] = first
            node["Alias"] = alias or first
    return node


@functools.lru_cache(maxsize=4096)
def _decoded_title(title: str) -> dict:
    """:func:`decode_title`, once per distinct title (the caller copies it)."""
    return decode_title(title)


def _int_or_float(text: str) -> int | float:
    if "." in text:
        return float(text)
    if len(text) < 16 and text.isascii() and text.isdigit():  # exactly what float() then int() gives
        return int(text)
    value = float(text)
    return int(value) if value.is_integer() else value


_BUFFER_KEYS: dict[tuple[str, str], str] = {}  # ("shared", "hit") -> "Shared Hit Blocks", as met


@functools.lru_cache(maxsize=4096)
def _buffers(value: str) -> dict:
    """``shared hit=1 read=2, temp read=3 written=4`` as JSON buffer keys (once per distinct line:
    the callers merge the dict into theirs, never change it)."""
    out = {}
    names = _BUFFER_KEYS
    for part in value.split(","):
        words = part.split()
        if not words:
            continue
        scope = words[0]
        for pair in words[1:]:
            what, equals, count = pair.partition("=")
            if equals and count.isdigit():
                key = names.get((scope, what))
                if key is None:
                    key = f"{scope.capitalize()} {what.capitalize()} Blocks"
                    if len(names) < 256:
                        names[(scope, what)] = key
                out[key] = int(count)
    return out


_IO_SCOPES = {"": "", "shared/local": "", "shared": "Shared ", "local": "Local ", "temp": "Temp "}


@functools.lru_cache(maxsize=4096)
def _io_timings(value: str) -> dict:
    """``shared read=1.5 write=0.2, temp read=3.0`` (PG 16+), ``shared/local read=..`` (PG 15) or
    ``read=1.5 write=0.2`` (PG 14 and older) as JSON's ``[Shared |Local |Temp ]I/O Read/Write Time``
    (once per distinct line: the callers merge the dict into theirs, never change it)."""
    out = {}
    for part in value.split(","):
        words = part.split()
        scope = words[0] if words and "=" not in words[0] else ""
        prefix = _IO_SCOPES.get(scope.lower())
        if prefix is None:
            continue
        for pair in words[1:] if scope else words:
            what, _, ms = pair.partition("=")
            if what in ("read", "write"):
                try:
                    out[f"{prefix}I/O {what.capitalize()} Time"] = float(ms)
                except ValueError:
                    continue
                # the text leaves out a figure that is zero; JSON shows it
                out.setdefault(f"{prefix}I/O Read Time", 0.0)
                out.setdefault(f"{prefix}I/O Write Time", 0.0)
    return out


def _wal(value: str) -> dict:
    """``records=2 fpi=1 bytes=1234`` as JSON's ``WAL Records``, ``WAL FPI``, ``WAL Bytes``."""
    names = {"records": "WAL Records", "fpi": "WAL FPI", "bytes": "WAL Bytes"}
    return {names[what]: int(count) for what, count in _WAL_PAIRS.findall(value)}


def _pairs(value: str) -> dict:
    """``Buckets: 1024  Batches: 4  Memory Usage: 9kB`` (the rest of a line) as a dict of texts."""
    out = {}
    for match in _PAIR.finditer(value):
        out[match.group(1).strip()] = match.group(2)
    return out


def _kb(text: str | None) -> int | None:
    if text is None:
        return None
    match = _KB.search(text)
    return int(match.group(1)) if match else None


def _originally(text: str) -> tuple[int | None, int | None]:
    match = _ORIGINALLY.match(text)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2)) if match.group(2) else int(match.group(1))


def _node_detail(node: dict, key: str, value: str, *, path, line) -> None:
    """Store one ``Key: value`` line of a node under JSON's key names (unknown keys as text)."""
    if key not in _SPECIAL_DETAIL_KEYS and key not in node and not key.startswith("Worker "):
        node[key] = value  # (what the last branch below does, without asking each branch first)
        return
    if key in _INTEGER_KEYS:
        try:
            node[key] = _int_or_float(value.split()[0])
        except (ValueError, IndexError):
            raise BadInputError(f"{key} should be a number, not {value!r}", path=path, line=line) from None
    elif key == "Buffers":
        node.update(_buffers(value))
    elif key == "I/O Timings":
        node.update(_io_timings(value))
    elif key == "WAL":
        node.update(_wal(value))
    elif key == "Sort Method":
        method, _, rest = value.partition("  ")
        node["Sort Method"] = method.strip()
        space = _SORT_SPACE.search(rest)
        if space:
            node["Sort Space Type"] = space.group(1)
            node["Sort Space Used"] = int(space.group(2))
    elif key in ("Buckets", "Batches", "Planned Partitions") and ("Batches" in value or key == "Batches" or "Buckets" in value):
        node.update(_hash_figures(key, value, node.get("Node Type") == "Hash"))
    elif key == "Heap Blocks":
        for what, count in _HEAP_BLOCKS.findall(value):
            node[f"{what.capitalize()} Heap Blocks"] = int(count)
    elif key == "Hits" and "Misses" in value:
        pairs = {"Hits": value.split()[0], **_pairs(value)}
        for name in ("Hits", "Misses", "Evictions", "Overflows"):
            if pairs.get(name, "").isdigit():
                node[f"Cache {name}"] = int(pairs[name])
        if _kb(pairs.get("Memory Usage")) is not None:
            node["Peak Memory Usage"] = _kb(pairs.get("Memory Usage"))
    elif key in _LIST_KEYS:
        node[key] = split_top_level(value)
    elif key.startswith("Worker ") and key[7:].isdigit():
        node.setdefault("Workers", []).append(f"{key}: {value}")
    elif key in node and key not in ("Node Type",):
        node[key] = f"{node[key]}; {value}"
    else:
        node[key] = value


@functools.lru_cache(maxsize=4096)
def _hash_figures(key: str, value: str, is_hash: bool) -> dict:
    """A ``Buckets: ..  Batches: ..  Memory Usage: ..`` line (of a Hash node when ``is_hash``, else
    of a HashAggregate) as JSON's keys, once per distinct line (the callers merge the dict into
    theirs, never change it)."""
    node: dict[str, Any] = {}
    pairs = {key: value.split("  ")[0].strip(), **_pairs(value)}
    if is_hash or "Buckets" in pairs:
        buckets = _originally(pairs.get("Buckets", ""))
        batches = _originally(pairs.get("Batches", ""))
        if buckets[0] is not None:
            node["Hash Buckets"], node["Original Hash Buckets"] = buckets
        if batches[0] is not None:
            node["Hash Batches"], node["Original Hash Batches"] = batches
    else:
        if pairs.get("Planned Partitions", "").isdigit():
            node["Planned Partitions"] = int(pairs["Planned Partitions"])
        if pairs.get("Batches", "").isdigit():
            node["HashAgg Batches"] = int(pairs["Batches"])
        if _kb(pairs.get("Disk Usage")) is not None:
            node["Disk Usage"] = _kb(pairs.get("Disk Usage"))
    if _kb(pairs.get("Memory Usage")) is not None:
        node["Peak Memory Usage"] = _kb(pairs.get("Memory Usage"))
    return node


# the keys _node_detail reads in a way of their own (all others are kept as text)
_SPECIAL_DETAIL_KEYS = frozenset({
    *_INTEGER_KEYS, *_LIST_KEYS, "Buffers", "I/O Timings", "WAL", "Sort Method", "Buckets", "Batches",
    "Planned Partitions", "Heap Blocks", "Hits", "Node Type",
})

_MEMORY = re.compile(r"(used|allocated)=(\d+)kB")
_SERIALIZATION = re.compile(r"^(?:time=(?P<time>-?\d+(?:\.\d+)?) ms\s+)?output=(?P<kb>\d+)kB\s+format=(?P<format>\S+)")


def _serialization(value: str) -> dict | str:
    """``time=4.690 ms  output=31251kB  format=text`` as JSON's ``Time``, ``Output Volume``, ``Format``
    (the text itself when it does not read so)."""
    match = _SERIALIZATION.match(value)
    if not match:
        return value
    out: dict[str, Any] = {}
    if match.group("time") is not None:
        out["Time"] = float(match.group("time"))
    out["Output Volume"] = int(match.group("kb"))
    out["Format"] = match.group("format")
    return out


def _top_level(document: dict, block: str | None, key: str, value: str, *, path, line) -> str | None:
    """Store a line outside the tree (Planning Time, JIT, Settings, ...); returns the open block."""
    if block == "Planning" and key in ("Buffers", "I/O Timings"):
        document.setdefault("Planning", {}).update(_buffers(value) if key == "Buffers" else _io_timings(value))
        return block
    if block == "Planning" and key == "Memory":  # PG 17 MEMORY: ``used=6kB  allocated=8kB``
        planning = document.setdefault("Planning", {})
        planning[key] = value  # the text as printed, and JSON's numbers
        for what, kb in _MEMORY.findall(value):
            planning[f"Memory {what.capitalize()}"] = int(kb)
        return block
    if block == "Serialization" and key in ("Buffers", "I/O Timings"):
        serialization = document.setdefault("Serialization", {})
        serialization.update(_buffers(value) if key == "Buffers" else _io_timings(value))
        return block
    if key == "Serialization" and value:  # PG 17 SERIALIZE: ``time=4.690 ms  output=31251kB  format=text``
        document[key] = _serialization(value)
        return key
    if block == "JIT":
        jit = document.setdefault("JIT", {})
        if key == "Functions" and value.isdigit():
            jit["Functions"] = int(value)
        elif key == "Options":
            jit["Options"] = {
                name.strip(): flag.strip() == "true"
                for name, flag in (part.rsplit(" ", 1) for part in value.split(",") if " " in part.strip())
            }
        elif key == "Timing":
            jit["Timing"] = {
                name.strip(): float(ms)
                for name, ms in re.findall(r"([A-Za-z]+)\s+(-?\d+(?:\.\d+)?)\s*ms", value)
            }
        else:
            jit[key] = value
        return block
    if block and not key:
        return block
    if key in ("Planning Time", "Execution Time", "Total runtime"):
        match = re.match(_NUM, value or "")
        if not match:
            raise BadInputError(f"{key} should be a number of ms, not {value!r}", path=path, line=line)
        document["Execution Time" if key == "Total runtime" else key] = float(match.group(0))
        return None
    if key == "Settings":
        settings = {}
        for part in split_top_level(value or ""):
            name, _, setting = part.partition("=")
            settings[name.strip()] = setting.strip().strip("'")
        document["Settings"] = settings
        return None
    if key in ("Planning", "JIT") and not value:
        document.setdefault(key, {})
        return key
    if block == "Planning":
        document.setdefault("Planning", {})[key] = value
        return block
    document[key] = value
    return None


def parse_text_lines(lines: list[tuple[int, str]], *, path: str | None = None) -> dict:
    """An EXPLAIN (FORMAT JSON)-shaped document from text-format plan lines.

    Parameters
    ----------
    lines:
        (line number, text) pairs with psql/pgAdmin/log wrapping already removed
        (:func:`perfkit.plans.unwrap.unwrap`).
    path:
        The file name, for error messages.

    Returns
    -------
    dict
        ``{"Plan": {...}, "Planning Time": ..., "Execution Time": ..., "Triggers": [...], ...}``.
        Lines perfkit does not know are kept: ``Key: value`` under the key, others in
        ``"Unparsed Lines"`` of the node they follow.

    Raises
    ------
    BadInputError
        When there is no plan node, or a node line or known figure cannot be read (with the line).
    """
    document: dict[str, Any] = {}
    stack: list[tuple[int, dict]] = []  # (column of the node's title, node)
    pending: dict[int, tuple[int, str]] = {}  # id(owner node) -> (column, label) for the next child
    root: dict | None = None
    block: str | None = None
    tree_closed = False
    timed = False
    first_line = lines[0][0] if lines else None
    special_keys = _SPECIAL_DETAIL_KEYS

    for number, text in lines:
        stripped = text.strip()
        if not stripped:
            continue
        indent = len(text) - len(text.lstrip(" "))
        is_arrow = stripped.startswith("->")

        if root is not None and not is_arrow and indent == 0 or tree_closed and not is_arrow:
            trigger = _TRIGGER.match(stripped)
            if trigger:
                document.setdefault("Triggers", []).append(
                    {
                        "Trigger Name": trigger.group("name") or "",
                        **({"Constraint Name": trigger.group("constraint")} if trigger.group("constraint") else {}),
                        **({"Relation": trigger.group("relation")} if trigger.group("relation") else {}),
                        "Time": float(trigger.group("time")) if trigger.group("time") else None,
                        "Calls": int(trigger.group("calls")),
                    }
                )
                tree_closed, block = True, None
                continue
            key = _KEY.match(text)
            if key and (indent == 0 or block):
                tree_closed = True
                block = _top_level(document, block if indent > 0 else None, key.group("key").strip(), (key.group("value") or "").strip(), path=path, line=number)
                continue
            if indent == 0:
                document.setdefault("Unparsed Lines", []).append(stripped)
                tree_closed = True
                continue

        if tree_closed and not is_arrow:
            document.setdefault("Unparsed Lines", []).append(stripped)
            continue

        node_match = (_NODE_USUAL.match(text) or _NODE.match(text)) if (is_arrow or root is None) else None
        if node_match and (is_arrow or root is None):
            (arrow, title, startup_cost, total_cost, plan_rows, width, startup_time, total_time, actual_rows, loops,
             never) = node_match.group("arrow", "title", "startup_cost", "total_cost", "plan_rows", "width",
                                       "startup_time", "total_time", "rows", "loops", "never")
            title = title.strip()
            has_figures = plan_rows is not None or loops is not None or never
            if "(cost=" in title or "(actual" in title:
                raise BadInputError(f"cannot read the cost or actual figures of {title[:60]!r}", path=path, line=number)
            if root is None and not is_arrow:
                decoded = decode_title(title)
                if decoded["Node Type"] not in NODE_TYPES and not has_figures:
                    raise BadInputError(
                        f"not an EXPLAIN plan: {stripped[:60]!r} is not a plan node", path=path, line=number
                    )
            if not title:
                raise BadInputError("a plan node line without a node name", path=path, line=number)
            node = dict(_decoded_title(title))  # (names and flags: a shallow copy is a copy)
            node.setdefault("Parallel Aware", False)
            if startup_cost is not None:  # (costs have decimals: float() is what _int_or_float gives)
                node["Startup Cost"] = float(startup_cost) if "." in startup_cost else _int_or_float(startup_cost)
            if total_cost is not None:
                node["Total Cost"] = float(total_cost) if "." in total_cost else _int_or_float(total_cost)
            if plan_rows is not None:
                node["Plan Rows"] = _int_or_float(plan_rows)
            if width is not None:  # (digits only: what _int_or_float gives)
                node["Plan Width"] = int(width) if len(width) < 16 else _int_or_float(width)
            if never:
                node["Actual Rows"] = 0
                node["Actual Loops"] = 0
            elif loops is not None:
                if total_time is not None:
                    timed = True
                    node["Actual Startup Time"] = float(startup_time)
                    node["Actual Total Time"] = float(total_time)
                node["Actual Rows"] = _int_or_float(actual_rows)
                node["Actual Loops"] = int(loops)
            arrow_column = indent
            title_column = indent + (len(arrow) if arrow else 0)
            if root is None:
                root = node
                stack = [(title_column, node)]
                continue
            while len(stack) > 1 and stack[-1][0] >= arrow_column:
                stack.pop()
            parent = stack[-1][1]
            label = pending.pop(id(parent), None)
            if label is not None and label[0] < arrow_column:
                name = label[1]
                relationship = "SubPlan" if name.startswith("SubPlan") else "InitPlan"
                node["Parent Relationship"] = relationship
                node["Subplan Name"] = name
            else:
                parent_type = parent.get("Node Type")
                if parent_type in ("Append", "Merge Append", "BitmapAnd", "BitmapOr"):
                    node["Parent Relationship"] = "Member"
                elif parent_type == "Subquery Scan":
                    node["Parent Relationship"] = "Subquery"
                else:
                    relationship = "Outer"
                    for child in parent.get("Plans", ()):  # (a loop: no generator per node)
                        if child.get("Parent Relationship") in ("Outer", "Inner"):
                            relationship = "Inner"
                            break
                    node["Parent Relationship"] = relationship
            parent.setdefault("Plans", []).append(node)
            stack.append((title_column, node))
            continue

        if root is None:
            raise BadInputError(f"not an EXPLAIN plan: {stripped[:60]!r} is not a plan node", path=path, line=number)

        # a detail line: belongs to the deepest node whose title starts left of it
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        owner = stack[-1][1]
        key = None if is_arrow else _KEY.match(text)
        if key:
            name, value = key.group("key", "value")
            name = name.strip()
            value = value.strip() if value else ""
            if name not in special_keys and name not in owner and not name.startswith("Worker "):
                owner[name] = value  # (what _node_detail does with it, without the call)
            else:
                _node_detail(owner, name, value, path=path, line=number)
            continue
        label = _LABEL.match(text)
        if label:
            pending[id(owner)] = (indent, label.group("label").strip())
            continue
        owner.setdefault("Unparsed Lines", []).append(stripped)

    if root is None:
        raise BadInputError("no plan found (the text is empty)", path=path, line=first_line)
    stack_nodes = [root]
    while stack_nodes:
        node = stack_nodes.pop()
        # a node that never ran takes no time in a timed plan
        if timed and node.get("Actual Loops") == 0 and "Actual Total Time" not in node:
            node["Actual Startup Time"] = 0.0
            node["Actual Total Time"] = 0.0
        # the text format leaves out "Rows Removed by ...: 0"; JSON always shows it
        if "Actual Loops" in node:
            if "Filter" in node and "Rows Removed by Filter" not in node:
                node["Rows Removed by Filter"] = 0
            if "Join Filter" in node and "Rows Removed by Join Filter" not in node:
                node["Rows Removed by Join Filter"] = 0
        children = node.get("Plans")
        if children:
            stack_nodes.extend(children)
    document["Plan"] = root
    return document
