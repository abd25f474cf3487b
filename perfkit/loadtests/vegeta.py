"""vegeta (tsenart/vegeta) results: ``vegeta encode --to json`` (NDJSON) and ``--to csv``.

One row per request (vegeta's Result): start time, status code (0 when no answer), latency in
nanoseconds, error text, method and URL.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import samples_frame, summarize
from perfkit.loadtests.run import LoadTestRun, guard, http_ok, read_bytes

FORMATS = (
    Format("vegeta-json", tool="vegeta", gives="samples", description="vegeta encode --to json (NDJSON Results)",
           read="read_json", options=("endpoint", "skip_bad_lines"), sniff=((20, "sniff_json"),),
           fixtures=("vegeta_results.json",)),
    Format("vegeta-csv", tool="vegeta", gives="samples", description="vegeta encode --to csv",
           read="read_csv", options=("endpoint", "skip_bad_lines"), sniff=((120, "sniff_csv"),),
           fixtures=("vegeta_results.csv",)),
)

TOOL = "vegeta"
# vegeta encode --to csv: timestamp (Unix ns), code, latency (ns), bytes out, bytes in, error,
# base64 body, attack, seq, then method and URL (newer vegeta), then base64 headers (newest)
CSV_FIELDS = ["timestamp", "code", "latency", "bytes_out", "bytes_in", "error", "body", "attack",
              "seq", "method", "url", "headers"]
CSV_LINE = re.compile(rb"^\d{16,19},\d{1,5},-?\d+,\d+,\d+,")
NOTE_OPEN = (
    "vegeta sends requests at a constant rate whether or not earlier ones were answered (open "
    "loop): latencies include the target's queueing, no coordinated omission"
)
NOTE_SUCCESS = (
    "failures are the results with a status outside 200-399, no answer at all (code 0 with an "
    "error), or an error: stricter than vegeta's success ratio, which looks at the code only "
    "(tool_figures['success'] is vegeta's); latency figures include the failed requests, as "
    "vegeta's report does"
)
NOTE_ENDPOINT = (
    "endpoint is the URL's path without its query (\"METHOD path\" when one path is requested "
    "with several methods); the method is also in its own column"
)


def _url_path(url: str) -> str:
    """The URL's path ("/" when empty), "" without a URL; ValueError for a malformed URL."""
    return (urlsplit(url).path or "/") if url else ""  # urlsplit: "Invalid IPv6 URL"


def _endpoints(methods: list[str], url_paths: list[str], fallback: str) -> tuple[list[str], bool]:
    """Endpoint names from the URLs' paths ("METHOD path" when a path has several methods)."""
    paths = [path or fallback for path in url_paths]
    methods_of: dict[str, set] = {}
    for method, path in zip(methods, paths, strict=True):
        methods_of.setdefault(path, set()).add(method)
    clash = {path for path, seen in methods_of.items() if len(seen) > 1}
    names = [f"{m} {p}" if p in clash and m else p for m, p in zip(methods, paths, strict=True)]
    return names, any(url_paths)


