"""The subcommands of ``perfkit``: one module each, with ``register(subparsers)``.

Shared option helpers live here so every command spells ``--dsn`` and ``--json`` the same way.
"""

from __future__ import annotations

import argparse


def add_dsn_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        required=False,
        help="libpq connection string or postgresql:// URL "
        "(default: $PERFKIT_DSN, then the libpq PG* variables)",
    )
    parser.add_argument(
        "--statement-timeout",
        default="30s",
        metavar="DURATION",
        help="statement_timeout for perfkit's session (default: 30s)",
    )
    parser.add_argument(
        "--lock-timeout",
        default="5s",
        metavar="DURATION",
        help="lock_timeout for perfkit's session (default: 5s)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def engine_from_args(args: argparse.Namespace, *, retries: int = 0):
    """A read-only perfkit engine from the --dsn / timeout options (``retries``: for scheduled
    runs, one more try after a pause when the server is unreachable)."""
    from perfkit import db

    return db.connect(
        args.dsn,
        statement_timeout=args.statement_timeout,
        lock_timeout=args.lock_timeout,
        retries=retries,
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value
