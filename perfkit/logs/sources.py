"""Log files on disk: globs expanded, gzip/bzip2/xz recognised by content, lines numbered.

``numbered_lines(path)`` yields ``(line_number, text)`` and feeds one progress bar for long reads.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from perfkit.errors import BadInputError
from perfkit.fileio import require_regular

# Reads above this many bytes (all files together) show a progress bar on stderr.
PROGRESS_MIN_BYTES = 32 * 1024 * 1024
# The longest log line perfkit reads (a statement of a few MB is normal; /dev/zero or a gzip bomb
# of one endless line is not), and how much decompressed text is read at a time.
MAX_LINE_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The files named by ``paths`` (each a file or a glob pattern), in the given order.

    Raises
    ------
    BadInputError
        When a name matches no file, or names a folder.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files: list[Path] = []
    for item in paths:
        text = os.fspath(item)
        if glob.has_magic(text) and _mode(Path(text)) is None:
            matches = sorted(glob.glob(text))
            if not matches:
                raise BadInputError(f"no file matches {text!r}")
            files.extend(Path(m) for m in matches if stat.S_ISREG(_mode(Path(m)) or 0))
            continue
        path = Path(text)
        mode = _mode(path)
        if mode is None:
            raise BadInputError("no such file", path=path)
        if stat.S_ISDIR(mode):
            raise BadInputError("is a folder; give the log files in it (e.g. 'log/*.csv')", path=path)
        files.append(require_regular(path, "is a folder, not a log file"))
    if not files:
        raise BadInputError("no log file given")
    return files


def _mode(path: Path) -> int | None:
    """``path``'s st_mode (links followed), None when there is no such file; BadInputError when it
    cannot be looked at (a folder on the way that the user may not enter)."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise BadInputError(f"cannot read it ({err.strerror or err})", path=path) from None


def compression(path: Path) -> str | None:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or None, read from the file's first bytes."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(6)
    except OSError as err:
        raise BadInputError(f"cannot read: {err.strerror or err}", path=path) from None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class _Progress:
    """One progress bar over the bytes of all files of a read (compressed bytes for archives)."""

    def __init__(self, files: list[Path]):
        total = sum(f.stat().st_size for f in files)
        self.bar = None
        if total >= PROGRESS_MIN_BYTES:
            from perfkit.output import progress

            self.bar = progress(desc="reading logs", total=total, unit="B")
            self.bar.unit_scale = True

    def advance(self, count: int) -> None:
        if self.bar is not None and count > 0:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def numbered_lines(path: Path, progress: _Progress | None = None) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for each line of ``path`` (1-based, newline removed).

    Compressed files are read as a stream. Bytes that are not UTF-8 become U+FFFD.

    Raises
    ------
    BadInputError
        When the file cannot be read, or a compressed stream is cut short or corrupt
        (the lines before the damage have been yielded by then).
    """
    kind = compression(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise BadInputError(f"cannot read: {err.strerror or err}", path=path) from None
    number = 0
    try:
        if kind == "gzip":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        elif kind == "bzip2":
            stream = bz2.BZ2File(raw, mode="rb")
        elif kind == "xz":
            stream = lzma.LZMAFile(raw, mode="rb")
        else:
            stream = raw
        lines = _bounded_lines(stream, raw, path, progress)
        try:
            for number, line in enumerate(lines, start=1):
                yield number, line
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as err:
            what = f"{kind} stream" if kind else "file"
            detail = str(err) or type(err).__name__
            raise BadInputError(
                f"the {what} is damaged or cut short after line {number} ({detail})",
                path=path,
                line=number + 1,
            ) from None
    finally:
        raw.close()


def _bounded_lines(stream, raw, path: Path, progress: _Progress | None) -> Iterator[str]:
    """The lines of the binary ``stream`` (newline removed, UTF-8 with U+FFFD for bad bytes),
    read _READ_CHUNK decompressed bytes at a time so that memory stays bounded.

    Raises BadInputError when a line grows past MAX_LINE_BYTES, before reading the rest of it.
    """
    pending = bytearray()
    done = 0  # lines yielded, for the error's line number
    reported = 0
    # read1: what has been decompressed so far, so that the lines before a damaged part are kept
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk = read(_READ_CHUNK)
        if not chunk:
            break
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending += chunk
            if len(pending) > MAX_LINE_BYTES:
                raise BadInputError(
                    f"a line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB: not a PostgreSQL log line "
                    "(a binary file, /dev/zero, or a decompression bomb?)",
                    path=path,
                    line=done + 1,
                )
            continue
        if pending:
            pending += chunk[:cut]
            text = pending.decode("utf-8", errors="replace")
        else:
            text = chunk[:cut].decode("utf-8", errors="replace")
        pending = bytearray(chunk[cut + 1:])
        for line in text.split("\n"):
            done += 1
            yield line[:-1] if line.endswith("\r") else line
        if progress is not None:
            position = raw.tell()
            progress.advance(position - reported)
            reported = position
    if pending:
        if len(pending) > MAX_LINE_BYTES:
            raise BadInputError(f"a line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB", path=path, line=done + 1)
        yield pending.decode("utf-8", errors="replace")
    if progress is not None:
        progress.advance(os.fstat(raw.fileno()).st_size - reported)
