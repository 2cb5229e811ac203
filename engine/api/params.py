"""Query parameters, checked: errors name the parameter (400)."""

from __future__ import annotations

import re

from starlette.requests import Request

from engine.errors import InvalidInput

_NUMBER = re.compile(r"[0-9]{1,6}")  # not str.isdigit: it accepts '²', which int() refuses


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidInput(f"{name}: expected a number from {low} to {high}", {"got": raw[:64]})
    return int(raw)


def text_param(request: Request, name: str, max_len: int, required: bool = False) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidInput(f"{name}: is required")
        return None
    if len(raw) > max_len:
        raise InvalidInput(f"{name}: longer than {max_len} characters")
    return raw
