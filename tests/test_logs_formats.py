"""Reading real server logs (tests/fixtures/logs, written by PostgreSQL 15) in every format.

The csvlog, jsonlog and default-prefix stderr files were written at once by one server, so they must agree.
"""

from __future__ import annotations

import bz2
import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import perfkit.logs
from perfkit.errors import BadInputError
from perfkit.logs.normalize import normalize
from perfkit.logs.timestamps import to_utc

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
CSV = FIXTURES / "csvlog.csv"
JSON = FIXTURES / "jsonlog.json"
STDERR = FIXTURES / "stderr-default.log"
PGBADGER = FIXTURES / "stderr-pgbadger.log"
PGBADGER_PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
SAME_SERVER = [CSV, JSON, STDERR]

LIST_QUERY_START = "SELECT id, customer_id\n  FROM invoices\n WHERE tenant_id = "
LOOKUP_SHAPE = "SELECT id, name FROM customers WHERE id = $1"
REQUIRED = ["ts", "pid", "session_id", "user", "database", "application", "level", "duration_ms",
            "statement", "fingerprint", "normalized", "plan", "line", "file"]


@pytest.fixture(scope="module")
def logs():
    return {path.name: perfkit.logs.read(path) for path in [*SAME_SERVER, PGBADGER]}


def workload(frame: pd.DataFrame) -> pd.DataFrame:
    """The executions of the fixture workload (application 'fixture', or its pids in stderr)."""
    runs = perfkit.logs.executions(frame)
    pids = runs.loc[runs["statement"].str.contains("fixture-n1", regex=False), "pid"].unique()
    return runs[runs["pid"].isin(pids)].reset_index(drop=True)


def test_formats_are_recognised(logs):
    assert logs["csvlog.csv"].attrs["formats"] == {str(CSV): "csvlog"}
    assert logs["jsonlog.json"].attrs["formats"] == {str(JSON): "jsonlog"}
    assert logs["stderr-default.log"].attrs["prefixes"] == {str(STDERR): "%m [%p] "}
    assert logs["stderr-pgbadger.log"].attrs["prefixes"] == {str(PGBADGER): PGBADGER_PREFIX}


@pytest.mark.parametrize("name", ["csvlog.csv", "jsonlog.json", "stderr-default.log", "stderr-pgbadger.log"])
def test_columns_and_types(logs, name):
    frame = logs[name]
    assert set(REQUIRED) <= set(frame.columns)
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["ts"].notna().all()
    assert frame["line"].is_monotonic_increasing and frame["line"].iloc[0] >= 1
    assert frame["pid"].notna().all()
    assert frame.attrs["skipped_lines"] == 0


def test_one_server_three_formats_agree(logs):
    keys = ["pid", "phase", "duration_ms", "normalized", "fingerprint", "statement", "ts"]
    csv = logs["csvlog.csv"][keys].reset_index(drop=True)
    for name in ("jsonlog.json", "stderr-default.log"):
        pd.testing.assert_frame_equal(logs[name][keys].reset_index(drop=True), csv, check_dtype=False)
    assert (logs["csvlog.csv"]["plan"] == logs["jsonlog.json"]["plan"]).all()
    assert (logs["csvlog.csv"]["plan"] == logs["stderr-default.log"]["plan"]).all()


def test_pgbadger_prefix_fills_user_database_application(logs):
    runs = workload(logs["stderr-pgbadger.log"])
    assert set(runs["user"]) == {"postgres"}
    assert set(runs["database"]) == {"perfkit"}
    assert set(runs["application"]) == {"fixture"}
    assert runs["session_line"].notna().all()
    assert runs["normalized"].tolist() == workload(logs["csvlog.csv"])["normalized"].tolist()


@pytest.mark.parametrize("path", [CSV, JSON, STDERR, PGBADGER])
def test_line_is_where_the_entry_starts(logs, path):
    frame = logs[path.name]
    text = path.read_text().split("\n")
    for row in workload(frame).itertuples(index=False):
        line = text[row.line - 1]
        if path.suffix == ".json":
            assert json.loads(line)["message"].startswith("duration:")
        else:
            assert "duration: " in line and row.statement.split("\n")[0] in line


@pytest.mark.parametrize("name", ["csvlog.csv", "jsonlog.json", "stderr-default.log", "stderr-pgbadger.log"])
def test_multi_line_statements_keep_their_lines(logs, name):
    runs = workload(logs[name])
    listing = runs[runs["statement"].str.startswith(LIST_QUERY_START)]
    assert len(listing) == 1
    assert listing.iloc[0]["normalized"] == (
        "SELECT id, customer_id FROM invoices WHERE tenant_id = $1 ORDER BY id LIMIT $2"
    )
    literal = runs[runs["statement"].str.contains("a literal\nwith a newline", regex=False)]
    assert len(literal) == 1


