"""Gatling: the HTML report's ``js/stats.json`` (or ``js/global_stats.json``) and the text
``simulation.log`` of Gatling 3.0-3.12 (the binary log of later versions is refused, by name).

``read_stats`` gives Gatling's own aggregates per request; ``read_log`` gives one sample per request.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.fileio import probe
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import ALL, samples_frame, summarize, summary_frame
from perfkit.loadtests.run import LoadTestRun, aggregate_run, guard, read_bytes, read_text

FORMATS = (
    Format("gatling-stats", tool="gatling", gives="aggregates",
           description="Gatling report js/stats.json or js/global_stats.json (or the report folder)",
           read="read_stats", options=("percentiles",), sniff=((40, "sniff_stats"),),
           locate="report_file",
           fixtures=("gatling_groups_stats.json", "gatling_3.9_stats.json",
                     "gatling_3.9_global_stats.json")),
    Format("gatling-log", tool="gatling", gives="samples", description="Gatling 3.0-3.12 text simulation.log",
           read="read_log", options=("skip_bad_lines",),
           sniff=((0, "sniff_binary_log"), (80, "sniff_text_log")),
           fixtures=("gatling_groups_simulation.log", "gatling_3.9_simulation.log")),
)

TOOL = "gatling"
# gatling.conf charting.indicators.percentile1..4 defaults; the report does not say which were used
DEFAULT_PERCENTILES = (50, 75, 95, 99)
GROUP_SEPARATOR = " / "  # how Gatling's report joins a request's group path and its name
BINARY_LOG = re.compile(rb"^\x00\x00\x00\x00[\x01-\x7f]\d+\.\d+")  # RUN record: int length, version
RECORDS = re.compile(rb"^(?:RUN|ASSERTION|USER|REQUEST|GROUP|ERROR)\t")

NOTE_RESPONSE_TIME = (
    "Gatling's response time runs from the instant it tries to send the request (DNS resolution, "
    "TCP connect and TLS handshake included when no pooled connection was reused) to the complete "
    "response or the error; times are whole milliseconds"
)
NOTE_LOOP = (
    "the file does not say how users were injected: open-loop profiles (constantUsersPerSec, "
    "rampUsers, atOnceUsers: each virtual user is new) do not suffer from coordinated omission, "
    "closed-loop ones (constantConcurrentUsers, rampConcurrentUsers) do"
)
NOTE_PERCENTILES = (
    "Gatling's percentiles1..4 are the percentiles set in gatling.conf (charting.indicators."
    "percentile1..4), which the report does not record: read as {assumed} (pass percentiles=(...) "
    "when gatling.conf changed them); Gatling computes them with a t-digest over whole "
    "milliseconds and rounds them to the millisecond"
)
NOTE_GROUPS = (
    "Gatling groups are not endpoints: their figures (counts of group executions, cumulated "
    "response times) are in tool_figures['groups'], not in the summary"
)
NOTE_KO = "failures are Gatling's KO requests (a failed check, a timeout, a connection error)"
NOTE_BINARY = (
    "binary simulation.log (Gatling 3.13 and later write the log in a binary format, "
    "gatling/gatling#4596): read the HTML report's js/stats.json instead"
)


def report_file(path) -> Path:
    """``path`` itself, or the ``js/stats.json`` inside a Gatling report folder given as ``path``."""
    path = Path(path)
    if probe(path) == "dir":  # (probe: a folder the user may not enter is one line, not a traceback)
        for candidate in (path / "js" / "stats.json", path / "stats.json",
                          path / "js" / "global_stats.json", path / "global_stats.json"):
            if probe(candidate) == "file":
                return candidate
    return path


# --- stats.json / global_stats.json ------------------------------------------------------------
def _number(value) -> float:
    """A figure of the report: a number (stats.json), or a string ("1,234", "-") as in stats.js."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text in ("", "-"):
            return math.nan
        return float(text)
    if value is None:
        return math.nan
    raise ValueError(f"not a number: {value!r}")


def _total(stats: dict, key: str) -> float:
    figure = stats.get(key)
    if not isinstance(figure, dict):
        return math.nan
    return _number(figure.get("total"))


