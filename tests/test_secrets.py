"""perfkit.secrets: DSN passwords masked where they stand; short or common ones left in free text."""

from __future__ import annotations

import argparse
import json

import pytest

from perfkit import db, secrets

LONG = "xK9#mQ2vL8-pR4zT"  # a password as a generator makes one


@pytest.fixture(autouse=True)
def no_remembered_passwords(monkeypatch):
    """Each test starts with nothing remembered and no $PGPASSWORD."""
    monkeypatch.setattr(secrets, "_REMEMBERED", set())
    monkeypatch.delenv("PGPASSWORD", raising=False)


# (DSN, what it shows): a password is masked where it stands as one, whatever its length
DSNS = [
    ("postgresql://postgres:postgres@db/shop", "postgresql://postgres:***@db/shop"),
    ("postgres://app:pw@db:5432/shop", "postgres://app:***@db:5432/shop"),
    ("postgresql+psycopg://app:s3cr3t-Pw@db/shop", "postgresql+psycopg://app:***@db/shop"),
    ("postgresql://app:p%40ss%20w%27rd-9Zq@db/shop", "postgresql://app:***@db/shop"),
    ("postgresql://db/shop?user=app&password=s3cr3t-Pw&sslmode=require",
     "postgresql://db/shop?user=app&password=***&sslmode=require"),
    ("postgresql://app@db/shop?pass%77ord=x&application_name=a", "postgresql://app@db/shop?pass%77ord=***&application_name=a"),
    ("postgresql://app:pa?ss@db/shop", "postgresql://app:***@db/shop"),
    ("postgresql://app:pa/ss@db/shop", secrets.MALFORMED),  # libpq misreads it: never echoed
    ("postgresql://app@db:5432/shop", "postgresql://app@db:5432/shop"),
    ("host=db user=app password=s3cr3t-Pw dbname=shop", "host=db user=app password=*** dbname=shop"),
    ("host=db password = root dbname=shop", "host=db password = *** dbname=shop"),
    ("host=db password='s3 cr3t Pw' dbname=shop", "host=db password=*** dbname=shop"),
    (r"host=db password='it\'s a \\ \"secret\"' dbname=shop", "host=db password=*** dbname=shop"),
    ("host=db user=app sslpassword=keypass dbname=shop", "host=db user=app sslpassword=*** dbname=shop"),
]


@pytest.mark.parametrize("dsn, shown", DSNS)
def test_a_password_is_masked_where_it_stands_as_one(dsn, shown):
    assert secrets.redact(dsn) == shown
    assert db.redact(dsn) == shown  # db keeps the name its callers use
    secrets.remember(dsn)
    assert secrets.redact(dsn) == shown  # remembering it changes nothing in the DSN itself


@pytest.mark.parametrize("dsn, password", [
    ("postgresql://app:p%40ss%20w%27rd-9Zq@db/shop", "p@ss w'rd-9Zq"),
    ("postgresql://db/shop?user=app&password=a%26b%3Dc-long", "a&b=c-long"),
    (r"host=db password='it\'s a \\ secret' dbname=shop", "it's a \\ secret"),
    ("postgresql+psycopg://app:s3cr3t-Pw@db/shop", "s3cr3t-Pw"),
    ("host=db dbname=shop", None),
    ("not a dsn", None),
])
def test_the_password_is_read_by_libpq_decoded(dsn, password):
    assert secrets.password_of(dsn) == password


def test_a_common_password_is_not_scrubbed_out_of_unrelated_words():
    db.resolve_dsn("postgresql://postgres:postgres@db/shop")  # remembered, as every command does
    assert db.redact("postgresql://postgres:postgres@db/shop") == "postgresql://postgres:***@db/shop"
    assert db.redact_text("running on postgres 16") == "running on postgres 16"
    assert db.redact_text('FATAL: role "postgres" does not exist') == 'FATAL: role "postgres" does not exist'


@pytest.mark.parametrize("password", ["pw", "s3cr3t", "test", "admin", "root", "changeme", "Password", "postgres", "secret"])
def test_a_short_or_common_password_is_masked_only_as_a_password(password):
    secrets.remember(f"postgresql://app:{password}@db/shop")
    text = f"connecting with {password} as {password}"
    assert secrets.redact_text(text) == text
    assert secrets.redact_text(f"password={password} and PGPASSWORD={password}") == "password=*** and PGPASSWORD=***"
    assert not secrets.masked_in_free_text(password)


