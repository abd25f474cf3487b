"""Plan changes week over week: each captured plan's shape fingerprint, kept in the snapshot store.

``fingerprint(plan)`` is a short hash of the plan's shape (node types, join types, relations,
indexes, the tree's order: not costs, rows or times). :class:`PlanHistory` keeps one row per
captured plan in the snapshot store's named dataset ``plan_history``
(:meth:`perfkit.store.SnapshotStore.save_dataset`: ``<store>/_datasets/plan_history/server=<id>/
date=<day>/``, on a local folder or an object store such as ``s3://``; the snapshot files are
not touched): ``queryid``, ``captured_at``, ``fingerprint``, ``mean_ms`` (the statement's mean
time then) and the plan document (JSON), so a later run can compare the two plans. Rows an
earlier perfkit wrote under ``<store>/plans/server=<id>/`` (a local store) are still read.
``plan_changes`` gives the ``plan_changed`` findings.
"""

from __future__ import annotations

import hashlib
import json
import math
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


DATASET = "plan_history"


def _schema():
    import pyarrow as pa

    return pa.schema([("queryid", pa.int64()), ("captured_at", pa.timestamp("us", tz="UTC")),
                      ("fingerprint", pa.string()), ("shape", pa.string()), ("mean_ms", pa.float64()),
                      ("document", pa.string())])


def _utc(value) -> pd.Timestamp:
    value = pd.Timestamp(value)
    return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")


@dataclass
class PlanHistory:
    """The plan fingerprints of one snapshot store.

    ``root`` is the store: a :class:`perfkit.store.SnapshotStore`, or what one is opened on (a
    folder, ``s3://bucket/prefix``, ...). Pass the store object itself when it has one: an
    object store's access keys are in its URI's query, which ``store.root`` leaves out.
    """

    root: object

    def __post_init__(self):
        from perfkit.store import SnapshotStore

        self.store = self.root if isinstance(self.root, SnapshotStore) else SnapshotStore(self.root)
        self.root = self.store.root

    def legacy_folder(self, server: str) -> Path | None:
        """Where perfkit before the dataset kept a server's rows (a local store only)."""
        from perfkit.db import sanitize_server_id

        if not self.store.local:
            return None
        return Path(self.store.base) / "plans" / f"server={sanitize_server_id(server)}"

    def save(self, server: str, rows: list[dict], captured_at: pd.Timestamp | None = None):
        """Write the rows (``queryid``, ``plan``, ``mean_ms``) of one capture as one file of the
        store's ``plan_history`` dataset (whole or not at all); returns its path."""
        if not rows:
            return None
        when = _utc(captured_at) if captured_at is not None else pd.Timestamp.now(tz="UTC")
        frame = pd.DataFrame([{
            "queryid": int(r["queryid"]),
            "captured_at": when,
            "fingerprint": fingerprint(r["plan"]),
            "shape": "\n".join(shape(r["plan"])),
            "mean_ms": float(r.get("mean_ms", math.nan)),
            "document": json.dumps(r["plan"].document, default=str),
        } for r in rows], columns=HISTORY_COLUMNS)
        self.__dict__.pop("_loaded", None)
        return self.store.save_dataset(DATASET, frame, server=server, captured_at=when, schema=_schema())

    def load(self, server: str) -> pd.DataFrame:
        """Every stored row of ``server``, oldest first (an unreadable file is left out).

        Read once per server and kept (an object store lists and reads in round trips) until
        this object saves again.
        """
        cache = self.__dict__.setdefault("_loaded", {})
        if server not in cache:
            cache[server] = self._load(server)
        return cache[server]

    def _load(self, server: str) -> pd.DataFrame:
        import pyarrow.parquet as pq

        frames = []
        stored = self.store.read_dataset(DATASET, server, schema=_schema())
        if not stored.empty:
            frames.append(stored[HISTORY_COLUMNS])
        folder = self.legacy_folder(server)
        for path in sorted(folder.glob("*.parquet")) if folder is not None and folder.exists() else []:
            try:
                frames.append(pq.read_table(path).to_pandas()[HISTORY_COLUMNS])
            except Exception:  # noqa: BLE001 - a damaged file: the others still tell the history
                continue
        if not frames:
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        frame = pd.concat(frames, ignore_index=True)
        frame["captured_at"] = pd.to_datetime(frame["captured_at"], utc=True)
        return frame.sort_values("captured_at", kind="stable").reset_index(drop=True)

    def baseline(self, server: str, queryid: int, before: pd.Timestamp | None = None) -> dict | None:
        """The latest stored row of ``queryid`` captured before ``before`` (default: any)."""
        frame = self.load(server)
        frame = frame[frame["queryid"] == int(queryid)]
        if before is not None:
            frame = frame[frame["captured_at"] < _utc(before)]
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
    slack = CAPTURE_SLACK if slack is None else pd.Timedelta(slack)
    cut, stop = _utc(start) + slack, _utc(end) + slack
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


__all__ = ["DATASET", "PlanHistory", "changes_between", "fingerprint", "plan_changes", "record_plans", "shape"]
