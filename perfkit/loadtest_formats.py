"""What each load-test reader module says it reads: its ``FORMATS`` declarations, collected
without importing the readers (no pandas), and ``Head``, what a format's sniffer looks at.

It sits beside ``perfkit/loadtests/``, not in it: importing that package imports pandas.

A reader module (``perfkit/loadtests/k6.py``...) opens with a tuple of literal declarations::

    FORMATS = (
        Format("k6-csv", tool="k6", gives="samples", description="k6 --out csv",
               read="read_csv", sniff=((100, "sniff_csv"),), options=("skip_bad_lines",),
               fixtures=("k6_results.csv",)),
    )

Functions are named, not referenced, so that ``declarations()`` reads the tuple from the
module's source with ``ast.literal_eval`` (``perfkit --help`` lists the names without the
readers' pandas); ``Format.function`` imports the module when a file is really read. ``names()`` is what
``perfkit loadtest --format`` lists.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import json
import pkgutil
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

PACKAGE = "perfkit.loadtests"
GIVES = ("samples", "aggregates", "histogram")  # per-request samples, the tool's aggregates, a histogram
_DECLARATION = re.compile(r"^FORMATS = \(\n", re.M)


@dataclass(frozen=True)
class Format:
    """One file format a reader module reads.

    Attributes
    ----------
    name:
        What ``--format`` and ``read(path, format=)`` take (``k6-json``).
    tool:
        The tool that writes it (``run.tool``).
    gives:
        ``samples`` (one row per request), ``aggregates`` (the tool's own figures, summary
        only) or ``histogram`` (summary from the tool's response-time buckets).
    description:
        One line: which command or option writes it.
    read:
        The name of the module's reader, ``read(path, **options) -> LoadTestRun``.
    sniff:
        ``(priority, function name)`` pairs: ``function(head: Head) -> bool`` says whether the
        file is this format. ``detect`` asks every declared sniffer, lowest priority first, and
        the first yes wins: the priorities carry the ambiguity rules (docs/README-loadtests.md).
    fixtures:
        Files under ``tests/fixtures/loadtests`` in this format; the first seeds the fuzz tests.
    options:
        The keyword options the reader takes (``skip_bad_lines``, ``endpoint``...).
    summarize:
        The name of an out-of-core summarizer for ``summary_only=True``, if any.
    locate:
        The name of ``function(path) -> Path``: the result file inside a folder of this format
        (a Gatling report folder), or ``path`` itself.
    module:
        The declaring module (filled in by ``declarations()``).
    """

    name: str
    tool: str
    gives: str
    description: str
    read: str
    sniff: tuple[tuple[int, str], ...]
    fixtures: tuple[str, ...]
    options: tuple[str, ...] = ()
    summarize: str | None = None
    locate: str | None = None
    module: str = ""

    def function(self, role: str):
        """The declared function for ``role`` (``read``, ``summarize``, ``locate``, or a
        sniffer's name), importing the reader module."""
        name = getattr(self, role) if role in ("read", "summarize", "locate") else role
        return getattr(importlib.import_module(self.module), name)


@dataclass
class Head:
    """The start of a result file, as every sniffer sees it."""

    path: Path
    raw: bytes  # the first 64 KiB as read (gunzipped for .gz)

    @cached_property
    def text(self) -> bytes:
        """``raw`` without a UTF-8 byte order mark and leading whitespace."""
        return self.raw.lstrip(b"\xef\xbb\xbf").lstrip()

    @cached_property
    def first(self) -> bytes:
        """The first line of ``text``, stripped."""
        return self.text.split(b"\n", 1)[0].strip()

    @property
    def is_json(self) -> bool:
        """Whether the text opens like JSON (``{`` or ``[``)."""
        return self.text.startswith((b"{", b"["))

    @cached_property
    def json_line(self):
        """The first line parsed as JSON, or None when it does not parse (cut, or nested too
        deeply for the interpreter: ``"[" * 200000``)."""
        try:
            return json.loads(self.first)
        except (ValueError, RecursionError):
            return None


def _static(source: str, module: str) -> tuple[Format, ...] | None:
    """The ``FORMATS`` tuple of a module's source, or None when it declares none."""
    match = _DECLARATION.search(source)
    if match is None:
        return None
    tail = source[match.start():]
    end = tail.find("\n)\n")  # the tuple closes at the start of a line (else: the whole tail)
    try:
        tree = ast.parse(tail[: end + 2] if end >= 0 else tail)
    except SyntaxError:
        tree = ast.parse(tail)
    value = tree.body[0].value
    if not isinstance(value, ast.Tuple):
        raise ValueError(f"{module}: FORMATS must be a tuple of Format(...) literals")
    declared = []
    for call in value.elts:
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Format"):
            raise ValueError(f"{module}: FORMATS must be a tuple of Format(...) literals")
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        declared.append(Format(*args, **kwargs, module=module))
    return tuple(declared)


@functools.cache
def declarations() -> tuple[Format, ...]:
    """Every declared format, module by module (alphabetically), in declaration order.

    Read from the sources without importing them; a module installed without its source is
    imported instead.
    """
    # the package's folder, without running its __init__ (which imports pandas)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:  # pragma: no cover - an installation without the readers
        return ()
    folders = spec.submodule_search_locations
    found = []
    for info in sorted(pkgutil.iter_modules(folders), key=lambda i: i.name):
        module = f"{PACKAGE}.{info.name}"
        origin = Path(info.module_finder.path) / f"{info.name}.py"
        if origin.is_file():
            declared = _static(origin.read_text(encoding="utf-8"), module)
        else:  # pragma: no cover - a build without sources
            imported = getattr(importlib.import_module(module), "FORMATS", None)
            declared = tuple(replace(f, module=module) for f in imported) if imported else None
        found.extend(declared or ())
    return tuple(found)


def names() -> tuple[str, ...]:
    """The declared format names (for ``--format`` and messages)."""
    return tuple(f.name for f in declarations())


__all__ = ["GIVES", "Format", "Head", "declarations", "names"]
