"""A stderr log read a block of lines at a time: one regex search over the block finds its lines.

``formats.read_stderr`` matches the prefix line by line and makes a dict of every entry for
``stream._Pass.feed``. Here the prefix's regex, made to stop at the end of a line, runs over a
whole block (``re.finditer``): a line that follows the prefix is a match, and the Python work per
line is what its fields need. An execution (``duration: N ms  statement|execute …``) goes to
``_Pass.execution`` with its fields as they are, without a dict; a DETAIL (HINT...) line of the
same process is folded into the entry before it, as ``read_stderr`` folds it.

Whatever else comes (a line the regex does not match: a tab continuation line, a blank line, a
line another regex would read, a line that is not a log line; a DETAIL line of another process or
without an entry; a NUL or a carriage return in the block) is read by ``read_stderr`` itself, from
the entry before it (whose lines it may continue) to the next line that starts an entry. The
entries, their line numbers and the bad records are ``read_stderr``'s, line for line.
"""

from __future__ import annotations

import operator
import re

from perfkit.logs import formats
from perfkit.logs.prefix import SECONDARY_LEVELS, LinePrefix
from perfkit.logs.stream import timed_statement

# the entry fields of a prefix's groups that an execution reads (None where the prefix has none)
_FIELDS = ("ts", "pid", "session_id", "application", "database", "user", "client")


def block_pattern(prefix: LinePrefix) -> re.Pattern | None:
    """The regex ``read_stderr`` tries first (the fast one, or the prefix's own), for a search over
    a block of lines: anchored at a line start, no part of it crossing a line end. None for a
    prefix with a line break in it."""
    if "\n" in prefix.prefix or "\r" in prefix.prefix:
        return None
    source = _one_line((prefix.fast if prefix.fast is not None else prefix.regex).pattern)
    # the line's prefix as a group (head): a DETAIL line right after it with the very same prefix
    # (PostgreSQL writes one for every line of a message) is read in the same match, its prefix
    # compared as text, not matched again (the regex would split it as it split the line above)
    level = source.index("(?P<level>")
    if not source.endswith(_MESSAGE):
        return None
    source = (f"(?P<head>{source[:level]}){source[level:-len(_MESSAGE)]}{_TIMED}"
              r"(?:\n(?P=head)DETAIL:  (?:[0-9A-Z]{5}: )?(?P<detail>.*+))?(?P<absent>(?!))?")
    return re.compile("^" + source, re.MULTILINE)  # no DOTALL: "." stops at a line end


_MESSAGE = "(?P<message>.*+)"
# The message, with what timed_statement tells read in the same match: "duration: N ms  statement:
# text" and "duration: N ms  execute <name>: text" (their text: stmt, N: ms) and a parse/bind
# duration (pb). N is digits with at most one point, so " ms  " right after it is its first
# occurrence, and the name ends at the first ": ", as timed_statement finds them. A message this
# does not read so (another N, a parse with a bad N...) is timed_statement's (its message whole).
_TIMED = (r"(?P<message>duration: (?P<ms>[0-9]+\.?[0-9]*|\.[0-9]+) ms  "
          r"(?:(?:statement: |execute [^\n]*?: )(?P<stmt>.*+)|(?P<pb>parse |bind ).*+)|.*+)")


def _one_line(source: str) -> str:
    """``source`` with every negated class unable to match a line break (``.`` is, without DOTALL)."""
    out: list[str] = []
    index, size = 0, len(source)
    in_class = False
    while index < size:
        char = source[index]
        if char == "\\":
            # a digit is an ASCII one here (a line with another digit is read_stderr's)
            out.append("[0-9]" if source.startswith("\\d", index) and not in_class else source[index:index + 2])
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            out.append(char)
        elif char == "[":
            in_class = True
            if source.startswith("[^", index):
                out.append("[^\\n")
                index += 2
                if source.startswith("]", index):  # a ] right after [^ is one of the class
                    out.append("\\]")
                    index += 1
                continue
            out.append(char)
            if source.startswith("]", index + 1):
                out.append("\\]")
                index += 1
        else:
            out.append(char)
        index += 1
    return "".join(out)


