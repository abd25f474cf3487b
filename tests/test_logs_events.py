"""The streaming log assessment on real logs (tests/fixtures/logs/events, see its README): every
figure checked against counts made here independently with csv, json and re; and the defects of
issue 16 (plans after the execute line, N+1 without request comments, a swallowed prefix, empty
statements, stray lines, CST/CDT, a quoted csvlog time, --format, syslog, globs) on real lines."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

import perfkit.logs
from perfkit.errors import BadInputError
from perfkit.logs import stream
from perfkit.logs.formats import CSV_COLUMNS

EVENTS = Path(__file__).resolve().parent / "fixtures" / "logs" / "events"
LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
FILES = {"stderr": EVENTS / "postgresql.log", "csvlog": EVENTS / "postgresql.csv", "jsonlog": EVENTS / "postgresql.json"}
EXECUTION = re.compile(r"^duration: [\d.]+ ms  (?:statement|execute [^:]*): ", re.S)
STDERR_HEAD = re.compile(r"^\S+ \S+ \S+ \[\d+\] user=(?P<user>[^,]*),db=[^,]*,app=(?P<app>[^,]*),client=\S* "
                         r"(?P<level>[A-Z]+):  (?P<message>.*)$")


def records(kind: str) -> list[dict]:
    """The log's entries read here without perfkit: level, sqlstate, message, detail, query, app."""
    path = FILES[kind]
    if kind == "csvlog":
        with open(path, newline="") as handle:
            return [dict(zip(CSV_COLUMNS, row, strict=False)) for row in csv.reader(handle)]
    if kind == "jsonlog":
        keys = {"error_severity": "level", "state_code": "sqlstate", "message": "message", "detail": "detail",
                "statement": "query", "application_name": "application"}
        return [{keys[k]: v for k, v in json.loads(line).items() if k in keys} for line in path.open()]
    out: list[dict] = []
    for line in path.read_text().split("\n"):
        found = STDERR_HEAD.match(line)
        if line.startswith("\t") and out:
            out[-1][out[-1]["_field"]] += "\n" + line[1:]
        elif found and found["level"] in ("DETAIL", "STATEMENT", "CONTEXT", "HINT") and out:
            field = {"DETAIL": "detail", "STATEMENT": "query"}.get(found["level"], "other")
            out[-1][field] = found["message"]
            out[-1]["_field"] = field
        elif found:
            out.append({"level": found["level"], "message": found["message"], "detail": "", "query": "", "other": "",
                        "application": found["app"], "_field": "message"})
    return out


@pytest.fixture(scope="module")
def assessed():
    return {kind: perfkit.logs.assess(path, jobs=1) for kind, path in FILES.items()}


@pytest.mark.parametrize("kind", sorted(FILES))
def test_each_figure_matches_an_independent_count(assessed, kind):
    got, rows = assessed[kind], records(kind)
    messages = [r["message"] for r in rows]
    executions = [r for r in rows if EXECUTION.match(r["message"])]
    assert got.facts["executions"] == len(executions) > 40
    # the empty statement the workload sent is an execution, not dropped
    empty = sum(1 for m in messages if re.fullmatch(r"duration: [\d.]+ ms  statement: ", m))
    assert empty == 1 and got.facts["empty_statements"] == empty
    assert len(perfkit.logs.executions(perfkit.logs.read(FILES[kind]))) == len(executions)  # the DataFrame path too
    tables = got.tables
    assert tables["per_hour"]["calls"].sum() == len(executions)
    shop = sum(1 for r in executions if r.get("application") == "shop")
    assert dict(zip(tables["by_application"]["application"], tables["by_application"]["calls"], strict=True))["shop"] == shop
    updates = sum(1 for r in executions if EXECUTION.sub("", r["message"]).lstrip().upper().startswith("UPDATE"))
    assert dict(zip(tables["statement_types"]["type"], tables["statement_types"]["calls"], strict=True))["update"] == updates
    # temporary files: count and bytes
    sizes = [int(m.rsplit(" ", 1)[1]) for m in messages if m.startswith("temporary file: ")]
    assert len(sizes) == 3 and tables["temp_files"]["count"].sum() == len(sizes)
    assert tables["temp_files"]["total_bytes"].sum() == sum(sizes)
    # checkpoints: started, requested (not by checkpoint_timeout), completed
    starts = [m for m in messages if m.startswith("checkpoint starting: ")]
    checkpoints = tables["checkpoints"].iloc[0]
    assert checkpoints["started"] == len(starts) >= 2
    assert checkpoints["requested"] == sum(1 for m in starts if "time" not in m.split(": ", 1)[1].split())
    assert checkpoints["completed"] == sum(1 for m in messages if m.startswith("checkpoint complete: "))
    # autovacuum and autoanalyze of the workload's table
    auto = tables["autovacuum"].set_index(["action", "table"])["runs"]
    assert auto[("vacuum", "perfkit.public.items")] == sum(
        1 for m in messages if m.startswith('automatic vacuum of table "perfkit.public.items"'))
    assert auto[("analyze", "perfkit.public.items")] == sum(
        1 for m in messages if m.startswith('automatic analyze of table "perfkit.public.items"'))
    # lock waits and the forced deadlock, with both statements
    assert tables["lock_waits"]["waits"].sum() == sum(1 for m in messages if " still waiting for " in m) == 1
    deadlocks = [r for r in rows if r["message"] == "deadlock detected"]
    assert len(tables["deadlocks"]) == len(deadlocks) == 1
    both = re.findall(r"^Process \d+: (.*)$", deadlocks[0]["detail"], re.M)
    assert len(both) == 2 and tables["deadlocks"].iloc[0]["statements"] == " | ".join(both)
    finding = got.findings[got.findings["kind"] == "deadlocks"].iloc[0]
    assert all(statement[:40] in finding["evidence"] for statement in both)
    # connections and sessions
    connections = tables["connections"]
    users = connections[connections["dimension"] == "user"]["connections"].sum()
    assert users == sum(1 for m in messages if m.startswith("connection authorized: "))
    assert tables["connections_per_hour"]["count"].sum() == users
    sessions = tables["sessions"]
    assert sessions[sessions["dimension"] == "user"]["sessions"].sum() == sum(
        1 for m in messages if m.startswith("disconnection: "))
    # errors by class (and SQLSTATE where the format carries it), cancelled statements
    errors = [r for r in rows if r["level"] == "ERROR"]
    assert tables["errors"]["count"].sum() == len(errors) == tables["errors_per_hour"]["count"].sum()
    if kind != "stderr":
        assert dict(Counter(r["sqlstate"] for r in errors)) == tables["errors"].groupby("sqlstate")["count"].sum().to_dict()
    assert tables["cancelled"]["count"].sum() == sum(1 for r in errors if r["message"].startswith("canceling statement"))