@pytest.mark.parametrize("name", ["csvlog.csv", "jsonlog.json", "stderr-default.log", "stderr-pgbadger.log"])
def test_auto_explain_text_and_json(logs, name):
    frame = logs[name]
    plans = frame[frame["phase"] == "plan"]
    listing = plans[plans["statement"].str.startswith(LIST_QUERY_START)]
    assert len(listing) == 1
    text_plan = listing.iloc[0]["plan"]
    assert text_plan.split("\n")[0].startswith("Limit  (cost=")
    assert "Query Text" not in text_plan
    assert listing.iloc[0]["statement"].endswith("*/")  # the whole multi-line query text, comment included
    counted = plans[plans["statement"] == "SELECT count(*) FROM invoices WHERE total > 10"]
    document = json.loads(counted.iloc[0]["plan"])
    assert document["Plan"]["Node Type"] == "Aggregate"
    assert document["Plan"]["Plans"][0]["Relation Name"] == "invoices"
    execution = frame[(frame["phase"] == "statement") & (frame["statement"] == counted.iloc[0]["statement"])]
    assert execution.iloc[0]["fingerprint"] == counted.iloc[0]["fingerprint"]


@pytest.mark.parametrize("name", ["csvlog.csv", "jsonlog.json", "stderr-default.log"])
def test_errors_carry_their_statement(logs, name):
    frame = logs[name]
    errors = frame[frame["phase"] == "error"]
    assert errors["statement"].tolist() == ["SELECT * FROM no_such_table"]
    assert errors.iloc[0]["level"] == "ERROR"
    assert "no_such_table" in errors.iloc[0]["message"]


def test_parameters_of_extended_protocol(logs):
    runs = workload(logs["csvlog.csv"])
    lookups = runs[runs["normalized"] == LOOKUP_SHAPE]
    assert len(lookups) == 4
    assert lookups["parameters"].str.startswith("$1 = '").all()
    assert (lookups["phase"] == "execute").all()


def test_most_frequent_and_slowest(logs):
    frame = logs["csvlog.csv"]
    frequent = perfkit.logs.most_frequent(frame)
    top = frequent.iloc[0]
    assert top["normalized"] == LOOKUP_SHAPE and top["calls"] == 4
    assert top["total_ms"] == pytest.approx(workload(frame).query("normalized == @LOOKUP_SHAPE")["duration_ms"].sum())
    by_time = perfkit.logs.most_frequent(frame, by="total_ms")
    assert by_time["total_ms"].is_monotonic_decreasing
    slowest = perfkit.logs.slowest(frame, n=100)
    assert slowest["duration_ms"].is_monotonic_decreasing
    assert slowest.iloc[0]["duration_ms"] == perfkit.logs.executions(frame)["duration_ms"].max()
    counted = slowest[slowest["normalized"] == "SELECT count(*) FROM invoices WHERE total > $1"]
    assert json.loads(counted.iloc[0]["plan"])["Plan"]["Node Type"] == "Aggregate"
    # chunks give the same answer as the whole frame
    chunks = list(perfkit.logs.read_chunks(CSV, chunk_rows=7))
    assert len(chunks) > 3
    pd.testing.assert_frame_equal(perfkit.logs.most_frequent(chunks, n=5), perfkit.logs.most_frequent(frame, n=5))
    assert perfkit.logs.slowest(chunks, n=5)["duration_ms"].tolist() == perfkit.logs.slowest(frame, n=5)["duration_ms"].tolist()


def test_slow_statement_findings(logs):
    frame = logs["csvlog.csv"]
    found = perfkit.logs.slow_statements(frame, slow_ms=50, critical_ms=10_000)
    slowest = perfkit.logs.executions(frame)["duration_ms"].max()
    assert set(found["kind"]) == {"slow_statement"}
    assert found.iloc[0]["max_ms"] == slowest
    assert (found["severity"] == "warning").all()
    assert perfkit.logs.slow_statements(frame, slow_ms=slowest + 1).empty


def test_chunks_equal_one_read():
    whole = perfkit.logs.read(CSV)
    parts = pd.concat(list(perfkit.logs.read_chunks(CSV, chunk_rows=5)), ignore_index=True)
    pd.testing.assert_frame_equal(parts.drop(columns="file"), whole.drop(columns="file"))


