"""The streaming pass over csvlog and jsonlog files with DuckDB doing the reading.

DuckDB parses the file on every core into one row per log entry, in file order, tells the
executions (``duration: N ms  statement|execute <name>: text``, as ``perfkit.logs.stream._Pass.feed``
reads them) from the other entries, and keys each execution's text without its literals (a finer
split than pglast's fingerprint). Python walks the rows in file order (N+1 per request and
auto_explain plans need that order) through the pass's own per-execution code
(``perfkit.logs.columns``, one slot per key, not per text), and every other entry through
``_Pass.feed``: the Scan, and the assessment made of it, are byte for byte the Python pass's.
Arrow batches come from a thread DuckDB fills while the walk goes on (a few ahead at most: the
memory does not grow with the file).

Anything DuckDB would not read as ``perfkit.logs.formats`` does (a blank line, a NUL byte, a
carriage return, a line that is not JSON or not a csvlog record, a record of another width, a
jsonlog line without a message) makes :func:`scan_file` return None: the caller reads that file
with the Python pass, which names the bad line. Two leniencies are DuckDB's own: a csvlog record
with one more, empty, field at its end (``,`` or ``,""``) is read with that field dropped, and a
jsonlog value of another JSON type than PostgreSQL writes (a number or an object where it writes a
string) is read as its JSON text; the Python reader makes both a bad record.
"""

from __future__ import annotations

import concurrent.futures
import os
import tempfile

from perfkit.logs import stream
from perfkit.logs.formats import CSV_COLUMNS, CSV_WIDTHS, JSON_KEYS

# the entry fields the pass and perfkit.logs.events read (every other one is left out)
FIELDS = ("ts", "user", "database", "pid", "client", "session_id", "level", "sqlstate", "message", "detail",
          "query", "application")
_JSON_NAME = {field: key for key, field in JSON_KEYS.items()}
MIN_BYTES = 1 << 20  # smaller files: the Python pass (DuckDB's start is not worth it)
_BATCH = 65_536


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_relation(path: str) -> str:
    """One row per jsonlog line, in file order: the fields the pass reads."""
    names = [_JSON_NAME[field] for field in FIELDS]
    columns = ", ".join(f"{_literal(n)}: '{'BIGINT' if n == 'pid' else 'VARCHAR'}'" for n in names)
    fields = ", ".join(f'"{_JSON_NAME[f]}" AS "{f}"' for f in FIELDS)
    return (f"SELECT {fields}, 0 AS nl "
            f"FROM read_json({_literal(path)}, format = 'newline_delimited', columns = {{{columns}}})")


def _csv_relation(path: str, width: int) -> str:
    """One row per csvlog record, in file order; ``nl``: the line breaks inside its quoted fields."""
    names = CSV_COLUMNS[:width]
    columns = ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in names)
    fields = ", ".join(f"coalesce(\"{f}\", '') AS \"{f}\"" for f in FIELDS)
    breaks = " + ".join(f"coalesce(length(\"{n}\") - length(replace(\"{n}\", chr(10), '')), 0)" for n in names)
    return (f"SELECT {fields}, {breaks} AS nl "
            f"FROM read_csv({_literal(path)}, columns = {{{columns}}}, header = false, delim = ',', "
            "quote = '\"', escape = '\"', auto_detect = false, strict_mode = true, null_padding = false)")


