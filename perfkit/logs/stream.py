"""One streaming pass over server logs: aggregates per statement shape and per kind of event, in
bounded memory, over any number of files, in parallel over files and byte ranges of large ones.

``scan(paths, settings)`` returns a :class:`Scan` (merged partial aggregates); ``perfkit.logs.assess``
turns it into the Assessment. Nothing keeps the log's entries: each entry updates counters and is
dropped. What is kept grows with the distinct statement shapes, connections, tables and minutes of
the log, not with its size.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import io
import itertools
import math
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from perfkit.errors import BadInputError
from perfkit.logs import events, formats
from perfkit.logs.messages import duration_ms, statement_of
from perfkit.logs.normalize import Normalized, normalize
from perfkit.logs.prefix import SECONDARY_LEVELS, LinePrefix
from perfkit.logs.reader import ERROR_LEVELS, ReadReport, guarded
from perfkit.logs.sources import MAX_LINE_BYTES, compression, expand, numbered_lines

FORMATS = ("stderr", "csvlog", "jsonlog", "syslog")
ENGINES = ("auto", "duckdb", "python")
# a plain file larger than this is read in byte ranges, one per worker
RANGE_MIN_BYTES = 24 * 1024 * 1024
PIECES_PER_JOB = 4  # ranges per worker: the ones that finish first take more
_SHAPE_CACHE_MAX = 200_000
_EXACT_MAX = 20_000
_UNKNOWN = "[unknown]"
_EMPTY_SHAPE = Normalized("", None, "")
# cost per tenant: how many tenants are kept one by one (the rest together), shapes counted per tenant
_TENANTS_MAX = 100_000
_TENANT_SHAPES = 1_000
_NO_TENANT = "(no tenant)"  # perfkit.tenantcost.NO_TENANT
_OTHER_TENANTS = "(other tenants)"
_NAN = float("nan")
# duration histograms: bins of a tenth of a power of ten; durations of 0 ms in their own bin
BINS_PER_DECADE = 10
_ZERO_BIN = -10**6
STATEMENT_TYPES = {
    "SELECT": "select", "WITH": "select", "VALUES": "select", "TABLE": "select", "SHOW": "select",
    "INSERT": "insert", "UPDATE": "update", "DELETE": "delete", "MERGE": "update", "COPY": "copy",
    "BEGIN": "tcl", "START": "tcl", "COMMIT": "tcl", "END": "tcl", "ROLLBACK": "tcl", "ABORT": "tcl",
    "SAVEPOINT": "tcl", "RELEASE": "tcl", "PREPARE": "tcl",
    "CREATE": "ddl", "ALTER": "ddl", "DROP": "ddl", "TRUNCATE": "ddl", "COMMENT": "ddl", "GRANT": "ddl",
    "REVOKE": "ddl", "VACUUM": "maintenance", "ANALYZE": "maintenance", "REINDEX": "maintenance",
    "CLUSTER": "maintenance", "SET": "session", "RESET": "session", "DISCARD": "session",
    "DEALLOCATE": "session", "LISTEN": "session", "UNLISTEN": "session", "NOTIFY": "session",
}


@dataclass(frozen=True)
class Settings:
    """What a scan needs to know (the options of ``perfkit logs``)."""

    prefix: str | None = None
    skip_bad_lines: bool = False
    timezone: str | None = None
    format: str | None = None
    slow_ms: float = 200.0
    min_repeats: int = 3
    max_statements: int = 10
    gap_ms: float = 1000.0
    critical_repeats: int = 20
    keep_slowest: int = 200
    jobs: int | None = None
    # "auto": whole plain csvlog/jsonlog files of 1 MiB or more through DuckDB (perfkit.logs.duck),
    # the rest through the Python pass; "duckdb": such files whatever their size; "python": none
    engine: str = "auto"


@dataclass(frozen=True)
class Unit:
    """A piece of work: one file, or the byte range [start, end) of a plain one."""

    path: str
    kind: str
    prefix: str | None
    start: int = 0
    end: int | None = None
    index: int = 0  # the range's position in its file
    base: tuple[int, int] = (0, 0)  # a byte offset at a line start and the lines before it (line numbers)


# -- statement shapes, once per distinct text ------------------------------------------------------
# Statements that differ only in their literals share a key, so pglast runs once per key, not once
# per text (a pgbench log of 800k statements has a handful of keys). A key is only ever a finer
# split than pglast's fingerprint: texts with a dollar quote, an escape string or a quoted
# identifier are their own key.
# Each starts with one character of a class (what lets the regex engine skip ahead); a number is
# matched from its first digit, the character before it checked by a lookbehind (not in a name, not
# $1), its sign left in the key (a finer split than pglast's: harmless). Digits are ASCII ones, as
# PostgreSQL's lexer has them (a digit of another script is part of a name: ١0 is a column).
_LITERALS = re.compile(r"[/\-'0-9](?:(?<=/)\*.*?\*/|(?<=-)-[^\n]*|(?<=')(?:[^']|'')*'"
                       r"|(?<![\w$.][0-9])[0-9]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?![\w.]))", re.S)
_RAW = re.compile(r"\$\w*\$|\\|\"")


_PLAIN_LITERALS = re.compile(r"['0-9](?:(?<=')[^']*'|(?<![\w$.][0-9])[0-9]*(?:\.[0-9]+)?(?![\w.]))")


_DIGIT_MASK = bytes.maketrans(b"123456789", b"000000000")
_ASCII_DIGIT = re.compile("[0-9]")


def _cheap_key(text: str) -> str:
    if ("$" in text or "\\" in text or '"' in text) and _RAW.search(text):
        return text
    if "/*" in text or "--" in text:
        return _LITERALS.sub(_literal_mark, text)
    return _PLAIN_LITERALS.sub("?", text)


def _literal_mark(found: re.Match) -> str:
    return " " if found.group(0)[:1] in "/-" and found.group(0)[:2] in ("/*", "--") else "?"


class Shapes:
    """text -> Normalized through a bounded cache keyed by the text without its literals."""

    def __init__(self):
        self.cache: dict[str, tuple[str, Normalized]] = {}  # text without its literals -> (key, shape)
        # the texts seen last, as they are (a prepared statement's, or the same literals, over and over): no regex
        self.exact_keyed: dict[str, tuple[str, Normalized]] = {}
        self.masked: dict[bytes, tuple[str, Normalized]] = {}  # see uncached
        self.parsed = 0

    def keyed(self, text: str) -> tuple[str, Normalized]:
        """``(shape key, Normalized)`` of ``text``."""
        found = self.exact_keyed.get(text)
        if found is not None:
            return found
        found = self.uncached(text)
        if len(self.exact_keyed) >= _EXACT_MAX:
            self.exact_keyed.clear()
        self.exact_keyed[text] = found
        return found

    def uncached(self, text: str) -> tuple[str, Normalized]:
        """``keyed`` without keeping ``text`` (for a caller with its own cache of texts)."""
        # the text with every ASCII digit a 0: texts alike but for their digits have one key when
        # the key of one has no digit left (all were in its literals: so are the other's)
        masked = text.encode("utf-8", "surrogatepass").translate(_DIGIT_MASK)
        found = self.masked.get(masked)
        if found is not None:
            return found
        cheap = _cheap_key(text)
        found = self.cache.get(cheap)
        if found is None:
            if len(self.cache) >= _SHAPE_CACHE_MAX:
                self.cache.clear()
                self.masked.clear()
            shape = normalize(text)
            self.parsed += 1
            found = self.cache[cheap] = (shape_key(shape), shape)
        if not _ASCII_DIGIT.search(cheap):
            if len(self.masked) >= _EXACT_MAX:
                self.masked.clear()
            self.masked[masked] = found
        return found

    def of(self, text: str) -> Normalized:
        return self.keyed(text)[1]


def shape_key(shape: Normalized) -> str:
    return shape.fingerprint or "text:" + shape.normalized


# -- what one pass keeps -------------------------------------------------------------------------
class ShapeStats:
    """Counters of one statement shape."""

    __slots__ = ("normalized", "fingerprint", "command", "calls", "timed", "total_ms", "max_ms", "example",
                 "first_ts", "last_ts", "worst", "slow_calls", "slow_total", "slow_over", "plan", "bins")

    def __init__(self, shape: Normalized, example: str):
        self.normalized, self.fingerprint, self.command = shape.normalized, shape.fingerprint, shape.command
        self.calls = self.timed = self.slow_calls = 0
        self.total_ms = self.max_ms = self.slow_total = self.slow_over = 0.0
        self.example = example
        self.first_ts = self.last_ts = ""
        self.worst: list | None = None  # [duration, ts, statement, user, db, app, session, pid, file, line, plan]
        self.plan: tuple | None = None  # (duration, plan, file, line): the slowest logged plan
        self.bins: dict[int, int] = {}  # duration histogram: bin -> runs (BINS_PER_DECADE per power of ten)

    def merge(self, other: ShapeStats) -> None:
        self.calls += other.calls
        self.timed += other.timed
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.slow_calls += other.slow_calls
        self.slow_total += other.slow_total
        self.slow_over += other.slow_over
        if other.first_ts and (not self.first_ts or other.first_ts < self.first_ts):
            self.first_ts = other.first_ts
        if other.last_ts > self.last_ts:
            self.last_ts = other.last_ts
        if other.worst is not None and (self.worst is None or other.worst[0] > self.worst[0]):
            self.worst = other.worst
        if other.plan is not None and (self.plan is None or other.plan[0] > self.plan[0]):
            self.plan = other.plan
        for index, count in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + count


def _bump(counter: dict, key, duration: float) -> None:
    cell = counter.get(key)
    if cell is None:
        counter[key] = [1, duration if duration == duration else 0.0]
    else:
        cell[0] += 1
        if duration == duration:
            cell[1] += duration


@dataclass
class Scan:
    """The merged result of a pass (or a partial one, of one unit)."""

    report: ReadReport = field(default_factory=ReadReport)
    shapes: dict[str, ShapeStats] = field(default_factory=dict)
    executions: int = 0
    timed: int = 0
    empty_statements: int = 0
    minutes: dict = field(default_factory=dict)      # (minute text, zone) -> [count, ms]
    combos: dict = field(default_factory=dict)       # (database, user, application, client, type) -> [count, ms]
    events: events.Events = field(default_factory=events.Events)
    requests: object = None                          # nplusone.RequestGrouper
    # tenant (perfkit.tenantcost) -> [calls, ms, {shape keys} (at most _TENANT_SHAPES), {how it is known}]
    tenants: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parsed_shapes: int = 0
    # plan pairing at the edges of a byte range: pid -> (fingerprint, ...)
    head_plans: dict = field(default_factory=dict)
    head_execs: dict = field(default_factory=dict)
    tail_plans: dict = field(default_factory=dict)
    tail_execs: dict = field(default_factory=dict)
    unit: Unit | None = None
    engines: dict = field(default_factory=dict)      # path -> "duckdb" for the files DuckDB read

    def merge(self, other: Scan) -> None:
        _merge_report(self.report, other.report)
        for key, stats in other.shapes.items():
            mine = self.shapes.get(key)
            if mine is None:
                self.shapes[key] = stats
            else:
                mine.merge(stats)
        self.executions += other.executions
        self.timed += other.timed
        self.empty_statements += other.empty_statements
        for name in ("minutes", "combos"):
            mine = getattr(self, name)
            for key, (count, ms) in getattr(other, name).items():
                cell = mine.setdefault(key, [0, 0.0])
                cell[0] += count
                cell[1] += ms
        self.events.merge(other.events)
        for tenant, (calls, ms, shapes, known) in other.tenants.items():
            mine = self.tenants.get(tenant)
            if mine is None:
                if len(self.tenants) >= _TENANTS_MAX and tenant != _NO_TENANT:
                    tenant = _OTHER_TENANTS
                    mine = self.tenants.setdefault(tenant, [0, 0.0, set(), set()])
                else:
                    self.tenants[tenant] = [calls, ms, set(shapes), set(known)]
                    continue
            mine[0] += calls
            mine[1] += ms
            if len(mine[2]) < _TENANT_SHAPES:
                mine[2].update(shapes)
            mine[3].update(known)
        if self.requests is None:
            self.requests = other.requests
        elif other.requests is not None:
            self.requests.merge(other.requests)
        self.notes.extend(n for n in other.notes if n not in self.notes)
        self.parsed_shapes += other.parsed_shapes
        self.engines.update(getattr(other, "engines", {}))  # (a run stored before engines were kept has none)

    def breakdown(self, dimension: str) -> dict:
        """Executions and their time per database, user, application, host or (statement) type."""
        position = {"database": 0, "user": 1, "application": 2, "host": 3, "type": 4}[dimension]
        out: dict = {}
        for key, (count, ms) in self.combos.items():
            value = _known(_host(key[3]) if dimension == "host" else key[position])
            cell = out.setdefault(value, [0, 0.0])
            cell[0] += count
            cell[1] += ms
        return out

    def pair_edges(self, before: Scan, after: Scan) -> None:
        """Attach the plans logged across the boundary of two consecutive ranges of one file."""
        for pid, (fingerprint, plan) in after.head_plans.items():
            last = before.tail_execs.get(pid)
            if last is not None and last[0] == fingerprint:
                self._attach(last, plan)
        for pid, first in after.head_execs.items():
            pending = before.tail_plans.get(pid)
            if pending is not None and pending[0] == first[0]:
                self._attach(first, pending[1])

    def _attach(self, execution: tuple, plan: str) -> None:
        _, key, file, line = execution
        stats = self.shapes.get(key)
        if stats is not None and stats.worst is not None and stats.worst[8] == file and stats.worst[9] == line:
            stats.worst[10] = plan


def _merge_report(mine: ReadReport, other: ReadReport) -> None:
    for name in other.files:
        if name not in mine.files:
            mine.files.append(name)
    mine.formats.update(other.formats)
    mine.prefixes.update(other.prefixes)
    mine.entries += other.entries
    mine.skipped_lines += other.skipped_lines
    room = 100 - len(mine.bad_records)
    mine.bad_records.extend(other.bad_records[:max(room, 0)])


_COUNTED = "counted"  # timed_statement's answer for a parse/bind duration


def timed_statement(message: str):
    """``(duration, statement)`` of ``duration: N ms  statement: text`` and of ``duration: N ms
    execute <name>: text`` (N digits with at most one point, " ms  " its first occurrence);
    ``_COUNTED`` for a parse/bind duration (only counted); None for anything else, which
    statement_of reads (N as messages.duration_ms reads it)."""
    end = message.find(" ms  ", 10)
    if end > 0:
        if message.startswith("statement: ", end + 5):
            duration = duration_ms(message[10:end])
            if duration is not None:
                return duration, message[end + 16:]
        elif message.startswith(("parse ", "bind "), end + 5):
            return _COUNTED
        elif message.startswith("execute ", end + 5):
            colon = message.find(": ", end + 13)
            duration = duration_ms(message[10:end])
            if colon > 0 and duration is not None:
                return duration, message[colon + 2:]
    return None


# -- the pass over one unit ---------------------------------------------------------------------
class _Pass:
    """Feeds the entries of one unit into a Scan."""

    def __init__(self, unit: Unit, settings: Settings):
        from perfkit.nplusone import RequestGrouper

        self.unit, self.settings = unit, settings
        self.scan = Scan(unit=unit)
        # a byte range after another: its requests may have begun there (scan stitches them)
        self.scan.requests = RequestGrouper(min_repeats=settings.min_repeats, max_statements=settings.max_statements,
                                            gap_ms=settings.gap_ms, critical_repeats=settings.critical_repeats,
                                            heads=unit.index > 0)
        self.shapes = Shapes()
        self.pending_duration: dict = {}   # pid -> (stats key, statement) logged without a duration (log_statement)
        self.last_exec: dict = {}          # pid -> (fingerprint, key, file, line, has plan)
        self.pending_plan: dict = {}       # pid -> (fingerprint, plan)
        self.seen_exec: set = set()        # pids with an execution in this unit (for the head_* edges)
        self.file = unit.path
        self._minute_head, self._minute_zone, self._minute_cell = None, "", None  # the last minute's cell
        from perfkit.parameters import TENANT_COLUMNS

        self.tenant_columns = tuple(TENANT_COLUMNS)
        self.tenant_cache: dict = {}
        self.slots: dict = {}              # statement text -> _slot()
        self.connection_of: dict = {}      # pid -> the connection it names (for a log without session ids)
        self.shape_slots: dict = {}        # Normalized -> its _slot() without a tenant
        self.keyed: list = []              # (key, shape, stats, statement type, fingerprint) per shape key
        self.sid_of: dict = {}             # shape key -> its index in keyed (perfkit.logs.columns)
        self._no_tenant: list | None = None  # the tenants cell of executions without a tenant
        self.slow_ms = settings.slow_ms
        self.bin_of: dict = {}             # duration -> its histogram bin
        self.requests = self.scan.requests

    def feed(self, entry: dict) -> None:
        message = entry.get("message") or ""
        if message.startswith("duration: "):
            # the common case, read here without statement_of
            timed = timed_statement(message)
            if timed is not None:
                if timed is not _COUNTED:
                    self._execution(entry, timed[0], timed[1])
                return
        level = entry.get("level") or ""
        scan = self.scan
        if message.startswith(("duration: ", "statement: ", "execute ")):
            phase, duration, statement, plan = statement_of(message)
            if phase in ("statement", "execute"):
                self._execution(entry, duration, statement)
                return
            if phase == "plan":
                self._plan(entry, duration, statement, plan)
                return
            if phase == "duration":
                pid = entry.get("pid")
                pending = self.pending_duration.pop(pid, None)
                if pending is not None:
                    self._timed(pending[0], pending[1], entry, duration)
                return
            if phase in ("parse", "bind"):
                return
        if level in ERROR_LEVELS or message[:4] in events.PREFIXES_4:
            scan.events.feed(entry, level, message, self)

    def statement_shape(self, text: str) -> tuple[str, Normalized]:
        return self.shapes.keyed(text)

    def _slot(self, statement: str) -> tuple:
        """``(key, shape, stats, statement type, fingerprint, free, sid)`` of an execution's text
        (cached by text; ``free``: no tenant whatever its parameters; ``sid``: its shape key's index in
        ``keyed``)."""
        if statement:
            key, shape = self.shapes.uncached(statement)  # (the slot is kept by its text)
        else:
            key, shape = "text:", _EMPTY_SHAPE
        # one slot per shape for the texts without a tenant (most: one tuple for all their literals)
        slot = self.shape_slots.get(shape) if statement else None
        if slot is None:
            scan = self.scan
            stats = scan.shapes.get(key)
            if stats is None:
                stats = scan.shapes[key] = ShapeStats(shape, statement)
            sid = self.sid_of.get(key)
            if sid is None:
                sid = self.sid_of[key] = len(self.keyed)
                self.keyed.append((key, shape, stats, STATEMENT_TYPES.get(shape.command, "other" if statement else "empty"),
                                   shape.fingerprint or key))
            slot = (key, shape, stats, STATEMENT_TYPES.get(shape.command, "other" if statement else "empty"),
                    shape.fingerprint or key, True, sid)
            if statement:
                if len(self.shape_slots) >= _EXACT_MAX:
                    self.shape_slots.clear()
                self.shape_slots[shape] = slot
        # no tenant whatever the parameters: no parameter of a tenant column, no request comment's tag
        if "$" in statement or "/*" in statement:
            from perfkit.tenantcost import tenant_of

            cache = self.tenant_cache
            if len(cache) >= _EXACT_MAX:
                cache.clear()
            tenant_of(statement, "", self.tenant_columns, cache)
            number, tag = cache[statement]
            if number is not None or tag:
                slot = (*slot[:5], False, slot[6])
        slots = self.slots
        if len(slots) >= _EXACT_MAX:
            slots.clear()
        slots[statement] = slot
        return slot

    def _bin(self, duration: float) -> int:
        index = math.floor(math.log10(duration) * BINS_PER_DECADE) if duration > 0 else _ZERO_BIN
        if len(self.bin_of) >= _EXACT_MAX:
            self.bin_of.clear()
        self.bin_of[duration] = index
        return index

    def _execution(self, entry: dict, duration: float, statement: str) -> None:
        slot = self.slots.get(statement)
        if slot is None:
            slot = self._slot(statement)
        get = entry.get
        self.execution(slot, slot[5], statement, duration, get("pid"), get("ts") or "", get("application") or "",
                       get("database"), get("user"), get("client"), get("session_id"), get("line"), get("detail"))

    def execution(self, slot: tuple, free: bool, statement: str, duration: float, pid, ts: str, application: str,
                  database, user, client, session, line, detail) -> None:
        """One execution of ``statement`` (its ``_slot``; ``free``: no tenant whatever its parameters)
        and its entry's fields (``ts`` and ``application`` as text, the others as read)."""
        scan = self.scan
        key, shape, stats, kind, fingerprint, _free, _sid = slot
        if not statement:
            scan.empty_statements += 1
        stats.calls += 1
        if ts:
            if ts > stats.last_ts:
                stats.last_ts = ts
            if ts < stats.first_ts or not stats.first_ts:
                stats.first_ts = ts
            # the minute: the text before the seconds and the zone after them
            head = ts[:16]
            if head == self._minute_head and ts.endswith(self._minute_zone):
                cell = self._minute_cell
            else:
                minute = _minute(ts)
                cell = scan.minutes.get(minute)
                if cell is None:
                    cell = scan.minutes[minute] = [0, 0.0]
                self._minute_head, self._minute_zone, self._minute_cell = head, " " + minute[1], cell
        else:
            cell = scan.minutes.get(("", ""))
            if cell is None:
                cell = scan.minutes[("", "")] = [0, 0.0]
        combo = (database or "", user or "", application, client or "", kind)
        counter = scan.combos.get(combo)
        if counter is None:
            counter = scan.combos[combo] = [0, 0.0]
        # the tenant: none for a text without a parameter or a comment (the common case, inlined)
        tenant = self._no_tenant
        if tenant is None or not free:
            self._tenant_row(statement, detail, key, duration, free)
            tenant = None
        if duration == duration:
            cell[0] += 1
            cell[1] += duration
            counter[0] += 1
            counter[1] += duration
            if tenant is not None:
                tenant[0] += 1
                tenant[1] += duration
                if len(tenant[2]) < _TENANT_SHAPES:
                    tenant[2].add(key)
            # _timed, inlined (scan.executions and scan.timed are the shapes' sums: see finish)
            stats.timed += 1
            stats.total_ms += duration
            index = self.bin_of.get(duration)
            if index is None:
                index = self._bin(duration)
            bins = stats.bins
            bins[index] = bins.get(index, 0) + 1
            if duration > stats.max_ms or stats.worst is None:
                stats.max_ms = max(stats.max_ms, duration)
                stats.worst = [duration, ts, statement, _known(user), _known(database),
                               _known(application), session or "", pid, self.file, line, ""]
            if duration >= self.slow_ms:
                stats.slow_calls += 1
                stats.slow_total += duration
                stats.slow_over += duration - self.slow_ms
        else:
            cell[0] += 1
            counter[0] += 1
            if tenant is not None:
                tenant[0] += 1
                if len(tenant[2]) < _TENANT_SHAPES:
                    tenant[2].add(key)
            self.pending_duration[pid] = (key, statement)
        # plans: auto_explain logs at executor end, before the duration with the simple protocol and
        # after it with server-side binding (the portal closes at the next message)
        has_plan = False
        if self.pending_plan:
            pending = self.pending_plan.pop(pid, None)
            if pending is not None and pending[0] == fingerprint:
                self._attach(stats, line, pending[1])
                has_plan = True
        seen = self.seen_exec
        if pid not in seen:
            if self.unit.index and not has_plan:
                scan.head_execs[pid] = (fingerprint, key, self.file, line)
            seen.add(pid)
        self.last_exec[pid] = (fingerprint, key, self.file, line, has_plan)
        if statement and self.requests is not None:
            if not session:
                session = self.connection_of.get(pid)
                if session is None:
                    session = self.connection_of[pid] = f"{self.file}:{pid}"
            self.requests.add(session, ts, duration, key, shape, statement, application, _epoch_ms)

    def _tenant_row(self, statement: str, detail, key: str, duration: float, free: bool) -> None:
        """One execution's cost to its tenant (``execution`` counts the common case, no tenant, itself)."""
        tenant = self._no_tenant
        if tenant is None or not free:
            self._tenant(statement, detail, key, duration)
            if tenant is None:
                self._no_tenant = self.scan.tenants.get(_NO_TENANT)
            return
        tenant[0] += 1
        if duration == duration:
            tenant[1] += duration
        if len(tenant[2]) < _TENANT_SHAPES:
            tenant[2].add(key)

    def _tenant(self, statement: str, detail, key: str, duration: float) -> None:
        """The execution's cost to its tenant (a bound tenant parameter or a request comment's tag)."""
        tenant, known = None, ""
        if "$" in statement or "/*" in statement:
            from perfkit.tenantcost import tenant_of

            detail = detail or ""
            if len(self.tenant_cache) >= _EXACT_MAX:
                self.tenant_cache.clear()
            tenant, known = tenant_of(statement, detail[12:] if detail.startswith("parameters: ") else "",
                                      self.tenant_columns, self.tenant_cache)
        tenants = self.scan.tenants
        name = _NO_TENANT if tenant is None else tenant
        cell = tenants.get(name)
        if cell is None:
            if len(tenants) >= _TENANTS_MAX:
                name = _OTHER_TENANTS
            cell = tenants.setdefault(name, [0, 0.0, set(), set()])
        cell[0] += 1
        if duration == duration:
            cell[1] += duration
        if len(cell[2]) < _TENANT_SHAPES:
            cell[2].add(key)
        if known:
            cell[3].add(known)

    def _timed(self, key: str, statement: str, entry: dict, duration: float, stats: ShapeStats | None = None) -> None:
        scan = self.scan
        own_line = stats is None  # the duration came on a line of its own (after log_statement's)
        stats = stats or scan.shapes.get(key)
        if stats is None:
            return
        stats.timed += 1
        stats.total_ms += duration
        index = math.floor(math.log10(duration) * BINS_PER_DECADE) if duration > 0 else _ZERO_BIN
        stats.bins[index] = stats.bins.get(index, 0) + 1
        if duration > stats.max_ms or stats.worst is None:
            stats.max_ms = max(stats.max_ms, duration)
            stats.worst = [duration, entry.get("ts") or "", statement, _known(entry.get("user")),
                           _known(entry.get("database")), _known(entry.get("application")),
                           entry.get("session_id") or "", entry.get("pid"), self.file, entry.get("line"), ""]
        if duration >= self.settings.slow_ms:
            stats.slow_calls += 1
            stats.slow_total += duration
            stats.slow_over += duration - self.settings.slow_ms
        if own_line:
            cell = scan.minutes.get(_minute(entry.get("ts") or ""))
            if cell is not None:
                cell[1] += duration

    def _attach(self, stats: ShapeStats, line, plan: str) -> None:
        worst = stats.worst
        if worst is not None and worst[8] == self.file and worst[9] == line:
            worst[10] = plan

    def _plan(self, entry: dict, duration: float, statement: str, plan: str) -> None:
        scan = self.scan
        pid = entry.get("pid")
        key, shape = self.statement_shape(statement) if statement else ("text:", Normalized("", None, ""))
        fingerprint = shape.fingerprint or key
        stats = scan.shapes.get(key)
        if stats is None:
            stats = scan.shapes[key] = ShapeStats(shape, statement)
        if plan and (stats.plan is None or duration > stats.plan[0]):
            stats.plan = (duration, plan, self.file, entry.get("line"), entry.get("ts") or "")
        last = self.last_exec.get(pid)
        if last is not None and not last[4] and last[0] == fingerprint:
            self._attach(stats, last[3], plan)
            self.last_exec[pid] = (*last[:4], True)
            return
        if pid not in self.seen_exec and self.unit.index:
            scan.head_plans.setdefault(pid, (fingerprint, plan))
        self.pending_plan[pid] = (fingerprint, plan)

    @staticmethod
    def epoch_ms(ts: str) -> float:
        return _epoch_ms(ts)

    def finish(self) -> Scan:
        scan = self.scan
        for pid, last in self.last_exec.items():
            if not last[4]:
                scan.tail_execs[pid] = (last[0], last[1], last[2], last[3])
        for pid, pending in self.pending_plan.items():
            scan.tail_plans[pid] = pending
        if scan.requests is not None and not _ranged(self.unit):
            scan.requests.close_all()  # (a byte range's requests stay open for the next: see _stitch)
        scan.parsed_shapes = self.shapes.parsed
        scan.executions = sum(stats.calls for stats in scan.shapes.values())
        scan.timed = sum(stats.timed for stats in scan.shapes.values())
        return scan


