"""Property: whatever the event schema accepts, the fold, the store and the renderer handle.

The events are generated from the schema itself: a walk over msgspec's view of each
declared Struct builds the strategies (every field, optional ones present or not,
the bounds of each type, unknown keys wherever the schema keeps them), the free
form parts (`Any`) get whatever engine.ingest.jsondoc lets through, and a part the schema
checks in code (a preference document) what that check takes. Each batch goes
the collector's way (JSON bytes, parse_body, collect), then through the fold on a new
and on a busy profile, the store's packing, the merge of a person and strict JSON.
"""

import json
import math
import re

import msgspec.inspect as mi
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from starlette.responses import JSONResponse

from engine.stream import codec
from engine.ingest import jsondoc, schema
from engine.ingest.collector import RequestInfo, collect, parse_body
from engine.profiles.identity import merge
from engine.profiles.model import apply_event, fold, interest_scores, new_profile
from engine.profiles.store import pack_profile, unpack_profile

NOW = schema.LATEST_TS  # the declared bound; the clock check is the collector's
EXTRA_KEYS = 2

text = st.text(max_size=12)  # full Unicode but surrogates, which JSON cannot carry as text
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(jsondoc.INT_MIN, jsondoc.INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=10
)


def strategy(info: mi.Type) -> st.SearchStrategy:
    """Values of the declared type, its edges included."""
    if isinstance(info, mi.StructType):
        return struct_strategy(info)
    if isinstance(info, mi.UnionType):
        return st.one_of([strategy(t) for t in info.types])
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    if isinstance(info, mi.StrType):
        shortest, longest = info.min_length or 0, info.max_length or 4096
        if info.pattern:
            return st.from_regex(info.pattern).filter(lambda s: shortest <= len(s) <= longest)
        return st.text(min_size=shortest, max_size=min(longest, 20)) | st.text(min_size=longest, max_size=longest)
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else jsondoc.INT_MIN
        high = info.le if info.le is not None else jsondoc.INT_MAX
        return st.integers(low, high)
    if isinstance(info, mi.FloatType):  # a JSON integer is a number too
        low = info.ge if info.ge is not None else -1e300
        high = info.le if info.le is not None else 1e300
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(
            math.ceil(low), math.floor(high)
        )
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.AnyType):
        return json_values
    if isinstance(info, mi.ListType):
        return st.lists(strategy(info.item_type), min_size=info.min_length or 0, max_size=min(info.max_length or 4, 4))
    if isinstance(info, mi.DictType):
        return st.dictionaries(strategy(info.key_type), strategy(info.value_type), max_size=4)
    raise TypeError(f"no strategy for {info!r}: declare it here when the schema starts using it")


# Fields declared free form whose content the schema checks in code: what it takes there.
_PLAIN_KEYS = text.filter(lambda k: k not in ("show", "hide", "language", "do_not_personalize"))
CHECKED_IN_CODE = {
    (schema.PreferenceProps, "preferences"): st.builds(
        lambda named, custom: {**custom, **named},
        st.fixed_dictionaries(
            {},
            optional={
                "show": st.lists(st.text(min_size=1, max_size=64), max_size=3),
                "hide": st.lists(st.text(min_size=1, max_size=64), max_size=3),
                "language": st.text(min_size=2, max_size=16),
                "do_not_personalize": st.booleans(),
            },
        ),
        st.dictionaries(_PLAIN_KEYS, json_leaves, max_size=2),
    ),
}


def struct_strategy(info: mi.StructType) -> st.SearchStrategy:
    """Its required fields, any of the optional ones, and unknown keys (kept where the schema keeps them)."""
    fields = {f.encode_name: CHECKED_IN_CODE.get((info.cls, f.encode_name)) or strategy(f.type) for f in info.fields}
    required = {name for f in info.fields if f.required for name in [f.encode_name]}
    unknown = st.dictionaries(text.filter(lambda k: k not in fields), json_values, max_size=EXTRA_KEYS)
    # `one_of`: the struct's own rule that at least one of these optional fields is present.
    musts = [required | {name} for name in getattr(info.cls, "one_of", ())] or [required]
    known = st.one_of(
        [
            st.fixed_dictionaries(
                {k: v for k, v in fields.items() if k in must},
                optional={k: v for k, v in fields.items() if k not in must},
            )
            for must in musts
        ]
    )
    return st.builds(lambda known, extra: {**extra, **known}, known, unknown)


