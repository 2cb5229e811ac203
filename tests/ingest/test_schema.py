import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.api.errors import status_of
from engine.errors import InvalidInput, TooLarge
from engine.ingest.collector import RequestInfo, collect, parse_body
from engine.ingest.schema import InvalidEvent, validate_event
from engine.profiles.model import MONEY_MAX, QTY_MAX

NOW = 1_795_400_000_000
VID = "6f1c2a4e-8b3d-4c7a-9e21-0a5b6c7d8e9f"  # a visitor id as the engine issues them


def check(raw, visitor_id="cookie-vid"):
    ids = iter(f"gen-{i}" for i in range(100))
    return validate_event(raw, now_ms=NOW, new_id=lambda: next(ids), visitor_id=visitor_id)


def test_minimal_event_is_filled_in():
    event = check({"type": "page_view"})
    assert event == {"type": "page_view", "event_id": "gen-0", "visitor_id": "cookie-vid", "ts": NOW, "props": {}}


def test_unknown_fields_are_kept_under_props():
    event = check({"type": "custom:newsletter_signup", "ts": NOW - 5, "plan": "weekly", "props": {"a": 1}})
    assert event["props"] == {"a": 1, "plan": "weekly"}
    assert event["ts"] == NOW - 5


def test_purchase_revenue_defaults_to_item_total():
    event = check(
        {
            "type": "purchase",
            "props": {"order": {"id": "o1", "items": [{"id": "a", "qty": 2, "price": 1.5}, {"id": 7}]}},
        }
    )
    assert event["props"]["order"]["revenue"] == 3.0
    assert event["props"]["order"]["items"][1] == {"id": "7", "qty": 1}


@pytest.mark.parametrize(
    "raw, field",
    [
        ([], "event"),
        ({}, "type"),
        ({"type": 5}, "type"),
        ({"type": "bogus"}, "type"),
        ({"type": "custom:"}, "type"),
        ({"type": "page_view", "ts": "yesterday"}, "ts"),
        ({"type": "page_view", "ts": 1.5}, "ts"),
        ({"type": "page_view", "ts": True}, "ts"),
        ({"type": "page_view", "ts": 12}, "ts"),
        ({"type": "page_view", "ts": NOW + 10 * 86_400_000}, "ts"),
        ({"type": "page_view", "event_id": "x" * 65}, "event_id"),
        ({"type": "page_view", "visitor_id": 12}, "visitor_id"),
        ({"type": "page_view", "url": ["a"]}, "url"),
        ({"type": "page_view", "props": "x"}, "props"),
        ({"type": "identify"}, "user_id"),
        ({"type": "product_view", "props": {}}, "props.product"),
        ({"type": "product_view", "props": {"product": {"id": "a", "price": "cheap"}}}, "props.product.price"),
        ({"type": "add_to_cart", "props": {"product": {"id": "a"}, "qty": 0}}, "props.qty"),
        ({"type": "purchase", "props": {"order": {"id": "o", "items": []}}}, "props.order.items"),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "qty": -1}]}}},
            "props.order.items[0].qty",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "revenue": float("inf"), "items": [{"id": "a"}]}}},
            "props.order.revenue",
        ),
        ({"type": "impression", "props": {"slot": "hero"}}, "props.content"),
        ({"type": "consent", "props": {"consent": {"analytics": "yes"}}}, "props.consent.analytics"),
        ({"type": "preference", "props": {"preferences": 3}}, "props.preferences"),
        # the document PUT .../preferences refuses is refused as an event too
        ({"type": "preference", "props": {"preferences": {"show": "shoes"}}}, "props.preferences.show"),
        (
            {"type": "preference", "props": {"preferences": {"do_not_personalize": "yes"}}},
            "props.preferences.do_not_personalize",
        ),
        ({"type": "preference", "props": {"preferences": {"language": 5}}}, "props.preferences.language"),
    ],
)
def test_bad_events_name_the_field(raw, field):
    with pytest.raises(InvalidEvent) as caught:
        check(raw)
    assert str(caught.value).startswith(f"{field}:")


@pytest.mark.parametrize(
    "raw, error",
    [
        ({"type": "bogus"}, "type: unknown event type 'bogus'"),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "qty": -1}]}}},
            "props.order.items[0].qty: expected a positive integer",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "qty": QTY_MAX + 1}]}}},
            f"props.order.items[0].qty: must be at most {QTY_MAX}",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "qty": 1.0}]}}},
            "props.order.items[0].qty: expected an integer, got a number",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "price": MONEY_MAX * 10}]}}},
            f"props.order.items[0].price: must be at most {MONEY_MAX:.0f}",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": True, "items": [{"id": "a"}]}}},
            "props.order.id: expected an integer or a string, got a boolean",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a"}] * 501}}},
            "props.order.items: more than 500 items",
        ),
        (
            {"type": "purchase", "props": {"order": {"id": "o", "items": [3]}}},
            "props.order.items[0]: expected an object, got an integer",
        ),
        ({"type": "product_view", "props": {"product": {"id": ""}}}, "props.product.id: must not be empty"),
        (
            {"type": "product_view", "props": {"product": {"id": "a", "price": float("nan")}}},
            "props.product.price: must be at least 0",
        ),
        ({"type": "product_view"}, "props: is required"),
        (
            {"type": "consent", "props": {"consent": {}}},
            "props.consent: expected analytics, personalization and/or marketing",
        ),
        ({"type": "impression", "props": {"slot": "hero", "content": ""}}, "props.content: must not be empty"),
        ({"type": "identify", "user_id": ""}, "user_id: must not be empty"),
        ({"type": "identify", "user_id": "u", "props": {"traits": []}}, "props.traits: expected an object, got a list"),
        ({"type": "page_view", "title": "x" * 2049}, "title: longer than 2048 characters"),
        (
            {"type": "page_view", "ts": 12},
            "ts: expected integer milliseconds since epoch, from the year 2000 to one day ahead",
        ),
        ("page_view", "event: expected an object, got a string"),
    ],
)
def test_error_texts(raw, error):
    with pytest.raises(InvalidEvent) as caught:
        check(raw)
    assert str(caught.value) == error


