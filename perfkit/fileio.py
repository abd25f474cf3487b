"""Files in and out: atomic writes (a temporary file in the same folder, fsync, then a rename),
and the one-line errors for an input file that is missing, a folder or unreadable.

Readers never see half a file, and two writers never share a temporary name.
"""

from __future__ import annotations

import contextlib
import os
import stat
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


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def require_regular(path: str | Path, folder: str | None = None) -> Path:
    """``path`` if it names a regular file (symbolic links followed); else a one-line BadInputError.

    Checked with ``os.stat`` before anything opens the file, so a named pipe without a writer,
    ``/dev/zero`` or a socket is refused at once instead of blocking or reading forever.

    Parameters
    ----------
    folder:
        What the error says when ``path`` is a folder (default "is a folder, not a file").
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BadInputError("no such file", path=path) from None
    except OSError as err:
        raise BadInputError(f"cannot read it ({err.strerror or err})", path=path) from None
    if stat.S_ISREG(mode):
        return path
    if stat.S_ISDIR(mode):
        raise BadInputError(folder or "is a folder, not a file", path=path)
    raise BadInputError(f"is {_kind(mode)}, not a regular file; perfkit reads only regular files", path=path)


def read_limited(handle, limit: int, *, path: str | Path, what: str = "file") -> bytes:
    """All bytes of the binary ``handle``, refusing (BadInputError) beyond ``limit`` bytes without
    reading more than ``limit + 1`` of them."""
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise BadInputError(f"the {what} is larger than {limit // (1024 * 1024)} MiB, the most perfkit reads", path=path)
    return data