def _run(rows: dict, path: Path, fmt: str, skipped: int, endpoint: str | None) -> LoadTestRun:
    """A LoadTestRun from parsed Result fields (lists, one entry per request)."""
    if not rows["latency"]:
        raise BadInputError("vegeta results without any request", path=path)
    code = np.asarray(rows["code"], dtype=np.int64)
    latency_ms = np.asarray(rows["latency"], dtype=np.float64) / 1e6
    error = rows["error"]
    methods = [m or None for m in rows["method"]]
    attacks = sorted({a for a in rows["attack"] if a})
    fallback = endpoint or (attacks[0] if len(attacks) == 1 else "vegeta")
    names, has_urls = _endpoints([m or "" for m in rows["method"]], rows["url_path"], fallback)
    answered = http_ok(code)
    no_error = np.array([not e for e in error], dtype=bool)
    samples = samples_frame(
        ts=rows["ts"], endpoint=names, method=methods, latency_ms=latency_ms,
        status=np.where(code > 0, code, np.nan), ok=answered & no_error,
        error=[e or None for e in error], tool=TOOL, source=str(path),
    )
    order = np.argsort(samples["ts"].to_numpy(), kind="stable")
    samples = samples.iloc[order].reset_index(drop=True)
    notes = [NOTE_SUCCESS, NOTE_OPEN]
    notes.append(NOTE_ENDPOINT if has_urls else
                 f"these results carry no URL (older vegeta): endpoint {fallback!r} (endpoint= names it)")
    unanswered = int((code == 0).sum())
    if unanswered:
        notes.append(f"{unanswered} request(s) got no answer (code 0: connection refused, timeout, "
                     "...): their latency is the time until vegeta gave up")
    odd = int((answered & ~no_error).sum())
    if odd:
        notes.append(f"{odd} request(s) with a 2xx/3xx code and an error: vegeta counts them as "
                     "successes, perfkit as failures")
    if skipped:
        notes.append(f"{skipped} bad line(s) skipped")
    status_codes: dict[str, int] = {}
    for value in code.tolist():
        status_codes[str(value)] = status_codes.get(str(value), 0) + 1
    figures = {
        "requests": len(code),
        "success": float(answered.mean()),  # vegeta's Success ratio: code in [200, 400)
        "status_codes": status_codes,
        "errors": list(dict.fromkeys(e for e in error if e)),
        "attacks": attacks,
    }
    return LoadTestRun(
        samples=samples, summary=summarize(samples), tool=TOOL, format=fmt, source=str(path),
        percentiles_from="samples", notes=notes, closed_loop=False, skipped_lines=skipped,
        tool_figures=figures,
    )


def _empty_rows() -> dict:
    return {key: [] for key in ("ts", "code", "latency", "error", "method", "url_path", "attack")}


def _timestamps(rows: dict, lines: list[int], path: Path, skip_bad_lines: bool) -> int:
    """Parse ``rows["ts"]`` in place to UTC (RFC 3339 text, or Unix nanoseconds); a bad one
    raises naming its line, or is dropped and counted."""
    values = rows["ts"]
    if values and isinstance(values[0], str):
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce",
                                format="ISO8601")
    else:
        numbers = pd.Series(values, dtype="float64" if not values else "int64")
        parsed = pd.to_datetime(numbers, unit="ns", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any() and not skip_bad_lines:
        raise BadInputError("vegeta result with an unreadable timestamp", path=path,
                            line=lines[int(np.flatnonzero(bad)[0])])
    keep = ~bad
    for key in rows:
        rows[key] = [v for v, k in zip(rows[key], keep, strict=True) if k]
    rows["ts"] = pd.DatetimeIndex(parsed[keep])
    return int(bad.sum())


def sniff_json(head: Head) -> bool:
    """A Result line first (code, timestamp, latency), or a first line too deep or cut to parse
    that names latency and bytes_out."""
    if not head.is_json:
        return False
    line = head.json_line
    return (isinstance(line, dict) and {"code", "timestamp", "latency"} <= line.keys()) or (
        line is None and b'"latency":' in head.first and b'"bytes_out":' in head.first)


def read_json(path, *, endpoint: str | None = None, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read ``vegeta encode --to json`` output (NDJSON: one Result object per line).

    Parameters
    ----------
    path:
        The NDJSON file (optionally .gz).
    endpoint:
        The endpoint name for results without a ``url`` field (older vegeta); by default the
        attack name, else ``vegeta``.
    skip_bad_lines:
        Keep the good rows around truncated or invalid lines and count the skipped ones in
        ``run.skipped_lines``, instead of raising BadInputError naming the line.

    Returns
    -------
    LoadTestRun
        Samples with ts = the Result's timestamp (when the request was sent) in UTC,
        latency, status (NA when no answer), ``ok`` = code in 200-399 and no error.
    """
    path = Path(path)
    data = read_bytes(path)
    rows, lines, skipped = _empty_rows(), [], 0
    with guard(path, "vegeta JSON"):
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                fields = _fields(item["timestamp"], item["code"], item["latency"], item.get("error"),
                                 item.get("method"), item.get("url"), item.get("attack"))
                if not isinstance(fields[0], str):
                    raise TypeError("timestamp is not a string")
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError,
                    RecursionError) as err:
                if skip_bad_lines:
                    skipped += 1
                    continue
                why = type(err).__name__
                if isinstance(err, RecursionError):
                    why = "nested too deeply"
                elif isinstance(err, ValueError | TypeError) and not isinstance(err, json.JSONDecodeError):
                    why = str(err)[:80] or why  # a field's value: a bad URL, a code out of range
                raise BadInputError(f"truncated or invalid vegeta JSON line ({why})",
                                    path=path, line=number) from None
            _append(rows, fields)
            lines.append(number)
        skipped += _timestamps(rows, lines, path, skip_bad_lines)
        return _run(rows, path, "vegeta-json", skipped, endpoint)


def _integer(value) -> int:
    """An integer field (vegeta writes uint/int64): bools, floats and text are errors."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r:.40}")
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"integer out of range: {value}")
    return value