@pytest.mark.parametrize("kind", sorted(FILES))
def test_plans_attach_after_the_execute_line_and_slowest_is_per_shape(assessed, kind):
    slowest = assessed[kind].data["slowest"]
    lookup = slowest[slowest["normalized"] == "SELECT count(*) FROM items WHERE owner = $1"]
    # psycopg 3 with prepare_threshold=0: auto_explain's plan comes after the execute duration line
    assert len(lookup) == 1 and lookup.iloc[0]["plan"].startswith("Aggregate")
    assert lookup.iloc[0]["calls"] == 10  # one row for the shape's ten runs, its slowest shown
    assert slowest["fingerprint"].is_unique


@pytest.mark.parametrize("kind", sorted(FILES))
def test_n_plus_one_only_from_request_comments_never_perfkit(assessed, kind):
    found = assessed[kind].tables["n_plus_one"]
    tagged = found[(found["route"] == "/api/owners") & (found["pattern"] == "repeated_statement")]
    assert len(tagged) == 1 and tagged.iloc[0]["repeats"] == 5 and tagged.iloc[0]["requests"] == 2
    assert tagged.iloc[0]["severity"] == "warning" and tagged.iloc[0]["grouped_by"] == "request comment"
    assert not found["statement"].fillna("").str.contains("pg_class").any()  # perfkit's own session
    pool = found[found["statement"] == "SELECT note FROM items WHERE owner = $1 LIMIT $2"]
    assert len(pool) == 1 and pool.iloc[0]["severity"] == "info" and pool.iloc[0]["sql"] == ""
    assert set(found[found["grouped_by"] == "connection and time gap"]["severity"]) == {"info"}


def test_byte_ranges_in_parallel_read_like_one_pass(assessed, monkeypatch):
    one = assessed["stderr"]
    monkeypatch.setattr(stream, "RANGE_MIN_BYTES", 8 * 1024)
    units = stream.plan_units([FILES["stderr"]], stream.Settings(), 2)
    assert len(units) >= 4
    split = perfkit.logs.assess(FILES["stderr"], jobs=2)
    assert split.facts["executions"] == one.facts["executions"] and split.facts["entries"] == one.facts["entries"]
    assert split.tables["temp_files"].equals(one.tables["temp_files"])
    assert (split.data["slowest"]["plan"] != "").sum() == (one.data["slowest"]["plan"] != "").sum()


@pytest.mark.parametrize("kind", sorted(FILES))
def test_byte_ranges_number_their_lines_as_the_whole_file(monkeypatch, kind):
    """The ranges' bases (a line start before each cut and the lines before it, counted in one pass)
    give every line once, with its number in the whole file."""
    from perfkit.logs.prefix import LinePrefix
    from perfkit.logs.sources import numbered_lines

    monkeypatch.setattr(stream, "RANGE_MIN_BYTES", 8 * 1024)
    units = list(stream._line_bases(stream.plan_units([FILES[kind]], stream.Settings(), 2)))
    assert len(units) >= 4 and all(u.base[0] <= u.start for u in units)
    got = [pair for u in units for pair in stream._range_lines(
        u.path, u.start, u.end, u.kind, LinePrefix(u.prefix) if u.prefix else None, u.base)]
    assert got == list(numbered_lines(FILES[kind]))


