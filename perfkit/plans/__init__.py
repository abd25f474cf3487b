"""EXPLAIN plans: capture them safely, parse JSON and text into node DataFrames, find problems.

``parse``/``parse_file`` read saved plans, ``explain`` captures one, ``compare`` shows a change.
"""

from perfkit.plans.assess import assess, costliest
from perfkit.plans.capture import explain, explain_queryid, whatif
from perfkit.plans.compare import PlanComparison, compare
from perfkit.plans.model import NODE_COLUMNS, Plan
from perfkit.plans.parse import parse, parse_all, parse_file
from perfkit.plans.rules import RULES, find_problems

__all__ = [
    "NODE_COLUMNS",
    "RULES",
    "Plan",
    "PlanComparison",
    "assess",
    "compare",
    "costliest",
    "explain",
    "explain_queryid",
    "find_problems",
    "parse",
    "parse_all",
    "parse_file",
    "whatif",
]