def _text(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r:.40}")
    return value


def _fields(ts, code, latency, error, method, url, attack) -> tuple:
    code = _integer(code)
    if not 0 <= code < 1000:
        raise ValueError(f"status code {code} out of range")
    return (ts, code, _integer(latency), _text(error), _text(method), _url_path(_text(url)),
            _text(attack))


def _append(rows: dict, fields: tuple) -> None:
    for key, value in zip(("ts", "code", "latency", "error", "method", "url_path", "attack"), fields,
                          strict=True):
        rows[key].append(value)


def sniff_csv(head: Head) -> bool:
    """A Result row: nanosecond timestamp, code, latency, bytes out, bytes in."""
    return CSV_LINE.match(head.first) is not None


def read_csv(path, *, endpoint: str | None = None, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read ``vegeta encode --to csv`` output (no header; 9, 11 or 12 fields by vegeta version).

    Parameters and result as ``read_json``; the timestamp is Unix nanoseconds.
    """
    path = Path(path)
    data = read_bytes(path)
    # the base64 body and headers columns can exceed the csv module's 131072-character field
    # limit (a body above ~96 KB): no field is longer than the file, so the file's length is a
    # limit that rejects nothing (process-wide, so restored after the read)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, min(len(data) + 1, 2**31 - 1)))
    try:
        return _read_csv_rows(data, path, endpoint, skip_bad_lines)
    finally:
        csv.field_size_limit(limit)


def _read_csv_rows(data: bytes, path: Path, endpoint: str | None, skip_bad_lines: bool) -> LoadTestRun:
    rows, lines, skipped = _empty_rows(), [], 0
    with guard(path, "vegeta CSV"):
        reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
        start_line = 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                if not skip_bad_lines:
                    raise BadInputError(f"malformed vegeta CSV row ({err})", path=path,
                                        line=reader.line_num) from None
                skipped += 1
                start_line = reader.line_num + 1
                continue
            number, start_line = start_line, reader.line_num + 1
            if not record or record == [""]:
                continue
            try:
                if len(record) not in (9, 11, 12):
                    raise ValueError(f"{len(record)} fields, vegeta writes 9, 11 or 12")
                values = dict(zip(CSV_FIELDS, record, strict=False))
                fields = _fields(_csv_int(values["timestamp"]), _csv_int(values["code"]),
                                 _csv_int(values["latency"]), values["error"],
                                 values.get("method", ""), values.get("url", ""), values["attack"])
            except (ValueError, TypeError) as err:
                if skip_bad_lines:
                    skipped += 1
                    continue
                raise BadInputError(f"truncated or malformed vegeta CSV row ({err})", path=path,
                                    line=number) from None
            _append(rows, fields)
            lines.append(number)
        skipped += _timestamps(rows, lines, path, skip_bad_lines)
        run = _run(rows, path, "vegeta-csv", skipped, endpoint)
        if data and not data.endswith((b"\n", b"\r")) and lines:
            run.notes.append(f"the file does not end with a line break: its last row (line {lines[-1]}) "
                             "may be cut short")
        return run


def _csv_int(text: str) -> int:
    if not re.fullmatch(r"-?\d{1,19}", text.strip()):
        raise ValueError(f"not an integer: {text[:40]!r}")
    return _integer(int(text))
