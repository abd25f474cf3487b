"""hey (rakyll/hey): the ``-o csv`` per-request CSV.

hey tests one URL per run; its CSV names no URL and holds no clock time (only each request's
start offset), and leaves out the requests that got no answer (connection errors, timeouts).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import samples_frame, summarize
from perfkit.loadtests.run import LoadTestRun, check_csv, guard, http_ok, read_text

FORMATS = (
    Format("hey-csv", tool="hey", gives="samples", description="hey -o csv (one row per answered request)",
           read="read_csv", options=("endpoint", "start", "skip_bad_lines"), sniff=((110, "sniff_csv"),),
           fixtures=("hey_search.csv", "hey_timeouts.csv")),
)

TOOL = "hey"
CSV_HEADER = "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset"
# hey before 0.1.2 wrote the phases only: no status and no start offset
OLD_CSV_HEADER = "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read"
NOTE_CLOSED = (
    "hey's -c workers each wait for an answer before the next request (closed loop; -q limits "
    "each worker's rate, it does not make hey open-loop): latencies understate waits under "
    "overload (coordinated omission)"
)
NOTE_NO_ERRORS = (
    "hey -o csv writes only the requests that got an answer: connection errors and timeouts are "
    "not in the file (hey's text summary lists them under \"Error distribution\"), so failures "
    "here are non-2xx/3xx answers only"
)
NOTE_RESOLUTION = "hey writes times in seconds with 4 decimals: latencies are known to 0.1 ms"


def _stem(path: Path) -> str:
    """The file's name without its extension (nor ``.gz``): the default endpoint name."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).stem or "hey"


def _parse_start(start) -> pd.Timestamp | None:
    """The ``start=`` option as a UTC Timestamp (naive is UTC); BadInputError naming the option."""
    if start is None:
        return None
    try:
        stamp = pd.Timestamp(start)
    except (ValueError, TypeError, OverflowError) as err:
        detail = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise BadInputError(f"start={start!r:.60} is not a date and time ({detail})") from None
    if stamp is pd.NaT:
        raise BadInputError(f"start={start!r:.60} is not a date and time")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _start_time(stamp: pd.Timestamp | None, path: Path, run_length_s: float) -> tuple[pd.Timestamp, str]:
    """The clock time of offset 0 and the note saying where it came from."""
    if stamp is not None:
        return stamp, f"hey's CSV has no clock time: ts = start ({stamp.isoformat()}) + each request's offset"
    mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    stamp = pd.Timestamp(mtime) - pd.Timedelta(seconds=run_length_s)
    return stamp, (
        "hey's CSV has no clock time: ts = the file's modification time minus the run's length "
        f"({run_length_s:.3f} s) + each request's offset (true when hey wrote the file as the run "
        "ended and it was not modified since); pass start= for the real start"
    )


def _error_line(message: str, text: str) -> int | None:
    """The file line of the record a pandas C-parser error names, or None.

    pandas counts records (a quoted field may span lines), the header included: "Expected 8
    fields in line N" is 1-based, "EOF inside string starting at row N" 0-based.
    """
    match = re.search(r"\b(line|row) (\d+)", message)
    if not match:
        return None
    record = int(match.group(2)) - (match.group(1) == "line")  # 0-based, header = 0
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for _ in range(record):  # the records before it: where the last one ended
            next(reader)
    except (StopIteration, csv.Error):
        return record + 1  # one record per line, as hey writes them
    return reader.line_num + 1


def sniff_csv(head: Head) -> bool:
    """hey's CSV header (the older one is a prefix of the newer)."""
    return head.first.startswith(OLD_CSV_HEADER.encode())


