"""SLO targets as the seed guides write them: p50 and max targets, targets per environment,
classes by HTTP method only where the tool recorded one, patterns on the path of a full URL, and
``--latest`` that never takes perfkit's own output for a result."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from perfkit import loadtests, sections
from perfkit.cli import main
from perfkit.errors import BadInputError

FIX = Path(__file__).parent / "fixtures" / "loadtests"

ENV_SLO = """
[defaults]
p95_ms = { target = 500, critical = 1000 }

[classes.read_simple]
match = ["/api/users*"]
p50_ms = { target = 100, critical = 200 }

[env.production.defaults]
p95_ms = { target = 5, critical = 10 }

[env.production.classes.read_simple]
p50_ms = { target = 1, critical = 2 }
max_ms = { target = 3, critical = 4 }

[env.staging.defaults]
p95_ms = { target = 2000, critical = 4000 }
"""


def _targets(tmp_path, text=ENV_SLO) -> Path:
    path = tmp_path / "slo.toml"
    path.write_text(text)
    return path


def _verdicts(table, endpoint_end: str) -> dict:
    rows = table[table["endpoint"].astype(str).str.endswith(endpoint_end)]
    return dict(zip(rows["metric"], rows["verdict"], strict=True))


def test_p50_and_max_are_judged_when_a_file_sets_them_and_only_then():
    run = loadtests.read(FIX / "locust_stats.csv")
    users = run.summary.set_index("endpoint").loc["/api/users"]
    targets = {"classes": {"read_simple": {"match": ["/api/users*"],
                                           "p50_ms": {"target": users["p50_ms"] / 2, "critical": users["p50_ms"] * 2},
                                           "max_ms": {"target": 1, "critical": 2}}}}
    table = loadtests.slo(run, targets)
    assert _verdicts(table, "/api/users") == {"p95_ms": "pass", "p99_ms": "pass", "error_rate": _verdicts(
        table, "/api/users")["error_rate"], "p50_ms": "warning", "max_ms": "critical"}
    # the defaults judge neither: an endpoint without a class has no p50 or max verdict
    assert not {"p50_ms", "max_ms"} & set(_verdicts(table, "/api/orders"))
    breach = loadtests.slo_findings(table, run.summary)
    texts = " ".join(breach[breach["subject"] == "/api/users"]["evidence"])
    assert "median latency" in texts and "maximum latency" in texts


def test_environment_tables_override_the_base_targets(tmp_path):
    path = _targets(tmp_path)
    run = loadtests.read(FIX / "locust_stats.csv")
    base = loadtests.slo(run, path)
    prod = loadtests.slo(run, path, env="production")
    staging = loadtests.slo(run, path, env="staging")
    assert _verdicts(base, "/api/orders")["p95_ms"] == "pass"
    assert _verdicts(prod, "/api/orders")["p95_ms"] == "critical"  # 22 ms against a 10 ms limit
    assert _verdicts(staging, "/api/orders")["p95_ms"] == "pass"
    users = _verdicts(prod, "/api/users")
    assert users["p50_ms"] == "critical" and users["max_ms"] == "critical"  # the class merged metric by metric
    row = prod[(prod["endpoint"] == "/api/orders") & (prod["metric"] == "p95_ms")].iloc[0]
    assert (row["target"], row["critical"]) == (5.0, 10.0)


@pytest.mark.parametrize("text, env, message", [
    (ENV_SLO, "prod", r"--env prod: no \[env.prod\] in the SLO file; it has production, staging"),
    ("[defaults]\np95_ms = { target = 1, critical = 2 }\n", "production", r"has no \[env.NAME\] tables"),
    ("[env.production.limits]\np95_ms = 1\n", "production", r"unknown section\(s\) env.production.limits"),
    ("[env]\nproduction = 3\n", "production", r"one table per environment"),
    ("[classes.w]\nmatch = ['*']\nmethods = 'POST'\np50_ms = { target = 3, critical = 1 }\n", None,
     r"classes.w.p50_ms: critical must be beyond target"),
])
def test_bad_environment_tables_are_one_line_errors(tmp_path, text, env, message):
    path = _targets(tmp_path, text)
    with pytest.raises(BadInputError, match=message) as err:
        loadtests.load_targets(path, env=env)
    assert "slo.toml" in str(err.value) and "\n" not in str(err.value)


def test_loadtest_env_on_the_command_line(tmp_path, capsys):
    path = _targets(tmp_path)
    stats = str(FIX / "locust_stats.csv")

    def p95_of_orders(*options):
        assert main(["loadtest", stats, "--slo", str(path), *options, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        row = [r for r in doc["slo"] if r["endpoint"] == "/api/orders" and r["metric"] == "p95_ms"]
        return row[0]["verdict"], doc.get("slo_env")

    assert p95_of_orders() == ("pass", None)
    assert p95_of_orders("--env", "production") == ("critical", "production")
    assert main(["loadtest", stats, "--env", "production"]) == 2
    assert "--env needs --slo FILE" in capsys.readouterr().err


WRITE_CLASS = {"classes": {"write": {"match": ["*"], "methods": ["POST", "PUT"],
                                     "p95_ms": {"target": 1, "critical": 2}}}}


def test_a_method_class_does_not_take_endpoints_whose_method_is_unknown():
    run = loadtests.read(FIX / "jmeter.xml.jtl")  # JMeter records no HTTP method
    table = loadtests.slo(run, WRITE_CLASS)
    assert set(table["class"]) == {""}  # GET reads are not judged by the write targets
    notes = table.attrs["notes"]
    assert len(notes) == 1 and "SLO class write applies to POST, PUT requests only" in notes[0]
    assert "4 endpoints" in notes[0]
    assessed = loadtests.assess([FIX / "jmeter.xml.jtl"], slo=WRITE_CLASS)
    assert any("SLO class write" in note for note in assessed.notes)


def test_locust_stats_give_their_methods_to_the_classes():
    run = loadtests.read(FIX / "locust_stats.csv")  # aggregates only: the method is Locust's Type column
    classes = loadtests.slo(run, WRITE_CLASS).drop_duplicates("endpoint").set_index("endpoint")["class"]
    assert classes["/api/orders"] == "write"  # POST
    assert classes["/api/users"] == ""  # GET
    assert loadtests.slo(run, WRITE_CLASS).attrs["notes"] == []


def test_patterns_match_the_path_of_a_full_url():
    run = loadtests.read(FIX / "k6_points.ndjson")  # k6 names requests by their URL
    assert all(str(e).startswith("http://") for e in run.summary["endpoint"] if e != "ALL")
    targets = {"classes": {"search": {"match": ["/api/search*"], "p95_ms": {"target": 1, "critical": 2}},
                           "reports": {"match": ["re:^/api/rep"], "p95_ms": {"target": 1, "critical": 2}}}}
    classes = loadtests.slo(run, targets).drop_duplicates("endpoint").set_index("endpoint")["class"]
    by_path = {name.rsplit("/", 1)[-1]: cls for name, cls in classes.items()}
    assert by_path["search"] == "search" and by_path["reports"] == "reports" and by_path["users"] == ""


def test_latest_never_takes_perfkits_own_output(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copy(FIX / "k6_points.ndjson", folder / "run.ndjson")
    os.utime(folder / "run.ndjson", (time.time() - 60, time.time() - 60))
    assert main(["loadtest", "--latest", str(folder), "--html", str(folder / "report.html")]) == 0
    assert main(["loadtest", "--latest", str(folder), "--json"]) == 0  # report.html is newer: not taken
    (folder / "notes.txt").write_text("what we changed before this run\n")
    assert loadtests.latest(folder) == folder / "run.ndjson"
    (folder / "run.ndjson").unlink()
    with pytest.raises(BadInputError, match="no load-test result among its 2 file"):
        loadtests.latest(folder)


def test_the_notebook_section_judges_by_the_reports_environment(tmp_path, monkeypatch):
    path = _targets(tmp_path)
    stats = FIX / "locust_stats.csv"
    monkeypatch.setenv("PERFKIT_SLO_ENV", "production")  # what `perfkit report --env production` sets
    src = sections.load_sources(loadtest=[stats], slo=path)
    assert src.slo_env == "production"
    section = sections.loadtest(src)
    assert section.assessment.facts["slo_env"] == "production"
    assert _verdicts(section.assessment.tables["slo"], "/api/orders")["p95_ms"] == "critical"
    monkeypatch.delenv("PERFKIT_SLO_ENV")
    plain = sections.loadtest(sections.load_sources(loadtest=[stats], slo=path))
    assert _verdicts(plain.assessment.tables["slo"], "/api/orders")["p95_ms"] == "pass"
    assert "slo_env" not in plain.assessment.facts


def test_report_env_is_checked_before_the_notebook_runs(tmp_path, capsys):
    path = _targets(tmp_path)
    stats = str(FIX / "locust_stats.csv")
    code = main(["report", "03-loadtest", "--loadtest", stats, "--slo", str(path), "--env", "prod",
                 "--out", str(tmp_path / "reports")])
    assert code == 2 and "--env prod: no [env.prod]" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
    assert main(["report", "03-loadtest", "--loadtest", stats, "--env", "production",
                 "--out", str(tmp_path / "reports")]) == 2
    assert "--env needs --slo FILE" in capsys.readouterr().err


def test_locust_method_prefixed_names_still_match_their_pattern():
    targets = loadtests.SloTargets(classes=[])
    from perfkit.loadtests.slo import EndpointClass

    write = EndpointClass("write", ["/api/orders*"], {"p95_ms": (1.0, 2.0, False)}, ["POST"])
    targets.classes.append(write)
    assert targets.for_endpoint("POST /api/orders", {"POST"})[0] == "write"  # Locust: one name, two methods
    assert targets.for_endpoint("GET /api/orders", {"GET"})[0] == ""


def test_an_environment_without_an_slo_file_is_said(monkeypatch):
    monkeypatch.setenv("PERFKIT_SLO_ENV", "production")
    section = sections.loadtest(sections.load_sources(loadtest=[FIX / "locust_stats.csv"]))
    assert any("'production' was asked for but no SLO file" in note for note in section.assessment.notes)
