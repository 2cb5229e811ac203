"""Event builders for tests: the dicts the tracker and the shop send, as the engine reads them.

Each builder returns one event. `event_id` and `session_id` are a literal, a template filled from the
builder's arguments and the event's fields (`"v-{vid}-{item}-{ts}"`), a callable giving a fresh value
(`new_id`), or None to leave the key out. Optional parts (a price, a category, a revenue) are left out
unless asked for, so a test's events carry exactly the fields it names. Extra keyword fields land on the
event itself.
"""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh event id per event: for tests where no two events may share one."""
    return uuid.uuid4().hex


def _fill(value, names):
    if value is None:
        return None
    if callable(value):
        return value()
    return value.format(**names)


def event(kind, vid, ts, props=None, *, event_id=None, session_id=None, names=None, **fields):
    """Any event: its type, visitor, time and props, with an id and a session when given."""
    names = {"vid": vid, "ts": ts, **fields, **(names or {})}
    out = {}
    if (filled := _fill(event_id, names)) is not None:
        out["event_id"] = filled
    out.update(type=kind, visitor_id=vid)
    if (filled := _fill(session_id, names)) is not None:
        out["session_id"] = filled
    out.update(ts=ts, props={} if props is None else props)
    out.update(fields)
    return out


def _category(category, item):
    return category(item) if callable(category) else category


def line(item, *, price=None, category=None):
    """One order line, qty 1; `category` is a name or a function of the item."""
    out = {"id": item, "qty": 1}
    if price is not None:
        out["price"] = price
    if category is not None:
        out["category"] = _category(category, item)
    return out


def purchase(
    vid,
    order_id,
    items,
    ts,
    *,
    price=None,
    category=None,
    revenue=None,
    total=False,
    event_id="e-{order_id}",
    session_id=None,
    **fields,
):
    """An order of `items` (one each); `total=True` makes the revenue the sum of the line prices."""
    lines = [line(i, price=price, category=category) for i in items]
    order = {"id": order_id}
    if total:
        revenue = float(sum(entry["price"] for entry in lines))
    if revenue is not None:
        order["revenue"] = revenue
    order["items"] = lines
    return event(
        "purchase",
        vid,
        ts,
        {"order": order},
        event_id=event_id,
        session_id=session_id,
        names={"order_id": order_id},
        **fields,
    )


def product_view(
    vid, item, ts, *, category=None, event_id="v-{vid}-{session_id}-{item}-{ts}", session_id=None, **fields
):
    """A product page seen; `category` is a name or a function of the item."""
    product = {"id": item}
    if category is not None:
        product["category"] = _category(category, item)
    return event(
        "product_view",
        vid,
        ts,
        {"product": product},
        event_id=event_id,
        session_id=session_id,
        names={"item": item, "session_id": session_id},
        **fields,
    )


def page_view(vid, ts, url="/", *, event_id="{vid}-view-{ts}", session_id=None, **fields):
    return event("page_view", vid, ts, event_id=event_id, session_id=session_id, url=url, **fields)


def identify(vid, uid, ts, *, traits=None, verified=True, event_id="{vid}-{uid}-{ts}", session_id=None, **fields):
    """A login: verified unless told otherwise, with traits only when given."""
    props = {} if traits is None else {"traits": traits}
    return event(
        "identify",
        vid,
        ts,
        props,
        event_id=event_id,
        session_id=session_id,
        names={"uid": uid},
        user_id=uid,
        verified=verified,
        **fields,
    )


def consent(vid, ts, *, event_id="c-{vid}-{ts}", session_id=None, **choices):
    """Consent choices, by purpose: `consent(vid, ts, analytics=False)`."""
    return event("consent", vid, ts, {"consent": choices}, event_id=event_id, session_id=session_id)
