import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.api.errors import status_of
from engine.errors import BadRequest, PayloadTooLarge
from engine.ingest.collector import RequestInfo, collect, parse_body
from engine.ingest.schema import InvalidEvent, validate_event

NOW = 1_795_400_000_000


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
    event = check({"type": "purchase", "props": {"order": {"id": "o1", "items": [{"id": "a", "qty": 2, "price": 1.5}, {"id": 7}]}}})
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
        ({"type": "purchase", "props": {"order": {"id": "o", "items": [{"id": "a", "qty": -1}]}}}, "props.order.items[0].qty"),
        ({"type": "purchase", "props": {"order": {"id": "o", "revenue": float("inf"), "items": [{"id": "a"}]}}}, "props.order.revenue"),
        ({"type": "impression", "props": {"slot": "hero"}}, "props.content"),
        ({"type": "consent", "props": {"consent": {"analytics": "yes"}}}, "props.consent.analytics"),
        ({"type": "preference", "props": {"preferences": 3}}, "props.preferences"),
    ],
)
def test_bad_events_name_the_field(raw, field):
    with pytest.raises(InvalidEvent) as caught:
        check(raw)
    assert str(caught.value).startswith(f"{field}:")


def test_visitor_id_required_without_cookie():
    with pytest.raises(InvalidEvent, match="^visitor_id:"):
        check({"type": "page_view"}, visitor_id=None)


def test_event_visitor_id_wins_over_cookie():
    assert check({"type": "page_view", "visitor_id": "own"})["visitor_id"] == "own"


@pytest.mark.parametrize("body, status", [(b"{", 400), (b"\xff\xfe", 400), (b"[1,2]", 400), (b'{"events": 3}', 400), (b"42", 400)])
def test_bad_bodies_fail_whole(body, status):
    with pytest.raises(BadRequest) as caught:
        parse_body(body)
    assert status_of(caught.value) == status


def test_too_many_events_is_413():
    info = RequestInfo(received_at=NOW, visitor_id="v", user_agent=None, ip=None)
    with pytest.raises(PayloadTooLarge):
        collect([{"type": "page_view"}] * 501, info, max_events=500, new_id=lambda: "x")


def test_good_events_of_a_mixed_batch_are_kept():
    info = RequestInfo(received_at=NOW, visitor_id="v", user_agent="UA", ip="203.0.113.0")
    batch = collect(parse_body(json.dumps({"events": [{"type": "page_view"}, {"type": "nope"}, {"type": "page_ping"}]}).encode()),
                    info, max_events=500, new_id=lambda: "id")
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
    {"type": st.sampled_from(["page_view", "purchase", "product_view", "consent", "identify", "impression", "x"]) | st.text(max_size=5)},
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
