"""The Plan object: an EXPLAIN document (JSON keys, from either parser) turned into node rows.

``build_plan(document)`` returns a :class:`Plan` whose ``rows`` (and ``nodes`` DataFrame, built when
first used) have the contract's columns. Nothing here imports pandas until a DataFrame is asked for.
"""

from __future__ import annotations

import contextlib
import gc
import math
import re
from typing import TYPE_CHECKING, Any

from perfkit.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd

# The contract's plan-node columns (DESIGN.md), then the extra columns perfkit adds.
NODE_COLUMNS = [
    "node_id",
    "parent_id",
    "depth",
    "node_type",
    "relation",
    "index_name",
    "plan_rows",
    "actual_rows",
    "loops",
    "total_ms",
    "self_ms",
    "misestimate",
    "shared_hit",
    "shared_read",
    "temp_read",
    "temp_written",
    "rows_removed_by_filter",
    "workers_planned",
    "workers_launched",
    "detail",
]
EXTRA_COLUMNS = [
    "label",
    "alias",
    "parent_relationship",
    "subplan_name",
    "startup_cost",
    "total_cost",
    "pct_total",
    "heap_fetches",
    "shared_dirtied",
    "shared_written",
    "io_read_ms",
    "io_write_ms",
    "self_io_read_ms",
    "wal_records",
    "wal_bytes",
]
_IO_READ_KEYS = ("I/O Read Time", "Shared I/O Read Time", "Local I/O Read Time", "Temp I/O Read Time")
_IO_WRITE_KEYS = ("I/O Write Time", "Shared I/O Write Time", "Local I/O Write Time", "Temp I/O Write Time")

# JSON keys that become columns (everything else of a node goes into ``detail``).
_COLUMN_KEYS = {
    "Node Type",
    "Relation Name",
    "Index Name",
    "Plan Rows",
    "Actual Rows",
    "Actual Loops",
    "Actual Total Time",
    "Shared Hit Blocks",
    "Shared Read Blocks",
    "Shared Dirtied Blocks",
    "Shared Written Blocks",
    "Temp Read Blocks",
    "Temp Written Blocks",
    "Rows Removed by Filter",
    "Workers Planned",
    "Workers Launched",
    "Alias",
    "Parent Relationship",
    "Subplan Name",
    "Startup Cost",
    "Total Cost",
    "Heap Fetches",
    "Plans",
    *_IO_READ_KEYS,
    *_IO_WRITE_KEYS,
    "WAL Records",
    "WAL Bytes",
}

# Children whose time is inside their parent's inclusive time (explain.c's "Parent Relationship").
_GATHER_TYPES = {"Gather", "Gather Merge"}
_RETURNS = re.compile(r"returns\s+(.*?)\)?\s*$")
_PARAM = re.compile(r"\$\d+")


def number(value: Any) -> float:
    """``value`` as a float, NaN when absent or not a number (bools are not numbers)."""
    if value is None:
        return math.nan
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return math.nan
    return math.nan


