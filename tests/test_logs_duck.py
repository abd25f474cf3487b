"""DuckDB reads whole csvlog and jsonlog files (perfkit.logs.duck) into the Scan the Python pass gives.

On the real logs of tests/fixtures/logs (auto_explain plans after server-side binds, tenants,
deadlocks, temporary files, checkpoints, multi-line statements and plans in csvlog) the whole
assessment is byte for byte the Python pass's; on files DuckDB would read otherwise (a blank line, a
NUL byte, CRLF line ends, a line that is not JSON, a record of another width, no message) the Python
pass reads the file, and the result is again the Python pass's. The key DuckDB groups statements by
(the text without its literals) never puts two statement shapes together.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from perfkit.logs import duck, stream
from perfkit.logs.normalize import normalize

assess_module = importlib.import_module("perfkit.logs.assess")
LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
REAL = [LOGS / "events" / "postgresql.json", LOGS / "events" / "postgresql.csv", LOGS / "jsonlog.json",
        LOGS / "csvlog.csv"]


def _assessed(path: Path, engine: str) -> tuple[str, stream.Scan]:
    scanned = stream.scan([path], stream.Settings(engine=engine, jobs=1))
    assessment = assess_module.from_scan(scanned, n=10, slow_ms=200.0, include_noise=False, timezone=None)
    data = assessment.to_json()
    assert data.pop("engines") == {p: "duckdb" for p in scanned.engines}  # which files DuckDB read: a fact
    return json.dumps(data, default=str, sort_keys=True), scanned


def _same_as_python(path: Path, read_by_duckdb: bool) -> None:
    want, _ = _assessed(path, "python")
    got, scanned = _assessed(path, "duckdb")
    assert scanned.engines == ({str(path): "duckdb"} if read_by_duckdb else {})
    assert got == want


@pytest.mark.parametrize("path", REAL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_logs_read_as_the_python_pass_reads_them(path):
    _same_as_python(path, read_by_duckdb=True)


def test_the_real_logs_hold_what_the_comparison_needs():
    """Plans attached after the execute line, records over several lines, tenants: else the byte
    comparison above would prove little."""
    scanned = stream.scan([REAL[1]], stream.Settings(engine="duckdb", jobs=1))
    assert scanned.engines
    assert any(s.worst and s.worst[10] for s in scanned.shapes.values())  # a plan on a slowest execution
    assert any(s.plan for s in scanned.shapes.values())
    lines = REAL[1].read_text().count("\n")
    assert scanned.report.entries < lines  # records with line breaks inside
    assert scanned.requests.requests and scanned.events.deadlocks and scanned.events.temp_files


def _lines(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1]


def _json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _executions(path: Path) -> list[int]:
    return [i for i, line in enumerate(_lines(path)) if '"message":"duration: ' in line and "statement: " in line
            or "  execute " in line]


@pytest.mark.parametrize("damage", ["blank line", "nul byte", "crlf", "not json", "no message", "wide record",
                                    "stray line"])
def test_what_duckdb_would_read_otherwise_goes_to_the_python_pass(tmp_path, damage):
    source = REAL[0] if damage not in ("wide record", "stray line") else REAL[1]
    lines = _lines(source)
    # a record on a line of its own, in the middle
    at = next(i for i in range(len(lines) // 2, len(lines) - 1)
              if lines[i].startswith("{") or (lines[i][:2] == lines[i + 1][:2] == "20" and not lines[i].count('"') % 2))
    if damage == "blank line":
        lines.insert(at, "")
    elif damage == "nul byte":
        lines[at] = lines[at].replace('"message":"', '"message":"\x00', 1)
    elif damage == "not json":
        lines.insert(at, "pg_ctl: could not start server")
    elif damage == "no message":
        record = json.loads(lines[at])
        del record["message"]
        lines[at] = _json_line(record)
    elif damage == "wide record":
        lines[at] = lines[at] + ',"x"'  # (one more EMPTY field DuckDB drops: see perfkit.logs.duck)
    elif damage == "stray line":
        lines.insert(at, "pg_ctl: could not start server")
    ending = "\r\n" if damage == "crlf" else "\n"
    path = tmp_path / f"postgresql{source.suffix}"
    path.write_bytes((ending.join(lines) + ending).encode())
    _same_as_python(path, read_by_duckdb=False)


STATEMENTS = [
    "SELECT * FROM orders WHERE tenant_id = $1 AND status = $2",       # the tenant: a bound parameter
    "/* tenant='acme',route='/orders' */ SELECT * FROM orders WHERE id = 3",  # the tenant: a comment's tag
    "SELECT * FROM orders WHERE tenant_id = 42 AND note = 'it''s -- not a comment'",
    "SELECT 'é' AS x, \"Größe\" FROM t WHERE a = 1.5e3",
    "/* route='/invoices' request_id='r-1' */ SELECT * FROM invoices WHERE id = 7",
    "/* it's a comment */ SELECT * FROM invoices WHERE id = 7",
    "SELECT $$a 'dollar' quote$$, E'\\\\n' FROM t -- trailing",
    "SELECT é1, x·2 FROM t WHERE y IN (1,2,3)",
    "UPDATE accounts\n   SET balance = balance - 10\n WHERE id = 3",
    "",
]


@pytest.mark.parametrize("kind", ["jsonlog", "csvlog"])
def test_statements_of_every_sort_and_multiline_records(tmp_path, kind):
    """Literals, comments, quotes, dollar quotes, non-ASCII names, line breaks and an empty statement
    in the real log's executions: DuckDB reads the file and the result is the Python pass's."""
    import csv
    import io

    source = REAL[0] if kind == "jsonlog" else REAL[1]
    path = tmp_path / source.name
    if kind == "jsonlog":
        lines = _lines(source)
        for number, index in enumerate(_executions(source)):
            record = json.loads(lines[index])
            head, _, _ = record["message"].partition(": ")
            end = record["message"].find(" ms  ")
            verb = record["message"][end + 5:].split(": ", 1)[0]
            record["message"] = f"{record['message'][:end]} ms  {verb}: {STATEMENTS[number % len(STATEMENTS)]}"
            record["detail"] = f"parameters: $1 = '{number // len(STATEMENTS) % 5}', $2 = 'open'"
            lines[index] = _json_line(record)
        path.write_text("\n".join(lines) + "\n")
    else:
        rows = list(csv.reader(source.open(newline="")))
        for number, row in enumerate(r for r in rows if r[13].startswith("duration: ") and ("statement: " in r[13]
                                                                                          or "  execute " in r[13])):
            end = row[13].find(" ms  ")
            verb = row[13][end + 5:].split(": ", 1)[0]
            row[13] = f"{row[13][:end]} ms  {verb}: {STATEMENTS[number % len(STATEMENTS)]}"
            row[14] = f"parameters: $1 = '{number // len(STATEMENTS) % 5}', $2 = 'open'"
        out = io.StringIO()
        # as PostgreSQL writes csvlog: text fields quoted, numbers and empty fields not
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerows(rows)
        path.write_text(out.getvalue())
    _same_as_python(path, read_by_duckdb=True)
    tenants = stream.scan([path], stream.Settings(engine="duckdb", jobs=1)).tenants
    assert {"0", "1", "acme"} <= set(tenants)


def test_the_key_without_literals_never_joins_two_shapes():
    """Texts DuckDB gives one key have one shape key (fingerprint) in pglast: made from the real logs'
    statements with their literals changed, and from texts where a naive key would join shapes."""
    import re

    import duckdb

    texts = set(STATEMENTS)
    for path in (LOGS / "events" / "postgresql.json", LOGS / "jsonlog.json"):
        for line in _lines(path):
            message = json.loads(line).get("message") or ""
            if message.startswith("duration: ") and "statement: " in message:
                text = message.split("statement: ", 1)[1]
                texts.add(text)
                texts.add(re.sub(r"\d+", lambda m: str(int(m.group()) + 7), text))
    texts |= {
        "SELECT é1 FROM t", "SELECT é2 FROM t",                      # digits in non-ASCII names
        "SELECT t1.a FROM t1", "SELECT t2.a FROM t2",
        "SELECT 'a--b' FROM t1", "SELECT 'a--b' FROM t2",            # a comment marker inside a string
        "/* it's */ SELECT 1 FROM a WHERE b = 'c'", "/* it's */ SELECT 1 FROM z WHERE b = 'c'",
        "SELECT $1 FROM a", "SELECT $2 FROM a",
        "SELECT \"t 1\" FROM a", "SELECT \"t 2\" FROM a",
        "SELECT $q$ 1 $q$ FROM a", "SELECT $q$ 2 $q$ FROM b",
        "SELECT x FROM a -- 1\nWHERE y = 2", "SELECT x FROM b -- 1\nWHERE y = 2",
        "SELECT 1.5.2 FROM a", "SELECT 1.5.3 FROM b",
        "SELECT a FROM t ORDER BY 1", "SELECT a FROM t LIMIT 10",
    }
    con = duckdb.connect()
    con.execute("CREATE TABLE texts (t VARCHAR)")
    con.executemany("INSERT INTO texts VALUES (?)", [(t,) for t in sorted(texts)])
    groups: dict[str, set] = {}
    for text, key in con.execute(f"SELECT t, {duck._DKEY} FROM texts").fetchall():
        groups.setdefault(key, set()).add(text)
    joined = [g for g in groups.values() if len(g) > 1]
    assert joined  # literals are left out: texts that differ only in them share a key
    for group in joined:
        assert len({stream.shape_key(normalize(text)) for text in group}) == 1, group


def test_auto_leaves_small_compressed_and_partial_files_to_python(tmp_path):
    import gzip

    small = stream.scan([REAL[0]], stream.Settings(jobs=1))
    assert small.engines == {}  # under MIN_BYTES: DuckDB's start is not worth it
    packed = tmp_path / "postgresql.json.gz"
    packed.write_bytes(gzip.compress(REAL[0].read_bytes()))
    assert stream.scan([packed], stream.Settings(engine="duckdb", jobs=1)).engines == {}
    size = REAL[0].stat().st_size
    part = stream.scan([REAL[0]], stream.Settings(engine="duckdb", jobs=1), resume={str(REAL[0]): (100, size, 1)})
    assert part.engines == {}
    whole = stream.scan([REAL[0]], stream.Settings(engine="duckdb", jobs=1), resume={str(REAL[0]): (0, size, 0)})
    assert whole.engines == {str(REAL[0]): "duckdb"}


def test_importing_the_logs_package_loads_no_pandas():
    """``perfkit.logs.assess`` reads the logs first and loads pandas while the readers work
    (stream.scan's ``meanwhile``): importing the package must not load it already."""
    import subprocess
    import sys

    code = ("import sys, perfkit.logs, perfkit.logs.stream, perfkit.logs.duck; "
            "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'duckdb') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_the_command_says_what_duckdb_read_and_takes_an_engine(tmp_path):
    import subprocess
    import sys

    base = [sys.executable, "-m", "perfkit", "logs", str(REAL[0])]
    shown = subprocess.run([*base, "--engine", "duckdb"], capture_output=True, text=True, env={
        **__import__("os").environ, "COLUMNS": "100"})
    assert shown.returncode == 0, shown.stderr
    assert "from 1 file(s), 1 of them by DuckDB" in shown.stdout + shown.stderr
    python = subprocess.run([*base, "--engine", "python"], capture_output=True, text=True)
    assert python.returncode == 0 and "by DuckDB" not in python.stdout + python.stderr
    wrong = subprocess.run([*base, "--engine", "fast"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "--engine" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize("kind", ["jsonlog", "csvlog"])
def test_a_bad_line_duckdb_meets_late_goes_to_the_python_pass(tmp_path, kind):
    """A stray line near the end of a file of several MiB: DuckDB raises while the batches stream
    (through pyarrow, not as a duckdb.Error); the Python pass reads the file and skips the line."""
    source = REAL[0] if kind == "jsonlog" else REAL[1]
    lines = _lines(source) * 40
    # before the start of a record (a csvlog record may span lines)
    at = next(i for i in range(len(lines) - 3, 0, -1)
              if lines[i].startswith("{") or (lines[i][:2] == lines[i - 1][:2] == "20" and not lines[i - 1].count('"') % 2))
    lines.insert(at, "pg_ctl: could not start server")
    path = tmp_path / f"postgresql{source.suffix}"
    path.write_text("\n".join(lines) + "\n")
    _same_as_python(path, read_by_duckdb=False)


def test_a_file_that_grows_while_duckdb_reads_it_is_read_only_to_the_resumed_end(tmp_path, monkeypatch):
    """--state: a live log is read up to the end planned (its last complete line); the server's
    lines written while DuckDB reads belong to the next run (else they are counted twice)."""
    path = tmp_path / "postgresql.json"
    path.write_text(REAL[0].read_text() * 12)
    size = path.stat().st_size
    resume = {str(path): (0, size, 0)}
    want = stream.scan([path], stream.Settings(engine="python", jobs=1), resume=resume)
    counting = duck._lines_of

    def written_meanwhile(name):  # the server writes while DuckDB reads (before the lines are counted)
        with open(name, "a") as handle:
            handle.write(REAL[0].read_text())
        return counting(name)

    monkeypatch.setattr(duck, "_lines_of", written_meanwhile)
    got = stream.scan([path], stream.Settings(engine="duckdb", jobs=1), resume=resume)
    assert (got.report.entries, got.executions) == (want.report.entries, want.executions)


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_file_named_twice_is_read_once(tmp_path, engine):
    """A glob and a name that overlap (``*.json postgresql.json``, ``./x`` and ``x``): DuckDB read such
    a file once, the Python pass twice (every count doubled)."""
    path = tmp_path / "postgresql.json"
    path.write_bytes(REAL[0].read_bytes())
    once = stream.scan([path], stream.Settings(engine=engine, jobs=1))
    twice = stream.scan([str(tmp_path / "*.json"), path, tmp_path / "." / path.name],
                        stream.Settings(engine=engine, jobs=1))
    assert (twice.report.entries, twice.executions) == (once.report.entries, once.executions)
    assert twice.report.files == [str(path)]


@pytest.mark.parametrize("batch", [256, duck._BATCH])
def test_one_shape_in_many_spellings_over_several_batches(tmp_path, monkeypatch, batch):
    """Texts of one shape with other literals and other spellings (DuckDB keys them apart, pglast
    gives them one fingerprint), thousands in a row from a few processes, over several batches:
    the example (the first text), the slowest execution (the first of the longest), the sums and
    the histogram are the Python pass's, which meets the texts in file order."""
    monkeypatch.setattr(duck, "_BATCH", batch)
    lines = _lines(REAL[0])
    template = json.loads(lines[_executions(REAL[0])[-1]])
    spellings = [f"{select} *{space}FROM invoices {where} id = {{n}}{tail}" for select in ("SELECT", "select")
                 for space in (" ", "  ") for where in ("WHERE", "where") for tail in ("", " -- tail", ";")]
    for number in range(3000):
        record = dict(template, pid=template["pid"] + number % 3, session_id=f"{template['session_id']}{number % 3}")
        # a few durations over and over: the longest is met many times, the first of them counts
        record["message"] = (f"duration: {(number * 7919) % 13 + 0.1:.3f} ms  statement: "
                             + spellings[(number * 31 + number // 7) % len(spellings)].format(n=number * 104729 % 1000))
        lines.append(_json_line(record))
    path = tmp_path / "postgresql.json"
    path.write_text("\n".join(lines) + "\n")
    _same_as_python(path, read_by_duckdb=True)


def test_the_walks_caches_are_bounded(tmp_path, monkeypatch):
    """With caches of two entries (the slot of a key, of a text, of a shape: cleared when full, as
    on a log with more distinct statements than they hold) the result is the one with caches that
    keep everything, and slots are made again as they were."""
    path = tmp_path / "postgresql.json"
    lines = _lines(REAL[0])
    # texts without a parameter or a comment: only the walk's slot of a key makes their slots
    plain = [text for text in STATEMENTS if "$" not in text and "/*" not in text]
    for number, index in enumerate(_executions(REAL[0])):
        record = json.loads(lines[index])
        end = record["message"].find(" ms  ")
        verb = record["message"][end + 5:].split(": ", 1)[0]
        record["message"] = f"{record['message'][:end]} ms  {verb}: {plain[number % len(plain)]}"
        record.pop("detail", None)
        lines[index] = _json_line(record)
    path.write_text("\n".join(lines) + "\n")
    made: list = []
    slot = stream._Pass._slot

    def counted(self, statement):
        made.append(statement)
        return slot(self, statement)

    monkeypatch.setattr(stream._Pass, "_slot", counted)
    want, _ = _assessed(path, "duckdb")
    unbounded = len(made)
    monkeypatch.setattr(stream, "_EXACT_MAX", 2)
    got, scanned = _assessed(path, "duckdb")
    assert scanned.engines and got == want
    assert len(made) - unbounded > unbounded  # slots made again after the caches were cleared
    assert got == _assessed(path, "python")[0]
