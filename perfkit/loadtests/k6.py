"""k6 outputs: ``--out json`` NDJSON, ``--out csv``, ``--summary-export`` and handleSummary() JSON.

The NDJSON reader scans the file with DuckDB (multi-threaded, only the fields it needs, the
``http_req_duration`` points kept inside the scan); when DuckDB is missing or rejects a line it
falls back to filtering lines for ``http_req_duration`` bytes and parsing them with pyarrow,
which names the bad line. ``summarize_json`` summarizes a file out of core.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from perfkit.errors import BadInputError
from perfkit.fileio import MAX_LINE_BYTES, LineTooLong
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests import duck
from perfkit.loadtests.frames import ALL, minus_ms, samples_frame, summarize, summary_frame
from perfkit.loadtests.run import (
    NOTE_OUT_OF_CORE,
    LoadTestRun,
    aggregate_run,
    check_csv,
    drop_samples,
    guard,
    head_bytes,
    http_ok,
    json_object,
    read_text,
)

FORMATS = (
    Format("k6-json", tool="k6", gives="samples",
           description="k6 --out json (NDJSON Metric/Point lines)",
           read="read_json", summarize="summarize_json", options=("skip_bad_lines",),
           sniff=((10, "sniff_json_line"), (70, "sniff_json_points")),
           fixtures=("k6_points.ndjson",)),
    Format("k6-csv", tool="k6", gives="samples", description="k6 --out csv",
           read="read_csv", options=("skip_bad_lines",), sniff=((100, "sniff_csv"),),
           fixtures=("k6_results.csv", "k6_results_ms.csv")),
    Format("k6-summary", tool="k6", gives="aggregates",
           description="k6 --summary-export or handleSummary() JSON",
           read="read_summary", sniff=((60, "sniff_summary"),),
           fixtures=("k6_summary_export.json", "k6_handle_summary.json")),
)

TOOL = "k6"
DURATION_METRIC = "http_req_duration"
_NEEDLE = b'"http_req_duration"'
_BLOCK = 64 << 20  # bytes per block: the file is read in blocks, never whole
_TAGS = ["name", "url", "method", "status", "expected_response", "error", "error_code", "group"]
_SCHEMA = pa.schema(
    [
        ("type", pa.string()),
        ("metric", pa.string()),
        (
            "data",
            pa.struct(
                [
                    ("time", pa.timestamp("ns", tz="UTC")),  # Arrow parses the offsets
                    ("value", pa.float64()),
                    ("tags", pa.struct([(tag, pa.string()) for tag in _TAGS])),
                ]
            ),
        ),
    ]
)
NOTE_END_STAMP = "k6 stamps a sample when the request ends: perfkit sets ts to end minus duration"
NOTE_EXECUTOR = (
    "k6's default executors are closed-loop (a VU waits for each answer): latencies understate "
    "waits under overload (coordinated omission) unless an arrival-rate executor was used"
)


NOTE_UNKNOWN_OUTCOME = (
    "request(s) carry neither a status nor an expected_response tag (k6 systemTags without them): "
    "their outcome is unknown, so failures and the error rate are not counted"
)


def _blocks(path: Path):
    """Yield (first line number, bytes ending at a line break) blocks of the (gzipped) file."""
    opener = open
    if path.suffix == ".gz":
        import gzip

        opener = gzip.open
    try:
        handle = opener(path, "rb")
    except OSError as err:
        raise BadInputError(f"cannot read: {err}", path=path) from None
    with handle:
        line_no = 1
        tail = b""
        while True:
            try:
                chunk = handle.read(_BLOCK)
            except (OSError, EOFError, zlib.error) as err:
                raise BadInputError(f"cannot read: {err}", path=path) from None
            if not chunk:
                break
            chunk = tail + chunk
            cut = chunk.rfind(b"\n")
            if cut < 0:
                if len(chunk) > MAX_LINE_BYTES:  # one endless line (a bomb): never held whole
                    raise LineTooLong(path, line_no, MAX_LINE_BYTES)
                tail = chunk
                continue
            block, tail = chunk[: cut + 1], chunk[cut + 1 :]
            yield line_no, block
            line_no += block.count(b"\n")
        if tail:
            yield line_no, tail


def _parse_block_slow(block: bytes, first_line: int, path, skip_bad_lines: bool):
    """Line-by-line parse of one block: exact line numbers for errors, or skip them."""
    rows, skipped = [], 0
    for offset, line in enumerate(block.split(b"\n")):
        if _NEEDLE not in line:
            stripped = line.strip()
            if stripped and not (stripped.startswith(b"{") and stripped.endswith(b"}")):
                if skip_bad_lines:
                    skipped += 1
                    continue
                raise BadInputError("truncated or invalid k6 JSON line", path=path, line=first_line + offset)
            continue
        try:
            item = json.loads(line)
            if item.get("type") != "Point" or item.get("metric") != DURATION_METRIC:
                continue
            data = item["data"]
            tags = data.get("tags") or {}
            rows.append(
                {
                    "time": str(data["time"]),
                    "value": float(data["value"]),
                    **{tag: (None if tags.get(tag) is None else str(tags.get(tag))) for tag in _TAGS},
                }
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            if skip_bad_lines:
                skipped += 1
                continue
            raise BadInputError(
                f"truncated or invalid k6 JSON line ({type(err).__name__})",
                path=path,
                line=first_line + offset,
            ) from None
    return pd.DataFrame(rows, columns=["time", "value", *_TAGS]), skipped


def _complete(block: bytes) -> bool:
    """Whether every line of the block ends like a JSON object (cheap: byte counts)."""
    if not block.endswith(b"\n"):
        return block.rstrip().endswith(b"}") and _complete(block.rstrip() + b"\n")
    blank = block.count(b"\n\n") + (1 if block.startswith(b"\n") else 0)
    return block.count(b"}\n") + block.count(b"}\r\n") + blank == block.count(b"\n")


def _parse_block_fast(block: bytes) -> pd.DataFrame | None:
    """Filter the block's lines for the duration metric, then parse them with pyarrow.

    Returns None (the caller falls back to the line-by-line path, which names the bad line)
    when a line is cut short or pyarrow rejects the filtered lines.
    """
    if not _complete(block):
        return None
    if block.count(_NEEDLE) >= block.count(b"\n"):
        wanted = block  # every line names the metric: nothing to filter out
    else:
        lines = [line for line in block.split(b"\n") if _NEEDLE in line]
        if not lines:
            return pd.DataFrame(columns=["time", "value", *_TAGS])
        wanted = b"\n".join(lines)
    try:
        table = pa_json.read_json(
            io.BytesIO(wanted),
            read_options=pa_json.ReadOptions(block_size=16 << 20),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a bad line somewhere: the slow path finds it
    keep = np.asarray(
        (table.column("type").to_numpy(zero_copy_only=False) == "Point")
        & (table.column("metric").to_numpy(zero_copy_only=False) == DURATION_METRIC)
    )
    data = table.column("data").combine_chunks().filter(pa.array(keep))
    tags = data.field("tags")
    columns = {"time": data.field("time"), "value": data.field("value")}
    for tag in _TAGS:
        columns[tag] = tags.field(tag).dictionary_encode()  # few distinct values: categoricals
    frame = pa.table(columns).to_pandas()
    if frame["time"].isna().any() or frame["value"].isna().any():
        return None
    return frame


def sniff_json_line(head: Head) -> bool:
    """A k6 NDJSON line first: ``{"type": "Metric"|"Point", "metric": ...}``."""
    line = head.json_line if head.is_json else None
    return isinstance(line, dict) and line.get("type") in ("Metric", "Point") and "metric" in line


def sniff_json_points(head: Head) -> bool:
    """Point lines further on (the first line cut or odd), once no other JSON format claimed it."""
    return head.is_json and (b'"type":"Point"' in head.raw or b'"type": "Point"' in head.raw)


def read_json(path, *, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read k6 ``--out json`` NDJSON (optionally .gz): one sample per ``http_req_duration`` point.

    Parameters
    ----------
    path:
        The NDJSON file.
    skip_bad_lines:
        Keep the good rows around truncated or invalid lines and count the skipped ones in
        ``run.skipped_lines``, instead of raising BadInputError naming the line.

    Returns
    -------
    LoadTestRun
        Samples from every ``http_req_duration`` point (endpoint = the ``name`` tag, which k6
        sets to the URL unless the script names the request); percentiles from samples.
    """
    path = Path(path)
    read_bytes_head = head_bytes(path, 4096)
    if not read_bytes_head.strip():
        raise BadInputError("empty file: no load-test results in it", path=path)
    parts, skipped = [], 0
    with guard(path, "k6 JSON"):
        points = None if skip_bad_lines else _points_duckdb(path)
        if points is not None:
            if points.empty:
                raise BadInputError(
                    f"no {DURATION_METRIC} points: not a k6 JSON output with HTTP requests", path=path)
            return _run_from_points(points, path, "k6-json", 0)
        for first_line, block in _blocks(path):
            frame = None if skip_bad_lines else _parse_block_fast(block)
            if frame is None:
                frame, bad = _parse_block_slow(block, first_line, path, skip_bad_lines)
                skipped += bad
            parts.append(frame)
        points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if points.empty:
            raise BadInputError(f"no {DURATION_METRIC} points: not a k6 JSON output with HTTP requests", path=path)
        return _run_from_points(points, path, "k6-json", skipped)


