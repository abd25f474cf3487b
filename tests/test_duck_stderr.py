"""perfkit.logs.duck_stderr: DuckDB's rows of a stderr log equal formats.read_stderr's entries.

Differential: every stderr fixture and crafted hostile logs are read both ways; where the Python
reader yields a BadRecord, the DuckDB relation must have a bad row (or DuckDB raise, or the
relation be None), and elsewhere the rows must be the entries, field by field, in order.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import duckdb
import pytest

from perfkit.logs.duck_stderr import (
    _PY_SPACE,
    ENTRY_FIELDS,
    Untranslatable,
    _digit_class,
    prefix_re2,
    stderr_relation,
    to_re2,
)
from perfkit.logs.formats import BadRecord, read_stderr
from perfkit.logs.prefix import LinePrefix
from perfkit.logs.sources import numbered_lines

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
EVENTS_PREFIX = "%m [%p] user=%u,db=%d,app=%a,client=%h "


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    yield connection
    connection.close()


def python_rows(path: Path, prefix: LinePrefix) -> tuple[list[tuple], bool]:
    """read_stderr's entries as rows of the relation's columns, and whether it yielded a BadRecord."""
    rows, bad = [], False
    for entry in read_stderr(numbered_lines(path), prefix, fast=False):
        if isinstance(entry, BadRecord):
            bad = True
            continue
        rows.append((entry["line"], *(entry.get(c) for c in [*prefix.columns, *ENTRY_FIELDS]), False))
    return rows, bad


def duck_rows(con, path: Path, prefix: LinePrefix) -> list[tuple] | None:
    """The relation's rows; None when there is no relation, DuckDB raises, or a row is bad."""
    sql = stderr_relation(str(path), prefix)
    if sql is None:
        return None
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        return None
    if any(row[-1] for row in rows):
        return None
    return [tuple(row) for row in rows]


def check(con, path: Path, prefix: LinePrefix, *, exact: bool = True) -> list[tuple] | None:
    """Both readers agree; ``exact``: DuckDB must read it (no fallback) when Python has no BadRecord."""
    expected, python_bad = python_rows(path, prefix)
    got = duck_rows(con, path, prefix)
    if python_bad:
        assert got is None, "the Python reader yields a BadRecord, the DuckDB rows have no bad row"
        return None
    if got is None:
        assert not exact, "DuckDB fell back on a file the Python reader reads without a BadRecord"
        return None
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs
    return got


