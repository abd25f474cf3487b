"""Charts for perfkit's DataFrames: each function returns a matplotlib Figure, never shows it.

One module per evidence source; this package re-exports their chart functions.
"""

from perfkit.charts.statements import statement_label, top_statements_bar, week_over_week

__all__ = ["statement_label", "top_statements_bar", "week_over_week"]