_DUCK_TAGS = [tag for tag in _TAGS if tag != "group"]  # the tags the DuckDB paths read
_DATA_STRUCT = (
    "STRUCT(time VARCHAR, value DOUBLE, tags STRUCT("
    + ", ".join(f'"{tag}" VARCHAR' for tag in _DUCK_TAGS)
    + "))"
)
# The tags perfkit uses; ``url`` and ``error_code`` only matter where ``name`` and ``error`` are
# missing, so only those rows carry them (fewer strings to build); ``group`` is not used.
_DUCK_FIELDS = (
    "data.time AS time, data.value AS value, data.tags.name AS name, "
    "CASE WHEN data.tags.name IS NULL THEN data.tags.url END AS url, "
    "data.tags.method AS method, TRY_CAST(data.tags.status AS DOUBLE) AS status, "
    "data.tags.expected_response = 'true' AS expected_response, data.tags.error AS error, "
    "CASE WHEN data.tags.error IS NULL THEN data.tags.error_code END AS error_code"
)

_DUCK_WHERE = "metric = 'http_req_duration' AND type = 'Point'"
_DUCK_POINTS = "SELECT " + _DUCK_FIELDS + " FROM {source} WHERE " + _DUCK_WHERE
_SAMPLE = 1 << 20  # bytes read to decide whether filtering lines first pays
_FILTER_BLOCK = 16 << 20  # bytes per block of the line filter
_CHUNK_ROWS = 32768  # lines per Arrow chunk handed to DuckDB (its unit of parallel work)


