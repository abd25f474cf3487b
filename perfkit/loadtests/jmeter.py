"""JMeter JTL results: CSV (with or without header, any delimiter, custom columns) and XML.

Transaction Controller rows (parents of other samples) are left out of the samples.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.loadtests.frames import samples_frame, summarize
from perfkit.loadtests.run import LoadTestRun, guard, read_bytes

TOOL = "jmeter"
# The default CSV columns of JMeter 5.x, and without URL (jmeter.save.saveservice.url=false)
DEFAULT_COLUMNS = ["timeStamp", "elapsed", "label", "responseCode", "responseMessage",
                   "threadName", "dataType", "success", "failureMessage", "bytes", "sentBytes",
                   "grpThreads", "allThreads", "URL", "Latency", "IdleTime", "Connect"]
_KNOWN_LAYOUTS = {len(DEFAULT_COLUMNS): DEFAULT_COLUMNS,
                  len(DEFAULT_COLUMNS) - 1: [c for c in DEFAULT_COLUMNS if c != "URL"]}
_NEEDED = ["timeStamp", "elapsed", "label", "responseCode", "responseMessage", "success",
           "failureMessage", "URL"]
TRANSACTION_MARK = "Number of samples in transaction"
NOTE_TRANSACTIONS = (
    "{n} Transaction Controller row(s) left out: they repeat the time of the samples they "
    "contain and would count those requests twice"
)
NOTE_CLOSED = (
    "JMeter threads wait for each answer before the next request (closed loop): latencies "
    "understate waits under overload (coordinated omission)"
)


def _sniff(head: str) -> tuple[str, bool]:
    """(delimiter, has header) from the first line of a JTL CSV."""
    first = head.split("\n", 1)[0]
    has_header = "timeStamp" in first and "elapsed" in first
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=counts.get)
    if counts[delimiter] == 0:
        raise ValueError("no delimiter found in the first line")
    return delimiter, has_header


def _short_records(data: bytes, delimiter: str, width: int, header: int) -> list[tuple[int, int]]:
    """(record index, line number) of the records with fewer than ``width`` fields."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=delimiter)
    out = []
    try:
        for index, row in enumerate(reader):
            if index >= header and row and len(row) < width:
                out.append((index - header, reader.line_num))
    except csv.Error:
        out.append((-1, reader.line_num))
    return out


def _count_records(data: bytes, delimiter: str) -> int:
    """CSV records in ``data`` (quoted line breaks do not start a record)."""
    if b'"' not in data:
        return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=delimiter)
    try:
        return sum(1 for _ in reader)
    except csv.Error:
        return reader.line_num


def _line_of_bad_row(data: bytes, delimiter: str, width: int) -> int | None:
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if len(row) != width:
                return reader.line_num
    except csv.Error:
        return reader.line_num
    return None


