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

import bisect
import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache

from perfkit import parsetree


class _Lazy:
    """A module imported when first used: reading a plan file scrubs its text without loading
    the database driver (psycopg is needed only when a DSN is parsed)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


psycopg = _Lazy("psycopg")
pg_conninfo = _Lazy("psycopg.conninfo")

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
# password=, PGPASSWORD=, and environment-style DB_PASSWORD= / POSTGRES_PASSWORD=
_LABEL = re.compile(r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+_)*(?:pg|ssl)?password(?:[\"']?[ \t]*[=:][ \t]*|[ \t]+(?='))",
                    re.IGNORECASE)


# -- what the secrets are -----------------------------------------------------------------------

def _libpq_form(dsn: str) -> str:
    """``dsn`` as libpq reads it: SQLAlchemy's ``postgresql+psycopg://`` becomes ``postgresql://``."""
    match = _URL_START.match(dsn.strip())
    if match and match.group(2):
        return dsn.strip()[: match.start(2)] + dsn.strip()[match.end(2):]
    return dsn


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parameters as libpq reads them (URL or key=value); raises psycopg.ProgrammingError."""
    try:
        return pg_conninfo.conninfo_to_dict(_libpq_form(dsn))
    except UnicodeDecodeError:  # ``%80`` in a URL: libpq decodes it, psycopg cannot
        raise psycopg.ProgrammingError("invalid percent-encoded token: not UTF-8") from None


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
        if "@" in rest and any(c.isspace() for c in rest[: rest.rfind("@")]):
            return "an unencoded space in the user or password of the URL (percent-encode it as %20)"
    return None


# -- masking ------------------------------------------------------------------------------------

def redact(dsn: str | None, secrets: Iterable[str] = ()) -> str:
    """The DSN (or any text holding DSNs) with its passwords replaced by ``***``; ``""`` for None.

    A single DSN is parsed (libpq's conninfo) and shown without its password; one that does not
    parse, or a URL whose ``@`` cannot be told apart, is never echoed: :data:`MALFORMED`.
    """
    if not dsn:
        return ""
    if _url_with_spaced_user_info(dsn):
        return MALFORMED
    if not _single_dsn(dsn):
        return redact_text(dsn, secrets)
    if malformed(dsn):
        return MALFORMED
    params = parse_dsn(dsn)
    shown = _mask_patterns(dsn)  # by its structure: a user named like the password stays
    try:
        still = parse_dsn(shown)
    except psycopg.ProgrammingError:
        still = {"password": "?"}
    if any(still.get(key) not in (None, "", MASK) for key in _PASSWORD_KEYS):  # re-rendered from its parameters (key=value form), the secrets masked
        shown = pg_conninfo.make_conninfo("", **{k: (MASK if k in _PASSWORD_KEYS else v) for k, v in params.items()})
    return shown


def _url_with_spaced_user_info(text: str) -> bool:
    """A text that is one URL whose user info holds a space (``postgresql://app:pass word@db``):
    nothing can tell where its password ends, so it is never echoed."""
    stripped = text.strip()
    match = _URL_START.match(stripped)
    if not match or "\n" in stripped:
        return False
    rest = stripped[match.end():]
    at = rest.rfind("@")
    return at > 0 and any(c.isspace() for c in rest[:at]) and "/" not in rest[:at]


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
    return _mask_patterns(_mask_known(text, _known(secrets)))


def _mask_patterns(text: str) -> str:
    """``text`` with the passwords of its DSNs and after its password labels masked."""
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
    if at < 0:  # a "?" in the password (``app:pa?ss@db``): the last "@" before the path, else any
        at = rest.rfind("@", 0, rest.find("/") if "/" in rest else len(rest))
        at = at if at >= 0 else rest.rfind("@")
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
            parts.append(f"{key}={MASK}" if equals and _unquote(key).lower() in _PASSWORD_KEYS else part)
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


def _unquote(text: str) -> str:
    from urllib.parse import unquote  # (not at start-up: reading a plan needs none of urllib)

    return unquote(text)


def _mask_known(text: str, known: list[str]) -> str:
    """Each known password masked as a whole token (as written, percent-encoded, HTML-escaped)."""
    import html
    from urllib.parse import quote

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


# -- secrets inside statement text --------------------------------------------------------------
#
# Statement text (pg_stat_statements keeps utility statements word for word, logs keep
# everything) is scrubbed when it is read: by PostgreSQL's parser (pglast) where the text
# parses, by a conservative pattern where it does not. Only the secret string constants change;
# a statement that holds none comes back as the very same string.

# a text that could hold a secret holds one of these, in lower case (anything else is returned
# untouched); searched in the lowered text, which is many times faster than re.IGNORECASE
_SECRET_WORDS = ("passw", "pwd", "secret", "token", "pgp_", "crypt", "hmac", "dearmor", "dblink", "://")
_MAY_HOLD_SECRET = re.compile("|".join(re.escape(word) for word in _SECRET_WORDS))


def _has_secret_word(lowered: str) -> bool:
    """``_MAY_HOLD_SECRET.search(lowered) is not None``, as substring searches (faster on a long text)."""
    return any(word in lowered for word in _SECRET_WORDS)
# a string constant that could hold a connection string with a password
_MAY_HOLD_CONNINFO = re.compile(r"passw|secret|://", re.IGNORECASE)
# function -> the 0-based positions of its secret arguments (pgcrypto's keys and passwords)
SECRET_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "pgp_sym_encrypt": (1,), "pgp_sym_encrypt_bytea": (1,),
    "pgp_sym_decrypt": (1,), "pgp_sym_decrypt_bytea": (1,),
    "pgp_pub_encrypt": (1,), "pgp_pub_encrypt_bytea": (1,),
    "pgp_pub_decrypt": (1, 2), "pgp_pub_decrypt_bytea": (1, 2),
    "encrypt": (1,), "decrypt": (1,), "encrypt_iv": (1,), "decrypt_iv": (1,),
    "hmac": (1,), "crypt": (0,), "dearmor": (0,),
}
_SECRET_FUNCTION_CALL = re.compile(
    r"(?<![\w$])(?:pgp_\w+|encrypt(?:_iv)?|decrypt(?:_iv)?|hmac|crypt|dearmor)\s*\(", re.IGNORECASE
)
_SQL_LITERAL = re.compile(r"(?:[eE])?'(?:[^'\\]|''|\\.)*(?:'|$)", re.DOTALL)
_SQL_LABEL = re.compile(
    r"(?<![\w])(?:encrypted\s+)?(?:pg|ssl)?password[\"']?(?:[ \t]*[=:][ \t]*|\s+(?=(?:[eE])?'))", re.IGNORECASE
)


def may_hold_secret(text: str) -> bool:
    """The cheap test: whether ``text`` holds a word that a secret in SQL comes with."""
    return bool(text) and _MAY_HOLD_SECRET.search(text.lower()) is not None


def is_secret_option(name: str) -> bool:
    """Whether an option (``OPTIONS (name '...')``, a role's ``PASSWORD``) holds a secret."""
    lowered = name.lower()
    if lowered.endswith("_required"):  # postgres_fdw's password_required 'false'
        return False
    return (any(word in lowered for word in ("passw", "secret", "token", "passphrase"))
            or lowered in {"pwd", "api_key", "access_key", "private_key"})


def scrub_statement(text):
    """``text`` (SQL as a server keeps or logs it) with the secrets in it replaced by ``'***'``.

    Masked: ``PASSWORD '...'`` and ``ENCRYPTED PASSWORD '...'`` (CREATE/ALTER ROLE/USER), the
    password (and secret/token) options of ``CREATE/ALTER USER MAPPING``, ``SERVER`` and any
    other ``OPTIONS (...)``, pgcrypto's keys and passwords (``pgp_sym_encrypt(data, 'key')``,
    ``pgp_sym_decrypt``, ``pgp_pub_*``, ``encrypt``/``decrypt``(``_iv``), ``hmac``, ``crypt``),
    a string compared with or assigned to a column whose name holds ``password``, and the
    password of any connection string or URL inside a string constant or a comment
    (``dblink_connect('... password=...')``, ``CREATE SUBSCRIPTION ... CONNECTION '...'``).
    Text that parses is scrubbed through its parse tree (only the secret constants change);
    text that does not (cut short, a plan's ``Filter``) by a conservative pattern. Anything
    that is not a non-empty string is returned as it is; a text without a secret is returned
    unchanged, byte for byte.
    """
    if not isinstance(text, str) or not text:
        return text
    return _scrub_one(text, _known())


def _scrub_one(text: str, known: list[str]) -> str:
    if known and any(secret in text for secret in known):
        text = _mask_known(text, known)
    if _MAY_HOLD_SECRET.search(text.lower()) is None:
        return text
    return _scrub_sql(text)


def scrub_statements(values):
    """:func:`scrub_statement` over a list or pandas Series, fast when nothing in it can hold a secret.

    The whole column is searched once for the words a secret comes with (and the known
    passwords); only the texts where one was found are scrubbed, each distinct one once. The
    same object comes back when nothing changed.
    """
    import pandas as pd

    if isinstance(values, pd.Series):
        if values.empty:
            return values
        texts = [t for t in values.dropna().unique() if isinstance(t, str)]
        changed = {texts[i]: new for i, new in _scrubbed(texts).items()}
        if not changed:
            return values
        return pd.Series([changed.get(t, t) if isinstance(t, str) else t for t in values],
                         index=values.index, name=values.name, dtype=values.dtype)
    values = list(values)
    texts = [t if isinstance(t, str) else "" for t in values]
    changed = _scrubbed(texts)
    for i, new in changed.items():
        values[i] = new
    return values


def _scrubbed(texts: list[str]) -> dict[int, str]:
    """Position -> scrubbed text, for the texts of ``texts`` that scrubbing changes."""
    if not texts:
        return {}
    known = _known()
    joined = "\x00".join(texts)
    lowered = joined.lower()
    hit = _has_secret_word(lowered)
    has_known = bool(known) and any(secret in joined for secret in known)
    if not hit and not has_known:
        return {}
    if has_known or len(lowered) != len(joined):  # rare: each text on its own
        candidates = range(len(texts))
    else:
        starts, position = [], 0
        for text in texts:
            starts.append(position)
            position += len(text) + 1
        candidates = sorted({bisect.bisect_right(starts, m.start()) - 1 for m in _MAY_HOLD_SECRET.finditer(lowered)})
    changed: dict[int, str] = {}
    done: dict[str, str] = {}
    for i in candidates:
        text = texts[i]
        if not text:
            continue
        if text not in done:
            done[text] = _scrub_one(text, known)
        if done[text] != text:
            changed[i] = done[text]
    return changed


def scrub_document(value, *, copy: bool = True, source: str | None = None):
    """``value`` (nested dicts and lists, e.g. an EXPLAIN JSON document) with every string scrubbed.

    Each string is scrubbed as :func:`scrub_statement` would; the strings are searched together
    (one pass over all of them, see :func:`scrub_statements`), so a large plan costs one search.

    ``copy=False`` scrubs a document the caller owns in place (no copy of its dicts and lists).
    ``source`` is the JSON text ``value`` was just loaded from: when that text (escapes and all)
    holds none of the words a secret comes with and no remembered password, no string decoded
    from it can, and ``value`` is returned as it is without walking it.
    """
    if isinstance(value, str):
        return scrub_statement(value)
    if not isinstance(value, dict | list):
        return value
    if source is not None and _json_text_is_clean(source):
        return value
    # a copy walked with a stack, not recursion: a plan thousands of levels deep is a real input
    if not copy:
        root = value
    else:
        root = value.__class__(value) if isinstance(value, dict) else list(value)
    stack = [root]
    holders: list = []  # (container, key) of each string, in the order of ``texts``
    texts: list[str] = []
    while stack:
        node = stack.pop()
        for key, child in (node.items() if isinstance(node, dict) else enumerate(node)):
            kind = type(child)
            if kind is str:
                if child:
                    holders.append((node, key))
                    texts.append(child)
            elif kind is dict or kind is list or isinstance(child, dict | list):
                if copy:
                    child = child.__class__(child) if isinstance(child, dict) else list(child)
                    node[key] = child  # replacing a value does not change a dict's keys: safe while iterating
                stack.append(child)
            elif isinstance(child, str) and child:  # a str subclass
                holders.append((node, key))
                texts.append(child)
    for position, scrubbed in _scrubbed(texts).items():
        node, key = holders[position]
        node[key] = scrubbed
    return root


def _json_text_is_clean(source: str) -> bool:
    """Whether no string of the JSON ``source`` can need scrubbing (then its strings need no walk).

    JSON's escapes other than ``\\uXXXX`` and ``\\/`` decode to one character that is not a
    letter, ``_``, ``:`` or ``/``, so every match of the secret words in a decoded string is in
    the text as written; a text with those two escapes, or a remembered password that could be
    written escaped (a quote, a backslash, a control character), is walked.
    """
    if "\\" in source and ("\\u" in source or "\\/" in source):  # (one character is found fastest)
        return False
    if _has_secret_word(source.lower()):
        return False
    for secret in _known():
        if secret in source or any(c in secret for c in '"\\') or any(ord(c) < 32 for c in secret):
            return False
    return True


def lines_are_clean(lines: Iterable[str]) -> bool:
    """Whether no piece of any of ``lines`` can need scrubbing: none holds a word a secret comes
    with or a remembered password (then the strings a reader cuts out of the lines, such as a
    text plan's ``Filter`` values, need no walk).

    A piece is a substring of one line, or two pieces joined with ``"; "`` or ``": "``: no secret
    word holds those, and a remembered password that holds ``;`` or ``:`` or starts or ends with
    a space (it could span a join) makes the lines be walked.
    """
    text = "\n".join(list(lines))
    if _has_secret_word(text.lower()):
        return False
    for secret in _known():
        if secret in text or ";" in secret or ":" in secret or secret != secret.strip():
            return False
    return True


@lru_cache(maxsize=20_000)
def _scrub_sql(text: str) -> str:
    # imported when a text may hold a secret, not at start-up
    from pglast import parser as pg_parser

    try:
        tree = json.loads(pg_parser.parse_sql_json(text))
        tokens = pg_parser.scan(text)
    except (pg_parser.ParseError, ValueError, RecursionError):
        return _scrub_sql_pattern(text)
    try:
        return _scrub_parsed(text, tree, tokens)
    except Exception:  # noqa: BLE001 - an unexpected tree: the pattern, which masks more
        return _scrub_sql_pattern(text)


def _scrub_parsed(text: str, tree: dict, tokens) -> str:
    """Splice ``'***'`` (or the constant with its connection string's password masked) in place of each secret."""
    data = text.encode("utf-8")
    secret_at: set[int] = set()  # byte locations of secret string constants (or of what leads to one)
    _walk(tree, secret_at)
    ascii_only = len(data) == len(text)

    def char_offset(location: int) -> int:
        return location if ascii_only else len(data[:location].decode("utf-8", "replace"))

    strings = [(t.start, t.end) for t in tokens if t.name in ("SCONST", "USCONST")]
    masked: dict[int, str] = {}
    for location in secret_at:
        offset = char_offset(location)
        token = next(((start, end) for start, end in strings if start >= offset), None)
        if token:
            masked[token[0]] = f"'{MASK}'"
    replacements = []
    for token in tokens:
        start, end = token.start, token.end + 1
        if token.name in ("SCONST", "USCONST"):
            if start in masked:
                replacements.append((start, end, masked[start]))
                continue
            raw = text[start:end]
            if _MAY_HOLD_CONNINFO.search(raw):
                value = _string_value(raw)
                scrubbed = redact_text(value) if value is not None else None
                if value is None:
                    replacements.append((start, end, _scrub_sql_pattern(raw)))
                elif scrubbed != value:
                    replacements.append((start, end, "'" + scrubbed.replace("'", "''") + "'"))
        elif token.name in ("C_COMMENT", "SQL_COMMENT") and _MAY_HOLD_CONNINFO.search(text[start:end]):
            comment = text[start:end]
            scrubbed = _scrub_sql_pattern(redact_text(comment))
            if scrubbed != comment:
                replacements.append((start, end, scrubbed))
    if not replacements:
        return text
    out, position = [], 0
    for start, end, new in sorted(replacements):
        out.append(text[position:start] + new)
        position = end
    out.append(text[position:])
    return "".join(out)


def _string_value(literal: str) -> str | None:
    """The value of one SQL string literal (any quoting), read by PostgreSQL's parser."""
    try:
        from pglast import parser as pg_parser

        stmt = json.loads(pg_parser.parse_sql_json("SELECT " + literal))["stmts"][0]["stmt"]["SelectStmt"]
        const = stmt["targetList"][0]["ResTarget"]["val"]["A_Const"]
        return const["sval"]["sval"]
    except (pg_parser.ParseError, KeyError, IndexError, TypeError, ValueError):
        return None


def _string_const_location(node) -> int | None:
    """Where a string constant (possibly cast: ``'k'::text``) starts, or None."""
    if isinstance(node, dict):
        if "TypeCast" in node:
            return _string_const_location(node["TypeCast"].get("arg"))
        const = node.get("A_Const")
        if isinstance(const, dict) and "sval" in const and "location" in const:
            return int(const["location"])
    return None


def _names_password(node) -> bool:
    """Whether ``node`` is a column reference whose last name holds ``password``."""
    ref = node.get("ColumnRef") if isinstance(node, dict) else None
    if not isinstance(ref, dict):
        return False
    fields = ref.get("fields") or []
    last = fields[-1].get("String", {}).get("sval", "") if fields and isinstance(fields[-1], dict) else ""
    return "passw" in last.lower()


def _walk(node, found: set[int]) -> None:
    """Collect the byte locations of the secret constants under ``node`` (a pglast JSON tree)."""
    for kind, body in parsetree.items(node):
        if isinstance(body, dict):
            if kind == "DefElem" and is_secret_option(str(body.get("defname", ""))) and body.get("arg") is not None:
                where = body.get("arg_location", body.get("location", -1))
                if isinstance(where, int) and where >= 0:
                    found.add(where)
            elif kind == "FuncCall":
                names = body.get("funcname") or []
                name = names[-1].get("String", {}).get("sval", "") if names and isinstance(names[-1], dict) else ""
                args = body.get("args") or []
                for position in SECRET_ARGUMENTS.get(name.lower(), ()):
                    where = _string_const_location(args[position]) if position < len(args) else None
                    if where is not None:
                        found.add(where)
            elif kind == "A_Expr":
                left, right = body.get("lexpr"), body.get("rexpr")
                for column, other in ((left, right), (right, left)):
                    if _names_password(column):
                        values = other.get("List", {}).get("items", []) if isinstance(other, dict) and "List" in other else [other]
                        for value in values:
                            where = _string_const_location(value)
                            if where is not None:
                                found.add(where)
            elif kind == "ResTarget" and "passw" in str(body.get("name", "")).lower():
                where = _string_const_location(body.get("val"))
                if where is not None:
                    found.add(where)
            elif kind == "InsertStmt":
                _insert_passwords(body, found)


def _insert_passwords(insert: dict, found: set[int]) -> None:
    """``INSERT INTO t (..., password, ...) VALUES (..., '...', ...)``: the password column's constants."""
    columns = [str(c.get("ResTarget", {}).get("name", "")) for c in insert.get("cols") or []]
    positions = [i for i, name in enumerate(columns) if "passw" in name.lower()]
    select = (insert.get("selectStmt") or {}).get("SelectStmt") or {}
    if not positions:
        return
    for row in select.get("valuesLists") or []:
        items = row.get("List", {}).get("items", []) if isinstance(row, dict) else []
        for position in positions:
            where = _string_const_location(items[position]) if position < len(items) else None
            if where is not None:
                found.add(where)


def _scrub_sql_pattern(text: str) -> str:
    """The fallback for text that does not parse: masks more than the parser would, never less."""
    # 1. every string constant in the argument list of a pgcrypto call (to its closing parenthesis)
    if _SECRET_FUNCTION_CALL.search(text):
        out, position = [], 0
        for match in _SECRET_FUNCTION_CALL.finditer(text):
            if match.start() < position:
                continue
            end = _closing_parenthesis(text, match.end())
            inside = _SQL_LITERAL.sub(f"'{MASK}'", text[match.end():end])
            out.append(text[position:match.end()] + inside)
            position = end
        out.append(text[position:])
        text = "".join(out)
    # 2. the value after a password label (PASSWORD '...', password=..., "password" '...')
    out, position = [], 0
    for match in _SQL_LABEL.finditer(text):
        if match.start() < position:
            continue
        start = match.end()
        if start >= len(text) or text.startswith((MASK, f"'{MASK}'"), start) or text[start].isspace():
            continue
        if text[start] in "eE" and text[start + 1: start + 2] == "'":
            start += 1
        if text[start] == "'" and text[start: start + 2] != "''":
            end = _labelled_value_end(text, start)
            out.append(text[position:start] + f"'{MASK}'")
        elif text[start: start + 2] == "''":  # a quoted value inside a string constant
            close = text.find("''", start + 2)
            end = len(text) if close < 0 else close + 2
            out.append(text[position:start] + MASK)
        else:  # unquoted: to white space or the end of the string constant
            end = start
            while end < len(text) and not text[end].isspace() and text[end] not in "',;)":
                end += 2 if text[end] == "\\" else 1
            end = min(end, len(text))
            out.append(text[position:start] + MASK)
        position = end
    out.append(text[position:])
    text = "".join(out)
    # 3. the passwords of URLs
    spans = _urls(text)
    if spans:
        out, position = [], 0
        for start, end in spans:
            out.append(text[position:start] + _mask_url(text[start:end]))
            position = end
        out.append(text[position:])
        text = "".join(out)
    return text


def _closing_parenthesis(text: str, start: int) -> int:
    """Where the parenthesis opened just before ``start`` closes (string constants skipped), or the end."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "'":
            match = _SQL_LITERAL.match(text, i)
            i = match.end() if match else len(text)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text)
