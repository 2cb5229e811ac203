import json
import math

import msgpack
import pytest
from hypothesis import given, strategies as st

from engine.profiles.identity import merge
from engine.profiles.model import MONEY_MAX, PAGES_KEPT, PING_MS_MAX, QTY_MAX, apply_event, fold, new_profile


def page(ts, session="s1", url=None, kind="page_view"):
    return {
        "event_id": f"e{ts}",
        "type": kind,
        "visitor_id": "v",
        "session_id": session,
        "ts": ts,
        "url": url or f"/p{ts}",
    }


def test_counts_first_last_seen_and_sessions():
    profile = fold(
        new_profile("v"), [page(1000), page(2000, kind="page_ping"), page(5000, session="s2"), page(6000, session="s2")]
    )
    assert profile["counts"] == {"page_view": 3, "page_ping": 1}
    assert profile["first_seen"] == 1000 and profile["last_seen"] == 6000
    assert profile["sessions"]["count"] == 2
    assert profile["sessions"]["current"] == "s2" and profile["sessions"]["last_start"] == 5000
    assert profile["sessions"]["total_ms"] == 1000 + 1000


def test_keeps_the_last_pages_newest_last():
    profile = fold(new_profile("v"), [page(ts) for ts in range(1, 31)])
    assert len(profile["pages"]) == PAGES_KEPT
    assert [p["url"] for p in profile["pages"]][-1] == "/p30"
    assert profile["pages"][0]["url"] == f"/p{31 - PAGES_KEPT}"


def test_out_of_order_timestamps_keep_min_and_max():
    profile = fold(new_profile("v"), [page(5000), page(1000)])
    assert profile["first_seen"] == 1000 and profile["last_seen"] == 5000


@given(st.lists(st.tuples(st.integers(1, 10**12), st.sampled_from(["s1", "s2", "s3"])), max_size=40))
def test_counts_add_up(events):
    profile = fold(new_profile("v"), [page(ts, session) for ts, session in events])
    assert sum(profile["counts"].values()) == len(events)
    assert len(profile["pages"]) == min(len(events), PAGES_KEPT)
    if events:
        assert profile["first_seen"] == min(ts for ts, _ in events)
        assert profile["last_seen"] == max(ts for ts, _ in events)
        assert 1 <= profile["sessions"]["count"] <= len(events)


# --- the fold is total: props of unexpected types never break it -------------


def ev(kind, ts=1_800_000_000_000, **fields):
    return {"event_id": f"e{ts}", "type": kind, "visitor_id": "v", "ts": ts, **fields}


def carried(profile):
    """What a profile must stay: packable by the store, renderable as strict JSON."""
    msgpack.unpackb(msgpack.packb(profile), raw=False)
    json.dumps(profile, allow_nan=False)
    json.dumps(merge(profile, new_profile("other")), allow_nan=False)
    return profile


@pytest.mark.parametrize(
    "props",
    [
        {"product": "sku-1"},
        {"product": ["a"]},
        {"product": {"id": "a", "category": ["shoes"]}},
        {"product": {"category": {"a": 1}}},
        {"order": "o"},
        {"traits": "x"},
        {"consent": "yes"},
        {"engaged_ms": float("nan")},
        {"qty": "2"},
    ],
)
@pytest.mark.parametrize(
    "kind",
    [
        "page_view",
        "page_ping",
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
        "identify",
        "consent",
        "custom:x",
    ],
)
def test_props_of_any_shape_on_any_type_never_break_the_fold(kind, props):
    profile = carried(apply_event(new_profile("v"), ev(kind, props=props, user_id="u1")))
    assert profile["counts"].get(kind, 0) == (0 if kind == "consent" else 1)


