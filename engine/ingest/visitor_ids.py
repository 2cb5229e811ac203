"""Visitor ids: the engine's own random ids, and nothing else.

A visitor id is what the `clickstream_vid` cookie proves, so it must be unguessable:
a version-4 UUID (122 random bits), as the tracker's `crypto.randomUUID()` and the
collector make them, in the canonical form with dashes or as 32 hex digits. Anything
else (`12345`, an e-mail address, a user id) is never taken for a visitor id.
"""

from __future__ import annotations

import re
import uuid

_DASHES = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_HEX = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")


def is_visitor_id(value: object) -> bool:
    """True for a lower-case v4 UUID, with dashes in all four places or none."""
    return isinstance(value, str) and (
        len(value) == 36
        and _DASHES.fullmatch(value) is not None
        or len(value) == 32
        and _HEX.fullmatch(value) is not None
    )


def new_visitor_id() -> str:
    return str(uuid.uuid4())
