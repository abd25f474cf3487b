"""Charts and the plan picture, checked on the data behind them (line data, bar heights, SVG
elements, terminal lines) for real tool outputs and real captured plans."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from perfkit import loadtests, logs, plans
from perfkit.charts import health as health_charts
from perfkit.charts import loadtests as charts
from perfkit.charts.logs import duration_histogram
from perfkit.plans import picture

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent
LOCUST_HISTORY = FIXTURES / "loadtests" / "locust_stats_history.csv"
DEMO = ROOT / "data" / "sample" / "demo" / "loadtests"


def drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def tick_texts(ax) -> list[str]:
    """The x tick labels shown (inside the axis' limits)."""
    low, high = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]


def aggregated_column(path: Path, column: str) -> list[float]:
    with path.open() as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]


# -- Locust's cumulative counters and its empty first row ----------------------------------------
def test_locust_cumulative_counters_become_counts_per_interval():
    written = aggregated_column(LOCUST_HISTORY, "Total Failure Count")
    assert written == [0, 13, 25, 37, 54]  # what Locust writes: running totals, a start-up row of zeros
    run = loadtests.read(LOCUST_HISTORY)
    assert run.history["failures"].tolist() == [13, 12, 12, 17]
    assert run.history["failures_total"].tolist() == written[1:]
    requests = aggregated_column(LOCUST_HISTORY, "Total Request Count")
    assert run.history["requests"].tolist() == list(np.diff(requests))

    fig = drawn(charts.throughput_over_time(run))
    throughput, failures = fig.axes  # no twin axis: a panel per measure
    assert [p.get_height() for p in failures.patches] == [13, 12, 12, 17]
    line = throughput.get_lines()[0]
    assert list(line.get_xdata()) == [0, 1, 2, 3]
    assert list(line.get_ydata()) == list(np.diff(requests))  # requests per 1 s interval
    assert all(t.endswith(" s") for t in tick_texts(failures))  # a 4 s run: relative seconds


def test_no_failure_no_empty_failures_axis():
    run = loadtests.read(DEMO / "locust-after-fix_stats.csv")
    assert run.history["failures_total"].max() == 0
    fig = charts.throughput_over_time(run)
    assert len(fig.axes) == 1 and "no failures" in fig.axes[0].get_title()


def test_the_empty_first_history_row_is_no_point_at_zero():
    """The demo's real history: a start-up row of zeros, then a second whose "current" percentiles
    are all 0 (Locust's rolling window is still empty) although 51 requests were made."""
    path = DEMO / "locust-before-fix_stats_history.csv"
    with path.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    assert rows[0]["Total Request Count"] == "0" and rows[1]["95%"] == "0" and rows[1]["Total Request Count"] == "51"
    run = loadtests.read(path)
    fig = drawn(charts.latency_over_time(run))
    overall = fig.axes[0]
    lines = {line.get_label(): line for line in overall.get_lines()}
    assert set(lines) == {"p50 (all endpoints)", "p95 (all endpoints)", "p99 (all endpoints)"}
    p95 = lines["p95 (all endpoints)"]
    assert p95.get_ydata()[0] == float(rows[2]["95%"])  # the first real measurement, not 0
    assert p95.get_xdata()[0] == 1.0  # one second after the first request
    for line in lines.values():
        assert min(line.get_ydata()) > 0
    # the legend sits beside the plot, over no line
    legend = overall.get_legend().get_window_extent()
    assert legend.x0 >= overall.get_window_extent().x1
    # p95 per endpoint (Locust --csv-full-history), no zero either
    per_endpoint = fig.axes[1]
    names = sorted(line.get_label() for line in per_endpoint.get_lines())
    assert names == sorted(run.endpoint_history["endpoint"].unique()) and "/api/orders/<id>" in names
    assert all(min(line.get_ydata()) > 0 for line in per_endpoint.get_lines())
    assert tick_texts(per_endpoint)[:2] == ["0 s", "5 s"]
    assert not any("." in t for t in tick_texts(per_endpoint))


def test_long_runs_get_clock_ticks():
    run = loadtests.read(FIXTURES / "loadtests" / "vegeta_results.csv")
    samples = run.samples.copy()
    start = samples["ts"].min()
    samples["ts"] = start + (samples["ts"] - start) * 400  # the same requests spread over ~33 minutes
    fig = drawn(charts.latency_over_time(samples))
    ticks = tick_texts(fig.axes[-1])
    assert ticks and all(len(t) == 8 and t[2] == ":" and t[5] == ":" for t in ticks)  # HH:MM:SS
    assert len(fig.axes) == 2  # vegeta samples of 4 endpoints: p95 per endpoint too


