import pytest
from hypothesis import given, strategies as st

from engine.stream import codec
from engine.ingest.pixel import event_from_query
from engine.ingest.schema import InvalidEvent, validate_event

NOW = 1_795_400_000_000


def check(event):
    return validate_event(event, now_ms=NOW, new_id=lambda: "gen", visitor_id="cookie")


def test_fields_ts_and_props():
    event = event_from_query(
        {"type": "page_view", "url": "/x", "ts": "1795400000000", "props.campaign": "spring", "props.": "blank"}
    )
    assert event == {
        "type": "page_view",
        "url": "/x",
        "ts": 1795400000000,
        "props": {"campaign": "spring", "": "blank"},
    }
    assert check(event)["props"] == {"campaign": "spring", "": "blank"}


def test_no_props_parameters_no_props():
    assert event_from_query({"type": "page_view"}) == {"type": "page_view"}


@pytest.mark.parametrize(
    "ts", ["²", "1795400000000²", "١٧٩٥", "--5", "-", "", "soon", "9" * 5000, " 1795400000000", "1e12"]
)
def test_a_ts_that_is_not_ascii_digits_stays_text_and_is_refused_by_name(ts):
    event = event_from_query({"type": "page_view", "ts": ts})
    assert event["ts"] == ts
    with pytest.raises(InvalidEvent, match="^ts:"):
        check(event)


@pytest.mark.parametrize("ts, value", [("0", 0), ("-12", -12), ("123456789012345678", 123456789012345678)])
def test_ascii_digits_become_an_integer(ts, value):
    assert event_from_query({"ts": ts})["ts"] == value


@given(
    st.dictionaries(
        st.sampled_from(["type", "ts", "visitor_id", "props.x", "props.", "url", "event_id", "user_id", "props"]),
        st.text(max_size=30),
        max_size=6,
    )
)
def test_any_query_gives_an_event_or_a_named_error(params):
    event = event_from_query(params)
    try:
        accepted = check(event)
    except InvalidEvent as exc:
        assert ":" in str(exc)
        return
    codec.encode(accepted)
