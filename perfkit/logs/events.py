"""The server's own messages counted in one pass: errors, temporary files, checkpoints, autovacuum,
lock waits and deadlocks, connections and sessions, cancelled statements (what pgBadger reports).

``Events.feed(entry, level, message, pass_)`` takes one log entry; ``merge`` adds another pass's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# the first four characters of the messages read here (a cheap test before any regex)
PREFIXES_4 = frozenset({"temp", "chec", "auto", "proc", "conn", "disc", "dead", "canc", "rest"})

TEMP_FILE = re.compile(r'^temporary file: path "(?P<path>[^"]*)", size (?P<size>\d+)')
CHECKPOINT_START = re.compile(r"^(?P<what>checkpoint|restartpoint) starting: (?P<flags>.*)$")
CHECKPOINT_DONE = re.compile(
    r"^(?:checkpoint|restartpoint) complete: wrote (?P<buffers>\d+) buffers \((?P<pct>[\d.]+)%\)"
    r".*?write=(?P<write>[\d.]+) s, sync=(?P<sync>[\d.]+) s, total=(?P<total>[\d.]+) s"
    r"(?:.*?distance=(?P<distance>\d+) kB, estimate=(?P<estimate>\d+) kB)?", re.S)
AUTOVACUUM = re.compile(r'^automatic (?P<aggressive>aggressive )?(?P<what>vacuum|analyze) (?:to prevent wraparound )?'
                        r'of table "(?P<table>[^"]+)"')
ELAPSED = re.compile(r"elapsed: (?P<s>[\d.]+) s")
REMOVED = re.compile(r"tuples: (?P<removed>\d+) removed(?:, (?P<remain>\d+) remain, (?P<held>\d+) are dead but not yet "
                     r"removable)?")
DEAD_ITEMS = re.compile(r"had (?P<items>\d+) dead item identifiers removed")
INDEX_SCANS = re.compile(r"index scans: (?P<scans>\d+)")
LOCK_WAIT = re.compile(r"^process (?P<pid>\d+) (?P<state>still waiting for|acquired) (?P<mode>\w+) on (?P<object>.+?) "
                       r"after (?P<ms>[\d.]+) ms")
DEADLOCK_STATEMENT = re.compile(r"^Process (?P<pid>\d+): (?P<sql>.*)$", re.M)
CONNECTION_AUTHORIZED = re.compile(r"^connection (?:authorized|authenticated): (?P<rest>.*)$")
DISCONNECTION = re.compile(r"^disconnection: session time: (?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)(?P<rest>.*)$")
_WORDS = re.compile(r"(?P<key>user|database|application_name|host)=(?P<value>\S*)")
# a message with its particulars (names, numbers) left out: its class
_PARTICULARS = re.compile(r'"[^"]*"|\b\d+(?:\.\d+)?\b|\$\d+')

_KEEP_EXAMPLES = 20


def message_class(message: str) -> str:
    """``relation "x" does not exist`` -> ``relation "…" does not exist``: messages of one kind together."""
    first = message.split("\n", 1)[0]
    return _PARTICULARS.sub(lambda m: '"…"' if m.group(0).startswith('"') else "N", first)[:200]


def _bump(table: dict, key, amount: float = 0.0) -> list:
    cell = table.get(key)
    if cell is None:
        cell = table[key] = [0, 0.0]
    cell[0] += 1
    cell[1] += amount
    return cell


@dataclass
class Events:
    """What the server said about itself, as counters (bounded by kinds, tables, shapes, hours)."""

    errors: dict = field(default_factory=dict)        # (level, sqlstate, class) -> [count, example, statement]
    temp_files: dict = field(default_factory=dict)    # shape key -> [count, bytes, max bytes, normalized, example]
    checkpoints: dict = field(default_factory=dict)   # reason -> count (starts)
    checkpoint_done: list = field(default_factory=lambda: [0, 0.0, 0.0, 0.0, 0, 0, 0])
    # completes, write s, sync s, total s, buffers, distance kB sum, max distance kB
    checkpoint_times: list = field(default_factory=list)  # ts texts of starts (bounded by checkpoints)
    # (what, table) -> [runs, elapsed s, removed, max s, most dead tuples a run found, the live tuples
    # of that run, most dead tuples a run could not remove, most index scans of a run]
    autovacuum: dict = field(default_factory=dict)
    lock_waits: dict = field(default_factory=dict)    # (mode, object kind, shape) -> [waits, ms, max ms, sql]
    deadlocks: list = field(default_factory=list)     # {ts, statements, detail} (first _KEEP_EXAMPLES)
    deadlock_count: int = 0
    cancelled: dict = field(default_factory=dict)     # reason -> [count, example statement]
    connections: dict = field(default_factory=dict)   # (dimension, value) -> [connections, 0]
    connection_total: int = 0
    connection_hours: dict = field(default_factory=dict)  # hour text -> count
    sessions: dict = field(default_factory=dict)      # (dimension, value) -> [sessions, seconds]
    session_total: list = field(default_factory=lambda: [0, 0.0, 0.0])  # sessions, seconds, max seconds
    error_hours: dict = field(default_factory=dict)   # hour text -> count

    def feed(self, entry: dict, level: str, message: str, reader) -> None:
        if level in ("ERROR", "FATAL", "PANIC"):
            self._error(entry, level, message, reader)
            return
        head = message[:4]
        if head == "temp":
            found = TEMP_FILE.match(message)
            if found:
                self._temp(entry, int(found["size"]), reader)
        elif head in ("chec", "rest"):
            self._checkpoint(entry, message)
        elif head == "auto":
            found = AUTOVACUUM.match(message)
            if found:
                text = message + "\n" + (entry.get("detail") or "")
                self._autovacuum(found, text)
        elif head == "proc":
            found = LOCK_WAIT.match(message)
            if found and found["state"] == "still waiting for":
                self._lock_wait(entry, found, reader)
        elif head == "conn":
            found = CONNECTION_AUTHORIZED.match(message)
            if found:
                self.connection_total += 1
                ts = entry.get("ts") or ""
                hour = _hour(ts)
                self.connection_hours[hour] = self.connection_hours.get(hour, 0) + 1
                words = dict(w.groups() for w in _WORDS.finditer(found["rest"]))
                values = {"user": words.get("user") or entry.get("user") or "",
                          "database": words.get("database") or entry.get("database") or "",
                          "application": words.get("application_name") or "",
                          "host": _host(entry.get("client") or "")}
                for dimension, value in values.items():
                    _bump(self.connections, (dimension, value))
        elif head == "disc":
            found = DISCONNECTION.match(message)
            if found:
                seconds = int(found["h"]) * 3600 + int(found["m"]) * 60 + float(found["s"])
                words = dict(w.groups() for w in _WORDS.finditer(found["rest"]))
                total = self.session_total
                total[0] += 1
                total[1] += seconds
                total[2] = max(total[2], seconds)
                for dimension in ("user", "database", "host"):
                    _bump(self.sessions, (dimension, words.get(dimension, "")), seconds)

    def _autovacuum(self, found: re.Match, text: str) -> None:
        elapsed = ELAPSED.search(text)
        tuples = REMOVED.search(text)
        items = DEAD_ITEMS.search(text)
        scans = INDEX_SCANS.search(text)
        seconds = float(elapsed["s"]) if elapsed else 0.0
        removed = int(tuples["removed"]) if tuples else 0
        held = int(tuples["held"]) if tuples and tuples["held"] else 0
        remain = int(tuples["remain"]) if tuples and tuples["remain"] else 0
        # PostgreSQL 14+: tuples pruned before vacuum came are counted as dead item identifiers
        dead = max(removed, int(items["items"]) if items else 0) + held
        cell = self.autovacuum.get((found["what"], found["table"]))
        if cell is None:
            cell = self.autovacuum[(found["what"], found["table"])] = [0, 0.0, 0, 0.0, 0, 0, 0, 0]
        cell[0] += 1
        cell[1] += seconds
        cell[2] += removed
        cell[3] = max(cell[3], seconds)
        if dead > cell[4]:
            cell[4], cell[5] = dead, max(remain - held, 0)
        cell[6] = max(cell[6], held)
        cell[7] = max(cell[7], int(scans["scans"]) if scans else 0)

    def _error(self, entry: dict, level: str, message: str, reader) -> None:
        sqlstate = entry.get("sqlstate") or ""
        if message[:5].isalnum() and message[5:7] == ": " and message[:5].isupper():
            sqlstate, message = sqlstate or message[:5], message[7:]
        statement = entry.get("query") or ""
        hour = _hour(entry.get("ts") or "")
        self.error_hours[hour] = self.error_hours.get(hour, 0) + 1
        if message.startswith("canceling statement due to") or sqlstate == "57014":
            reason = message.split(" due to ", 1)[-1] if " due to " in message else message
            cell = self.cancelled.setdefault(reason, [0, statement])
            cell[0] += 1
        if message.startswith("deadlock detected") or sqlstate == "40P01":
            self.deadlock_count += 1
            if len(self.deadlocks) < _KEEP_EXAMPLES:
                detail = entry.get("detail") or ""
                statements = [m["sql"] for m in DEADLOCK_STATEMENT.finditer(detail)]
                self.deadlocks.append({"ts": entry.get("ts") or "", "statements": statements or [statement],
                                       "detail": detail, "file": reader.file, "line": entry.get("line")})
        key = (level, sqlstate, message_class(message))
        cell = self.errors.get(key)
        if cell is None:
            self.errors[key] = [1, message.split("\n", 1)[0][:300], statement[:500]]
        else:
            cell[0] += 1

    def _temp(self, entry: dict, size: int, reader) -> None:
        statement = entry.get("query") or ""
        key, shape = reader.statement_shape(statement) if statement else ("", None)
        cell = self.temp_files.get(key)
        if cell is None:
            cell = self.temp_files[key] = [0, 0, 0, shape.normalized if shape else "", statement[:2000]]
        cell[0] += 1
        cell[1] += size
        cell[2] = max(cell[2], size)

    def _checkpoint(self, entry: dict, message: str) -> None:
        found = CHECKPOINT_START.match(message)
        if found:
            flags = found["flags"].split()
            reason = "time" if "time" in flags else ("wal" if "wal" in flags else (" ".join(flags) or "requested"))
            self.checkpoints[reason] = self.checkpoints.get(reason, 0) + 1
            self.checkpoint_times.append(entry.get("ts") or "")
            return
        found = CHECKPOINT_DONE.match(message)
        if found:
            done = self.checkpoint_done
            done[0] += 1
            done[1] += float(found["write"])
            done[2] += float(found["sync"])
            done[3] += float(found["total"])
            done[4] += int(found["buffers"])
            distance = int(found["distance"] or 0)
            done[5] += distance
            done[6] = max(done[6], distance)

    def _lock_wait(self, entry: dict, found: re.Match, reader) -> None:
        statement = entry.get("query") or ""
        key, shape = reader.statement_shape(statement) if statement else ("", None)
        what = found["object"].split(" ", 1)[0]
        cell_key = (found["mode"], what, key)
        cell = self.lock_waits.get(cell_key)
        ms = float(found["ms"])
        if cell is None:
            cell = self.lock_waits[cell_key] = [0, 0.0, 0.0, shape.normalized if shape else "", statement[:500]]
        cell[0] += 1
        cell[1] += ms
        cell[2] = max(cell[2], ms)

    def merge(self, other: Events) -> None:
        for key, cell in other.errors.items():
            mine = self.errors.get(key)
            if mine is None:
                self.errors[key] = cell
            else:
                mine[0] += cell[0]
        for key, cell in other.temp_files.items():
            mine = self.temp_files.get(key)
            if mine is None:
                self.temp_files[key] = cell
            else:
                mine[0] += cell[0]
                mine[1] += cell[1]
                mine[2] = max(mine[2], cell[2])
        for key, count in other.checkpoints.items():
            self.checkpoints[key] = self.checkpoints.get(key, 0) + count
        done = self.checkpoint_done
        for i in range(6):
            done[i] += other.checkpoint_done[i]
        done[6] = max(done[6], other.checkpoint_done[6])
        self.checkpoint_times.extend(other.checkpoint_times)
        for key, cell in other.autovacuum.items():
            mine = self.autovacuum.get(key)
            if mine is None:
                self.autovacuum[key] = cell
            else:
                mine[0] += cell[0]
                mine[1] += cell[1]
                mine[2] += cell[2]
                mine[3] = max(mine[3], cell[3])
                if cell[4] > mine[4]:
                    mine[4], mine[5] = cell[4], cell[5]
                mine[6] = max(mine[6], cell[6])
                mine[7] = max(mine[7], cell[7])
        for key, cell in other.lock_waits.items():
            mine = self.lock_waits.get(key)
            if mine is None:
                self.lock_waits[key] = cell
            else:
                mine[0] += cell[0]
                mine[1] += cell[1]
                mine[2] = max(mine[2], cell[2])
        self.deadlocks.extend(other.deadlocks[: max(0, _KEEP_EXAMPLES - len(self.deadlocks))])
        self.deadlock_count += other.deadlock_count
        for key, cell in other.cancelled.items():
            mine = self.cancelled.setdefault(key, [0, cell[1]])
            mine[0] += cell[0]
        for name in ("connections", "sessions"):
            mine = getattr(self, name)
            for key, cell in getattr(other, name).items():
                target = mine.setdefault(key, [0, 0.0])
                target[0] += cell[0]
                target[1] += cell[1]
        self.connection_total += other.connection_total
        for name in ("connection_hours", "error_hours"):
            mine = getattr(self, name)
            for key, count in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + count
        total = self.session_total
        total[0] += other.session_total[0]
        total[1] += other.session_total[1]
        total[2] = max(total[2], other.session_total[2])


def _hour(ts: str) -> tuple[str, str]:
    """``("2024-05-01 12", "UTC")``: the hour of a log timestamp and its zone."""
    if not ts:
        return ("", "")
    space = ts.find(" ", 19)
    return (ts[:13], ts[space + 1:] if space > 0 else "")


def _host(client: str) -> str:
    if client.startswith("[") or client.count(":") != 1:
        return client.split("(", 1)[0]
    return client.rsplit(":", 1)[0]