SCHEMAS = sorted({schema.Event, *schema.SCHEMAS.values()}, key=lambda s: s.__name__)
# A visitor_id the schema takes is also one the collector's trust check takes: the engine's own form.
events = st.builds(
    lambda e, vid: {**e, "visitor_id": str(vid)} if "visitor_id" in e else e,
    st.one_of([strategy(mi.type_info(s)) for s in SCHEMAS]),
    st.uuids(version=4),
)


def busy_profile() -> dict:
    ts = schema.EARLIEST_TS + 86_400_000
    raw = [
        {"type": "page_view", "session_id": "s1", "url": "/", "title": "Home", "ts": ts},
        {
            "type": "product_view",
            "session_id": "s1",
            "ts": ts + 1,
            "props": {"product": {"id": "a", "category": "shoes", "price": 10}},
        },
        {"type": "add_to_cart", "ts": ts + 2, "props": {"product": {"id": "a", "category": "shoes"}, "qty": 2}},
        {
            "type": "purchase",
            "ts": ts + 3,
            "props": {"order": {"id": "o1", "items": [{"id": "a", "qty": 2, "price": 10, "category": "shoes"}]}},
        },
        {"type": "identify", "user_id": "u1", "ts": ts + 4, "props": {"traits": {"plan": "gold", "age": 40}}},
        {"type": "page_ping", "ts": ts + 5, "props": {"engaged_ms": 5000}},
        {"type": "consent", "ts": ts + 6, "props": {"consent": {"analytics": True}}},
    ]
    checked = [schema.validate_event(e, now_ms=NOW, new_id=lambda: "busy", visitor_id="busy") for e in raw]
    return fold(new_profile("busy"), checked)


BUSY = busy_profile()
COOKIE = "0f8b2c9e-4d1a-4c3b-9e7f-2a6d5b8c1e04"  # an engine-issued visitor id


def strict_json(value) -> None:
    json.dumps(value, allow_nan=False)
    JSONResponse(value).body  # Starlette's renderer: UTF-8, no NaN


def stored(profile: dict) -> dict:
    again = unpack_profile(pack_profile(profile))
    assert again == profile
    return again


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(events, min_size=1, max_size=4))
def test_every_event_the_schema_declares_is_accepted_folded_stored_merged_and_rendered(raw_events):
    body = json.dumps({"events": raw_events}, ensure_ascii=False, allow_nan=False).encode()
    # A back end's request (trusted): every type the schema declares is taken, identify and purchase included.
    info = RequestInfo(received_at=NOW, visitor_id=COOKIE, user_agent="UA", ip="203.0.113.0", trusted=True)
    batch = collect(parse_body(body), info, max_events=500, new_id=lambda: "generated")
    assert batch.rejected == []
    assert len(batch.accepted) == len(raw_events)
    strict_json({"accepted": len(batch.accepted), "rejected": batch.rejected})

    decoded = [codec.decode(blob) for blob in batch.encoded]
    assert decoded == batch.accepted
    fresh = stored(fold(new_profile(decoded[0]["visitor_id"]), decoded))
    busy = stored(fold(unpack_profile(pack_profile(BUSY)), decoded))
    for event in decoded:
        stored(apply_event(new_profile(event["visitor_id"]), event))
    person = stored(merge(fresh, busy))
    for profile in (fresh, busy, person):
        strict_json(profile)
        strict_json(interest_scores(profile, NOW))


def test_the_generator_reaches_every_event_type():
    """Each type's Struct (the one the generator walks) declares that type, and only its own."""

    def type_field(struct):
        return next(f.type for f in mi.type_info(struct).fields if f.name == "type")

    for kind in schema.EVENT_TYPES:
        declared = type_field(schema.SCHEMAS.get(kind, schema.Event))
        if isinstance(declared, mi.LiteralType):
            assert kind in declared.values
            assert all(schema.SCHEMAS[value] is schema.SCHEMAS[kind] for value in declared.values)
        else:
            assert re.search(declared.pattern, kind) and kind not in schema.SCHEMAS