def test_a_long_password_is_masked_as_a_whole_token_in_free_text():
    secrets.remember(f"host=db user=app password='{LONG}'")
    line = f'  File "x.py", line 3, in <module>\n    connect(user="app", secret="{LONG}")\npsycopg.OperationalError: {LONG} rejected'
    shown = secrets.redact_text(line)
    assert LONG not in shown
    assert shown.count("***") == 2 and 'File "x.py", line 3' in shown
    glued = f"id_{LONG}x"  # not the password as a token: another word that contains it
    assert secrets.redact_text(glued) == glued


def test_the_decoded_password_of_a_url_is_masked_in_text_too():
    secrets.remember("postgresql://app:p%40ss%20word-9Zq@db/shop")
    assert secrets.redact_text("auth failed for p@ss word-9Zq.") == "auth failed for ***."
    assert secrets.redact_text("still encoded: p%40ss%20word-9Zq") == "still encoded: ***"


def test_pgpassword_is_masked_without_being_remembered(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", LONG)
    assert secrets.redact_text(f"x {LONG} y") == "x *** y"
    assert secrets.passwords_in(None) == {LONG}


@pytest.mark.parametrize("dsn, shown, user", [
    ("postgresql://Adm1n-Longname:Adm1n-Longname@db/shop", "postgresql://Adm1n-Longname:***@db/shop", "Adm1n-Longname"),
    ("postgresql://postgres:postgres@db/postgres", "postgresql://postgres:***@db/postgres", "postgres"),
    ("user=Adm1n-Longname password=Adm1n-Longname host=db", "user=Adm1n-Longname password=*** host=db", "Adm1n-Longname"),
])
def test_a_user_named_like_its_password_keeps_the_user(dsn, shown, user):
    secrets.remember(dsn)
    assert secrets.redact(dsn) == shown
    assert secrets.describe(dsn).startswith(f"{user}@db:5432/")


def test_dsns_inside_free_text_and_sql():
    secrets.remember(f"postgresql://u:{LONG}@h/db")
    text = f"could not connect (postgresql://u:{LONG}@h/db); retry with 'postgresql://u:{LONG}@h/db'"
    assert secrets.redact_text(text) == "could not connect (postgresql://u:***@h/db); retry with 'postgresql://u:***@h/db'"
    assert secrets.redact_text("ALTER ROLE app LOGIN PASSWORD 'it''s' VALID UNTIL 'x'") == (
        "ALTER ROLE app LOGIN PASSWORD *** VALID UNTIL 'x'")
    assert secrets.redact_text('{"password": "pw", "user": "app"}') == '{"password": ***, "user": "app"}'
    assert secrets.redact_text('FATAL: password authentication failed for user "app"') == (
        'FATAL: password authentication failed for user "app"')


def test_redact_all_masks_nested_values_and_password_keys():
    nested = {"a": [f"see postgresql://u:pw@h/db and {LONG}", {"password": "pw", "b": f"x {LONG} y"}], "n": 3}
    masked = secrets.redact_all(nested, {LONG})
    assert masked == {"a": ["see postgresql://u:***@h/db and ***", {"password": "***", "b": "x *** y"}], "n": 3}
    assert LONG not in json.dumps(masked)


def test_describe_never_shows_the_password():
    assert secrets.describe(f"postgresql://app:{LONG}@db:5433/shop") == "app@db:5433/shop"
    assert secrets.describe(f"host=db user=app password={LONG}") == "app@db:5432/app"


def test_a_crash_traceback_from_the_cli_is_redacted(monkeypatch, capsys, tmp_path):
    """The CLI's last resort (an unexpected exception) prints the traceback through perfkit.secrets."""
    from perfkit import cli

    def boom(args):
        raise RuntimeError(f"lost postgresql://app:{LONG}@db/shop as {LONG} on postgres 16")

    class Parser:
        def __init__(self, argv=None):
            pass

        def parse_args(self, argv):
            return argparse.Namespace(func=boom)

    db.resolve_dsn(f"postgresql://app:{LONG}@db/shop")
    monkeypatch.setattr(cli, "build_parser", Parser)
    monkeypatch.setenv("PERFKIT_CRASH_DIR", str(tmp_path))
    assert cli.main([]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "RuntimeError" in err and LONG not in err
    saved = next(tmp_path.glob("perfkit-crash-*.txt"))
    assert str(saved) in err and (saved.stat().st_mode & 0o777) == 0o600
    text = saved.read_text()
    assert "Traceback" in text and LONG not in text
    assert "postgresql://app:***@db/shop as *** on postgres 16" in text


def test_environment_style_password_assignments_are_masked():
    from perfkit.secrets import redact_text

    for text in ("DB_PASSWORD=hunter2-long k6 run script.js", "POSTGRES_PASSWORD=abc123xyz ./load.sh"):
        assert "hunter2-long" not in redact_text(text) and "abc123xyz" not in redact_text(text)
    assert redact_text("my_passwordless=1") == "my_passwordless=1"