def _percentile_option(percentiles) -> tuple[list[str | None], tuple[float, ...]]:
    """The ``percentiles=`` option checked: the summary column of each (None when not one of
    50/90/95/99) and the values as floats; BadInputError naming the option otherwise."""
    wrong = f"percentiles= must be four numbers in (0, 100], got {percentiles!r:.80}"
    if isinstance(percentiles, str | bytes):
        raise BadInputError(wrong)
    try:
        items = list(percentiles)
    except TypeError:
        raise BadInputError(wrong) from None
    # numbers only: "50" would be taken by float() but is no number (and bool is no percentile)
    if len(items) != 4 or not all(isinstance(p, numbers.Real) and not isinstance(p, bool) for p in items):
        raise BadInputError(wrong)
    values = tuple(float(p) for p in items)
    if not all(0 < p <= 100 for p in values):
        raise BadInputError(wrong)
    names = {50.0: "p50_ms", 90.0: "p90_ms", 95.0: "p95_ms", 99.0: "p99_ms"}
    return [names.get(p) for p in values], values


def _stats_row(endpoint: str, stats: dict, columns: list[str | None], percentiles,
               others: dict) -> dict:
    requests = _total(stats, "numberOfRequests")
    if not math.isfinite(requests) or requests < 0:
        raise ValueError(f"no numberOfRequests.total for {endpoint!r}")
    figure = stats.get("numberOfRequests") or {}
    row = {"endpoint": endpoint, "requests": requests, "failures": _number(figure.get("ko")),
           "rps": _total(stats, "meanNumberOfRequestsPerSecond"),
           "mean_ms": _total(stats, "meanResponseTime"), "max_ms": _total(stats, "maxResponseTime")}
    extra = {}
    for index, (column, pct) in enumerate(zip(columns, percentiles, strict=True), start=1):
        value = _total(stats, f"percentiles{index}")
        if column:
            row[column] = value
        else:
            extra[f"p{pct:g}_ms"] = value
    if extra:
        others[endpoint] = extra
    if requests == 0:  # Gatling writes 0 for the figures of an empty set
        for key in ("mean_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms"):
            row[key] = math.nan
    return row


def _walk(node: dict, rows: list, groups: dict, columns, percentiles, others, depth: int = 0) -> None:
    if depth > 100:
        raise ValueError("groups nested more than 100 deep")
    contents = node.get("contents") or {}
    if not isinstance(contents, dict):
        raise ValueError("contents is not an object")
    for child in contents.values():
        if not isinstance(child, dict) or not isinstance(child.get("stats"), dict):
            raise ValueError("a contents entry without stats")
        kind = child.get("type")
        name = str(child.get("path") or child.get("name") or child["stats"].get("name") or "(unnamed)")
        if kind == "REQUEST":
            rows.append(_stats_row(name, child["stats"], columns, percentiles, others))
        elif kind == "GROUP":
            stats = child["stats"]
            groups[name] = {"executions": _total(stats, "numberOfRequests"),
                            "failed": _number((stats.get("numberOfRequests") or {}).get("ko")),
                            "mean_cumulated_ms": _total(stats, "meanResponseTime"),
                            "max_cumulated_ms": _total(stats, "maxResponseTime")}
            _walk(child, rows, groups, columns, percentiles, others, depth + 1)
        else:
            raise ValueError(f"unknown contents type {kind!r}")


def sniff_stats(head: Head) -> bool:
    """A JSON document with Gatling's request counts and mean rate."""
    return head.is_json and b'"numberOfRequests"' in head.raw and (
        b'"meanNumberOfRequestsPerSecond"' in head.raw)


