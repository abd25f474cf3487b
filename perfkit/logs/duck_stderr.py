"""A stderr log as DuckDB rows: the entries ``formats.read_stderr`` yields, as one SQL query.

``stderr_relation(path, prefix)`` is a SELECT over the plain log file ``path`` written with
``log_line_prefix = prefix.prefix``, one row per entry in file order: ``line`` (BIGINT, its first
line), a VARCHAR per field of the prefix (``prefix.columns``), ``level``, ``message``, ``detail``,
``hint``, ``context``, ``query``, ``internal_query``, ``location`` (NULL where read_stderr's entry
has no such key) and ``bad`` (BOOLEAN: the row stands for something read_stderr yields as a
BadRecord, or for a file this query cannot read exactly as Python does: compressed, a UTF-8 byte
order mark, a name DuckDB would read as a glob; its other columns are NULL). A caller falls back
to the Python reader for the whole file when a row is bad or DuckDB raises (InvalidInputException:
a byte that is not UTF-8, a carriage return anywhere, a line over ``MAX_LINE_BYTES``; IOException).

The prefix's Python regex is translated to RE2 (DuckDB's engine) piece by piece (``to_re2``);
None when it holds what RE2 cannot say the same way. ASCII lines are read with a faster pattern
where it provably takes them as Python does (``fast_re2``, ``fast_runs``), the others with the
full one. Lines are folded in SQL: one window over all lines (the process of the line with a
prefix above, the kinds of the lines around), entries of up to three lines without a tab line
put together from it, the others (multi-line statements) grouped.
"""

from __future__ import annotations

import functools
import os
import re
import stat

from perfkit.logs.prefix import _LEVEL, _ZONE, ESCAPES, LEVELS, SECONDARY_LEVELS, LinePrefix
from perfkit.logs.sources import _MAGIC, MAX_LINE_BYTES

# the fields a DETAIL (STATEMENT...) line fills on the entry above it (formats._SECONDARY_FIELD)
SECONDARY_FIELDS = {
    "DETAIL": "detail", "HINT": "hint", "CONTEXT": "context", "STATEMENT": "query",
    "QUERY": "internal_query", "LOCATION": "location",
}
assert set(SECONDARY_FIELDS) == SECONDARY_LEVELS
ENTRY_FIELDS = ("level", "message", "detail", "hint", "context", "query", "internal_query", "location")
# what Python's \s matches in a str pattern (str.isspace); \S is its complement. RE2's own \s is
# ASCII without \v: spelled out (tests/test_duck_stderr.py compares both over every code point)
_PY_SPACE = r"\x{9}-\x{d}\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
# Python's \d in a str pattern: a decimal digit of Python's Unicode tables (str.isdecimal); RE2's
# \p{Nd} follows a newer Unicode (digits Python does not know), so the class is spelled out, built
# on first use (a scan of the code points, ~0.1 s)
_PY_DIGIT = "\\d"  # placeholder in translated patterns, replaced by _digit_class() or [0-9]


@functools.cache
def _digit_class() -> str:
    # one regex scan over every code point (a loop in Python takes ten times as long)
    every = "".join(map(chr, range(0x110000)))
    ranges = [(found.start(), found.end() - 1) for found in re.finditer(r"\d+", every)]
    return "[" + "".join(_hex(a) + "-" + _hex(b) if a != b else _hex(a) for a, b in ranges) + "]"


def _hex(point: int) -> str:
    return "\\x{" + format(point, "x") + "}"


_LEVEL_TAIL = "(?P<message>.*+)"
assert _LEVEL.endswith(_LEVEL_TAIL)


class Untranslatable(ValueError):
    """A Python regex construct with no equal in RE2."""


def _literal(char: str) -> str:
    return char if char.isascii() and char.isalnum() else _hex(ord(char))