@pytest.mark.parametrize(("opener", "suffix"), [(gzip.open, ".gz"), (bz2.open, ".bz2")])
def test_compressed_logs_read_like_plain_ones(tmp_path, opener, suffix):
    target = tmp_path / ("packed" + suffix)
    with open(STDERR, "rb") as source, opener(target, "wb") as packed:
        shutil.copyfileobj(source, packed)
    plain = perfkit.logs.read(STDERR)
    packed_frame = perfkit.logs.read(target)
    pd.testing.assert_frame_equal(packed_frame.drop(columns="file"), plain.drop(columns="file"))


def test_globs_and_lists(tmp_path):
    for path in SAME_SERVER:
        shutil.copy(path, tmp_path / path.name)
    both = perfkit.logs.read(str(tmp_path / "*.*"))
    assert set(both["format"]) == {"csvlog", "jsonlog", "stderr"}
    assert len(both) == 3 * len(perfkit.logs.read(CSV))
    listed = perfkit.logs.read([CSV, JSON])
    assert listed["file"].astype(str).unique().tolist() == [str(CSV), str(JSON)]


# -- bad input -----------------------------------------------------------------------------------

def test_mismatched_prefix_names_file_line_and_escape():
    with pytest.raises(BadInputError) as caught:
        perfkit.logs.read(PGBADGER, prefix="%m [%p] ")
    message = str(caught.value)
    assert message.startswith(f"{PGBADGER}, line 1: ")
    assert "does not match log_line_prefix '%m [%p] '" in message and "expects %m" in message


def test_prefix_lacking_what_perfkit_needs():
    with pytest.raises(BadInputError) as caught:
        perfkit.logs.read(STDERR, prefix="%u@%d ")
    assert "lacks a timestamp (%m, %t or %n) and a process id (%p or %c)" in str(caught.value)
    with pytest.raises(BadInputError, match="lacks a process id"):
        perfkit.logs.read(STDERR, prefix="%m ")
    with pytest.raises(BadInputError, match="unknown escape '%Z'"):
        perfkit.logs.read(STDERR, prefix="%m [%p] %Z ")


def test_unknown_prefix_asks_for_it(tmp_path):
    odd = tmp_path / "odd.log"
    odd.write_text("".join(
        line + "\n" if line.startswith("\t") else f"<{n}> {line}\n"
        for n, line in enumerate(STDERR.read_text().splitlines())
    ))
    with pytest.raises(BadInputError, match=r"odd.log, line 1: cannot tell .* --prefix"):
        perfkit.logs.read(odd)
    assert len(perfkit.logs.read(odd, prefix="<%l> %m [%p] ")) == len(perfkit.logs.read(STDERR))