def test_before_after_cdfs_share_one_axis():
    assessed = loadtests.assess([DEMO / "locust-before-fix_stats.csv", DEMO / "locust-after-fix_stats.csv"])
    p95, cdf = charts.comparison_charts(assessed)
    before, after = cdf.axes[0].get_lines()
    runs = assessed.data["runs"]
    for line, run in ((before, runs[0]), (after, runs[1])):
        row = run.summary[run.summary["endpoint"] == "ALL"].iloc[0]
        assert list(line.get_xdata()) == [row["p50_ms"], row["p90_ms"], row["p95_ms"], row["p99_ms"], row["max_ms"]]
        assert list(line.get_ydata()) == [0.5, 0.9, 0.95, 0.99, 1.0]
    assert len(cdf.axes) == 1 and "before-fix" in before.get_label() and "after-fix" in after.get_label()
    # the p95 chart is perfkit.charts.demo's: a before and an after bar per endpoint
    assert len(p95.axes[0].patches) == 2 * (len(assessed.tables["comparison"]) - 1)


def test_samples_cdf_before_after():
    a = loadtests.read(FIXTURES / "loadtests" / "k6_results.csv")
    b = loadtests.read(FIXTURES / "loadtests" / "vegeta_results.csv")
    fig = charts.latency_cdf_before_after(a, b)
    first, second = fig.axes[0].get_lines()
    assert len(first.get_xdata()) == a.samples["latency_ms"].notna().sum()
    assert first.get_ydata()[-1] == 1.0 and np.all(np.diff(second.get_xdata()) >= 0)


def test_loadtest_html_shows_failures_per_interval_and_the_comparison(tmp_path):
    from perfkit.cli import main

    out = tmp_path / "lt.html"
    code = main(["loadtest", str(DEMO / "locust-before-fix_stats.csv"), str(DEMO / "locust-after-fix_stats.csv"),
                 "--html", str(out)])
    assert code == 0
    text = out.read_text()
    assert "locust-after-fix_stats.csv against" in text and text.count("alt='before and after'") == 2


# -- log histograms ------------------------------------------------------------------------------
def test_log_histogram_panels_span_their_own_durations():
    entries = logs.read(ROOT / "data" / "sample" / "logs" / "postgresql.json")
    fig = duration_histogram(entries, top=3)
    for ax in fig.axes:
        bars = [p for p in ax.patches if p.get_height() > 0]
        left, right = min(b.get_x() for b in bars), max(b.get_x() + b.get_width() for b in bars)
        low, high = ax.get_xlim()
        # the bars fill the panel: at most a few percent of margin on either side
        if ax.get_xscale() == "log":
            share = (np.log(right) - np.log(left)) / (np.log(high) - np.log(low))
        else:
            share = (right - left) / (high - low)
        assert share > 0.6 or len(bars) == 1, ax.get_title()
        assert all("10^" not in t and "times" not in t for t in tick_texts(ax))


# -- the plan picture ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, hottest", [("hash_spill.json", "Seq Scan on orders o"),
                                           ("seq_scan.json", "Seq Scan on orders"),
                                           ("text_pg17_initplan.txt", None)])
def test_plan_svg_marks_the_hottest_node_and_findings_on_their_nodes(name, hottest):
    plan = plans.parse_file(FIXTURES / "plans" / name)
    svg_html = picture.plan_svg(plan, title=f"{name} <plan>")
    assert "&lt;plan&gt;" in svg_html
    svg = ET.fromstring(svg_html[svg_html.index("<svg"):svg_html.index("</svg>") + 6])  # well-formed: all escaped
    ns = "{http://www.w3.org/2000/svg}"
    nodes = [g for g in svg.iter(f"{ns}g") if g.get("class") == "plan-node"]
    assert [int(g.get("data-node")) for g in nodes] == plan.nodes["node_id"].tolist()
    hot = [g for g in nodes if g.get("data-hottest") == "true"]
    assert len(hot) == 1
    expected = int(plan.nodes.loc[plan.nodes["self_ms"].idxmax(), "node_id"])
    assert int(hot[0].get("data-node")) == expected
    if hottest:
        assert hottest in "".join(hot[0].itertext())
    # the self-time bar: its width is the node's share of the box
    for g in nodes:
        box, bar = g.findall(f"{ns}rect")
        share = float(g.get("data-share"))
        assert float(bar.get("width")) == pytest.approx(share * (float(box.get("width")) - 2), abs=0.1)
    self_ms = plan.nodes["self_ms"].fillna(0)
    assert float(hot[0].get("data-share")) == pytest.approx(self_ms.max() / self_ms.sum(), abs=1e-4)
    on_nodes = sorted((int(g.get("data-node")), g.get("data-severity")) for g in svg.iter(f"{ns}g")
                      if g.get("class") == "plan-finding")
    with_node = plan.findings[plan.findings["node_id"].notna()]
    assert on_nodes == sorted(zip(with_node["node_id"].astype(int), with_node["severity"], strict=True))