def to_re2(pattern: str) -> tuple[str, list[str]]:
    """``pattern`` (a Python ``re`` pattern of the kinds prefix.py writes, matched with DOTALL on
    str) as an RE2 pattern with the same matches and the same groups, and the names of its
    capturing groups in order (named groups become plain ones; unnamed ones do not capture).

    Raises Untranslatable for lookarounds, backreferences, possessive quantifiers, anchors, flags,
    ``\\w``/``\\b``-style classes and anything else not known to mean the same in both engines."""
    out: list[str] = []
    names: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 >= n:
                raise Untranslatable("a lone backslash")
            nxt = pattern[i + 1]
            if nxt == "d":
                out.append(_PY_DIGIT)
            elif nxt == "s":
                out.append(f"[{_PY_SPACE}]")
            elif nxt == "S":
                out.append(f"[^{_PY_SPACE}]")
            elif nxt.isascii() and nxt.isalnum():
                raise Untranslatable(f"the escape \\{nxt}")
            else:
                out.append(_literal(nxt))
            i += 2
            continue
        if char == "(":
            if pattern.startswith("(?P<", i):
                end = pattern.index(">", i)
                names.append(pattern[i + 4: end])
                out.append("(")
                i = end + 1
            elif pattern.startswith("(?:", i):
                out.append("(?:")
                i += 3
            elif pattern.startswith("(?", i):
                raise Untranslatable(f"the group {pattern[i:i + 4]!r}")
            else:
                out.append("(?:")  # Python's groupdict leaves unnamed groups out
                i += 1
            continue
        if char == "[":
            i = _char_class(pattern, i, out)
            continue
        if char in "*+?}":
            out.append(char)
            i += 1
            if i < n and pattern[i] == "+":
                raise Untranslatable("a possessive quantifier")
            if i < n and pattern[i] == "?":
                out.append("?")
                i += 1
            continue
        if char == "{":
            end = pattern.find("}", i)
            body = pattern[i + 1: end] if end > 0 else ""
            if not re.fullmatch(r"\d+(?:,\d*)?", body) or max(int(x) for x in body.split(",") if x) > 1000:
                raise Untranslatable(f"the repetition {{{body}}}")
            out.append("{" + body)
            i = end
            continue
        if char in "^$":
            raise Untranslatable(f"the anchor {char!r}")
        if char in ".|)":
            out.append(char)
        else:
            out.append(_literal(char))
        i += 1
    return "".join(out), names


def _char_class(pattern: str, i: int, out: list[str]) -> int:
    """Copies the class starting at ``pattern[i] == "["`` into ``out``; the index after it."""
    j = i + 1
    body = ["["]
    if j < len(pattern) and pattern[j] == "^":
        body.append("^")
        j += 1
    first = True
    while True:
        if j >= len(pattern):
            raise Untranslatable("an unclosed class")
        char = pattern[j]
        if char == "]" and not first:
            break
        first = False
        if char == "\\":
            nxt = pattern[j + 1]
            if nxt == "d":
                raise Untranslatable("\\d in a class")
            elif nxt.isascii() and nxt.isalnum():
                raise Untranslatable(f"the escape \\{nxt} in a class")
            else:
                body.append(_literal(nxt))
            j += 2
            continue
        if char == "[":
            raise Untranslatable("a nested class or set operation")
        body.append("-" if char == "-" else _literal(char))
        j += 1
    body.append("]")
    out.append("".join(body))
    return j + 1


def prefix_re2(prefix: LinePrefix) -> tuple[str, list[tuple[str, int]], int] | None:
    """The RE2 pattern of ``prefix`` up to and with the level (and a SQLSTATE after it), anchored,
    DOTALL; each capturing group's (column, depth of %q parts around it); the number of %q parts.

    Group 1 is the whole head (so the message is what follows it); group 2 ... of each %q part is
    the whole part (its groups take part in the match when it is not empty, or always when it can
    match nothing). None when a piece cannot be said in RE2, or when the process (pid,
    session_id) sits after a %q (where read_stderr compares a process that may be missing).
    """
    try:
        body, groups, optional = _assemble_re2(prefix.pieces, 0)
        level, names = to_re2(_LEVEL[: -len(_LEVEL_TAIL)])
    except Untranslatable:
        return None
    if any(name in ("pid", "session_id") and depth > 0 for name, depth in groups):
        return None
    groups = [("_head", 0), *groups, *((name, 0) for name in names)]
    return f"(?s)^({body}{level})", groups, optional


