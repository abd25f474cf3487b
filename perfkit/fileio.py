"""Files in and out: atomic writes (a temporary file in the same folder, fsync, then a rename),
the one-line errors for an input file that is missing, a folder or unreadable, and the check that
an input is a regular file (a FIFO with no writer would block forever, ``/dev/zero`` never ends).

Readers never see half a file, and two writers never share a temporary name.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from perfkit.errors import BadInputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the file to; when the block ends without an
    error it is fsynced and renamed to ``path``, else removed."""
    import uuid  # (not at start-up: reading a file needs no uuid)

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


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def require_regular(path: str | Path, folder: str | None = None, *, stdin: bool = False) -> Path | None:
    """Refuse an input that is not a regular file, before anything opens it.

    Opening a FIFO with no writer blocks forever and a device such as ``/dev/zero`` never ends,
    so a reader calls this first; ``os.stat`` itself never blocks.

    Parameters
    ----------
    path:
        The input file (a symbolic link is followed).
    folder:
        The message for a folder ("is a folder, not a plan file"); None lets a folder through
        (for callers that read a folder themselves, such as a Gatling report).
    stdin:
        Whether ``-`` (standard input) is accepted; then None is returned for it.

    Returns
    -------
    pathlib.Path or None
        ``path`` as a Path (None for an accepted ``-``).

    Raises
    ------
    BadInputError
        Missing, unreadable, a folder (when ``folder`` is given), a FIFO, a device or a socket.
    """
    if stdin and str(path) == "-":
        return None
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BadInputError("no such file", path=path) from None
    except OSError as err:  # PermissionError on a folder we may not enter, ELOOP, ENAMETOOLONG
        raise BadInputError(f"cannot read it ({err.strerror or err})", path=path) from None
    if stat.S_ISDIR(mode):
        if folder is not None:
            raise BadInputError(folder, path=path)
        return path
    for test, kind in _KINDS:
        if test(mode):
            where = ", or - for standard input" if stdin else ""
            raise BadInputError(f"is {kind}, not a regular file: give a file{where}", path=path)
    return path


def read_limited(handle, limit: int, *, path: str | Path, what: str = "file") -> bytes:
    """All bytes of the binary ``handle``, refusing (BadInputError) beyond ``limit`` bytes without
    reading more than ``limit + 1`` of them."""
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise BadInputError(f"the {what} is larger than {limit // (1024 * 1024)} MiB, the most perfkit reads", path=path)
    return data


def probe(path: str | Path) -> str | None:
    """What ``path`` is, without ever raising the PermissionError of ``Path.exists()``:
    ``"dir"``, ``"file"`` (a regular file), ``"other"`` (a FIFO, a device, a socket) or None when
    nothing is there (or a component of the path is not a folder).

    Raises
    ------
    BadInputError
        The path cannot be checked (a folder on the way the user may not enter, a symbolic-link
        loop, a name too long): one line naming the path.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise BadInputError(f"cannot read it ({err.strerror or err})", path=path) from None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def size_of(path: str | Path) -> int:
    """The size of ``path`` in bytes; BadInputError (one line naming it) when it cannot be checked."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise BadInputError("no such file", path=path) from None
    except OSError as err:
        raise BadInputError(f"cannot read it ({err.strerror or err})", path=path) from None


MAX_LINE_BYTES = 64 * 1024 * 1024  # the longest line a text input may hold (as perfkit.logs)
READ_CHUNK = 1024 * 1024  # what a bounded reader reads (decompresses) at a time


def bounded_chunks(handle, path: str | Path, *, max_line: int = MAX_LINE_BYTES):
    """Yield the bytes of the binary ``handle`` READ_CHUNK at a time, refusing a line longer than
    ``max_line`` bytes as soon as it grows past it (a decompression bomb of one endless line, a
    binary file), so that memory never holds more than that line.

    Raises
    ------
    LineTooLong
        A BadInputError, ``PATH, line N: a line longer than 64 MiB ...``.
    """
    run = 0  # bytes of the line not ended yet
    lines = 0  # line breaks before it
    while True:
        chunk = handle.read(READ_CHUNK)
        if not chunk:
            return
        cut = chunk.rfind(b"\n")
        if cut < 0:
            run += len(chunk)
        elif run + chunk.find(b"\n") > max_line:  # a line that started before ends in this chunk
            run = max_line + 1
        else:
            lines += chunk.count(b"\n")
            run = len(chunk) - cut - 1
        if run > max_line:
            raise LineTooLong(path, lines + 1, max_line)
        yield chunk


class LineTooLong(BadInputError):
    """A line longer than the limit (a BadInputError naming the file, and its line when known)."""

    def __init__(self, path, line: int | None, limit: int):
        self.limit = limit
        super().__init__(f"a line longer than {limit // (1024 * 1024)} MiB, the most perfkit reads "
                         "(a binary file, or a decompression bomb?)", path=path, line=line)
