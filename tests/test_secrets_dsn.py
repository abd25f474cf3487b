"""Malformed DSNs are never echoed; for any DSN shape and password, no output holds the password."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from perfkit import db, secrets
from perfkit.errors import PerfkitError

PASSWORD = "Secret-9xQ-longer"


@pytest.fixture(autouse=True)
def no_remembered_passwords(monkeypatch):
    monkeypatch.setattr(secrets, "_REMEMBERED", set())
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PERFKIT_DSN", raising=False)


MALFORMED = [
    (f"password {PASSWORD} dbname=x", "without \"=\""),
    (f"user=app {PASSWORD} dbname=x", "without \"=\""),
    ("postgresql://app:p@ss:w/rd%-Secret@localhost/db", "%-escape"),
    (f"postgresql://app:{PASSWORD[:6]}@{PASSWORD[6:]}@localhost/db", "unencoded @"),
    (f"postgresql://app:{PASSWORD[:6]}/{PASSWORD[6:]}@localhost/db", "unencoded @ or /"),
    (f"host=db password='{PASSWORD} dbname=x", "closing quote"),
    (f"postgresql://app:{PASSWORD}@[::1/db", "closing ]"),
]


@pytest.mark.parametrize("dsn, reason", MALFORMED)
def test_a_malformed_dsn_is_never_echoed(dsn, reason):
    with pytest.raises(PerfkitError) as caught:
        db.resolve_dsn(dsn)
    message = str(caught.value)
    assert "the connection string is malformed" in message and reason in message
    for piece in (PASSWORD, PASSWORD[:6], PASSWORD[6:], "p@ss", "w/rd"):
        assert piece not in message
    with pytest.raises(PerfkitError) as caught:
        db.connect(dsn, check=False)
    assert PASSWORD[6:] not in str(caught.value) and PASSWORD[:6] not in str(caught.value)
    assert db.redact(dsn) == secrets.MALFORMED
    assert db.describe(dsn) == secrets.MALFORMED


def test_exact_secrets_are_replaced_before_any_pattern():
    password = "p@ss:w/rd%-Split9"
    text = f"could not connect: postgresql://app:{password}@db/shop"
    shown = secrets.redact_all({"output": text, "nested": [text]}, {password})
    assert "ss:w" not in str(shown) and "rd%" not in str(shown)
    assert shown["output"] == "could not connect: postgresql://app:***@db/shop"


# DSN shapes: a URL (the password percent-encoded, in the user info or ?password=) or key=value
# (quoted, backslash-escaped); {p} is the password as that shape must write it
def url_userinfo(p):
    return f"postgresql://app:{quote(p, safe='')}@127.0.0.1:1/shop?connect_timeout=1"


def url_query(p):
    return f"postgres://127.0.0.1:1/shop?user=app&password={quote(p, safe='')}&connect_timeout=1"


def url_driver(p):
    return f"postgresql+psycopg://app:{quote(p, safe='')}@127.0.0.1:1/shop"


def keyword_quoted(p):
    escaped = p.replace("\\", "\\\\").replace("'", "\\'")
    return f"host=127.0.0.1 port=1 user=app password='{escaped}' dbname=shop connect_timeout=1"


def keyword_bare(p):
    assume(not any(c in p for c in " '\\\t\n") and p[0] != "'")
    return f"host=127.0.0.1 port=1 password={p} user=app dbname=shop connect_timeout=1"


SHAPES = [url_userinfo, url_query, url_driver, keyword_quoted, keyword_bare]
printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=8, max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(password=printable, shape=st.sampled_from(SHAPES))
def test_no_output_of_any_dsn_holds_its_password(password, shape):
    assume(secrets.masked_in_free_text(password) and password.strip() == password)
    dsn = shape(password)
    assume(password not in dsn.replace(password, "", 1))  # the password stands once
    assume(not any(password in word for word in ("127.0.0.1", "shop", "app", "postgresql", "connect_timeout")))
    assert secrets.password_of(dsn) == password
    outputs = [db.redact(dsn), db.describe(dsn), secrets.redact_text(f"error: {dsn}")]
    assert db.resolve_dsn(dsn) == dsn
    forms = {password, quote(password, safe="")}
    for output in outputs:
        assert not any(form in output for form in forms), (dsn, output)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(password=printable, shape=st.sampled_from(SHAPES))
def test_the_error_of_connect_never_holds_the_password(password, shape):
    assume(secrets.masked_in_free_text(password) and password.strip() == password)
    dsn = shape(password)
    assume(password not in dsn.replace(password, "", 1))
    with pytest.raises(PerfkitError) as caught:
        db.connect(dsn, connect_timeout=1)  # port 1: nothing listens
    assert password not in str(caught.value) and quote(password, safe="") not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(password=printable, cut=st.integers(min_value=1, max_value=7))
def test_an_unencoded_password_in_a_url_is_refused_or_masked(password, cut):
    assume(secrets.masked_in_free_text(password))
    dsn = f"postgresql://app:{password}@127.0.0.1:1/shop"
    try:
        db.resolve_dsn(dsn)
    except PerfkitError as err:
        # a piece of the password that libpq could have read as the host: never shown (pieces shorter
        # than 4 characters, such as "@", can be in the message's own words)
        piece = password[cut:]
        assert password not in str(err) and (len(piece) < 4 or piece not in str(err))
        return
    assert password not in db.redact(dsn) and password not in db.describe(dsn)