def _assemble_re2(pieces, depth: int, fast: bool = False) -> tuple[str, list[tuple[str, int]], int]:
    """prefix._assemble in RE2: after %q, the rest is an optional group, captured whole.
    ``fast``: each lazy field followed by a literal (``user=%u,db=``) cannot hold the literal's
    first character (``[^,]*``): see fast_re2."""
    out = ""
    groups: list[tuple[str, int]] = []
    for index, piece in enumerate(pieces):
        if piece.optional_rest:
            rest, inner, count = _assemble_re2(pieces[index + 1:], depth + 1, fast)
            if not rest:
                return out, groups, 0
            return out + f"(?:({rest}))?", [*groups, (f"_opt{depth + 1}", depth), *inner], count + 1
        pattern, names = to_re2(piece.pattern)
        after = pieces[index + 1] if index + 1 < len(pieces) else None
        if fast and _kind(piece) == "lazy" and _literal_piece(after):
            stop = _literal(after.text[0])
            pattern = pattern.replace(".*?", f"[^{stop}]*").replace(f"[^{_PY_SPACE}]*?", f"[^{_PY_SPACE}{stop}]*")
        out += pattern
        groups.extend((name, depth) for name in names)
    return out, groups, 0


_LAZY = frozenset("audrhbi")
# the escapes whose pattern holds no choice but a greedy run of a class (or none), and the
# characters the literal after them must not start with for the run to end at one place only
_FORCED = {"p": "0123456789", "l": "0123456789", "P": "0123456789", "x": "0123456789",
           "Q": "-0123456789", "c": "0123456789abcdef", "v": "-/0123456789", "n": "", "e": ""}
_ZONE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+:_/-")


def _literal_piece(piece) -> bool:
    return piece is not None and not piece.optional_rest and piece.pattern == re.escape(piece.text) and bool(piece.text)


def _kind(piece) -> str:
    """"literal", "q", "lazy" (a lazy field, unpadded), "forced" or "free" (a choice an earlier
    choice could make differently) for a piece of a prefix."""
    if piece.optional_rest:
        return "q"
    if _literal_piece(piece):
        return "literal"
    escape, padded = piece.text[-1], len(piece.text) > 2
    if padded:
        return "free"
    return "lazy" if escape in _LAZY else "fixed:" + escape


def _forced(piece, after) -> bool:
    """Whether ``piece`` (not lazy) can end at one place only whatever the line: its class run is
    followed by a literal that cannot continue it."""
    escape = piece.text[-1]
    if not _literal_piece(after):
        return escape in ("n", "e")  # no run at their end
    first = after.text[0]
    if escape in _FORCED:
        return first not in _FORCED[escape] and not first.isdecimal()
    if escape in ("m", "t", "s"):
        # a timestamp, then an optional " zone": the literal after it tells them apart
        if first in _ZONE_CHARS or first.isdecimal():
            return False
        return first != " " or (len(after.text) > 1 and after.text[1] not in _ZONE_CHARS and after.text[1] != " "
                                and not after.text[1].isdecimal())
    return False


