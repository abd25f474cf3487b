"""Which tool wrote a file: the formats the reader modules declare, detection by asking their
sniffers, ``read``.

``read(path, format=None)`` picks the reader from the file's first bytes, or from ``format``.
Each reader module declares its formats (``FORMATS``, see ``perfkit.loadtest_formats``):
adding a format is adding its module.
"""

from __future__ import annotations

import os
from pathlib import Path

from perfkit.errors import BadInputError
from perfkit.fileio import input_errors, probe, require_regular
from perfkit.loadtest_formats import Format, Head, declarations
from perfkit.loadtests.run import LoadTestRun, check_lines, drop_samples, head_bytes

# format name -> its declaration (name, tool, gives, description, read, sniff, options, fixtures)
FORMATS: dict[str, Format] = {f.name: f for f in declarations()}

# (priority, format, sniffer name), lowest priority first: the order detection asks them in
SNIFFERS = tuple(sorted((priority, f.name, sniffer) for f in FORMATS.values() for priority, sniffer in f.sniff))


def supported() -> str:
    """The supported format names, comma-separated (for messages and --help)."""
    return ", ".join(FORMATS)


def result_file(path) -> Path:
    """``path``, or the result file inside it when it is a folder a format locates its file in
    (a Gatling report folder: its ``js/stats.json``)."""
    path = require_regular(path)  # missing, unreadable, a FIFO or a device: refused before is_dir
    if path.is_dir():
        for declared in FORMATS.values():
            if declared.locate:
                found = Path(declared.function("locate")(path))
                if found != path:
                    return found
    return path


def detect(path) -> str:
    """The format name of a result file, from its content (BadInputError when unknown).

    Every declared sniffer is asked in priority order; the first that says yes names the format.
    """
    path = result_file(path)
    head = Head(path, head_bytes(path))
    if not head.text:  # (a binary Gatling log opens with NUL bytes: not whitespace)
        raise BadInputError("empty file: no load-test results in it", path=path)
    for _priority, name, sniffer in SNIFFERS:
        if FORMATS[name].function(sniffer)(head):
            return name
    raise BadInputError(f"unknown load-test format; supported formats: {supported()}", path=path)


def read(path, format: str | None = None, *, summary_only: bool = False, **options) -> LoadTestRun:
    """Read one load-test result file into a LoadTestRun.

    Parameters
    ----------
    path:
        The result file (a ``.gz`` is read through for k6 JSON/CSV), or a Gatling report folder.
    format:
        One of ``FORMATS`` (see ``supported()``); detected from the content when None.
    summary_only:
        Only the summary, computed without loading the samples: k6 NDJSON and JMeter CSV are
        streamed through DuckDB (exact counts and percentiles, files larger than memory);
        other formats are read, then their samples dropped. ``run.samples`` is empty.
        Not with ``skip_bad_lines``.
    **options:
        Passed to the reader, as its format declares them (``FORMATS[name].options``):
        ``skip_bad_lines=True`` (NDJSON, CSV, JTL, pgbench logs), ``columns=[...]`` (a
        header-less JTL with custom columns), ``endpoint=`` (ab -g, hey, vegeta),
        ``script_names={0: "select"}`` (pgbench log), ``percentiles=(50, 75, 95, 99)`` (what a
        Gatling report's percentiles1..4 are: gatling.conf's charting.indicators), ``start=``
        (hey CSV).

    Returns
    -------
    LoadTestRun
        ``.samples``, ``.summary``, ``.tool``, ``.source``, ``.percentiles_from``, ``.notes``.
    """
    path = result_file(path)  # a Gatling report folder: its js/stats.json
    check_lines(path)  # a .gz bomb of one endless line: refused before pandas/pyarrow/DuckDB inflate it
    if format is None:
        format = detect(path)
    if format not in FORMATS:
        raise BadInputError(f"unknown format {format!r}; supported formats: {supported()}")
    declared = FORMATS[format]
    reader = declared.function("read")
    if summary_only:
        if options.get("skip_bad_lines"):
            raise BadInputError("summary_only does not take skip_bad_lines", path=path)
        options.pop("skip_bad_lines", None)
        if declared.summarize:
            reader = declared.function("summarize")
        else:
            return drop_samples(read(path, format, **options))
    try:
        return reader(path, **options)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise BadInputError(f"format {format} does not take that option ({err})", path=path) from None
        raise


def latest(directory, pattern: str = "*") -> Path:
    """The newest load-test result in ``directory``: by modification time, among the files whose
    content is a known format (hidden files ignored; perfkit's own ``--html`` or ``--json``
    output beside them is never taken)."""
    directory = Path(directory)
    if probe(directory) != "dir":  # (probe: a folder the user may not enter is one line)
        raise BadInputError("not a directory", path=directory)
    with input_errors(directory, "is a folder"):  # an unreadable folder cannot be listed
        os.listdir(directory)  # (glob would say nothing and find no files)
        files = [p for p in directory.glob(pattern) if not p.name.startswith(".") and probe(p) == "file"]
        if not files:
            raise BadInputError("no result files in this directory", path=directory)
        for path in sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True):
            try:
                detect(path)
            except BadInputError:
                continue  # not a load-test result (a report, notes, perfkit's own output)
            return path
        raise BadInputError(f"no load-test result among its {len(files)} file(s); supported formats: "
                            f"{supported()}", path=directory)
