"""PostgreSQL server logs (csvlog, jsonlog, stderr) read into DataFrames, with statement shapes.

``read(path)`` returns one row per log entry; ``slowest`` and ``most_frequent`` rank statements;
``assess(paths)`` is the streaming assessment. Importing the package loads neither pandas nor the
DataFrame analysis: ``assess`` reads the logs first and loads them while the readers work.
"""

from perfkit.logs.assess import assess
from perfkit.logs.normalize import normalize
from perfkit.logs.prefix import COMMON_PREFIXES, LinePrefix
from perfkit.logs.reader import COLUMNS, ReadReport, read, read_chunks

# the DataFrame analysis (pandas), loaded when first asked for
_ANALYSIS = ("executions", "most_frequent", "plan_findings", "slow_statements", "slowest")

__all__ = [
    "COLUMNS",
    "COMMON_PREFIXES",
    "LinePrefix",
    "ReadReport",
    "assess",
    "executions",
    "most_frequent",
    "normalize",
    "plan_findings",
    "read",
    "read_chunks",
    "slow_statements",
    "slowest",
]


def __getattr__(name: str):
    if name in _ANALYSIS:
        from perfkit.logs import analysis

        value = getattr(analysis, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'perfkit.logs' has no attribute {name!r}")