def read_csv(path, *, columns: list[str] | None = None, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read a JMeter CSV JTL.

    Parameters
    ----------
    path:
        The JTL file. The delimiter (``,`` ``;`` tab ``|``) and header are detected; quoted
        failure messages may span lines.
    columns:
        Column names for a file without header whose columns are not JMeter's default set
        (``jmeter.save.saveservice.*`` settings decide them).
    skip_bad_lines:
        Skip rows with the wrong number of fields (counted in ``run.skipped_lines``) instead
        of raising BadInputError naming the line.

    Returns
    -------
    LoadTestRun
        One sample per request; Transaction Controller rows are left out (see notes).
    """
    path = Path(path)
    data = read_bytes(path)
    with guard(path, "JMeter JTL (CSV)"):
        delimiter, has_header = _sniff(data[:65536].decode("utf-8", "replace"))
        if has_header:
            names = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", "replace").strip("\r")],
                                    delimiter=delimiter))
        elif columns:
            names = list(columns)
        else:
            width = len(next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", "replace")],
                                        delimiter=delimiter)))
            if width not in _KNOWN_LAYOUTS:
                raise BadInputError(
                    f"JTL without header and with {width} columns: pass columns=[...] "
                    "(the jmeter.save.saveservice settings that wrote it)", path=path, line=1)
            names = _KNOWN_LAYOUTS[width]
        for needed in ("timeStamp", "elapsed", "label"):
            if needed not in names:
                raise BadInputError(f"JTL without a {needed!r} column", path=path, line=1)
        include = [c for c in _NEEDED if c in names]
        last = names[-1]  # missing in a row cut short (pandas fills absent fields with NaN)
        skipped = 0
        try:
            # pandas' C engine: quoted fields may span lines (pyarrow's reader is serial then)
            frame = pd.read_csv(
                io.BytesIO(data), sep=delimiter, names=names, header=0 if has_header else None,
                usecols=list(dict.fromkeys([*include, last])), engine="c", keep_default_na=False,
                on_bad_lines="skip" if skip_bad_lines else "error", quotechar='"',
            )
        except (pd.errors.ParserError, ValueError) as err:
            match = re.search(r"line (\d+)", str(err))
            line = int(match.group(1)) if match else _line_of_bad_row(data, delimiter, len(names))
            raise BadInputError(f"malformed JTL row ({str(err).splitlines()[0][:100]})",
                                path=path, line=line) from None
        if (frame[last].isna() | (frame[last].astype("str") == "")).any():
            # pandas fills a row cut short with empty fields: find such rows exactly
            bad = _short_records(data, delimiter, len(names), 1 if has_header else 0)
            if bad and not skip_bad_lines:
                raise BadInputError(f"JTL row with fewer than {len(names)} fields (truncated?)",
                                    path=path, line=bad[0][1])
            frame = frame.drop(index=[r for r, _ in bad if r in frame.index])
        if skip_bad_lines:
            rows = _count_records(data, delimiter) - (1 if has_header else 0)
            skipped = max(rows - len(frame), 0)
        if frame.empty:
            raise BadInputError("JTL without samples", path=path)
        return _run(frame, path, "jmeter-csv", skipped)


def _timestamps(column: pd.Series) -> tuple[pd.Series, str | None]:
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        return pd.to_datetime(numbers, unit="ms", utc=True), None
    parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    if parsed.isna().any():
        raise ValueError(f"unreadable timeStamp {column[parsed.isna()].iloc[0]!r}")
    if parsed.dt.tz is None:
        return parsed.dt.tz_localize("UTC"), (
            "JMeter wrote formatted timestamps without a time zone: taken as UTC")
    return parsed.dt.tz_convert("UTC"), None


def _run(frame: pd.DataFrame, path: Path, fmt: str, skipped: int) -> LoadTestRun:
    message = frame.get("responseMessage", pd.Series("", index=frame.index))
    message = message.astype("str").fillna("")
    is_transaction = message.str.startswith(TRANSACTION_MARK)
    transactions = int(is_transaction.sum())
    frame = frame[~is_transaction]
    ts, ts_note = _timestamps(frame["timeStamp"])
    success = frame.get("success")
    ok = None if success is None else success.astype("str").str.lower() == "true"
    status = frame.get("responseCode")
    failure = frame.get("failureMessage")
    error = None
    if failure is not None:
        failure = failure.astype("str")
        error = failure.where(failure.notna() & (failure != ""), None)
        if message is not None:
            fallback = message[~is_transaction].where(~ok if ok is not None else False, None)
            error = error.where(error.notna(), fallback)
    samples = samples_frame(
        ts=ts, endpoint=frame["label"].astype("str"), method=None,
        latency_ms=pd.to_numeric(frame["elapsed"], errors="coerce"),
        status=None if status is None else pd.to_numeric(status, errors="coerce"),
        ok=ok, error=error, tool=TOOL, source=str(path),
    )
    samples = samples.sort_values("ts", kind="stable").reset_index(drop=True)
    notes = [NOTE_CLOSED]
    if transactions:
        notes.insert(0, NOTE_TRANSACTIONS.format(n=transactions))
    if ts_note:
        notes.append(ts_note)
    if skipped:
        notes.append(f"{skipped} bad row(s) skipped")
    return LoadTestRun(
        samples=samples, summary=summarize(samples), tool=TOOL, format=fmt, source=str(path),
        percentiles_from="samples", notes=notes, closed_loop=True, skipped_lines=skipped,
        tool_figures={"rows": len(frame) + transactions, "transaction_rows": transactions},
    )


def read_xml(path) -> LoadTestRun:
    """Read a JMeter XML JTL (``jmeter.save.saveservice.output_format=xml``).

    Top-level ``httpSample``/``sample`` elements are requests (sub-results of a parent
    sample are not counted again); assertion failure messages become ``error``.
    """
    path = Path(path)
    data = read_bytes(path)
    with guard(path, "JMeter JTL (XML)"):
        rows = []
        depth = 0
        try:
            for event, elem in ET.iterparse(io.BytesIO(data), events=("start", "end")):
                if event == "start":
                    depth += 1
                    continue
                depth -= 1
                if depth == 0 and elem.tag != "testResults":
                    raise BadInputError("not a JMeter XML JTL (root is not testResults)", path=path)
                if depth == 1 and elem.tag in ("httpSample", "sample"):
                    get = elem.attrib.get
                    messages = [m.text or "" for m in elem.iter("failureMessage") if m.text]
                    rows.append({"timeStamp": get("ts"), "elapsed": get("t"), "label": get("lb"),
                                 "responseCode": get("rc"), "responseMessage": get("rm", ""),
                                 "success": get("s"), "failureMessage": "\n".join(messages)})
                    elem.clear()
        except ET.ParseError as err:
            raise BadInputError(f"malformed XML ({err.msg if hasattr(err, 'msg') else err})",
                                path=path, line=err.position[0]) from None
        if not rows:
            raise BadInputError("JTL without samples", path=path)
        frame = pd.DataFrame(rows)
        if frame["timeStamp"].isna().any() or frame["elapsed"].isna().any():
            raise BadInputError("JTL sample without ts or t attribute", path=path)
        frame["elapsed"] = pd.to_numeric(frame["elapsed"], errors="raise").astype(np.float64)
        return _run(frame, path, "jmeter-xml", 0)
