"""EXPLAIN plans: capture them safely, parse JSON and text into node DataFrames, find problems.

``parse``/``parse_file`` read saved plans, ``explain`` captures one, ``compare`` shows a change.
Names are imported when first used: reading a saved plan (``perfkit plan FILE``) does not load
the database drivers (SQLAlchemy, psycopg) that capturing one needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "assess": "perfkit.plans.assess",
    "costliest": "perfkit.plans.assess",
    "explain": "perfkit.plans.capture",
    "explain_queryid": "perfkit.plans.capture",
    "whatif": "perfkit.plans.capture",
    "PlanComparison": "perfkit.plans.compare",
    "compare": "perfkit.plans.compare",
    "NODE_COLUMNS": "perfkit.plans.model",
    "Plan": "perfkit.plans.model",
    "parse": "perfkit.plans.parse",
    "parse_all": "perfkit.plans.parse",
    "parse_file": "perfkit.plans.parse",
    "RULES": "perfkit.plans.rules",
    "find_problems": "perfkit.plans.rules",
    "fingerprint": "perfkit.plans.fingerprint",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'perfkit.plans' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
