"""Charts for perfkit's DataFrames: each function returns a matplotlib Figure, never shows it.

One module per evidence source; this package re-exports their chart functions.
"""

from perfkit.charts.demo import p95_before_after
from perfkit.charts.health import cache_hit, largest_relations
from perfkit.charts.loadtests import (
    comparison_charts,
    latency_cdf,
    latency_cdf_before_after,
    latency_histogram,
    latency_over_time,
    throughput_over_time,
)
from perfkit.charts.logs import duration_histogram
from perfkit.charts.plans import plan_self_time
from perfkit.charts.statements import statement_label, top_statements_bar, week_over_week

__all__ = [
    "cache_hit",
    "comparison_charts",
    "largest_relations",
    "latency_cdf",
    "latency_cdf_before_after",
    "latency_histogram",
    "latency_over_time",
    "throughput_over_time",
    "duration_histogram",
    "p95_before_after",
    "plan_self_time",
    "statement_label",
    "top_statements_bar",
    "week_over_week",
]
