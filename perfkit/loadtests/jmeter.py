"""JMeter JTL results: CSV (with or without header, any delimiter, custom columns) and XML.

Transaction Controller rows (parents of other samples) are left out of the samples.
"""

from __future__ import annotations

import csv
import io
import os
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests import duck
from perfkit.loadtests.frames import (
    LATENCY_MAX_MS,
    STATUS_MAX,
    TEXT_DTYPE,
    UTC_NS,
    samples_frame,
    summarize,
    summary_frame,
)
from perfkit.loadtests.run import (
    NOTE_OUT_OF_CORE,
    LoadTestRun,
    aggregate_run,
    drop_samples,
    guard,
    head_bytes,
    read_bytes,
)

FORMATS = (
    Format("jmeter-csv", tool="jmeter", gives="samples", description="JMeter CSV JTL",
           read="read_csv", summarize="summarize_csv", options=("columns", "skip_bad_lines"),
           sniff=((180, "sniff_csv"),),
           fixtures=("jmeter_header.jtl", "jmeter_noheader.jtl", "jmeter_semicolon.jtl")),
    Format("jmeter-xml", tool="jmeter", gives="samples", description="JMeter XML JTL",
           read="read_xml", sniff=((90, "sniff_xml"),), fixtures=("jmeter.xml.jtl",)),
)

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


def _record_line(data: bytes, delimiter: str, header: int, record: int) -> int | None:
    """The line the ``record``-th data record (0-based, blank lines not counted) starts on."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=delimiter)
    start, index = 1, -header
    try:
        for row in reader:
            if row:
                if index == record:
                    return start
                index += 1
            start = reader.line_num + 1
    except csv.Error:
        return None
    return None


def _line_of_bad_row(data: bytes, delimiter: str, width: int) -> int | None:
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if len(row) != width:
                return reader.line_num
    except csv.Error:
        return reader.line_num
    return None





def _layout(head: bytes, columns: list[str] | None, path: Path) -> tuple[str, bool, list[str]]:
    """(delimiter, has header, column names) from the file's first bytes (whole first line)."""
    delimiter, has_header = _sniff(head[:65536].decode("utf-8", "replace"))
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if has_header:
        names = next(csv.reader([first.strip("\r")], delimiter=delimiter))
    elif columns:
        names = list(columns)
    else:
        width = len(next(csv.reader([first], delimiter=delimiter)))
        if width not in _KNOWN_LAYOUTS:
            raise BadInputError(
                f"JTL without header and with {width} columns: pass columns=[...] "
                "(the jmeter.save.saveservice settings that wrote it)", path=path, line=1)
        names = _KNOWN_LAYOUTS[width]
    for needed in ("timeStamp", "elapsed", "label"):
        if needed not in names:
            raise BadInputError(f"JTL without a {needed!r} column", path=path, line=1)
    return delimiter, has_header, names


_JTL_NO_HEADER = re.compile(rb"^\d{12,14}[,;\t|]\d+[,;\t|]")


