"""The streaming pass's fast readers (``fast=True``) give what the exact ones give.

They read a line as PostgreSQL writes it by a regex (jsonlog), without the line buffer (csvlog), and
tell a parse/bind duration (which the pass only counts) from its message alone: on the real logs of
tests/fixtures/logs and on lines made to fall off the fast path (escapes, nested values, commas in
quoted fields, records cut short), every entry and every bad record must be the exact reader's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perfkit.logs import formats
from perfkit.logs.prefix import LinePrefix

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
# the entry fields the pass reads (perfkit.logs.stream, perfkit.logs.events)
USED = ("ts", "user", "database", "pid", "client", "session_id", "level", "sqlstate", "message", "detail",
        "hint", "context", "query", "application", "line")


def _parse_or_bind(entry: dict) -> bool:
    """What perfkit.logs.stream._Pass.feed drops at once."""
    message = entry.get("message") or ""
    end = message.find(" ms  ", 10) if message.startswith("duration: ") else -1
    return end > 0 and message[end + 5:end + 16].startswith(("parse ", "bind "))


def _same(exact: list, fast: list) -> None:
    """The same records, but the parse/bind durations fast reading may give as None."""
    kept = [r for r in exact if isinstance(r, formats.BadRecord) or not _parse_or_bind(r)]
    fast = [r for r in fast if r is not None and (isinstance(r, formats.BadRecord) or not _parse_or_bind(r))]
    for want, got in zip(kept, fast, strict=True):
        if isinstance(want, formats.BadRecord):
            assert got == want
            continue
        assert isinstance(got, dict)
        assert {k: want.get(k) or "" for k in USED} == {k: got.get(k) or "" for k in USED}
        assert want.get("pid") == got.get("pid")  # an int in jsonlog, a text in csvlog and stderr


def _numbered(text: str) -> list[tuple[int, str]]:
    return list(enumerate(text.split("\n"), start=1))


JSON_PARSE = ('{"timestamp":"2026-11-23 20:45:23.001 UTC","user":"app","dbname":"shop","pid":42,'
              '"session_id":"6b04.2a","line_num":3,"ps":"PARSE","session_start":"2026-11-23 20:45:22 UTC",'
              '"vxid":"3/7","txid":0,"error_severity":"LOG","message":"duration: 0.050 ms  parse <unnamed>: '
              'SELECT 1","application_name":"web","backend_type":"client backend","query_id":0}')
JSON_EXECUTE = JSON_PARSE.replace('"PARSE"', '"SELECT"').replace("parse <unnamed>", "execute <unnamed>")
JSON_ODD = [
    JSON_PARSE,
    JSON_EXECUTE,
    JSON_EXECUTE.replace("SELECT 1", 'SELECT \\"x\\" FROM t'),            # an escaped quote: json's path
    JSON_PARSE.replace("SELECT 1", 'SELECT \\"x\\"'),
    JSON_PARSE.replace('"txid":0', '"txid":[0]'),                         # nested: a bad record
    JSON_PARSE.replace('"txid":0', '"txid":{"a":1}'),
    JSON_PARSE[:-40],                                                     # cut short: a bad record
    JSON_PARSE[:-1] + ',"message":"checkpoint starting: time"}',          # the last message key wins
    JSON_PARSE.replace('"user":"app"', '"user":"a\tb"'),                  # a raw tab: not JSON
    JSON_EXECUTE.replace('"pid":42,', ""),
    JSON_EXECUTE.replace('"user":"app"', '"user":"ünï"'),
    "",
    "  ",
    "[1, 2]",
    '{"message": "duration: 1.0 ms  bind x"}',
    JSON_EXECUTE + " ",
    # a parse/bind line that json cannot read is a bad record, not a duration only counted
    JSON_PARSE.replace(',"pid":42', '"pid":42'),                          # a comma left out
    JSON_PARSE.replace('"pid":42', '"pid":042'),
    JSON_PARSE.replace('"pid":42', '"pid":forty'),
    JSON_PARSE[:-1] + ",}",
    JSON_PARSE.replace("SELECT 1", "SELECT\x01 1"),                       # a raw control character
    JSON_PARSE.replace('"vxid":"3/7"', "'vxid':'3/7'"),
    JSON_PARSE + "\r",                                                    # CRLF: json's path
    "\ufeff" + JSON_PARSE,
]


@pytest.mark.parametrize("text", [(FIXTURES / "jsonlog.json").read_text(), "\n".join(JSON_ODD)],
                         ids=["fixture", "odd lines"])
def test_jsonlog_fast_reader_is_exact(text):
    lines = _numbered(text)
    _same(list(formats.read_jsonlog(lines)), list(formats.read_jsonlog(lines, fast=True)))


CSV_PARSE = ('2026-11-23 20:45:23.001 UTC,"app","shop",42,"127.0.0.1:5000",6b04.2a,3,"PARSE",'
             '2026-11-23 20:45:22 UTC,3/7,0,LOG,00000,"duration: 0.050 ms  parse <unnamed>: SELECT 1",,,,,,,,,'
             '"web","client backend",,0')
CSV_EXECUTE = CSV_PARSE.replace('"PARSE"', '"SELECT"').replace("parse <unnamed>", "execute <unnamed>")
CSV_ODD = [
    CSV_PARSE,
    CSV_EXECUTE,
    CSV_PARSE.replace('"app"', '"a,pp"'),                        # a comma inside a quoted field
    CSV_PARSE.replace('"app"', '"a"",""pp"'),
    CSV_PARSE.replace(',"app",', ',"app,",'),
    CSV_EXECUTE.replace("SELECT 1", 'SELECT ""x"", 1'),
    CSV_PARSE.replace("SELECT 1", "SELECT\n  1"),                # a record over two lines
    CSV_PARSE[:-30],                                             # too few fields: a bad record
    CSV_PARSE.replace(",LOG,00000,", ",LOG,"),                   # the message in the 13th field
    CSV_PARSE.replace(',"duration: ', ',"""duration: '),
    CSV_EXECUTE,
    "",
    CSV_PARSE.replace("SELECT 1", 'SELECT "1'),                  # a quote left open: cut short
    CSV_EXECUTE,
]


