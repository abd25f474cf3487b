"""Plan changes week over week: each captured plan's shape fingerprint, kept beside the snapshots.

``fingerprint(plan)`` is a short hash of the plan's shape (node types, join types, relations,
indexes, the tree's order: not costs, rows or times). :class:`PlanHistory` keeps one row per
captured plan in its own small Parquet files, ``<store>/plans/server=<id>/<time>-<tag>.parquet``
(beside the snapshot files, which it does not touch): ``queryid``, ``captured_at``,
``fingerprint``, ``mean_ms`` (the statement's mean time then) and the plan document (JSON), so
a later run can compare the two plans. ``plan_changes`` gives the ``plan_changed`` findings.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from perfkit.plans.model import Plan

HISTORY_COLUMNS = ["queryid", "captured_at", "fingerprint", "shape", "mean_ms", "document"]
SLOWER = 1.1  # a mean time 10 % higher than the baseline's is slower
CAPTURE_SLACK = pd.Timedelta(hours=1)  # a report explains its statements just after its snapshot


def shape(plan: Plan) -> list[str]:
    """One line per node: depth, node type (with join type / strategy), relation, index."""
    out = []
    for row in plan.nodes.itertuples(index=False):
        detail = row.detail if isinstance(row.detail, dict) else {}
        kind = str(row.node_type)
        for key in ("Join Type", "Strategy", "Operation", "Scan Direction"):
            if detail.get(key):
                kind += f" {detail[key]}"
        out.append(f"{int(row.depth)}|{kind}|{row.relation or ''}|{row.index_name or ''}|{row.parent_relationship}")
    return out


def fingerprint(plan: Plan) -> str:
    """A 16-hex-digit hash of :func:`shape` (equal for the same plan whatever its costs and times)."""
    return hashlib.sha256("\n".join(shape(plan)).encode()).hexdigest()[:16]


@dataclass
class PlanHistory:
    """The plan fingerprints of one snapshot store (``root`` is the snapshot store's folder)."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    def folder(self, server: str) -> Path:
        from perfkit.db import sanitize_server_id

        return self.root / "plans" / f"server={sanitize_server_id(server)}"

    def save(self, server: str, rows: list[dict], captured_at: pd.Timestamp | None = None) -> Path | None:
        """Write the rows (``queryid``, ``plan``, ``mean_ms``) of one capture atomically."""
        if not rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        from perfkit.fileio import atomic_path

        when = pd.Timestamp(captured_at) if captured_at is not None else pd.Timestamp.now(tz="UTC")
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        frame = pd.DataFrame([{
            "queryid": int(r["queryid"]),
            "captured_at": when,
            "fingerprint": fingerprint(r["plan"]),
            "shape": "\n".join(shape(r["plan"])),
            "mean_ms": float(r.get("mean_ms", math.nan)),
            "document": json.dumps(r["plan"].document, default=str),
        } for r in rows], columns=HISTORY_COLUMNS)
        folder = self.folder(server)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{when:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}.parquet"
        with atomic_path(final) as tmp:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="zstd")
        return final

    def load(self, server: str) -> pd.DataFrame:
        """Every stored row of ``server``, oldest first (an unreadable file is left out)."""
        import pyarrow.parquet as pq

        frames = []
        folder = self.folder(server)
        for path in sorted(folder.glob("*.parquet")) if folder.exists() else []:
            try:
                frames.append(pq.read_table(path).to_pandas())
            except Exception:  # noqa: BLE001 - a damaged file: the others still tell the history
                continue
        if not frames:
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        return pd.concat(frames, ignore_index=True).sort_values("captured_at", kind="stable").reset_index(drop=True)

    def baseline(self, server: str, queryid: int, before: pd.Timestamp | None = None) -> dict | None:
        """The latest stored row of ``queryid`` captured before ``before`` (default: any)."""
        frame = self.load(server)
        frame = frame[frame["queryid"] == int(queryid)]
        if before is not None:
            when = pd.Timestamp(before)
            when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
            frame = frame[frame["captured_at"] < when]
        return None if frame.empty else frame.iloc[-1].to_dict()