def sniff_csv(head: Head) -> bool:
    """A JTL header (``timeStamp``, ``elapsed``) or a first row of epoch milliseconds and an
    elapsed time."""
    first = head.first
    return (b"timeStamp" in first and b"elapsed" in first) or _JTL_NO_HEADER.match(first) is not None


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
    if not skip_bad_lines:
        head = head_bytes(path)
        if head.strip() and b"\n" in head:
            with guard(path, "JMeter JTL (CSV)"):
                delimiter, has_header, names = _layout(head, columns, path)
                typed = _typed_pandas(path, names, delimiter, has_header)
                if typed is None:
                    typed = _typed_arrow(path, names, delimiter, has_header)
                if typed is not None:
                    return _run_typed(typed, path, names)
    data = read_bytes(path)
    with guard(path, "JMeter JTL (CSV)"):
        delimiter, has_header, names = _layout(data[:65536] if b"\n" in data[:65536] else data, columns, path)
        include = [c for c in _NEEDED if c in names]
        last = names[-1]  # missing in a row cut short (pandas fills absent fields with NaN)
        skipped = 0
        try:
            # pandas' C engine: quoted fields may span lines (pyarrow's reader is serial then)
            frame = pd.read_csv(
                io.BytesIO(data), sep=delimiter, names=names, header=0 if has_header else None,
                usecols=list(dict.fromkeys([*include, last])), engine="c", keep_default_na=False,
                # text as written: a label "01" is not the number 1
                dtype={c: str for c in (*include, last) if c not in ("timeStamp", "elapsed")},
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
        frame, typo = _typed_rows(frame, path, skip_bad_lines,
                                  lambda record: _record_line(data, delimiter, 1 if has_header else 0, record))
        return _run(frame, path, "jmeter-csv", skipped + typo)


def _typed_rows(frame: pd.DataFrame, path: Path, skip_bad_lines: bool, line_of) -> tuple[pd.DataFrame, int]:
    """The rows whose ``elapsed`` is a number and whose ``timeStamp`` is epoch milliseconds or a date;
    the first other one is a BadInputError naming its value and line (``line_of(record)``), or with
    ``skip_bad_lines`` they are left out and counted."""
    text = frame["timeStamp"].astype("str").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        bad_ts = pd.Series(False, index=frame.index)
    else:
        bad_ts = numbers.isna() & pd.to_datetime(text.where(numbers.isna(), "2000-01-01"), errors="coerce",
                                                  format="mixed").isna()
    elapsed = pd.to_numeric(frame["elapsed"], errors="coerce")
    bad_elapsed = ~np.isfinite(elapsed.to_numpy(dtype="float64", na_value=np.nan))
    bad = bad_ts.to_numpy() | bad_elapsed
    if not bad.any():
        return frame, 0
    if skip_bad_lines:
        return frame[~bad], int(bad.sum())
    first = int(np.flatnonzero(bad)[0])
    column = "timeStamp" if bad_ts.iloc[first] else "elapsed"
    value = str(frame[column].iloc[first])[:40]
    kind = "epoch milliseconds nor a date" if column == "timeStamp" else "a duration in milliseconds"
    raise BadInputError(f"JTL {column} {value!r} is not {kind}", path=path, line=line_of(int(frame.index[first])))


# Epoch milliseconds from here on are past 2262, beyond nanosecond timestamps
_STAMP_MAX_MS = 9_223_372_036_854
_IN_QUOTES = "segment ends inside a quoted field"
# A JTL at least this large is cut into 2 segments per thread at line starts, parsed at once
_SEGMENT_MIN = 32 << 20


class _ByteRange(io.RawIOBase):
    """A read-only view of bytes ``start..end`` of a file (a segment for pandas' parser)."""

    def __init__(self, path: Path, start: int, end: int):
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed with the view)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:size])
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")  # gzip, bzip2, xz, zstd