# What _Pass.feed reads as an execution without statement_of: "duration: N ms  statement: text" or
# "duration: N ms  execute <name>: text" (N: digits with at most one point; " ms  " its first
# occurrence); a parse/bind duration ('p') is only counted. Positions as Python's (characters).
# Where this cannot tell as Python would (" ms  " right after "duration:", a name of 256 characters
# or more), the entry is an 'o', which _Pass.feed reads itself.
_CLASSIFIED = r"""
WITH src AS ({relation}),
c AS (SELECT *, CASE WHEN starts_with(message, 'duration: ') THEN instr(message, ' ms  ') ELSE 0 END AS k FROM src),
x AS (SELECT *, CASE WHEN k > 10 THEN substr(message, 11, k - 11) END AS num,
             CASE WHEN k > 10 THEN substr(message, k + 5, 11) END AS phase FROM c),
y AS (SELECT *, k > 10 AND regexp_full_match(num, '[0-9]+\.?[0-9]*|\.[0-9]+') AS okn FROM x),
z AS (SELECT *, okn AND phase = 'statement: ' AS st,
             CASE WHEN okn AND starts_with(phase, 'execute ') THEN instr(substr(message, k + 13, 256), ': ')
                  ELSE 0 END AS j,
             k > 10 AND (starts_with(phase, 'parse ') OR starts_with(phase, 'bind ')) AS pb
      FROM y),
w AS (SELECT *, CASE WHEN st THEN substr(message, k + 16) WHEN j > 0 THEN substr(message, k + 14 + j) END AS t FROM z)
SELECT nl, ts, "user", database, pid, client, session_id, application, level, sqlstate, message, detail, query,
       CASE WHEN t IS NOT NULL THEN 'e' WHEN pb THEN 'p' ELSE 'o' END AS kind,
       CASE WHEN t IS NOT NULL THEN CAST(num AS DOUBLE) END AS d, t
FROM w
"""

# the text without its literals: a finer split than pglast's fingerprint (as stream.Shapes' key):
# strings and numbers become ?, comments a space; a text with a dollar quote, a backslash or a
# quoted identifier, or with both a comment and a quote, is its own key
_NUMBERS = r"regexp_replace({0}, '([^\pL\pN_$.])[0-9]+(?:\.[0-9]+)?([^\pL\pN_.]|$)', '\1?\2', 'g')"
_DKEY = ("CASE WHEN t = '' THEN '' "
         r"""WHEN (contains(t, '$') OR contains(t, '\') OR contains(t, '"')) """
         r"AND regexp_matches(t, '\$[\pL\pN_]*\$|\\|\"') THEN t "
         "WHEN contains(t, '/*') OR contains(t, '--') THEN CASE WHEN contains(t, '''') THEN t ELSE "
         + _NUMBERS.format(r"regexp_replace(t, '/\*.*?\*/|--[^\n]*', ' ', 'gs')") + " END "
         "WHEN contains(t, '''') THEN " + _NUMBERS.format("regexp_replace(t, '''[^'']*''', '?', 'g')") + " "
         "ELSE " + _NUMBERS.format("t") + " END")

_KEYED = """
SELECT nl, kind, CASE WHEN kind = 'e' THEN hash({dkey}) END AS g,
       kind = 'e' AND (contains(t, '$') OR contains(t, '/*')) AS marked, d, t,
       {kept},
       CASE WHEN kind = 'o' OR contains(t, '$') OR contains(t, '/*') THEN detail END AS detail,
       {others}
FROM ({classified})
"""
# a parse/bind duration is only counted: its fields are left out (less to hand over), and so are the
# fields an execution does not need
_KEYED = _KEYED.replace("{kept}", ", ".join(
    f"CASE WHEN kind <> 'p' THEN \"{name}\" END AS \"{name}\""
    for name in ("ts", "session_id", "pid", "application", "user", "database", "client")))
_KEYED = _KEYED.replace("{others}", ", ".join(
    f"CASE WHEN kind = 'o' THEN {name} END AS {name}" for name in ("level", "sqlstate", "message", "query")))
# what the walk reads of an execution, and of another entry
_EXECUTION = ("g", "marked", "d", "t", "ts", "session_id", "pid", "application", "user", "database", "client", "detail")
_ENTRY = ("ts", "session_id", "pid", "application", "user", "database", "client", "detail", "level", "sqlstate",
          "message", "query")


def _connect(jobs: int):
    import duckdb

    folder = os.path.join(tempfile.gettempdir(), f"perfkit-duckdb-{os.getpid()}")
    # one core is the walk's (a Python thread): DuckDB gets the others
    config = {"threads": max(1, jobs - 1), "preserve_insertion_order": True, "memory_limit": "512MB",
              "temp_directory": folder}
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")
    return con


def _lines_of(path: str) -> tuple[int, bool]:
    """The lines of ``path`` (as sources.numbered_lines counts them) and whether it holds a NUL or a
    CR. Counted by numpy, which lets go of the GIL: it runs in a thread beside the walk."""
    import numpy as np

    count, odd, last = 0, False, 10
    block = np.empty(8 << 20, dtype=np.uint8)
    with open(path, "rb", buffering=0) as raw:
        while True:
            size = raw.readinto(memoryview(block))
            if not size:
                break
            view = block[:size]
            count += int(np.count_nonzero(view == 10))
            if not odd and (np.count_nonzero(view == 0) or np.count_nonzero(view == 13)):
                odd = True
            last = int(view[-1])
    return count + (last != 10), odd


