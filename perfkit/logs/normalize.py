"""Statements normalized and fingerprinted with pglast (PostgreSQL's own parser).

``normalize(sql)`` returns the statement with constants as ``$n`` and comments dropped, its
fingerprint (the same for every statement of one shape) and its first keyword.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from pglast import parser as pg

from perfkit.secrets import scrub_statement

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
    return _normalize(_without_comments(sql))


def _without_comments(sql: str) -> str:
    """``sql`` without its comments, found by PostgreSQL's lexer (pglast), not by pattern."""
    if "/*" not in sql and "--" not in sql:
        return sql
    try:
        comments = pg.comments(sql)
    except pg.ParseError:
        return sql
    if not comments:
        return sql
    data = sql.encode("utf-8")
    parts, position = [], 0
    for comment in comments:
        text = comment.str.encode("utf-8")
        start = data.find(text, max(comment.match_location, position))
        if start < 0:
            return sql
        parts.append(data[position:start])
        end = start + len(text)
        if start > 0 and not data[start - 1: start].isspace() and not data[end: end + 1].isspace():
            parts.append(b" ")  # keep the tokens on either side apart
        position = end
    parts.append(data[position:])
    return b"".join(parts).decode("utf-8", "replace")


@lru_cache(maxsize=100_000)
def _normalize(sql: str) -> Normalized:
    try:
        with_params = pg.normalize(sql)
    except pg.ParseError:  # kept as written: its secrets scrubbed (the reader did; others may not)
        return Normalized(scrub_statement(sql.strip()), None, _first_keyword(sql))
    text, command = _tidy(with_params)
    return Normalized(text, _fingerprint(text), command)


@lru_cache(maxsize=50_000)
def _fingerprint(normalized: str) -> str | None:
    try:
        return pg.fingerprint(normalized)
    except pg.ParseError:
        return None


def _tidy(sql: str) -> tuple[str, str]:
    """``sql`` (comments already removed, constants already ``$n``) with uniform spacing.

    Without double quotes the only text left is keywords, names, operators and ``$n``, so
    runs of white space collapse to one space; with quoted identifiers, the statement is
    rebuilt from its tokens so their insides stay as they are.
    """
    if '"' not in sql:
        words = sql.split()
        text = " ".join(words)
        first = words[0] if words else ""
        if first.isalpha():
            return text, first.upper() if _is_keyword(first) else ""
        return text, _first_keyword(text)
    try:
        tokens = pg.scan(sql)
    except pg.ParseError:
        return sql.strip(), ""
    data = sql.encode("utf-8")
    parts: list[bytes] = []
    command = ""
    previous_end = None
    for token in tokens:
        if token.name in _COMMENT_TOKENS:
            continue
        if previous_end is not None and token.start > previous_end + 1:
            parts.append(b" ")
        if not command:
            command = token.name.removesuffix("_P") if token.kind != "NO_KEYWORD" else "?"
        parts.append(data[token.start: token.end + 1])
        previous_end = token.end
    return b"".join(parts).decode("utf-8", "replace"), "" if command == "?" else command


@lru_cache(maxsize=1024)
def _is_keyword(word: str) -> bool:
    return bool(_first_keyword(word))


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