def test_plan_svg_escapes_what_the_plan_says():
    plan = plans.parse_file(FIXTURES / "plans" / "hash_spill.json")
    svg_html = picture.plan_svg(plan)
    assert "(tenant_id &lt; 10)" in svg_html and "tenant_id < 10" not in svg_html
    assert "tex2jax_ignore" in svg_html  # $0, $1 in a plan are never typeset


def test_plan_text_marks_the_hottest_node_in_100_columns():
    plan = plans.parse_file(FIXTURES / "plans" / "hash_spill.json")
    text = picture.plan_text(plan, width=100)
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines)
    marked = [line for line in lines if line.startswith(">> ") and "->" in line]
    assert len(marked) == 1 and marked[0].rstrip().endswith("-> Seq Scan on orders o")
    share = round(100 * 199.906 / plan.nodes["self_ms"].sum())
    assert f"{share}%" in marked[0] and "█" in marked[0]
    # each finding on the line under its node
    hash_line = next(i for i, line in enumerate(lines) if line.rstrip().endswith("-> Hash"))
    assert "warning hash_spill:" in lines[hash_line + 1]
    assert lines[-1].startswith(">> hottest: #2 Seq Scan on orders o")
    assert picture.bar(0.5, 10) == "█████     " and picture.bar(1 / 8, 1) == "▏"


def test_the_plan_section_shows_the_picture():
    from perfkit import sections

    blocks = sections._plan_blocks(plans.parse_file(FIXTURES / "plans" / "seq_scan.json"), "seq_scan.json")
    pictures = [b for b in blocks if isinstance(b, sections.Html) and "perfkit-plan" in b]
    assert len(pictures) == 1 and 'data-hottest="true"' in pictures[0]


# -- health: space and cache ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def bloated_db(sandbox, new_database) -> str:
    """A database of its own: a table three quarters deleted then vacuumed (its pages stay), and
    reads through shared buffers."""
    name = "space_charts"
    with new_database(name, statements=False) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, payload text)")
        conn.execute("INSERT INTO events SELECT g, repeat('p', 60) FROM generate_series(1, 40000) g")
        conn.execute("CREATE TABLE small (id int)")
        conn.execute("INSERT INTO small SELECT generate_series(1, 100)")
        conn.execute("DELETE FROM events WHERE id % 4 <> 0")
        conn.execute("VACUUM ANALYZE")
        for _ in range(3):
            conn.execute("SELECT count(*) FROM events").fetchall()
    return sandbox.dsn_for(name)


def test_space_and_cache_from_a_real_database(bloated_db):
    from perfkit import db
    from perfkit.health import Context, space

    engine = db.connect(bloated_db)
    try:
        ctx = Context(engine)
        sizes, cache = space.space(ctx), space.cache(ctx)
    finally:
        engine.dispose()
    events = sizes[sizes["name"] == "public.events"].iloc[0]
    assert events["kind"] == "table" and events["rows"] > 0
    assert 0.6 < events["bloat_bytes"] / events["size_bytes"] < 0.9  # three quarters of the rows are gone
    pkey = sizes[sizes["name"] == "public.events_pkey"].iloc[0]
    assert pkey["kind"] == "index" and 0.6 < pkey["bloat_bytes"] / pkey["size_bytes"] < 0.9  # its pages stay too
    fresh = sizes[sizes["name"] == "public.small"].iloc[0]
    assert fresh["bloat_bytes"] <= 8192  # a table as written: nothing beyond what its rows need
    assert sizes["size_bytes"].is_monotonic_decreasing
    assert cache["name"].iloc[0] == space.DATABASE_ROW and cache["hit_ratio"].between(0, 1).all()

    fig = health_charts.largest_relations(sizes)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    row = labels.index("public.events (table)")
    used, bloat = ax.patches[row], ax.patches[len(labels) + row]  # the bloat bar at the end of the used one
    assert bloat.get_x() == pytest.approx(used.get_width())
    assert bloat.get_width() / (used.get_width() + bloat.get_width()) == pytest.approx(
        events["bloat_bytes"] / events["size_bytes"])
    assert labels[-1].startswith("public.events")  # the largest on top

    fig = health_charts.cache_hit(cache)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == space.DATABASE_ROW  # first, on top
    assert len(ax.patches) == cache["hit_ratio"].notna().sum()


def test_health_section_draws_the_saved_space_and_cache():
    from perfkit import sections
    from perfkit.assessment import Assessment

    saved = {name: pd.DataFrame(json.loads((ROOT / "data" / "sample" / "health" / f"{name}.json").read_text()))
             for name in ("space", "cache")}
    blocks = sections.health_charts(Assessment("health", "Database health", tables=saved))
    space_chart, cache_chart = [b for b in blocks if hasattr(b, "savefig")]
    assert len(space_chart.axes[0].patches) == 2 * min(len(saved["space"]), 12)  # the 12 largest
    assert len(cache_chart.axes[0].patches) == len(saved["cache"])
    assert sections.health_charts(Assessment("health", "Database health")) == []
