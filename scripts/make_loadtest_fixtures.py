"""Regenerate tests/fixtures/loadtests/ by running the real load-test tools against 127.0.0.1.

Usage: python scripts/make_loadtest_fixtures.py [--only ab,wrk,locust,artillery,jmeter,pgbench,k6,gatling,hey,vegeta]

Tools: ab and wrk (apt-get install apache2-utils wrk), Locust (LOCUST=/tmp/locust-venv/bin/locust),
Artillery (ARTILLERY=/tmp/artillery/node_modules/.bin/artillery), JMeter 2.13 (apt-get install
jmeter jmeter-http), pgbench (PG_BINDIR=/usr/lib/postgresql/15/bin; a throwaway cluster is
started in a temporary directory as the postgres user and stopped after). k6 cannot be installed
here: its four output formats are written from real requests timed by this script, following
k6's documented formats (see tests/fixtures/README.md); Gatling neither (no JVM tool from Maven
Central here): its text simulation.log and report stats.json are written the same way. hey is
the real tool (apt-get install hey); vegeta is not packaged here: its JSON and CSV Result
encodings are written from real requests sent at a constant rate by this script. Request counts
and durations are bounded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "loadtests"
TARGET = ROOT / "scripts" / "loadtest_target.py"
LOCUST = os.environ.get("LOCUST", "/tmp/locust-venv/bin/locust")
ARTILLERY = os.environ.get("ARTILLERY", "/tmp/artillery/node_modules/.bin/artillery")
JMETER = os.environ.get("JMETER", "jmeter")
PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))


def log(message: str) -> None:
    print(f"fixtures: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Target:
    """The tiny HTTP target of scripts/loadtest_target.py, on 127.0.0.1."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(TARGET), str(self.port)])
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    log(" ".join(str(c) for c in cmd))
    kwargs.setdefault("timeout", 120)
    return subprocess.run([str(c) for c in cmd], **kwargs)


# --- ApacheBench -------------------------------------------------------------------------------
def make_ab(target: Target) -> None:
    # /api/search answers 503 one time in 20 (a shorter body: ab counts it as a Length failure too)
    text = run(
        ["ab", "-n", 300, "-c", 4, "-g", OUT / "ab_gnuplot.tsv", "-e", OUT / "ab_percentiles.csv",
         f"{target.url}/api/search"],
        capture_output=True, text=True, check=True,
    ).stdout
    (OUT / "ab_search.txt").write_text(text)
    text = run(["ab", "-n", 200, "-c", 2, f"{target.url}/api/reports"],
               capture_output=True, text=True, check=True).stdout
    (OUT / "ab_reports.txt").write_text(text)


# --- wrk ---------------------------------------------------------------------------------------
def make_wrk(target: Target) -> None:
    # 1 s timeout: the 1.5 s requests time out and wrk leaves them out of its latency figures
    text = run(["wrk", "-t", 2, "-c", 8, "-d", "3s", "--timeout", "1s", "--latency",
                f"{target.url}/api/mixed"], capture_output=True, text=True, check=True).stdout
    (OUT / "wrk_timeouts.txt").write_text(text)
    # 3 s timeout: the 1.5 s requests complete, so the max reads in seconds
    text = run(["wrk", "-t", 2, "-c", 4, "-d", "3s", "--timeout", "3s", "--latency",
                f"{target.url}/api/mixed"], capture_output=True, text=True, check=True).stdout
    (OUT / "wrk_seconds.txt").write_text(text)
    # a fast endpoint: latencies in microseconds; plus 4xx answers (wrk's "Non-2xx or 3xx")
    text = run(["wrk", "-t", 1, "-c", 2, "-d", "2s", "--latency", f"{target.url}/api/missing"],
               capture_output=True, text=True, check=True).stdout
    (OUT / "wrk_missing.txt").write_text(text)


# --- Locust ------------------------------------------------------------------------------------
LOCUSTFILE = """
from locust import HttpUser, between, task


class ApiUser(HttpUser):
    wait_time = between(0.01, 0.05)

    @task(4)
    def users(self):
        self.client.get("/api/users")

    @task(2)
    def reports(self):
        self.client.get("/api/reports")

    @task(2)
    def orders(self):
        self.client.post("/api/orders", json={"item": 1})

    @task(1)
    def search(self):
        self.client.get("/api/search?q=x", name="/api/search")

    @task(1)
    def missing(self):
        self.client.get("/api/missing")
"""


def make_locust(target: Target, tmp: Path) -> None:
    locustfile = tmp / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = OUT / "locust"
    run([LOCUST, "-f", locustfile, "--headless", "-u", 6, "-r", 6, "-t", "5s", "--host", target.url,
         "--csv", prefix, "--json-file", OUT / "locust", "--only-summary", "--skip-log"],
        capture_output=True, text=True)