def duck_source(path: Path) -> str:
    """The DuckDB table function scanning a k6 NDJSON file for the fields perfkit needs."""
    columns = "{type: 'VARCHAR', metric: 'VARCHAR', data: " + duck.literal(_DATA_STRUCT) + "}"
    return (
        f"read_json({duck.literal(path)}, format = 'newline_delimited', columns = {columns}, "
        f"compression = {duck.literal(duck.compression(path))})"
    )


def _mostly_points(path: Path) -> bool:
    """Whether most lines of the file's first megabyte name the duration metric."""
    head = head_bytes(path, _SAMPLE)
    lines = head.count(b"\n") or 1
    return head.count(_NEEDLE) * 2 >= lines


def _buffers(path: Path):
    """Yield (buffer, end): ``buffer[:end]`` is a run of whole lines of the (gzipped) file.

    One buffer is reused (read into, never re-allocated per block), so memory stays at one
    block whatever the file size.
    """
    opener = open
    if path.suffix == ".gz":
        import gzip

        opener = gzip.open
    buf = bytearray(_FILTER_BLOCK)
    filled = 0
    with opener(path, "rb") as handle:
        while True:
            view = memoryview(buf)
            try:
                count = handle.readinto(view[filled:])
            finally:
                view.release()
            end = filled + count
            if count == 0:
                if end:
                    yield buf, end
                return
            cut = buf.rfind(b"\n", 0, end)
            if cut < 0:  # a line longer than the buffer: grow it
                if end > MAX_LINE_BYTES:  # one endless line (a bomb): never held whole
                    raise LineTooLong(path, None, MAX_LINE_BYTES)
                if end == len(buf):
                    buf.extend(bytes(len(buf)))
                filled = end
                continue
            yield buf, cut + 1
            tail = end - cut - 1
            buf[:tail] = buf[cut + 1 : end]
            filled = tail


