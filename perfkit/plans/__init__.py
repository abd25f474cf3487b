"""EXPLAIN plans: capture them safely, parse JSON and text into node DataFrames, find problems.

``parse``/``parse_file`` read saved plans, ``explain`` captures one, ``compare`` shows a change.
Capturing (``explain``, ``explain_queryid``, ``whatif``) and the plan history are imported when
first used: reading a saved plan (``perfkit plan FILE``) does not load the database drivers
(SQLAlchemy, psycopg).
"""

from __future__ import annotations

import importlib
from typing import Any

# the functions named like their modules are imported here, so the module never shadows them
from perfkit.plans.assess import assess, costliest
from perfkit.plans.compare import PlanComparison, compare
from perfkit.plans.model import NODE_COLUMNS, Plan
from perfkit.plans.parse import parse, parse_all, parse_file
from perfkit.plans.rules import RULES, find_problems

_LAZY = {
    "explain": "perfkit.plans.capture",
    "explain_queryid": "perfkit.plans.capture",
    "whatif": "perfkit.plans.capture",
    "PlanHistory": "perfkit.plans.history",
    "fingerprint": "perfkit.plans.history",
    "plan_changes": "perfkit.plans.history",
    "record_plans": "perfkit.plans.history",
}

__all__ = [
    "NODE_COLUMNS",
    "RULES",
    "Plan",
    "PlanComparison",
    "PlanHistory",
    "assess",
    "compare",
    "costliest",
    "explain",
    "explain_queryid",
    "find_problems",
    "fingerprint",
    "parse",
    "parse_all",
    "parse_file",
    "plan_changes",
    "record_plans",
    "whatif",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'perfkit.plans' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
