"""log_line_prefix: turns the server's prefix setting into a matcher for stderr log lines.

``LinePrefix("%m [%p] ")`` matches a line and returns the prefix fields and the message after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from perfkit.errors import BadInputError

# What each escape prints (PostgreSQL docs, log_line_prefix), as a pattern and a column name.
_TIMESTAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
_ZONE = r"(?: [A-Za-z0-9+:_/-]+)?"
ESCAPES: dict[str, tuple[str, str | None, str]] = {
    # escape: (pattern, column or None, description)
    "a": (r".*?", "application", "application name"),
    "u": (r".*?", "user", "user name"),
    "d": (r".*?", "database", "database name"),
    "r": (r"\S*?", "client", "remote host and port"),
    "h": (r"\S*?", "client", "remote host"),
    "b": (r".*?", "backend_type", "backend type"),
    "p": (r"\d+", "pid", "process id"),
    "P": (r"\d*", "leader_pid", "parallel group leader process id"),
    "t": (_TIMESTAMP + _ZONE, "ts", "timestamp without milliseconds"),
    "m": (_TIMESTAMP + r"\.\d{3}" + _ZONE, "ts", "timestamp with milliseconds"),
    "n": (r"\d+\.\d{3}", "ts_epoch", "timestamp as Unix epoch"),
    "i": (r".*?", "command_tag", "command tag"),
    "e": (r"[0-9A-Z]{5}", "sqlstate", "SQLSTATE error code"),
    "c": (r"[0-9a-f]+\.[0-9a-f]+", "session_id", "session id"),
    "l": (r"\d+", "session_line", "log line number of the session"),
    "s": (_TIMESTAMP + _ZONE, None, "process start timestamp"),
    "v": (r"(?:-?\d+/-?\d+)?", "vxid", "virtual transaction id"),
    "x": (r"\d*", "txid", "transaction id"),
    "Q": (r"-?\d*", "query_id", "query id"),
}
# Levels PostgreSQL writes after the prefix; DETAIL and the others continue the previous entry.
LEVELS = (
    "DEBUG5", "DEBUG4", "DEBUG3", "DEBUG2", "DEBUG1", "DEBUG", "INFO", "NOTICE", "WARNING",
    "ERROR", "LOG", "FATAL", "PANIC",
    "DETAIL", "HINT", "QUERY", "CONTEXT", "LOCATION", "STATEMENT",
)
SECONDARY_LEVELS = frozenset({"DETAIL", "HINT", "QUERY", "CONTEXT", "LOCATION", "STATEMENT"})
# in the regex, the most frequent first (the alternatives are tried in order; each is followed by ":  ")
_BY_FREQUENCY = ("LOG", "DETAIL", "STATEMENT", "ERROR", "CONTEXT", "HINT", "WARNING", "FATAL", "NOTICE", "INFO",
                 "QUERY", "LOCATION", "PANIC", "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "DEBUG")
assert sorted(_BY_FREQUENCY) == sorted(LEVELS)
_LEVEL = r"(?P<level>" + "|".join(_BY_FREQUENCY) + r"):  (?:[0-9A-Z]{5}: )?(?P<message>.*+)"

TIME_ESCAPES = ("m", "t", "n")
PROCESS_ESCAPES = ("p", "c")

# Prefixes seen in the field, tried in order when the caller gives none.
COMMON_PREFIXES = (
    "%m [%p] ",                                             # PostgreSQL's default since 10
    "%m [%p] %q%u@%d ",                                     # Debian and Ubuntu packages
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",      # pgBadger's recommendation
    "%t [%p]: [%l-1] user=%u,db=%d ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: ",
    "%t [%p-%l] %q%u@%d ",
    "%m %u@%d %p %r ",
)


@dataclass
class _Piece:
    text: str          # the piece as written in the prefix
    pattern: str       # its regular expression
    optional_rest: bool = False  # %q: what follows is absent for non-session processes


@dataclass
class LinePrefix:
    """A compiled ``log_line_prefix``.

    Parameters
    ----------
    prefix:
        The server's setting, as ``SHOW log_line_prefix`` prints it (e.g. ``"%m [%p] "``).
    require:
        Raise :class:`~perfkit.errors.BadInputError` when the prefix lacks a timestamp
        (``%m``, ``%t`` or ``%n``) or a process (``%p`` or ``%c``), which perfkit needs to
        order statements and tell sessions apart.
    """

    prefix: str
    require: bool = True
    pieces: list[_Piece] = field(init=False, repr=False)
    columns: list[str] = field(init=False, repr=False)
    regex: re.Pattern = field(init=False, repr=False)
    fast: re.Pattern | None = field(init=False, repr=False)  # the regex without backtracking (_fast)

    def __post_init__(self) -> None:
        self.pieces, escapes = _split(self.prefix)
        self.columns = []
        for escape in escapes:
            column = ESCAPES[escape][1]
            if column and column not in self.columns:
                self.columns.append(column)
        if self.require:
            missing = missing_escapes(escapes)
            if missing:
                raise BadInputError(
                    f"log_line_prefix {self.prefix!r} lacks {' and '.join(missing)}, which perfkit "
                    "needs to order statements and tell sessions apart; set log_line_prefix = "
                    "'%m [%p] ' (or add the missing escapes) on the server, or pass the prefix the "
                    "server really used with --prefix"
                )
        self.regex = re.compile(_assemble(self.pieces) + _LEVEL, re.DOTALL)
        self.fast = _fast(self.pieces)

    def match(self, line: str) -> dict | None:
        """The prefix fields, ``level`` and ``message`` of ``line``, or None when it does not match."""
        found = (self.fast.match(line) if self.fast is not None else None) or self.regex.match(line)
        if found is None:
            return None
        fields = found.groupdict()
        if None in fields.values():
            return {k: v for k, v in fields.items() if v is not None}
        return fields

    def explain_mismatch(self, line: str) -> str:
        """Where ``line`` stops following the prefix, in words, for error messages."""
        matched = ""
        for count in range(1, len(self.pieces) + 1):
            partial = re.compile(_assemble(self.pieces[:count]), re.DOTALL)
            if partial.match(line) is None:
                piece = self.pieces[count - 1]
                found = re.compile(_assemble(self.pieces[: count - 1]), re.DOTALL).match(line)
                rest = line[found.end():] if found else line
                what = piece.text if piece.text.startswith("%") else repr(piece.text)
                return (
                    f"after {matched!r} the prefix expects {what} but the line has {_clip(rest)!r}"
                    if matched
                    else f"the prefix expects {what} at the start but the line has {_clip(rest)!r}"
                )
            matched += self.pieces[count - 1].text
        found = re.compile(_assemble(self.pieces), re.DOTALL).match(line)
        rest = line[found.end():] if found else line
        return f"after the prefix, a level such as 'LOG:  ' is expected but the line has {_clip(rest)!r}"


def missing_escapes(escapes) -> list[str]:
    """What perfkit needs from a prefix that ``escapes`` (letters) does not give, in words."""
    missing = []
    if not any(e in escapes for e in TIME_ESCAPES):
        missing.append("a timestamp (%m, %t or %n)")
    if not any(e in escapes for e in PROCESS_ESCAPES):
        missing.append("a process id (%p or %c)")
    return missing


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width] + "..."


def _split(prefix: str) -> tuple[list[_Piece], list[str]]:
    pieces: list[_Piece] = []
    escapes: list[str] = []
    literal = ""
    i = 0
    while i < len(prefix):
        char = prefix[i]
        if char != "%":
            literal += char
            i += 1
            continue
        # %[-][width]X
        j = i + 1
        left_align = j < len(prefix) and prefix[j] == "-"
        if left_align:
            j += 1
        digits = ""
        while j < len(prefix) and prefix[j].isdigit():
            digits += prefix[j]
            j += 1
        if j >= len(prefix):
            raise BadInputError(f"log_line_prefix {prefix!r} ends with a lone '%'")
        escape = prefix[j]
        text = prefix[i: j + 1]
        i = j + 1
        if escape == "%":
            literal += "%"
            continue
        if literal:
            pieces.append(_Piece(literal, re.escape(literal)))
            literal = ""
        if escape == "q":
            pieces.append(_Piece(text, "", optional_rest=True))
            continue
        if escape not in ESCAPES:
            known = ", ".join("%" + e for e in ESCAPES)
            raise BadInputError(f"log_line_prefix {prefix!r} has an unknown escape {text!r} (known: {known}, %q, %%)")
        pattern, column, _ = ESCAPES[escape]
        group = f"(?P<{column}>{pattern})" if column and column not in _columns(pieces) else f"(?:{pattern})"
        if digits:
            group = f" *{group}" if not left_align else f"{group} *"
        pieces.append(_Piece(text, group))
        escapes.append(escape)
    if literal:
        pieces.append(_Piece(literal, re.escape(literal)))
    return pieces, escapes


_LAZY_GROUP = re.compile(r"\((\?P<\w+>|\?:)(\.\*\?|\\S\*\?)\)")
_RUNS = {  # patterns of one run of characters: what may follow them and leave them one match
    ESCAPES[e][0]: chars for e, chars in (("p", "0123456789"), ("l", "0123456789"), ("x", "0123456789"),
                                         ("P", "0123456789"), ("Q", "-0123456789"), ("e", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                                         ("c", "0123456789abcdef."), ("v", "-/0123456789"), ("n", "0123456789."))
}
_ZONE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+:_/-")


def _fast(pieces: list[_Piece]) -> re.Pattern | None:
    """The prefix's regex without backtracking where a lazy field (``%u``, ``%d``, ``%a``, ``%h``...)
    is followed by a literal: ``.*?`` then ``,`` becomes ``[^,]*`` then ``,``.

    Where it matches, its match is the regex's: every choice before such a field is forced (a
    literal; a run of digits, or a timestamp and zone, that the next literal cannot continue; a
    field made so), and the regex tries each lazy field's end at the literal's first character
    first. Where it does not match (a user name with a comma), the caller tries the regex. None
    when no field qualifies, with padding or with %q."""
    if any(piece.optional_rest for piece in pieces):
        return None
    out, changed = [], False
    for index, piece in enumerate(pieces):
        pattern = piece.pattern
        following = pieces[index + 1].text if index + 1 < len(pieces) else ""
        literal = following and not following.startswith("%")
        found = _LAZY_GROUP.fullmatch(pattern)
        if found and literal:
            first = following[0]
            if found.group(2) == ".*?":
                body = "[^" + re.escape(first) + "]*"
            else:
                body = r"\S*" if first.isspace() else "[^\\s" + re.escape(first) + "]*"
            out.append("(" + found.group(1) + body + ")")
            changed = True
            continue
        out.append(pattern)
        if not piece.text.startswith("%"):
            continue  # a literal
        inner = re.fullmatch(r"\((?:\?P<\w+>|\?:)(.*)\)", pattern, re.S)
        inner = inner.group(1) if inner else pattern
        forced = literal and (
            (inner in _RUNS and following[0] not in _RUNS[inner])
            or (inner.endswith(_ZONE) and following[:1] == " " and following[1:2] not in _ZONE_CHARS | {""}))
        if not forced:
            break  # what follows may be matched otherwise by the regex: left as it is
    if not changed:
        return None
    rest = _assemble(pieces[len(out):])
    return re.compile("".join(out) + rest + _LEVEL, re.DOTALL)


def _columns(pieces: list[_Piece]) -> set[str]:
    return {name for piece in pieces for name in re.findall(r"\?P<(\w+)>", piece.pattern)}


def _assemble(pieces: list[_Piece]) -> str:
    """The regular expression of ``pieces``; after %q the rest is optional."""
    out = ""
    for index, piece in enumerate(pieces):
        if piece.optional_rest:
            rest = _assemble(pieces[index + 1:])
            return out + f"(?:{rest})?" if rest else out
        out += piece.pattern
    return out


def detect(lines: list[str]) -> LinePrefix | None:
    """The common prefix that matches most of ``lines`` (at least half of them), or None."""
    best, best_score = None, 0
    candidates = [line for line in lines if line and not line.startswith("\t")]
    if not candidates:
        return None
    inferred = [text for text in dict.fromkeys(infer(line) for line in candidates[:50]) if text]
    for text in (*COMMON_PREFIXES, *[t for t in inferred if t not in COMMON_PREFIXES]):
        try:
            prefix = LinePrefix(text)
        except BadInputError:
            continue
        if verify_prefix(prefix, candidates):
            continue
        score = sum(1 for line in candidates if prefix.match(line))
        if score > best_score:
            best, best_score = prefix, score
    return best if best_score * 2 >= len(candidates) else None


# a field that swallowed part of the prefix: "[queryid=1] postgres", ",host=10.0.0.1,app=psql"
_SWALLOWED = re.compile(r"[\[\]]|(?:^|[,\s])\w+=")
_HOST = re.compile(r"^(?:\[local\]|[\w.:%-]*)(?:\(\d+\))?$")


def verify_prefix(prefix: LinePrefix, lines: list[str]) -> str:
    """What is wrong with reading ``lines`` with ``prefix`` (a field that swallowed the rest of the
    prefix on most lines), or ``""``."""
    matched = bad = 0
    example = ""
    for text in lines:
        if not text or text.startswith("\t"):
            continue
        found = prefix.match(text)
        if found is None:
            continue
        matched += 1
        for name in ("user", "database"):
            value = found.get(name) or ""
            if value and value != "[unknown]" and _SWALLOWED.search(value):
                bad += 1
                example = example or f"{name} would read {value[:40]!r}"
                break
        else:
            client = found.get("client") or ""
            if client and not _HOST.match(client):
                bad += 1
                example = example or f"the client host would read {client[:40]!r}"
    if matched and bad * 10 > matched:
        return f"{example} on {bad} of {matched} sample lines"
    return ""


_HEAD = re.compile(r"(?:DEBUG[1-5]?|INFO|NOTICE|WARNING|ERROR|LOG|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT|QUERY):  ")
_INFER = (
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}(?: [A-Za-z0-9+:_/-]+)?(?= )"), "%m"),
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [A-Za-z0-9+:_/-]+)?(?= )"), "%t"),
    (re.compile(r"^\d{10}\.\d{3}(?= )"), "%n"),
)
_FIELDS = (
    (re.compile(r"\[\d+-1\]"), "[%l-1]"),
    (re.compile(r"\[\d+\]"), "[%p]"),
    (re.compile(r"\b(user|usr|u)=[^,\s]*"), r"\1=%u"),
    (re.compile(r"\b(db|database|d)=[^,\s]*"), r"\1=%d"),
    (re.compile(r"\b(app|application|application_name|a)=[^,\s]*"), r"\1=%a"),
    (re.compile(r"\b(client|host|remote|h)=[^,\s]*"), r"\1=%h"),
)


def infer(line: str) -> str:
    """A log_line_prefix read off one line: its timestamp, ``[pid]`` and ``key=value`` fields as
    escapes (``user=app,db=shop`` -> ``user=%u,db=%d``); ``""`` when the line shows none of them."""
    found = _HEAD.search(line)
    if found is None:
        return ""
    head = line[: found.start()]
    text = ""
    for pattern, escape in _INFER:
        stamp = pattern.match(head)
        if stamp:
            text, head = escape, head[stamp.end():]
            break
    if not text:
        return ""
    for pattern, escape in _FIELDS:
        head = pattern.sub(escape, head, count=1)
    return text + head