def _whole_lines(buf: bytearray, end: int) -> bool:
    """Whether every line of ``buf[:end]`` ends like a JSON object (or is empty)."""
    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    try:
        breaks = np.flatnonzero(data == 10)
        if end and data[end - 1] != 10:  # the file's last line, without a line break
            breaks = np.append(breaks, end)
            last = bytes(buf[int(breaks[-2]) + 1 if len(breaks) > 1 else 0 : end]).rstrip()
            if last and not last.endswith(b"}"):
                return False
            breaks = breaks[:-1]
        if not breaks.size:
            return True
        before = np.where(breaks > 0, data[np.maximum(breaks - 1, 0)], 10)
        carriage = before == 13  # CRLF: look one byte further back
        if carriage.any():
            back = breaks[carriage]
            before[carriage] = np.where(back > 1, data[np.maximum(back - 2, 0)], 10)
        return bool(np.all((before == ord("}")) | (before == 10)))
    finally:
        del data


def _duration_line_blocks(path: Path):
    """Per block of the file, the lines naming ``http_req_duration`` (bytes, whole lines);
    None for a block with a line cut short (the caller then falls back)."""
    for buf, end in _buffers(path):
        if not _whole_lines(buf, end):
            yield None
            return
        parts = []
        find, rfind, pos = buf.find, buf.rfind, 0
        while True:
            hit = find(_NEEDLE, pos, end)
            if hit < 0:
                break
            start = rfind(b"\n", 0, hit) + 1
            stop = find(b"\n", hit, end)
            stop = end if stop < 0 else stop + 1
            parts.append(buf[start:stop])
            pos = stop
        if parts:
            if not parts[-1].endswith(b"\n"):
                parts.append(b"\n")
            yield b"".join(parts)


_BLOCKS_PER_BATCH = 4  # blocks of the byte filter per DuckDB scan (64 MB of the file)


