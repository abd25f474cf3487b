"""stderr logs read a block at a time (perfkit.logs.scanner) give the line reader's assessment.

``--engine auto`` reads a plain stderr file with one regex search per block of lines; ``--engine
python`` with ``formats.read_stderr``, line by line. On the real stderr logs of tests/fixtures/logs
and on copies of them with what the block reader hands back to ``read_stderr`` (continuation
lines, DETAIL lines of another process or without an entry, blank lines, NUL bytes, CRLF line
ends, stray lines, fields only the full prefix regex reads, digits that are not ASCII), in blocks
small enough that entries and such regions run across them, and in byte ranges, the whole
assessment is byte for byte the line reader's.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from perfkit.errors import BadInputError
from perfkit.logs import scanner, sources, stream
from perfkit.logs.prefix import LinePrefix

assess_module = importlib.import_module("perfkit.logs.assess")
LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
REAL = [LOGS / "events" / "postgresql.log", LOGS / "stderr-default.log", LOGS / "stderr-pgbadger.log",
        LOGS / "autovacuum.log"]
EVENTS = REAL[0]


def _assessed(path: Path, engine: str, jobs: int = 1) -> str:
    scanned = stream.scan([path], stream.Settings(engine=engine, jobs=jobs))
    assessment = assess_module.from_scan(scanned, n=10, slow_ms=200.0, include_noise=False, timezone=None)
    return json.dumps(assessment.to_json(), default=str, sort_keys=True)


def _same_as_lines(path: Path, jobs: int = 1) -> None:
    """The same assessment from the block reader and the line reader, on the same byte ranges."""
    assert _assessed(path, "auto", jobs) == _assessed(path, "python", jobs)


def _blocks_read(monkeypatch) -> list:
    """The texts the block reader was given (to check it read the file, not the line reader)."""
    seen: list = []
    block = scanner.BlockReader.block

    def spy(self, number, text):
        seen.append(text)
        return block(self, number, text)

    monkeypatch.setattr(scanner.BlockReader, "block", spy)
    return seen


@pytest.mark.parametrize("path", REAL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_logs_read_as_the_line_reader_reads_them(path, monkeypatch):
    seen = _blocks_read(monkeypatch)
    _same_as_lines(path)
    assert seen


@pytest.mark.parametrize("path", REAL[:3], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_small_blocks_and_byte_ranges(path, monkeypatch):
    """Entries, their DETAIL lines and the regions read_stderr reads run across blocks and ranges."""
    monkeypatch.setattr(stream, "_BLOCK", 512)
    monkeypatch.setattr(stream, "RANGE_MIN_BYTES", 8 * 1024)
    _same_as_lines(path, jobs=1)
    _same_as_lines(path, jobs=2)


def _lines(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1]


def _at(lines: list[str], text: str, start: int = 0) -> int:
    return next(i for i in range(start, len(lines)) if text in lines[i])


def _other_pid(line: str) -> str:
    head, _, rest = line.partition("[")
    pid, _, tail = rest.partition("]")
    return f"{head}[{int(pid) + 1}]{tail}"


def _damaged(lines: list[str], damage: str) -> list[str]:
    lines = list(lines)
    execution = _at(lines, "ms  execute ", len(lines) // 3)
    detail = _at(lines, " DETAIL:  ", execution)
    statement = _at(lines, "ms  statement: ", len(lines) // 2)
    if damage == "continuation lines":  # a statement over three lines, and a DETAIL over two
        lines[statement + 1:statement + 1] = ["\t  AND 1 = 1", "\t  AND 2 = 2"]
        lines[detail + 1:detail + 1] = ["\tand more"]
    elif damage == "detail of another process":
        lines[detail] = _other_pid(lines[detail])
    elif damage == "detail without an entry":
        lines.insert(0, lines[detail])
    elif damage == "blank lines":
        lines[execution:execution] = ["", ""]
    elif damage == "nul byte":
        lines[statement] = lines[statement] + "\x00"
    elif damage == "crlf":
        lines = [line + "\r" for line in lines]
    elif damage == "stray lines":
        lines[statement:statement] = ["pg_ctl: could not start server", "Examine the log output."]
    elif damage == "comma in a user name":  # the fast regex stops at the comma, the full one reads it
        lines[statement] = lines[statement].replace("user=postgres,", "user=post,gres,", 1)
        lines[statement + 1] = lines[statement + 1].replace("user=postgres,", "user=post,gres,", 1)
    elif damage == "digits that are not ASCII":  # \d reads them, the block regex does not
        lines[statement] = "\u0662" + lines[statement][1:]
    elif damage == "secondary lines of every kind":
        head = lines[execution].split(" LOG:  ")[0]
        lines[execution + 1:execution + 1] = [f"{head} HINT:  a hint", f"{head} CONTEXT:  a context",
                                               f"{head} STATEMENT:  SELECT 1"]
    elif damage == "tenants in the parameters":  # the DETAIL after an execute names its tenant
        for number, index in enumerate(i for i, line in enumerate(lines) if "ms  execute " in line):
            head, _, _ = lines[index].partition(": SELECT")
            if not head.endswith(lines[index].partition(" ms  execute ")[2].split(":")[0]):
                continue
            lines[index] = f"{head}: SELECT * FROM invoices WHERE tenant_id = $1 AND status = $2"
            nxt = index + 1
            if " DETAIL:  parameters: " in lines[nxt]:
                lines[nxt] = lines[nxt].split(" DETAIL:  ")[0] + f" DETAIL:  parameters: $1 = '{number % 3}', $2 = 'open'"
    elif damage == "no final line break":
        return lines + ["__nobreak__"]
    return lines


DAMAGES = ["continuation lines", "detail of another process", "detail without an entry", "blank lines",
           "nul byte", "crlf", "stray lines", "comma in a user name", "digits that are not ASCII",
           "secondary lines of every kind", "tenants in the parameters", "no final line break"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_what_the_block_regex_does_not_read_is_read_stderrs(tmp_path, monkeypatch, damage):
    lines = _damaged(_lines(EVENTS), damage)
    path = tmp_path / "postgresql.log"
    if lines[-1] == "__nobreak__":
        path.write_text("\n".join(lines[:-1]))
    else:
        path.write_text("\n".join(lines) + "\n")
    seen = _blocks_read(monkeypatch)
    _same_as_lines(path)
    assert seen
    monkeypatch.setattr(stream, "_BLOCK", 700)
    _same_as_lines(path)
    if damage == "tenants in the parameters":
        assert {"0", "1", "2"} <= set(stream.scan([path], stream.Settings(jobs=1)).tenants)


def test_the_damage_is_where_the_comparison_looks():
    """Each damaged copy differs from the real log, and the line reader reads each differently from
    the others: else the comparisons above would prove little."""
    original = _lines(EVENTS)
    copies = [_damaged(original, damage) for damage in DAMAGES]
    assert all(copy != original for copy in copies)


def test_the_block_regex_is_the_line_regex_within_a_line():
    """Negated classes stop at a line end, digits are ASCII; a prefix with a line break has none."""
    prefix = LinePrefix("%m [%p] user=%u,db=%d,app=%a,client=%h ")
    pattern = scanner.block_pattern(prefix)
    assert "[^\\n," in pattern.pattern and "\\d" not in pattern.pattern
    text = "".join(line + "\n" for line in _lines(EVENTS))
    found = [line for m in pattern.finditer(text) for line in m.group(0).split("\n")]
    assert found == [line for line in _lines(EVENTS) if prefix.fast.match(line) and not line.startswith("\t")]
    # a DETAIL line with the very prefix of the line above is read in the same match
    pairs = [m for m in pattern.finditer(text) if m.group("detail") is not None]
    assert pairs and all(m.group(0).split("\n")[1].startswith(m.group("head") + "DETAIL:  ") for m in pairs)
    assert scanner.block_pattern(LinePrefix("%m [%p]\n")) is None
    # a class that starts with ] keeps it
    assert scanner._one_line("[^]a]x[]b]") == "[^\\n\\]a]x[\\]b]"


def test_texts_alike_but_for_digits_share_a_key_only_when_their_digits_are_literals():
    """Shapes keys a text by its digits masked when the key of a text alike has no digit left: the
    key is then the one the literal-free key gives it, whatever texts came before; identifiers with
    digits (t1, t2), decimals, quotes, comments, parameters and digits that are not ASCII keep
    theirs."""
    import itertools
    import random

    templates = ["SELECT * FROM t{a} WHERE id = {b}", "SELECT * FROM t WHERE id = {a} AND x = {b}.{a}",
                 "UPDATE pgbench_accounts SET abalance = abalance + {a} WHERE aid = {b};",
                 "SELECT '{a}' || name FROM users WHERE id = {b}", "SELECT 1 /* {a} */ FROM t WHERE v = {b}",
                 "SELECT * FROM t WHERE id = ${a} AND v = {b}", "SELECT x{a}y FROM t WHERE v = {b}e{a}",
                 "SELECT * FROM t WHERE id = \u0661{a} AND v = {b}", "SELECT \"c{a}\" FROM t WHERE v = {b}",
                 "SELECT * FROM t -- {a}\nWHERE v = {b}", "SELECT {a}{b} FROM t{b}"]
    values = ["1", "2", "10", "99", "123", "0"]
    texts = [t.format(a=a, b=b) for t in templates for a, b in itertools.product(values, repeat=2)]
    for seed in range(3):
        random.Random(seed).shuffle(texts)
        shapes = stream.Shapes()
        for text in texts:
            assert shapes.uncached(text)[0] == stream.Shapes().uncached(text)[0], text


def test_lines_longer_than_a_block(tmp_path, monkeypatch):
    """A statement several blocks long (the read buffer grows for it and shrinks after it), in a
    range of its own and across range edges; a line past the limit is a bad record that names its
    line, with the line reader's message."""
    lines = _lines(EVENTS)
    at = _at(lines, "statement: ")
    long_statement = "SELECT " + ", ".join(f"{n} AS c{n}" for n in range(900))  # ~10 kB
    lines[at] = lines[at][:lines[at].index("statement: ") + 11] + long_statement
    path = tmp_path / "postgresql.log"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(stream, "_BLOCK", 512)
    seen = _blocks_read(monkeypatch)
    _same_as_lines(path)
    assert any(long_statement in text for text in seen)
    monkeypatch.setattr(stream, "RANGE_MIN_BYTES", 8 * 1024)
    _same_as_lines(path, jobs=2)
    shapes = stream.scan([path], stream.Settings(jobs=1)).shapes
    assert any(s.normalized.startswith("SELECT $1 AS c0") or "AS c899" in s.normalized for s in shapes.values())

    monkeypatch.setattr(stream, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(sources, "_READ_CHUNK", 512)
    for engine in ("auto", "python"):
        with pytest.raises(BadInputError, match=f"line {at + 1}: a line longer than"):
            stream.scan([path], stream.Settings(jobs=1, engine=engine))
