"""The per-process caches of recommendation serving, timed and sized here.

- the popular lists, per category (POPULAR_CACHE_S): popularity moves slowly;
- each item's category and availability (INFO_CACHE_S), all dropped when the catalog's
  version moves (checked every CATALOG_CHECK_S) or this process puts the catalog;
- each item's co-purchase and co-view neighbours, for RecommendConfig.neighbours_cache_s;
- each item's pair counts in the recent sessions holding it (the session rule), SESSION_COUNTS_TIMES
  as long: counting an item's 500 sessions is the costly script of a mid-session list, and a
  new session moves those counts by one at most;
- each item's own also-bought ranking: fresh as long, then served as long again while a
  refresh runs behind the requests (engine.recommend.service), then gone.

Past its size, each cache lets its oldest entries go first. One event loop uses them: no
locks. They are plain dicts of (expiry, value): a list with a cart looks up a few hundred
items, and cachetools' TTLCache took about 1.4 us per lookup (its timer and expiry walk),
against about 0.3 us here.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Iterable


POPULAR_CACHE_S = 5.0
POPULAR_CACHE_MAX = 1000  # categories
NEIGHBOURS_CACHE_MAX = 10_000  # items per process; a kept blend is ~20 KB, so at most ~200 MB
INFO_CACHE_S = 30.0  # an item's category and availability, kept per process...
CATALOG_CHECK_S = 1.0  # ...until the catalog's version changes (checked this often)
INFO_CACHE_MAX = 200_000
# the session counts are kept this many times neighbours_cache_s (0 stays 0); measured in
# benchmarks/RESULTS.md (also-bought and for-you mid-session)
SESSION_COUNTS_TIMES = 10


class Kept:
    """Entries served for `ttl` seconds after they are stored (0: never), at most `maxsize` of them."""

    def __init__(self, ttl: float, maxsize: int) -> None:
        self.ttl, self.maxsize = ttl, maxsize
        self._entries: dict[Hashable, tuple[float, object]] = {}  # key -> (expires at, value), oldest first

    def get(self, key: Hashable, default=None, now: float | None = None):
        entry = self._entries.get(key)
        if entry is None:
            return default
        if (time.monotonic() if now is None else now) >= entry[0]:
            del self._entries[key]
            return default
        return entry[1]

    def __setitem__(self, key: Hashable, value) -> None:
        if self.ttl <= 0:
            return
        entries = self._entries
        entries.pop(key, None)  # stored again: it goes to the back
        while len(entries) >= self.maxsize:
            del entries[next(iter(entries))]
        entries[key] = (time.monotonic() + self.ttl, value)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


def kept(ttl: float, maxsize: int = NEIGHBOURS_CACHE_MAX) -> Kept:
    return Kept(ttl, maxsize)


def lookup(
    cache: Kept, items: Iterable[str], key: Callable[[str], Hashable] = lambda item: item
) -> tuple[dict, list[str]]:
    """(the kept value of each item that has one, the other items), each item once."""
    found, missing, now = {}, [], time.monotonic()
    get = cache.get
    for item in dict.fromkeys(items):
        value = get(key(item), None, now)
        if value is None:
            missing.append(item)
        else:
            found[item] = value
    return found, missing


class RecommendCaches:
    """One service's caches; the neighbours', rankings' and session counts' times follow its config's
    neighbours_cache_s."""

    def __init__(self, neighbours_s: float) -> None:
        self.neighbours_s = neighbours_s
        self.popular = kept(POPULAR_CACHE_S, POPULAR_CACHE_MAX)  # category (None: overall) -> [(item, score)]
        self.info = kept(INFO_CACHE_S, INFO_CACHE_MAX)  # item -> ranking.Info
        self.neighbours = kept(neighbours_s)  # (kind, item) -> store.Neighbours
        self.rankings = kept(2 * neighbours_s)  # item -> (computed at, (ranking, evidence))
        # item -> (its indexed sessions, pair counts in them)
        self.session_counts = kept(SESSION_COUNTS_TIMES * neighbours_s)
        self._popular_scores: tuple[list | None, dict[str, float]] = (None, {})
        self._catalog: tuple[float, int] = (float("-inf"), -1)  # (checked at, version)

    def popular_scores(self, ranked: list[tuple[str, float]]) -> dict[str, float]:
        """The popular list as a dict, one object while the list is kept: kept blends share it."""
        if self._popular_scores[0] is not ranked:
            self._popular_scores = (ranked, dict(ranked))
        return self._popular_scores[1]

    def ranking(self, item: str) -> tuple[tuple, bool] | None:
        """The item's kept ranking and whether it is past its time (to be refreshed), or None."""
        entry = self.rankings.get(item)
        if entry is None:
            return None
        computed_at, ranking = entry
        return ranking, time.monotonic() - computed_at >= self.neighbours_s

    def keep_ranking(self, item: str, computed_at: float, ranking: tuple) -> None:
        self.rankings[item] = (computed_at, ranking)

    def catalog_check_due(self) -> bool:
        return time.monotonic() - self._catalog[0] >= CATALOG_CHECK_S

    def catalog_seen(self, version: int) -> None:
        """The catalog's version as just read: the item info goes when it moved."""
        if version != self._catalog[1]:
            self.info.clear()
        self._catalog = (time.monotonic(), version)