# _lines_of runs here, beside the walk
_COUNTER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="perfkit-lines")


def eligible(unit: stream.Unit, any_size: bool = False) -> bool:
    """Whether DuckDB may read ``unit``: a whole plain csvlog/jsonlog file (of MIN_BYTES or more
    unless ``any_size``)."""
    from perfkit.logs.sources import compression

    return (unit.kind in ("jsonlog", "csvlog") and not unit.start and unit.end is None
            and unit.path != "-" and os.path.isfile(unit.path) and compression(unit.path) is None
            and (any_size or os.path.getsize(unit.path) >= MIN_BYTES))


def _csv_width(path: str) -> int | None:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        try:
            first = next(csv.reader(handle, strict=True))
        except (csv.Error, StopIteration):
            return None
    return len(first) if len(first) in CSV_WIDTHS else None


def scan_file(unit: stream.Unit, settings: stream.Settings, jobs: int, later: list | None = None,
              size: int | None = None) -> stream.Scan | None:
    """The Scan of a whole plain jsonlog/csvlog file, or None when the Python pass must read it;
    ``later``: the caller's work to do while DuckDB starts reading (stream.scan's ``meanwhile``);
    ``size``: the end to read to (an incremental run's): None when the file grew past it meanwhile
    (DuckDB reads to the end of the file, the lines after ``size`` are the next run's)."""
    import duckdb

    if unit.kind == "jsonlog":
        relation = _json_relation(unit.path)
    else:
        width = _csv_width(unit.path)
        if width is None:
            return None
        relation = _csv_relation(unit.path, width)
    con = _connect(jobs)
    batches = None
    try:
        try:
            # the lines are counted and DuckDB reads while the caller loads what it needs next
            counting = _COUNTER.submit(_lines_of, unit.path)
            batches = _Batches(con, _KEYED.format(dkey=_DKEY, classified=_CLASSIFIED.format(relation=relation)))
            stream._run_later(later or [])
            scanned, records, breaks = _walk(batches, unit, settings)
            lines, odd = counting.result()
            if odd:
                return None
        except (duckdb.Error, ReadFailed):
            return None
    finally:
        if batches is not None:
            batches.close()
        con.close()
    # DuckDB read every line into one record (no blank line left out, no record it would read otherwise)
    if scanned is None or records + breaks != lines:
        return None
    if size is not None and os.path.getsize(unit.path) != size:
        return None  # written to while DuckDB read it: the Python pass reads up to ``size``
    report = scanned.report
    report.files = [unit.path]
    report.formats[unit.path] = unit.kind
    if unit.prefix is not None:
        report.prefixes[unit.path] = unit.prefix
    report.entries = records
    return scanned