@pytest.mark.parametrize(("name", "prefix"), [
    ("stderr-default.log", "%m [%p] "),
    ("stderr-pgbadger.log", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "),
    ("events/postgresql.log", EVENTS_PREFIX),
    ("autovacuum.log", EVENTS_PREFIX),
])
def test_fixtures(con, name, prefix):
    rows = check(con, FIXTURES / name, LinePrefix(prefix))
    assert rows and len(rows) > 20


def test_fixture_with_wrong_prefix_is_bad(con):
    # the default prefix on a pgBadger-style log: every line unmatched
    path = FIXTURES / "stderr-pgbadger.log"
    assert python_rows(path, LinePrefix("%m [%p] %u@%d "))[1]
    check(con, path, LinePrefix("%m [%p] %u@%d "))


def test_python_digit_and_space_classes_are_re2s(con):
    """\\d and \\s of a Python str pattern, as translated, match the same code points in RE2."""
    points = [p for p in range(0x110000) if not 0xD800 <= p <= 0xDFFF]
    digits = {p for p in points if re.match(r"\d", chr(p))}
    spaces = {p for p in points if re.match(r"\s", chr(p))}
    con.execute("CREATE TEMP TABLE points AS SELECT range AS p FROM range(1114112) WHERE range < 55296 OR range > 57343")
    found = con.execute(
        "SELECT p, regexp_full_match(chr(p::INTEGER), ?), regexp_full_match(chr(p::INTEGER), ?) FROM points",
        [_digit_class(), f"[{_PY_SPACE}]"],
    ).fetchall()
    assert {p for p, d, _ in found if d} == digits
    assert {p for p, _, s in found if s} == spaces
    assert len(digits) > 600 and 0x663 in digits  # ARABIC-INDIC DIGIT THREE


def test_untranslatable():
    for pattern in (r"(?=a)b", r"(?!a)", r"(?<=a)b", r"(a)\1", r"(?P<x>a)(?P=x)", r"a*+b", r"a++", r"\w+",
                    r"\bx", r"^a", r"a$", r"(?i)a", r"[\w]", "a{1001}"):
        with pytest.raises(Untranslatable):
            to_re2(pattern)
    assert to_re2(r"(?P<x>\d+)\ (?:y)") == (r"(\d+)\x{20}(?:y)", ["x"])


def test_process_after_q_is_not_translated():
    assert prefix_re2(LinePrefix("%m %q[%p] ")) is None
    assert prefix_re2(LinePrefix("%m [%p] %q%u@%d ")) is not None


# -- crafted hostile logs -----------------------------------------------------------------------
PREFIXES = (
    "%m [%p] ",
    "%m [%p] %q%u@%d ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: [%l-1] user=%u,db=%d ",
    "%t [%p-%l] %q%u@%d ",
    "%m %u@%d %p %r ",
    "%m [%p] %-10u %10d|",
    "%n [%c] %q%a %x %v %e %Q ",
    "%t [%p] %q%u%q@%d ",
    "%m [%p] %b %i %h %P %% ",
    "%m [%p] %q%u",
)
LEVELS = ("LOG", "LOG", "LOG", "ERROR", "WARNING", "FATAL", "DEBUG1", "DEBUG", "NOTICE")
SECONDARY = ("DETAIL", "DETAIL", "STATEMENT", "HINT", "CONTEXT", "QUERY", "LOCATION")
USERS = ("app", "", "a b", "x[1]", "[unknown]", "u,db=z", "ünï", "post@gres", "u ser", "a,host=h,app=x", "٣")
DATABASES = ("shop", "", "d,host=10.0.0.1,app=psql", "db@x", "d b", "base[2]", "数据")
APPS = ("psql", "", "pgbench", "my app", "a,client=1")
HOSTS = ("127.0.0.1", "[local]", "10.0.0.2(5432)", "", "::1", "h\u200bx")
BAD_HOSTS = ("h\u00a0x", "a b", "h\u3000")  # Python's \S stops at them: the line matches no prefix
MESSAGES = ("duration: 0.027 ms  statement: SELECT 1", "duration: 1.5 ms  statement: ", "connection received",
            "42P01: relation does not exist", "x LOG:  y", "ünicode ✓ message", "  spaced  ", "DETAIL:  inside",
            "tab\there", "ends with space ", "]:", "")


def _pick(rng: random.Random, values: tuple[str, ...]) -> str:
    """The first (plain) value most of the time, an odd one else."""
    return rng.choice(values) if rng.random() < 0.25 else values[0]


def _escape_value(escape: str, rng: random.Random, pid: int, hostile: bool) -> str:
    if escape == "m":
        return f"2024-01-05 08:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}" + \
            rng.choice((" UTC", " CET", "", " +01", " America/Chicago"))
    if escape == "t":
        return f"2024-01-05 08:35:{rng.randrange(60):02d}" + rng.choice((" UTC", ""))
    if escape == "n":
        return f"1704443700.{rng.randrange(1000):03d}"
    if escape == "p":
        return str(pid) if rng.random() > 0.01 else "٣٤"  # Python's \d: a pid in Arabic-Indic digits
    if escape == "c":
        return f"{pid:x}.{rng.randrange(16**4):x}"
    if escape == "l":
        return str(rng.randrange(1, 99))
    if escape == "u":
        return _pick(rng, USERS)
    if escape == "d":
        return _pick(rng, DATABASES)
    if escape == "a":
        return _pick(rng, APPS)
    if escape in "rh":
        return _pick(rng, HOSTS + BAD_HOSTS if hostile else HOSTS)
    if escape == "x":
        return rng.choice(("0", "", "731"))
    if escape == "v":
        return rng.choice(("3/17", "", "-1/0"))
    if escape == "e":
        return rng.choice(("00000", "42P01"))
    if escape == "Q":
        return rng.choice(("0", "-123456789", ""))
    if escape == "b":
        return rng.choice(("client backend", "checkpointer", ""))
    if escape == "i":
        return rng.choice(("SELECT", "idle", ""))
    if escape == "P":
        return rng.choice(("", "77"))
    raise AssertionError(escape)


def _prefix_text(prefix: str, rng: random.Random, pid: int, session: bool, hostile: bool) -> str:
    out = []
    i = 0
    while i < len(prefix):
        char = prefix[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        match = re.match(r"%(-?)(\d*)(.)", prefix[i:])
        left, width, escape = match.groups()
        i += match.end()
        if escape == "%":
            out.append("%")
            continue
        if escape == "q":
            if not session:
                break
            continue
        value = _escape_value(escape, rng, pid, hostile)
        if width:
            value = value.ljust(int(width)) if left else value.rjust(int(width))
        out.append(value)
    return "".join(out)


def craft(prefix: str, seed: int, count: int = 160, hostile: bool = True) -> str:
    """A log of ``count`` lines written with ``prefix``: entries, DETAIL/STATEMENT lines of the same
    process and of others, tab continuations, empty lines; ``hostile``: also lines that match no
    prefix, tab lines first, NUL bytes."""
    rng = random.Random(seed)
    pids = [rng.randrange(100, 99999) for _ in range(4)]
    lines = []
    if hostile and rng.random() < 0.1:
        lines.append("\tcontinuation before any entry")
    for _ in range(count):
        pid = rng.choice(pids)
        roll = rng.random()
        if lines and roll < 0.15:
            lines.append("\t" + rng.choice(MESSAGES))
            continue
        if roll < 0.18:
            lines.append("")
            continue
        if hostile and roll < 0.185:
            lines.append(rng.choice(("pg_ctl: could not start server", "  ", "garbage [1] LOG:  x", "a\x00b",
                                     "\t\x00tab with nul")))
            continue
        level = rng.choice(SECONDARY) if roll < 0.45 else rng.choice(LEVELS)
        session = rng.random() > 0.1
        code = rng.choice(("", "", "42P01: ", "XX000: "))
        lines.append(f"{_prefix_text(prefix, rng, pid, session, hostile)}{level}:  {code}{rng.choice(MESSAGES)}")
    return "\n".join(lines) + rng.choice(("\n", "", "\n\n"))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_crafted(con, tmp_path, prefix):
    line_prefix = LinePrefix(prefix, require=False)
    read = bad = 0
    for seed in range(12):
        path = tmp_path / f"log{seed}.log"
        path.write_text(craft(prefix, seed, hostile=seed % 3 == 0), encoding="utf-8")
        exact = prefix_re2(line_prefix) is not None
        rows = check(con, path, line_prefix, exact=exact)
        read += rows is not None
        bad += python_rows(path, line_prefix)[1]
    if prefix_re2(line_prefix) is not None:
        assert read >= 6  # most files are read by DuckDB, not fallen back from
    assert bad >= 2  # and the hostile ones are bad on both sides


def test_folding_rules(con, tmp_path):
    """Hand-written: a multi-line statement, a DETAIL of another process (an entry of its own), two
    DETAIL lines (the later one wins), its tab continuation, the CONTEXT after it, empty lines."""
    path = tmp_path / "fold.log"
    path.write_text(
        "2024-01-05 08:35:00.001 UTC [10] LOG:  statement: SELECT a,\n"
        "\t  b\n"
        "\n"
        "\tFROM t\n"
        "2024-01-05 08:35:00.002 UTC [11] DETAIL:  not mine\n"
        "2024-01-05 08:35:00.003 UTC [11] DETAIL:  mine now\n"
        "2024-01-05 08:35:00.004 UTC [10] ERROR:  42P01: boom\n"
        "2024-01-05 08:35:00.004 UTC [10] DETAIL:  first\n"
        "\tmore first\n"
        "2024-01-05 08:35:00.004 UTC [10] DETAIL:  second\n"
        "\tmore second\n"
        "2024-01-05 08:35:00.004 UTC [10] CONTEXT:  ctx\n"
        "2024-01-05 08:35:00.004 UTC [10] STATEMENT:  SELECT\n"
        "\t1\n"
        "2024-01-05 08:35:00.005 UTC [10] LOG:  one\n"
        "2024-01-05 08:35:00.005 UTC [10] HINT:  h\n"
        "2024-01-05 08:35:00.005 UTC [10] LOCATION:  l\n"
        "2024-01-05 08:35:00.005 UTC [10] QUERY:  q\n"
        "2024-01-05 08:35:00.006 UTC [10] LOG:  last\r\n",
        encoding="utf-8",
    )
    prefix = LinePrefix("%m [%p] ")
    # a carriage return: DuckDB's CSV reader raises (the caller falls back); without it, exact
    assert duck_rows(con, path, prefix) is None
    path.write_bytes(path.read_bytes().replace(b"\r", b""))
    rows = check(con, path, prefix)
    assert [row[0] for row in rows] == [1, 5, 7, 15, 19]
    assert rows[0][4] == "statement: SELECT a,\n  b\nFROM t"
    assert rows[1][4:6] == ("not mine", "mine now")
    assert rows[2][3:10] == ("ERROR", "boom", "second\nmore second", None, "ctx", "SELECT\n1", None)


def test_files_duckdb_reads_differently_fall_back(con, tmp_path):
    prefix = LinePrefix("%m [%p] ")
    line = "2024-01-05 08:35:00.001 UTC [10] LOG:  x\n"
    cases = {
        "bom.log": b"\xef\xbb\xbf" + line.encode(),  # DuckDB drops the mark, Python keeps it
        "latin1.log": (line[:-1] + " caf\xe9\n").encode("latin-1"),  # not UTF-8: DuckDB raises
        "cr.log": line.replace("x", "a\rb").encode(),  # DuckDB splits lines at a carriage return
        "gz.log": __import__("gzip").compress(line.encode()),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert duck_rows(con, path, prefix) is None, name
    odd = tmp_path / "it's [a] *glob*.log"
    odd.write_text(line, encoding="utf-8")
    assert duck_rows(con, odd, prefix) is None
    plain = tmp_path / "it's.log"
    plain.write_text(line * 3, encoding="utf-8")
    assert len(check(con, plain, prefix)) == 3


def test_fast_pattern_takes_lines_as_python_does(con, tmp_path):
    """The fast pattern ([^,]* for a lazy field before ',db=') where Python's match differs from
    its first guess: a user holding the separator, a %q part the fast pattern cannot take (Python
    takes it, reading 'LOG:  a' as the user), prefixes where it would be wrong (no fast pattern)."""
    from perfkit.logs.duck_stderr import fast_re2, fast_runs

    assert fast_re2(LinePrefix("%m [%p] user=%u,db=%d,app=%a,client=%h ")) is not None
    assert fast_re2(LinePrefix("%m [%p] ")) == prefix_re2(LinePrefix("%m [%p] "))[0]  # no lazy field
    assert fast_re2(LinePrefix("%m %u@%d %p %r ")) is None  # the zone and the user both start at ' '
    padded = LinePrefix("%m [%p] %-10u %10d|")
    assert fast_re2(padded) == prefix_re2(padded)[0] and fast_runs(padded) is None  # nothing made fast
    cases = {
        "%m [%p] %q%u@%d ": [
            "2024-01-05 08:35:00.001 UTC [10] LOG:  a@b@c d LOG:  m",
            "2024-01-05 08:35:00.001 UTC [10] app@shop LOG:  plain",
            "2024-01-05 08:35:00.001 UTC [10] LOG:  not a session",
        ],
        EVENTS_PREFIX: [
            "2024-01-05 08:35:00.001 UTC [10] user=u,db=x,db=y,app=a,client=h LOG:  comma in the user",
            "2024-01-05 08:35:00.001 UTC [10] user=u,db=d,app=a,client=h LOG:  user=v,db=e,app=b,client=i LOG:  x",
            "2024-01-05 08:35:00.001 UTC [10] user=u,db=d,app=a,b,client=h ERROR:  42P01: comma in the app",
        ],
    }
    for text, lines in cases.items():
        path = tmp_path / "fast.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows = check(con, path, LinePrefix(text))
        assert len(rows) == len(lines)
    assert rows[0][3:5] == ("u", "x,db=y")  # Python's lazy database runs on to the ',app=' after it
