"""Statements normalized and fingerprinted with pglast (PostgreSQL's own parser).

``normalize(sql)`` returns the statement with constants as ``$n`` and comments dropped, its
fingerprint (the same for every statement of one shape) and its first keyword.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from pglast import parser as pg

_COMMENT_TOKENS = frozenset({"C_COMMENT", "SQL_COMMENT"})


class Normalized(NamedTuple):
    """A statement's shape: ``normalized`` text, ``fingerprint`` (None when unparseable), ``command``."""

    normalized: str
    fingerprint: str | None
    command: str


def normalize(sql: str) -> Normalized:
    """The shape of ``sql``: constants become ``$n``, comments go, spacing is made uniform.

    Parameters
    ----------
    sql:
        One statement (or several separated by ``;``) as the server logged it.

    Returns
    -------
    Normalized
        ``fingerprint`` is pglast's fingerprint (equal for statements that differ only in
        constants, parameters, comments or spacing), or None when PostgreSQL's parser rejects
        the text; then ``normalized`` is the text without surrounding space.
    """
    if not sql:
        return Normalized("", None, "")
    return _normalize(sql)


@lru_cache(maxsize=200_000)
def _normalize(sql: str) -> Normalized:
    try:
        with_params = pg.normalize(sql)
    except pg.ParseError:
        return Normalized(sql.strip(), None, _first_keyword(sql))
    text, command = _tidy(with_params)
    return Normalized(text, _fingerprint(text), command)


@lru_cache(maxsize=50_000)
def _fingerprint(normalized: str) -> str | None:
    try:
        return pg.fingerprint(normalized)
    except pg.ParseError:
        return None


def _tidy(sql: str) -> tuple[str, str]:
    """``sql`` rebuilt from its tokens without comments, one space between separated tokens."""
    try:
        tokens = pg.scan(sql)
    except pg.ParseError:
        return sql.strip(), ""
    data = sql.encode("utf-8")
    parts: list[bytes] = []
    command = ""
    previous_end = None
    gap = False
    for token in tokens:
        if token.name in _COMMENT_TOKENS:
            gap = True
            continue
        if previous_end is not None and (gap or token.start > previous_end + 1):
            parts.append(b" ")
        if not command and token.kind != "NO_KEYWORD":
            command = token.name.removesuffix("_P")
        elif not command:
            command = "?"
        parts.append(data[token.start: token.end + 1])
        previous_end = token.end
        gap = False
    return b"".join(parts).decode("utf-8", "replace"), "" if command == "?" else command


def _first_keyword(sql: str) -> str:
    try:
        tokens = pg.scan(sql)
    except pg.ParseError:
        return ""
    for token in tokens:
        if token.name in _COMMENT_TOKENS:
            continue
        return token.name.removesuffix("_P") if token.kind != "NO_KEYWORD" else ""
    return ""