def fast_re2(prefix: LinePrefix) -> str | None:
    """The prefix's RE2 pattern with each lazy field that a literal follows (``user=%u,db=``) made
    a run of the characters but the literal's first (``[^,]*``), whose RE2 match is several times
    faster; None when that pattern could take a line another way than Python's regex does.

    Where the fast pattern matches, Python's match is the same: a path Python prefers differs at a
    choice before; at a shortened lazy field it stops at once (the literal's first character is
    not there); every other choice before the last such field is forced (a class run the literal
    after it cannot continue, a timestamp whose zone the literal tells apart); a %q part the fast
    match did not take is checked by the caller (read with the full pattern)."""
    pieces = prefix.pieces
    last = max((i for i, piece in enumerate(pieces)
                if _kind(piece) == "lazy" and _literal_piece(pieces[i + 1] if i + 1 < len(pieces) else None)),
               default=None)
    # without such a field, the fast pattern is the full one (its runs still faster: fast_runs)
    for index, piece in enumerate(pieces[: last or 0]):
        kind = _kind(piece)
        after = pieces[index + 1]
        if kind in ("literal", "q"):
            continue
        if kind == "lazy":
            if not _literal_piece(after):
                return None
        elif kind == "free" or not _forced(piece, after):
            return None
    try:
        body, _, _ = _assemble_re2(pieces, 0, fast=True)
        level, _ = to_re2(_LEVEL[: -len(_LEVEL_TAIL)])
    except Untranslatable:
        return None
    return f"(?s)^({body}{level})"


_SORTED_LEVELS = "|".join(sorted(LEVELS))
# the level as its own group; sorted, the alternatives share their prefixes and RE2 reads them one
# character at a time (no level is another's prefix before ":  ", so the order changes no match)
_LEVEL_TAIL_RE2 = f"((?:{_SORTED_LEVELS}):  (?:[0-9A-Z]{{5}}: )?)"
# RE2's one-pass engine (several times faster than its others) takes at most this many groups
_ONE_PASS_GROUPS = 4


def fast_runs(prefix: LinePrefix) -> list[tuple[str, list[str]]] | None:
    """fast_re2's pattern as a few patterns of at most four groups each (which RE2 runs with its
    one-pass engine when it can): each matches the same head and captures some of its pieces,
    named by column (``_dupN`` a repeated escape, ``_optK`` a %q part, ``_tail`` the level with
    ":  " and the SQLSTATE after it); a timestamp a space and a character no zone has follow is
    captured with that space (``_ts_<column>``). None when there is no fast pattern."""
    if fast_re2(prefix) is None:
        return None
    pieces = prefix.pieces
    if any(_kind(piece) == "free" for piece in pieces):
        return None  # padded: its value is not the whole piece
    tokens: list[tuple] = []  # (kind, regex or None, group name or None)
    seen: set[str] = set()
    dup = depth = 0
    skip_space = False
    for index, piece in enumerate(pieces):
        after = pieces[index + 1] if index + 1 < len(pieces) else None
        if piece.optional_rest:
            depth += 1
            tokens.append(("open", None, f"_opt{depth}"))
            continue
        if _literal_piece(piece):
            text = piece.text[1:] if skip_space else piece.text
            skip_space = False
            tokens.append(("lit", "".join(_literal(char) for char in text), None))
            continue
        escape = piece.text[-1]
        pattern, column, _ = ESCAPES[escape]
        if column in seen or column is None:
            dup += 1
            name = f"_dup{dup}"
        else:
            name = column
            seen.add(column)
        inner, _ = to_re2(pattern)
        if escape in _LAZY and _literal_piece(after):
            stop = _literal(after.text[0])
            inner = inner.replace(".*?", f"[^{stop}]*").replace(f"[^{_PY_SPACE}]*?", f"[^{_PY_SPACE}{stop}]*")
        if escape in ("m", "t", "s") and pattern.endswith(_ZONE) and _literal_piece(after) \
                and after.text.startswith(" ") and _forced(piece, after):
            core, _ = to_re2(pattern[: -len(_ZONE)])
            zone, _ = to_re2(_ZONE[4:-2])  # the zone's class and +
            inner = f"{core}\\x{{20}}(?:{zone}\\x{{20}})?"
            name = f"_ts_{name}"
            skip_space = True
        tokens.append(("esc", inner, name))
    names = [name for kind, _, name in tokens if kind in ("esc", "open")] + ["_tail"]
    runs = []
    for start in range(0, len(names), _ONE_PASS_GROUPS):
        capture = set(names[start: start + _ONE_PASS_GROUPS])
        out = ""
        closes = 0
        for kind, regex, name in tokens:
            if kind == "lit":
                out += regex
            elif kind == "esc":
                out += f"({regex})" if name in capture else f"(?:{regex})"
            else:
                out += "(?:(" if name in capture else "(?:(?:"
                closes += 1
        out += "))?" * closes
        tail = _LEVEL_TAIL_RE2 if "_tail" in capture else _LEVEL_TAIL_RE2.replace("(", "(?:", 1)
        runs.append((out, tail, [n for n in names if n in capture]))
    return [(f"(?s)^{body}{tail}", group_names) for body, tail, group_names in runs]