def _walk(batches, unit: stream.Unit, settings: stream.Settings) -> tuple:
    """The entries of ``batches`` (of _KEYED) in file order through a _Pass: executions already told
    and keyed (one slot per key, not per text), the other entries through ``_Pass.feed``. Returns
    ``(Scan or None, records, line breaks inside them)``: None for an entry the Python reader would
    read otherwise."""
    import bisect

    import numpy as np
    import pyarrow.compute as pc

    from perfkit.logs import columns

    one = stream._Pass(unit, settings)
    feed, make_slot, slots = one.feed, one._slot, one.slots
    by_key: dict = {}  # hash of a key -> the slot of its first text
    csv_kind = unit.kind == "csvlog"

    def executions(chosen, numbers: list) -> None:
        """The executions of ``chosen`` (rows of _KEYED, in file order), counted as columns."""
        g = chosen.column("g").to_numpy()
        keys, first, inverse = np.unique(g, return_index=True, return_inverse=True)
        texts = chosen.column("t").to_pylist()
        sids, shapes = [0] * len(keys), [None] * len(keys)
        # in the order of their first row: a shape's first text is its example, as in the Python pass
        for index in np.argsort(first, kind="stable").tolist():
            key = int(keys[index])
            slot = by_key.get(key)
            if slot is None:
                if len(by_key) >= stream._EXACT_MAX:
                    by_key.clear()  # bounded, as the pass's own caches (a slot is made again as it was)
                slot = by_key[key] = make_slot(texts[int(first[index])])
            sids[index], shapes[index] = slot[6], slot[1]
        free = np.ones(len(texts), dtype=bool)
        marked = chosen.column("marked")
        if marked.true_count:
            for row in np.flatnonzero(marked.to_numpy(zero_copy_only=False)).tolist():
                text = texts[row]
                free[row] = (slots.get(text) or make_slot(text))[5]
        inverse = inverse.reshape(-1)
        columns.run(one, columns.Run(len(texts), np.asarray(sids, dtype=np.int64)[inverse], free,
                                     chosen.column("d").to_numpy(zero_copy_only=False), chosen.column("ts"), chosen.column("pid"),
                                     chosen.column("session_id"), chosen.column("application"), chosen.column("database"),
                                     chosen.column("user"), chosen.column("client"), numbers, texts, chosen.column("detail"),
                                     shapes, inverse))

    breaks = records = 0
    for batch in batches:
        # the parse/bind durations are only counted; a record's first line: the records and the line
        # breaks inside them before it, plus one
        inside = batch.column("nl")
        broken = pc.sum(inside).as_py() or 0
        base = 1 + records + breaks
        # the line breaks before each row, plus one
        offsets = pc.add(pc.subtract(pc.cumulative_sum(inside), inside), base) if broken else None
        records += batch.num_rows
        breaks += broken
        kinds = batch.column("kind")
        wanted = pc.equal(kinds, "e")
        where = pc.indices_nonzero(wanted)
        run_lines = pc.add(where, pc.take(offsets, where) if broken else base).to_pylist()
        timed = batch.select(_EXECUTION).take(where)
        wanted = pc.equal(kinds, "o")
        where = pc.indices_nonzero(wanted)
        others = [pc.add(where, pc.take(offsets, where) if broken else base).to_pylist(),
                  *(batch.select(_ENTRY).take(where).column(name).to_pylist() for name in _ENTRY)]
        if not others[0]:
            if run_lines:
                executions(timed, run_lines)
            continue
        start = 0
        for line, *fields in zip(*others, strict=True):
            if fields[10] is None and not csv_kind:
                return None, records, breaks  # a jsonlog line without a message: a bad record in Python
            stop = bisect.bisect_left(run_lines, line, start)
            if stop > start:
                executions(timed.slice(start, stop - start), run_lines[start:stop])
            start = stop
            entry = {"line": line}
            for name, value in zip(_ENTRY, fields, strict=True):
                if value is not None:
                    entry[name] = value
                elif csv_kind:
                    entry[name] = ""
            feed(entry)
        if start < len(run_lines):
            executions(timed.slice(start), run_lines[start:])
    return one.finish(), records, breaks


class ReadFailed(Exception):
    """DuckDB stopped while the batches streamed (its error comes through pyarrow, as an OSError or
    an ArrowInvalid, not as a duckdb.Error): the Python pass reads the file."""


class _Batches:
    """The Arrow record batches of ``query``, made by DuckDB in a thread (from now on) while the
    caller walks the ones before: a few batches ahead at most, so the memory does not grow with
    the file."""

    AHEAD = 8

    def __init__(self, con, query: str):
        import queue
        import threading

        self.ahead: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        self.stop = threading.Event()
        self.worker = threading.Thread(target=self._produce, args=(con, query), name="perfkit-duckdb", daemon=True)
        self.worker.start()

    def _produce(self, con, query: str) -> None:
        try:
            for batch in con.sql(query).to_arrow_reader(_BATCH):
                if self.stop.is_set():
                    return
                self.ahead.put(batch)
        except BaseException as err:  # handed to the caller
            self.ahead.put(err)
        else:
            self.ahead.put(None)

    def __iter__(self):
        while True:
            item = self.ahead.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise ReadFailed(str(item)) from item
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        import queue

        self.stop.set()
        while self.worker.is_alive():
            try:
                self.ahead.get(timeout=0.1)
            except queue.Empty:
                pass
