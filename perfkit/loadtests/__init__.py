"""Load-test outputs (k6, Locust, Artillery, ab, wrk, JMeter, pgbench, Gatling, hey, vegeta) as
one DataFrame shape.

``read(path)`` returns a LoadTestRun (samples, summary, notes); ``slo``, ``flags``, ``compare``.
"""

from perfkit.loadtests.analysis import Comparison, compare, flags, per_second
from perfkit.loadtests.assess import assess
from perfkit.loadtests.dbtime import bracketing, route_db_time, window, with_db_time
from perfkit.loadtests.formats import FORMATS, detect, latest, read, supported
from perfkit.loadtests.frames import ALL, SAMPLE_COLUMNS, SUMMARY_COLUMNS, summarize
from perfkit.loadtests.run import LoadTestRun
from perfkit.loadtests.slo import SloTargets, load_targets, slo, slo_findings

__all__ = [
    "ALL",
    "FORMATS",
    "SAMPLE_COLUMNS",
    "SUMMARY_COLUMNS",
    "Comparison",
    "LoadTestRun",
    "SloTargets",
    "assess",
    "bracketing",
    "compare",
    "detect",
    "flags",
    "latest",
    "load_targets",
    "per_second",
    "read",
    "route_db_time",
    "slo",
    "slo_findings",
    "summarize",
    "supported",
    "window",
    "with_db_time",
]
