"""Charts: each function takes a DataFrame and returns a matplotlib Figure (never plt.show()).

One module per evidence source; the log charts are in ``perfkit.charts.logs``.
"""

from perfkit.charts.logs import duration_histogram

__all__ = ["duration_histogram"]
