"""Fuzzing every load-test parser: any bytes give a LoadTestRun or a PerfkitError, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfkit import loadtests
from perfkit.errors import PerfkitError

FIX = Path(__file__).parent / "fixtures" / "loadtests"
# a real file per format, to mutate (random bytes alone rarely get past the first check): the
# first fixture its reader module declares
SEEDS = {declared.name: declared.fixtures[0] for declared in loadtests.FORMATS.values()}
FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_every_format_has_a_seed():
    assert set(SEEDS) == set(loadtests.FORMATS)
    assert all((FIX / name).is_file() for name in SEEDS.values())


def _read(tmp_path, data: bytes, fmt: str | None):
    path = tmp_path / "fuzz.out"
    path.write_bytes(data)
    try:
        run = loadtests.read(path, fmt)
    except PerfkitError as err:
        assert "\n" not in str(err)
        return None
    assert list(run.summary.columns) == loadtests.SUMMARY_COLUMNS
    return run


def _head(name: str, size: int = 4000) -> bytes:
    data = (FIX / name).read_bytes()[:size]
    return data


@pytest.mark.parametrize("fmt", sorted(SEEDS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(tmp_path, fmt, data):
    _read(tmp_path, data, fmt)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
@FUZZ
@given(cut=st.integers(min_value=0, max_value=4000), flips=st.lists(
    st.tuples(st.integers(min_value=0, max_value=3999), st.binary(min_size=1, max_size=3)), max_size=4))
def test_mutated_real_files(tmp_path, fmt, cut, flips):
    data = bytearray(_head(SEEDS[fmt]))
    for position, replacement in flips:
        position = position % max(len(data), 1)
        data[position:position + len(replacement)] = replacement
    _read(tmp_path, bytes(data[:cut] if cut else data), fmt)
    _read(tmp_path, bytes(data[:cut] if cut else data), None)  # detection too


@FUZZ
@given(data=st.binary(max_size=400))
def test_detection_of_random_bytes(tmp_path, data):
    _read(tmp_path, data, None)


DEEP = [b"[" * 200_000, b'{"stats": ' + b"[" * 200_000, b'{"a": ' * 100_000]


@pytest.mark.parametrize("fmt", [None, *sorted(SEEDS)])
@pytest.mark.parametrize("deep", DEEP, ids=["arrays", "stats", "objects"])
def test_deeply_nested_json_is_bad_input_not_a_recursion_error(tmp_path, fmt, deep):
    # json.loads raises RecursionError past the interpreter's depth: a clear error, no traceback
    _read(tmp_path, deep, fmt)


def test_deeply_nested_vegeta_line_names_the_line(tmp_path):
    from perfkit.errors import BadInputError

    first = (FIX / "vegeta_results.json").read_bytes().split(b"\n")[0]
    path = tmp_path / "deep.json"
    path.write_bytes(first + b"\n" + b"[" * 200_000 + b"\n")
    with pytest.raises(BadInputError, match=r"deep.json, line 2: .*nested too deeply"):
        loadtests.read(path)
    assert loadtests.read(path, skip_bad_lines=True).skipped_lines == 1
