"""Charts: matplotlib/seaborn figures from perfkit's DataFrames (never ``plt.show()``).

Each function takes evidence (a DataFrame or a parsed object) and returns a Figure.
"""

from perfkit.charts.logs import duration_histogram
from perfkit.charts.plans import plan_self_time

__all__ = ["duration_histogram", "plan_self_time"]
