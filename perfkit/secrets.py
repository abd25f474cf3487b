"""Secrets and redaction: the passwords perfkit has seen, and text with them masked as ``***``.

DSNs are parsed with psycopg's conninfo (libpq's own parser: URL and key=value forms,
``?password=`` in a URL, percent-encoding and quoting undone), never guessed at.

The rule
--------
- A password is always masked where it stands as a password: the password field of a
  ``postgresql://user:PASSWORD@host`` URL and its ``?password=`` parameter, ``password=...``
  (quoted or not, as libpq reads it), ``PGPASSWORD=...``, ``password: ...`` and SQL's
  ``PASSWORD '...'``. Nothing else in a DSN is touched: the user, host and database stay.
- Elsewhere (free text: errors, tracebacks, notebook outputs) a known password is masked
  only as a whole token (not inside a longer word), and only when it is not short (fewer
  than ``MIN_FREE_TEXT_LENGTH`` = 8 characters) and not a common word (``COMMON_PASSWORDS``:
  postgres, password, secret, admin, root, test, changeme, ...). So the password
  ``postgres`` of ``postgresql://postgres:postgres@db/shop`` gives
  ``postgresql://postgres:***@db/shop``, and "on postgres 16" stays as written: such a
  password was guessable anyway, and masking it would garble every message.

Known passwords are those of each DSN perfkit resolved in this process (:func:`remember`),
``$PGPASSWORD``, and any a caller passes (:func:`redact_text`'s ``secrets``).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, unquote

import psycopg
from pglast import parser as pg_parser
from psycopg import conninfo as pg_conninfo

MASK = "***"
# what a malformed DSN is shown as (never its text)
MALFORMED = "<malformed connection string>"
MIN_FREE_TEXT_LENGTH = 8
COMMON_PASSWORDS = frozenset({
    "postgres", "postgresql", "password", "passw0rd", "password1", "secret", "secrets", "admin",
    "administrator", "root", "test", "testing", "changeme", "default", "letmein", "welcome",
    "welcome1", "qwerty", "qwertyuiop", "iloveyou", "sunshine", "trustno1", "superuser",
    "database", "example", "12345678", "123456789", "1234567890", "localhost", "perfkit",
})

# every password perfkit has seen in this process (from DSNs it resolved and $PGPASSWORD)
_REMEMBERED: set[str] = set()

# where a DSN URL starts in free text (libpq's two schemes, SQLAlchemy's ``+driver``); the
# URL itself is then cut up by its structure, not by this pattern
_URL_START = re.compile(r"(?<![\w+.-])(postgres(?:ql)?)(\+\w+)?://", re.IGNORECASE)
_URL_END = frozenset(" \t\r\n'\"<>`")
# a label after which a password stands: password=, PGPASSWORD=, password: and SQL's PASSWORD '...'
_PASSWORD_KEYS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
_LABEL = re.compile(r"(?<![\w])(?:pg|ssl)?password(?:[\"']?[ \t]*[=:][ \t]*|[ \t]+(?='))", re.IGNORECASE)


# -- what the secrets are -----------------------------------------------------------------------

def _libpq_form(dsn: str) -> str:
    """``dsn`` as libpq reads it: SQLAlchemy's ``postgresql+psycopg://`` becomes ``postgresql://``."""
    match = _URL_START.match(dsn.strip())
    if match and match.group(2):
        return dsn.strip()[: match.start(2)] + dsn.strip()[match.end(2):]
    return dsn


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parameters as libpq reads them (URL or key=value); raises psycopg.ProgrammingError."""
    return pg_conninfo.conninfo_to_dict(_libpq_form(dsn))


def password_of(dsn: str | None) -> str | None:
    """The password a DSN holds (percent-encoding and quoting undone), or None (also for a malformed one)."""
    if not dsn:
        return None
    try:
        password = parse_dsn(dsn).get("password")
    except psycopg.ProgrammingError:
        return None
    return str(password) if password else None


def passwords_in(dsn: str | None) -> set[str]:
    """The password of ``dsn`` and of ``$PGPASSWORD``: the strings no output may hold."""
    found = set()
    password = password_of(dsn)
    if password:
        found.add(password)
    if os.environ.get("PGPASSWORD"):
        found.add(os.environ["PGPASSWORD"])
    return found


def remember(dsn: str | None) -> None:
    """Remember the password of ``dsn`` (and ``$PGPASSWORD``) so every later redaction masks it."""
    _REMEMBERED.update(passwords_in(dsn))


def remembered() -> frozenset[str]:
    """The passwords remembered in this process (and ``$PGPASSWORD``)."""
    env = os.environ.get("PGPASSWORD")
    return frozenset(_REMEMBERED | ({env} if env else set()))


def masked_in_free_text(password: str) -> bool:
    """Whether ``password`` is masked wherever it stands as a whole token (long and not a common word)."""
    return len(password) >= MIN_FREE_TEXT_LENGTH and password.lower() not in COMMON_PASSWORDS


def describe(dsn: str) -> str:
    """``user@host:port/dbname`` for messages (never the password), libpq's PG* variables as defaults.

    Read from the redacted DSN, so a password that leaks into another field (an unencoded ``@``
    in a URL makes libpq read part of it as the host) is never shown; a malformed DSN is
    described as such, never echoed.
    """
    params = {}
    if dsn:
        safe = redact(dsn)
        try:
            params = parse_dsn(safe)
        except psycopg.ProgrammingError:
            return MALFORMED
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or ""
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or ""
    who = f"{user}@" if user else ""
    return f"{who}{host}:{port}/{dbname}"


# what libpq says about a malformed DSN -> the reason without the text (its message quotes it)
_MALFORMED_REASONS = (
    ('missing "="', 'a word without "=" after it (key=value pairs, e.g. password=...)'),
    ("unterminated quoted string", "a quoted value without its closing quote"),
    ("percent-encoded", "an invalid %-escape in the URL (percent-encode the password: % as %25)"),
    ("forbidden value %00", "an invalid %-escape in the URL"),
    ("invalid connection option", "an unknown parameter name"),
    ("invalid uri query parameter", "an unknown URL parameter"),
    ("key/value separator", "a URL parameter without exactly one ="),
    ('matching "]"', "an IPv6 host without its closing ]"),
    ("invalid integer value", "a parameter that must be a number"),
    ("invalid port", "an invalid port"),
    ("unexpected spec", "a URL that cannot be read"),
    ("invalid uri", "a URL that cannot be read"),
)


def malformed(dsn: str | None) -> str | None:
    """Why ``dsn`` cannot be used, in words that never quote it; None when libpq reads it cleanly.

    Besides what libpq refuses, a URL whose user info holds more than one ``@`` (or a ``/``
    before its ``@``) is refused: libpq would read part of the password as the host or the
    database, and it would show up in messages.
    """
    if not dsn:
        return None
    try:
        parse_dsn(dsn)
    except psycopg.ProgrammingError as err:
        message = str(err).lower()
        return next((reason for key, reason in _MALFORMED_REASONS if key in message), "libpq cannot read it")
    match = _URL_START.match(dsn.strip())
    if match:
        rest = dsn.strip()[match.end():].split("?", 1)[0]
        if rest.count("@") > 1 or ("@" in rest and "/" in rest[: rest.rfind("@")]):
            return ("an unencoded @ or / in the user or password of the URL "
                    "(percent-encode them: @ as %40, / as %2F, : as %3A, % as %25)")
    return None


# -- masking ------------------------------------------------------------------------------------

def redact(dsn: str | None, secrets: Iterable[str] = ()) -> str:
    """The DSN (or any text holding DSNs) with its passwords replaced by ``***``; ``""`` for None.

    A single DSN is parsed (libpq's conninfo) and shown without its password; one that does not
    parse, or a URL whose ``@`` cannot be told apart, is never echoed: :data:`MALFORMED`.
    """
    if not dsn:
        return ""
    if not _single_dsn(dsn):
        return redact_text(dsn, secrets)
    if malformed(dsn):
        return MALFORMED
    params = parse_dsn(dsn)
    shown = redact_text(dsn, secrets)
    try:
        still = parse_dsn(shown)
    except psycopg.ProgrammingError:
        still = {"password": "?"}
    leaked = any(still.get(key) not in (None, "", MASK) for key in _PASSWORD_KEYS) or any(
        params.get(key) and masked_in_free_text(params[key]) and params[key] in shown for key in _PASSWORD_KEYS
    )
    if leaked:  # re-rendered from its parameters (key=value form), the secrets masked
        shown = pg_conninfo.make_conninfo("", **{k: (MASK if k in _PASSWORD_KEYS else v) for k, v in params.items()})
    return shown


def _single_dsn(text: str) -> bool:
    """Whether ``text`` is one DSN (a URL, or key=value pairs starting with a libpq keyword)."""
    stripped = text.strip()
    if not stripped:
        return False
    if _URL_START.match(stripped):
        return not any(c.isspace() for c in stripped)
    first = re.match(r"(\w+)\s*(=|\s|$)", stripped)
    return bool(first) and first.group(1).lower() in _libpq_keywords()


@lru_cache(maxsize=1)
def _libpq_keywords() -> frozenset[str]:
    try:
        return frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())
    except Exception:  # noqa: BLE001 - an old libpq: the common ones
        return frozenset({"host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "service",
                          "passfile", "options", "application_name", "connect_timeout"})


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with passwords masked by the module's rule (for errors, tracebacks, logs, outputs).

    The known passwords are replaced first (wherever they stand as a whole token, also
    percent-encoded or HTML-escaped), then the patterns run (URLs, ``password=`` labels): a
    password that the URL grammar would cut in two (``p@ss:w/rd``) is still masked whole.

    Parameters
    ----------
    text:
        Any text: a DSN, an error message, a traceback, a notebook output.
    secrets:
        Passwords to mask besides the remembered ones (e.g. a report's DSN password).
    """
    if not text:
        return text
    text = _mask_known(text, _known(secrets))
    if "://" not in text and _is_keyword_dsn(text):
        return _mask_labelled(text)  # a whole key=value DSN: its other fields are not secrets
    out, position = [], 0
    for start, end in _urls(text):
        out.append(_mask_labelled(text[position:start]))
        out.append(_mask_url(text[start:end]))
        position = end
    out.append(_mask_labelled(text[position:]))
    return "".join(out)


def _known(secrets: Iterable[str] = ()) -> list[str]:
    """The known passwords masked in free text, longest first."""
    return sorted({s for s in (*remembered(), *secrets) if s and masked_in_free_text(s)}, key=len, reverse=True)


def redact_all(value, secrets: Iterable[str] = ()):
    """``value`` (nested dicts, lists, strings) with every password masked; a ``password`` key's value too."""
    secrets = frozenset(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return value.__class__({
            k: MASK if _is_password_key(k) and isinstance(v, str) and v else redact_all(v, secrets)
            for k, v in value.items()
        })
    if isinstance(value, list):
        return [redact_all(v, secrets) for v in value]
    return value


def _is_password_key(key) -> bool:
    return isinstance(key, str) and key.lower() in (*_PASSWORD_KEYS, "pgpassword")


def _is_keyword_dsn(text: str) -> bool:
    return "=" in text and _parses(text)


def _urls(text: str) -> list[tuple[int, int]]:
    """Where each DSN URL in ``text`` starts and ends (it ends at whitespace, a quote or a bracket)."""
    spans = []
    for match in _URL_START.finditer(text):
        if spans and match.start() < spans[-1][1]:
            continue
        end = match.end()
        while end < len(text) and text[end] not in _URL_END:
            end += 1
        spans.append((match.start(), end))
    return spans


def _mask_url(url: str) -> str:
    """The URL with the password of its user info and its ``password`` query parameters masked."""
    scheme_end = url.index("://") + 3
    rest = url[scheme_end:]
    # libpq: the user info is what comes before the first "@" (or "/"); here it runs to the
    # last "@" before the query, so an unencoded "@" or "/" in the password (``p@ss:w/rd``,
    # which libpq misreads) is masked whole: masked more, never less
    at = rest.rfind("@", 0, rest.find("?") if "?" in rest else len(rest))
    head = ""
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        head = (f"{user}:{MASK}" if colon else rest[:at]) + "@"
        rest = rest[at + 1:]
    path, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        parts = []
        for part in query.split("&"):
            key, equals, _value = part.partition("=")
            parts.append(f"{key}={MASK}" if equals and unquote(key).lower() in _PASSWORD_KEYS else part)
        rest = path + "?" + "&".join(parts) + hash_ + fragment
    return url[:scheme_end] + head + rest


def _parses(dsn: str) -> bool:
    try:
        parse_dsn(dsn)
    except psycopg.ProgrammingError:
        return False
    return True


def _labelled_value_end(text: str, start: int) -> int:
    """Where the value that starts at ``start`` ends: a quoted one at its closing quote, else at whitespace."""
    if start < len(text) and text[start] in "'\"":
        quote_char, i = text[start], start + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == quote_char:
                if text[i + 1: i + 2] == quote_char:  # SQL's doubled quote
                    i += 2
                    continue
                return i + 1
            i += 1
        return len(text)
    i = start
    while i < len(text) and not text[i].isspace():
        i += 1 if text[i] != "\\" else 2
    return min(i, len(text))


def _mask_labelled(text: str) -> str:
    """``text`` with the value after each password label (``password=``, ``PASSWORD '...'``...) masked."""
    out, position = [], 0
    for match in _LABEL.finditer(text):
        if match.start() < position:
            continue
        start = match.end()
        if text.startswith(MASK, start) or start >= len(text) or text[start].isspace():
            continue
        end = _labelled_value_end(text, start)
        out.append(text[position:start] + MASK)
        position = end
    out.append(text[position:])
    return "".join(out)


def _mask_known(text: str, known: list[str]) -> str:
    """Each known password masked as a whole token (as written, percent-encoded, HTML-escaped)."""
    for secret in known:
        for form in dict.fromkeys((secret, quote(secret, safe=""), html.escape(secret))):
            if form in text:
                text = re.sub(_whole_token(form), MASK, text)
    return text


def _whole_token(secret: str) -> str:
    """A pattern for ``secret`` not glued to a longer word (checked on a side where it ends in a letter or digit)."""
    left = r"(?<![\w])" if re.match(r"\w", secret[0]) else ""
    right = r"(?![\w])" if re.match(r"\w", secret[-1]) else ""
    return left + re.escape(secret) + right
