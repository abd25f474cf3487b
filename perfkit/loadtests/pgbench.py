"""pgbench: per-transaction logs (``-l``), aggregated logs (``--aggregate-interval``), and the
text report with ``-P`` progress lines and ``-r`` per-script statistics.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import ALL, minus_ms, samples_frame, summarize, summary_frame
from perfkit.loadtests.run import LoadTestRun, aggregate_run, guard, read_text

FORMATS = (
    Format("pgbench-log", tool="pgbench", gives="samples", description="pgbench -l per-transaction log",
           read="read_log", options=("skip_bad_lines", "script_names"), sniff=((190, "sniff_log"),),
           fixtures=("pgbench_tx.log", "pgbench_skipped.log")),
    Format("pgbench-aggregate", tool="pgbench", gives="aggregates",
           description="pgbench -l --aggregate-interval log",
           read="read_aggregate", options=("skip_bad_lines",), sniff=((200, "sniff_aggregate"),),
           fixtures=("pgbench_aggregate.log",)),
    Format("pgbench-report", tool="pgbench", gives="aggregates",
           description="pgbench text report (-P progress, -r scripts)",
           read="read_report", sniff=((210, "sniff_report"),),
           fixtures=("pgbench_report.txt", "pgbench_skipped_report.txt")),
)

TOOL = "pgbench"
FAILED_WORDS = {"failed", "serialization", "deadlock"}  # "failed", or its kind with --failures-detailed
NOTE_END_STAMP = "pgbench stamps a transaction when it completes: perfkit sets ts to completion minus latency"
NOTE_CLOSED = (
    "pgbench without --rate runs clients back to back (closed loop): latencies understate "
    "waits under overload (coordinated omission)"
)
NOTE_RATE = "pgbench ran with --rate: latencies include the schedule lag (no coordinated omission)"
AGGREGATE_COLUMNS = ["interval_start", "num_transactions", "sum_latency", "sum_latency_2",
                     "min_latency", "max_latency", "sum_lag", "sum_lag_2", "min_lag", "max_lag",
                     "skipped", "retried", "retries", "serialization_failures", "deadlock_failures"]


def _rows(text: str, path: Path, skip_bad_lines: bool, widths: set[int]):
    rows, skipped = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in widths:
            if skip_bad_lines:
                skipped += 1
                continue
            raise BadInputError(
                f"expected {' or '.join(map(str, sorted(widths)))} fields, found {len(fields)} "
                "(truncated line?)", path=path, line=number)
        rows.append((number, fields))
    return rows, skipped


_LOG_LINE = re.compile(rb"^\d+ \d+ (?:\d+|skipped|failed|serialization|deadlock) \d+ \d{9,} \d+")
_AGGREGATE_LINE = re.compile(rb"^\d{9,}(?: \d+(?:\.\d+)?){5}")
_REPORT_LINE = re.compile(rb"^(?:progress: [\d.]+ s, |pgbench \(|transaction type: )", re.M)


def sniff_log(head: Head) -> bool:
    """``client transaction time script epoch us`` (before the aggregate lines, which a
    per-transaction line can also match)."""
    return _LOG_LINE.match(head.first) is not None


def read_log(path, *, skip_bad_lines: bool = False, script_names: dict | None = None) -> LoadTestRun:
    """Read a pgbench per-transaction log (``-l``; several threads' files may be concatenated).

    Each line is ``client_id transaction_no time script_no time_epoch time_us
    [schedule_lag] [retries]``. ``time`` is the latency in microseconds, or ``skipped``
    (--latency-limit with --rate), ``failed`` (or with --failures-detailed the kind:
    ``serialization``, ``deadlock``). ``time_epoch``/``time_us`` is the *completion* time.

    Parameters
    ----------
    script_names:
        ``{script_no: name}`` for the endpoint column (default ``"script N"``).
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "pgbench log"):
        rows, skipped = _rows(text, path, skip_bad_lines, {6, 7, 8})
        if not rows:
            raise BadInputError("pgbench log without transactions", path=path)
        numbers = [n for n, _ in rows]
        fields = [f for _, f in rows]
        frame = pd.DataFrame([f[:6] for f in fields], columns=["client", "tx", "time", "script", "epoch", "us"])
        for column in ("client", "tx", "script", "epoch", "us"):
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.isna().any():
                where = int(np.flatnonzero(values.isna().to_numpy())[0])
                if not skip_bad_lines:
                    raise BadInputError(f"pgbench log field {column} is not a number", path=path, line=numbers[where])
            frame[column] = values
        keep = frame[["client", "tx", "script", "epoch", "us"]].notna().all(axis=1)
        skipped += int((~keep).sum())
        frame = frame[keep]
        latency_us = pd.to_numeric(frame["time"], errors="coerce")
        word = frame["time"].where(latency_us.isna(), None)
        unknown = word.notna() & ~word.isin(FAILED_WORDS | {"skipped"})
        if unknown.any():
            if not skip_bad_lines:
                where = int(np.flatnonzero(unknown.to_numpy())[0])
                raise BadInputError(f"unknown pgbench latency {word[unknown].iloc[0]!r}", path=path,
                                    line=numbers[frame.index[where]])
            skipped += int(unknown.sum())
            frame, latency_us, word = frame[~unknown], latency_us[~unknown], word[~unknown]
        completion = pd.to_datetime(frame["epoch"] * 1_000_000 + frame["us"], unit="us", utc=True)
        latency_ms = latency_us / 1000.0
        names = script_names or {}
        endpoint = frame["script"].astype(int).map(lambda n: names.get(n, f"script {n}"))
        samples = samples_frame(
            ts=minus_ms(completion, latency_ms.fillna(0.0)),
            endpoint=endpoint, latency_ms=latency_ms, ok=word.isna(), error=word,
            tool=TOOL, source=str(path),
        )
        samples = samples.sort_values("ts", kind="stable").reset_index(drop=True)
        rate_limited = any(len(f) >= 7 for f in fields)
        notes = [NOTE_END_STAMP, NOTE_RATE if rate_limited else NOTE_CLOSED]
        if skipped:
            notes.append(f"{skipped} bad line(s) skipped")
        figures = {
            "processed": int(word.isna().sum()),
            "failed": int(word.isin(FAILED_WORDS).sum()),
            "skipped": int((word == "skipped").sum()),
        }
        return LoadTestRun(
            samples=samples, summary=summarize(samples), tool=TOOL, format="pgbench-log",
            source=str(path), percentiles_from="samples", notes=notes, tool_figures=figures,
            closed_loop=not rate_limited, skipped_lines=skipped,
        )


