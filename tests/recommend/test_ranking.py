"""The pure parts of serving: a request's filters, the popularity fill, an item's own ranking."""

from __future__ import annotations

import pytest

from engine.recommend.ranking import Filters, fill_candidates, fill_categories, own_source, shrunk, with_fill
from engine.recommend.request import ListRequest
from engine.recommend.store import Neighbours


def test_a_request_becomes_its_filters_with_the_configured_cap_unless_it_names_one():
    assert ListRequest("a", k=3).filters({"a", "b"}, 2) == Filters(3, frozenset({"a", "b"}), None, 2)
    assert ListRequest("a", k=3, category="toys", max_per_category=0).filters([], 2) == Filters(
        3, frozenset(), "toys", 0
    )


def test_the_fill_draws_from_the_category_then_overall_and_ranks_under_the_blend():
    assert fill_categories(None, "toys") == ["toys", None]
    assert fill_categories("drinks", "toys") == ["drinks"]
    assert fill_categories(None, None) == [None]
    candidates, origin = fill_candidates([("toys", [("t1", 3.0), ("t2", 1.0)]), (None, [("t1", 5.0), ("a", 9.0)])])
    assert [item for item, _ in candidates] == ["t1", "t2", "t1", "a"]
    assert origin == {"t1": ("toys", 3.0), "t2": ("toys", 1.0), "a": (None, 9.0)}
    chosen = [("b", 0.6)]
    listed, because = with_fill(chosen, chosen + [("t1", 0.0), ("a", 0.0)], origin)
    assert [item for item, _ in listed] == ["b", "t1", "a"]
    assert [score for _, score in listed] == pytest.approx([0.6, 0.4, 0.2])
    assert because == {
        "t1": {"source": "popularity", "purchases": 3.0, "category": "toys"},
        "a": {"source": "popularity", "purchases": 9.0},
    }


def test_an_items_own_ranking_says_which_items_were_bought_with_it():
    found = Neighbours(
        scores={"a": 1.0, "b": 0.5, "m": 0.5, "x": 0.1},
        pairs={"a": 9, "b": 4, "m": 0, "x": 1},
        counts={"a": 12, "b": 4, "m": 8, "x": 1},
    )
    ranked, because = shrunk("a", found)
    assert ranked == [("b", 0.5), ("m", 0.5), ("x", 0.1)]  # the seed left out, ties by id
    assert because["b"] == {"source": "cooccurrence", "with": "a", "orders": 4}
    assert because["m"] == {"source": "popularity", "orders": 8}
    assert own_source(ranked[:1], because) == "cooccurrence"
    assert own_source(ranked, because) == "cooccurrence+popularity"