def _python_rest_can_be_empty(prefix: LinePrefix) -> list[bool]:
    """For each %q part (outermost first): whether its Python pattern matches the empty string
    (then read_stderr's match always takes the part, its groups present, possibly empty)."""
    from perfkit.logs.prefix import _assemble

    out = []
    for index, piece in enumerate(prefix.pieces):
        if piece.optional_rest:
            rest = _assemble(prefix.pieces[index + 1:])
            if rest:
                out.append(re.fullmatch(rest, "", re.DOTALL) is not None)
    return out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _columns(prefix: LinePrefix) -> list[str]:
    return ["line", *prefix.columns, *ENTRY_FIELDS, "bad"]


def _bad_relation(prefix: LinePrefix) -> str:
    cols = ", ".join(f"NULL::VARCHAR AS {_ident(c)}" for c in [*prefix.columns, *ENTRY_FIELDS])
    return f"SELECT NULL::BIGINT AS line, {cols}, true AS bad"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _readable_exactly(path: str) -> bool:
    """Whether DuckDB's CSV reader sees the lines numbered_lines does: a regular file, not
    compressed, without a UTF-8 byte order mark (which DuckDB drops and Python keeps), whose name
    DuckDB will not read as a glob."""
    if any(char in path for char in "*?[]{}") or "\x00" in path:
        return False
    try:
        mode = os.stat(path).st_mode
        with open(path, "rb") as raw:
            head = raw.read(6)
    except OSError:
        return False
    if not stat.S_ISREG(mode):
        return False
    if head.startswith(b"\xef\xbb\xbf"):
        return False
    return not any(head.startswith(magic) for magic, _ in _MAGIC)