def sniff_aggregate(head: Head) -> bool:
    """An interval start in epoch seconds and at least five figures."""
    return _AGGREGATE_LINE.match(head.first) is not None


def read_aggregate(path, *, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read a pgbench aggregated log (``-l --aggregate-interval N``).

    PostgreSQL 15 writes 15 columns (``AGGREGATE_COLUMNS``); earlier versions 6, 10 (with
    --rate) or 11 (with --rate and --latency-limit). Latencies are microseconds. Aggregates
    only: mean and max, no percentiles; ``history`` has one row per interval.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "pgbench aggregated log"):
        rows, skipped = _rows(text, path, skip_bad_lines, {6, 10, 11, 15})
        if not rows:
            raise BadInputError("pgbench aggregated log without intervals", path=path)
        width = max(len(f) for _, f in rows)
        data = []
        for number, fields in rows:
            try:
                data.append([float(v) for v in fields] + [np.nan] * (15 - len(fields)))
            except ValueError:
                if skip_bad_lines:
                    skipped += 1
                    continue
                raise BadInputError("pgbench aggregated log field is not a number", path=path, line=number) from None
        frame = pd.DataFrame(data, columns=AGGREGATE_COLUMNS)
        # one file per thread: the same interval appears once per thread
        per = frame.groupby("interval_start", sort=True).agg(
            num=("num_transactions", "sum"), sum_latency=("sum_latency", "sum"),
            max_latency=("max_latency", "max"), skipped=("skipped", "sum"),
            serialization=("serialization_failures", "sum"), deadlock=("deadlock_failures", "sum"),
        )
        failed = per["serialization"].fillna(0) + per["deadlock"].fillna(0)
        skipped_tx = per["skipped"].fillna(0)
        num = per["num"]
        interval = float(np.median(np.diff(per.index))) if len(per) > 1 else 1.0
        history = pd.DataFrame({
            "ts": pd.to_datetime(per.index, unit="s", utc=True),
            "requests": (num + failed + skipped_tx).to_numpy(),
            "failures": (failed + skipped_tx).to_numpy(),
            "rps": (num / interval).to_numpy(),
            "mean_ms": (per["sum_latency"] / num.where(num > 0) / 1000).to_numpy(),
            "max_ms": (per["max_latency"] / 1000).to_numpy(),
        })
        total = float(num.sum())
        duration = float(per.index.max() - per.index.min() + interval)
        row = {"endpoint": ALL, "requests": total + float(failed.sum()) + float(skipped_tx.sum()),
               "failures": float(failed.sum()) + float(skipped_tx.sum()),
               "rps": total / duration if duration > 0 else np.nan,
               "mean_ms": float(per["sum_latency"].sum()) / total / 1000 if total else np.nan,
               "max_ms": float(per["max_latency"].max()) / 1000}
        notes = ["pgbench aggregated logs hold sums, min and max per interval: no percentiles",
                 f"{width}-column aggregated log ("
                 + ("PostgreSQL 15 or later" if width == 15 else "before PostgreSQL 15") + ")"]
        if width == 6:
            notes.append(NOTE_CLOSED)
        return aggregate_run(
            summary_frame([row]), tool=TOOL, format="pgbench-aggregate", source=path,
            notes=notes, history=history, duration_s=duration, skipped_lines=skipped,
            tool_figures={"processed": total, "failed": float(failed.sum()), "skipped": float(skipped_tx.sum()),
                          "columns": width},
            closed_loop=(width == 6),
        )