# --- Artillery ---------------------------------------------------------------------------------
ARTILLERY_YML = """
config:
  target: "{url}"
  phases:
    - duration: 4
      arrivalRate: 8
  http:
    timeout: 1
  plugins:
    metrics-by-endpoint: {{}}
scenarios:
  - flow:
      - get:
          url: "/api/users"
      - get:
          url: "/api/reports"
      - post:
          url: "/api/orders"
          json:
            item: 1
      - get:
          url: "/api/search"
      - loop:
          - get:
              url: "/api/mixed"
        count: 3
"""


def make_artillery(target: Target, tmp: Path) -> None:
    config = tmp / "artillery.yml"
    config.write_text(ARTILLERY_YML.format(url=target.url))
    run([ARTILLERY, "run", "--output", OUT / "artillery_report.json", config],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})


# --- JMeter (built from its documented JTL formats) -------------------------------------------
# Debian's jmeter 2.13 package installs but cannot load any test plan here (its newer xstream
# raises ForbiddenClassException: org.apache.jmeter.save.ScriptWrapper), so the JTL files are
# written from real requests timed by this script, in JMeter 5.x's documented default columns.
JTL_COLUMNS = ["timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName",
               "dataType", "success", "failureMessage", "bytes", "sentBytes", "grpThreads",
               "allThreads", "URL", "Latency", "IdleTime", "Connect"]
JMETER_PLAN = [("users", "GET", "/api/users"), ("search", "GET", "/api/search"),
               ("reports", "GET", "/api/reports"), ("orders", "POST", "/api/orders")]


def _jtl_rows(target: Target) -> list[dict]:
    """JTL rows: one per request, plus a Transaction Controller row over reports + orders."""
    plan = [(method, path) for _, method, path in JMETER_PLAN]
    labels = {path: label for label, _, path in JMETER_PLAN}
    samples = timed_requests(target, plan, iterations=10, vus=3)
    rows = []
    by_iteration: dict[tuple[int, int], list[dict]] = {}
    for s in samples:
        ok = 200 <= s["status"] < 400
        message = "" if ok else "search unavailable\nretry later"  # a two-line assertion message
        rows.append({"timeStamp": int(s["start"] * 1000), "elapsed": round(s["duration"]),
                     "label": labels[s["path"]], "responseCode": str(s["status"]),
                     "responseMessage": _REASONS.get(s["status"], ""),
                     "threadName": f"api users 1-{s['vu']}", "dataType": "text",
                     "success": "true" if ok else "false",
                     "failureMessage": message if s["status"] == 503 else "",
                     "bytes": 160, "sentBytes": 120, "grpThreads": 3, "allThreads": 3,
                     "URL": target.url + s["path"], "Latency": round(s["duration"] * 0.9),
                     "IdleTime": 0, "Connect": 0})
        if s["path"] in ("/api/reports", "/api/orders"):
            by_iteration.setdefault((s["vu"], s["iter"]), []).append(rows[-1])
    for group in by_iteration.values():
        failing = sum(1 for r in group if r["success"] == "false")
        rows.append({"timeStamp": min(r["timeStamp"] for r in group),
                     "elapsed": sum(r["elapsed"] for r in group), "label": "checkout",
                     "responseCode": "200" if not failing else "500",
                     "responseMessage": f"Number of samples in transaction : {len(group)}, "
                                        f"number of failing samples : {failing}",
                     "threadName": group[0]["threadName"], "dataType": "",
                     "success": "false" if failing else "true", "failureMessage": "",
                     "bytes": sum(r["bytes"] for r in group), "sentBytes": 240, "grpThreads": 3,
                     "allThreads": 3, "URL": "null", "Latency": sum(r["Latency"] for r in group),
                     "IdleTime": 0, "Connect": 0})
    rows.sort(key=lambda r: r["timeStamp"] + r["elapsed"])  # JMeter writes rows as samples end
    return rows