def stderr_relation(path: str, prefix: LinePrefix) -> str | None:
    """The SELECT of the entries of the stderr log ``path`` (see the module's docstring), or None
    when ``prefix`` cannot be said in RE2."""
    translated = prefix_re2(prefix)
    if translated is None:
        return None
    if not _readable_exactly(os.fspath(path)):
        return _bad_relation(prefix)
    pattern, groups, _ = translated
    # the Unicode digits make RE2 several times slower than [0-9]: an ASCII line (as many bytes as
    # characters) holds no other digit, nor a space other than ASCII's, so it is read with [0-9]
    ascii_pattern = pattern.replace(_PY_DIGIT, "[0-9]")
    pattern = pattern.replace(_PY_DIGIT, _digit_class())
    fast = fast_re2(prefix)
    empty_ok = _python_rest_can_be_empty(prefix)
    names = [name for name, _ in groups]
    # a group of a %q part is there when the part (and each part around it) matched
    def present(name: str, depth: int) -> str:
        value = f"m.{_ident(name)}"
        conditions = [f"m._opt{k} <> ''" for k in range(1, depth + 1) if not empty_ok[k - 1]]
        return f"CASE WHEN {' AND '.join(conditions)} THEN {value} END" if conditions else value

    fields = {}
    for name, depth in groups:
        if name.startswith("_") or name in ("level", "message") or name in fields:
            continue
        fields[name] = present(name, depth)
    assert list(fields) == list(prefix.columns), (list(fields), prefix.columns)
    ident_keys = [key for key in ("pid", "session_id") if key in prefix.columns]
    file = _quote(os.path.abspath(os.fspath(path)))
    source = (
        f"read_csv({file}, columns = {{'l': 'VARCHAR'}}, header = false, delim = '\\0', quote = '', "
        f"escape = '', comment = '', new_line = '\\n', auto_detect = false, strict_mode = true, "
        f"compression = 'none', max_line_size = {MAX_LINE_BYTES}, null_padding = false, skip = 0)"
    )
    name_list = "[" + ", ".join(_quote(name) for name in names) + "]"
    secondary = ", ".join(_quote(level) for level in sorted(SECONDARY_LEVELS))
    field_case = "CASE level " + " ".join(
        f"WHEN {_quote(level)} THEN {_quote(field)}" for level, field in SECONDARY_FIELDS.items()) + " END"
    cols = [_ident(name) for name in fields]
    keys = [_ident(k) for k in ident_keys]
    extracted = "".join(f"{expr} AS {_ident(name)}, " for name, expr in fields.items())
    carried = "".join(f"{c}, " for c in cols)
    nulls = "".join("NULL, " for _ in cols)
    later = [_ident(f) for f in ENTRY_FIELDS[2:]]
    text = {f: f.replace(chr(34), chr(39)) for f in later}  # the field's name as a SQL string

    def same(a: str, b: str) -> str:
        # _same_process of two lines whose process columns are named "<a>key", "<b>key"
        return "".join(f" AND {a}{k[1:-1]} = {b}{k[1:-1]}" for k in keys)

    def sec(level: str) -> str:
        return f"{level} IN ({secondary})"

    def field_of(level: str) -> str:
        return field_case.replace("CASE level", f"CASE {level}")

    # the window over all lines: the previous 1-3 lines with the prefix (IGNORE NULLS: tab lines
    # between them), the two lines before and the three after
    window = [f"lag(CASE WHEN kind = 'P' THEN n END, {i} IGNORE NULLS) OVER w AS pn{i}" for i in (1, 2, 3)]
    window += [f"lag(CASE WHEN kind = 'P' THEN {k} END, {i} IGNORE NULLS) OVER w AS p{i}{k[1:-1]}"
               for k in keys for i in (1, 2, 3)]
    window += [f"coalesce(lag(kind, {i}) OVER w, '') AS lk{i}" for i in (1, 2)]
    window += [f"lag(level, {i}) OVER w AS ll{i}" for i in (1, 2)]
    window += [f"coalesce(lead(kind, {i}) OVER w, '') AS nk{i}" for i in (1, 2, 3)]
    window += [f"lead(level, {i}) OVER w AS nl{i}" for i in (1, 2, 3)]
    window += [f"lead({k}, {i}) OVER w AS n{i}{k[1:-1]}" for k in keys for i in (1, 2, 3)]
    window += [f"lead(text, {i}) OVER w AS nt{i}" for i in (1, 2)]
    here = "c"  # the current line's process columns, renamed c<key>
    pn1 = "lag(CASE WHEN kind = 'P' THEN n END, 1 IGNORE NULLS) OVER w"
    same_prev = "".join(f" AND {k} = lag(CASE WHEN kind = 'P' THEN {k} END, 1 IGNORE NULLS) OVER w" for k in keys)
    renamed = "".join(f"{k} AS c{k[1:-1]}, " for k in keys)
    # the next lines fold into this one (if it has the prefix): DETAIL... of the same process
    f1 = f"(nk1 = 'P' AND {sec('nl1')}{same('n1', here)})"
    f2 = f"({f1} AND nk2 = 'P' AND {sec('nl2')}{same('n2', 'n1')})"
    f3 = f"({f2} AND nk3 = 'P' AND {sec('nl3')}{same('n3', 'n2')})"
    # an entry of at most three lines with the prefix and no tab line, from its first line
    short_from_head = f"(nk1 <> 'T' AND (NOT {f1} OR nk2 <> 'T' AND (NOT {f2} OR nk3 <> 'T' AND NOT {f3})))"
    prev_is_head = f"NOT ({sec('ll1')} AND pn2 IS NOT NULL{same('p1', 'p2')})"
    prev2_is_head = f"NOT ({sec('ll2')} AND pn3 IS NOT NULL{same('p2', 'p3')})"
    # ... and from its second or third line (a DETAIL... line folded into the line above)
    short_from_fold = (
        f"(lk1 = 'P' AND ({prev_is_head} AND nk1 <> 'T' AND (NOT {f1} OR nk2 <> 'T' AND NOT {f2})"
        f" OR NOT {prev_is_head} AND lk2 = 'P' AND {prev2_is_head} AND nk1 <> 'T' AND NOT {f1}))"
    )

    def short(c: str) -> str:
        # the entry's field c from its next lines (1 or 2 DETAIL... lines: the later one wins)
        return (f"CASE WHEN {f2} AND {field_of('nl2')} = {text[c]} THEN nt2 "
                f"WHEN {f1} AND {field_of('nl1')} = {text[c]} THEN nt1 END AS {c}")

    from_head = "".join(f"any_value({c}) FILTER (WHERE kind2 = 'H') AS {c}, " for c in cols)
    from_message = "".join(f"any_value({c}) FILTER (WHERE field = 'message') AS {c}, " for c in cols)
    folded = ", ".join(f"arg_max(text, seg) FILTER (WHERE field = {text[c]}) AS {c}" for c in later)
    full = (f"CASE WHEN strlen(l) = length(l) THEN regexp_extract(l, {_quote(ascii_pattern)}, {name_list}) "
            f"ELSE regexp_extract(l, {_quote(pattern)}, {name_list}) END")
    runs = fast_runs(prefix) if fast is not None else None
    # each line's level, fields and head length (hl: the message starts after it)
    from_full = (f"m.level AS level, {extracted}length(m._head) AS hl")
    if runs is None:
        lines_sql = f"SELECT n, l, {from_full} FROM (SELECT n, l, {full} AS m FROM raw WHERE l IS NOT NULL)"
    else:
        # ASCII lines: the fast patterns (one-pass, four groups each), the head put together from
        # their groups; the full pattern where they do not match or left a %q part out
        where = {name: f"r{i}" for i, (_, group_names) in enumerate(runs) for name in group_names}
        raw_value = {name: f"{where[name]}.{_ident(name)}" for name in where}
        extracts = ", ".join(
            f"CASE WHEN strlen(l) = length(l) THEN regexp_extract(l, {_quote(run.replace(_PY_DIGIT, '[0-9]'))}, "
            f"[{', '.join(_quote(g) for g in group_names)}]) END AS r{i}"
            for i, (run, group_names) in enumerate(runs))
        # (a timestamp's group holds the space of the literal after it)
        literal_length = sum(len(piece.text) for piece in prefix.pieces if _literal_piece(piece)) \
            - sum(1 for name in where if name.startswith("_ts_"))
        parts = [n for n in where if not n.startswith("_opt")]
        head_length = " + ".join([str(literal_length), *(f"strlen({raw_value[n]})" for n in parts)])

        def value(name: str) -> str:
            if f"_ts_{name}" in raw_value:
                spaced = raw_value[f"_ts_{name}"]
                return f"left({spaced}, strlen({spaced}) - 1)"
            return raw_value[name]

        taken = "".join(f" AND {raw_value[f'_opt{k}']} <> ''"
                        for k in range(1, len(empty_ok) + 1) if not empty_ok[k - 1])
        chosen = "".join(f"CASE WHEN ok THEN {value(name)} ELSE {expr} END AS {_ident(name)}, "
                         for name, expr in fields.items())
        lines_sql = (
            f"SELECT n, l, CASE WHEN ok THEN split_part({raw_value['_tail']}, ':', 1) ELSE m.level END AS level, "
            f"{chosen}CASE WHEN ok THEN {head_length} ELSE length(m._head) END AS hl FROM ("
            f"SELECT *, CASE WHEN NOT ok THEN {full} END AS m FROM ("
            f"SELECT *, coalesce({raw_value['_tail']} <> ''{taken}, false) AS ok FROM ("
            f"SELECT n, l, {extracts} FROM raw WHERE l IS NOT NULL)))"
        )
    return f"""
WITH raw AS MATERIALIZED (
    SELECT row_number() OVER () AS n, l FROM {source}
),
k AS (
    SELECT n, level, {carried}kind,
        CASE WHEN kind = 'P' THEN message ELSE substring(l, 2) END AS text
    FROM (
        SELECT n, l, level, {carried}
            CASE WHEN level <> '' AND NOT contains(l, chr(0)) THEN 'P'
                 WHEN starts_with(l, chr(9)) THEN 'T' ELSE 'B' END AS kind,
            CASE WHEN level <> '' THEN substring(l, hl + 1) END AS message
        FROM ({lines_sql})
    )
),
w2 AS MATERIALIZED (
    -- path: S an entry read from its first line (and the lines after it, from the window), C a
    -- line of another entry (a tab line, or more than two DETAIL... lines), B a bad line; the
    -- DETAIL... lines of S entries are left out
    SELECT n, {carried}level, text, kind2, {", ".join(short(c) for c in later)},
        CASE WHEN kind2 = 'H' AND {short_from_head} THEN 'S'
             WHEN kind = 'B' OR kind = 'T' AND pn1 IS NULL THEN 'B'
             WHEN kind2 = 'H' OR kind2 = 'F' AND NOT {short_from_fold} OR kind2 = 'T' THEN 'C' END AS path
    FROM (
        SELECT n, {carried}{renamed}level, kind, text, {", ".join(window)},
            CASE WHEN kind <> 'P' THEN kind
                 WHEN {sec('level')} AND {pn1} IS NOT NULL{same_prev} THEN 'F' ELSE 'H' END AS kind2
        FROM k
        WINDOW w AS (ORDER BY n)
    )
    WHERE path IS NOT NULL
),
complex AS (
    SELECT *,
        CASE kind2 WHEN 'H' THEN 'message' WHEN 'F' THEN {field_case} END AS field,
        max(CASE WHEN kind2 IN ('H', 'F') THEN n END) OVER v AS seg,
        max(CASE WHEN kind2 = 'H' THEN n END) OVER v AS entry
    FROM w2
    WHERE path = 'C'
    WINDOW v AS (ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
segs AS (
    SELECT seg, entry, {from_head}any_value(level) FILTER (WHERE kind2 = 'H') AS level,
        string_agg(text, chr(10) ORDER BY n) AS text,
        any_value(field) FILTER (WHERE kind2 IN ('H', 'F')) AS field
    FROM complex
    GROUP BY seg, entry
)
SELECT n AS line, {carried}level, text AS message, {", ".join(later)}, false AS bad
FROM w2 WHERE path = 'S'
UNION ALL
SELECT entry, {from_message}any_value(level) FILTER (WHERE field = 'message'),
    any_value(text) FILTER (WHERE field = 'message'), {folded}, false
FROM segs GROUP BY entry
UNION ALL
SELECT n, {nulls}NULL, NULL, {", ".join("NULL" for _ in later)}, true
FROM w2 WHERE path = 'B'
ORDER BY line
"""