_PROGRESS = re.compile(
    r"^progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+) ms stddev ([\d.]+|NaN)"
    r"(?:, (\d+) failed)?(?:, lag ([\d.]+) ms)?(?:, (\d+) skipped)?", re.M)


def sniff_report(head: Head) -> bool:
    """A progress line, pgbench's version line or the report's ``transaction type:``."""
    return _REPORT_LINE.search(head.raw) is not None


def read_report(path) -> LoadTestRun:
    """Read pgbench's text report: ``-P`` progress lines and the final report (``-r`` scripts).

    Aggregates only: mean latency per script and in total, no percentiles; the progress lines
    become ``history`` (seconds since the start in ``elapsed_s``: pgbench prints no clock time).
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "pgbench report"):
        processed = re.search(r"^number of transactions actually processed: (\d+)", text, re.M)
        progress = _PROGRESS.findall(text)
        if not processed and not progress:
            raise BadInputError("not a pgbench report (no final report, no progress lines)", path=path)
        history = pd.DataFrame(
            [{"elapsed_s": float(p[0]), "rps": float(p[1]), "mean_ms": float(p[2]),
              "stddev_ms": float(p[3]), "failures": float(p[4]) if p[4] else 0.0,
              "lag_ms": float(p[5]) if p[5] else np.nan} for p in progress])
        rows, figures = [], {}
        if processed:
            total = float(processed.group(1))
            failed = _find(r"^number of failed transactions: (\d+)", text)
            skipped = _find(r"^number of transactions skipped: (\d+)", text)
            duration = _find(r"^duration: (\d+) s", text)
            tps = _find(r"^tps = ([\d.]+)", text)
            mean = _find(r"^latency average = ([\d.]+) ms", text)
            figures = {"processed": total, "failed": failed, "skipped": skipped, "tps": tps,
                       "latency_average_ms": mean}
            rows.append({"endpoint": ALL, "requests": total + _zero(failed) + _zero(skipped),
                         "failures": _zero(failed) + _zero(skipped), "rps": tps, "mean_ms": mean})
            for block in re.split(r"^SQL script \d+: ", text, flags=re.M)[1:]:
                name = block.splitlines()[0].strip()
                count = _find(r"^ - (\d+) transactions", block)
                if np.isnan(count):
                    continue
                rows.append({"endpoint": name,
                             "requests": count + _zero(_find(r"^ - number of failed transactions: (\d+)", block))
                             + _zero(_find(r"^ - number of transactions skipped: (\d+)", block)),
                             "failures": _zero(_find(r"^ - number of failed transactions: (\d+)", block))
                             + _zero(_find(r"^ - number of transactions skipped: (\d+)", block)),
                             "rps": _find(r"tps = ([\d.]+)\)", block),
                             "mean_ms": _find(r"^ - latency average = ([\d.]+) ms", block)})
        else:
            figures = {"progress_lines": len(progress)}
            rows.append({"endpoint": ALL, "requests": np.nan,
                         "rps": float(history["rps"].mean()), "mean_ms": float(history["mean_ms"].mean())})
            duration = float(history["elapsed_s"].max())
        rate = "rate limit schedule lag" in text or history.get("lag_ms", pd.Series(dtype=float)).notna().any()
        return aggregate_run(
            summary_frame(rows), tool=TOOL, format="pgbench-report", source=path, history=history,
            notes=["pgbench's report holds averages only: no percentiles",
                   NOTE_RATE if rate else NOTE_CLOSED],
            tool_figures=figures, duration_s=duration if np.isfinite(duration) else None,
            closed_loop=not rate,
        )


def _find(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else np.nan


def _zero(value: float) -> float:
    return 0.0 if np.isnan(value) else value
