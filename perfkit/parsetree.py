"""Walking PostgreSQL's parse tree as pglast gives it in JSON (``pglast.parser.parse_sql_json``).

One traversal for every reader of a statement's tree (the EXPLAIN safety checks, the side-door
check, the secrets scrubber): depth first with a stack, so a statement nested thousands of levels
deep is no RecursionError.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def items(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` of every object in ``tree``, the node's own keys before its children's."""
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            yield key, value
            if isinstance(value, dict | list):
                stack.append(value)


__all__ = ["items"]
