"""PostgreSQL server logs (csvlog, jsonlog, stderr) read into DataFrames, with statement shapes.

``read(path)`` returns one row per log entry; ``slowest`` and ``most_frequent`` rank statements.
"""

from perfkit.logs.analysis import (
    executions,
    most_frequent,
    plan_findings,
    slow_statements,
    slowest,
)
from perfkit.logs.assess import assess
from perfkit.logs.normalize import normalize
from perfkit.logs.prefix import COMMON_PREFIXES, LinePrefix
from perfkit.logs.reader import COLUMNS, ReadReport, read, read_chunks

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