def _compressed(path: Path) -> bool:
    """Whether the file starts like a compressed stream (whatever its name)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(6).startswith(_COMPRESSED)
    except OSError:
        return True


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _segments(path: Path, has_header: bool, count: int) -> list[tuple[int, int]]:
    """``count`` byte ranges of the file's rows, each starting at a line start."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        starts = [len(handle.readline()) if has_header else 0]
        for i in range(1, count):
            handle.seek(max(size * i // count - 1, starts[-1]))
            handle.readline()
            if handle.tell() > starts[-1] and handle.tell() < size:
                starts.append(handle.tell())
    return list(zip(starts, [*starts[1:], size], strict=True))


def _typed_pandas(path: Path, names: list[str], delimiter: str, has_header: bool) -> dict | None:
    """The JTL's sample columns as arrays, parsed by pandas' C engine in parallel; None to fall back.

    The file is cut at line starts into segments parsed by threads (the C tokenizer releases
    the GIL). A cut can land inside a quoted failure message that spans lines: the segment
    before it then ends inside a quoted field, which pandas reports ("EOF inside string"), and
    that segment and the next are parsed again as one. None when a row has too many fields,
    a row is cut short (its last field is empty), a timestamp is not epoch milliseconds or an
    elapsed time is not a number: the next readers handle or name those rows.
    """
    if len(set(names)) != len(names) or _compressed(path):
        return None  # byte ranges of a compressed file are no text: pyarrow's reader inflates it
    wanted = [c for c in _NEEDED if c in names and c != "URL"]
    last = names[-1]
    texts = [c for c in wanted if c not in ("timeStamp", "elapsed")]
    usecols = list(dict.fromkeys([*wanted, last]))
    workers = max(1, min(_cores(), 8))
    count = 2 * workers if path.stat().st_size >= _SEGMENT_MIN else 1

    def parse(segment: tuple[int, int]) -> dict | None:
        """One segment's columns: numbers as arrays, text as Arrow dictionaries; None to fall back."""
        with io.BufferedReader(_ByteRange(path, *segment), 1 << 20) as handle:
            # pandas infers the types (text becomes Arrow-backed strings): faster than asking
            # for categoricals, whose conversion holds the GIL
            frame = pd.read_csv(handle, sep=delimiter, names=names, header=None, usecols=usecols,
                                engine="c", na_filter=False, quotechar='"')
        elapsed = frame["elapsed"].dtype
        if frame["timeStamp"].dtype != np.int64 or not pd.api.types.is_numeric_dtype(elapsed) \
                or pd.api.types.is_bool_dtype(elapsed):
            return None  # formatted stamps, or an elapsed time that is no number
        if not pd.api.types.is_numeric_dtype(frame[last].dtype) and (frame[last] == "").any():
            return None  # a row cut short: its last field is empty (pyarrow's reader names it)
        columns = {"timeStamp": frame["timeStamp"].to_numpy(),
                   "elapsed": frame["elapsed"].to_numpy(dtype="float64")}
        for name in texts:
            column = frame[name]
            if pd.api.types.is_string_dtype(column.dtype) and column.dtype != object:
                encoded = pa.chunked_array(pa.array(column.array)).combine_chunks().dictionary_encode()
            elif name in ("label", "responseMessage", "failureMessage"):
                return None  # all numbers: pandas read them as such, but "01" is not "1"
            else:  # codes or success read as numbers or booleans: as text again
                encoded = pa.array(column.to_numpy()).dictionary_encode()
                encoded = pa.DictionaryArray.from_arrays(encoded.indices, encoded.dictionary.cast(pa.string()))
            columns[name] = encoded
        return columns

    def attempt(segment: tuple[int, int]) -> dict | str | None:
        try:
            return parse(segment)
        except pd.errors.ParserError as err:
            return _IN_QUOTES if "EOF inside string" in str(err) else None
        except (ValueError, TypeError, OverflowError, OSError, UnicodeDecodeError,
                pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    try:
        segments = _segments(path, has_header, count)
    except OSError:
        return None
    with ThreadPoolExecutor(min(workers, len(segments))) as pool:
        results = list(pool.map(attempt, segments))
    parts, i = [], 0
    while i < len(segments):
        if results[i] is _IN_QUOTES:
            # the cut after this segment fell inside a quoted message: the next segment starts
            # mid-message, so both are parsed again as one
            if i + 1 == len(segments):
                return None  # the file itself ends inside quotes: the next readers name it
            segments[i:i + 2] = [(segments[i][0], segments[i + 1][1])]
            results[i:i + 2] = [attempt(segments[i])]
            continue
        if results[i] is None:
            return None
        parts.append(results[i])
        i += 1
    rows = sum(len(part["timeStamp"]) for part in parts)
    if rows == 0:
        return None
    merged = {name: pa.chunked_array([part[name] for part in parts]).unify_dictionaries().combine_chunks()
              for name in texts}

    def distinct(name: str) -> tuple[np.ndarray, np.ndarray]:
        column = merged[name]
        return (column.dictionary.to_numpy(zero_copy_only=False).astype(object),
                column.indices.to_numpy(zero_copy_only=False))

    def joined(name: str) -> np.ndarray:
        arrays = [part[name] for part in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    return _typed_parts(names, rows, joined("timeStamp"), joined("elapsed"), distinct)


def _typed_arrow(path: Path, names: list[str], delimiter: str, has_header: bool) -> dict | None:
    """The JTL's sample columns as arrays, read by pyarrow's CSV reader; None to use pandas.

    ``newlines_in_values`` lets quoted failure messages span lines (pandas' pyarrow engine does
    not set it, hence its failure on such files). None when a row has the wrong number of
    fields or a timestamp is not epoch milliseconds: the pandas reader then names the row or
    parses the formatted timestamps. Text columns are read as dictionaries (few distinct
    values): each rule below runs on the distinct values, then spreads to the rows by index.
    """
    if len(set(names)) != len(names):
        return None
    wanted = [c for c in _NEEDED if c in names and c != "URL"]
    types = {name: pa.dictionary(pa.int32(), pa.string()) for name in wanted}
    types.update({"timeStamp": pa.int64(), "elapsed": pa.float64()})
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1 if has_header else 0,
                                            block_size=1 << 20),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                include_columns=wanted, column_types=types, strings_can_be_null=False,
                quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, EOFError):
        return None
    rows = table.num_rows
    if rows == 0 or table.column("timeStamp").null_count:
        return None

    def distinct(name: str, table=table) -> tuple[np.ndarray, np.ndarray]:
        """(distinct values as an object array, each row's index into them)."""
        column = table.column(name).unify_dictionaries().combine_chunks()
        return (column.dictionary.to_numpy(zero_copy_only=False).astype(object),
                column.indices.to_numpy(zero_copy_only=False))

    return _typed_parts(names, rows, table.column("timeStamp").to_numpy(), table.column("elapsed").to_numpy(),
                        distinct)


def _typed_parts(names: list[str], rows: int, ts_ms: np.ndarray, elapsed: np.ndarray, distinct) -> dict:
    """The sample arrays from the parsed columns, by JMeter's rules.

    ``distinct(name)`` gives a text column as (distinct values, each row's index into them):
    each rule runs on the distinct values, then spreads to the rows by index.
    """
    # stamps past 2262 or latencies that are no durations: the whole-file reader names them
    if (ts_ms.size and max(abs(int(ts_ms.min())), abs(int(ts_ms.max()))) >= _STAMP_MAX_MS) \
            or (np.abs(elapsed) > LATENCY_MAX_MS).any():
        return None
    parts = {"ts_ms": ts_ms, "elapsed": elapsed}
    parts["labels"], parts["label_of"] = distinct("label")
    if "responseMessage" in names:
        messages, message_of = distinct("responseMessage")
        starts = np.array([text.startswith(TRANSACTION_MARK) for text in messages], dtype=bool)
        parts["is_transaction"] = starts[message_of] if starts.any() else None
    else:
        messages, message_of = np.array([""], dtype=object), np.zeros(rows, dtype=np.int32)
        parts["is_transaction"] = None
    ok = None
    if "success" in names:
        values, value_of = distinct("success")
        ok = parts["ok"] = np.array([text.lower() == "true" for text in values], dtype=bool)[value_of]
    if "responseCode" in names:
        codes, code_of = distinct("responseCode")
        numbers = pd.to_numeric(pd.Series(codes, dtype=object), errors="coerce").to_numpy(dtype="float64")
        # Int64 values and mask per distinct code (a code that is not a number is missing)
        numbers = np.where(np.abs(numbers) < STATUS_MAX, numbers, np.nan)  # no status code
        missing = np.isnan(numbers)
        parts["status"] = (np.nan_to_num(numbers).round().astype(np.int64)[code_of],
                           missing[code_of] if missing.any() else np.zeros(rows, dtype=bool))
    if "failureMessage" in names:
        failures, failure_of = distinct("failureMessage")
        has_failure = np.array([text != "" for text in failures], dtype=bool)[failure_of]
        use_message = ~has_failure & np.array([text != "" for text in messages], dtype=bool)[message_of]
        if ok is not None:
            use_message &= ~ok
        else:
            use_message[:] = False
        # one text per distinct failure message, then per distinct response message; never ""
        texts = pa.array(np.concatenate([failures, messages]), pa.large_string())
        pick = np.where(has_failure, failure_of, len(failures) + message_of)
        parts["error"] = texts.take(pa.array(pick, pa.int64(), mask=~(has_failure | use_message)))
    return parts


def _run_typed(parts: dict, path: Path, names: list[str]) -> LoadTestRun:
    """``_run`` for the arrays of ``_typed_arrow`` (same samples, summary and notes).

    The samples' columns are built from those arrays directly (categoricals from codes, Int64
    and boolean from values and masks, error as Arrow-backed text): one selection of the rows
    that stay, in start order, and no intermediate DataFrame.
    """
    is_transaction = parts["is_transaction"]  # None: no Transaction Controller rows
    transactions = 0 if is_transaction is None else int(is_transaction.sum())
    index = np.flatnonzero(~is_transaction) if transactions else None
    stamps = parts["ts_ms"] if index is None else parts["ts_ms"][index]
    if stamps.size > 1 and (stamps[1:] < stamps[:-1]).any():  # JMeter writes rows as samples end
        order = np.argsort(stamps, kind="stable")
        stamps = stamps[order]
        index = order if index is None else index[order]

    def pick(values: np.ndarray) -> np.ndarray:
        return values if index is None else values[index]

    ts = pd.DatetimeIndex((stamps * 1_000_000).view("M8[ns]"), dtype=UTC_NS)
    endpoint = pd.Categorical.from_codes(pick(parts["label_of"]), categories=pd.Index(parts["labels"]))
    if transactions:
        endpoint = endpoint.remove_unused_categories()
    status = ok = error = None
    if "status" in parts:
        status = pd.arrays.IntegerArray(pick(parts["status"][0]), pick(parts["status"][1]))
    if "ok" in parts:
        ok = pd.arrays.BooleanArray(pick(parts["ok"]), np.zeros(len(stamps), dtype=bool))
    if "error" in parts:
        error = parts["error"] if index is None else parts["error"].take(pa.array(index))
        error = pd.array(error, dtype=TEXT_DTYPE)
    samples = samples_frame(ts=ts, endpoint=endpoint, method=None, latency_ms=pick(parts["elapsed"]),
                            status=status, ok=ok, error=error, tool=TOOL, source=str(path))
    notes = [NOTE_CLOSED]
    if transactions:
        notes.insert(0, NOTE_TRANSACTIONS.format(n=transactions))
    return LoadTestRun(
        samples=samples, summary=summarize(samples), tool=TOOL, format="jmeter-csv", source=str(path),
        percentiles_from="samples", notes=notes, closed_loop=True, skipped_lines=0,
        tool_figures={"rows": len(stamps) + transactions, "transaction_rows": transactions},
    )


def duck_source(path: Path, names: list[str], delimiter: str, has_header: bool) -> str:
    """DuckDB's ``read_csv`` of a JTL: every column text, quoted fields may span lines.

    ``strict_mode`` makes a row with too few or too many fields an error (the pandas reader
    then names its line).
    """
    columns = "{" + ", ".join(f"{duck.literal(name)}: 'VARCHAR'" for name in names) + "}"
    return (
        f"read_csv({duck.literal(path)}, columns = {columns}, header = {str(has_header).lower()}, "
        f"delim = {duck.literal(delimiter)}, quote = '\"', escape = '\"', auto_detect = false, "
        f"strict_mode = true, null_padding = false, compression = {duck.literal(duck.compression(path))})"
    )


def _duck_rows_sql(source: str, names: list[str]) -> str:
    """The few columns of a JTL the summary needs, by ``_run``'s rules (text columns read raw)."""

    def text(name: str) -> str:
        return f"coalesce(\"{name}\", '')" if name in names else "''"

    failed = f"lower({text('success')}) <> 'true'" if "success" in names else "NULL::BOOLEAN"
    return (
        f"SELECT coalesce(\"label\", '') AS endpoint, TRY_CAST(\"elapsed\" AS DOUBLE) AS latency_ms, "
        f"{failed} AS failed, TRY_CAST(\"timeStamp\" AS BIGINT) AS ts_ms, "
        f"starts_with({text('responseMessage')}, {duck.literal(TRANSACTION_MARK)}) AS is_transaction "
        f"FROM {source}"
    )


_DUCK_SAMPLES = (
    "SELECT endpoint, latency_ms, failed, ts_ms * 1000000 AS start_ns, "
    "ts_ms * 1000000 + CAST(round(coalesce(latency_ms, 0) * 1e6) AS BIGINT) AS end_ns "
    "FROM jtl_rows WHERE NOT is_transaction"
)


def summarize_csv(path, *, columns: list[str] | None = None, memory_limit: str | None = None) -> LoadTestRun:
    """Summarize a JMeter CSV JTL out of core: the summary without loading the samples.

    DuckDB streams the file into a narrow table (label, latency, outcome, time: spilled to
    disk beyond its memory limit) and aggregates per label: exact counts and exact percentiles,
    the same figures as ``read_csv(path).summary``; ``run.samples`` is empty. Falls back to
    ``read_csv`` (then drops the samples) for what DuckDB cannot do here: formatted
    timestamps, a malformed row (named by the pandas reader), DuckDB missing.
    """
    path = Path(path)
    head = head_bytes(path)
    rows = totals = None
    if head.strip() and b"\n" in head:
        with guard(path, "JMeter JTL (CSV)"):
            delimiter, has_header, names = _layout(head, columns, path)
        if len(set(names)) == len(names):
            with duck.connect(spill=True, memory_limit=memory_limit) as con:
                if con is not None:
                    source = duck_source(path, names, delimiter, has_header)
                    try:
                        # one pass over the file into a narrow table (DuckDB spills it to disk
                        # beyond its memory limit), then the summary and the controller rows
                        con.execute(f"CREATE TEMP TABLE jtl_rows AS {_duck_rows_sql(source, names)}")
                        rows, totals = duck.summary_rows(con, _DUCK_SAMPLES)
                        transactions = con.execute(
                            "SELECT count(*) FROM jtl_rows WHERE is_transaction").fetchone()[0]
                    except duck.errors() as err:
                        if duck.out_of_memory(err):
                            raise BadInputError(
                                f"out of memory summarizing out of core ({str(err).splitlines()[0][:120]}): "
                                "pass a lower memory_limit", path=path) from None
                        rows = None
    if rows is None or totals.get("unstamped") or totals.get("untimed") or not totals.get("requests"):
        run = read_csv(path, columns=columns)
        return drop_samples(run, "DuckDB could not summarize the file: it was read in memory")
    duration_s = (totals["end_ns"] - totals["start_ns"]) / 1e9
    for row in rows:
        row["rps"] = row["requests"] / duration_s if duration_s > 0 else float("nan")
    notes = [NOTE_CLOSED, NOTE_OUT_OF_CORE]
    if transactions:
        notes.insert(0, NOTE_TRANSACTIONS.format(n=transactions))
    return aggregate_run(
        summary_frame(rows), tool=TOOL, format="jmeter-csv", source=path, percentiles_from="samples",
        notes=notes, closed_loop=True,
        tool_figures={"rows": totals["requests"] + transactions, "transaction_rows": transactions},
    )


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


def sniff_xml(head: Head) -> bool:
    """An XML document (or a bare ``<testResults``) with a ``<testResults`` element."""
    return head.first.startswith((b"<?xml", b"<testResults")) and b"<testResults" in head.raw


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