class BlockReader:
    """Reads the blocks of one unit into a ``stream._Pass`` (``one``)."""

    def __init__(self, one, prefix: LinePrefix, pattern: re.Pattern, consume):
        self.one, self.prefix, self.pattern = one, prefix, pattern
        self.consume = consume          # records of read_stderr -> the entries among them, fed to ``one``
        index = pattern.groupindex
        # the entry's fields, as read_stderr names them (not the head and the DETAIL after it)
        self.names = [(name, at - 1) for name, at in sorted(index.items(), key=lambda item: item[1])
                      if name not in ("head", "detail", "ms", "stmt", "pb", "absent")]
        self.level_at, self.message_at, self.detail_at = index["level"] - 1, index["message"] - 1, index["detail"] - 1
        self.stmt_at, self.ms_at, self.pb_at = index["stmt"] - 1, index["ms"] - 1, index["pb"] - 1
        # an execution's fields out of a match's groups (a group that never matches for a field the
        # prefix lacks)
        self.fields = operator.itemgetter(*(index[name if name in index else "absent"] - 1 for name in _FIELDS))
        # what tells one process's lines from another's (read_stderr's ident)
        self.ident_at = [index[name] - 1 for name in ("pid", "session_id") if name in index]
        # the entry read last, kept until the line after it says it is whole: [kind ("e" an execution,
        # "p" a parse/bind duration, only counted, "o" any other entry), first line, offset in this
        # block (0: its start is in ``parts``), text in the blocks before, groups, DETAIL, entry dict,
        # duration, statement]
        self.held: list | None = None
        self.region: list | None = None  # [first line, text parts, offset]: lines read_stderr reads
        self.records = 0

    # -- blocks ----------------------------------------------------------------------------------
    def block(self, number: int, text: str) -> None:
        """The whole lines ``text`` (each ending with a newline), the first of them line ``number``."""
        if "\x00" in text or "\r" in text:
            # read_stderr's own cases (binary content; line ends it strips): all of it read there
            region = self.region or self._open(0, number)
            region[1].append(text[region[2]:])
            region[2] = 0
            return
        held, region = self.held, self.region
        secondary, level_at, message_at, detail_at = SECONDARY_LEVELS, self.level_at, self.message_at, self.detail_at
        stmt_at, ms_at, pb_at = self.stmt_at, self.ms_at, self.pb_at
        ident_at = self.ident_at
        emit, names = self._emit, self.names
        records = self.records
        position, line = 0, number
        count = text.count
        for found in self.pattern.finditer(text):
            start = found.start()
            if start != position:
                # lines the regex did not read: read_stderr reads them, with the entry before them
                if region is None:
                    self.held = held
                    region = self._open(position, line)
                    held = None
                line += count("\n", position, start)
                position = start
            groups = found.groups()
            level = groups[level_at]
            detail = groups[detail_at]  # the DETAIL line read with this one, if any
            if level in secondary:
                if region is None and held is not None:
                    mine = held[4]
                    for at in ident_at:
                        value = groups[at]
                        if value is not None and mine[at] is not None and value != mine[at]:
                            break
                    else:
                        # a DETAIL (STATEMENT...) line of the entry above
                        if held[0] == "o":
                            held[6][formats._SECONDARY_FIELD[level]] = groups[message_at]
                            if detail is not None:
                                held[6]["detail"] = detail
                        elif level == "DETAIL" or detail is not None:
                            held[5] = groups[message_at] if detail is None else detail
                        position = found.end() + 1
                        line += 1 if detail is None else 2
                        continue
                if region is None:
                    self.held = held
                    region = self._open(position, line)
                    held = None
                position = found.end() + 1
                line += 1 if detail is None else 2
                continue
            # a line that starts an entry: the one before it is whole
            if region is not None:
                self.records = records
                self._read(region, text, position)
                records = self.records
                region = self.region = None
            elif held is not None:
                records += 1
                if held[0] != "p":
                    emit(held)
            statement = groups[stmt_at]
            if statement is not None:  # an execution the regex read
                held = ["e", line, position, None, groups, detail, None, float(groups[ms_at]), statement]
            elif groups[pb_at] is not None:  # a parse/bind duration the regex read
                held = ["p", line, position, None, groups, None, None, 0.0, ""]
            else:
                message = groups[message_at]
                timed = timed_statement(message) if message.startswith("duration: ") else None
                if timed is None:
                    entry = {name: groups[at] for name, at in names if groups[at] is not None}
                    entry["line"] = line
                    if detail is not None:
                        entry["detail"] = detail
                    held = ["o", line, position, None, groups, None, entry, 0.0, ""]
                elif timed.__class__ is tuple:
                    held = ["e", line, position, None, groups, detail, None, timed[0], timed[1]]
                else:
                    held = ["p", line, position, None, groups, None, None, 0.0, ""]
            position = found.end() + 1
            line += 1 if detail is None else 2
        self.records = records
        if position < len(text) and region is None:
            self.held = held
            region = self._open(position, line)
            held = None
        # what goes on into the next block
        if region is not None:
            region[1].append(text[region[2]:])
            region[2] = 0
        elif held is not None:
            held[3] = [*(held[3] or ()), text[held[2]:]]
            held[2] = 0
        self.held, self.region = held, region

    def finish(self) -> None:
        """The end of the unit: the last entry is whole."""
        if self.region is not None:
            self._read(self.region, "", 0)
            self.region = None
        elif self.held is not None:
            held, self.held = self.held, None
            self.records += 1
            self._emit(held)

    def _emit(self, held: list) -> None:
        """A whole entry into the pass: an execution with its fields, another entry as a dict."""
        one = self.one
        if held[0] == "e":
            ts, pid, session, application, database, user, client = self.fields(held[4])
            statement = held[8]
            slot = one.slots.get(statement) or one._slot(statement)
            one.execution(slot, slot[5], statement, held[7], pid, ts or "", application or "", database, user,
                          client, session, held[1], held[5])
        elif held[0] == "o":
            one.feed(held[6])

    # -- regions read by read_stderr ------------------------------------------------------------
    def _open(self, position: int, line: int) -> list:
        """A region for read_stderr from the held entry (if any), else from ``position``."""
        held = self.held
        if held is not None:
            region = [held[1], held[3] or [], held[2]]
            self.held = None
        else:
            region = [line, [], position]
        self.region = region
        return region

    def _read(self, region: list, text: str, end: int) -> None:
        from perfkit.logs.stream import _block_lines

        parts = region[1]
        if text:
            parts.append(text[region[2]:end])
        lines = _block_lines(region[0], "".join(parts))
        self.records += self.consume(formats.read_stderr(lines, self.prefix, fast=True))
