"""The load-test format declarations: each reader module's ``FORMATS``, read from the sources
without pandas, agree with the imported modules; detection's ambiguity rules; fixtures."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from perfkit import loadtests
from perfkit.errors import BadInputError
from perfkit.loadtest_formats import GIVES, Format, _static, declarations, names
from perfkit.loadtests.formats import SNIFFERS

ROOT = Path(__file__).parent.parent
FIX = Path(__file__).parent / "fixtures" / "loadtests"
DECLARED = list(loadtests.FORMATS.values())


def _ids(declared: Format) -> str:
    return declared.name


# --- the declarations ---------------------------------------------------------------------------
def test_the_source_declarations_are_the_imported_ones():
    by_module: dict[str, list[Format]] = {}
    for declared in declarations():
        by_module.setdefault(declared.module, []).append(declared)
    assert len(by_module) >= 10  # k6, locust, artillery, ab, wrk, jmeter, pgbench, gatling, hey, vegeta
    for module, declared in by_module.items():
        imported = importlib.import_module(module).FORMATS
        assert [replace(f, module=module) for f in imported] == declared, module
    # and no reader module declares formats the sources do not show (formats.FORMATS is the
    # collection, a dict)
    for path in sorted((ROOT / "perfkit" / "loadtests").glob("[!_]*.py")):
        module = importlib.import_module(f"perfkit.loadtests.{path.stem}")
        declares = isinstance(getattr(module, "FORMATS", None), tuple)
        assert declares == (module.__name__ in by_module), path.name


@pytest.mark.parametrize("declared", DECLARED, ids=_ids)
def test_each_declaration_is_complete(declared):
    assert declared.gives in GIVES
    assert declared.description and "\n" not in declared.description
    assert importlib.import_module(declared.module).TOOL == declared.tool
    reader = declared.function("read")
    keywords = [p.name for p in inspect.signature(reader).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert sorted(declared.options) == sorted(keywords), "options are the reader's keywords"
    assert declared.sniff, "a format detection cannot find is never detected"
    for _priority, sniffer in declared.sniff:
        assert callable(declared.function(sniffer))
    for role in ("summarize", "locate"):
        if getattr(declared, role):
            assert callable(declared.function(role))


def test_names_and_priorities_are_unique():
    assert len(set(names())) == len(names()) == len(loadtests.FORMATS)
    priorities = [priority for priority, _name, _sniffer in SNIFFERS]
    assert len(set(priorities)) == len(priorities), "one rule per priority: the order is total"
    assert priorities == sorted(priorities)


@pytest.mark.parametrize("declared", DECLARED, ids=_ids)
def test_every_declared_format_has_a_fixture_detected_as_it_and_listed(declared):
    # adding a format means adding a fixture of it, and its line in tests/fixtures/README.md
    readme = (FIX.parent / "README.md").read_text()
    assert declared.fixtures, f"{declared.name} declares no fixture"
    for name in declared.fixtures:
        assert (FIX / name).is_file(), name
        assert name in readme, f"{name} has no line in tests/fixtures/README.md"
        assert loadtests.detect(FIX / name) == declared.name, name


def test_every_fixture_that_is_detected_is_declared_by_its_format():
    for path in sorted(FIX.iterdir()):
        try:
            detected = loadtests.detect(path)
        except BadInputError:
            continue  # a tool's text summary kept beside its CSV (hey_search.txt)
        assert path.name in loadtests.FORMATS[detected].fixtures, path.name


def test_a_declaration_is_read_from_source_and_must_be_literal():
    source = '''"""A reader."""
from perfkit.loadtest_formats import Format

FORMATS = (
    Format("new-tool", tool="new", gives="samples", description="new --out file",
           read="read_file", sniff=((999, "sniff_file"),), fixtures=("new.out",)),
)

def read_file(path):
    return ")"
'''
    (declared,) = _static(source, "perfkit.loadtests.new")
    assert declared == Format("new-tool", tool="new", gives="samples", description="new --out file",
                              read="read_file", sniff=((999, "sniff_file"),),
                              fixtures=("new.out",), module="perfkit.loadtests.new")
    assert _static('"""No formats here."""\nTOOL = "x"\n', "perfkit.loadtests.frames") is None
    with pytest.raises(ValueError):
        _static(source.replace('tool="new"', "tool=TOOL"), "perfkit.loadtests.new")


# --- no pandas for --help -----------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "from perfkit.cli import build_parser; build_parser()",
    "from perfkit.cli import main\ntry:\n    main(['loadtest', '--help'])\nexcept SystemExit:\n    pass",
])
def test_help_lists_the_formats_without_importing_pandas(code):
    check = f"import sys\n{code}\nassert 'pandas' not in sys.modules, 'pandas imported'"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    if "--help" in code:
        help_text = "".join(done.stdout.split())  # argparse wraps lines, at hyphens too
        assert ",".join(names()) in help_text


def test_the_cli_lists_the_declared_names():
    from perfkit.commands.loadtest import FORMAT_NAMES

    assert FORMAT_NAMES == names() == tuple(loadtests.FORMATS)


# --- detection: the ambiguity rules the priorities carry ----------------------------------------
K6_POINT = b'{"type":"Point","metric":"http_req_duration","data":{"time":"2024-01-01T00:00:00Z","value":1}}'
# (content, detected format, the rule)
AMBIGUOUS = [
    (K6_POINT[:-1] + b',"code":200,"timestamp":1,"latency":2}', "k6-json",
     "a k6 Metric/Point line first, before vegeta's Result keys"),
    (b'{"seq":0,"code":200,"timestamp":"2024-01-01T00:00:00Z","latency":5,"bytes_out":0,"bytes_in', "vegeta-json",
     "a vegeta line cut short: latency and bytes_out on the first line"),
    (b'[{"numberOfRequests": 1, "meanNumberOfRequestsPerSecond": 2, "metrics": {}}]', "locust-json",
     "a JSON array is Locust's, before Gatling's and k6's words"),
    (b'{"numberOfRequests": 1, "meanNumberOfRequestsPerSecond": 2, "aggregate": {"counters": {}}, "metrics": {}}',
     "gatling-stats", "Gatling's stats before Artillery's aggregate and k6's metrics"),
    (b'{"aggregate": {"counters": {}}, "metrics": {}}', "artillery", "Artillery before k6's metrics"),
    (b'{"metrics": {}}\n' + K6_POINT, "k6-summary", "k6 summary metrics before Point lines further on"),
    (b'{"cut\n' + K6_POINT, "k6-json", "Point lines further on, the first line cut"),
    (b'{"note": 1}\nThis is ApacheBench, Version 2.3', "ab",
     "JSON no JSON reader claims is asked of the text sniffers too"),
    (b"RUN\tsim\tsim\t1700000000000\t \t3.9.5\nComplete requests: 3", "gatling-log",
     "Gatling's records before ab's words"),
    (b'<testResults version="1.2"><httpSample timeStamp="1" elapsed="2"/>', "jmeter-xml",
     "an XML JTL before a CSV header's words"),
    (b"Complete requests: 10\nRunning 1s test @ http://x\n  10 requests in 1.00s", "ab",
     "ab's words before wrk's"),
    (b"Running 1s test @ http://x/timeStamp/elapsed\n  10 requests in 1.00s", "wrk",
     "wrk before a JTL header's words"),
    (b"timeStamp,elapsed,label\nprogress: 1.0 s, 10.0 tps", "jmeter-csv",
     "a JTL header before pgbench's progress lines"),
    (b"1700000000 1 2 3 1700000000 5\n", "pgbench-log",
     "a per-transaction line before an aggregate line (it matches both)"),
    (b"1700000000 1 2 3 4 5\nprogress: 1.0 s, 10.0 tps", "pgbench-aggregate",
     "an aggregate line before the report's progress lines"),
    (b"\x00\x00\x00\x00\x053.13.1" + b'{"metrics": {}}', "gatling-log",
     "Gatling's binary log first of all (its reader names it)"),
    (b"\xef\xbb\xbf \n [{}]", "locust-json", "a byte order mark and blank lines are skipped"),
]


@pytest.mark.parametrize("content, fmt, rule", AMBIGUOUS, ids=[rule for _c, _f, rule in AMBIGUOUS])
def test_detection_ambiguity_rules(tmp_path, content, fmt, rule):
    path = tmp_path / "result.out"
    path.write_bytes(content)
    assert loadtests.detect(path) == fmt, rule


@pytest.mark.parametrize("content", [b"", b" \n\t\r\n", b"\xef\xbb\xbf\n"])
def test_an_empty_or_blank_file_is_named_empty(tmp_path, content):
    path = tmp_path / "blank.out"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="empty file"):
        loadtests.detect(path)


def test_a_gatling_report_folder_is_located_by_its_declaration(tmp_path):
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "stats.json").write_bytes((FIX / "gatling_groups_stats.json").read_bytes())
    assert loadtests.detect(tmp_path) == "gatling-stats"
    empty = tmp_path / "other"
    empty.mkdir()
    with pytest.raises(BadInputError, match="is a directory"):
        loadtests.detect(empty)
