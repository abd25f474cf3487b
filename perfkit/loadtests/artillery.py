"""Artillery ``run --output report.json``: the aggregate and intermediate periods.

Aggregates only (counters, rates and summaries per period); no per-request samples.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError
from perfkit.loadtest_formats import Format, Head
from perfkit.loadtests.frames import ALL, summary_frame
from perfkit.loadtests.run import LoadTestRun, aggregate_run, guard, json_object, read_text

FORMATS = (
    Format("artillery", tool="artillery", gives="aggregates",
           description="Artillery run --output report.json (2.x, and 1.x)",
           read="read_report", sniff=((50, "sniff_report"),),
           fixtures=("artillery_report.json", "artillery_1x_report.json")),
)

TOOL = "artillery"
_ENDPOINT_PREFIX = "plugins.metrics-by-endpoint."
_ENDPOINT_TIME = "plugins.metrics-by-endpoint.response_time."
_CODE = re.compile(r"\.codes\.(\d{3})$")
NOTE_ERRORS = (
    "Artillery counts only transport errors (errors.*: timeouts, resets) as errors; responses "
    "with status >= 400 appear only in http.codes. perfkit counts both as failures"
)
NOTE_TTFB = "Artillery's http.response_time is time to first byte, not to the last byte"
NOTE_SKETCH = "Artillery's percentiles come from a sketch of the latencies (approximate, about 1 %)"


def _period_ts(value) -> pd.Timestamp:
    # a number (epoch ms) in "aggregate", a string of it in "intermediate"
    return pd.to_datetime(float(value), unit="ms", utc=True)


def _failures(counters: dict, prefix: str = "") -> tuple[float, float]:
    """(transport errors, responses with status >= 400) in one counters object."""
    errors = sum(float(v) for k, v in counters.items() if k.startswith(prefix + "errors."))
    bad = 0.0
    for key, value in counters.items():
        if prefix and not key.startswith(prefix):
            continue
        if not prefix and not key.startswith("http.codes."):
            continue
        match = _CODE.search(key)
        if match and int(match.group(1)) >= 400:
            bad += float(value)
    return errors, bad


def _row(endpoint: str, summary: dict, requests: float, failures: float, seconds: float) -> dict:
    def get(key):
        value = summary.get(key)
        return float(value) if isinstance(value, int | float) else np.nan

    return {"endpoint": endpoint, "requests": requests, "failures": failures,
            "rps": requests / seconds if seconds and seconds > 0 else np.nan,
            "mean_ms": get("mean"), "p50_ms": get("p50") if "p50" in summary else get("median"),
            "p90_ms": get("p90"), "p95_ms": get("p95"), "p99_ms": get("p99"), "max_ms": get("max")}


def sniff_report(head: Head) -> bool:
    """A JSON report with ``"aggregate"`` and its counters or intermediate periods (2.x), or its
    ``requestsCompleted`` (1.x)."""
    return head.is_json and b'"aggregate"' in head.raw and (
        b'"counters"' in head.raw or b'"intermediate"' in head.raw or b'"requestsCompleted"' in head.raw)


def read_report(path) -> LoadTestRun:
    """Read an Artillery JSON report (``artillery run --output report.json``).

    Returns
    -------
    LoadTestRun
        ALL from ``http.response_time`` and ``http.requests``; endpoints from the
        metrics-by-endpoint plugin when it was enabled; ``history`` from the intermediate
        periods. Failures are transport errors plus responses with status >= 400;
        Artillery's own error count is ``tool_figures["errors"]``.
    """
    path = Path(path)
    text = read_text(path)
    with guard(path, "Artillery report"):
        doc = json_object(text, path, "an Artillery report", "aggregate")
        agg = doc["aggregate"]
        counters = agg.get("counters") or {}
        summaries = agg.get("summaries") or {}
        first, last = agg.get("firstMetricAt"), agg.get("lastMetricAt")
        seconds = (float(last) - float(first)) / 1000 if first is not None and last is not None else np.nan
        if "http.requests" not in counters and "requestsCompleted" in agg:
            return _read_1x(doc, path)
        if "http.requests" not in counters:
            raise BadInputError("Artillery report without http.requests (no HTTP scenario ran?)", path=path)
        requests = float(counters["http.requests"])
        errors, bad = _failures(counters)
        rows = [_row(ALL, summaries.get("http.response_time") or {}, requests, errors + bad, seconds)]
        for key, summary in summaries.items():
            if not key.startswith(_ENDPOINT_TIME) or not isinstance(summary, dict):
                continue
            endpoint = key[len(_ENDPOINT_TIME):]
            prefix = f"{_ENDPOINT_PREFIX}{endpoint}."
            ep_errors, ep_bad = _failures(counters, prefix)
            codes = sum(float(v) for k, v in counters.items() if k.startswith(prefix + "codes."))
            rows.append(_row(endpoint, summary, codes + ep_errors, ep_errors + ep_bad, seconds))
        history = _history(doc.get("intermediate") or [])
        figures = {
            "requests": requests,
            "responses": float(counters.get("http.responses", np.nan)),
            "errors": errors,
            "codes": {k.split(".")[-1]: v for k, v in counters.items() if k.startswith("http.codes.")},
            "vusers_failed": counters.get("vusers.failed"),
            "period": agg.get("period"),
        }
        return aggregate_run(
            summary_frame(rows), tool=TOOL, format="artillery", source=path,
            notes=[NOTE_ERRORS, NOTE_TTFB, NOTE_SKETCH], history=history, tool_figures=figures,
            closed_loop=False, duration_s=seconds if np.isfinite(seconds) else None,
        )


NOTE_1X = (
    "Artillery 1.x report: ALL only (1.x keeps no per-endpoint figures); requests = "
    "requestsCompleted plus transport errors; latencies rounded to 0.1 ms by Artillery, no mean"
)


def _count(value, what: str, path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadInputError(f"Artillery 1.x report: {what} {str(value)[:40]!r} is not a count", path=path)
    return float(value)


def _counts(table, what: str, path) -> dict:
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise BadInputError(f"Artillery 1.x report: {what} is not an object", path=path)
    return {str(k): _count(v, f"{what}.{k}", path) for k, v in table.items()}


def _read_1x(doc: dict, path: Path) -> LoadTestRun:
    """An Artillery 1.x report: ``aggregate`` with ``requestsCompleted``, ``latency`` {min, max,
    median, p95, p99} in ms, ``rps`` {count, mean}, ``codes``, ``errors`` (transport errors, which
    complete no request), ``scenariosCreated``/``Completed``; ``intermediate`` periods alike."""
    agg = doc["aggregate"]
    completed = _count(agg["requestsCompleted"], "requestsCompleted", path)
    codes = _counts(agg.get("codes"), "codes", path)
    errors = _counts(agg.get("errors"), "errors", path)
    latency = agg.get("latency") or {}
    if not isinstance(latency, dict):
        raise BadInputError("Artillery 1.x report: latency is not an object", path=path)
    transport = sum(errors.values())
    bad = sum(v for k, v in codes.items() if k.isdigit() and int(k) >= 400)
    rps = agg.get("rps") if isinstance(agg.get("rps"), dict) else {}
    row = _row(ALL, latency, completed + transport, transport + bad, np.nan)
    if isinstance(rps.get("mean"), int | float):
        row["rps"] = float(rps["mean"])
    periods = [p for p in doc.get("intermediate") or [] if isinstance(p, dict)]
    history = pd.DataFrame([
        {"ts": pd.to_datetime(p.get("timestamp"), utc=True),
         "requests": _count(p.get("requestsCompleted", 0), "intermediate requestsCompleted", path),
         "failures": sum(_counts(p.get("errors"), "intermediate errors", path).values())
         + sum(v for k, v in _counts(p.get("codes"), "intermediate codes", path).items()
               if k.isdigit() and int(k) >= 400),
         "rps": float((p.get("rps") or {}).get("mean", np.nan) or np.nan),
         "p50_ms": (p.get("latency") or {}).get("median", np.nan),
         "p95_ms": (p.get("latency") or {}).get("p95", np.nan),
         "p99_ms": (p.get("latency") or {}).get("p99", np.nan)}
        for p in periods])
    for column in ("p50_ms", "p95_ms", "p99_ms"):
        if column in history:
            history[column] = pd.to_numeric(history[column], errors="coerce")
    if not history.empty:
        history["ts"] = pd.DatetimeIndex(history["ts"]).as_unit("ns")
    figures = {"requests": completed + transport, "responses": completed, "errors": transport,
               "codes": codes, "error_kinds": errors, "scenarios_created": agg.get("scenariosCreated"),
               "scenarios_completed": agg.get("scenariosCompleted"), "version": "1.x"}
    return aggregate_run(
        summary_frame([row]), tool=TOOL, format="artillery", source=path,
        notes=[NOTE_1X, NOTE_ERRORS], history=history, tool_figures=figures, closed_loop=False,
    )


def _history(periods: list) -> pd.DataFrame:
    rows = []
    for period in periods:
        if not isinstance(period, dict) or period.get("period") is None:
            continue
        counters = period.get("counters") or {}
        summary = (period.get("summaries") or {}).get("http.response_time") or {}
        errors, bad = _failures(counters)
        rate = (period.get("rates") or {}).get("http.request_rate", period.get("http.request_rate"))
        rows.append({"ts": _period_ts(period["period"]),
                     "requests": float(counters.get("http.requests", 0)),
                     "failures": errors + bad, "rps": float(rate) if rate is not None else np.nan,
                     "mean_ms": summary.get("mean", np.nan), "p50_ms": summary.get("p50", np.nan),
                     "p95_ms": summary.get("p95", np.nan), "p99_ms": summary.get("p99", np.nan)})
    history = pd.DataFrame(rows)
    if not history.empty:
        history["ts"] = pd.DatetimeIndex(history["ts"]).as_unit("ns")
    return history