_REASONS = {200: "OK", 201: "Created", 404: "Not Found", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _csv_line(values: list, delimiter: str) -> str:
    out = []
    for value in values:
        text = str(value)
        if any(ch in text for ch in (delimiter, '"', "\n", "\r")):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return delimiter.join(out)


def make_jmeter(target: Target) -> None:
    rows = _jtl_rows(target)
    header = _csv_line(JTL_COLUMNS, ",")
    body = [_csv_line([r[c] for c in JTL_COLUMNS], ",") for r in rows]
    (OUT / "jmeter_header.jtl").write_text(header + "\n" + "\n".join(body) + "\n")
    (OUT / "jmeter_noheader.jtl").write_text("\n".join(body) + "\n")
    # jmeter.save.saveservice.default_delimiter=; and timestamp_format=yyyy/MM/dd HH:mm:ss.SSS
    # (JMeter writes such timestamps in the local time zone of the load generator: UTC here)
    semi = []
    for r in rows:
        moment = datetime.fromtimestamp(r["timeStamp"] / 1000, tz=UTC)
        values = {**r, "timeStamp": moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"}
        semi.append(_csv_line([values[c] for c in JTL_COLUMNS], ";"))
    (OUT / "jmeter_semicolon.jtl").write_text(
        _csv_line(JTL_COLUMNS, ";") + "\n" + "\n".join(semi) + "\n")
    # XML JTL (output_format=xml): httpSample per request, sample for the transaction
    from xml.sax.saxutils import escape, quoteattr

    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<testResults version="1.2">']
    for r in rows:
        tag = "sample" if r["label"] == "checkout" else "httpSample"
        attrs = {"t": r["elapsed"], "it": 0, "lt": r["Latency"], "ct": 0, "ts": r["timeStamp"],
                 "s": r["success"], "lb": r["label"], "rc": r["responseCode"],
                 "rm": r["responseMessage"], "tn": r["threadName"], "dt": r["dataType"],
                 "by": r["bytes"], "sby": r["sentBytes"], "sc": 1,
                 "ec": 0 if r["success"] == "true" else 1, "ng": 3, "na": 3}
        text = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
        lines.append(f"<{tag} {text}>")
        if r["failureMessage"]:
            lines.append("  <assertionResult>\n    <name>not 503</name>\n    <failure>true</failure>"
                         f"\n    <error>false</error>\n    <failureMessage>{escape(r['failureMessage'])}"
                         "</failureMessage>\n  </assertionResult>")
        if tag == "httpSample":
            lines.append(f"  <java.net.URL>{escape(r['URL'])}</java.net.URL>")
        lines.append(f"</{tag}>")
    lines.append("</testResults>")
    (OUT / "jmeter.xml.jtl").write_text("\n".join(lines) + "\n")


# --- pgbench -----------------------------------------------------------------------------------
RR_UPDATE = """\\set aid random(1, 5)
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
END;
"""


def make_pgbench(tmp: Path) -> None:
    pgdir = tmp / "pg"
    pgdir.mkdir()
    shutil.chown(pgdir, "postgres")
    os.chmod(tmp, 0o755)
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    run([*as_pg, PG_BINDIR / "initdb", "-D", pgdir / "data", "-U", "postgres", "--auth=trust"],
        check=True, capture_output=True)
    opts = f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1"
    run([*as_pg, PG_BINDIR / "pg_ctl", "-D", pgdir / "data", "-o", opts, "-l", pgdir / "log", "-w",
         "start"], check=True, capture_output=True)
    work = pgdir / "work"
    work.mkdir()
    shutil.chown(work, "postgres")
    (work / "rr_update.sql").write_text(RR_UPDATE)
    bench = [*as_pg, PG_BINDIR / "pgbench", "-h", "127.0.0.1", "-p", port, "-U", "postgres"]
    try:
        run([*bench, "-i", "-s", 1, "postgres"], check=True, capture_output=True)
        # per-transaction log with failures (serialization errors) from two weighted scripts,
        # -P progress on stderr and the -r per-script report on stdout, in one file
        res = run([*bench, "-c", 4, "-j", 2, "-T", 3, "--rate", 400, "-P", 1, "-r", "-l",
                   "--log-prefix", work / "tx", "-b", "select-only@2", "-f",
                   work / "rr_update.sql@1",
                   "--failures-detailed", "postgres"], capture_output=True, text=True, cwd=work)
        (OUT / "pgbench_report.txt").write_text(res.stderr + res.stdout)
        _gather_pgbench_logs(work, "tx", OUT / "pgbench_tx.log", limit=None)
        # --rate with --latency-limit: transactions are skipped (latency reads "skipped")
        res = run([*bench, "-c", 2, "-j", 1, "-T", 1, "--rate", 1500, "--latency-limit", 1,
                   "-l", "--log-prefix", work / "skip", "-b", "select-only", "postgres"],
                  capture_output=True, text=True, cwd=work)
        (OUT / "pgbench_skipped_report.txt").write_text(res.stderr + res.stdout)
        _gather_pgbench_logs(work, "skip", OUT / "pgbench_skipped.log", limit=None)
        # aggregated log (PostgreSQL 15: 15 columns)
        run([*bench, "-c", 4, "-j", 2, "-T", 4, "-l", "--aggregate-interval", 1, "--log-prefix",
             work / "agg", "-b", "select-only@5", "-f", work / "rr_update.sql@1", "postgres"],
            capture_output=True, text=True, cwd=work)
        _gather_pgbench_logs(work, "agg", OUT / "pgbench_aggregate.log", limit=None)
    finally:
        run([*as_pg, PG_BINDIR / "pg_ctl", "-D", pgdir / "data", "-m", "fast", "stop"],
            capture_output=True)


def _gather_pgbench_logs(work: Path, prefix: str, out: Path, limit: int | None) -> None:
    # pgbench writes one log per thread (PREFIX.PID and PREFIX.PID.N); a user concatenates them
    parts = sorted(work.glob(f"{prefix}.*"))
    lines: list[str] = []
    for part in parts:
        lines.extend(part.read_text().splitlines(keepends=True))
    out.write_text("".join(lines[:limit] if limit else lines))


# --- k6 (built from its documented formats) ----------------------------------------------------
K6_PLAN = [("GET", "/api/users"), ("GET", "/api/reports"), ("POST", "/api/orders"),
           ("GET", "/api/search"), ("GET", "/api/missing")]


def timed_requests(target: Target, plan, iterations: int, vus: int) -> list[dict]:
    """Time real requests against the target, the way a k6 VU (or JMeter thread) loop would."""
    samples: list[dict] = []
    lock = threading.Lock()

    def vu(number: int) -> None:
        for it in range(iterations):
            begin_iter = time.time()
            for method, path in plan:
                start = time.time()
                t0 = time.perf_counter()
                data = b'{"item": 1}' if method == "POST" else None
                req = urllib.request.Request(target.url + path, data=data, method=method)
                try:
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        resp.read()
                        status = resp.status
                except urllib.error.HTTPError as err:
                    err.read()
                    status = err.code
                duration = (time.perf_counter() - t0) * 1000
                with lock:
                    samples.append({"start": start, "end": start + duration / 1000,
                                    "method": method, "path": path, "status": status,
                                    "duration": duration, "vu": number, "iter": it,
                                    "iter_start": begin_iter})
    threads = [threading.Thread(target=vu, args=(n + 1,)) for n in range(vus)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.sort(key=lambda s: s["end"])
    return samples


def _k6_percentile(values: list[float], pct: float) -> float:
    # k6's trend sink: sorted values, linear interpolation at pct * (n - 1)
    ordered = sorted(values)
    if not ordered:
        return 0.0
    i = pct * (len(ordered) - 1)
    lo, hi = ordered[math.floor(i)], ordered[math.ceil(i)]
    return lo + (hi - lo) * (i - math.floor(i))


def _iso(ts: float) -> str:
    # k6 writes the local time with its offset, nanoseconds; use +01:00 to exercise time zones
    from datetime import timedelta, timezone

    moment = datetime.fromtimestamp(ts, tz=timezone(timedelta(hours=1)))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123+01:00"


def make_k6(target: Target) -> None:
    samples = timed_requests(target, K6_PLAN, iterations=6, vus=3)
    base_url = target.url
    metrics = [
        ("http_reqs", "counter", "default"), ("http_req_duration", "trend", "time"),
        ("http_req_blocked", "trend", "time"), ("http_req_connecting", "trend", "time"),
        ("http_req_tls_handshaking", "trend", "time"), ("http_req_sending", "trend", "time"),
        ("http_req_waiting", "trend", "time"), ("http_req_receiving", "trend", "time"),
        ("http_req_failed", "rate", "default"),
    ]
    thresholds = {"http_req_duration": ["p(95)<50"], "http_req_failed": ["rate<0.5"]}
    lines: list[str] = []
    csv_rows: list[str] = []
    csv_ms_rows: list[str] = []
    declared: set[str] = set()

    def declare(name, kind, contains):
        if name not in declared:
            declared.add(name)
            lines.append(json.dumps({"type": "Metric", "data": {
                "name": name, "type": kind, "contains": contains,
                "thresholds": thresholds.get(name, []), "submetrics": None}, "metric": name},
                separators=(",", ":")))

    declare("vus", "gauge", "default")
    lines.append(json.dumps({"metric": "vus", "type": "Point", "data": {
        "time": _iso(samples[0]["start"]), "value": 3, "tags": None}}, separators=(",", ":")))
    for s in samples:
        expected = 200 <= s["status"] < 400
        tags = {"expected_response": str(expected).lower(), "group": "", "method": s["method"],
                "name": base_url + s["path"], "proto": "HTTP/1.1", "scenario": "default",
                "status": str(s["status"]), "url": base_url + s["path"]}
        waiting = s["duration"] * 0.93
        parts = {"http_reqs": 1, "http_req_duration": s["duration"], "http_req_blocked": 0.004,
                 "http_req_connecting": 0.0, "http_req_tls_handshaking": 0.0,
                 "http_req_sending": s["duration"] * 0.02, "http_req_waiting": waiting,
                 "http_req_receiving": s["duration"] * 0.05,
                 "http_req_failed": 0 if expected else 1}
        for name, kind, contains in metrics:
            declare(name, kind, contains)
            lines.append(json.dumps({"metric": name, "type": "Point", "data": {
                "time": _iso(s["end"]), "value": parts[name], "tags": tags}},
                separators=(",", ":")))
            row = [name, None, f"{parts[name]:.6f}", "", "", "", str(expected).lower(), "",
                   s["method"], base_url + s["path"], "HTTP/1.1", "default", "", str(s["status"]),
                   "", "", base_url + s["path"], "", ""]
            row[1] = str(int(s["end"]))
            csv_rows.append(",".join(row))
            row[1] = str(int(s["end"] * 1000))
            csv_ms_rows.append(",".join(row))
    # one check and the iteration_duration per iteration
    declare("checks", "rate", "default")
    declare("iteration_duration", "trend", "time")
    declare("iterations", "counter", "default")
    iterations: dict[tuple[int, int], list[dict]] = {}
    for s in samples:
        iterations.setdefault((s["vu"], s["iter"]), []).append(s)
    for group in iterations.values():
        last = max(group, key=lambda s: s["end"])
        tags = {"group": "", "scenario": "default"}
        lines.append(json.dumps({"metric": "checks", "type": "Point", "data": {
            "time": _iso(last["end"]), "value": 1, "tags": {**tags, "check": "status is 2xx"}}},
            separators=(",", ":")))
        lines.append(json.dumps({"metric": "iteration_duration", "type": "Point", "data": {
            "time": _iso(last["end"]), "value": (last["end"] - group[0]["iter_start"]) * 1000,
            "tags": tags}}, separators=(",", ":")))
        lines.append(json.dumps({"metric": "iterations", "type": "Point", "data": {
            "time": _iso(last["end"]), "value": 1, "tags": tags}}, separators=(",", ":")))
    (OUT / "k6_points.ndjson").write_text("\n".join(lines) + "\n")
    header = ("metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,"
              "method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata")
    (OUT / "k6_results.csv").write_text(header + "\n" + "\n".join(csv_rows) + "\n")
    (OUT / "k6_results_ms.csv").write_text(header + "\n" + "\n".join(csv_ms_rows) + "\n")

    # summaries: the legacy --summary-export shape and the handleSummary() data shape
    durations = [s["duration"] for s in samples]
    failed = sum(1 for s in samples if not 200 <= s["status"] < 400)
    elapsed = samples[-1]["end"] - min(s["start"] for s in samples)
    trend = {"avg": sum(durations) / len(durations), "min": min(durations),
             "med": _k6_percentile(durations, 0.5), "max": max(durations),
             "p(90)": _k6_percentile(durations, 0.9), "p(95)": _k6_percentile(durations, 0.95)}
    p95_failed = trend["p(95)"] >= 50
    rate_failed = failed / len(samples) >= 0.5
    by_endpoint = {}
    for _method, path in K6_PLAN:
        values = [s["duration"] for s in samples if s["path"] == path]
        by_endpoint[f"http_req_duration{{name:{base_url}{path}}}"] = {
            "avg": sum(values) / len(values), "min": min(values),
            "med": _k6_percentile(values, 0.5), "max": max(values),
            "p(90)": _k6_percentile(values, 0.9), "p(95)": _k6_percentile(values, 0.95)}
    export = {
        "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e",
                       "groups": {}, "checks": {"status is 2xx": {
                           "name": "status is 2xx", "path": "::status is 2xx",
                           "id": "6210a8cd14cd70477eba5c5e4cb3fb5f",
                           "passes": len(iterations), "fails": 0}}},
        "options": {"summaryTrendStats": ["avg", "min", "med", "max", "p(90)", "p(95)"],
                    "summaryTimeUnit": "", "noColor": False},
        "state": {"isStdOutTTY": False, "isStdErrTTY": False, "testRunDurationMs": elapsed * 1000},
        "metrics": {
            # legacy export: a threshold's boolean is true when it FAILED
            "http_req_duration": {**trend, "thresholds": {"p(95)<50": p95_failed}},
            **{k: v for k, v in by_endpoint.items()},
            # http_req_failed is a rate of failures: "passes" counts the failed requests
            "http_req_failed": {"passes": failed, "fails": len(samples) - failed,
                                "value": failed / len(samples),
                                "thresholds": {"rate<0.5": rate_failed}},
            "http_reqs": {"count": len(samples), "rate": len(samples) / elapsed},
            "iterations": {"count": len(iterations), "rate": len(iterations) / elapsed},
            "checks": {"passes": len(iterations), "fails": 0, "value": 1},
            "vus": {"value": 3, "min": 3, "max": 3},
        },
    }
    (OUT / "k6_summary_export.json").write_text(json.dumps(export, indent=4) + "\n")
    summary = {
        "root_group": export["root_group"],
        "options": export["options"],
        "state": export["state"],
        "metrics": {
            "http_req_duration": {"type": "trend", "contains": "time", "values": trend,
                                  "thresholds": {"p(95)<50": {"ok": not p95_failed}}},
            **{k: {"type": "trend", "contains": "time", "values": v}
               for k, v in by_endpoint.items()},
            "http_req_failed": {"type": "rate", "contains": "default", "values": {
                "rate": failed / len(samples), "passes": failed, "fails": len(samples) - failed},
                "thresholds": {"rate<0.5": {"ok": not rate_failed}}},
            "http_reqs": {"type": "counter", "contains": "default",
                          "values": {"count": len(samples), "rate": len(samples) / elapsed}},
            "iterations": {"type": "counter", "contains": "default",
                           "values": {"count": len(iterations), "rate": len(iterations) / elapsed}},
            "vus": {"type": "gauge", "contains": "default", "values": {"value": 3, "min": 3, "max": 3}},
        },
    }
    (OUT / "k6_handle_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


# --- Gatling (built from its documented formats) -----------------------------------------------
# (request name, groups, method, path): requests inside a group and a nested group
GATLING_PLAN = [("users", [], "GET", "/api/users"), ("search", [], "GET", "/api/search"),
                ("reports", ["checkout"], "GET", "/api/reports"),
                ("orders", ["checkout", "payment"], "POST", "/api/orders")]


def _gatling_stats(values: list[int], failed: list[int], seconds: int) -> dict:
    """One ``stats`` object of a Gatling 3.9 report (raw numbers; 0 for an empty set).

    Gatling computes the percentiles with a t-digest (compression 100) over whole milliseconds
    and rounds them; with these few values per request that is within a millisecond of linear
    interpolation between order statistics, which is what is written here.
    """
    import numpy as np

    def figures(times: list[int]) -> dict:
        if not times:
            return dict.fromkeys(("min", "max", "mean", "std", "p1", "p2", "p3", "p4"), 0)
        arr = np.asarray(times, dtype=float)
        p = np.percentile(arr, [50, 75, 95, 99])

        def rounded(x: float) -> int:  # Java's Math.round: halves up
            return int(math.floor(x + 0.5))

        return {"min": int(arr.min()), "max": int(arr.max()), "mean": rounded(arr.mean()),
                "std": rounded(arr.std()), "p1": rounded(p[0]), "p2": rounded(p[1]),
                "p3": rounded(p[2]), "p4": rounded(p[3])}

    ok = [v for v, bad in zip(values, failed, strict=True) if not bad]
    ko = [v for v, bad in zip(values, failed, strict=True) if bad]
    total, good, bad = figures(values), figures(ok), figures(ko)

    def tok(key: str) -> dict:
        return {"total": total[key], "ok": good[key], "ko": bad[key]}

    n = len(values)
    ranges = [("t < 800 ms", "t < 800 ms", sum(1 for v in ok if v < 800)),
              ("800 ms <= t < 1200 ms", "t >= 800 ms <br> t < 1200 ms", sum(1 for v in ok if 800 <= v < 1200)),
              ("t >= 1200 ms", "t >= 1200 ms", sum(1 for v in ok if v >= 1200)),
              ("failed", "failed", len(ko))]
    stats = {"numberOfRequests": {"total": n, "ok": len(ok), "ko": len(ko)},
             "minResponseTime": tok("min"), "maxResponseTime": tok("max"),
             "meanResponseTime": tok("mean"), "standardDeviation": tok("std"),
             "percentiles1": tok("p1"), "percentiles2": tok("p2"), "percentiles3": tok("p3"),
             "percentiles4": tok("p4")}
    for i, (name, html, count) in enumerate(ranges, start=1):
        stats[f"group{i}"] = {"name": name, "htmlName": html, "count": count,
                              "percentage": count * 100 // n if n else 0}
    stats["meanNumberOfRequestsPerSecond"] = {"total": n / seconds, "ok": len(ok) / seconds,
                                              "ko": len(ko) / seconds if ko else 0}
    return stats


def make_gatling(target: Target) -> None:
    plan = [(method, path) for _, _, method, path in GATLING_PLAN]
    by_path = {path: (name, groups) for name, groups, _, path in GATLING_PLAN}
    samples = timed_requests(target, plan, iterations=8, vus=3)
    run_start = int(min(s["iter_start"] for s in samples) * 1000) - 5
    records = []  # (end ms, line): Gatling writes a record when the request (or group) ends
    user_span: dict[int, list[int]] = {}
    group_spans: dict[tuple, list] = {}
    for s in samples:
        name, groups = by_path[s["path"]]
        start, end = int(s["start"] * 1000), int(s["end"] * 1000)
        ok = 200 <= s["status"] < 300
        message = " " if ok else f"status.find.in([200, 209], 304), found {s['status']}"
        records.append((end, f"REQUEST\t{','.join(groups)}\t{name}\t{start}\t{end}\t{'OK' if ok else 'KO'}\t{message}"))
        span = user_span.setdefault(s["vu"] * 1000 + s["iter"], [int(s["iter_start"] * 1000), end])
        span[1] = max(span[1], end)
        for depth in range(1, len(groups) + 1):
            key = (s["vu"], s["iter"], tuple(groups[:depth]))
            g = group_spans.setdefault(key, [start, end, 0, True])
            g[0], g[1] = min(g[0], start), max(g[1], end)
            g[2] += end - start
            g[3] = g[3] and ok
    for (_, _, groups), (start, end, cumulated, ok) in group_spans.items():
        records.append((end, f"GROUP\t{','.join(groups)}\t{start}\t{end}\t{cumulated}\t{'OK' if ok else 'KO'}"))
    for start, end in user_span.values():
        records.append((start, "USER\tapi users\tSTART\t" + str(start)))
        records.append((end, "USER\tapi users\tEND\t" + str(end)))
    records.sort(key=lambda r: r[0])
    header = [f"RUN\tperfkit.ApiSimulation\tapisimulation\t{run_start}\t \t3.9.5"]
    (OUT / "gatling_groups_simulation.log").write_text("\n".join(header + [r[1] for r in records]) + "\n")

    last = max(r[0] for r in records)
    seconds = max(round((last - run_start) / 1000), 1)
    values: dict[tuple, list[int]] = {}
    failed: dict[tuple, list[int]] = {}
    for s in samples:
        name, groups = by_path[s["path"]]
        key = (*groups, name)
        values.setdefault(key, []).append(int(s["end"] * 1000) - int(s["start"] * 1000))
        failed.setdefault(key, []).append(not 200 <= s["status"] < 300)
    every = [v for vs in values.values() for v in vs]
    every_failed = [f for fs in failed.values() for f in fs]

    def file_name(kind: str, path: str) -> str:  # Gatling: a slug plus a hash; any unique id reads
        return f"{kind}_{path.lower().replace(' / ', '---').replace('_', '-')}-{abs(hash(path)) % 100000}"

    root = {"type": "GROUP", "name": "All Requests", "path": "", "pathFormatted": "group_missing-name-b06d1",
            "stats": {"name": "All Requests", **_gatling_stats(every, every_failed, seconds)}, "contents": {}}
    for key in values:
        *groups, name = key
        node = root
        for depth in range(1, len(groups) + 1):
            path = " / ".join(groups[:depth])
            slug = file_name("group", path)
            if slug not in node["contents"]:
                spans = [v for (_, _, g), v in group_spans.items() if g == tuple(groups[:depth])]
                node["contents"][slug] = {
                    "type": "GROUP", "name": groups[depth - 1], "path": path, "pathFormatted": slug,
                    "stats": {"name": groups[depth - 1], **_gatling_stats(
                        [v[2] for v in spans], [not v[3] for v in spans], seconds)},
                    "contents": {}}
            node = node["contents"][slug]
        path = " / ".join(key)
        slug = file_name("req", path)
        node["contents"][slug] = {"type": "REQUEST", "name": name, "path": path, "pathFormatted": slug,
                                  "stats": {"name": name, **_gatling_stats(values[key], failed[key], seconds)}}
    (OUT / "gatling_groups_stats.json").write_text(json.dumps(root, indent=2) + "\n")
# --- hey (the real tool: apt-get install hey) ---------------------------------------------------
def make_hey() -> None:
    # each run gets a fresh target, so the CSV run and the text-summary run see the same
    # deterministic latencies and errors (hey prints its summary only without -o csv)
    runs = [
        ("hey_search", ["-n", 300, "-c", 4], "/api/search"),  # 503 one time in 20
        ("hey_timeouts", ["-n", 200, "-c", 4, "-t", 1], "/api/mixed"),  # 1.5 s answers time out
    ]
    for name, options, path in runs:
        for suffix, extra in ((".csv", ["-o", "csv"]), (".txt", [])):
            target = Target()
            try:
                text = run(["hey", *options, *extra, f"{target.url}{path}"],
                           capture_output=True, text=True, check=True).stdout
            finally:
                target.close()
            (OUT / f"{name}{suffix}").write_text(text)


# --- vegeta (built from its documented Result encodings) ----------------------------------------
VEGETA_TARGETS = [("GET", "/api/users"), ("GET", "/api/search"), ("POST", "/api/orders"),
                  ("GET", "/api/mixed")]


def _go_rfc3339nano(ns: int, offset_hours: int = 1) -> str:
    """Go's time.RFC3339Nano in a +01:00 zone: nanoseconds with trailing zeros trimmed."""
    from datetime import timedelta, timezone

    seconds, frac = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone(timedelta(hours=offset_hours)))
    digits = f"{frac:09d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "") + \
        moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:]


def _vegeta_hit(url: str, method: str, seq: int, scheduled_ns: int, timeout: float) -> dict:
    """One request the way vegeta's HTTP hitter records it (lib/attack.go hit)."""
    import base64
    import http.client

    data = b'{"item": 1}' if method == "POST" else None
    verb = method.capitalize()
    result = {"attack": "perfkit", "seq": seq, "code": 0, "timestamp": scheduled_ns, "latency": 0,
              "bytes_out": 0, "bytes_in": 0, "error": "", "body": "", "method": method,
              "url": url, "headers": {}}
    t0 = time.perf_counter_ns()
    try:
        req = urllib.request.Request(url, data=data, method=method)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as err:
            resp = err
        with resp:
            body = resp.read()
            code, reason = resp.status, resp.reason
            headers = {}
            for key, value in resp.headers.items():
                headers.setdefault("-".join(p.capitalize() for p in key.split("-")), []).append(value)
        result.update(code=code, bytes_in=len(body), bytes_out=len(data or b""),
                      body=base64.b64encode(body).decode(), headers=headers)
        if not 200 <= code < 400:
            result["error"] = f"{code} {reason}"  # vegeta: res.Error = r.Status
    except TimeoutError:
        result["error"] = (f'{verb} "{url}": context deadline exceeded '
                           "(Client.Timeout exceeded while awaiting headers)")
    except urllib.error.URLError as err:
        if isinstance(err.reason, ConnectionRefusedError):
            host = url.split("/")[2]
            result["error"] = f'{verb} "{url}": dial tcp {host}: connect: connection refused'
        elif isinstance(err.reason, TimeoutError):
            result["error"] = (f'{verb} "{url}": context deadline exceeded '
                               "(Client.Timeout exceeded while awaiting headers)")
        else:
            result["error"] = f'{verb} "{url}": {err.reason}'
    except (ConnectionError, http.client.HTTPException) as err:
        result["error"] = f'{verb} "{url}": {err}'
    result["latency"] = time.perf_counter_ns() - t0
    return result


def make_vegeta() -> None:
    """vegeta attack -rate 50/s -duration 5s -timeout 1s over four targets (round robin); the
    target is stopped after 4.5 s, so the last half second is refused connections."""
    import base64
    import csv
    import io
    from concurrent.futures import ThreadPoolExecutor

    target = Target()
    rate, duration, stop_after = 50, 5.0, 4.5
    futures = []
    began = time.time_ns()
    stopped = False
    with ThreadPoolExecutor(max_workers=64) as pool:  # open loop: never waits for answers
        for seq in range(int(rate * duration)):
            due = began + seq * 1_000_000_000 // rate
            while (now := time.time_ns()) < due:
                time.sleep(min((due - now) / 1e9, 0.005))
            if not stopped and now - began >= stop_after * 1e9:
                target.close()
                stopped = True
            method, path = VEGETA_TARGETS[seq % len(VEGETA_TARGETS)]
            futures.append(pool.submit(_vegeta_hit, f"{target.url}{path}", method, seq,
                                       time.time_ns(), 1.0))
        results = [f.result() for f in futures]
    if not stopped:
        target.close()
    results.sort(key=lambda r: r["seq"])  # vegeta encode writes them as they complete; keep seq
    lines = []
    for r in results:
        lines.append(json.dumps({**r, "timestamp": _go_rfc3339nano(r["timestamp"])},
                                separators=(",", ":")))
    (OUT / "vegeta_results.json").write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for r in results:
        mime = "".join(f"{k}: {v}\r\n" for k, vs in sorted(r["headers"].items()) for v in vs)
        writer.writerow([r["timestamp"], r["code"], r["latency"], r["bytes_out"], r["bytes_in"],
                         r["error"], r["body"], r["attack"], r["seq"], r["method"], r["url"],
                         base64.b64encode((mime + "\r\n").encode()).decode() if mime else ""])
    (OUT / "vegeta_results.csv").write_text(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="ab,wrk,locust,artillery,jmeter,pgbench,k6,gatling,hey,vegeta")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    target = Target()
    try:
        with tempfile.TemporaryDirectory(prefix="perfkit-fixtures-") as name:
            tmp = Path(name)
            if "ab" in wanted:
                make_ab(target)
            if "wrk" in wanted:
                make_wrk(target)
            if "locust" in wanted:
                make_locust(target, tmp)
            if "artillery" in wanted:
                make_artillery(target, tmp)
            if "jmeter" in wanted:
                make_jmeter(target)
            if "pgbench" in wanted:
                make_pgbench(tmp)
            if "k6" in wanted:
                make_k6(target)
            if "gatling" in wanted:
                make_gatling(target)
            if "hey" in wanted:
                make_hey()
            if "vegeta" in wanted:
                make_vegeta()
    finally:
        target.close()
    for path in sorted(OUT.iterdir()):
        log(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