@pytest.mark.parametrize("text", [(FIXTURES / "csvlog.csv").read_text(), "\n".join(CSV_ODD)],
                         ids=["fixture", "odd lines"])
def test_csvlog_fast_reader_is_exact(text):
    lines = _numbered(text)
    _same(list(formats.read_csvlog(lines)), list(formats.read_csvlog(lines, fast=True)))


@pytest.mark.parametrize(("name", "prefix"), [("stderr-default.log", "%m [%p] "),
                                              ("stderr-pgbadger.log", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ")])
def test_stderr_fast_reader_is_exact(name, prefix):
    lines = _numbered((FIXTURES / name).read_text())
    odd = [(10_001, "2026-11-23 20:45:23.001 UTC [42] LOG:  duration: 0.050 ms  bind <unnamed>: SELECT $1"),
           (10_002, "2026-11-23 20:45:23.001 UTC [42] DETAIL:  parameters: $1 = '1'"),
           (10_003, "2026-11-23 20:45:23.001 UTC [43] DETAIL:  parameters: $1 = '2'"),
           (10_004, "\tcontinued"),
           (10_005, "2026-11-23 20:45:23.002 UTC [42] LOG:  duration: 0.050 ms  execute <unnamed>: SELECT $1"),
           (10_006, "2026-11-23 20:45:23.002 UTC [42] DETAIL:  parameters: $1 = '1'"),
           (10_007, "not a log line")]
    if prefix == "%m [%p] ":
        lines += odd
    line_prefix = LinePrefix(prefix)
    exact = list(formats.read_stderr(lines, line_prefix))
    _same(exact, list(formats.read_stderr(lines, line_prefix, fast=True)))


def test_the_fixtures_have_parse_and_bind_durations_to_tell():
    """The exactness tests above read skipped lines in every format (else they would prove nothing)."""
    for name, reader in (("jsonlog.json", formats.read_jsonlog), ("csvlog.csv", formats.read_csvlog)):
        fast = list(reader(_numbered((FIXTURES / name).read_text()), fast=True))
        assert fast.count(None) >= 10, name
    fast = list(formats.read_stderr(_numbered((FIXTURES / "stderr-default.log").read_text()), LinePrefix("%m [%p] "),
                                    fast=True))
    assert fast.count(None) >= 10