def test_unknown_keys_inside_declared_objects_are_kept():
    event = check(
        {
            "type": "purchase",
            "coupon": "X",
            "props": {"order": {"id": 5, "currency": "NOK", "items": [{"id": "a", "price": None, "name": "Boot"}]}},
        }
    )
    assert event["props"] == {
        "coupon": "X",
        "order": {
            "id": "5",
            "currency": "NOK",
            "revenue": 0,
            "items": [{"id": "a", "price": None, "name": "Boot", "qty": 1}],
        },
    }


def test_a_top_level_field_named_like_a_prop_is_checked_as_that_prop():
    assert check({"type": "product_view", "product": {"id": 3}})["props"] == {"product": {"id": "3"}}
    with pytest.raises(InvalidEvent, match=r"^props\.product\.id:"):
        check({"type": "product_view", "product": {"category": "shoes"}})


def test_consent_keeps_only_the_purposes():
    event = check({"type": "consent", "props": {"consent": {"analytics": False, "ts": 5, "other": 1}}})
    assert event["props"]["consent"] == {"analytics": False}


def test_visitor_id_required_without_cookie():
    with pytest.raises(InvalidEvent, match="^visitor_id:"):
        check({"type": "page_view"}, visitor_id=None)


def test_event_visitor_id_wins_over_cookie():
    assert check({"type": "page_view", "visitor_id": "own"})["visitor_id"] == "own"


@pytest.mark.parametrize(
    "body, status", [(b"{", 400), (b"\xff\xfe", 400), (b"[1,2]", 400), (b'{"events": 3}', 400), (b"42", 400)]
)
def test_bad_bodies_fail_whole(body, status):
    with pytest.raises(InvalidInput) as caught:
        parse_body(body)
    assert status_of(caught.value) == status


@pytest.mark.parametrize(
    "body, error",
    [
        (b"[" * 50_000, "nesting deeper than 32"),
        (b'{"type": "page_ping", "props": {"engaged_ms": NaN}}', "NaN and Infinity are not JSON"),
        (
            b'{"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "qty": '
            + b"1" * 4301
            + b"}]}}}",
            "a number is too large",
        ),
        (b'{"type": "page_view", "props": {"n": 9223372036854775808}}', "a number is too large"),
    ],
)
def test_bodies_past_the_decoder_bounds_fail_whole_with_the_reason(body, error):
    with pytest.raises(InvalidInput) as caught:
        parse_body(body)
    assert status_of(caught.value) == 400 and caught.value.error == error


def test_too_many_events_is_413():
    info = RequestInfo(received_at=NOW, visitor_id=VID, user_agent=None, ip=None)
    with pytest.raises(TooLarge):
        collect([{"type": "page_view"}] * 501, info, max_events=500, new_id=lambda: "x")


def test_good_events_of_a_mixed_batch_are_kept():
    info = RequestInfo(received_at=NOW, visitor_id=VID, user_agent="UA", ip="203.0.113.0")
    batch = collect(
        parse_body(json.dumps({"events": [{"type": "page_view"}, {"type": "nope"}, {"type": "page_ping"}]}).encode()),
        info,
        max_events=500,
        new_id=lambda: "id",
    )
    assert [e["type"] for e in batch.accepted] == ["page_view", "page_ping"]
    assert batch.rejected == [{"index": 1, "error": "type: unknown event type 'nope'"}]
    assert batch.accepted[0]["ip"] == "203.0.113.0"
    assert batch.accepted[0]["ua"] == "UA" and batch.accepted[0]["received_at"] == NOW


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["page_view", "purchase", "product_view", "consent", "identify", "impression", "x"])
        | st.text(max_size=5)
    },
    optional={k: json_values for k in ("ts", "props", "event_id", "visitor_id", "user_id", "url", "session_id")},
)


@hsettings(max_examples=400, deadline=None)
@given(st.one_of(json_values, event_like))
def test_any_input_is_either_an_event_or_a_named_error(raw):
    try:
        event = check(raw)
    except InvalidEvent as exc:
        assert ":" in str(exc)
        return
    assert event["type"] and event["event_id"] and isinstance(event["ts"], int) and isinstance(event["props"], dict)


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(event_like, max_size=5).map(lambda v: json.dumps({"events": v}).encode()),
    st.integers(1, 200).map(lambda n: b'{"events": [' + b"[" * n + b"]" * n + b"]}"),
)


@hsettings(max_examples=300, deadline=None)
@given(bodies)
def test_any_body_is_refused_whole_or_gives_events_that_encode(body):
    info = RequestInfo(received_at=NOW, visitor_id="v", user_agent=None, ip=None)
    try:
        raw_events = parse_body(body)
    except InvalidInput as exc:
        assert status_of(exc) == 400 and exc.error
        return
    batch = collect(raw_events, info, max_events=500, new_id=lambda: "id")
    assert len(batch.accepted) + len(batch.rejected) == len(raw_events) == len(batch.rejected_raw) + len(batch.encoded)
    json.dumps(batch.rejected, allow_nan=False)
