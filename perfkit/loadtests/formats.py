"""Which tool wrote a file: format detection from content, the reader registry, ``read``.

``read(path, format=None)`` picks the reader from the file's first bytes, or from ``format``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from perfkit.errors import BadInputError
from perfkit.loadtests import ab, artillery, gatling, hey, jmeter, k6, locust, pgbench, vegeta, wrk
from perfkit.loadtests.run import LoadTestRun, drop_samples, head_bytes

# format name -> (reader, what it is, whether it has per-request samples)
FORMATS = {
    "k6-json": (k6.read_json, "k6 --out json (NDJSON Metric/Point lines)", "samples"),
    "k6-csv": (k6.read_csv, "k6 --out csv", "samples"),
    "k6-summary": (k6.read_summary, "k6 --summary-export or handleSummary() JSON", "aggregates"),
    "locust-csv": (locust.read_csv, "Locust --csv PREFIX (_stats, _stats_history, _failures)", "aggregates"),
    "locust-json": (locust.read_json, "Locust --json / --json-file", "histogram"),
    "artillery": (artillery.read_report, "Artillery run --output report.json", "aggregates"),
    "ab": (ab.read_text_report, "ApacheBench text output", "aggregates"),
    "ab-gnuplot": (ab.read_gnuplot, "ApacheBench -g gnuplot TSV", "samples"),
    "ab-percentiles": (ab.read_percentiles, "ApacheBench -e percentile CSV", "aggregates"),
    "wrk": (wrk.read_report, "wrk --latency text output", "aggregates"),
    "jmeter-csv": (jmeter.read_csv, "JMeter CSV JTL", "samples"),
    "jmeter-xml": (jmeter.read_xml, "JMeter XML JTL", "samples"),
    "pgbench-log": (pgbench.read_log, "pgbench -l per-transaction log", "samples"),
    "pgbench-aggregate": (pgbench.read_aggregate, "pgbench -l --aggregate-interval log", "aggregates"),
    "pgbench-report": (pgbench.read_report, "pgbench text report (-P progress, -r scripts)", "aggregates"),
    "gatling-stats": (gatling.read_stats, "Gatling report js/stats.json or js/global_stats.json (or the report folder)",
                      "aggregates"),
    "gatling-log": (gatling.read_log, "Gatling 3.0-3.12 text simulation.log", "samples"),
    "hey-csv": (hey.read_csv, "hey -o csv (one row per answered request)", "samples"),
    "vegeta-json": (vegeta.read_json, "vegeta encode --to json (NDJSON Results)", "samples"),
    "vegeta-csv": (vegeta.read_csv, "vegeta encode --to csv", "samples"),
}


# formats summarized out of core with ``summary_only=True`` (the others are read, then the
# samples dropped: their files are aggregates or small)
SUMMARIZERS = {
    "k6-json": k6.summarize_json,
    "jmeter-csv": jmeter.summarize_csv,
}


def supported() -> str:
    """The supported format names, comma-separated (for messages and --help)."""
    return ", ".join(FORMATS)





_PGBENCH_LOG = re.compile(rb"^\d+ \d+ (?:\d+|skipped|failed|serialization|deadlock) \d+ \d{9,} \d+")
_PGBENCH_AGG = re.compile(rb"^\d{9,}(?: \d+(?:\.\d+)?){5}")
_JTL_NO_HEADER = re.compile(rb"^\d{12,14}[,;\t|]\d+[,;\t|]")


def detect(path) -> str:
    """The format name of a result file, from its content (BadInputError when unknown)."""
    path = gatling.report_file(path)
    head = head_bytes(path)
    if gatling.BINARY_LOG.match(head):
        return "gatling-log"  # its reader says to read the report's stats.json instead
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise BadInputError("empty file: no load-test results in it", path=path)
    first = text.split(b"\n", 1)[0].strip()
    if text.startswith(b"{") or text.startswith(b"["):
        try:
            line = json.loads(first)
        except (ValueError, RecursionError):  # RecursionError: deeply nested ("[" * 200000)
            line = None
        if isinstance(line, dict) and line.get("type") in ("Metric", "Point") and "metric" in line:
            return "k6-json"
        if (isinstance(line, dict) and {"code", "timestamp", "latency"} <= line.keys()) or (
                line is None and b'"latency":' in first and b'"bytes_out":' in first):
            return "vegeta-json"
        if text.startswith(b"["):
            return "locust-json"
        if b'"numberOfRequests"' in head and b'"meanNumberOfRequestsPerSecond"' in head:
            return "gatling-stats"
        if b'"aggregate"' in head and (b'"counters"' in head or b'"intermediate"' in head):
            return "artillery"
        if b'"metrics"' in head:
            return "k6-summary"
        if b'"type":"Point"' in head or b'"type": "Point"' in head:
            return "k6-json"
    if gatling.RECORDS.match(first):
        return "gatling-log"
    if first.startswith(b"<?xml") or first.startswith(b"<testResults"):
        if b"<testResults" in head:
            return "jmeter-xml"
    if first.startswith(k6.CSV_HEADER_START.encode()):
        return "k6-csv"
    if first.startswith(hey.OLD_CSV_HEADER.encode()):
        return "hey-csv"
    if vegeta.CSV_LINE.match(first):
        return "vegeta-csv"
    if first.startswith(locust.STATS_HEADER.encode()) or first.startswith(locust.HISTORY_HEADER.encode()) \
            or first.startswith(locust.FAILURES_HEADER.encode()) \
            or first.startswith(b"Count,Message,Traceback,Nodes"):
        return "locust-csv"
    if first.startswith(ab.GNUPLOT_HEADER.encode()):
        return "ab-gnuplot"
    if first.startswith(ab.PERCENT_HEADER.encode()):
        return "ab-percentiles"
    if b"This is ApacheBench" in head or b"Complete requests:" in head:
        return "ab"
    if re.search(rb"Running .+ test @ ", head) and b"requests in" in head:
        return "wrk"
    if (b"timeStamp" in first and b"elapsed" in first) or _JTL_NO_HEADER.match(first):
        return "jmeter-csv"
    if _PGBENCH_LOG.match(first):
        return "pgbench-log"
    if _PGBENCH_AGG.match(first):
        return "pgbench-aggregate"
    if re.search(rb"^(?:progress: [\d.]+ s, |pgbench \(|transaction type: )", head, re.M):
        return "pgbench-report"
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
        Passed to the reader: ``skip_bad_lines=True`` (NDJSON, CSV, JTL, pgbench logs),
        ``columns=[...]`` (a header-less JTL with custom columns), ``endpoint=`` (ab -g),
        ``script_names={0: "select"}`` (pgbench log), ``percentiles=(50, 75, 95, 99)`` (what a
        Gatling report's percentiles1..4 are: gatling.conf's charting.indicators), ``endpoint=``
        and ``start=`` (hey CSV).

    Returns
    -------
    LoadTestRun
        ``.samples``, ``.summary``, ``.tool``, ``.source``, ``.percentiles_from``, ``.notes``.
    """
    path = gatling.report_file(path)  # a Gatling report folder: its js/stats.json
    if format is None:
        format = detect(path)
    if format not in FORMATS:
        raise BadInputError(f"unknown format {format!r}; supported formats: {supported()}")
    reader = FORMATS[format][0]
    if summary_only:
        if options.get("skip_bad_lines"):
            raise BadInputError("summary_only does not take skip_bad_lines", path=path)
        options.pop("skip_bad_lines", None)
        if format in SUMMARIZERS:
            reader = SUMMARIZERS[format]
        else:
            return drop_samples(read(path, format, **options))
    try:
        return reader(path, **options)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise BadInputError(f"format {format} does not take that option ({err})", path=path) from None
        raise


def latest(directory, pattern: str = "*") -> Path:
    """The newest result file in ``directory`` (by modification time; hidden files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError("not a directory", path=directory)
    files = [p for p in directory.glob(pattern) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise BadInputError("no result files in this directory", path=directory)
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
