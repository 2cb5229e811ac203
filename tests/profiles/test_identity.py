import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.profiles.identity import merge, merge_all
from engine.profiles.user_ids import is_identity_id
from engine.profiles.model import count_in_window, fold, interest_scores, new_profile, DAY_MS

T0 = 1_795_000_000_000


@pytest.mark.parametrize(
    "uid", [None, "", "  ", "null", "NULL", "undefined", "guest", "Anonymous", "0", 0, 12, "unknown"]
)
def test_placeholder_ids_never_identify(uid):
    assert not is_identity_id(uid)


def test_configured_blocklist_and_real_ids():
    assert is_identity_id("u-42") and is_identity_id("ada@example.com")
    assert not is_identity_id("test-user", blocked=["TEST-USER"])


def ev(kind, ts, vid="v", **props):
    event = {
        "event_id": f"{vid}-{kind}-{ts}",
        "type": kind,
        "visitor_id": vid,
        "session_id": f"{vid}-s{ts // 3_600_000}",
        "ts": ts,
        "url": f"/{kind}/{ts}",
        "props": props,
    }
    if kind == "identify":
        event["user_id"] = props.pop("user_id")
        event["verified"] = props.pop("verified", True)  # the collector's check of the user hash
        event["props"] = props
    return event


def product(pid, category, price=10.0):
    return {"product": {"id": pid, "category": category, "price": price}}


def test_profile_holds_activity_interests_commerce_traits():
    events = [
        ev("page_view", T0),
        ev("product_view", T0 + 1000, **product("p1", "shoes")),
        ev("page_ping", T0 + 2000, engaged_ms=15000),
        ev("add_to_cart", T0 + 3000, **product("p1", "shoes")),
        ev(
            "purchase",
            T0 + 4000,
            order={"id": "o1", "revenue": 50.0, "items": [{"id": "p1", "qty": 1, "category": "shoes"}]},
        ),
        ev(
            "purchase", T0 + 5000, order={"id": "o1", "revenue": 50.0, "items": [{"id": "p1", "qty": 1}]}
        ),  # same order again
        ev("identify", T0 + 6000, user_id="u1", traits={"first_name": "Ada", "nested": {"x": 1}}),
    ]
    p = fold(new_profile("v"), events)
    assert p["engaged_ms"] == 15000
    assert [v["id"] for v in p["viewed"]] == ["p1"]
    assert p["commerce"]["orders"] == 1 and p["commerce"]["revenue"] == 50.0 and p["commerce"]["cart"] == {}
    assert p["commerce"]["items"] == {"p1": T0 + 4000} and p["commerce"]["first_purchase"] == T0 + 4000
    assert p["traits"] == {"first_name": "Ada"} and p["user_id"] == "u1" and p["kind"] == "identified"
    scores = interest_scores(p, T0 + 6000)
    assert scores["shoes"] == pytest.approx(1 + 3 + 5, rel=1e-3)
    later = interest_scores(p, T0 + 14 * DAY_MS)
    assert later["shoes"] == pytest.approx(scores["shoes"] / 2, rel=1e-2)


def test_guest_identify_does_not_link():
    p = fold(new_profile("v"), [ev("identify", T0, user_id="guest")])
    assert p["user_id"] is None and p["kind"] == "anonymous"


def test_windowed_counts():
    events = [ev("product_view", T0 - d * DAY_MS, **product(f"p{d}", "shoes")) for d in (0, 1, 2, 6, 8, 20)]
    p = fold(new_profile("v"), events)
    assert count_in_window(p, "product_view:shoes", 7, T0) == 4
    assert count_in_window(p, "product_view:shoes", 30, T0) == 6
    assert count_in_window(p, "product_view:hats", 30, T0) == 0


def test_no_consent_changes_nothing_but_consent():
    p = fold(
        new_profile("v"),
        [
            ev("consent", T0, consent={"analytics": False}),
            ev("page_view", T0 + 1),
            ev("purchase", T0 + 2, order={"id": "o", "items": [{"id": "a", "qty": 1}]}),
        ],
    )
    assert p["counts"] == {} and p["commerce"]["orders"] == 0 and p["consent"]["analytics"] is False
    p = fold(p, [ev("consent", T0 + 3, consent={"analytics": True}), ev("page_view", T0 + 4)])
    assert p["counts"] == {"page_view": 1}


def test_two_devices_merge_into_one_person():
    laptop = fold(
        new_profile("laptop"),
        [
            ev("page_view", T0, "laptop"),
            ev("product_view", T0 + 10, "laptop", **product("p1", "shoes")),
            ev("identify", T0 + 20, "laptop", user_id="u1", traits={"first_name": "Ada"}),
        ],
    )
    phone = fold(
        new_profile("phone"),
        [
            ev("page_view", T0 - 5000, "phone"),
            ev("purchase", T0 + 30, "phone", order={"id": "o9", "revenue": 20, "items": [{"id": "p2", "qty": 1}]}),
            ev("identify", T0 + 40, "phone", user_id="u1", traits={"first_name": "Ada L."}),
        ],
    )
    person = merge(laptop, phone)
    assert person["counts"] == {"page_view": 2, "product_view": 1, "identify": 2, "purchase": 1}
    assert person["consent"] == {}
    assert person["first_seen"] == T0 - 5000 and person["last_seen"] == T0 + 40
    assert person["sessions"]["count"] == laptop["sessions"]["count"] + phone["sessions"]["count"]
    assert [p["ts"] for p in person["pages"]] == sorted(p["ts"] for p in person["pages"])
    assert person["traits"]["first_name"] == "Ada L." and person["kind"] == "identified"
    assert person["commerce"]["orders"] == 1 and person["commerce"]["revenue"] == 20


kinds = st.sampled_from(["page_view", "page_ping", "product_view", "add_to_cart", "purchase", "identify", "consent"])


@st.composite
def pieces(draw, vid):
    events = []
    for i, (kind, offset) in enumerate(draw(st.lists(st.tuples(kinds, st.integers(0, 40 * DAY_MS)), max_size=12))):
        ts = T0 + offset
        if kind in ("product_view", "add_to_cart"):
            events.append(ev(kind, ts, vid, **product(f"p{offset % 7}", f"c{offset % 3}")))
        elif kind == "purchase":
            events.append(
                ev(
                    kind,
                    ts,
                    vid,
                    order={
                        "id": f"o{offset % 5}",
                        "revenue": offset % 100,
                        "items": [{"id": f"p{offset % 7}", "qty": 1, "category": f"c{offset % 3}"}],
                    },
                )
            )
        elif kind == "identify":
            events.append(ev(kind, ts, vid, user_id="u1", traits={"name": f"n{offset % 4}"}))
        elif kind == "consent":
            events.append(ev(kind, ts, vid, consent={"analytics": True}))
        else:
            events.append(ev(kind, ts, vid))
    return fold(new_profile(vid), sorted(events, key=lambda e: e["ts"]))


def approx_equal(a, b):
    a, b = dict(a), dict(b)
    ia, ib = a.pop("interests"), b.pop("interests")
    assert a == b
    assert ia.keys() == ib.keys()
    for key in ia:
        assert math.isclose(ia[key][0], ib[key][0], rel_tol=1e-6) and ia[key][1] == ib[key][1]


@hsettings(max_examples=150, deadline=None)
@given(pieces("a"), pieces("b"), pieces("c"))
def test_merge_is_associative_and_commutative(a, b, c):
    approx_equal(merge(merge(a, b), c), merge(a, merge(b, c)))
    approx_equal(merge(a, b), merge(b, a))
    approx_equal(merge_all([c, a, b]), merge_all([a, b, c]))