def _cut_record(source: Path, target: Path, needle: str) -> int:
    """Copy ``source`` with the line holding ``needle`` cut in half; returns that line's number."""
    lines = source.read_text().split("\n")
    number = next(i for i, line in enumerate(lines) if needle in line)
    lines[number] = lines[number][: len(lines[number]) // 2]
    target.write_text("\n".join(lines))
    return number + 1


def test_truncated_csv_line(tmp_path):
    bad = tmp_path / "cut.csv"
    line = _cut_record(CSV, bad, "CREATE EXTENSION IF NOT EXISTS hypopg")
    with pytest.raises(BadInputError, match=rf"cut.csv, line {line}: a csvlog record .*cut short"):
        perfkit.logs.read(bad)
    kept = perfkit.logs.read(bad, skip_bad_lines=True)
    whole = perfkit.logs.read(CSV)
    assert kept.attrs["skipped_lines"] == 1
    assert kept.attrs["bad_records"][0]["line"] == line
    assert len(kept) == len(whole) - 1
    assert (kept["line"] < line).sum() == (whole["line"] < line).sum()  # rows before kept
    assert (kept["line"] > line).sum() == (whole["line"] > line).sum()  # and rows after


def test_csv_cut_at_the_end(tmp_path):
    bad = tmp_path / "end.csv"
    text = CSV.read_text()
    bad.write_text(text[: text.rindex("perfkit fixture end")])
    last = text[: text.rindex("perfkit fixture end")].count("\n") + 1
    with pytest.raises(BadInputError, match=rf"end.csv, line {last}: .*cut short at the end"):
        perfkit.logs.read(bad)
    assert len(perfkit.logs.read(bad, skip_bad_lines=True)) == len(perfkit.logs.read(CSV)) - 1


def test_truncated_json_line(tmp_path):
    bad = tmp_path / "cut.json"
    line = _cut_record(JSON, bad, "CREATE EXTENSION IF NOT EXISTS hypopg")
    with pytest.raises(BadInputError, match=rf"cut.json, line {line}: not a complete JSON object"):
        perfkit.logs.read(bad)
    assert perfkit.logs.read(bad, skip_bad_lines=True).attrs["skipped_lines"] == 1


def test_binary_file(tmp_path):
    blob = tmp_path / "image.png"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    with pytest.raises(BadInputError, match=r"image.png, line \d+: binary content"):
        perfkit.logs.read(blob)
    skipped = perfkit.logs.read([blob, CSV], skip_bad_lines=True)
    assert skipped.attrs["skipped_lines"] > 0
    assert len(skipped) == len(perfkit.logs.read(CSV))


def test_binary_block_inside_a_log_keeps_rows_around_it(tmp_path):
    # a crash can leave a block of NUL bytes in the middle of a log file
    lines = STDERR.read_bytes().split(b"\n")
    middle = len(lines) // 2
    while lines[middle].startswith(b"\t"):
        middle += 1
    damaged = tmp_path / "crash.log"
    damaged.write_bytes(b"\n".join(lines[:middle] + [b"\x00" * 300] + lines[middle:]))
    with pytest.raises(BadInputError, match=rf"crash.log, line {middle + 1}: binary content"):
        perfkit.logs.read(damaged)
    kept = perfkit.logs.read(damaged, skip_bad_lines=True)
    whole = perfkit.logs.read(STDERR)
    assert kept.attrs["skipped_lines"] == 1
    assert kept["statement"].tolist() == whole["statement"].tolist()


def test_damaged_gzip_keeps_rows_before(tmp_path):
    packed = gzip.compress(CSV.read_bytes())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    with pytest.raises(BadInputError, match=r"cut.csv.gz, line \d+: the gzip stream is damaged or cut short"):
        perfkit.logs.read(cut)
    kept = perfkit.logs.read(cut, skip_bad_lines=True)
    assert 0 < len(kept) < len(perfkit.logs.read(CSV))
    assert kept.attrs["skipped_lines"] >= 1


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        perfkit.logs.read(tmp_path / "absent.log")
    with pytest.raises(BadInputError, match="no file matches"):
        perfkit.logs.read(str(tmp_path / "*.csv"))
    with pytest.raises(BadInputError, match="is a folder"):
        perfkit.logs.read(tmp_path)


# -- pieces --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sql", "normalized", "command"),
    [
        ("SELECT * FROM t WHERE id = 5 AND name = 'x'", "SELECT * FROM t WHERE id = $1 AND name = $2", "SELECT"),
        ("select *\n  from t\n where id = $1 /* route='/a' */", "select * from t where id = $1", "SELECT"),
        ("SELECT x FROM t WHERE a IN (1, 2, 3) -- note", "SELECT x FROM t WHERE a IN ($1, $2, $3)", "SELECT"),
        ("/* c */ WITH a AS (SELECT 1) SELECT * FROM a", "WITH a AS (SELECT $1) SELECT * FROM a", "WITH"),
        ('SELECT "two  spaces" FROM t', 'SELECT "two  spaces" FROM t', "SELECT"),
        ("BEGIN", "BEGIN", "BEGIN"),
        ("SELEC broken", "SELEC broken", ""),
    ],
)
def test_normalize(sql, normalized, command):
    shape = normalize(sql)
    assert shape.normalized == normalized
    assert shape.command == command


def test_fingerprint_ignores_constants_comments_and_spacing():
    a = normalize("SELECT * FROM t WHERE id = 5 /* request_id='1' */")
    b = normalize("select *\nfrom t where id = $1")
    c = normalize("SELECT * FROM t WHERE id > 5")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert normalize("not sql").fingerprint is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01 12:00:00.123 UTC", "2024-05-01 12:00:00.123+00:00"),
        ("2024-05-01 14:00:00 CEST", "2024-05-01 12:00:00+00:00"),
        ("2024-05-01 15:30:00.5 +0330", "2024-05-01 12:00:00.5+00:00"),
        ("2024-05-01 07:00:00 -05", "2024-05-01 12:00:00+00:00"),
    ],
)
def test_timestamps_to_utc(text, expected):
    assert to_utc(pd.Series([text]))[0] == pd.Timestamp(expected)


def test_ambiguous_zone_needs_timezone():
    with pytest.raises(BadInputError, match="zone 'CST'.*timezone="):
        to_utc(pd.Series(["2024-01-01 06:00:00 CST"]))
    assert to_utc(pd.Series(["2024-01-01 06:00:00 CST"]), timezone="America/Chicago")[0] == pd.Timestamp(
        "2024-01-01 12:00:00+00:00"
    )
    assert to_utc(pd.Series([None]), pd.Series(["1714564800.250"]))[0] == pd.Timestamp("2024-05-01 12:00:00.25+00:00")