def read_csv(path, *, endpoint: str | None = None, start=None, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read hey's ``-o csv`` output: one sample per answered request.

    Parameters
    ----------
    path:
        The CSV file (hey's stdout).
    endpoint:
        The name of the URL hey tested (the CSV does not say); default: the file's name without
        its extension (and ``.gz``): ``search.2024-05-01.csv`` gives ``search.2024-05-01``.
    start:
        When the run started (anything ``pandas.Timestamp`` takes; naive is UTC). By default
        the file's modification time minus the run's length.
    skip_bad_lines:
        Keep the good rows around truncated or malformed rows and count the skipped ones in
        ``run.skipped_lines``, instead of raising BadInputError naming the line.

    Returns
    -------
    LoadTestRun
        Samples (latency = hey's response-time, status, ``ok`` for 2xx/3xx), sorted by start;
        percentiles from samples. hey's ``offset`` is seconds since hey started.
    """
    path = Path(path)
    stamp = _parse_start(start)
    text = read_text(path)
    name = endpoint or _stem(path)
    with guard(path, "hey CSV"):
        first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
        if first != CSV_HEADER:
            if first == OLD_CSV_HEADER:
                raise BadInputError("hey CSV without status-code and offset columns (hey before "
                                    "0.1.2): no request times or outcomes to read", path=path, line=1)
            raise BadInputError(f"not a hey CSV (its header is {CSV_HEADER!r})", path=path, line=1)
        checked = check_csv(text.lstrip("\ufeff"), path, "hey CSV", skip_bad_lines=skip_bad_lines)
        try:
            rows = pd.read_csv(io.StringIO(checked.text), dtype=str, keep_default_na=False, index_col=False,
                               skip_blank_lines=False, on_bad_lines="skip" if skip_bad_lines else "error")
        except pd.errors.ParserError as err:
            raise BadInputError("truncated or malformed hey CSV row", path=path,
                                line=_error_line(str(err), text.lstrip("\ufeff"))) from None
        blank = (rows == "").all(axis=1).to_numpy()
        latency_s = pd.to_numeric(rows["response-time"], errors="coerce")
        status = pd.to_numeric(rows["status-code"], errors="coerce")
        offset = pd.to_numeric(rows["offset"], errors="coerce")
        finite = np.isfinite(latency_s) & np.isfinite(offset) & (offset.abs() < 1e9) & status.between(0, 999)
        bad = ~finite.to_numpy() & ~blank
        skipped = 0
        if skip_bad_lines:
            lines = checked.text.count("\n") + (0 if checked.text.endswith("\n") else 1)
            skipped = checked.skipped + max(lines - 1 - len(rows), 0) + int(bad.sum())
        elif bad.any():
            raise BadInputError("truncated or malformed hey CSV row", path=path,
                                line=int(np.flatnonzero(bad)[0]) + 2)
        keep = ~(bad | blank)
        latency_s, status, offset = latency_s[keep], status[keep], offset[keep]
        if latency_s.empty:
            raise BadInputError("hey CSV without requests (hey leaves out requests that failed "
                                "to connect or timed out: did every request fail?)", path=path)
        run_length_s = float((offset + latency_s).max())
        base, ts_note = _start_time(stamp, path, run_length_s)
        order = np.argsort(offset.to_numpy(), kind="stable")
        codes = status.to_numpy()[order]
        samples = samples_frame(
            # offsets have 4 decimals: whole 100 us steps (no float residue in the nanoseconds)
            ts=base + pd.to_timedelta(np.round(offset.to_numpy()[order] * 1e4).astype(np.int64) * 100_000,
                                      unit="ns"),
            endpoint=pd.Categorical.from_codes(np.zeros(len(order), dtype=np.int8), categories=[name]),
            latency_ms=latency_s.to_numpy()[order] * 1000.0, status=codes,
            ok=http_ok(codes), tool=TOOL, source=str(path),
        )
        notes = [ts_note,
                 f"hey tests one URL and its CSV does not name it: endpoint {name!r} "
                 "(the file's name unless endpoint= is given)",
                 NOTE_NO_ERRORS, NOTE_RESOLUTION, NOTE_CLOSED]
        notes.extend(n for n in checked.notes if "skipped" not in n)
        if skipped:
            notes.append(f"{skipped} bad line(s) skipped")
        return LoadTestRun(
            samples=samples, summary=summarize(samples), tool=TOOL, format="hey-csv",
            source=str(path), percentiles_from="samples", notes=notes, closed_loop=True,
            skipped_lines=skipped, tool_figures={"rows": len(samples)},
        )