def test_stray_lines_are_notes_and_the_prefix_is_printed(assessed, tmp_path, monkeypatch, capsys):
    from perfkit import cli

    log = tmp_path / "pg_ctl.log"
    log.write_text(FILES["stderr"].read_text() + "pg_ctl: could not start server\nExamine the log output.\n")
    got = perfkit.logs.assess(log)
    assert got.facts["executions"] == assessed["stderr"].facts["executions"]
    assert got.facts["skipped_lines"] == 2 and "pg_ctl.log, line" in got.notes[0]
    monkeypatch.setattr("sys.argv", ["perfkit", "logs", str(log), "-n", "2"])
    assert cli.main() in (0, None)
    err = capsys.readouterr().err
    assert "log_line_prefix '%m [%p] user=%u,db=%d,app=%a,client=%h '" in err


def test_a_prefix_that_would_swallow_fields_is_refused(assessed, tmp_path):
    # the real lines with the prefix '%m [%p] [queryid=%Q] %u@%d ': the Debian prefix '%m [%p] %q%u@%d '
    # would read every user as '[queryid=...] postgres'
    lines = []
    for number, line in enumerate(FILES["stderr"].read_text().split("\n")):
        lines.append(re.sub(r"\] user=([^,]*),db=([^,]*),app=[^,]*,client=\S* ",
                            lambda m, n=number: f"] [queryid={n}] {m[1]}@{m[2]} ", line))
    log = tmp_path / "queryid.log"
    log.write_text("\n".join(lines))
    with pytest.raises(BadInputError, match="log_line_prefix"):
        perfkit.logs.assess(log)
    right = perfkit.logs.assess(log, prefix="%m [%p] [queryid=%Q] %u@%d ")
    assert set(right.tables["by_user"]["user"]) <= {"postgres", ""}
    assert right.facts["executions"] == assessed["stderr"].facts["executions"]


def test_repeated_hour_reads_with_cst_and_cdt(tmp_path):
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC")
    lines = [line for line in FILES["stderr"].read_text().split("\n") if " statement: SELECT " in line][:4]
    zones = ["CDT", "CDT", "CST", "CST"]  # 01:30 twice on 2025-11-02 in America/Chicago
    log = tmp_path / "chicago.log"
    log.write_text("\n".join(stamp.sub(f"2025-11-02 01:30:00.000 {z}", line) for line, z in zip(lines, zones,
                                                                                                 strict=True)))
    got = perfkit.logs.assess(log, timezone="America/Chicago")
    minutes = got.tables["per_minute"]
    assert [str(m) for m in minutes["minute"]] == ["2025-11-02 06:30:00+00:00", "2025-11-02 07:30:00+00:00"]
    assert minutes["calls"].tolist() == [2, 2]
    with pytest.raises(BadInputError, match="CST"):
        perfkit.logs.assess(log)


def test_csvlog_with_a_quoted_time_and_format_override(assessed, tmp_path):
    with open(FILES["csvlog"], newline="") as handle:
        rows = list(csv.reader(handle))
    quoted = tmp_path / "quoted.log"
    with open(quoted, "w", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    expected = assessed["csvlog"].facts["executions"]
    got = perfkit.logs.assess(quoted)
    assert got.facts["formats"][str(quoted)] == "csvlog" and got.facts["executions"] == expected
    forced = perfkit.logs.assess(quoted, format="csvlog")
    assert forced.facts["executions"] == expected
    with pytest.raises(BadInputError, match="--format"):
        perfkit.logs.assess(quoted, format="xml")


def test_syslog_format_with_sequence_numbers():
    detected = perfkit.logs.assess(LOGS / "syslog-rsyslog.log")
    forced = perfkit.logs.assess(LOGS / "syslog-rsyslog.log", format="syslog")
    assert detected.facts["formats"] == forced.facts["formats"] == {str(LOGS / "syslog-rsyslog.log"): "syslog"}
    assert forced.facts["executions"] == detected.facts["executions"] > 0


def test_report_logs_accepts_a_glob():
    from perfkit.commands.report import _log_files

    assert _log_files([str(EVENTS / "postgresql.*")]) == [str(p.resolve()) for p in sorted(EVENTS.glob("postgresql.*"))]
    with pytest.raises(BadInputError):
        _log_files([str(EVENTS / "*.nothing")])


def test_findings_point_at_a_fix(assessed):
    findings = assessed["csvlog"].findings
    temp = findings[findings["kind"] == "temp_files"].iloc[0]
    assert temp["work_mem"] == "4MB" and "work_mem" in temp["sql"]
    assert findings[findings["kind"] == "lock_waits"].iloc[0]["statement"] == "UPDATE items SET note = $1 WHERE id = $2"
