"""The serving caches' expiry and bound (engine.recommend.caches): pure, no services."""

from __future__ import annotations

import time

from engine.recommend.caches import kept, lookup


def test_an_entry_is_served_until_its_time_then_gone():
    cache = kept(5.0, 10)
    cache["a"] = 1
    now = time.monotonic()
    assert cache.get("a") == 1 and cache.get("a", now=now + 4.9) == 1
    assert cache.get("a", now=now + 5.1) is None
    assert len(cache) == 0  # an expired entry found is dropped


def test_past_its_size_the_oldest_stored_goes_first():
    cache = kept(60.0, 3)
    for key in "abc":
        cache[key] = key
    cache["a"] = "again"  # stored again: now the newest
    cache["d"] = "d"
    assert [cache.get(k) for k in "abcd"] == ["again", None, "c", "d"]
    assert len(cache) == 3


def test_a_zero_time_keeps_nothing_and_clear_empties():
    off = kept(0.0, 10)
    off["a"] = 1
    assert off.get("a") is None and len(off) == 0
    cache = kept(60.0, 10)
    cache["a"] = 1
    cache.clear()
    assert cache.get("a", "none") == "none"


def test_lookup_splits_kept_and_missing_each_item_once():
    cache = kept(60.0, 10)
    cache[("purchase", "a")] = "A"
    found, missing = lookup(cache, ["a", "b", "a", "c"], key=lambda item: ("purchase", item))
    assert found == {"a": "A"} and missing == ["b", "c"]
