"""Files in and out: atomic writes (a temporary file in the same folder, fsync, then a rename),
and the one-line errors for an input file that is missing, a folder or unreadable.

Readers never see half a file, and two writers never share a temporary name.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from perfkit.errors import BadInputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the file to; when the block ends without an
    error it is fsynced and renamed to ``path``, else removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return Path(path)


@contextlib.contextmanager
def input_errors(path: str | Path, folder: str) -> Iterator[None]:
    """Turn the OSError of reading the input file ``path`` into a one-line BadInputError.

    Parameters
    ----------
    path:
        The file being read (named by the error).
    folder:
        What the error says when ``path`` is a folder ("is a folder, not a plan file").
    """
    try:
        yield
    except FileNotFoundError:
        raise BadInputError("no such file", path=path) from None
    except IsADirectoryError:
        raise BadInputError(folder, path=path) from None
    except (OSError, EOFError) as err:
        raise BadInputError(f"cannot read it ({getattr(err, 'strerror', None) or err})", path=path) from None