@contextlib.contextmanager
def paused_gc():
    """No cyclic garbage collection inside (restored after, also on an error).

    Reading a large plan allocates hundreds of thousands of small dicts, lists and strings and
    frees none of them: each collection the allocations trigger walks every live object (the
    half-built plan and all loaded modules) for no garbage; plans make no reference cycles.

    After, the objects made inside are moved to the oldest generation without a pass over them
    (``gc.freeze()`` then ``gc.unfreeze()``, when nothing else is frozen): else the first
    allocation after would start a young-generation collection that walks every one of them
    (0.02-0.03 s for a 10,000-node plan) only to find them all alive. The next full collection
    looks at them as it looks at every object.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():  # (never unfreeze what someone else froze)
            gc.freeze()
            gc.unfreeze()
        gc.enable()


_TRIGGER_COLUMNS = ["trigger", "constraint", "relation", "time_ms", "calls"]


def _is_nan(value: Any) -> bool:
    return value is None or (type(value) is float and value != value)


class Plan:
    """One parsed EXPLAIN plan.

    Attributes
    ----------
    rows:
        One dict per plan node, depth-first, keyed by ``NODE_COLUMNS + EXTRA_COLUMNS``: the
        contract's columns (DESIGN.md, Plan nodes) plus ``label`` (the node as EXPLAIN prints
        it, e.g. ``Seq Scan on orders``), ``alias``, ``parent_relationship``, ``subplan_name``,
        ``startup_cost``, ``total_cost``, ``pct_total`` (self time as a share of the root's
        inclusive time), ``heap_fetches``, ``shared_dirtied``, ``shared_written`` and the I/O
        and WAL figures. Times are milliseconds for all loops (wall time under Gather); buffer
        counts include children, as EXPLAIN reports them. A missing number is NaN, a missing
        name None; the root's ``parent_id`` is None.
    nodes:
        The same rows as a DataFrame (built on first use; reading a plan does not need pandas).
    planning_ms, execution_ms:
        ``Planning Time`` and ``Execution Time`` (or the old ``Total runtime``); NaN when absent.
    trigger_rows, triggers:
        One dict (and one DataFrame row) per trigger: ``trigger``, ``constraint``, ``relation``,
        ``time_ms``, ``calls``.
    finding_rows, findings:
        The findings of every rule with default thresholds, most severe first: Finding dicts
        (with ``node_id``, None for plan-wide findings), and the findings DataFrame of them.
    jit:
        ``functions``, ``generation_ms``, ``inlining_ms``, ``optimization_ms``,
        ``emission_ms``, ``total_ms`` and the options, or empty when JIT did not run.
    settings:
        Non-default planner settings reported by ``EXPLAIN (SETTINGS)``.
    source:
        Where the plan came from: a file name, ``"text"``, or a short description of the capture.
    """

    def __init__(
        self,
        nodes: pd.DataFrame | None = None,
        planning_ms: float = math.nan,
        execution_ms: float = math.nan,
        triggers: pd.DataFrame | None = None,
        jit: dict | None = None,
        settings: dict | None = None,
        source: str = "",
        format: str = "json",  # noqa: A002 - the attribute's name since the start
        query: str = "",
        planning: dict | None = None,
        extra: dict | None = None,
        document: dict | None = None,
        *,
        rows: list[dict] | None = None,
        trigger_rows: list[dict] | None = None,
    ):
        self._nodes = nodes
        self._rows = rows if rows is not None or nodes is not None else []
        self._triggers = triggers
        self._trigger_rows = trigger_rows if trigger_rows is not None or triggers is not None else []
        self.planning_ms = planning_ms
        self.execution_ms = execution_ms
        self.jit = {} if jit is None else jit
        self.settings = {} if settings is None else settings
        self.source = source
        self.format = format
        self.query = query
        self.planning = {} if planning is None else planning
        self.extra = {} if extra is None else extra
        self.document = {} if document is None else document
        self._finding_rows: list[dict] | None = None
        self._findings: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (f"Plan(source={self.source!r}, format={self.format!r}, nodes={len(self.rows)}, "
                f"planning_ms={self.planning_ms!r}, execution_ms={self.execution_ms!r})")

    # --- the nodes: rows first, the DataFrame when asked for ---------------------------------------
    @property
    def rows(self) -> list[dict]:
        """One dict per node, depth-first (see the class's documentation)."""
        if self._rows is None:
            self._rows = _rows_of_frame(self._nodes)
        return self._rows

    @property
    def nodes(self) -> pd.DataFrame:
        """The node rows as a DataFrame (built on first use, then kept)."""
        if self._nodes is None:
            self._nodes = rows_frame(self._rows)
        return self._nodes

    @nodes.setter
    def nodes(self, frame: pd.DataFrame) -> None:
        self._nodes, self._rows = frame, None
        self._finding_rows = self._findings = None
        self.__dict__.pop("_rule_index", None)

    @property
    def trigger_rows(self) -> list[dict]:
        """One dict per trigger: ``trigger``, ``constraint``, ``relation``, ``time_ms``, ``calls``."""
        if self._trigger_rows is None:
            self._trigger_rows = [
                {key: row.get(key) for key in _TRIGGER_COLUMNS} for row in self._triggers.to_dict("records")
            ]
        return self._trigger_rows

    @property
    def triggers(self) -> pd.DataFrame:
        """The triggers as a DataFrame (built on first use)."""
        if self._triggers is None:
            self._triggers = _triggers_frame(self._trigger_rows)
        return self._triggers

    @triggers.setter
    def triggers(self, frame: pd.DataFrame) -> None:
        self._triggers, self._trigger_rows = frame, None
        self._finding_rows = self._findings = None

    @property
    def analyzed(self) -> bool:
        """Whether the plan has actual row counts (EXPLAIN ANALYZE)."""
        return any(not _is_nan(row["loops"]) for row in self.rows)

    @property
    def timed(self) -> bool:
        """Whether the plan has actual times (ANALYZE without ``TIMING OFF``)."""
        return any(not _is_nan(row["total_ms"]) for row in self.rows)

    @property
    def root_ms(self) -> float:
        """The root node's inclusive time (NaN without ANALYZE timing)."""
        value = self.rows[0]["total_ms"]
        return math.nan if value is None else float(value)

    @property
    def io_read_ms(self) -> float:
        """Time the whole plan waited on reads (the root's inclusive I/O read time; NaN without
        ``track_io_timing``)."""
        return _plan_io(self.rows, "io_read_ms")

    @property
    def io_write_ms(self) -> float:
        """Time the whole plan waited on writes (NaN without ``track_io_timing``)."""
        return _plan_io(self.rows, "io_write_ms")

    @property
    def trigger_ms(self) -> float:
        """Time spent in triggers, which is outside every node."""
        return float(sum(t["time_ms"] for t in self.trigger_rows if not _is_nan(t["time_ms"])))

    # --- findings ---------------------------------------------------------------------------------
    @property
    def finding_rows(self) -> list[dict]:
        """The findings of every rule with default thresholds as Finding dicts, most severe first
        (see :mod:`perfkit.plans.rules`); computed once, without pandas."""
        if self._finding_rows is None:
            from perfkit.plans.rules import problem_rows

            with paused_gc():
                self._finding_rows = problem_rows(self)
        return self._finding_rows

    @property
    def findings(self) -> pd.DataFrame:
        """The findings of every rule with default thresholds (see :mod:`perfkit.plans.rules`)."""
        if self._findings is None:
            from perfkit.plans.rules import problems_frame

            self._findings = problems_frame(self.finding_rows)
        return self._findings

    def find(self, rules=None, **thresholds) -> pd.DataFrame:
        """The findings with chosen rules and thresholds.

        Parameters
        ----------
        rules:
            Rule names (``perfkit.plans.rules.RULES`` keys); all rules when None.
        **thresholds:
            ``{rule_name: {argument: value}}``, e.g. ``seq_scan_large_table={"min_rows": 1000}``.
        """
        from perfkit.plans.rules import find_problems

        with paused_gc():
            return find_problems(self, rules=rules, thresholds=thresholds)

    def node(self, node_id: int) -> pd.Series:
        """The row of one node."""
        return self.nodes.loc[self.nodes["node_id"] == node_id].iloc[0]

    def children(self, node_id: int) -> pd.DataFrame:
        """The rows of a node's direct children."""
        return self.nodes.loc[self.nodes["parent_id"] == node_id]

    def to_dict(self) -> dict:
        """Everything as plain values, for ``--json`` (nodes and findings as lists of rows)."""
        return {
            "source": self.source,
            "format": self.format,
            "planning_ms": self.planning_ms,
            "execution_ms": self.execution_ms,
            "root_ms": self.root_ms,
            "trigger_ms": self.trigger_ms,
            "io_read_ms": self.io_read_ms,
            "io_write_ms": self.io_write_ms,
            "nodes": self.nodes,
            "findings": self.findings,
            "triggers": self.triggers,
            "jit": self.jit,
            "settings": self.settings,
            "planning": self.planning,
            "query": self.query,
        }


def _plan_io(rows: list[dict], column: str) -> float:
    """The sum of the top-most reported inclusive figures (= the root's when every node has it)."""
    values = {row["node_id"]: row.get(column) for row in rows}
    reported = {node_id for node_id, value in values.items() if not _is_nan(value)}
    if not reported:
        return math.nan
    parents = {row["node_id"]: row["parent_id"] for row in rows}
    total = 0.0
    for node_id in reported:
        parent, covered = parents[node_id], False
        while not _is_nan(parent):
            if parent in reported:
                covered = True
                break
            parent = parents[int(parent)]
        if not covered:
            total += float(values[node_id])
    return total


def _triggers_frame(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=_TRIGGER_COLUMNS)
    frame["time_ms"] = pd.to_numeric(frame["time_ms"], errors="coerce")
    frame["calls"] = pd.to_numeric(frame["calls"], errors="coerce")
    return frame


def _rows_of_frame(frame: pd.DataFrame) -> list[dict]:
    """The rows of a node frame as plain dicts (Python numbers; None for the root's parent)."""
    rows = frame.to_dict("records")
    for row in rows:
        parent = row.get("parent_id")
        row["parent_id"] = None if parent is None or parent != parent or str(parent) == "<NA>" else int(parent)
        for key in ("node_id", "depth"):
            if key in row:
                row[key] = int(row[key])
    return rows


# --- labels: the node as EXPLAIN's text format prints it ------------------------------------------
_AGG_NAMES = {"Plain": "Aggregate", "Sorted": "GroupAggregate", "Hashed": "HashAggregate", "Mixed": "MixedAggregate"}
_INDEX_SCANS = {"Index Scan", "Index Only Scan"}


def node_label(node: dict) -> str:
    """The text-format title of a JSON plan node, e.g. ``Index Scan using i on orders o``."""
    kind = str(node.get("Node Type", "?"))
    name = kind
    if kind == "Aggregate":
        name = _AGG_NAMES.get(str(node.get("Strategy", "Plain")), "Aggregate")
        mode = node.get("Partial Mode")
        if mode in ("Partial", "Finalize"):
            name = f"{mode} {name}"
    elif kind == "SetOp":
        name = ("HashSetOp" if node.get("Strategy") == "Hashed" else "SetOp") + (
            f" {node['Command']}" if node.get("Command") else ""
        )
    elif kind in ("Hash Join", "Merge Join", "Nested Loop"):
        join = node.get("Join Type")
        if join and join != "Inner":
            name = f"{kind.removesuffix(' Join')} {join} Join"
    elif kind == "ModifyTable":
        name = str(node.get("Operation") or kind)
    elif kind == "Custom Scan" and node.get("Custom Plan Provider"):
        name = f"Custom Scan ({node['Custom Plan Provider']})"
    if node.get("Parallel Aware") is True:
        name = "Parallel " + name
    if node.get("Async Capable") is True:
        name = "Async " + name
    if kind in _INDEX_SCANS or kind == "Bitmap Index Scan":
        if node.get("Scan Direction") == "Backward":
            name += " Backward"
        if kind != "Bitmap Index Scan" and node.get("Index Name"):
            name += f" using {node['Index Name']}"
    target = None
    if kind == "Bitmap Index Scan":
        target = node.get("Index Name")
    elif node.get("Relation Name"):
        target = str(node["Relation Name"])
        if node.get("Schema"):
            target = f"{node['Schema']}.{target}"
    elif node.get("CTE Name"):
        target = str(node["CTE Name"])
    elif node.get("Function Name"):
        target = str(node["Function Name"])
    elif node.get("Tuplestore Name"):
        target = str(node["Tuplestore Name"])
    elif kind in ("Subquery Scan", "Values Scan", "Table Function Scan") and node.get("Alias"):
        return f"{name} on {node['Alias']}"
    if target:
        name += f" on {target}"
        alias = node.get("Alias")
        if alias and alias != node.get("Relation Name") and alias != node.get("CTE Name") and alias != node.get("Function Name"):
            name += f" {alias}"
    return name


# --- building the node rows -------------------------------------------------------------------------
def _flatten(root: dict, path: str | None) -> tuple[list[tuple[dict, int | None, int]], list[list[int]]]:
    """Depth-first (pre-order) list of (node, parent index, depth), without recursion, and the
    indexes of each node's children (in their order)."""
    out: list[tuple[dict, int | None, int]] = []
    kids: list[list[int]] = []
    stack: list[tuple[Any, int | None, int]] = [(root, None, 0)]
    while stack:
        node, parent, depth = stack.pop()
        if not isinstance(node, dict):
            raise BadInputError(f"a plan node is a {type(node).__name__}, not an object", path=path)
        index = len(out)
        out.append((node, parent, depth))
        kids.append([])
        if parent is not None:
            kids[parent].append(index)
        children = node.get("Plans", [])
        if children is None:
            children = []
        if not isinstance(children, list):
            raise BadInputError(f"'Plans' of the node {node_label(node)!r} is not a list", path=path)
        for child in reversed(children):
            stack.append((child, index, depth + 1))
    return out, kids


def _string_values(node: dict) -> str:
    """All text a node shows (conditions, keys, outputs), for finding parameter references."""
    parts = []
    for key, value in node.items():
        if key == "Plans":
            continue
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(str(v) for v in value if isinstance(v, str))
    return "\n".join(parts)


def _initplan_refs(subplan_name: str) -> list[re.Pattern]:
    """Patterns matching the references to what an InitPlan returns.

    ``InitPlan 1 (returns $0,$1)`` up to PG 16 gives ``$0`` and ``$1``; from PG 17 the name is
    ``InitPlan 1`` and users write ``(InitPlan 1).col1``.
    """
    patterns = []
    match = _RETURNS.search(subplan_name)
    if match:
        for param in _PARAM.findall(match.group(1)):
            patterns.append(re.compile(re.escape(param) + r"(?!\d)"))
    number_match = re.match(r"\s*InitPlan\s+(\d+)", subplan_name)
    if number_match:
        patterns.append(re.compile(r"\(InitPlan " + number_match.group(1) + r"\)"))
    return patterns


# JSON keys read as a number into a column (``Actual Rows`` and ``Rows Removed by Filter`` are per
# loop, multiplied by the loops after; the I/O keys only mark that a node has I/O timings).
_NUMBER_KEYS = {
    "Plan Rows": "plan_rows",
    "Actual Rows": "actual_rows",
    "Actual Loops": "loops",
    "Actual Total Time": "_per_loop_ms",
    "Shared Hit Blocks": "shared_hit",
    "Shared Read Blocks": "shared_read",
    "Temp Read Blocks": "temp_read",
    "Temp Written Blocks": "temp_written",
    "Rows Removed by Filter": "rows_removed_by_filter",
    "Workers Planned": "workers_planned",
    "Workers Launched": "workers_launched",
    "Startup Cost": "startup_cost",
    "Total Cost": "total_cost",
    "Heap Fetches": "heap_fetches",
    "Shared Dirtied Blocks": "shared_dirtied",
    "Shared Written Blocks": "shared_written",
    "WAL Records": "wal_records",
    "WAL Bytes": "wal_bytes",
    **{key: "_io" for key in (*_IO_READ_KEYS, *_IO_WRITE_KEYS)},
}
# each JSON key that becomes (or marks) a column -> its number column, or "" for the others (names, Plans)
_KEY_COLUMNS = {**{key: "" for key in _COLUMN_KEYS}, **_NUMBER_KEYS}
_NAME_COLUMNS = ("node_type", "relation", "index_name", "detail", "label", "alias")
# every row starts as a copy of this: NaN for each number, None for each name
_ROW_TEMPLATE = {
    **{column: None if column in _NAME_COLUMNS else math.nan for column in NODE_COLUMNS + EXTRA_COLUMNS},
    "parent_relationship": "",
    "subplan_name": "",
    "_per_loop_ms": math.nan,
}


def _records(flat: list[tuple[dict, int | None, int]]) -> list[dict]:
    """One row per node (one pass over each node's keys; ``_per_loop_ms`` for _assign_times)."""
    records = []
    key_columns = _KEY_COLUMNS
    template = _ROW_TEMPLATE
    nan = math.nan
    for index, (node, parent, depth) in enumerate(flat):
        row = template.copy()
        detail = {}
        for key, value in node.items():
            column = key_columns.get(key)
            if column is None:  # not a column: kept in detail
                detail[key] = value
            elif column:  # a number
                kind = value.__class__
                row[column] = value if kind is float else float(value) if kind is int else number(value)
        loops = row["loops"]
        per_loop_rows = row["actual_rows"]
        plan_rows = row["plan_rows"]
        if loops == 0:  # never executed: no rows, and no time when the plan is timed
            row["_per_loop_ms"] = 0.0 if "Actual Total Time" in node else nan
            per_loop_rows = 0.0
        misestimate = nan
        if loops and loops > 0 and per_loop_rows == per_loop_rows and plan_rows == plan_rows:
            misestimate = per_loop_rows / plan_rows if plan_rows > 0 else math.inf if per_loop_rows > 0 else 1.0
        row["misestimate"] = misestimate
        row["actual_rows"] = per_loop_rows * loops if loops == loops else nan
        row["rows_removed_by_filter"] *= loops  # shown per loop
        if "_io" in row:
            del row["_io"]
            row["io_read_ms"] = _io_sum(node, _IO_READ_KEYS)
            row["io_write_ms"] = _io_sum(node, _IO_WRITE_KEYS)
        row["node_id"] = index
        row["parent_id"] = parent
        row["depth"] = depth
        row["node_type"] = str(node.get("Node Type", "")) or "?"
        value = node.get("Relation Name")
        row["relation"] = value if value.__class__ is str else _text_or_none(value)
        value = node.get("Index Name")
        row["index_name"] = value if value.__class__ is str else _text_or_none(value)
        row["detail"] = detail
        row["label"] = node_label(node)
        value = node.get("Alias")
        row["alias"] = value if value.__class__ is str else _text_or_none(value)
        value = node.get("Parent Relationship")
        if value is not None:
            row["parent_relationship"] = value if value.__class__ is str else _text_or_none(value) or ""
        value = node.get("Subplan Name")
        if value is not None:
            row["subplan_name"] = value if value.__class__ is str else _text_or_none(value) or ""
        records.append(row)
    return records


def _io_sum(node: dict, keys: tuple[str, ...]) -> float:
    """Shared + local + temp I/O time (ms, all loops, children included); NaN when not reported."""
    total, found = 0.0, False
    for key in keys:
        value = node.get(key)  # (absent, or None: NaN, not counted)
        if value is not None:
            if value.__class__ is not float:
                value = number(value)
            if value == value:  # not NaN
                total += value
                found = True
    return total if found else math.nan


def _text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _assign_times(records: list[dict], flat: list[tuple[dict, int | None, int]], children: list[list[int]]) -> None:
    """Fill ``total_ms`` and ``self_ms`` following explain.c's accounting (and ``self_io_read_ms``;
    each row's ``_per_loop_ms`` is removed).

    * times are per loop: all loops = time x loops; under Gather / Gather Merge, loops count the
      leader and every worker, so wall time = time x loops / (workers launched + 1);
    * self = inclusive - children (Outer, Inner, Member, Subquery, SubPlan), clamped at 0;
    * an InitPlan runs where its parameter is first evaluated (a Gather's "Params Evaluated",
      else the first node using ``$n`` / ``(InitPlan n)``, else the node it hangs under), and a
      CTE runs inside the CTE Scans that read it: their time is taken off there, once;
    * ``self_io_read_ms``: a node's I/O read time minus its children's (I/O time is inclusive).
    """
    count = len(records)
    nan = math.nan
    outside = [record["parent_relationship"] == "InitPlan" for record in records]  # not inside its parent

    # wall-clock divisor: inherited from the nearest Gather above (through its non-InitPlan
    # children); the time of all loops over it
    divisor = [1.0] * count
    total = [nan] * count
    gathers = _GATHER_TYPES
    for index, record in enumerate(records):  # pre-order: parents come first
        parent = record["parent_id"]
        if parent is not None:
            divisor[index] = divisor[parent]
            parent_record = records[parent]
            if parent_record["node_type"] in gathers and not outside[index]:
                launched = parent_record["workers_launched"]
                if math.isnan(launched):
                    launched = parent_record["workers_planned"] if math.isnan(records[0]["loops"]) else 0.0
                divisor[index] = (0.0 if math.isnan(launched) else launched) + 1.0
        per_loop = record["_per_loop_ms"]
        if per_loop != per_loop:  # NaN
            continue
        loops = record["loops"]
        loops = 1.0 if loops != loops else loops
        total[index] = per_loop * loops / divisor[index]

    # EXPLAIN rounds per-loop times to 0.001 ms, so with many loops a node can show less time
    # than the children inside it (a Memoize at 0.000 x 1,000,000 over an Index Scan at
    # 0.002 x 20,000): an inclusive time is at least the sum of the children it includes.
    # Then (its children final before it) inclusive minus the children whose time is inside it.
    remaining = [nan] * count
    for index in range(count - 1, -1, -1):  # children before parents
        own = total[index]
        if own != own:
            continue
        kids = children[index]
        if not kids:
            if 0 > own:  # (as the sum of no children: 0)
                total[index] = own = 0
            remaining[index] = own
            continue
        inside = 0
        for child in kids:
            value = total[child]
            if not outside[child] and value == value:
                inside += value
        if inside > own:
            total[index] = own = inside
        left = own
        for child in kids:
            # Outer, Inner, Member, Subquery, SubPlan (and unknown ones) are inside the parent
            value = total[child]
            if not outside[child] and value == value:
                left -= value
        remaining[index] = left

    # InitPlans and CTEs: take their time off the nodes that ran them
    for index in [i for i, out in enumerate(outside) if out] if True in outside else ():
        record = records[index]
        amount = total[index]
        if math.isnan(amount):
            continue
        owner = record["parent_id"]
        name = record["subplan_name"]
        inside = _subtree(owner, children, exclude=index)
        if name.startswith("CTE "):
            cte = name[4:].strip()
            users = [
                i for i in range(count)
                if records[i]["node_type"] == "CTE Scan" and str(flat[i][0].get("CTE Name", "")) == cte
            ]
        else:
            patterns = _initplan_refs(name)
            evaluated = [
                i for i in inside
                if any(p.search(str(flat[i][0].get("Params Evaluated", ""))) for p in patterns)
            ]
            using = [
                i for i in _post_order(owner, children, exclude=index)
                if i != owner and any(p.search(_string_values(flat[i][0])) for p in patterns)
            ]
            users = evaluated + using
        users = [u for u in users if not math.isnan(remaining[u])]
        for user in users + [owner]:
            if amount <= 0:
                break
            if math.isnan(remaining[user]):
                continue
            take = min(amount, max(remaining[user], 0.0)) if user != owner else amount
            remaining[user] -= take
            amount -= take

    root_ms = total[0] if records else math.nan
    share = bool(root_ms and not math.isnan(root_ms) and root_ms > 0)
    zero = root_ms == 0
    for index, record in enumerate(records):
        del record["_per_loop_ms"]
        value = total[index]
        if value == value:
            record["total_ms"] = value
        own_io = record["io_read_ms"]
        if own_io == own_io:  # a timed plan with track_io_timing on prints nothing for a node that read nothing
            inside_io = 0.0
            for child in children[index]:
                value = records[child]["io_read_ms"]
                if value == value:
                    inside_io += value
            record["self_io_read_ms"] = max(own_io - inside_io, 0.0)
        left = remaining[index]
        if left != left:
            continue
        record["self_ms"] = left = max(left, 0.0)
        if share:
            record["pct_total"] = 100.0 * left / root_ms
        elif zero:
            record["pct_total"] = 0.0


def _subtree(start: int, children: list[list[int]], exclude: int | None = None) -> list[int]:
    out, stack = [], [start]
    while stack:
        node = stack.pop()
        if node == exclude:
            continue
        out.append(node)
        stack.extend(reversed(children[node]))
    return out


def _post_order(start: int, children: list[list[int]], exclude: int | None = None) -> list[int]:
    """Nodes under ``start`` children-first (roughly the order in which they start producing rows)."""
    out: list[int] = []
    stack: list[tuple[int, bool]] = [(start, False)]
    while stack:
        node, expanded = stack.pop()
        if node == exclude:
            continue
        if expanded:
            out.append(node)
            continue
        stack.append((node, True))
        for child in reversed(children[node]):
            stack.append((child, False))
    return out


def nodes_frame(root: dict, *, path: str | None = None) -> pd.DataFrame:
    """The node DataFrame of a JSON plan tree (``{"Node Type": ..., "Plans": [...]}``)."""
    return rows_frame(node_rows(root, path=path))


_OBJECT_COLUMNS = ("node_type", "relation", "index_name", "detail", "label", "alias", "parent_relationship",
                   "subplan_name")


def node_rows(root: dict, *, path: str | None = None) -> list[dict]:
    """The node rows (dicts, depth-first) of a JSON plan tree; see :class:`Plan`."""
    return _node_rows(root, path)[0]


def _node_rows(root: dict, path: str | None) -> tuple[list[dict], list[list[int]]]:
    """:func:`node_rows`, and the indexes of each node's children."""
    flat, children = _flatten(root, path)
    records = _records(flat)
    _assign_times(records, flat, children)
    return records, children


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """The node DataFrame of node rows, column by column (one pass over the rows per column).

    Names stay Python objects (``None`` for a missing one, never NaN); ``parent_id`` is Int64.
    """
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for column in NODE_COLUMNS + EXTRA_COLUMNS:
        values = [r.get(column) for r in rows]
        if column == "parent_id":
            data[column] = pd.array(values, dtype="Int64")
        elif column in ("node_id", "depth"):
            data[column] = np.array(values, dtype="int64")
        elif column in _OBJECT_COLUMNS:  # Python objects, not pandas' str dtype
            data[column] = pd.Series(values, dtype=object)
        else:
            data[column] = np.array([math.nan if v is None else v for v in values], dtype="float64")
    return pd.DataFrame(data, columns=NODE_COLUMNS + EXTRA_COLUMNS, copy=False)


# --- the document around the tree -------------------------------------------------------------------
_TOP_KEYS = {"Plan", "Planning Time", "Execution Time", "Total Runtime", "Triggers", "JIT", "Settings", "Planning", "Query Text"}


def _jit(raw: Any) -> dict:
    if not isinstance(raw, dict):
        return {}
    timing = raw.get("Timing") if isinstance(raw.get("Timing"), dict) else {}

    def ms(key: str) -> float:
        value = timing.get(key)
        if isinstance(value, dict):  # PG 17: {"Generation": {"Deform": .., "Total": ..}}
            value = value.get("Total")
        return number(value)

    options = raw.get("Options") if isinstance(raw.get("Options"), dict) else {}
    out = {
        "functions": number(raw.get("Functions")),
        "generation_ms": ms("Generation"),
        "inlining_ms": ms("Inlining"),
        "optimization_ms": ms("Optimization"),
        "emission_ms": ms("Emission"),
        "total_ms": ms("Total"),
    }
    out.update({key.lower(): value for key, value in options.items()})
    return out


def _triggers(raw: Any) -> list[dict]:
    rows = []
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict):
                continue
            rows.append(
                {
                    "trigger": str(item.get("Trigger Name", "")),
                    "constraint": str(item.get("Constraint Name", "") or ""),
                    "relation": str(item.get("Relation", "") or ""),
                    "time_ms": number(item.get("Time")),
                    "calls": number(item.get("Calls")),
                }
            )
    return rows


