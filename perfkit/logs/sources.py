"""Log files on disk: globs expanded, gzip/bzip2/xz recognised by content, lines numbered.

``numbered_lines(path)`` yields ``(line_number, text)`` and feeds one progress bar for long reads.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from perfkit.errors import BadInputError

# Reads above this many bytes (all files together) show a progress bar on stderr.
PROGRESS_MIN_BYTES = 32 * 1024 * 1024
_PROGRESS_EVERY_LINES = 50_000

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
        if glob.has_magic(text) and not Path(text).exists():
            matches = sorted(glob.glob(text))
            if not matches:
                raise BadInputError(f"no file matches {text!r}")
            files.extend(Path(m) for m in matches if Path(m).is_file())
            continue
        path = Path(text)
        if not path.exists():
            raise BadInputError("no such file", path=path)
        if path.is_dir():
            raise BadInputError("is a folder; give the log files in it (e.g. 'log/*.csv')", path=path)
        files.append(path)
    if not files:
        raise BadInputError("no log file given")
    return files


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
    reported = 0
    try:
        if kind == "gzip":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        elif kind == "bzip2":
            stream = bz2.BZ2File(raw, mode="rb")
        elif kind == "xz":
            stream = lzma.LZMAFile(raw, mode="rb")
        else:
            stream = raw
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")
        try:
            for line in text:
                number += 1
                if line.endswith("\n"):
                    line = line[:-2] if line.endswith("\r\n") else line[:-1]
                yield number, line
                if progress is not None and number % _PROGRESS_EVERY_LINES == 0:
                    position = raw.tell()
                    progress.advance(position - reported)
                    reported = position
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as err:
            what = f"{kind} stream" if kind else "file"
            detail = str(err) or type(err).__name__
            raise BadInputError(
                f"the {what} is damaged or cut short after line {number} ({detail})",
                path=path,
                line=number + 1,
            ) from None
        if progress is not None:
            progress.advance(os.fstat(raw.fileno()).st_size - reported)
    finally:
        raw.close()
