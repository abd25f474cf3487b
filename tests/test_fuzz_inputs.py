"""Hypothesis over the inputs a user hands perfkit that other tests cover only by example: the SLO
TOML file and the snapshot store's Parquet files. Whatever the bytes, the answer is targets (or a
stored frame) or one BadInputError naming the file; never a traceback, never a hang."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfkit.errors import BadInputError
from perfkit.loadtests import load_targets
from perfkit.store import SnapshotStore

METRICS = ["p50_ms", "p95_ms", "p99_ms", "error_rate", "rps", "mean_ms", "nonsense"]
VALUES = st.one_of(st.integers(-10, 10_000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.booleans(), st.lists(st.integers(), max_size=3))
LIMIT = st.one_of(VALUES, st.fixed_dictionaries({}, optional={"target": VALUES, "critical": VALUES, "x": VALUES}))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value > 0 else "-inf") if value in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"


@st.composite
def slo_documents(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append("[defaults]")
        for metric in draw(st.lists(st.sampled_from(METRICS), max_size=4, unique=True)):
            lines.append(f"{metric} = {_toml_value(draw(LIMIT))}")
    for name in draw(st.lists(st.sampled_from(["read", "write", "x y", "webhook"]), max_size=2, unique=True)):
        lines.append(f'[classes."{name}"]')
        if draw(st.booleans()):
            lines.append(f"match = {_toml_value(draw(st.lists(st.text(max_size=6), max_size=2)))}")
        if draw(st.booleans()):
            lines.append(f"methods = {_toml_value(draw(st.lists(st.sampled_from(['GET', 'post', 1]), max_size=2)))}")
        for metric in draw(st.lists(st.sampled_from(METRICS), max_size=2, unique=True)):
            lines.append(f"{metric} = {_toml_value(draw(LIMIT))}")
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["[other]", "junk", "p95_ms =", "[defaults", '"unterminated'])))
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(slo_documents(), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_slo_file_gives_targets_or_one_line_naming_it(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slo.toml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load_targets(path)
        except BadInputError as err:
            assert str(path) in str(err) and "\n" not in str(err)


def _parquet_bytes(rows: int) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"queryid": list(range(rows)), "query": [f"SELECT {i}" for i in range(rows)]}), buffer)
    return buffer.getvalue()


REAL = _parquet_bytes(5)


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(st.binary(max_size=400),
                      st.integers(0, len(REAL)).map(lambda cut: REAL[:cut]),
                      st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255))
                      .map(lambda change: REAL[:change[0]] + bytes([change[1]]) + REAL[change[0] + 1:])))
def test_any_stored_file_loads_or_is_one_line_naming_it(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "server=s" / "date=2026-01-01" / "000000.parquet"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        try:
            frame = SnapshotStore(folder).load(path)
        except BadInputError as err:
            assert str(path) in str(err) and "\n" not in str(err)
        else:
            assert (frame["server"] == "s").all()
