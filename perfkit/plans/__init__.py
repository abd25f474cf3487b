"""EXPLAIN plans: capture them safely, parse JSON and text into node DataFrames, find problems.

``parse``/``parse_file`` read saved plans, ``explain`` captures one, ``compare`` shows a change.
Capturing (``explain``, ``explain_queryid``, ``whatif``), the comparison, the assessment and the
plan history are imported when first used: reading a saved plan and its findings
(``parse_file(path).finding_rows``) loads neither pandas nor the database drivers (SQLAlchemy,
psycopg).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from perfkit.plans.model import NODE_COLUMNS, Plan
from perfkit.plans.parse import parse, parse_all, parse_file
from perfkit.plans.rules import RULES, find_problems

# Imported when first asked for (module __getattr__ below).
_LAZY = {
    "assess": "perfkit.plans.assess",
    "costliest": "perfkit.plans.assess",
    "compare": "perfkit.plans.compare",
    "PlanComparison": "perfkit.plans.compare",
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


# Functions named like their modules: importing ``perfkit.plans.compare`` sets the package's
# attribute ``compare`` to the submodule; the package keeps the function there instead (as when
# they were imported eagerly), so ``from perfkit.plans import compare`` is always the function.
_NAMED_LIKE_MODULES = frozenset({"assess", "compare"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _NAMED_LIKE_MODULES and isinstance(value, types.ModuleType) and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