def build_plan(document: Any, *, source: str = "", fmt: str = "json", path: str | None = None) -> Plan:
    """A :class:`Plan` from an EXPLAIN (FORMAT JSON) document.

    Parameters
    ----------
    document:
        The parsed JSON: the array form ``[{"Plan": ...}]``, a bare ``{"Plan": ...}`` object, an
        auto_explain object (``{"Query Text": ..., "Plan": ...}``) or a bare plan node.
    source:
        A name for where the plan came from (kept in ``Plan.source``).
    fmt:
        ``"json"`` or ``"text"`` (what the plan was parsed from).
    path:
        The file name, for error messages.

    Raises
    ------
    BadInputError
        When the document is not an EXPLAIN plan.
    """
    if isinstance(document, list):
        if len(document) != 1:
            raise BadInputError(
                f"expected one EXPLAIN result, found a list of {len(document)} items", path=path
            )
        document = document[0]
    if not isinstance(document, dict):
        raise BadInputError(f"expected an EXPLAIN (FORMAT JSON) object, found a {type(document).__name__}", path=path)
    if "Plan" not in document:
        if "Node Type" in document:
            document = {"Plan": document}
        else:
            raise BadInputError("no \"Plan\" key: this is not EXPLAIN (FORMAT JSON) output", path=path)
    root = document["Plan"]
    if not isinstance(root, dict) or not root:
        raise BadInputError("\"Plan\" is not a plan node object", path=path)
    rows, children = _node_rows(root, path)
    execution = number(document.get("Execution Time", document.get("Total Runtime")))
    settings = document.get("Settings") if isinstance(document.get("Settings"), dict) else {}
    planning = document.get("Planning") if isinstance(document.get("Planning"), dict) else {}
    extra = {k: v for k, v in document.items() if k not in _TOP_KEYS}
    plan = Plan(
        rows=rows,
        planning_ms=number(document.get("Planning Time")),
        execution_ms=execution,
        trigger_rows=_triggers(document.get("Triggers")),
        jit=_jit(document.get("JIT")),
        settings={str(k): str(v) for k, v in settings.items()},
        source=source,
        format=fmt,
        query=str(document.get("Query Text") or ""),
        planning=planning,
        extra=extra,
        document=document,
    )
    plan._row_children = (rows, children)  # for the rules' index of the rows (perfkit.plans.rules._index)
    return plan
