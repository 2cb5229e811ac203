"""The no-JS pixel's query string as an event. Pure."""

from __future__ import annotations

import re
from typing import Mapping

INT_FIELDS = ("ts",)
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: str.isdigit() also takes '²'


def event_from_query(params: Mapping[str, str]) -> dict:
    """`type=page_view&url=...&props.k=v`: fields as given, `props.*` into props, `ts` as an integer."""
    event: dict = {}
    props: dict = {}
    for key, value in params.items():
        if key in INT_FIELDS and _INTEGER.fullmatch(value):
            event[key] = int(value)
        elif key.startswith("props."):
            props[key[len("props."):]] = value
        else:
            event[key] = value
    if props:
        event["props"] = props
    return event
