"""Fuzzing the log readers with hypothesis: any input gives rows or a PerfkitError, nothing else.

Inputs are built from real log line pieces (prefixes, levels, tabs, quotes, NULs) and from noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perfkit.logs
from perfkit.errors import PerfkitError

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
REAL_LINES = (FIXTURES / "stderr-default.log").read_text().splitlines()[:60]
PIECES = [
    "2024-05-01 12:00:00.123 UTC ", "2024-05-01 12:00:00 CEST ", "2024-05-01 12:00:00 XYZ ", "[123] ",
    "[] ", "LOG:  ", "DETAIL:  ", "STATEMENT:  ", "ERROR:  ", "duration: ", "1.5 ms", " ms  ",
    "statement: ", "execute <unnamed>: ", "plan:", "Query Text: ", "SELECT * FROM t WHERE id = 1",
    "/* route='x' */", "'", '"', "\t", "\n", "\x00", "\ufffd", "{", "}", ",", "%", "(cost=1..2)",
]
text_from_pieces = st.lists(st.sampled_from(PIECES + REAL_LINES), max_size=30).map("".join)
lines = st.lists(st.one_of(text_from_pieces, st.text(max_size=80), st.sampled_from(REAL_LINES)), max_size=25)
prefixes = st.sampled_from([None, "%m [%p] ", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ", "%m [%p] %q%u@%d "])
FUZZ = settings(max_examples=int(os.environ.get("PERFKIT_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_or_error(path: Path, prefix: str | None, skip: bool):
    try:
        frame = perfkit.logs.read(path, prefix=prefix, skip_bad_lines=skip)
    except PerfkitError:
        return None
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == perfkit.logs.COLUMNS
    if len(frame):
        assert (frame["line"] >= 1).all()
    return frame


@FUZZ
@given(body=lines, prefix=prefixes, skip=st.booleans())
def test_stderr_reader_gives_rows_or_perfkit_error(tmp_path_factory, body, prefix, skip):
    path = tmp_path_factory.mktemp("fuzz") / "postgresql.log"
    path.write_text("\n".join(body), encoding="utf-8", errors="surrogatepass")
    frame = read_or_error(path, prefix, skip)
    if frame is not None and not skip:
        assert frame.attrs["skipped_lines"] == 0


@FUZZ
@given(data=st.binary(max_size=400), skip=st.booleans())
def test_any_bytes_give_rows_or_perfkit_error(tmp_path_factory, data, skip):
    path = tmp_path_factory.mktemp("fuzz") / "unknown.log"
    path.write_bytes(data)
    read_or_error(path, None, skip)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=20_000), junk=text_from_pieces, name=st.sampled_from(["csvlog.csv", "jsonlog.json"]))
def test_damaged_csv_and_json_logs(tmp_path_factory, cut, junk, name):
    text = (FIXTURES / name).read_text()
    cut = min(cut, len(text))
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_text(text[:cut] + junk + text[cut:])
    whole = read_or_error(path, None, True)
    assert whole is not None  # skipping bad lines always reads what it can
