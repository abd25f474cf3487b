"""Log timestamps (``2024-05-01 12:00:00.123 UTC``, ``+02``, epoch seconds) turned into UTC.

``to_utc(texts, epochs)`` returns a tz-aware UTC Series; unknown zone names raise BadInputError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perfkit.errors import BadInputError

# Unambiguous zone abbreviations PostgreSQL prints with log_timezone, as hours east of UTC.
# Ambiguous ones (CST: US or China, IST: India, Ireland or Israel...) need ``timezone=``.
ZONE_OFFSETS_H = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2,
    "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10,
    "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5, "ACDT": 10.5,
    "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13, "SAST": 2, "WIB": 7, "PKT": 5,
}

_UNIVERSAL = frozenset({"UTC", "GMT", "UT", "Z"})
# daylight-saving abbreviations that do not end in DT
_DAYLIGHT = frozenset({"BST", "IST", "CEST", "EEST", "WEST", "MEST", "AEDT", "ACDT", "NZDT", "IDT"})


def _offset_hours(zone: str) -> float | None:
    """Hours east of UTC of a zone written as ``UTC``, ``+02``, ``-0330`` or ``+05:30``."""
    if zone in ZONE_OFFSETS_H:
        return float(ZONE_OFFSETS_H[zone])
    if zone[:1] in "+-" and len(zone) > 1:
        digits = zone[1:].replace(":", "")
        if digits.isdigit() and len(digits) in (1, 2, 4):
            hours = int(digits[:2]) if len(digits) >= 2 else int(digits)
            minutes = int(digits[2:]) if len(digits) == 4 else 0
            sign = -1 if zone[0] == "-" else 1
            return sign * (hours + minutes / 60)
    return None


def to_utc(
    texts: pd.Series,
    epochs: pd.Series | None = None,
    *,
    timezone: str | None = None,
    path: str | Path | None = None,
    strict: bool = False,
) -> pd.Series:
    """Timestamps as a ``datetime64[ns, UTC]`` Series.

    Parameters
    ----------
    texts:
        Timestamps as PostgreSQL logs them (``%m``/``%t``, csvlog, jsonlog); None where absent.
    epochs:
        Unix epoch seconds (``%n``), used where ``texts`` is missing.
    timezone:
        The server's ``log_timezone`` (an IANA name), for timestamps whose zone is an
        ambiguous abbreviation or absent.
    path:
        The file, for error messages.
    strict:
        Raise for any zone that cannot be placed (by default a zone seen on a few damaged
        entries only gives NaT there): for timestamps already counted, one per minute.

    Raises
    ------
    BadInputError
        A zone abbreviation perfkit cannot place and no ``timezone``. Text that is not a
        timestamp gives NaT (see :func:`unreadable`).
    """
    result = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns, UTC]")
    if epochs is not None:
        seconds = pd.to_numeric(epochs, errors="coerce")
        has_epoch = seconds.notna()
        if has_epoch.any():
            result[has_epoch] = pd.to_datetime(seconds[has_epoch], unit="s", utc=True)
    present = texts.notna() & (texts.astype("string").str.len() > 0)
    if not present.any():
        return result
    parts = texts[present].astype("string").str.extract(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: ([A-Za-z]{1,6}|[+-]\d{1,4}|[+-]\d{2}:\d{2}))?$")
    local = pd.to_datetime(parts[0], format="ISO8601", errors="coerce")
    zones = parts[1].fillna("")[local.notna()]
    local = local[local.notna()]
    for zone in zones.unique():
        rows = zones == zone
        offset = _offset_hours(zone) if zone and not (timezone and zone.isalpha() and zone not in _UNIVERSAL) else None
        if offset is not None:
            values = (local[rows] - pd.Timedelta(hours=offset)).dt.tz_localize("UTC")
        elif timezone:
            # the abbreviation says which of a repeated hour it is: CDT daylight, CST standard
            daylight = zone.upper().endswith("DT") or zone.upper() in _DAYLIGHT
            try:
                values = local[rows].dt.tz_localize(
                    timezone, ambiguous=np.full(int(rows.sum()), daylight) if zone else "NaT",
                    nonexistent="shift_forward").dt.tz_convert("UTC")
            except Exception as err:  # an unknown IANA name
                raise BadInputError(f"timezone {timezone!r} is not a time zone name ({err})") from None
        elif not zone:
            values = local[rows].dt.tz_localize("UTC")
        elif not strict and int(rows.sum()) * 2 <= len(local):
            continue  # a zone seen in a few damaged entries only: those stay NaT (unreadable)
        else:
            raise BadInputError(
                f"timestamps carry the zone {zone!r}, which perfkit cannot place unambiguously; "
                "pass the server's log_timezone (e.g. timezone='America/Chicago'), "
                "or set log_timezone = 'UTC' on the server",
                path=path,
            )
        result.loc[values.index] = values
    return result


def unreadable(texts: pd.Series, epochs: pd.Series | None, converted: pd.Series) -> pd.Series:
    """True where a timestamp was given (as text or epoch) but could not be read."""
    given = texts.notna() & (texts.astype("string").str.len() > 0)
    if epochs is not None:
        given |= epochs.notna()
    return given & converted.isna()