def read_stats(path, *, percentiles=DEFAULT_PERCENTILES) -> LoadTestRun:
    """Read a Gatling report's ``js/stats.json`` (or ``js/global_stats.json``, ALL only).

    Parameters
    ----------
    path:
        The JSON file, or the report folder (its ``js/stats.json`` is read).
    percentiles:
        What ``percentiles1..4`` hold: gatling.conf's ``charting.indicators.percentile1..4``
        (default 50, 75, 95, 99). Those among 50/90/95/99 fill the summary's columns; the others
        go to ``tool_figures["percentiles"]``.

    Returns
    -------
    LoadTestRun
        One row per request (endpoint = the request's path in the report: its groups and name
        joined by " / ") plus ALL; failures = KO; percentiles from the tool (whole ms).
    """
    path = report_file(path)
    columns, percentiles = _percentile_option(percentiles)
    text = read_text(path)
    with guard(path, "Gatling stats.json"):
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise BadInputError("not a Gatling stats.json (not a JSON object)", path=path)
        rows, groups, others = [], {}, {}
        if isinstance(doc.get("stats"), dict) and doc.get("type") == "GROUP":
            top, kind = doc["stats"], "stats.json"
            _walk(doc, rows, groups, columns, percentiles, others)
        elif isinstance(doc.get("numberOfRequests"), dict):
            top, kind = doc, "global_stats.json"
        else:
            raise BadInputError("not a Gatling stats.json (no \"stats\" tree or numberOfRequests)",
                                path=path)
        rows.append(_stats_row(ALL, top, columns, percentiles, others))
        summary = summary_frame(rows)
        total, rps = rows[-1]["requests"], rows[-1]["rps"]
        duration = total / rps if rps and math.isfinite(rps) and rps > 0 else None
        assumed = "/".join(f"{p:g}" for p in percentiles)
        notes = [NOTE_PERCENTILES.format(assumed=assumed), NOTE_RESPONSE_TIME, NOTE_KO, NOTE_LOOP]
        if groups:
            notes.append(NOTE_GROUPS)
        if kind == "global_stats.json":
            notes.append("global_stats.json holds ALL only: read js/stats.json for each request")
        buckets = {top[k].get("name"): top[k].get("count")
                   for k in ("group1", "group2", "group3", "group4") if isinstance(top.get(k), dict)}
        figures = {"file": kind, "percentiles": others, "groups": groups,
                   "response_time_ranges": buckets,
                   "min_ms": _total(top, "minResponseTime"),
                   "stddev_ms": _total(top, "standardDeviation"),
                   "indicators": tuple(percentiles)}
        return aggregate_run(summary, tool=TOOL, format="gatling-stats", source=path, notes=notes,
                             tool_figures=figures, closed_loop=None, duration_s=duration)


