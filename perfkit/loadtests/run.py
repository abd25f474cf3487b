"""A load-test run as perfkit reads it: samples, summary, history, tool figures and notes.

``LoadTestRun`` is what every reader returns; ``guard`` turns a parser's surprise into BadInputError.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError, PerfkitError
from perfkit.fileio import MAX_LINE_BYTES, bounded_chunks, input_errors, require_regular
from perfkit.loadtests.frames import empty_samples, empty_summary


@dataclass
class LoadTestRun:
    """One load-test result file, read into the contract's shapes.

    Attributes
    ----------
    samples:
        One row per request (``SAMPLE_COLUMNS``); empty when the tool writes only aggregates.
    summary:
        One row per endpoint plus ``ALL`` (``SUMMARY_COLUMNS``).
    tool, format, source:
        The tool (``k6``, ``locust``, ...), the file format read, and the file path.
    percentiles_from:
        ``"samples"`` when percentiles were computed exactly from raw samples, ``"tool"`` when
        they are the tool's own aggregates, ``"histogram"`` when from a bucketed histogram.
    notes:
        What the reader wants a user to know (dropped requests, rounding, coordinated omission).
    history:
        Figures over time when the tool writes them (columns among ``ts``, ``users``,
        ``requests``, ``failures``, ``rps``, ``mean_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``);
        ``requests`` and ``failures`` are what each row's interval added (a tool's cumulative
        counters are kept as ``requests_total`` and ``failures_total``); ``endpoint`` when the
        rows are per endpoint.
    endpoint_history:
        The same figures per endpoint (an ``endpoint`` column) when the tool writes them
        (Locust ``--csv-full-history``); empty otherwise.
    tool_figures:
        The tool's own totals as it prints them (e.g. ``{"requests": 300, "failed": 15}``).
    closed_loop:
        True for tools whose users wait for each answer before sending the next request
        (their latencies suffer from coordinated omission), False for open-loop arrival rates,
        None when the file does not say.
    duration_s:
        The run's length in seconds, when known.
    skipped_lines:
        How many bad lines ``skip_bad_lines=True`` skipped.
    """

    samples: pd.DataFrame
    summary: pd.DataFrame
    tool: str
    format: str
    source: str
    percentiles_from: str
    notes: list[str] = field(default_factory=list)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    endpoint_history: pd.DataFrame = field(default_factory=pd.DataFrame)
    tool_figures: dict = field(default_factory=dict)
    closed_loop: bool | None = None
    duration_s: float | None = None
    skipped_lines: int = 0

    @property
    def has_samples(self) -> bool:
        """Whether the run carries one row per request."""
        return not self.samples.empty

    def __repr__(self) -> str:
        total = self.summary.loc[self.summary["endpoint"] == "ALL", "requests"]
        requests = int(total.iloc[0]) if len(total) else 0
        return (
            f"<LoadTestRun {self.tool} ({self.format}) {Path(self.source).name}: "
            f"{requests:,} requests, {len(self.summary) - 1} endpoints, "
            f"percentiles from {self.percentiles_from}>"
        )


NOTE_OUT_OF_CORE = (
    "summarized out of core (summary_only): exact counts and percentiles from every sample, "
    "computed by DuckDB while streaming the file; the samples were not loaded"
)


def drop_samples(run: LoadTestRun, note: str | None = None) -> LoadTestRun:
    """The run without its samples (``summary_only``), the summary kept as computed."""
    run.samples = empty_samples(run.tool, run.source)
    if note:
        run.notes.append(note)
    return run


def aggregate_run(
    summary: pd.DataFrame, *, tool: str, format: str, source, **kwargs
) -> LoadTestRun:
    """A run for a tool that writes aggregates only (no per-request samples)."""
    return LoadTestRun(
        samples=empty_samples(tool, str(source)),
        summary=summary if summary is not None else empty_summary(),
        tool=tool,
        format=format,
        source=str(source),
        percentiles_from=kwargs.pop("percentiles_from", "tool"),
        **kwargs,
    )


_PARSE_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,  # json.loads of deeply nested input ("[" * 200000)
    UnicodeDecodeError,
    json.JSONDecodeError,
    ZeroDivisionError,
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    csv.Error,
    zlib.error,  # a gzip stream corrupt past the part head_bytes read
    EOFError,  # a gzip stream that ends early
)


@contextlib.contextmanager
def guard(path, what: str):
    """Turn a parser's unexpected exception into a one-line BadInputError naming ``path``.

    Parameters
    ----------
    path:
        The file being read.
    what:
        The format name, for the message ("not a valid k6 summary file: ...").
    """
    try:
        yield
    except PerfkitError:
        raise
    except MemoryError as err:  # pyarrow's ArrowMemoryError too
        raise BadInputError(
            f"out of memory reading this {what} file: summarize it out of core with "
            "summary_only=True (perfkit loadtest --summary-only)", path=path) from err
    except _PARSE_ERRORS as err:
        detail = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        if isinstance(err, RecursionError):
            detail = "nested too deeply to read"
        if isinstance(err, (zlib.error, EOFError)):
            raise BadInputError(f"not a readable gzip file ({_gzip_detail(err)})", path=path) from err
        raise BadInputError(f"not a valid {what} file ({detail})", path=path) from err
    except Exception as err:  # pyarrow's ArrowInvalid and friends
        if type(err).__module__.startswith("pyarrow"):
            detail = str(err).splitlines()[0][:160]
            raise BadInputError(f"not a valid {what} file ({detail})", path=path) from err
        raise


def json_object(text: str, path, what: str, key: str) -> dict:
    """``text`` as a JSON object that holds an object under ``key``.

    Call it inside :func:`guard`, which words a JSON syntax error.

    Raises
    ------
    BadInputError
        ``not <what> (no "<key>" object)`` when the document is something else.
    """
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise BadInputError(f"not {what} (no \"{key}\" object)", path=path)
    return doc


def http_ok(status) -> np.ndarray:
    """Which HTTP status codes are successes for perfkit: 200-399 (NaN and 0, no answer, are not).

    Parameters
    ----------
    status:
        Status codes (array-like of int or float, NaN for none).

    Returns
    -------
    numpy.ndarray
        A boolean array, one entry per code.
    """
    codes = np.asarray(status, dtype=np.float64)
    return (codes >= 200) & (codes < 400)


def read_text(path) -> str:
    """The file as text (UTF-8, undecodable bytes replaced); BadInputError when missing or empty."""
    data = read_bytes(path)
    return data.decode("utf-8", errors="replace")


def read_bytes(path) -> bytes:
    """The file's bytes (gunzipped when it ends in .gz); BadInputError when missing or empty, or
    when a line is longer than 64 MiB (read 1 MiB at a time: a gzip bomb of one endless line is
    refused after 64 MiB, never held whole)."""
    path = Path(path)
    data = head_bytes(path, -1)
    if not data.strip():
        raise BadInputError("empty file: no load-test results in it", path=path)
    return data


def check_lines(path) -> None:
    """Refuse a result file holding a line longer than 64 MiB (a decompression bomb, a binary
    file) before a reader that takes the file whole (pandas, pyarrow, DuckDB) sees it.

    A ``.gz`` file is decompressed once, 1 MiB at a time (memory stays at the line limit). An
    uncompressed file is probed, not read: a line longer than 64 MiB covers one of the aligned
    32 MiB windows of the file entirely, so the 64 KiB at the start of each window holding a
    line break clears it (a few reads per GB); only a file where one does not is scanned whole.
    """
    path = Path(path)
    if path.suffix != ".gz":
        window = MAX_LINE_BYTES // 2
        with _opened(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= MAX_LINE_BYTES or all(
                b"\n" in os.pread(handle.fileno(), 65536, start) for start in range(0, size - window + 1, window)
            ):
                return
    with _opened(path) as handle:
        for _chunk in _gzip_errors(bounded_chunks(handle, path), path):
            pass


@contextlib.contextmanager
def _opened(path: Path):
    """The result file open for reading in binary (gunzipped for ``.gz``); one-line errors."""
    import gzip

    folder = "is a directory, not a result file (use --latest DIR)"
    require_regular(path, folder)  # a FIFO with no writer would block forever, /dev/zero never end
    with input_errors(path, folder):
        handle = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
        with handle:
            yield handle


def _gzip_errors(chunks, path: Path):
    """``chunks``, with a broken gzip stream turned into a one-line BadInputError."""
    import gzip

    try:
        yield from chunks
    except (zlib.error, gzip.BadGzipFile, EOFError) as err:
        raise BadInputError(f"not a readable gzip file ({_gzip_detail(err)})", path=path) from None


def head_bytes(path: Path, size: int = 65536) -> bytes:
    """The first ``size`` bytes of a result file (gunzipped for ``.gz``), for format sniffing
    (all of them for -1: then through :func:`read_bytes`, which bounds the line length).

    Raises
    ------
    BadInputError
        The file is missing, a directory, or unreadable.
    """
    import gzip

    path = Path(path)
    with _opened(path) as handle:
        if size < 0:
            return b"".join(_gzip_errors(bounded_chunks(handle, path), path))
        try:
            return handle.read(size)
        except (zlib.error, gzip.BadGzipFile, EOFError) as err:
            raise BadInputError(f"not a readable gzip file ({_gzip_detail(err)})", path=path) from None


def _gzip_detail(err: Exception) -> str:
    """What is wrong with a gzip stream, in one short phrase."""
    if isinstance(err, EOFError):
        return "truncated: the compressed stream ends early"
    return str(err).splitlines()[0][:120] or type(err).__name__


@dataclass
class CsvCheck:
    """What :func:`check_csv` found: the text to parse (bad records removed when skipping), how
    many records it skipped, the 1-based line each kept record starts on, and a note or none."""

    text: str
    skipped: int
    lines: list[int]
    notes: list[str]


def check_csv(text: str, path, what: str, *, sep: str = ",", skip_bad_lines: bool = False) -> CsvCheck:
    """Check that every record of a CSV has as many fields as its header.

    pandas moves a row with one field too many into the index (every column shifted: endpoint
    names that are request counts) and fills a row with too few with blanks; this refuses both,
    naming the line, or with ``skip_bad_lines`` leaves those records out and counts them.

    Parameters
    ----------
    text:
        The file's text (header first).
    path, what:
        The file and its format's name, for the messages.
    sep:
        The field delimiter.
    skip_bad_lines:
        Leave bad records out (counted in ``skipped``) instead of raising.

    Raises
    ------
    BadInputError
        ``<path>, line N: <what> row with 12 fields, the header has 11 (...)``.
    """
    handle = io.StringIO(text)
    reader = csv.reader(handle, delimiter=sep)
    try:
        header = next(reader)
    except StopIteration:
        raise BadInputError(f"empty {what}", path=path) from None
    width, lines, bad = len(header), [], []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            if not skip_bad_lines:
                raise BadInputError(f"malformed {what} row ({err})", path=path, line=start) from None
            bad.append((start, reader.line_num))
            start = reader.line_num + 1
            continue
        end = reader.line_num
        if row and len(row) != width and end > start and handle.tell() >= len(text):
            # an unbalanced quote: the rest of the file is one field, nothing to skip to
            raise BadInputError(f"truncated or malformed {what} row (an unbalanced quote: the rest of the file "
                                "is inside one field)", path=path, line=start)
        if row and len(row) != width:
            if not skip_bad_lines:
                hint = ("a trailing delimiter?" if len(row) == width + 1 and row[-1] == ""
                        else "cut short?" if len(row) < width else "an unquoted delimiter in a field?")
                raise BadInputError(f"truncated or malformed {what} row: {len(row)} field(s), the header has "
                                    f"{width} ({hint})",
                                    path=path, line=start)
            bad.append((start, end))
        elif row:
            lines.append(start)
        start = end + 1
    notes = []
    if text and not text.endswith(("\n", "\r")):
        notes.append(f"the file does not end with a line break: its last row (line {start - 1}) may be cut short")
    if not bad:
        return CsvCheck(text, 0, lines, notes)
    drop = {i for first, last in bad for i in range(first - 1, last)}
    kept = "".join(line for i, line in enumerate(io.StringIO(text)) if i not in drop)
    notes.append(f"{len(bad)} bad line(s) skipped (a field count unlike the header's): first at line {bad[0][0]}")
    return CsvCheck(kept, len(bad), lines, notes)


def csv_numbers(column: pd.Series, check: CsvCheck, path, what: str, *, blank: tuple = ("",),
                integer: bool = False) -> pd.Series:
    """``column`` as numbers; a value that is not one (nor one of ``blank``, which become NaN) is a
    BadInputError naming the value and its line (``check.lines``: the line each row starts on)."""
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.where(~text.isin(blank), None), errors="coerce")
    wrong = values.isna() & ~text.isin(blank)
    if integer:
        wrong |= values.notna() & (values != values.round())
    if wrong.any():
        where = int(np.flatnonzero(wrong.to_numpy())[0])
        line = check.lines[where] if where < len(check.lines) else None
        kind = "an integer" if integer else "a number"
        raise BadInputError(f"{what}: {column.name} {text.iloc[where][:40]!r} is not {kind}", path=path, line=line)
    return values