def _known(value) -> str:
    if value is None or value == _UNKNOWN:
        return ""
    return str(value)


def _host(client: str) -> str:
    """The host of ``%r``/csvlog's ``host:port`` or ``[local]``."""
    if client.startswith("[") or client.count(":") != 1:
        return client
    return client.rsplit(":", 1)[0]


def _connection(entry: dict, file: str) -> str:
    return entry.get("session_id") or f"{file}:{entry.get('pid')}"


def _minute(ts: str) -> tuple[str, str]:
    if not ts:
        return ("", "")
    space = ts.find(" ", 19)
    return (ts[:16], ts[space + 1:] if space > 0 else "")


@lru_cache(maxsize=4096)
def _second(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp() * 1000.0
    except ValueError:
        return float("nan")


def _epoch_ms(ts: str) -> float:
    """Milliseconds of ``ts`` (its zone ignored: only differences within one connection are used)."""
    if not ts:
        return float("nan")
    base = _second(ts[:19])
    if len(ts) > 20 and ts[19] == ".":
        digits = ts[20:23]
        if digits.isdigit():
            base += int(digits.ljust(3, "0"))
    return base


# -- reading the lines of a unit ----------------------------------------------------------------
def _range_lines(path: str, start: int, end: int | None, kind: str, prefix: LinePrefix | None,
                 base: tuple[int, int] = (0, 0), guard: tuple | None = None):
    """``(line number, text)`` of the entries that start in [start, end) of a plain file, with the
    continuation lines that follow the last of them (see :func:`_range_blocks`)."""
    for number, text in _range_blocks(path, start, end, kind, prefix, base, guard):
        yield from _block_lines(number, text)


def _block_lines(number: int, text: str):
    """``(line number, text)`` of each line of a block of whole lines (each ending with a newline)."""
    parts = text.split("\n")
    parts.pop()
    if "\r" in text:
        parts = [line[:-1] if line.endswith("\r") else line for line in parts]
    # (number, line) pairs made in C: no Python step per line
    return zip(range(number, number + len(parts)), parts, strict=True)


def _range_blocks(path: str, start: int, end: int | None, kind: str, prefix: LinePrefix | None,
                  base: tuple[int, int] = (0, 0), guard: tuple | None = None):
    """``(number of the first line, text)`` of blocks of whole lines (each ending with a newline,
    a carriage return before it kept) of the entries that start in [start, end) of a plain file,
    with the continuation lines that follow the last of them (``base``: a known line start and its
    line count, for the numbering). Read a block at a time; only the lines at the two edges are
    looked at one by one.

    ``guard``: ``(skip, report)``, what :func:`perfkit.logs.reader.guarded` does, done here (one
    generator less per line): a line too long ends the read, noted in ``report`` when ``skip``."""
    try:
        with open(path, "rb") as raw:
            number = 0
            if start == base[0] and start:
                number = base[1]
                raw.seek(start)
            elif start:
                number = _count_newlines(raw, start, base)
                raw.seek(start - 1)
                if raw.read(1) != b"\n":
                    raw.readline()
                    number += 1
            position = raw.tell()
            if start:
                # the continuation lines of an entry that began before ``start`` belong to the range before
                for data, at, text in _lines_from(raw, path, number):
                    if _continues(text, kind, prefix):
                        position += len(data)
                        continue
                    if end is not None and position >= end:
                        return
                    position += len(data)
                    number = at
                    yield number, _whole(data)
                    break
                else:
                    return
            # read into one buffer (no new buffer and no copy per block); a line begun in one block
            # is moved to the buffer's start, and the buffer grows for a line longer than it
            buffer = bytearray(_BLOCK)
            have = 0  # the bytes of a line begun in the block before, at the buffer's start
            while end is None or position < end:
                if have == len(buffer):
                    buffer.extend(bytes(len(buffer)))
                with memoryview(buffer) as view:
                    got = raw.readinto(view[have:])
                    if not got:
                        if have:
                            yield number + 1, _whole(bytes(view[:have]))
                        return
                    total = have + got
                    cut = buffer.rfind(b"\n", have, total) + 1  # the bytes of whole lines
                    if not cut:
                        if total > MAX_LINE_BYTES:
                            raise BadInputError(f"a line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB: not a "
                                                "PostgreSQL log line", path=path, line=number + 1)
                        have = total
                        continue
                    complete = cut
                    if end is not None and position + cut > end:
                        # the lines that start before ``end``; those after it only if they continue an entry
                        complete = buffer.find(b"\n", end - position - 1, cut) + 1 if end > position else 0
                    text = str(view[:complete], "utf-8", "replace")
                    if text:
                        yield number + 1, text
                        number += text.count("\n")
                    position += complete
                    have = total - cut
                    buffer[:have] = bytes(view[cut:total])
                if have < _BLOCK < len(buffer):
                    del buffer[_BLOCK:]
            raw.seek(position)
            for data, at, text in _lines_from(raw, path, number):
                if not _continues(text, kind, prefix):
                    return
                yield at, _whole(data)
    except BadInputError as err:
        if guard is None or not guard[0]:
            raise
        guard[1].skip(Path(path), formats.BadRecord(err.line or 0, str(err)))


def _whole(data: bytes) -> str:
    """One line read alone, as a block: its text, ending with a newline."""
    text = data.decode("utf-8", errors="replace")
    return text if text.endswith("\n") else text + "\n"


_BLOCK = 1 << 20


def _lines_from(raw, path: str, number: int):
    """``(bytes, line number, text)`` of each line from ``raw``'s position, read one at a time
    (``number``: the lines before it)."""
    while True:
        data = _one_line(raw, path, number)
        if not data:
            return
        number += 1
        yield data, number, _decoded(data)


def _one_line(raw, path: str, number: int) -> bytes:
    data = raw.readline(MAX_LINE_BYTES + 1)
    if len(data) > MAX_LINE_BYTES:
        raise BadInputError(f"a line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB: not a PostgreSQL "
                            "log line", path=path, line=number + 1)
    return data


def _decoded(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def _continues(text: str, kind: str, prefix: LinePrefix | None) -> bool:
    """Whether ``text`` belongs to the entry before it."""
    if kind == "jsonlog":
        return False
    if kind == "csvlog":
        return not formats.CSV_RECORD_START.match(text)
    if not text or text.startswith("\t"):
        return True
    found = prefix.match(text) if prefix is not None else None
    return found is None or found.get("level") in SECONDARY_LEVELS


def _count_newlines(raw: io.BufferedReader, upto: int, base: tuple[int, int] = (0, 0)) -> int:
    since = base[0] if base[0] <= upto else 0
    raw.seek(since)
    count, left = (base[1] if since else 0), upto - since
    while left > 0:
        block = raw.read(min(left, 8 << 20))
        if not block:
            break
        count += block.count(b"\n")
        left -= len(block)
    return count


def scan_unit(unit: Unit, settings: Settings) -> Scan:
    """One unit read into a partial Scan."""
    one = _Pass(unit, settings)
    report = one.scan.report
    path = Path(unit.path)
    report.files.append(unit.path)
    report.formats[unit.path] = unit.kind
    if unit.prefix is not None:
        report.prefixes[unit.path] = unit.prefix
    if unit.kind == "binary":
        return one.finish()
    prefix = LinePrefix(unit.prefix) if unit.prefix is not None else None
    first_bad: list = []

    def consume(records) -> int:
        """Feed ``records``: how many were entries (a parse/bind duration, None, is only counted)."""
        feed, bad_class, scan = one.feed, formats.BadRecord, one.scan
        count = bad = 0
        for record in records:
            count += 1
            if record is None:
                continue
            if record.__class__ is bad_class:
                bad += 1
                if not first_bad:
                    first_bad.append(record)
                _bad(scan, path, record, settings)
                continue
            feed(record)
        return count - bad

    plain = unit.path != "-" and compression(unit.path) is None
    if unit.kind == "stderr" and prefix is not None and plain and settings.engine != "python":
        from perfkit.logs.scanner import BlockReader, block_pattern

        pattern = block_pattern(prefix)
        if pattern is not None:
            reader = BlockReader(one, prefix, pattern, consume)
            for number, text in _range_blocks(unit.path, unit.start, unit.end, unit.kind, prefix, unit.base,
                                              (settings.skip_bad_lines, report)):
                reader.block(number, text)
            reader.finish()
            return _finished(one, report, reader.records, first_bad, path, settings)
    if unit.end is not None or unit.start:
        lines = _range_lines(unit.path, unit.start, unit.end, unit.kind, prefix, unit.base,
                             (settings.skip_bad_lines, report))
    else:
        lines = guarded(numbered_lines(path), path, settings.skip_bad_lines, report)
    if unit.kind == "syslog":
        changed = datetime.fromtimestamp(path.stat().st_mtime)
        lines = formats.syslog_as_stderr(lines, changed.year, changed.month)
    if unit.kind == "jsonlog":
        records = formats.read_jsonlog(lines, fast=True)
    elif unit.kind == "csvlog":
        records = formats.read_csvlog(lines, fast=True)
    else:
        records = formats.read_stderr(lines, prefix, fast=True)
    return _finished(one, report, consume(records), first_bad, path, settings)


def _finished(one: _Pass, report: ReadReport, entries: int, first_bad: list, path: Path, settings: Settings) -> Scan:
    report.entries += entries
    if first_bad and not settings.skip_bad_lines and report.skipped_lines >= report.entries:
        # most of it unreadable: the wrong file, format or prefix, not a stray line
        raise BadInputError(first_bad[0].reason, path=path, line=first_bad[0].line)
    return one.finish()


def _bad(scan: Scan, path: Path, record: formats.BadRecord, settings: Settings) -> None:
    """A line that is not a log record: a note (skipped and counted), not the end of the read.

    Only a file where as many lines are unreadable as read stops (see scan_unit)."""
    scan.report.skip(path, record)


# -- planning the units and running them --------------------------------------------------------
def plan_units(paths, settings: Settings, jobs: int, resume: dict | None = None) -> list[Unit]:
    """The units of work over ``paths``: each file's format and prefix decided once from its first lines.

    ``resume`` (incremental runs, ``perfkit.logs.incremental``): path -> ``(start, end, lines before
    start)``, the part of a plain file to read; a file whose part is empty is left out."""
    from perfkit.logs.reader import detect_format

    units: list[Unit] = []
    seen: set[str] = set()
    for path in expand(paths):
        # a file named twice (a glob and a name that overlap) is read once
        real = os.path.realpath(path) if str(path) != "-" else "-"
        if real in seen:
            continue
        seen.add(real)
        part = (resume or {}).get(str(path))
        if part is not None and part[1] is not None and part[0] >= part[1]:
            continue
        kind, prefix = detect_format(path, settings.prefix, settings.format, settings.skip_bad_lines)
        plain = compression(path) is None and kind in ("stderr", "csvlog", "jsonlog")
        start, end, base = (part[0], part[1], (part[0], part[2])) if part is not None and plain else (0, None, (0, 0))
        size = (end if end is not None else path.stat().st_size) - start
        if plain and jobs > 1 and size >= RANGE_MIN_BYTES:
            pieces = max(2, min(jobs * PIECES_PER_JOB, size // (RANGE_MIN_BYTES // 2)))
            step = size // pieces
            cuts = [start + i * step for i in range(pieces)] + [end]
            for index, (low, high) in enumerate(itertools.pairwise(cuts)):
                units.append(Unit(str(path), kind, prefix, low, high, index, base))
        elif plain and part is not None:
            units.append(Unit(str(path), kind, prefix, start, end, 0, base))
        else:
            units.append(Unit(str(path), kind, prefix))
    return units


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _run(args: tuple[Unit, Settings]) -> Scan:
    return scan_unit(*args)


def scan(paths, settings: Settings = Settings(), resume: dict | None = None, meanwhile=None) -> Scan:
    """One pass over the logs ``paths``, on ``settings.jobs`` processes (default: every core);
    ``resume``: the parts of files to read (see :func:`plan_units`); ``meanwhile``: a function run
    once while the files are being read (what the caller will need next, loaded in the meantime).

    Raises
    ------
    BadInputError
        A file that cannot be read, a format or prefix that cannot be told.
    """
    jobs = settings.jobs or default_jobs()
    units = plan_units(paths, settings, jobs, resume)
    total_bytes = sum(os.path.getsize(p) for p in {u.path for u in units})
    later = [meanwhile] if meanwhile is not None else []
    whole = _whole_files(units, settings, jobs, resume, later)
    order = list(dict.fromkeys(u.path for u in units))
    units = [u for u in units if u.path not in whole]
    workers = min(jobs, len(units))
    units = _line_bases(units)
    if workers > 1:
        with _pool(workers) as pool:
            running = [pool.submit(_run, (u, settings)) for u in units]
            _run_later(later)
            partials = [future.result() for future in running]
    else:
        partials = [scan_unit(u, settings) for u in units]
    _run_later(later)
    _stitch(partials)
    merged = Scan()
    if not order:
        merged.total_bytes = 0
        return merged
    # in the files' order: a file read whole by DuckDB where its units would have been
    position = {path: index for index, path in enumerate(order)}
    pieces = sorted([*((position[p], 0, s) for p, s in whole.items()),
                     *((position[s.unit.path], i + 1, s) for i, s in enumerate(partials))], key=lambda t: t[:2])
    partials = [piece[2] for piece in pieces]
    for index, partial in enumerate(partials):
        merged.merge(partial)
        following = partials[index + 1] if index + 1 < len(partials) else None
        if (following is not None and following.unit.path == partial.unit.path and following.unit.index
                and partial.unit.path not in whole):
            merged.pair_edges(partial, following)
    merged.report.files = order
    merged.total_bytes = total_bytes
    return merged


def _ranged(unit: Unit) -> bool:
    """A byte range of a file (its requests may go on past its edges), not a whole file."""
    return unit.index > 0 or unit.end is not None


def _stitch(partials: list[Scan]) -> None:
    """The requests of each file's consecutive byte ranges as one pass over the file makes them: a
    request open at a range's end goes on in the next (RequestGrouper.follow); closed at the end of
    the file's last range."""
    chain = None  # the grouper of the ranges of one file so far
    for partial in partials:
        requests = partial.requests
        if chain is not None and partial.unit.index:  # (its grouper kept its heads: see _Pass)
            chain.follow(requests)
            partial.requests = None
            continue
        if chain is not None:
            chain.close_all()
        chain = requests if requests is not None and _ranged(partial.unit) else None
    if chain is not None:
        chain.close_all()


def _line_bases(units: list[Unit]):
    """Each unit, a byte range with a base just before it: the line start before its first byte and
    the lines before that, counted in one pass over each file (else each range counts the lines from
    the start of the file, as many passes as ranges). A generator: the first ranges go to work while
    the lines before the next ones are counted."""
    import dataclasses

    files: dict[str, list] = {}  # path -> [file, its block, the block's offset, lines before it, last line start]
    try:
        for unit in units:
            if not unit.index:
                yield unit
                continue
            state = files.get(unit.path)
            if state is None:
                base_at, lines = unit.base if unit.base[0] <= unit.start else (0, 0)
                raw = open(unit.path, "rb")  # noqa: SIM115 - closed below
                raw.seek(base_at)
                state = files[unit.path] = [raw, raw.read(8 << 20), base_at, lines, base_at]
            raw, block, position, lines, line_start = state
            cut = unit.start
            while block and position + len(block) < cut:
                newline = block.rfind(b"\n")
                if newline >= 0:
                    line_start = position + newline + 1
                lines += block.count(b"\n")
                position += len(block)
                block = raw.read(8 << 20)
            upto = cut - position
            newline = block.rfind(b"\n", 0, upto)
            base = (position + newline + 1 if newline >= 0 else line_start, lines + block.count(b"\n", 0, upto))
            state[1:] = [block, position, lines, line_start]
            yield dataclasses.replace(unit, base=base)
    finally:
        for state in files.values():
            state[0].close()


def _run_later(later: list) -> None:
    """The caller's ``meanwhile``, once."""
    while later:
        later.pop()()


def _whole_files(units: list[Unit], settings: Settings, jobs: int, resume: dict | None,
                 later: list) -> dict[str, Scan]:
    """The files DuckDB reads whole (perfkit.logs.duck): path -> Scan; the others are left to the
    Python pass (an engine of "python", a compressed file, a part of a file, a file DuckDB would not
    read as the Python readers do)."""
    if settings.engine == "python":
        return {}
    from perfkit.logs import duck

    done: dict[str, Scan] = {}
    for path in dict.fromkeys(u.path for u in units):
        first = next(u for u in units if u.path == path)
        part = (resume or {}).get(path)
        unit = Unit(path, first.kind, first.prefix)
        if part is not None and (part[0] or part[1] != os.path.getsize(path)):
            continue
        if duck.eligible(unit, any_size=settings.engine == "duckdb"):
            result = duck.scan_file(unit, settings, jobs, later, None if part is None else part[1])
            if result is not None:
                result.engines[path] = "duckdb"
                done[path] = result
    return done


@contextlib.contextmanager
def _pool(workers: int):
    """Worker processes forked from this one (its objects kept out of their collections: fewer
    copy-on-write pages)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            yield pool
    finally:
        gc.unfreeze()


def top_shapes(shapes: dict[str, ShapeStats], n: int, key) -> list[ShapeStats]:
    return heapq.nlargest(n, shapes.values(), key=key)


def shape_key_of(stats: ShapeStats) -> str:
    return stats.fingerprint or "text:" + stats.normalized
