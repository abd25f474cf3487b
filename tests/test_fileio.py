"""fileio.require_regular: only regular files (or -) are read; a FIFO or a device is refused
before anything opens it (opening a FIFO with no writer blocks forever)."""

from __future__ import annotations

import os

import pytest

from perfkit.errors import BadInputError
from perfkit.fileio import require_regular


def test_a_regular_file_passes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    assert require_regular(path) == path


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match=r"pipe: is a FIFO \(named pipe\), not a regular file"):
        require_regular(fifo)


def test_a_device_is_refused():
    with pytest.raises(BadInputError, match=r"/dev/zero: is a character device, not a regular file"):
        require_regular("/dev/zero")


def test_missing_and_folder(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        require_regular(tmp_path / "nope")
    with pytest.raises(BadInputError, match="is a folder, not a plan file"):
        require_regular(tmp_path, "is a folder, not a plan file")
    assert require_regular(tmp_path) == tmp_path  # no folder message: a folder is let through


def test_stdin_only_when_allowed(tmp_path):
    assert require_regular("-", stdin=True) is None
    with pytest.raises(BadInputError, match="no such file"):
        require_regular("-")
