"""Which user ids may identify a person: placeholders a site sends for nobody never do. Pure."""

from __future__ import annotations

from typing import Iterable

NEVER_IDENTITIES = frozenset(
    {"", "null", "none", "undefined", "nil", "guest", "anonymous", "anon", "0", "-1", "unknown", "nan"}
)


def is_identity_id(user_id: object, blocked: Iterable[str] = ()) -> bool:
    """False for placeholder ids that would merge strangers into one profile."""
    if not isinstance(user_id, str):
        return False
    normalized = user_id.strip().lower()
    return normalized not in NEVER_IDENTITIES and normalized not in {b.strip().lower() for b in blocked}