@pytest.mark.parametrize("name", ["csvlog.csv", "jsonlog.json", "stderr-default.log", "stderr-pgbadger.log"])
def test_every_logged_plan_parses_and_gives_plan_findings(logs, name):
    from perfkit.plans import parse

    frame = logs[name]
    plans = frame[frame["phase"] == "plan"]
    assert len(plans) >= 10
    for text in plans["plan"]:
        assert len(parse(text).nodes) >= 1
    found = perfkit.logs.plan_findings(frame, n=len(plans))
    assert found.attrs == {"skipped": "", "errors": []}
    counted = frame[frame["statement"] == "SELECT count(*) FROM invoices WHERE total > 10"]
    # the JSON plan: 377 rows estimated for the Seq Scan, 34 found
    on_count = found[found["fingerprint"] == counted.iloc[0]["fingerprint"]]
    assert on_count["subject"].tolist() == ["Seq Scan on invoices"]
    assert on_count["kind"].tolist() == ["row_misestimate"]


def test_the_prefix_regex_without_backtracking_matches_as_the_regex():
    """LinePrefix.fast (lazy fields followed by a literal read as runs without that character) gives
    the regex's match wherever it matches, and leaves to the regex the lines it does not: on the
    real stderr logs and on lines whose fields hold the literal's character, spaces, brackets."""
    import itertools
    import random

    from perfkit.logs.prefix import COMMON_PREFIXES, LinePrefix

    logs = Path(__file__).parent / "fixtures" / "logs"
    real = [line for name in ("stderr-default.log", "stderr-pgbadger.log", "events/postgresql.log")
            for line in (logs / name).read_text().split("\n")]
    pieces = ["app", "a,b", "a@b", "a b", "[x]", ",db=", " LOG:  ", "", "é", "1", "-1]", "client=x", ",app=y"]
    prefixes = ["%m [%p] user=%u,db=%d,app=%a,client=%h ", *COMMON_PREFIXES, "%m [%p] %u,%d,%a ",
                "%t [%p]: [%l-1] db=%d,user=%u,app=%a,client=%h ", "%m [%p] %e %u %d "]
    rng = random.Random(7)
    checked = fast_used = 0
    for text in prefixes:
        prefix = LinePrefix(text, require=False)
        if prefix.fast is None:
            continue
        lines = list(real)
        for user, database, app in itertools.islice(itertools.product(pieces, repeat=3), 400):
            head = (text.replace("%m", "2026-12-01 10:00:00.123 UTC").replace("%t", "2026-12-01 10:00:00 UTC")
                    .replace("%p", str(rng.randint(1, 99999))).replace("%l", "3").replace("%e", "00000")
                    .replace("%h", rng.choice(["127.0.0.1", "[local]", "10.0.0.1:5432"])).replace("%u", user)
                    .replace("%d", database).replace("%a", app))
            lines.append(head + rng.choice(["LOG:  duration: 1.0 ms  statement: SELECT 1", "DETAIL:  x,y",
                                            "ERROR:  boom"]))
        for line in lines:
            found = prefix.fast.match(line)
            want = prefix.regex.match(line)
            checked += 1
            if found is not None:
                fast_used += 1
                assert want is not None and found.groupdict() == want.groupdict(), (text, line)
    assert checked > 5_000 and fast_used > 1_000


@pytest.mark.parametrize("fast", [False, True])
def test_a_lone_surrogate_escape_in_jsonlog_is_a_bad_record(fast):
    """json reads "\\ud800" alone into a str no UTF-8 can hold (pglast and the terminal then
    failed with a traceback); DuckDB calls it malformed JSON: a bad record, the other lines read."""
    from perfkit.logs import formats

    good = ('{"timestamp":"2026-12-01 10:00:00.000 UTC","pid":1,"error_severity":"LOG",'
            '"message":"duration: 1.0 ms  statement: SELECT 1"}')
    bad = good.replace("SELECT 1", "SELECT \\ud800")
    records = list(formats.read_jsonlog([(1, good), (2, bad), (3, good.replace("\\u", ""))], fast=fast))
    assert isinstance(records[1], formats.BadRecord) and records[1].line == 2 and "surrogate" in records[1].reason
    assert records[0]["message"].endswith("SELECT 1") and records[2]["message"].endswith("SELECT 1")
    paired = bad.replace("\\ud800", "\\ud83d\\ude00")  # an escaped pair is one character: read
    assert list(formats.read_jsonlog([(1, paired)], fast=fast))[0]["message"].endswith("SELECT \U0001f600")
