"""The no-JS pixel: an event from the query parameters of GET /v1/pixel.gif. Pure.

Values are strings, except `ts` when it is written in ASCII digits (`'²'.isdigit()`
is true, and int() of 5,000 digits raises): anything else stays a string for the
schema to refuse by name. `props.X=...` parameters become `props: {X: ...}`.
"""

from __future__ import annotations

from typing import Mapping

INT_FIELDS = ("ts",)
INT_DIGITS_MAX = 18  # below int64; a timestamp has 13


def event_from_query(params: Mapping[str, str]) -> dict:
    event: dict = {}
    props: dict = {}
    for key, value in params.items():
        if key in INT_FIELDS and _is_ascii_integer(value):
            event[key] = int(value)
        elif key.startswith("props."):
            props[key[len("props.") :]] = value
        else:
            event[key] = value
    if props:
        event["props"] = props
    return event


def _is_ascii_integer(text: str) -> bool:
    digits = text[1:] if text[:1] == "-" else text
    return 0 < len(digits) <= INT_DIGITS_MAX and digits.isascii() and digits.isdigit()
