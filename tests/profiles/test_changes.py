"""State changes as events (pure): their keys, their checks, and the collector's refusal of them."""

import itertools

import pytest

from engine.errors import InvalidInput
from engine.ingest.schema import InvalidEvent, validate_event
from engine.profiles import changes

ids = map(str, itertools.count()).__next__


def test_each_change_is_keyed_so_its_order_with_the_visitor_holds():
    erase = changes.erasure("vid-1", "d1g3st", 5, ids)
    assert erase["visitor_id"] == "vid-1" and erase["props"] == {"at": 5, "user": "d1g3st"} and erase["ts"] == 5
    mine = changes.preferences("vid-1", None, "{}", 7, ids)
    theirs = changes.preferences(None, "d1g3st", "{}", 7, ids)
    assert mine["visitor_id"] == "vid-1" and theirs["visitor_id"] == "u:d1g3st" and theirs["props"]["user"] == "d1g3st"
    assert changes.stamp(7, "b") > changes.stamp(7, "a") > changes.stamp(6, "z")  # later wins, then by id
    batches = changes.catalog([{"id": str(n)} for n in range(2500)], 9, ids)
    assert [len(b["props"]["items"]) for b in batches] == [1000, 1000, 500]
    assert {b["visitor_id"] for b in batches} == {changes.CATALOG_KEY}
    assert all(changes.is_state_change(e) for e in [erase, mine, *batches])
    assert not changes.is_state_change({"type": "page_view"})


@pytest.mark.parametrize(
    "event, error",
    [
        ({"type": "server:erase", "props": {"at": "now"}}, "props.at: expected integer milliseconds"),
        ({"type": "server:preferences", "props": {"document": "{}"}}, "props.stamp: expected a non-empty string"),
        ({"type": "server:catalog", "props": {"items": {}}}, "props.items: expected a list of catalog items"),
        ({"type": "server:erase", "props": []}, "props: expected an object"),
        ({"type": "server:other", "props": {}}, "type: unknown state change 'server:other'"),
    ],
)
def test_a_malformed_change_names_its_field(event, error):
    with pytest.raises(InvalidInput) as caught:
        changes.check(event)
    assert caught.value.error == error


@pytest.mark.parametrize("kind", sorted(changes.TYPES) + ["server:anything"])
def test_the_collector_refuses_server_only_types_from_outside(kind):
    with pytest.raises(InvalidEvent) as caught:
        validate_event({"type": kind, "visitor_id": "v", "props": {"at": 1}}, now_ms=1_800_000_000_000, new_id=ids)
    assert str(caught.value) == f"type: {kind!r} is reserved for the engine's own state changes"