def plan_changes(history: PlanHistory, server: str, captured: list[dict], *, before=None) -> tuple[list[dict], dict]:
    """``plan_changed`` findings for the captured plans whose shape differs from the baseline's.

    Parameters
    ----------
    captured:
        ``[{"queryid": ..., "plan": Plan, "mean_ms": ..., "heading": ...}, ...]`` (this run's).
    before:
        Compare with plans captured before this time (default: the latest stored for each).

    Returns
    -------
    (findings, comparisons)
        Findings as dicts (perfkit.findings.finding), warning when the mean time rose by 10 %
        or more, else info; ``comparisons`` maps queryid -> :class:`PlanComparison` (old -> new).
    """
    from perfkit.findings import finding
    from perfkit.plans.compare import compare
    from perfkit.plans.model import build_plan

    out, comparisons = [], {}
    for item in captured:
        old = history.baseline(server, item["queryid"], before=before)
        if old is None or old["fingerprint"] == fingerprint(item["plan"]):
            continue
        before_plan = build_plan(json.loads(old["document"]), source=f"plan of {old['captured_at']:%Y-%m-%d %H:%M}")
        comparison = compare(before_plan, item["plan"])
        comparisons[int(item["queryid"])] = comparison
        then, now = float(old.get("mean_ms", math.nan)), float(item.get("mean_ms", math.nan))
        if math.isnan(then) or math.isnan(now):
            timing, slower = "its mean time is not known for both", False
        else:
            slower = then > 0 and now >= then * SLOWER
            timing = f"mean time {then:,.2f} ms then, {now:,.2f} ms now" + (" (slower)" if slower else "")
        gone = sorted(set(old["shape"].split("\n")) - set(shape(item["plan"])))
        came = sorted(set(shape(item["plan"])) - set(old["shape"].split("\n")))

        def words(lines):
            return ", ".join(" ".join(p for p in line.split("|")[1:4] if p) for line in lines[:3]) or "-"

        out.append(finding(
            "plan_changed", "warning" if slower else "info", item.get("heading") or f"queryid {item['queryid']}",
            f"the plan changed since {old['captured_at']:%Y-%m-%d}: {words(gone)} became {words(came)}; {timing}",
            "Compare the two plans (attached); if the new one is slower, find what changed (an index, statistics, "
            "a setting) and restore it, or ANALYZE the tables.",
            queryid=int(item["queryid"]), comparison=comparison.summary,
        ))
    return out, comparisons


def changes_between(root, server: str, queryids, start, end, *, slack=None) -> tuple[list[dict], dict]:
    """``plan_changed`` findings between two stored captures (what ``perfkit diff`` shows).

    For each queryid: the latest plan stored up to ``start`` (the baseline snapshot's time, plus
    ``slack``: the report captures its plans just after its snapshot) against the latest stored
    after that and up to ``end`` + ``slack``. Returns ``(findings, comparisons)`` as
    :func:`plan_changes`.
    """
    from perfkit.plans.model import build_plan

    history = PlanHistory(root)
    frame = history.load(server)
    if frame.empty:
        return [], {}

    def utc(value):
        value = pd.Timestamp(value)
        return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")

    slack = CAPTURE_SLACK if slack is None else pd.Timedelta(slack)
    cut, stop = utc(start) + slack, utc(end) + slack
    items = []
    for queryid in {int(q) for q in queryids if not pd.isna(q)}:
        rows = frame[(frame["queryid"] == queryid) & (frame["captured_at"] > cut) & (frame["captured_at"] <= stop)]
        if rows.empty:
            continue
        row = rows.iloc[-1]
        plan = build_plan(json.loads(row["document"]), source=f"plan of {row['captured_at']:%Y-%m-%d %H:%M}")
        items.append({"queryid": queryid, "plan": plan, "mean_ms": row["mean_ms"], "heading": f"queryid {queryid}"})
    return plan_changes(history, server, items, before=cut)


def record_plans(root, server: str, captured, *, captured_at=None) -> tuple[list[dict], dict]:
    """Compare the captured ``[(heading, Plan), ...]`` with the store's baseline, then store them.

    Only plans with ``plan.extra["queryid"]`` (what ``costliest`` and ``perfkit explain --queryid``
    capture) are kept; ``plan.extra["mean_ms"]`` is the statement's mean time at capture.
    Returns :func:`plan_changes`' ``(findings, comparisons)``.
    """
    history = PlanHistory(root)
    items = [{"queryid": p.extra["queryid"], "plan": p, "mean_ms": p.extra.get("mean_ms", math.nan), "heading": h}
             for h, p in captured if p.extra.get("queryid") is not None]
    result = plan_changes(history, server, items, before=captured_at)
    history.save(server, items, captured_at=captured_at)
    return result


__all__ = ["PlanHistory", "changes_between", "fingerprint", "plan_changes", "record_plans", "shape"]