@pytest.mark.parametrize(
    "engaged, added",
    [
        (float("nan"), 0),
        (float("inf"), PING_MS_MAX),
        (10**30, PING_MS_MAX),
        (-5, 0),
        (True, 0),
        ("100", 0),
        (2500.7, 2500),
    ],
)
def test_engaged_ms_is_bounded(engaged, added):
    profile = carried(apply_event(new_profile("v"), ev("page_ping", props={"engaged_ms": engaged})))
    assert profile["engaged_ms"] == added


def test_traits_keep_only_values_the_store_and_renderer_carry():
    traits = {
        "plan": "gold",
        "age": 40,
        "vip": True,
        "score": 0.5,
        "nan": float("nan"),
        "inf": float("-inf"),
        "huge": 2**70,
        "list": [1],
        "obj": {"a": 1},
        "none": None,
    }
    profile = carried(
        apply_event(new_profile("v"), ev("identify", user_id="u1", verified=True, props={"traits": traits}))
    )
    assert profile["traits"] == {"plan": "gold", "age": 40, "vip": True, "score": 0.5}


def test_cart_quantities_and_order_amounts_are_bounded():
    events = [
        ev("add_to_cart", ts, props={"product": {"id": "a"}, "qty": qty})
        for ts, qty in enumerate([QTY_MAX, QTY_MAX, 2**62, float("nan"), "3"], start=1_800_000_000_000)
    ]
    events += [
        ev(
            "purchase",
            1_800_000_001_000 + i,
            props={"order": {"id": f"o{i}", "revenue": revenue, "items": [{"id": "b"}, "junk", {"no": "id"}]}},
        )
        for i, revenue in enumerate([float("nan"), float("inf"), 10.0**300, "12", -4, MONEY_MAX])
    ]
    profile = carried(fold(new_profile("v"), events))
    assert profile["commerce"]["cart"] == {"a": QTY_MAX}
    assert profile["commerce"]["orders"] == 6
    assert profile["commerce"]["revenue"] == 3 * MONEY_MAX  # inf and 1e300 count as the bound, the rest as nothing
    assert all(math.isfinite(entry[1]) for entry in profile["commerce"]["order_log"])
    assert profile["commerce"]["items"] == {"b": 1_800_000_001_005}


def test_events_without_the_ids_they_refer_to_change_only_counts():
    events = [
        ev("product_view", props={"product": {"price": 3}}),
        ev("add_to_cart", props={"product": {}}),
        ev("purchase", props={"order": {"items": [{"id": "a"}]}}),
        ev("consent", props={}),
    ]
    profile = carried(fold(new_profile("v"), events))
    assert profile["viewed"] == [] and profile["commerce"]["cart"] == {} and profile["commerce"]["orders"] == 0
    assert profile["consent"] == {}
    assert profile["counts"] == {"product_view": 1, "add_to_cart": 1, "purchase": 1}


def test_integer_ids_are_kept_as_the_schema_writes_them():
    profile = fold(
        new_profile("v"),
        [
            ev("product_view", props={"product": {"id": 7}}),
            ev("purchase", props={"order": {"id": 9, "items": [{"id": 7, "category": "shoes"}]}}),
        ],
    )
    assert profile["viewed"][0]["id"] == "7" and profile["commerce"]["order_log"][0][2] == "9"
    assert profile["commerce"]["items"] == {"7": 1_800_000_000_000}


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "category",
                    "qty",
                    "price",
                    "revenue",
                    "items",
                    "product",
                    "order",
                    "traits",
                    "consent",
                    "analytics",
                    "engaged_ms",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "page_view",
                    "page_ping",
                    "product_view",
                    "add_to_cart",
                    "remove_from_cart",
                    "purchase",
                    "identify",
                    "consent",
                    "impression",
                ]
            ),
            anything,
        ),
        max_size=8,
    )
)
def test_whatever_the_props_the_profile_stays_packable_and_strict_json(events):
    carried(
        fold(
            new_profile("v"),
            [
                ev(kind, 1_800_000_000_000 + i, props=props, user_id="u", session_id="s")
                for i, (kind, props) in enumerate(events)
            ],
        )
    )
