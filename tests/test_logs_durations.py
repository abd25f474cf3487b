"""A duration PostgreSQL would not write ("duration: ² ms", "1e3", "nan", "-5", "١٢") is not an
execution, in every reader: no crash (float("²") raised from the stderr, csvlog and jsonlog
readers), no number that float() would take and PostgreSQL never writes ("%.3f").

Each real log of tests/fixtures/logs has some durations of its executions rewritten; the engines
read it alike, and it counts that many executions fewer.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from pathlib import Path

import pytest

from perfkit.logs import stream
from perfkit.logs.messages import duration_ms, statement_of

assess_module = importlib.import_module("perfkit.logs.assess")
LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
ODD = ["²", "١٢", "1e3", "nan", "inf", "-5", "1_000", " 1.5", "1.5.0", ".", ""]


@pytest.mark.parametrize("number", ODD)
def test_a_duration_postgresql_would_not_write_is_none(number):
    assert duration_ms(number) is None
    assert stream.timed_statement(f"duration: {number} ms  statement: SELECT 1") is None
    assert stream.timed_statement(f"duration: {number} ms  execute <unnamed>: SELECT 1") is None
    assert statement_of(f"duration: {number} ms  statement: SELECT 1").phase == ""


@pytest.mark.parametrize("number, ms", [("0.027", 0.027), ("12", 12.0), ("1.", 1.0), (".5", 0.5)])
def test_postgresql_durations(number, ms):
    assert duration_ms(number) == ms
    assert stream.timed_statement(f"duration: {number} ms  statement: SELECT 1") == (ms, "SELECT 1")
    assert statement_of(f"duration: {number} ms  execute S_1: SELECT 1") == ("execute", ms, "SELECT 1", "")


def _rewrite(message: str, number: int) -> str:
    end = message.find(" ms  ")
    return f"duration: {ODD[number % len(ODD)]}{message[end:]}"


def _is_execution(message: str) -> bool:
    return message.startswith("duration: ") and ("  statement: " in message or "  execute " in message)


def _odd_copy(source: Path, path: Path, kind: str) -> int:
    """``source`` with every third execution's duration rewritten; how many were."""
    changed = 0
    if kind == "stderr":
        lines = source.read_text().split("\n")
        for index, line in enumerate(lines):
            at = line.find("LOG:  duration: ")
            if at > 0 and _is_execution(line[at + 6:]) and index % 3 == 0:
                lines[index] = line[:at + 6] + _rewrite(line[at + 6:], changed)
                changed += 1
        path.write_text("\n".join(lines))
    elif kind == "csvlog":
        rows = list(csv.reader(source.open(newline="")))
        for index, row in enumerate(rows):
            if _is_execution(row[13]) and index % 3 == 0:
                row[13] = _rewrite(row[13], changed)
                changed += 1
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerows(rows)
        path.write_text(out.getvalue())
    else:
        lines = source.read_text().split("\n")
        for index, line in enumerate(lines):
            if not line:
                continue
            record = json.loads(line)
            if _is_execution(record.get("message", "")) and index % 3 == 0:
                record["message"] = _rewrite(record["message"], changed)
                lines[index] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
                changed += 1
        path.write_text("\n".join(lines))
    return changed


def _assessed(path: Path, engine: str) -> tuple[dict, int]:
    """The assessment (without which files DuckDB read) and its executions."""
    scanned = stream.scan([path], stream.Settings(engine=engine, jobs=1))
    assessment = assess_module.from_scan(scanned, n=10, slow_ms=200.0, include_noise=False, timezone=None)
    data = assessment.to_json()
    data.pop("engines")
    return data, assessment.facts["executions"]


@pytest.mark.parametrize("kind, name", [("stderr", "events/postgresql.log"), ("stderr", "stderr-default.log"),
                                        ("csvlog", "events/postgresql.csv"), ("jsonlog", "events/postgresql.json")])
def test_odd_durations_in_real_logs(tmp_path, kind, name):
    source = LOGS / name
    path = tmp_path / source.name
    changed = _odd_copy(source, path, kind)
    assert changed >= 3
    _, before = _assessed(source, "python")
    engines = ("auto", "python") if kind == "stderr" else ("duckdb", "python")
    got = [_assessed(path, engine) for engine in engines]
    assert json.dumps(got[0], default=str, sort_keys=True) == json.dumps(got[1], default=str, sort_keys=True)
    assert got[0][1] == got[1][1] == before - changed
