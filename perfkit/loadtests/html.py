"""A standalone HTML page for load-test results: summary, SLO verdicts, findings, charts.

Charts are embedded as PNG data URIs, so the page is one file with no outside requests.
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame) -> str:
    """``frame`` escaped, text left and numbers right, ratios as percentages (perfkit.display)."""
    from perfkit.display import html_table

    if frame.empty:
        return "<p>(none)</p>"
    return html_table(frame).replace("<table>", "<table class='t'>", 1)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em}
table.t{border-collapse:collapse;font-size:90%}table.t td,table.t th{padding:.2em .6em;
border-bottom:1px solid #ddd}
.critical{color:#b00;font-weight:bold}.warning{color:#a60}.pass{color:#070}"""


def page(results: list[dict], *, title: str = "perfkit load-test report", assessment=None) -> str:
    """The HTML text for a list of ``{"run", "verdicts", "findings"}`` dicts (one per file), and
    when ``assessment`` (perfkit.loadtests.assess) compares runs, the before/after charts."""
    from perfkit.charts import latency_cdf, latency_over_time, throughput_over_time
    from perfkit.charts.loadtests import comparison_charts

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for result in results:
        run = result["run"]
        parts.append(f"<h2>{html.escape(run.source)}</h2><p>{html.escape(run.tool)} "
                     f"({html.escape(run.format)}); percentiles from {html.escape(run.percentiles_from)}</p>")
        if run.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in run.notes) + "</ul>")
        parts.append("<h3>Summary</h3>" + _table(run.summary))
        verdicts = result["verdicts"]
        if not verdicts.empty:
            wide = verdicts.pivot_table(index="endpoint", columns="metric", values="verdict",
                                        aggfunc="first").reset_index()
            table = _table(wide)
            for word in ("critical", "warning", "pass"):
                table = table.replace(f'<td style="text-align:left">{word}</td>',
                                      f'<td style="text-align:left" class="{word}">{word}</td>')
            parts.append("<h3>SLO verdicts</h3>" + table)
        findings = result["findings"]
        parts.append("<h3>Findings</h3>" + _table(findings[["kind", "severity", "subject", "evidence",
                                                           "recommendation"]]))
        for chart in (latency_over_time, throughput_over_time, latency_cdf):
            parts.append(f"<p><img alt='{chart.__name__}' src='data:image/png;base64,"
                         f"{_figure_png(chart(run))}'></p>")
    before_after = comparison_charts(assessment) if assessment is not None else []
    if before_after:
        compared = assessment.facts["compared"]
        parts.append(f"<h2>{html.escape(compared['run'])} against {html.escape(compared['baseline'])}</h2>")
        parts += [f"<p><img alt='before and after' src='data:image/png;base64,{_figure_png(fig)}'></p>"
                  for fig in before_after]
    parts.append("</body></html>")
    return "\n".join(parts)
