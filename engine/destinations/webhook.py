"""What a webhook delivery is, pure: the body, its signature, which answers to retry.

A delivery POSTs one outbox record as JSON with these headers:
    X-Clickstream-Delivery   the delivery id: destination name and outbox entry id, the same
                             on every attempt (the receiver de-duplicates on it: at least once)
    Idempotency-Key          the same id, under the name many receivers already honour
    X-Clickstream-Signature  sha256=<hex HMAC-SHA256(secret, body)>
The receiver checks the signature with `verify` (constant-time compare) before trusting it.
"""

from __future__ import annotations

import hashlib
import hmac
import json

SIGNATURE_HEADER = "X-Clickstream-Signature"
DELIVERY_HEADER = "X-Clickstream-Delivery"
CHANGE_FIELDS = ("segment", "person", "change", "at", "score", "reason")
ALERT_FIELDS = ("kind", "person", "item", "at", "old_price", "new_price")  # prices: price_drop only


def record(fields: dict[bytes, bytes]) -> dict:
    """An outbox stream entry as a change or alert record (numbers as numbers)."""
    out = {k.decode(): v.decode() for k, v in fields.items()}
    if "at" in out:
        out["at"] = int(out["at"])
    for number in ("score", "old_price", "new_price"):
        if number in out:
            out[number] = float(out[number])
    return out


def delivery_id(destination: str, entry_id: str) -> str:
    return f"{destination}:{entry_id}"


def body(change: dict, delivery: str, traits: dict | None = None) -> bytes:
    fields = ALERT_FIELDS if "kind" in change else CHANGE_FIELDS
    document = {"id": delivery, **{f: change[f] for f in fields if f in change}}
    if traits:
        document["traits"] = traits
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(secret: str, payload: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(signature(secret, payload), header)


def headers(secret: str, payload: bytes, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, payload),
        DELIVERY_HEADER: delivery,
        "Idempotency-Key": delivery,
        "User-Agent": "clickstream-engine-webhook/1",
    }


def retryable(status: int) -> bool:
    """Server errors, timeouts and throttling are worth another try; other 4xx answers will not change."""
    return status >= 500 or status in (408, 425, 429)


MARKETING_TRAITS = ("email", "first_name", "language")


def marketing_traits(person: dict | None) -> dict:
    traits = (person or {}).get("traits") or {}
    return {k: traits[k] for k in MARKETING_TRAITS if isinstance(traits.get(k), (str, int, float))}


def has_marketing_consent(person: dict | None) -> bool:
    """Only an explicit yes: marketing is never assumed (unlike analytics' configurable default)."""
    return bool(person) and (person.get("consent") or {}).get("marketing") is True
