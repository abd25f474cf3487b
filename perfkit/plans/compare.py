"""Compare two plans of the same statement (before and after an index, a setting, an upgrade).

``compare(before, after)`` pairs the nodes and totals and says what changed in plain words.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from perfkit.plans.model import Plan

COMPARE_COLUMNS = [
    "status",
    "label_before",
    "label_after",
    "node_type",
    "relation",
    "self_ms_before",
    "self_ms_after",
    "self_ms_change",
    "total_ms_before",
    "total_ms_after",
    "rows_before",
    "rows_after",
    "loops_before",
    "loops_after",
    "cost_before",
    "cost_after",
    "node_id_before",
    "node_id_after",
]

_BUFFER_TOTALS = (("shared_hit", "shared buffers hit"), ("shared_read", "shared buffers read"),
                  ("temp_read", "temp buffers read"), ("temp_written", "temp buffers written"))


@dataclass
class PlanComparison:
    """What changed between two plans.

    Attributes
    ----------
    nodes:
        One row per node pair: ``status`` is ``same`` (same node type and relation/index,
        matched in order), ``replaced`` (a different node on the same relation, e.g. a Seq Scan
        that became an Index Scan), ``removed`` or ``added``; self/total ms, rows, loops, cost
        before and after.
    totals:
        ``metric``, ``before``, ``after``, ``change`` (after - before) and ``ratio``
        (before / after) for execution, planning, root time, estimated cost and buffers.
    summary:
        The change in plain words (its last sentence says whether the shape changed).
    fingerprint_before, fingerprint_after:
        The shape fingerprints (:func:`perfkit.plans.history.fingerprint`: node types, join
        order, relations, indexes; not costs, rows or times) of the two plans.
    """

    nodes: pd.DataFrame
    totals: pd.DataFrame
    summary: str
    fingerprint_before: str = ""
    fingerprint_after: str = ""

    @property
    def shape_changed(self) -> bool:
        """Whether the two plans differ in shape (their fingerprints differ)."""
        return self.fingerprint_before != self.fingerprint_after

    def to_dict(self) -> dict:
        return {"nodes": self.nodes, "totals": self.totals, "summary": self.summary,
                "fingerprint_before": self.fingerprint_before, "fingerprint_after": self.fingerprint_after,
                "shape_changed": self.shape_changed}


def _key(row) -> tuple[str, str, str]:
    return (str(row.node_type), str(row.relation or ""), str(row.index_name or ""))


def _pair_nodes(before: pd.DataFrame, after: pd.DataFrame) -> list[tuple[int | None, int | None, str]]:
    """(before node_id, after node_id, status), matched by type + relation/index in order."""
    waiting: dict[tuple, list[int]] = defaultdict(list)
    for row in after.itertuples(index=False):
        waiting[_key(row)].append(int(row.node_id))
    pairs: list[tuple[int | None, int | None, str]] = []
    unmatched_before: list[int] = []
    for row in before.itertuples(index=False):
        queue = waiting.get(_key(row))
        if queue:
            pairs.append((int(row.node_id), queue.pop(0), "same"))
        else:
            unmatched_before.append(int(row.node_id))
    unmatched_after = sorted(i for queue in waiting.values() for i in queue)
    # a different node on the same relation: the change an index makes
    by_relation: dict[str, list[int]] = defaultdict(list)
    for node_id in unmatched_after:
        relation = after["relation"].iat[node_id]
        if relation:
            by_relation[relation].append(node_id)
    leftovers = []
    for node_id in unmatched_before:
        relation = before["relation"].iat[node_id]
        queue = by_relation.get(relation) if relation else None
        if queue:
            match = queue.pop(0)
            unmatched_after.remove(match)
            pairs.append((node_id, match, "replaced"))
        else:
            leftovers.append(node_id)
    pairs.extend((node_id, None, "removed") for node_id in leftovers)
    pairs.extend((None, node_id, "added") for node_id in unmatched_after)

    def order(pair):
        b, a, _ = pair
        return (b if b is not None else math.inf, a if a is not None else -1)

    return sorted(pairs, key=order)


def _value(frame: pd.DataFrame, node_id: int | None, column: str):
    if node_id is None:
        return math.nan if column != "label" else ""
    return frame[column].iat[node_id]


def _ratio(before: float, after: float) -> float:
    if math.isnan(before) or math.isnan(after) or after == 0:
        return math.nan
    return before / after


def _faster(before: float, after: float, what: str) -> str:
    if math.isnan(before) or math.isnan(after):
        return ""
    if after < before:
        ratio = _ratio(before, after)
        how = f"{ratio:,.1f}x faster" if not math.isnan(ratio) else "faster"
        return f"{what} went from {before:,.1f} ms to {after:,.1f} ms ({how})."
    if after > before:
        ratio = _ratio(after, before)
        how = f"{ratio:,.1f}x slower" if not math.isnan(ratio) else "slower"
        return f"{what} went from {before:,.1f} ms to {after:,.1f} ms ({how})."
    return f"{what} is unchanged at {before:,.1f} ms."


def compare(before: Plan, after: Plan) -> PlanComparison:
    """Node-by-node and total differences between two plans of one statement.

    Parameters
    ----------
    before, after:
        Parsed plans (:func:`perfkit.plans.parse`, :func:`perfkit.plans.explain`).

    Returns
    -------
    PlanComparison
        ``.nodes`` (pairs), ``.totals`` (execution, planning, cost, buffers) and ``.summary``.

    Examples
    --------
    >>> result = compare(parse(old_text), parse(new_text))     # doctest: +SKIP
    >>> print(result.summary)                                  # doctest: +SKIP
    Execution time went from 812.3 ms to 1.2 ms (677.0x faster). Seq Scan on orders became ...
    """
    b, a = before.nodes, after.nodes
    rows = []
    for before_id, after_id, status in _pair_nodes(b, a):
        self_before, self_after = _value(b, before_id, "self_ms"), _value(a, after_id, "self_ms")
        row_source = b if before_id is not None else a
        source_id = before_id if before_id is not None else after_id
        rows.append({
            "status": status,
            "label_before": _value(b, before_id, "label") if before_id is not None else "",
            "label_after": _value(a, after_id, "label") if after_id is not None else "",
            "node_type": row_source["node_type"].iat[source_id],
            "relation": row_source["relation"].iat[source_id],
            "self_ms_before": self_before,
            "self_ms_after": self_after,
            "self_ms_change": (0.0 if math.isnan(self_after) else self_after) - (0.0 if math.isnan(self_before) else self_before)
            if not (math.isnan(self_before) and math.isnan(self_after)) else math.nan,
            "total_ms_before": _value(b, before_id, "total_ms"),
            "total_ms_after": _value(a, after_id, "total_ms"),
            "rows_before": _value(b, before_id, "actual_rows"),
            "rows_after": _value(a, after_id, "actual_rows"),
            "loops_before": _value(b, before_id, "loops"),
            "loops_after": _value(a, after_id, "loops"),
            "cost_before": _value(b, before_id, "total_cost"),
            "cost_after": _value(a, after_id, "total_cost"),
            "node_id_before": before_id,
            "node_id_after": after_id,
        })
    nodes = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    nodes["node_id_before"] = pd.array(nodes["node_id_before"], dtype="Int64")
    nodes["node_id_after"] = pd.array(nodes["node_id_after"], dtype="Int64")

    metrics = [
        ("execution_ms", before.execution_ms, after.execution_ms),
        ("planning_ms", before.planning_ms, after.planning_ms),
        ("root_ms", before.root_ms, after.root_ms),
        ("trigger_ms", before.trigger_ms, after.trigger_ms),
        ("total_cost", float(b["total_cost"].iat[0]), float(a["total_cost"].iat[0])),
        ("nodes", float(len(b)), float(len(a))),
    ]
    for column, _ in _BUFFER_TOTALS:
        metrics.append((column, float(b[column].iat[0]), float(a[column].iat[0])))
    totals = pd.DataFrame(
        [
            {"metric": name, "before": x, "after": y, "change": y - x, "ratio": _ratio(x, y)}
            for name, x, y in metrics
        ]
    )
    from perfkit.plans.history import fingerprint

    old_shape, new_shape = fingerprint(before), fingerprint(after)
    summary = _summary(before, after, nodes, totals)
    if old_shape == new_shape:
        summary += f" The plan's shape is unchanged (fingerprint {old_shape})."
    else:
        summary += f" The plan's shape changed (fingerprint {old_shape} became {new_shape})."
    return PlanComparison(nodes=nodes, totals=totals, summary=summary, fingerprint_before=old_shape,
                          fingerprint_after=new_shape)


def _summary(before: Plan, after: Plan, nodes: pd.DataFrame, totals: pd.DataFrame) -> str:
    metric = totals.set_index("metric")
    sentences = []
    execution = _faster(metric.at["execution_ms", "before"], metric.at["execution_ms", "after"], "Execution time")
    if execution:
        sentences.append(execution)
    else:
        cost_before, cost_after = metric.at["total_cost", "before"], metric.at["total_cost", "after"]
        if not math.isnan(cost_before) and not math.isnan(cost_after):
            sentences.append(f"Estimated cost went from {cost_before:,.0f} to {cost_after:,.0f}.")
    planning = _faster(metric.at["planning_ms", "before"], metric.at["planning_ms", "after"], "Planning time")
    if planning:
        sentences.append(planning)
    hit_b, read_b = metric.at["shared_hit", "before"], metric.at["shared_read", "before"]
    hit_a, read_a = metric.at["shared_hit", "after"], metric.at["shared_read", "after"]
    if not any(math.isnan(v) for v in (hit_b, read_b, hit_a, read_a)):
        sentences.append(f"Shared buffers touched: {hit_b + read_b:,.0f} before, {hit_a + read_a:,.0f} after.")
    for row in nodes.loc[nodes["status"] == "replaced"].itertuples(index=False):
        times = ""
        if not math.isnan(row.self_ms_before) and not math.isnan(row.self_ms_after):
            times = f" ({row.self_ms_before:,.1f} ms to {row.self_ms_after:,.1f} ms self time)"
        sentences.append(f"{row.label_before} became {row.label_after}{times}.")
    removed = nodes.loc[nodes["status"] == "removed", "label_before"].tolist()
    added = nodes.loc[nodes["status"] == "added", "label_after"].tolist()
    if removed:
        sentences.append("Gone: " + ", ".join(removed) + ".")
    if added:
        sentences.append("New: " + ", ".join(added) + ".")
    same = nodes.loc[(nodes["status"] == "same") & nodes["self_ms_change"].notna()]
    if not same.empty:
        biggest = same.loc[same["self_ms_change"].abs().idxmax()]
        if abs(biggest["self_ms_change"]) >= 1.0:
            direction = "less" if biggest["self_ms_change"] < 0 else "more"
            sentences.append(
                f"The biggest change in a matched node: {biggest['label_before']} takes "
                f"{abs(biggest['self_ms_change']):,.1f} ms {direction}."
            )
    if not sentences:
        sentences.append("No timing to compare.")
    return " ".join(sentences)
