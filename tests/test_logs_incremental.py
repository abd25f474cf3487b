"""Incremental runs (``perfkit logs --state``) on the real logs of tests/fixtures/logs/events: a second
run reads only the lines appended since the first, and the stored runs merge to the totals of one
full read; a rotated or truncated file is read from the start, and said so."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import perfkit.logs
from perfkit.cli import main
from perfkit.errors import BadInputError
from perfkit.logs import incremental, stream

EVENTS = Path(__file__).resolve().parent / "fixtures" / "logs" / "events"
ENTRY_START = {"stderr": re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] \S+ LOG:  "),
               "csvlog": re.compile(r'^\d{4}-\d\d-\d\d [\d:.]+ \S+,"[^"]*","[^"]*",\d+,[^\n]*,LOG,'),
               "jsonlog": re.compile(r'^\{"timestamp"')}
FILES = {"stderr": "postgresql.log", "csvlog": "postgresql.csv", "jsonlog": "postgresql.json"}


def _halves(kind: str) -> tuple[str, str]:
    """The log cut in two at the LOG entry that starts nearest its middle line."""
    text = (EVENTS / FILES[kind]).read_text()
    lines = text.splitlines(keepends=True)
    middle = len(lines) // 2
    cut = next(i for i in range(middle, len(lines)) if ENTRY_START[kind].match(lines[i]))
    return "".join(lines[:cut]), "".join(lines[cut:])


def _totals(scanned: stream.Scan) -> dict:
    events = scanned.events
    return {
        "entries": scanned.report.entries,
        "executions": scanned.executions,
        "timed": scanned.timed,
        "calls": {k: v.calls for k, v in scanned.shapes.items() if v.calls},
        "total_ms": round(sum(v.total_ms for v in scanned.shapes.values()), 3),
        "errors": {k: v[0] for k, v in events.errors.items()},
        "temp_files": {k: v[:3] for k, v in events.temp_files.items()},
        "checkpoints": dict(events.checkpoints),
        "autovacuum": {k: v[0] for k, v in events.autovacuum.items()},
        "connections": events.connection_total,
        "sessions": events.session_total[0],
        "deadlocks": events.deadlock_count,
    }


@pytest.mark.parametrize("kind", sorted(FILES))
def test_second_run_reads_only_new_lines_and_runs_merge_to_one_full_read(tmp_path, kind):
    first, second = _halves(kind)
    log = tmp_path / FILES[kind]
    state = tmp_path / "state.json"
    settings = stream.Settings(jobs=1)
    log.write_text(first)
    one = perfkit.logs.assess(log, state=state, jobs=1)
    with log.open("a") as out:
        out.write(second)
    two = perfkit.logs.assess(log, state=state, jobs=1)
    full = stream.scan(EVENTS / FILES[kind], settings)
    # the second run read the appended lines only: as many entries as the second half alone
    assert one.facts["entries"] + two.facts["entries"] == full.report.entries
    assert 0 < two.facts["entries"] < full.report.entries
    assert two.facts["executions"] == full.executions - one.facts["executions"]
    # its line numbers go on from where the first run stopped
    offset = first.count("\n")
    lines = [r for r in two.data["slowest"]["line"] if r == r]
    assert lines and min(lines) > offset
    merged = incremental.merged(state)
    assert _totals(merged) == _totals(full)
    # a third run with nothing new reads nothing, and --merge-days shows every stored run
    three = perfkit.logs.assess(log, state=state, jobs=1, merge_days=7)
    assert three.facts["executions"] == full.executions
    assert any("0 of 1 file(s) had new lines" in n for n in three.notes)
    saved = json.loads(state.read_text())
    entry = saved["files"][str(log.resolve())]
    assert entry["offset"] == log.stat().st_size and entry["line"] == (first + second).count("\n")
    assert len(saved["runs"]) == 3 and len(list(incremental.runs_folder(state).iterdir())) == 3


def test_rotated_and_truncated_files_are_read_from_the_start(tmp_path):
    first, second = _halves("stderr")
    log = tmp_path / "postgresql.log"
    state = tmp_path / "state.json"
    log.write_text(first)
    one = perfkit.logs.assess(log, state=state, jobs=1)
    # rotation: the file renamed, a new one at its path; the renamed one is resumed where it was
    log.rename(tmp_path / "postgresql.log.1")
    with (tmp_path / "postgresql.log.1").open("a") as out:
        out.write(second[: second.index("\n") + 1])
    log.write_text(second)
    two = perfkit.logs.assess([log, tmp_path / "postgresql.log.1"], state=state, jobs=1)
    assert any("rotated since the last run" in n for n in two.notes)
    assert two.facts["entries"] == stream.scan(log, stream.Settings(jobs=1)).report.entries + 1
    # truncation: the file rewritten shorter than the offset reached is read from the start
    log.write_text(first[: first.index("\n", 2000) + 1])
    three = perfkit.logs.assess(log, state=state, jobs=1)
    assert any("truncated or rewritten" in n for n in three.notes)
    assert three.facts["entries"] == stream.scan(log, stream.Settings(jobs=1)).report.entries
    assert one.facts["entries"] > three.facts["entries"]


def test_a_state_file_as_a_log_is_its_stored_runs(tmp_path, capsys):
    log = tmp_path / "postgresql.log"
    shutil.copy(EVENTS / "postgresql.log", log)
    state = tmp_path / "state.json"
    assert main(["logs", str(log), "--state", str(state), "--jobs", "1", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["logs", str(state), "--json"]) == 0  # the weekly report's way in: --logs STATE
    stored = json.loads(capsys.readouterr().out)
    assert stored["executions"] == first["executions"] > 0
    assert any("1 stored run(s)" in n for n in stored["notes"])
    assert main(["logs", str(log), "--merge-days", "7"]) == 2
    assert "--merge-days merges the runs of a state file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"perfkit_log_state": 99}')
    with pytest.raises(BadInputError, match="not a perfkit state file"):
        incremental.load(tmp_path / "bad.json")


@pytest.mark.parametrize("kind", sorted(FILES))
def test_byte_ranges_read_every_line_once(kind, monkeypatch):
    """The byte ranges a large file is cut into (and an incremental run's part) give each line once,
    numbered as in the whole file, wherever the cuts fall (mid-line, mid-entry), a small block at a time."""
    from perfkit.logs.prefix import LinePrefix
    from perfkit.logs.reader import detect_format
    from perfkit.logs.sources import numbered_lines

    path = EVENTS / FILES[kind]
    found, prefix = detect_format(path, None)
    whole = list(numbered_lines(path))
    size = path.stat().st_size
    monkeypatch.setattr(stream, "_BLOCK", 4096)
    line_prefix = LinePrefix(prefix) if prefix else None
    for step in (997, 5003, 20011):
        cuts = [*range(0, size, step), None]
        lines = []
        for low, high in zip(cuts, cuts[1:], strict=False):
            lines += stream._range_lines(str(path), low, high, found, line_prefix)
        assert lines == whole
