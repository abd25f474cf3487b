"""The three PostgreSQL log formats (csvlog, jsonlog, stderr) read into one kind of entry.

Each reader takes numbered lines and yields entry dicts, or ``BadRecord`` for lines it cannot read.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from perfkit.logs.prefix import SECONDARY_LEVELS, LinePrefix

# csvlog columns, PostgreSQL 9.0 to 12 (23), 13 (+backend_type), 14 and later (+leader_pid, query_id)
CSV_COLUMNS = [
    "ts", "user", "database", "pid", "client", "session_id", "session_line", "command_tag",
    "session_start", "vxid", "txid", "level", "sqlstate", "message", "detail", "hint",
    "internal_query", "internal_position", "context", "query", "query_position", "location",
    "application", "backend_type", "leader_pid", "query_id",
]
CSV_WIDTHS = (23, 24, 26)

# jsonlog keys (PostgreSQL 15+) and the entry field each one fills
JSON_KEYS = {
    "timestamp": "ts", "user": "user", "dbname": "database", "pid": "pid",
    "remote_host": "client", "session_id": "session_id", "line_num": "session_line",
    "ps": "command_tag", "vxid": "vxid", "txid": "txid", "error_severity": "level",
    "state_code": "sqlstate", "message": "message", "detail": "detail", "hint": "hint",
    "context": "context", "statement": "query", "application_name": "application",
    "backend_type": "backend_type", "leader_pid": "leader_pid", "query_id": "query_id",
}

# the start of a csvlog record: log_time, user_name, database_name, process_id (quoted or not)
_CSV_TEXT = r'(?:"(?:[^"]|"")*"|[^",]*)'
CSV_RECORD_START = re.compile(
    r'"?\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?: [A-Za-z0-9+:_/-]+)?"?,' + _CSV_TEXT + "," + _CSV_TEXT
    + r',"?\d*"?,'
)

# a jsonlog line as PostgreSQL 15+ writes it: its keys in this order, any of them left out but the
# time and the message, strings without an escaped character (what ``fast`` reading takes; the
# rest goes through ``json``). (json key, entry field or None, number or string)
_JSON_ORDER = (
    ("user", "user", False), ("dbname", "database", False), ("pid", "pid", True),
    ("remote_host", "client", False), ("remote_port", None, True), ("session_id", "session_id", False),
    ("line_num", None, True), ("ps", "command_tag", False), ("session_start", None, False), ("vxid", "vxid", False),
    ("txid", None, True), ("error_severity", "level", False), ("state_code", "sqlstate", False),
    ("message", "message", False), ("detail", "detail", False), ("hint", "hint", False),
    ("internal_query", None, False), ("internal_position", None, True), ("context", "context", False),
    ("statement", "query", False), ("cursor_position", None, True), ("func_name", None, False),
    ("file_name", None, False), ("file_line_num", None, True), ("application_name", "application", False),
    ("backend_type", "backend_type", False), ("leader_pid", None, True), ("query_id", None, True),
)
# a JSON string without an escape, in ASCII: no control character, quote or backslash (positive
# ranges, which the regex engine scans faster than a negated class and compiles in a millisecond;
# a line with other characters goes through json), possessive: no backtracking into it
_JSON_STRING = r'"{}[ !#-\[\]-\x7f]*+)"'
_JSON_NUMBER = r"{}-?(?:0|[1-9]\d*))"


def _json_field(key: str, name: str | None, number: bool) -> str:
    group = f"(?P<{name}>" if name else "("
    value = (_JSON_NUMBER if number else _JSON_STRING).format(group)
    return f'(?:,"{key}":{value})' + ("" if key == "message" else "?")


JSONLOG_LINE = re.compile(r'\{"timestamp":' + _JSON_STRING.format("(?P<ts>")
                          + "".join(_json_field(*spec) for spec in _JSON_ORDER) + r"\}")
# any flat JSON object of such strings and whole numbers, its keys in any order: what json.loads reads
# as a dict of them (a parse/bind line is skipped only when it would not be a bad record)
_JSON_VALUE = "(?:" + _JSON_STRING.format("(?:") + "|" + _JSON_NUMBER.format("(?:") + ")"
JSONLOG_FLAT = re.compile(r'\{"[a-z_]++":' + _JSON_VALUE + r'(?:,"[a-z_]++":' + _JSON_VALUE + r")*+\}")

# the fields a stderr continuation line (DETAIL, STATEMENT...) fills on the entry before it
_SECONDARY_FIELD = {
    "DETAIL": "detail", "HINT": "hint", "CONTEXT": "context", "STATEMENT": "query",
    "QUERY": "internal_query", "LOCATION": "location",
}


@dataclass
class BadRecord:
    """Lines a reader could not turn into an entry."""

    line: int
    reason: str
    last_line: int | None = None

    @property
    def line_count(self) -> int:
        return (self.last_line or self.line) - self.line + 1


def sniff(lines: list[str], stderr_prefixes: list[LinePrefix] = ()) -> str:
    """``"jsonlog"``, ``"csvlog"`` or ``"stderr"``: the format most of ``lines`` look like.

    A line votes csvlog when it starts a csvlog record, jsonlog when it starts with ``{``, stderr
    when it starts with a tab (a continuation) or matches one of ``stderr_prefixes``.
    """
    votes = {"csvlog": 0, "jsonlog": 0, "stderr": 0}
    for line in lines:
        if not line.strip() or "\x00" in line:
            continue
        if line.startswith("\t") or any(prefix.match(line) for prefix in stderr_prefixes):
            votes["stderr"] += 1
        elif line.lstrip().startswith("{"):
            votes["jsonlog"] += 1
        elif CSV_RECORD_START.match(line):
            votes["csvlog"] += 1
    best = max(votes.values())
    if best == 0:
        return "stderr"
    return next(kind for kind in ("csvlog", "jsonlog", "stderr") if votes[kind] == best)


def _binary(line: str) -> bool:
    return "\x00" in line


_SURROGATE = re.compile("[\ud800-\udfff]")


def read_jsonlog(lines: Iterable[tuple[int, str]], fast: bool = False) -> Iterator[dict | BadRecord | None]:
    """Entries of a jsonlog file: one JSON object per line.

    ``fast`` (the streaming pass): a line as PostgreSQL writes it (its keys in their order, no escaped
    or non-ASCII character) is read by one regex into an entry with the fields the pass uses, the others through
    ``json``; a ``parse``/``bind`` duration (which the pass only counts) is None, told from its
    message without reading the rest of the line (a flat object whose strings hold no quote)."""
    match = JSONLOG_LINE.fullmatch
    flat = JSONLOG_FLAT.fullmatch
    for number, line in lines:
        if fast:
            # a parse/bind duration, told without reading the line into an entry: its message key, once,
            # holds "duration: ... ms  parse|bind ", in a flat object of strings without an escape or a
            # control character and of whole numbers (JSONLOG_FLAT: json.loads would read it, not a
            # bad record; a quote in a string cannot be, so '"message":' is the key)
            at = line.find('"message":"duration: ')
            if at > 0:
                stop = line.find(" ms  ", at + 21)
                if (stop > 0 and line.startswith(("parse ", "bind "), stop + 5)
                        and stop < line.find('"', at + 11) and line.count('"message":') == 1
                        and flat(line) is not None):
                    yield None
                    continue
            found = match(line)
            if found is not None:
                message = found["message"]
                if message.startswith("duration: "):
                    end = message.find(" ms  ", 10)
                    if end > 0 and message.startswith(("parse ", "bind "), end + 5):
                        yield None
                        continue
                entry = found.groupdict()
                pid = entry["pid"]
                if pid is not None:
                    entry["pid"] = int(pid)
                entry["line"] = number
                yield entry
                continue
        if not line.strip():
            continue
        if _binary(line):
            yield BadRecord(number, "binary content (NUL bytes), not a jsonlog line")
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            yield BadRecord(number, f"not a complete JSON object ({err.msg} at column {err.colno})")
            continue
        except RecursionError:
            yield BadRecord(number, "a JSON value nested too deeply to read, not a jsonlog line")
            continue
        if not isinstance(record, dict) or "message" not in record:
            yield BadRecord(number, "a JSON value without the jsonlog 'message' key")
            continue
        if "\\u" in line and any(v.__class__ is str and _SURROGATE.search(v) for v in record.values()):
            # json reads "\ud800" alone; it is no text (not UTF-8, which PostgreSQL writes)
            yield BadRecord(number, "a JSON string with a lone surrogate escape (such as \\ud800), not text")
            continue
        keys = JSON_KEYS
        entry = {keys[k]: v for k, v in record.items() if k in keys}
        nested = None
        if "[" in line or line.count("{") > 1:  # a nested value is possible (else, skip the look)
            nested = next((k for k, v in record.items() if k in keys and v.__class__ in (dict, list)), None)
        if nested is not None:
            # PostgreSQL writes every jsonlog field as a string or a number
            yield BadRecord(number, f"the jsonlog key {nested!r} holds a JSON object or array, not a value")
            continue
        entry["line"] = number
        yield entry


def read_csvlog(lines: Iterable[tuple[int, str]], fast: bool = False) -> Iterator[dict | BadRecord | None]:
    """Entries of a csvlog file; quoted fields may span lines.

    ``fast`` (the streaming pass): a record on one line is read without the line buffer, and a
    ``parse``/``bind`` duration (which the pass only counts) is None, not an entry."""
    buffer: list[str] = []
    start = 0
    end = 0
    in_quote = False

    # one csv reader for the whole file, fed one complete record (its quotes balanced) at a time through
    # a list it pops (C all the way: no Python call per record)
    feeder: list[str] = []
    reader = [csv.reader(iter(feeder.pop, None), strict=True)]

    def finish() -> dict | BadRecord:
        feeder.append(buffer[0] if len(buffer) == 1 else "\n".join(buffer))
        try:
            fields = next(reader[0])
        except (csv.Error, StopIteration, IndexError) as err:
            feeder.clear()
            reader[0] = csv.reader(iter(feeder.pop, None), strict=True)
            return BadRecord(start, f"not a csvlog record ({err or 'cut short'})", end)
        if len(fields) not in CSV_WIDTHS:
            return BadRecord(
                start,
                f"a csvlog record has {', '.join(map(str, CSV_WIDTHS))} fields, this one has {len(fields)} "
                "(cut short or not a csvlog file)",
                end,
            )
        entry = dict(zip(CSV_COLUMNS, fields, strict=False))
        entry["line"] = start
        return entry

    for number, line in lines:
        if fast and not buffer and not line.count('"') % 2 and "\x00" not in line and line:
            # one whole record on the line (the common case): no buffer, no finish()
            feeder.append(line)
            try:
                fields = next(reader[0])
            except (csv.Error, StopIteration, IndexError):
                feeder.clear()
                reader[0] = csv.reader(iter(feeder.pop, None), strict=True)
            else:
                if len(fields) in CSV_WIDTHS:
                    message = fields[13]
                    if message.startswith("duration: "):
                        stop = message.find(" ms  ", 10)
                        if stop > 0 and message.startswith(("parse ", "bind "), stop + 5):
                            yield None
                            continue
                    entry = dict(zip(CSV_COLUMNS, fields, strict=False))
                    entry["line"] = number
                    yield entry
                    continue
        if _binary(line):
            if buffer:
                yield BadRecord(start, "a csvlog record cut short by binary content", end)
                buffer, in_quote = [], False
            yield BadRecord(number, "binary content (NUL bytes), not a csvlog line")
            continue
        if in_quote and CSV_RECORD_START.match(line):
            # a new record starts while a quoted field is still open: the one before was cut short
            yield BadRecord(start, "a csvlog record cut short (a quoted field never closes)", end)
            buffer, in_quote = [], False
        if not buffer:
            if not line.strip():
                continue
            start = number
        buffer.append(line)
        end = number
        if line.count('"') % 2:
            in_quote = not in_quote
        if not in_quote:
            yield finish()
            buffer = []
    if buffer:
        yield BadRecord(start, "a csvlog record cut short at the end of the file (a quoted field never closes)", end)


def read_stderr(lines: Iterable[tuple[int, str]], prefix: LinePrefix,
                fast: bool = False) -> Iterator[dict | BadRecord | None]:
    """Entries of a stderr log written with ``log_line_prefix = prefix``.

    Lines starting with a tab continue the message (or DETAIL, STATEMENT...) above them; DETAIL,
    HINT, CONTEXT, STATEMENT and QUERY lines are folded into the entry before them.
    ``fast`` (the streaming pass): a ``parse``/``bind`` duration (which the pass only counts) is
    None, not an entry (its DETAIL lines folded into it all the same).
    """
    entry: dict | None = None
    field = "message"
    match = prefix.regex.match
    # the regex without backtracking first (prefix._fast: the same match where it matches)
    fast_match = prefix.fast.match if prefix.fast is not None else match
    second = prefix.fast is not None
    # what tells one process's lines from another's (_same_process), for an entry left unread
    ident = [k for k in ("pid", "session_id") if k in prefix.regex.groupindex] if fast else []
    skip = False  # the held entry is a parse/bind duration
    for number, line in lines:
        found = fast_match(line)
        if found is None and second:
            found = match(line)
        if found is not None and "\x00" not in line:
            # the common case first: a line with the prefix (LinePrefix.match, inlined)
            if fast:
                level = found["level"]
                if level in SECONDARY_LEVELS and entry is not None:
                    # a DETAIL (STATEMENT...) line of the entry above: read without a dict (_same_process)
                    for key in ident:
                        value = found[key]
                        if value is not None and key in entry and entry[key] != value:
                            break
                    else:
                        field = _SECONDARY_FIELD[level]
                        entry[field] = found["message"]
                        continue
                message = found["message"]
                if message.startswith("duration: ") and level == "LOG":
                    stop = message.find(" ms  ", 10)
                    if stop > 0 and message.startswith(("parse ", "bind "), stop + 5):
                        if entry is not None:
                            yield None if skip else entry
                        entry = {k: found[k] for k in ident if found[k] is not None}
                        skip, field = True, "message"
                        continue
            found = found.groupdict()
            if None in found.values():
                found = {k: v for k, v in found.items() if v is not None}
        else:
            if line.startswith("\t"):
                if entry is None:
                    yield BadRecord(number, "a continuation line (starting with a tab) without an entry before it")
                    continue
                entry[field] = entry.get(field, "") + "\n" + line[1:]
                continue
            if not line:
                continue
            if _binary(line):
                if entry is not None:
                    yield None if skip else entry
                    entry = None
                yield BadRecord(number, "binary content (NUL bytes), not a log line")
                continue
            found = prefix.match(line)
            if found is None:
                if entry is not None:
                    yield None if skip else entry
                    entry = None
                yield BadRecord(
                    number,
                    f"the line does not match log_line_prefix {prefix.prefix!r}: {prefix.explain_mismatch(line)}",
                )
                continue
        level = found["level"]
        if level in SECONDARY_LEVELS and entry is not None and _same_process(entry, found):
            field = _SECONDARY_FIELD[level]
            entry[field] = found["message"]
            continue
        if entry is not None:
            yield None if skip else entry
        entry = found
        skip = False
        entry["line"] = number
        field = "message"
    if entry is not None:
        yield None if skip else entry


def _same_process(entry: dict, found: dict) -> bool:
    for key in ("pid", "session_id"):
        if key in entry and key in found and entry[key] != found[key]:
            return False
    return True


# -- logs that are not PostgreSQL's own files ----------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_SYSLOG_TAIL = r" (?P<host>\S+) (?P<tag>[\w./-]+)\[(?P<pid>\d+)\]: \[(?P<seq>\d+)-(?P<part>\d+)\] ?(?P<rest>.*)$"
# rsyslog's traditional file format ("Jan  5 08:35:00 host postgres[123]: [4-1] ...") and its
# RFC 3339 one ("2024-01-05T08:35:00.123456+01:00 host postgres[123]: [4-1] ...")
SYSLOG_TRADITIONAL = re.compile(
    r"^(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?P<day>[ \d]\d) (?P<time>\d\d:\d\d:\d\d)" + _SYSLOG_TAIL
)
SYSLOG_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d)T(?P<time>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)" + _SYSLOG_TAIL
)
# pgbouncer: "2024-01-05 08:35:00.123 UTC [123] LOG C-0x55d0...: app/app@127.0.0.1:5000 login attempt"
PGBOUNCER_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: \S+)? \[\d+\] (?:LOG|WARNING|ERROR|FATAL|NOISE|DEBUG) (?!\s)"
)
# what a PostgreSQL line looks like after its log_line_prefix: a level and two spaces
_PG_LEVEL = re.compile(r"\b(?:DEBUG[1-5]?|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|QUERY|CONTEXT|LOCATION|STATEMENT):  ")
# the prefix perfkit puts in front of a syslog line's own prefix: the time and pid syslog recorded
SYSLOG_PREFIX = "%m [%p] "


def foreign_format(lines: list[str]) -> str | None:
    """``"syslog"`` or ``"pgbouncer"`` when most of ``lines`` are PostgreSQL's syslog output or a
    pgbouncer log, else None."""
    body = [line for line in lines if line.strip()]
    if not body:
        return None
    syslog = sum(1 for line in body if SYSLOG_TRADITIONAL.match(line) or SYSLOG_RFC3339.match(line))
    bouncer = sum(1 for line in body if PGBOUNCER_LINE.match(line))
    if syslog * 2 >= len(body):
        return "syslog"
    if bouncer * 2 >= len(body):
        return "pgbouncer"
    return None


def syslog_as_stderr(lines: Iterable[tuple[int, str]], year: int, month: int = 12) -> Iterator[tuple[int, str]]:
    """PostgreSQL's syslog records as the stderr lines they stand for.

    PostgreSQL writes one message as numbered pieces ``[SEQ-1]``, ``[SEQ-2]``... : a piece is a
    new line of the message (a tab-continued line, rsyslog writes the tab as ``#011``), a
    DETAIL/STATEMENT line with its own prefix, or the rest of a line longer than
    ``syslog_split_messages``' 900 bytes, which is glued back. The time and pid syslog recorded
    come first (``SYSLOG_PREFIX``); the traditional format has no year, so ``year`` is used
    (the file's; a month after ``month``, the file's last change, is from the year before), and no
    zone (UTC unless the reader is given ``timezone``).
    Lines that are not syslog records are passed on unchanged (the stderr reader reports them).
    """
    held: tuple[int, str] | None = None
    current: tuple[str, str] | None = None  # (pid, seq) of the held line
    for number, line in lines:
        found = SYSLOG_TRADITIONAL.match(line) or SYSLOG_RFC3339.match(line)
        if found is None:
            if held is not None:
                yield held
                held, current = None, None
            yield number, line
            continue
        rest = found["rest"].replace("#011", "\t")
        key = (found["pid"], found["seq"])
        if found["part"] != "1" and key == current and held is not None:
            if rest.startswith("\t"):
                yield held
                held = (number, rest)
                continue
            if not _PG_LEVEL.search(rest[:300]):
                held = (held[0], held[1] + rest)  # a long line split at 900 bytes
                continue
        if held is not None:
            yield held
        held, current = (number, f"{_syslog_time(found, year, month)} [{found['pid']}] {rest}"), key
    if held is not None:
        yield held


def _syslog_time(found: re.Match, year: int, month: int) -> str:
    if "mon" in found.groupdict():
        number = _MONTHS[found["mon"]]
        year = year - 1 if number > month else year
        return f"{year:04d}-{number:02d}-{int(found['day']):02d} {found['time']}.000"
    millis = ((found["frac"] or "") + "000")[:3]
    zone = "UTC" if found["zone"] == "Z" else found["zone"]
    return f"{found['date']} {found['time']}.{millis} {zone}"