def _points_filtered(con, path: Path) -> pa.Table | None:
    """The duration points of a mixed file: filter bytes here while DuckDB parses in parallel.

    This thread searches each block for the lines naming ``http_req_duration`` (Python, holding
    the GIL) and writes them to a scratch file; a worker thread has DuckDB parse the previous
    batch (``read_json``, which runs without the GIL): the two overlap on two cores. None when
    a line is cut short.
    """
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    scratch_root = "/dev/shm" if Path("/dev/shm").is_dir() else None

    def parse(batch: Path) -> pa.Table:
        cursor = con.cursor()
        try:
            source = duck_source(batch)
            return duck.arrow(cursor.sql(_DUCK_POINTS.format(source=source)))
        finally:
            cursor.close()
            batch.unlink(missing_ok=True)

    futures, pending = [], []
    with tempfile.TemporaryDirectory(prefix="perfkit-k6-", dir=scratch_root) as scratch, \
            ThreadPoolExecutor(max_workers=1) as pool:
        try:

            def submit() -> None:
                batch = Path(scratch) / f"lines-{len(futures)}.json"
                with open(batch, "wb") as out:
                    out.writelines(pending)
                pending.clear()
                futures.append(pool.submit(parse, batch))

            for blocks, lines in enumerate(_duration_line_blocks(path), start=1):
                if lines is None:
                    return None
                pending.append(lines)
                if blocks % _BLOCKS_PER_BATCH == 0:
                    submit()
            if pending:
                submit()
            if not futures:
                return pa.table({"time": pa.array([], pa.string())})  # no duration lines at all
            tables = [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _json_structure() -> str:
    tags = ", ".join(f'"{tag}": "VARCHAR"' for tag in _DUCK_TAGS)
    return (
        '{"type": "VARCHAR", "metric": "VARCHAR", '
        '"data": {"time": "VARCHAR", "value": "DOUBLE", "tags": {' + tags + "}}}"
    )


def _points_duckdb(path: Path) -> pd.DataFrame | None:
    """The ``http_req_duration`` points, read with DuckDB; None to use the fallback reader.

    DuckDB rejects a malformed line (the fallback then names it) and builds only the projected
    fields of the matching points. Times stay text in the scan and are parsed by Arrow, to keep
    k6's nanoseconds (DuckDB's TIMESTAMPTZ has microseconds).
    """
    with duck.connect() as con:
        if con is None:
            return None
        try:
            if _mostly_points(path):  # a file of duration points: DuckDB scans it whole
                table = duck.arrow(con.sql(_DUCK_POINTS.format(source=duck_source(path))))
            else:  # mostly other metrics: filter the lines before parsing them
                table = _points_filtered(con, path)
                if table is None:
                    return None
        except duck.errors():
            return None
        except (OSError, EOFError, zlib.error):
            return None  # unreadable (e.g. a broken gzip stream): the fallback says so
    if table.num_rows == 0:
        return pd.DataFrame(columns=["time", "value", *_DUCK_TAGS])
    try:
        end = table.column("time").cast(pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    value = table.column("value")
    if end.null_count or value.null_count:
        return None  # a point without time or value: the fallback raises naming its line
    # status is a number and expected_response a boolean already (typed in the scan)
    columns = {"time": end, "value": value, "status": table.column("status"),
               "expected_response": table.column("expected_response")}
    for tag in _DUCK_TAGS:
        if tag not in columns:
            columns[tag] = table.column(tag).dictionary_encode()  # few distinct values: categoricals
    del table
    return pa.table(columns).to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)[["time", "value", *_DUCK_TAGS]]


_DUCK_SAMPLES = r"""
    SELECT coalesce(name, url, '(unnamed)') AS endpoint, value AS latency_ms,
           NOT (CASE WHEN expected_response IS NOT NULL THEN expected_response
                ELSE status >= 200 AND status < 400  -- NULL (unknown) without status and expected_response
                END) AS failed,
           end_ns - CAST(round(value * 1e6) AS BIGINT) AS start_ns, end_ns
    FROM (SELECT *, epoch_ns(TRY_CAST(time AS TIMESTAMPTZ))
                    + coalesce(TRY_CAST(rpad(regexp_extract(time, '\.\d{{6}}(\d{{1,3}})', 1), 3, '0') AS BIGINT), 0)
                    AS end_ns
          FROM ({points}))
"""


def summarize_json(path, *, memory_limit: str | None = None) -> LoadTestRun:
    """Summarize k6 NDJSON out of core: the summary without loading the samples.

    DuckDB streams the file (gzipped too) and aggregates per endpoint: exact counts, exact
    percentiles (every latency of an endpoint is kept, 8 bytes each, and DuckDB may spill to a
    temporary directory), the same figures as ``read_json(path).summary``. ``run.samples`` is
    empty. Falls back to ``read_json`` (then drops the samples) when DuckDB is missing or
    rejects the file, so bad lines are still named.

    Parameters
    ----------
    memory_limit:
        DuckDB's memory limit (e.g. ``"500MB"``); see ``duck.connect``.
    """
    path = Path(path)
    if not head_bytes(path, 4096).strip():
        raise BadInputError("empty file: no load-test results in it", path=path)
    with duck.connect(spill=True, memory_limit=memory_limit) as con:
        rows = totals = None
        if con is not None:
            points = _DUCK_POINTS.format(source=duck_source(path))
            try:
                rows, totals = duck.summary_rows(con, _DUCK_SAMPLES.format(points=points))
            except duck.errors() as err:
                if duck.out_of_memory(err):
                    raise BadInputError(f"out of memory summarizing out of core ({str(err).splitlines()[0][:120]}): "
                                        "pass a lower memory_limit", path=path) from None
                rows = None
    if rows is None or totals.get("unstamped") or totals.get("untimed"):
        return drop_samples(read_json(path), "DuckDB could not summarize the file: it was read in memory")
    if not totals.get("requests"):
        raise BadInputError(f"no {DURATION_METRIC} points: not a k6 JSON output with HTTP requests", path=path)
    duration_s = (totals["end_ns"] - totals["start_ns"]) / 1e9
    for row in rows:
        row["rps"] = row["requests"] / duration_s if duration_s > 0 else float("nan")
    summary = summary_frame(rows)
    unknown = [NOTE_UNKNOWN_OUTCOME] if summary["failures"].isna().any() else []
    return aggregate_run(
        summary, tool=TOOL, format="k6-json", source=path, percentiles_from="samples",
        notes=[NOTE_END_STAMP, NOTE_EXECUTOR, NOTE_OUT_OF_CORE, *unknown],
    )





def _run_from_points(
    points: pd.DataFrame, path, fmt: str, skipped: int, notes=(), *, whole_seconds: bool = False
) -> LoadTestRun:
    end = points["time"]
    if not isinstance(end.dtype, pd.DatetimeTZDtype):
        end = pd.to_datetime(end, utc=True, format="ISO8601")
    latency = points["value"].astype("float64")
    status = _numbers(points["status"])
    expected = points["expected_response"]
    ok = np.where(
        expected.notna().to_numpy(),
        # text from the pandas reader, already a boolean from DuckDB's
        (expected if pd.api.types.is_bool_dtype(expected.dtype) else expected == "true").fillna(False)
        .to_numpy(dtype=bool),
        http_ok(status),
    )
    # neither a status nor expected_response tag (systemTags without both): the outcome is unknown,
    # not a failure
    unknown = (expected.isna() & status.isna()).to_numpy()
    ok = pd.arrays.BooleanArray(np.asarray(ok, dtype=bool), unknown)
    if unknown.any():
        notes = [*notes, f"{int(unknown.sum()):,} {NOTE_UNKNOWN_OUTCOME}"]
    error = _coalesce(points["error"], points["error_code"])
    endpoint = _coalesce(points["name"], points["url"])
    duration_s = None
    if whole_seconds:  # the stamps are truncated seconds: the run spans first..last second, inclusive
        duration_s = (end.max() - end.min()).total_seconds() + 1.0
    samples = samples_frame(
        ts=end if whole_seconds else minus_ms(end, latency),
        endpoint=endpoint,
        method=points["method"],
        latency_ms=latency,
        status=status,
        ok=ok,
        error=error,
        tool=TOOL,
        source=str(path),
    )
    notes = [*([] if whole_seconds else [NOTE_END_STAMP]), *notes, NOTE_EXECUTOR]
    if skipped:
        notes.append(f"{skipped} bad line(s) skipped")
    return LoadTestRun(
        samples=samples,
        summary=summarize(samples, duration_s=duration_s),
        tool=TOOL,
        format=fmt,
        duration_s=duration_s,
        source=str(path),
        percentiles_from="samples",
        notes=notes,
        closed_loop=None,
        skipped_lines=skipped,
    )


def _coalesce(first: pd.Series, second: pd.Series) -> pd.Series:
    """``first`` where present, else ``second`` (categoricals with different categories too)."""
    missing = first.isna().to_numpy()
    if not missing.any():
        return first
    fill = second.notna().to_numpy() & missing
    if not fill.any():
        return first
    if isinstance(first.dtype, pd.CategoricalDtype) and isinstance(second.dtype, pd.CategoricalDtype):
        # on the codes: no object array of every row
        categories = first.cat.categories.union(second.cat.categories)
        codes = np.where(fill, second.cat.set_categories(categories).cat.codes.to_numpy(),
                         first.cat.set_categories(categories).cat.codes.to_numpy())
        return pd.Series(pd.Categorical.from_codes(codes, categories=categories), index=first.index)
    if isinstance(first.dtype, pd.CategoricalDtype) or isinstance(second.dtype, pd.CategoricalDtype):
        first, second = first.astype(object), second.astype(object)
    return first.where(~missing, second)


def _numbers(column: pd.Series) -> pd.Series:
    """Numbers from a text or categorical column (parsing each distinct value once)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = pd.to_numeric(pd.Series(column.cat.categories.astype(str)), errors="coerce").to_numpy()
        codes = column.cat.codes.to_numpy()
        values = np.where(codes >= 0, categories[np.clip(codes, 0, None)] if categories.size else np.nan, np.nan)
        return pd.Series(values, index=column.index, dtype="float64")
    return pd.to_numeric(column, errors="coerce")


# --- CSV ----------------------------------------------------------------------------------------
CSV_HEADER_START = "metric_name,timestamp,metric_value"


def sniff_csv(head: Head) -> bool:
    """k6's CSV header."""
    return head.first.startswith(CSV_HEADER_START.encode())


def read_csv(path, *, skip_bad_lines: bool = False) -> LoadTestRun:
    """Read k6 ``--out csv`` (optionally .gz): one sample per ``http_req_duration`` row.

    k6's default ``timeFormat`` is ``unix``: whole seconds, so request times (and throughput
    over time) are only known to the second; ``unix_milli``/``_micro``/``_nano`` and
    ``rfc3339``/``rfc3339_nano`` timestamps are recognized by their shape.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "k6 CSV"):
        first = text.split("\n", 1)[0].strip()
        if not first.startswith(CSV_HEADER_START):
            raise BadInputError(f"not a k6 CSV file (its header starts {CSV_HEADER_START!r})", path=path, line=1)
        bad = "skip" if skip_bad_lines else "error"
        checked = check_csv(text, path, "k6 CSV", skip_bad_lines=skip_bad_lines)
        text = checked.text
        skipped = checked.skipped
        try:
            rows = pd.read_csv(
                io.StringIO(text),
                index_col=False,
                dtype=str,
                keep_default_na=False,
                on_bad_lines=bad,
                usecols=lambda c: c in {"metric_name", "timestamp", "metric_value", *_TAGS},
            )
        except pd.errors.ParserError as err:
            match = re.search(r"line (\d+)", str(err))
            raise BadInputError(
                "truncated or malformed k6 CSV row", path=path, line=int(match.group(1)) if match else None
            ) from None
        if skip_bad_lines:
            skipped += max(text.count("\n") - (1 if text.endswith("\n") else 0) - len(rows), 0)
        rows = rows[rows["metric_name"] == DURATION_METRIC]
        for tag in _TAGS:
            if tag not in rows.columns:
                rows[tag] = None
        values = pd.to_numeric(rows["metric_value"], errors="coerce")
        times, unit_note = _csv_times(rows["timestamp"])
        bad_rows = ~np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan)) | times.isna().to_numpy()
        bad_rows = pd.Series(bad_rows, index=values.index)
        if bad_rows.any():
            if not skip_bad_lines:
                where = int(np.flatnonzero(bad_rows.to_numpy())[0])
                raise BadInputError(
                    "k6 CSV row without a finite numeric value or a timestamp",
                    path=path,
                    line=checked.lines[int(rows.index[where])],
                )
            skipped += int(bad_rows.sum())
            rows, values, times = rows[~bad_rows], values[~bad_rows], times[~bad_rows]
        if rows.empty:
            raise BadInputError(f"no {DURATION_METRIC} rows in this k6 CSV", path=path)
        points = pd.DataFrame(
            {
                "time": times.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "value": values,
                **{tag: rows[tag].replace("", None) for tag in _TAGS},
            }
        )
        notes = ([unit_note] if unit_note else []) + [n for n in checked.notes if "skipped" not in n]
        return _run_from_points(points, path, "k6-csv", skipped, notes, whole_seconds=bool(unit_note))


def _csv_times(column: pd.Series) -> tuple[pd.Series, str]:
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all() and len(numbers):
        magnitude = float(numbers.abs().max())
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        note = (
            "k6 CSV timestamps are whole seconds (timeFormat unix, the default): request times "
            "and throughput over time are known to the second only"
            if unit == "s"
            else ""
        )
        return pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce"), note
    return pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601"), ""


# --- summaries ----------------------------------------------------------------------------------
_TREND_KEYS = {"mean_ms": "avg", "p50_ms": "med", "p90_ms": "p(90)", "p95_ms": "p(95)", "p99_ms": "p(99)", "max_ms": "max"}
_SUBMETRIC = re.compile(r"^(?P<metric>[A-Za-z0-9_]+)\{(?P<tags>.*)\}$")


def sniff_summary(head: Head) -> bool:
    """A JSON document with ``"metrics"`` (after Gatling's stats and Artillery's report, which
    may say metrics too)."""
    return head.is_json and b'"metrics"' in head.raw


def read_summary(path) -> LoadTestRun:
    """Read k6 ``--summary-export`` JSON or the data handed to ``handleSummary()``.

    Aggregates only. The legacy ``--summary-export`` writes each threshold as a boolean that is
    **true when the threshold failed**; handleSummary() writes ``{"ok": bool}``. Both become
    ``tool_figures["thresholds"]`` rows with ``ok`` meaning passed. ``http_req_failed`` is a
    rate of failures, so its ``passes`` counts the *failed* requests.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "k6 summary"):
        doc = json_object(text, path, "a k6 summary", "metrics")
        metrics = doc["metrics"]
        handle_summary = any(isinstance(m, dict) and "values" in m for m in metrics.values())
        fmt = "k6-handle-summary" if handle_summary else "k6-summary-export"

        def values(name: str) -> dict:
            metric = metrics.get(name)
            if not isinstance(metric, dict):
                return {}
            inner = metric.get("values", metric) if handle_summary else metric
            return inner if isinstance(inner, dict) else {}

        duration_ms = (doc.get("state") or {}).get("testRunDurationMs")
        duration_s = float(duration_ms) / 1000 if isinstance(duration_ms, int | float) and duration_ms > 0 else None
        reqs = values("http_reqs")
        failed = values("http_req_failed")
        requests = _number(reqs.get("count"))
        failures = _number(failed.get("passes"))
        if np.isnan(failures) and not np.isnan(_number(failed.get("rate", failed.get("value")))):
            failures = round(_number(failed.get("rate", failed.get("value"))) * requests)
        trend = values(DURATION_METRIC)
        if not trend and np.isnan(requests):
            raise BadInputError(f"no http_reqs or {DURATION_METRIC} metric in this k6 summary", path=path)
        rows = [_trend_row(ALL, trend, requests, failures, _number(reqs.get("rate")))]
        for name in metrics:
            match = _SUBMETRIC.match(name)
            if not match or match.group("metric") != DURATION_METRIC:
                continue
            tags = dict(part.split(":", 1) for part in match.group("tags").split(",") if ":" in part)
            label = tags.get("name") or tags.get("url") or match.group("tags")
            sub_reqs = values(f"http_reqs{{{match.group('tags')}}}")
            sub_failed = values(f"http_req_failed{{{match.group('tags')}}}")
            count = _number(sub_reqs.get("count", values(name).get("count")))
            rows.append(
                _trend_row(label, values(name), count, _number(sub_failed.get("passes")),
                           _number(sub_reqs.get("rate")))
            )
        thresholds = []
        for name, metric in metrics.items():
            if not isinstance(metric, dict) or not isinstance(metric.get("thresholds"), dict):
                continue
            for expression, verdict in metric["thresholds"].items():
                if isinstance(verdict, dict):
                    ok = bool(verdict.get("ok"))
                else:
                    ok = not bool(verdict)  # --summary-export: true means the threshold FAILED
                thresholds.append({"metric": name, "threshold": expression, "ok": ok})
        notes = [
            "k6 summaries carry aggregates only: percentiles are k6's own (exact, interpolated)",
            NOTE_EXECUTOR,
        ]
        if any(not t["ok"] for t in thresholds):
            failed_names = ", ".join(f"{t['metric']} {t['threshold']}" for t in thresholds if not t["ok"])
            notes.append(f"k6 thresholds failed: {failed_names}")
        figures = {"requests": requests, "failed_requests": failures, "thresholds": thresholds}
        return aggregate_run(
            summary_frame(rows),
            tool=TOOL,
            format=fmt,
            source=path,
            notes=notes,
            tool_figures=figures,
            duration_s=duration_s,
        )


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _trend_row(endpoint: str, trend: dict, requests: float, failures: float, rate: float) -> dict:
    row = {"endpoint": endpoint, "requests": requests, "failures": failures, "rps": rate}
    for column, key in _TREND_KEYS.items():
        row[column] = _number(trend.get(key))
    return row