# --- simulation.log (text, Gatling 3.0-3.12) ---------------------------------------------------
# the latest epoch millisecond a pandas timestamp holds (2262-04-11: int64 nanoseconds)
MAX_EPOCH_MS = int(pd.Timestamp.max.value // 1_000_000)
EPOCH_MS = re.compile(r"\d{13}")  # epoch milliseconds from 2001-09-09 to 2286-11-20


def _int(text: str) -> int:
    """An epoch-millisecond field; ValueError when it is not one a timestamp can hold."""
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not a timestamp: {text[:40]!r}")
    if len(text) > 19 or int(text) > MAX_EPOCH_MS:
        raise ValueError(f"timestamp out of range: {text[:40]}")
    return int(text)


def _four_timestamps(stamps: list[str]) -> bool:
    """Whether the four fields before a REQUEST's status are Gatling 2.0-2.1's request start,
    request end, response start and response end: epoch milliseconds, starting with the
    request's start and ending with the response's end (a numeric group and request name, as
    ``2024`` and ``1``, are not)."""
    if not all(EPOCH_MS.fullmatch(s) for s in stamps):
        return False
    values = [int(s) for s in stamps]
    return values[0] == min(values) and values[-1] == max(values)


def _request_layout(fields: list[str]) -> int | None:
    """The index of the OK/KO field in a REQUEST record, or None.

    Gatling 3.4+ writes ``REQUEST groups name start end status message``; 3.2-3.3 put the user
    id first and 3.0-3.1 the scenario and user id (as 2.x did): the status is the first OK/KO
    field that follows two epoch-millisecond fields.
    """
    for index in range(5, len(fields)):
        if fields[index] in ("OK", "KO") and fields[index - 1].isdigit() and fields[index - 2].isdigit():
            return index
    return None


def sniff_binary_log(head: Head) -> bool:
    """Gatling 3.13+'s binary log, first of all: its reader says to read the report instead."""
    return BINARY_LOG.match(head.raw) is not None


def sniff_text_log(head: Head) -> bool:
    """A RUN/USER/REQUEST/GROUP/ERROR/ASSERTION record, tab-separated."""
    return RECORDS.match(head.first) is not None


def read_log(path, *, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read a Gatling text ``simulation.log`` (3.0-3.12): one sample per REQUEST record.

    Parameters
    ----------
    path:
        The simulation.log (``.gz`` read through).
    skip_bad_lines:
        Skip records cut short or malformed (counted in ``run.skipped_lines``) instead of raising
        BadInputError naming the line.

    Returns
    -------
    LoadTestRun
        Samples with ``ts`` = request start (UTC, from epoch ms), ``latency_ms`` = end - start,
        ``ok`` = OK, ``error`` = the KO message, endpoint = groups and name joined by " / " (as
        the report names them); the summary is computed from them.
    """
    path = Path(path)
    data = read_bytes(path)
    if BINARY_LOG.match(data):
        raise BadInputError(NOTE_BINARY, path=path)
    if b"\x00" in data[:4096]:
        raise BadInputError("not a Gatling text simulation.log (binary content)", path=path)
    text = data.decode("utf-8", errors="replace")
    starts, ends, names, oks, errors = [], [], [], [], []
    skipped, version, users, user_events = 0, None, 0, 0
    group_records = 0
    with guard(path, "Gatling simulation.log"):
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            kind = fields[0]
            try:
                if kind == "REQUEST":
                    status = _request_layout(fields)
                    if status is None or status + 1 >= len(fields):  # Gatling always writes a message
                        raise ValueError("REQUEST record cut short or malformed")
                    start, end = _int(fields[status - 2]), _int(fields[status - 1])
                    if end < start:
                        raise ValueError("REQUEST record ends before it starts")
                    name = fields[status - 3]
                    if _four_timestamps(fields[status - 4:status]):
                        raise ValueError("four timestamps: the Gatling 2.0-2.1 layout is not supported")
                    groups = [g for g in fields[status - 4].split(",") if g]
                    message = fields[status + 1].strip()
                    starts.append(start)
                    ends.append(end)
                    names.append(GROUP_SEPARATOR.join([*groups, name]))
                    oks.append(fields[status] == "OK")
                    errors.append(message if fields[status] == "KO" and message else None)
                elif kind == "RUN":
                    if len(fields) < 5:
                        raise ValueError("RUN record cut short")
                    version = fields[-1].strip()
                elif kind == "USER":
                    if "START" not in fields[2:4] and "END" not in fields[2:4]:
                        raise ValueError("USER record cut short")
                    user_events += 1
                    users += "START" in fields[2:4]
                elif kind == "GROUP":
                    if len(fields) < 6:
                        raise ValueError("GROUP record cut short")
                    group_records += 1
                elif kind in ("ERROR", "ASSERTION"):
                    pass
                else:
                    raise ValueError(f"unknown record {kind[:20]!r}")
            except ValueError as err:
                if skip_bad_lines:
                    skipped += 1
                    continue
                raise BadInputError(f"truncated or invalid Gatling simulation.log record ({err})",
                                    path=path, line=number) from None
        if not starts:
            raise BadInputError("no REQUEST records: not a Gatling simulation.log with requests",
                                path=path)
        start_ms = np.asarray(starts, dtype="int64")
        latency = np.asarray(ends, dtype="int64") - start_ms
        order = np.argsort(start_ms, kind="stable")  # Gatling writes records as requests end
        samples = samples_frame(
            ts=pd.to_datetime(start_ms[order], unit="ms", utc=True),
            endpoint=pd.Categorical(np.asarray(names, dtype=object)[order]),
            latency_ms=latency[order].astype("float64"),
            ok=np.asarray(oks, dtype=bool)[order],
            error=np.asarray(errors, dtype=object)[order],
            tool=TOOL, source=str(path),
        )
        notes = [NOTE_RESPONSE_TIME, NOTE_KO, NOTE_LOOP,
                 "percentiles computed exactly from the samples (Gatling's report uses a t-digest "
                 "and rounds to the millisecond: expect differences of about 1 ms)"]
        if group_records:
            notes.append(f"{group_records} GROUP record(s) not counted as requests")
        figures = {"gatling_version": version, "users_started": users, "user_records": user_events,
                   "group_records": group_records}
        return LoadTestRun(samples=samples, summary=summarize(samples), tool=TOOL,
                           format="gatling-log", source=str(path), percentiles_from="samples",
                           notes=notes, tool_figures=figures, closed_loop=None,
                           skipped_lines=skipped)
