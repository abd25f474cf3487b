"""Reading PostgreSQL logs into DataFrames, in chunks, from csvlog, jsonlog or stderr files.

``read_chunks(paths)`` yields one DataFrame per chunk of entries; ``read(paths)`` concatenates them.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.errors import BadInputError
from perfkit.logs import formats
from perfkit.logs.messages import statement_of
from perfkit.logs.normalize import normalize
from perfkit.logs.prefix import COMMON_PREFIXES, LinePrefix, detect, verify_prefix
from perfkit.logs.sources import _Progress, expand, numbered_lines
from perfkit.secrets import scrub_statements

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "ts", "pid", "session_id", "session_line", "user", "database", "application", "client",
    "level", "sqlstate", "vxid", "txid", "query_id", "phase", "duration_ms", "statement",
    "fingerprint", "normalized", "command", "parameters", "plan", "message", "detail",
    "file", "line", "format",
]
DEFAULT_CHUNK_ROWS = 100_000
ERROR_LEVELS = frozenset({"ERROR", "FATAL", "PANIC"})
_SAMPLE_LINES = 200
_KEEP_BAD_RECORDS = 100
_UNKNOWN = "[unknown]"
# log_line_prefix settings seen with syslog (which records the time and pid itself), then the common ones
_SYSLOG_TAILS = ("", "user=%u,db=%d,app=%a,client=%h ", "user=%u,db=%d,app=%a ", "user=%u,db=%d ", "%q%u@%d ",
                 *COMMON_PREFIXES)


@dataclass
class ReadReport:
    """What a read went through: files, their formats and prefixes, the lines it skipped."""

    files: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)
    entries: int = 0
    skipped_lines: int = 0
    bad_records: list[dict] = field(default_factory=list)

    def skip(self, path: Path, record: formats.BadRecord) -> None:
        self.skipped_lines += record.line_count
        if len(self.bad_records) < _KEEP_BAD_RECORDS:
            self.bad_records.append(
                {"file": str(path), "line": record.line, "lines": record.line_count, "reason": record.reason}
            )

    def as_attrs(self) -> dict:
        return {
            "files": list(self.files),
            "formats": dict(self.formats),
            "prefixes": dict(self.prefixes),
            "entries": self.entries,
            "skipped_lines": self.skipped_lines,
            "bad_records": list(self.bad_records),
        }


def read(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    prefix: str | None = None,
    skip_bad_lines: bool = False,
    *,
    timezone: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pd.DataFrame:
    """PostgreSQL server logs as one DataFrame, one row per log entry.

    Parameters
    ----------
    paths:
        A file, a glob pattern (``"log/*.csv"``) or a list of them. csvlog, jsonlog and
        stderr files, plain or compressed (gzip, bzip2, xz), are recognised by their content.
    prefix:
        The server's ``log_line_prefix`` for stderr logs (``SHOW log_line_prefix``). When None,
        the common prefixes are tried (PostgreSQL's default ``'%m [%p] '``, Debian's,
        pgBadger's).
    skip_bad_lines:
        Skip lines that cannot be read (a prefix that does not match, a cut-short csv record,
        binary content) instead of raising; their count is in ``df.attrs["skipped_lines"]``
        and the first of them in ``df.attrs["bad_records"]``.
    timezone:
        The server's ``log_timezone`` (e.g. ``"America/Chicago"``) when the log's timestamps
        carry an ambiguous zone abbreviation such as ``CST`` or ``IST``.
    chunk_rows:
        Entries per chunk while reading.

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``: ``ts`` (UTC), ``pid``, ``session_id``, ``user``, ``database``,
        ``application``, ``level``, ``phase`` (statement, execute, parse, bind, plan,
        duration, error, or empty), ``duration_ms``, ``statement``, ``fingerprint``,
        ``normalized``, ``command``, ``plan`` (auto_explain), ``file`` and ``line`` (where
        the entry starts, 1-based), among others. ``message`` holds the text of entries that
        are not statements (a statement's message is its duration and text, already in their
        columns). ``df.attrs`` holds the read's report.

    Raises
    ------
    BadInputError
        A missing file, an unreadable line (unless ``skip_bad_lines``), a stderr log whose
        prefix is unknown or lacks what perfkit needs; the message names file and line.
    """
    import pandas as pd
    report = ReadReport()
    chunks = list(read_chunks(paths, prefix, skip_bad_lines, timezone=timezone, chunk_rows=chunk_rows, report=report))
    frame = pd.concat(chunks, ignore_index=True) if chunks else _empty()
    if chunks:
        frame["file"] = frame["file"].astype("category")
    frame.attrs = report.as_attrs()
    return frame


def read_chunks(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    prefix: str | None = None,
    skip_bad_lines: bool = False,
    *,
    timezone: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    report: ReadReport | None = None,
) -> Iterator[pd.DataFrame]:
    """The entries of the logs ``paths`` as DataFrames of at most ``chunk_rows`` rows each.

    For logs larger than memory: aggregate chunk by chunk (``most_frequent`` and ``slowest``
    accept the iterator). Parameters as :func:`read`; ``report`` (a :class:`ReadReport`) is
    filled as the chunks are read.
    """
    files = expand(paths)
    report = report if report is not None else ReadReport()
    line_prefix = LinePrefix(prefix) if prefix else None
    progress = _Progress(files)
    try:
        for path in files:
            report.files.append(str(path))
            rows: list[dict] = []
            for entry in _entries(path, line_prefix, skip_bad_lines, report, progress):
                rows.append(entry)
                if len(rows) >= chunk_rows:
                    yield _frame(rows, path, report.formats[str(path)], timezone, skip_bad_lines, report)
                    rows = []
            if rows:
                yield _frame(rows, path, report.formats[str(path)], timezone, skip_bad_lines, report)
    finally:
        progress.close()


def guarded(lines: Iterator[tuple[int, str]], path: Path, skip: bool, report: ReadReport) -> Iterator[tuple[int, str]]:
    """``lines``, stopping at a damaged compressed stream when skipping bad lines."""
    try:
        yield from lines
    except BadInputError as err:
        if not skip:
            raise
        report.skip(path, formats.BadRecord(err.line or 0, str(err)))


def _entries(path: Path, line_prefix: LinePrefix | None, skip: bool, report: ReadReport, progress) -> Iterator[dict]:
    lines = guarded(numbered_lines(path, progress), path, skip, report)
    sample = list(itertools.islice(lines, _SAMPLE_LINES))
    binary = [number for number, text in sample if "\x00" in text or text.count("\ufffd") * 4 > len(text) > 0]
    if sample and len(binary) * 2 > len(sample):
        record = formats.BadRecord(binary[0], "binary content, not a PostgreSQL log (csvlog, jsonlog or stderr)")
        if not skip:
            raise BadInputError(record.reason, path=path, line=record.line)
        last = sample[-1][0]
        for number, _ in lines:  # count the lines skipped
            last = number
        report.formats[str(path)] = "binary"
        report.skip(path, formats.BadRecord(1, record.reason, last))
        return
    texts = [text for _, text in sample]
    foreign = formats.foreign_format(texts)
    if foreign is not None:
        yield from _foreign(path, foreign, sample, lines, line_prefix, skip, report)
        return
    kind = formats.sniff(texts, [line_prefix] if line_prefix else [LinePrefix(p) for p in COMMON_PREFIXES])
    report.formats[str(path)] = kind
    every = itertools.chain(sample, lines)
    if kind == "jsonlog":
        records = formats.read_jsonlog(every)
    elif kind == "csvlog":
        records = formats.read_csvlog(every)
    else:
        chosen = line_prefix or detect(texts)
        if chosen is None:
            first = next(((n, t) for n, t in sample if t.strip()), (1, ""))
            raise BadInputError(
                f"cannot tell this stderr log's log_line_prefix from its lines (it starts {first[1][:60]!r}); "
                "pass the server's setting with --prefix (SHOW log_line_prefix), "
                "e.g. --prefix '%m [%p] '",
                path=path,
                line=first[0],
            )
        report.prefixes[str(path)] = chosen.prefix
        records = formats.read_stderr(every, chosen)
    yield from _kept(records, path, skip, report)


def choose_reader(kind: str, lines, prefix: LinePrefix | None):
    """The records of ``lines`` read as ``kind`` (csvlog, jsonlog, or stderr with ``prefix``)."""
    if kind == "jsonlog":
        return formats.read_jsonlog(lines)
    if kind == "csvlog":
        return formats.read_csvlog(lines)
    return formats.read_stderr(lines, prefix)


FORMAT_NAMES = ("stderr", "csvlog", "jsonlog", "syslog")


def detect_format(path: Path, prefix: str | None, kind: str | None = None, skip: bool = False) -> tuple[str, str | None]:
    """``(format, log_line_prefix)`` of the log ``path``, told from its first lines (or ``kind``).

    The prefix of a stderr or syslog log is verified on the sample: every field must read as what
    it is (a user name that swallowed ``[queryid=...]``, a database that reads ``,host=...`` mean a
    wrong prefix).

    Raises
    ------
    BadInputError
        Binary content (unless ``skip``), a pgbouncer log, a prefix that cannot be told or that
        does not fit the lines.
    """
    if kind is not None and kind not in FORMAT_NAMES:
        raise BadInputError(f"--format must be one of {', '.join(FORMAT_NAMES)}, not {kind!r}")
    sample = []
    try:
        sample = list(itertools.islice(numbered_lines(path), _SAMPLE_LINES))
    except BadInputError:
        if not skip:
            raise
    binary = [n for n, text in sample if "\x00" in text or text.count("\ufffd") * 4 > len(text) > 0]
    if sample and len(binary) * 2 > len(sample):
        if not skip:
            raise BadInputError("binary content, not a PostgreSQL log (csvlog, jsonlog or stderr)", path=path,
                                line=binary[0])
        return "binary", None
    texts = [text for _, text in sample]
    foreign = None if kind in ("stderr", "csvlog", "jsonlog") else formats.foreign_format(texts)
    if kind == "syslog" or foreign == "syslog":
        return "syslog", _syslog_prefix(path, sample, prefix)
    if foreign == "pgbouncer":
        list(_foreign(path, foreign, sample, iter(()), None, skip, ReadReport()))
    line_prefix = LinePrefix(prefix) if prefix else None
    if kind is None:
        kind = formats.sniff(texts, [line_prefix] if line_prefix else [LinePrefix(p) for p in COMMON_PREFIXES])
    if kind != "stderr":
        return kind, None
    chosen = line_prefix or detect(texts)
    if chosen is None:
        first = next(((n, t) for n, t in sample if t.strip()), (1, ""))
        raise BadInputError(
            f"cannot tell this stderr log's log_line_prefix from its lines (it starts {first[1][:60]!r}); "
            "pass the server's setting with --prefix (SHOW log_line_prefix), e.g. --prefix '%m [%p] '",
            path=path, line=first[0],
        )
    if line_prefix is not None:
        heads = [(n, t) for n, t in sample if t and not t.startswith("\t")]
        misses = [(n, t) for n, t in heads if not line_prefix.match(t)]
        if heads and len(misses) * 2 > len(heads):
            number, text = misses[0]
            raise BadInputError(f"the line does not match log_line_prefix {line_prefix.prefix!r}: "
                                f"{line_prefix.explain_mismatch(text)}", path=path, line=number)
    problem = verify_prefix(chosen, texts)
    if problem:
        raise BadInputError(f"log_line_prefix {chosen.prefix!r} does not fit these lines: {problem}; pass the "
                            "server's setting with --prefix (SHOW log_line_prefix)", path=path)
    return "stderr", chosen.prefix


def _syslog_prefix(path: Path, sample: list, prefix: str | None) -> str:
    import datetime as dt

    changed = dt.datetime.fromtimestamp(path.stat().st_mtime)
    converted = list(formats.syslog_as_stderr(sample, changed.year, changed.month))
    if prefix is not None:
        return formats.SYSLOG_PREFIX + prefix
    texts = [text for _, text in converted]
    heads = [t for t in texts if t and not t.startswith("\t")]
    candidates = [LinePrefix(formats.SYSLOG_PREFIX + tail) for tail in _SYSLOG_TAILS]
    scored = [(sum(1 for t in heads if c.match(t)) if not verify_prefix(c, texts) else 0, -i, c)
              for i, c in enumerate(candidates)]
    best = max(scored, key=lambda s: (s[0], s[1]))
    if best[0] * 2 < len(heads) or not heads:
        first = next((n for n, t in sample if t.strip()), 1)
        raise BadInputError(
            "a PostgreSQL syslog file whose log_line_prefix perfkit cannot tell from its lines; pass the "
            "server's setting with --prefix (SHOW log_line_prefix; syslog adds the time and pid itself)",
            path=path, line=first,
        )
    return best[2].prefix


def _kept(records, path: Path, skip: bool, report: ReadReport) -> Iterator[dict]:
    for record in records:
        if isinstance(record, formats.BadRecord):
            if not skip:
                raise BadInputError(record.reason, path=path, line=record.line)
            report.skip(path, record)
            continue
        report.entries += 1
        yield record


def _foreign(path: Path, kind: str, sample: list, lines, line_prefix: LinePrefix | None, skip: bool,
             report: ReadReport) -> Iterator[dict]:
    """A log that is not one of PostgreSQL's own files: syslog output is read, pgbouncer refused."""
    first = next((n for n, t in sample if t.strip()), 1)
    if kind == "pgbouncer":
        raise BadInputError(
            "this is a pgbouncer log; perfkit reads PostgreSQL's server logs (stderr, csvlog, jsonlog, "
            "or PostgreSQL's syslog output): give it the files in the server's log_directory, with "
            "log_min_duration_statement set to see statements",
            path=path,
            line=first,
        )
    import datetime as dt

    changed = dt.datetime.fromtimestamp(path.stat().st_mtime)
    converted = list(formats.syslog_as_stderr(sample, changed.year, changed.month))
    texts = [text for _, text in converted]
    if line_prefix is not None:
        chosen = LinePrefix(formats.SYSLOG_PREFIX + line_prefix.prefix)
    else:
        candidates = [LinePrefix(formats.SYSLOG_PREFIX + tail) for tail in _SYSLOG_TAILS]
        scored = [(sum(1 for t in texts if t and not t.startswith("\t") and c.match(t)), -i, c)
                  for i, c in enumerate(candidates)]
        best = max(scored, key=lambda s: (s[0], s[1])) if scored else None
        if best is None or best[0] * 2 < sum(1 for t in texts if t and not t.startswith("\t")):
            raise BadInputError(
                "a PostgreSQL syslog file whose log_line_prefix perfkit cannot tell from its lines; pass the "
                "server's setting with --prefix (SHOW log_line_prefix; syslog adds the time and pid itself)",
                path=path,
                line=first,
            )
        chosen = best[2]
    report.formats[str(path)] = "syslog"
    report.prefixes[str(path)] = chosen.prefix
    every = formats.syslog_as_stderr(itertools.chain(sample, lines), changed.year, changed.month)
    yield from _kept(formats.read_stderr(every, chosen), path, skip, report)


def _frame(
    entries: list[dict], path: Path, kind: str, timezone: str | None, skip: bool, report: ReadReport
) -> pd.DataFrame:
    """One chunk of entries in the contract's columns."""
    import pandas as pd

    from perfkit.logs.timestamps import to_utc, unreadable
    columns: dict[str, list] = {name: [] for name in _ENTRY_COLUMNS}
    pending: dict = {}  # pid -> position of the last statement logged without a duration
    for entry in entries:
        level = entry.get("level") or ""
        message = entry.get("message") or ""
        phase, duration, statement, plan = statement_of(message)
        pid = entry.get("pid")
        if phase == "duration" and pid in pending:
            # log_statement logged the text; log_min_duration_statement only the duration
            columns["duration_ms"][pending.pop(pid)] = duration
            continue
        query = entry.get("query") or ""
        if not phase and query:
            statement = query
            phase = "error" if level in ERROR_LEVELS else ""
        detail = entry.get("detail") or ""
        if phase in ("statement", "execute"):
            if math.isnan(duration):
                pending[pid] = len(columns["line"])
            else:
                pending.pop(pid, None)
        values = (
            entry.get("ts"), entry.get("ts_epoch"), pid, entry.get("session_id") or "",
            entry.get("session_line"), _known(entry.get("user")), _known(entry.get("database")),
            _known(entry.get("application")), _known(entry.get("client")), level,
            entry.get("sqlstate") or "", entry.get("vxid") or "", entry.get("txid"),
            entry.get("query_id"), phase, duration, statement,
            detail[12:] if detail.startswith("parameters: ") else "", plan,
            # the message of a statement entry is its duration and text, already in their columns
            message if phase in ("", "error") else "",
            detail, entry["line"],
        )
        for name, value in zip(_ENTRY_COLUMNS, values, strict=True):
            columns[name].append(value)
    if not columns["line"]:
        return _empty()
    # secrets in statement text (PASSWORD '...', keys, connection strings) are scrubbed as
    # the entry is read, before it is normalized, grouped, stored or shown
    for name in ("statement", "parameters", "plan", "message", "detail"):
        columns[name] = scrub_statements(columns[name])
    statements = columns["statement"]
    shapes = {text: normalize(text) for text in set(statements) if text}
    columns["normalized"] = [shapes[s].normalized if s else "" for s in statements]
    columns["fingerprint"] = [shapes[s].fingerprint if s else None for s in statements]
    columns["command"] = [shapes[s].command if s else "" for s in statements]
    frame = pd.DataFrame(columns)
    frame["fingerprint"] = frame["fingerprint"].astype(object).where(frame["fingerprint"].notna(), None)
    converted = to_utc(frame["ts"], frame["ts_epoch"], timezone=timezone, path=path)
    bad = unreadable(frame["ts"], frame["ts_epoch"], converted)
    if bad.any():
        first = frame[bad].iloc[0]
        if not skip:
            raise BadInputError(f"not a timestamp: {str(first['ts'])[:40]!r}", path=path, line=int(first["line"]))
        for row in frame[bad].itertuples(index=False):
            report.skip(path, formats.BadRecord(int(row.line), f"not a timestamp: {str(row.ts)[:40]!r}"))
        report.entries -= int(bad.sum())
        frame, converted = frame[~bad].reset_index(drop=True), converted[~bad].reset_index(drop=True)
    frame["ts"] = converted
    for column in ("pid", "session_line", "txid", "query_id"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame["duration_ms"] = frame["duration_ms"].astype("float64")
    frame["file"] = str(path)
    frame["format"] = kind
    frame["line"] = frame["line"].astype("int64")
    return frame[COLUMNS]


_ENTRY_COLUMNS = (
    "ts", "ts_epoch", "pid", "session_id", "session_line", "user", "database", "application",
    "client", "level", "sqlstate", "vxid", "txid", "query_id", "phase", "duration_ms",
    "statement", "parameters", "plan", "message", "detail", "line",
)


def _known(value) -> str:
    if value is None or value == _UNKNOWN:
        return ""
    return str(value)


def _empty() -> pd.DataFrame:
    import pandas as pd
    frame = pd.DataFrame({column: pd.Series(dtype="object") for column in COLUMNS})
    frame["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
    for column in ("pid", "session_line", "txid", "query_id"):
        frame[column] = pd.Series(dtype="Int64")
    frame["duration_ms"] = pd.Series(dtype="float64")
    frame["line"] = pd.Series(dtype="int64")
    return frame


__all__ = ["COLUMNS", "ReadReport", "read", "read_chunks"]
