"""DuckDB for the large-file paths: multi-threaded NDJSON and CSV scans, out-of-core summaries.

The readers try DuckDB first and fall back to their pandas/pyarrow code when DuckDB is missing
or rejects a file (a bad line, an unusual layout): the fallback names the bad line exactly.
"""

from __future__ import annotations

import contextlib
import functools
import resource
import shutil
import tempfile
from pathlib import Path


@functools.cache
def _duckdb():
    """The duckdb module, imported on first use (None when it is not installed).

    A dependency (pyproject.toml); the readers still work without it, only slower. Imported
    lazily so that readers which do not use it do not pay for the import.
    """
    try:
        import duckdb
    except ImportError:  # pragma: no cover - exercised only where duckdb is not installed
        return None
    return duckdb


def available() -> bool:
    """Whether DuckDB can be imported."""
    return _duckdb() is not None


def errors() -> tuple[type[BaseException], ...]:
    """What DuckDB raises on a file it cannot read as asked (each means: use the fallback)."""
    duckdb = _duckdb()
    return (duckdb.Error,) if duckdb is not None else ()


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def compression(path: Path) -> str:
    """DuckDB's ``compression`` option for a result file (perfkit reads ``.gz`` as gzip)."""
    return "gzip" if Path(path).suffix == ".gz" else "none"


def _address_space_headroom() -> int | None:
    """Bytes the process may still map under its RLIMIT_AS (``ulimit -v``), when one is set."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError):  # pragma: no cover
        return None
    if soft in (resource.RLIM_INFINITY, -1):
        return None
    used = 0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) << 10
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    return max(int(soft) - used, 0)


def out_of_memory(err: BaseException) -> bool:
    """Whether a DuckDB error is its out-of-memory error (no use falling back to pandas then)."""
    return "OutOfMemory" in type(err).__name__


@contextlib.contextmanager
def connect(*, spill: bool = False, memory_limit: str | None = None):
    """An in-memory DuckDB connection (None when DuckDB is not installed), closed on exit.

    Parameters
    ----------
    spill:
        Give DuckDB a private temporary directory to spill to (removed on exit), for the
        out-of-core summaries.
    memory_limit:
        DuckDB's ``memory_limit`` (e.g. ``"1GB"``). By default DuckDB's own (80 % of RAM), or
        half of what the process' address-space limit (``ulimit -v``) leaves, when one is set:
        DuckDB does not see that limit itself.
    """
    duckdb = _duckdb()
    if duckdb is None:
        yield None
        return
    con = duckdb.connect(":memory:")
    spill_dir = None
    try:
        con.execute("SET enable_progress_bar = false")
        limit = memory_limit
        if limit is None:
            headroom = _address_space_headroom()
            if headroom is not None:
                limit = f"{max(headroom // 2, 32 << 20) >> 20}MB"
        if limit is not None:
            con.execute(f"SET memory_limit = {literal(limit)}")
        if spill:
            spill_dir = tempfile.mkdtemp(prefix="perfkit-duckdb-")
            con.execute(f"SET temp_directory = {literal(spill_dir)}")
            con.execute("SET preserve_insertion_order = false")  # aggregates only: less memory
        else:
            con.execute("SET temp_directory = ''")  # nothing left behind in the working directory
        yield con
    finally:
        con.close()
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)


def arrow(relation):
    """A DuckDB relation's rows as one pyarrow Table (across DuckDB versions)."""
    for name in ("to_arrow_table", "fetch_arrow_table"):
        method = getattr(relation, name, None)
        if method is not None:
            return method()
    result = relation.arrow()  # pragma: no cover - older DuckDB
    return result.read_all() if hasattr(result, "read_all") else result


def summary_rows(con, samples_sql: str) -> tuple[list[dict], dict]:
    """Per-endpoint and ALL summary rows of a query of samples, computed inside DuckDB.

    ``samples_sql`` yields ``endpoint`` (text, not NULL), ``latency_ms`` (NULL when unknown),
    ``failed`` (NULL when the outcome is unknown), ``start_ns`` and ``end_ns`` (epoch ns).
    Counts are exact; percentiles are exact too (``quantile_cont``: linear interpolation
    between order statistics, numpy's default, over every sample of the group), so DuckDB
    keeps the latencies (8 bytes each), not the rows.

    Returns
    -------
    (rows, totals)
        ``rows`` for ``summary_frame`` (without ``rps``); ``totals`` holds ``start_ns``,
        ``end_ns``, ``requests``, ``unstamped`` (rows without a time) and ``untimed`` (rows without
        a finite latency: the caller falls back to its reader, which names the line) of the run.
    """
    query = f"""
        SELECT grouping(endpoint) AS is_all, endpoint, count(*) AS requests,
               sum(failed::INTEGER) AS failures, count(failed) AS known,
               avg(latency_ms) AS mean_ms, max(latency_ms) AS max_ms,
               quantile_cont(latency_ms, [0.5, 0.9, 0.95, 0.99]) AS q,
               min(start_ns) AS start_ns, max(end_ns) AS end_ns,
               count(*) FILTER (WHERE start_ns IS NULL OR end_ns IS NULL) AS unstamped,
               count(*) FILTER (WHERE latency_ms IS NULL OR NOT isfinite(latency_ms)) AS untimed
        FROM ({samples_sql})
        GROUP BY GROUPING SETS ((endpoint), ())
        ORDER BY is_all, endpoint
    """
    rows, totals = [], {}
    for is_all, endpoint, requests, failures, known, mean, top, q, start, end, unstamped, untimed in \
            con.execute(query).fetchall():
        quantiles = list(q) if q is not None else [None] * 4
        row = {
            "endpoint": "ALL" if is_all else endpoint,
            "requests": requests,
            "failures": float(failures or 0) if known == requests else float("nan"),
            "mean_ms": mean, "max_ms": top,
            "p50_ms": quantiles[0], "p90_ms": quantiles[1], "p95_ms": quantiles[2], "p99_ms": quantiles[3],
        }
        rows.append(row)
        if is_all:
            totals = {"start_ns": start, "end_ns": end, "requests": requests, "unstamped": unstamped,
                      "untimed": untimed}
    return rows, totals
