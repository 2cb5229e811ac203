"""Recommendations served: "also bought" for an item, and "for you" for a visitor.

also-bought(item): the item's own pair counts shrunk toward popularity by how few
orders the item has (engine.recommend.shrink: (c_ab + m n_b / N) / (n_a + m), no
minimum support, m = RecommendConfig.prior_strength chosen across data sets in
benchmarks/recommend_robust.py). Every item bought with the seed ranks above the
popularity fill. A cold item (never bought with anything) gets popularity: its own
category first, then overall; so does any list left short of k. The ranking of an
item, before the per-request filters, is kept per process for neighbours_cache_s and
refreshed behind the requests (see _also_bought_ranking).

also-bought(item, visitor) where the visitor has items in the cart: "bought with
this and with what is in your cart". The item and the cart items are the seeds of
the basket blend that for-you uses (FOR_YOU_WEIGHTS, with the item-item regression
of engine.recommend.ease, which ranks the missing item of a basket best), and the
cart items are dropped from the list. A visitor who chose not to be personalized,
or one without personalization consent, gets the item's own list.

for-you(visitor): the seeds are the person's items (People.person: every linked
visitor id): what they bought, have in the cart and viewed; for an anonymous
visitor, what they bought, have in the cart and viewed in the current session.
Per-seed co-purchase and co-view neighbours, ALS, the item-item regression and
popularity are blended; no seeds (a new visitor), a visitor who chose not to be
personalized, or one without personalization consent gets popularity.

Filters, in `select` (pure): the seed item (for-you: the viewed seeds, which ALS
would otherwise rank first); what the visitor bought, unless its
category is one people buy again (`repurchase_categories`); items the catalog marks
unavailable; an optional single category; at most `max_per_category` per category
(0: no cap; not applied with a category filter). Each response names the sources
that scored the items it returns ("cooccurrence+als", "popularity", ...), and each
item says why it is there (`because`, see `because_of`): the orders holding it and a
seed, the sessions viewing both, the model, or its recent purchases, read from the
same counts that ranked it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable

from engine.recommend import shrink
from engine.recommend.blend import blend
from engine.recommend.catalog import Catalog
from engine.recommend.store import CooccurrenceStore, Neighbours

log = logging.getLogger("engine.recommend")

SOURCES = ("cooccurrence", "coview", "als", "ease", "popularity")
# benchmarks/recommend_quality.py: one choice for groceries and the synthetic shop, made on their
# validation slices (confidence similarity, ALS regularization 10, regression lambda 100). For-you and
# also-bought with a cart, on whole-basket queries: the regression at the weight of co-purchase, ALS at
# half of it. Co-view is not tuned (no view data). Also-bought of one item is engine.recommend.shrink.
FOR_YOU_WEIGHTS = {"cooccurrence": 1.0, "coview": 0.5, "als": 0.5, "ease": 1.0, "popularity": 0.1}
POPULAR_CACHE_S = 5.0
# A product page is asked for over and over: its neighbours (and its also-bought blend) are kept per
# process this long, so a hot item costs one Redis script per second instead of one per request
# (benchmarks/recommend_latency.py). A new order shows within twice this plus the worker's delay.
NEIGHBOURS_CACHE_S = 1.0
NEIGHBOURS_CACHE_MAX = 10_000   # items per process; a kept blend is ~20 KB, so at most ~200 MB
INFO_CACHE_S = 30.0        # an item's category and availability, kept per process...
CATALOG_CHECK_S = 1.0      # ...until the catalog's version changes (checked this often)
INFO_CACHE_MAX = 200_000


@dataclass(frozen=True)
class RecommendConfig:
    for_you_weights: dict = field(default_factory=lambda: dict(FOR_YOU_WEIGHTS))
    method: str = "confidence"      # cooccur.METHODS; CLICKSTREAM_RECOMMEND_SIMILARITY
    min_support: float = 2          # for-you and carts; also-bought of one item has none
    prior_strength: float = shrink.PRIOR_STRENGTH   # m of engine.recommend.shrink
    candidates: int = 50            # per source, as in the offline benchmark
    max_per_category: int = 3       # default of the query parameter; 0: no cap
    repurchase_categories: tuple[str, ...] = ()
    seeds_max: int = 20             # newest bought + viewed items a for-you list starts from
    neighbours_cache_s: float = NEIGHBOURS_CACHE_S   # 0: ask Redis on every request

    @classmethod
    def from_settings(cls, settings) -> "RecommendConfig":
        return cls(max_per_category=settings.recommend_max_per_category,
                   repurchase_categories=settings.recommend_repurchase_categories,
                   method=settings.recommend_similarity)


@dataclass(frozen=True)
class Info:
    available: bool = True
    category: str | None = None


def select(ranked: Iterable[tuple[str, float]], info: dict[str, Info], k: int, exclude: set[str] = frozenset(),
           category: str | None = None, max_per_category: int = 0,
           taken: list[tuple[str, float]] | None = None) -> list[tuple[str, float]]:
    """The first k of `ranked` that pass every filter, appended to `taken` (already chosen)."""
    chosen = list(taken or [])
    seen = {item for item, _ in chosen}
    per_category: dict[str, int] = {}
    for item, _ in chosen:
        cat = info.get(item, Info()).category
        if cat is not None:
            per_category[cat] = per_category.get(cat, 0) + 1
    cap = 0 if category is not None else max_per_category
    for item, score in ranked:
        if len(chosen) >= k:
            break
        if item in seen or item in exclude:
            continue
        about = info.get(item, Info())
        if not about.available or (category is not None and about.category != category):
            continue
        if cap and about.category is not None:
            if per_category.get(about.category, 0) >= cap:
                continue
            per_category[about.category] = per_category.get(about.category, 0) + 1
        chosen.append((item, score))
        seen.add(item)
    return chosen


def below(floor: float, items: list[str]) -> list[tuple[str, float]]:
    """Scores for fill items: in their order, every one under `floor` (the lowest blended score)."""
    n = len(items)
    return [(item, floor * (n - i) / (n + 1)) for i, item in enumerate(items)]


def bought_to_drop(bought: Iterable[str], info: dict[str, Info], repurchase: Iterable[str]) -> set[str]:
    again = set(repurchase)
    return {item for item in bought if info.get(item, Info()).category not in again}


def sources_used(sources: dict[str, dict[str, float]], weights: dict[str, float], items: Iterable[str],
                 filled: bool) -> str:
    items = list(items)
    used = [name for name in SOURCES if name in sources and weights.get(name, 0) > 0
            and any(sources[name].get(i, 0) > 0 for i in items)]
    if filled and "popularity" not in used:
        used.append("popularity")
    return "+".join(used) or "popularity"


def response_items(chosen: list[tuple[str, float]], because: dict[str, dict]) -> list[dict]:
    return [{"id": item, "score": round(score, 6), "because": because[item]} for item, score in chosen]


def popular_because(category: str | None, purchases: float) -> dict:
    """Evidence of a popularity pick: its purchases decayed to now, in its category's list or overall."""
    out = {"source": "popularity", "purchases": round(purchases, 2)}
    if category is not None:
        out["category"] = category
    return out


def because_of(item: str, source: str, counts: dict[str, dict[str, dict[str, int]]],
               sources: dict[str, dict[str, float]]) -> dict:
    """Why a blended item is listed, from the source that gave it most of its score.

    Co-purchase and co-view name the seed with the most orders (sessions) holding both and
    that count, read with the scores; the models say which one; popularity its purchases.
    """
    if source in ("cooccurrence", "coview"):
        per_seed = counts.get(source) or {}
        best = max(sorted(per_seed), key=lambda seed: per_seed[seed].get(item, 0), default=None)
        n = per_seed[best].get(item, 0) if best is not None else 0
        if n > 0:
            return {"source": source, "with": best, ("orders" if source == "cooccurrence" else "sessions"): n}
    if source == "popularity":
        return popular_because(None, sources.get("popularity", {}).get(item, 0.0))
    return {"source": "model", "model": source}


def seeds_of(person: dict, limit: int) -> tuple[list[str], list[str]]:
    """(bought, viewed) seed items of a person, newest first; an anonymous visitor's views are this session's."""
    bought = [item for item, _ in sorted(person["commerce"]["items"].items(), key=lambda p: (-p[1], p[0]))]
    viewed = sorted(person.get("viewed") or [], key=lambda v: -v["ts"])
    if not person.get("user_id"):
        start = (person.get("sessions") or {}).get("last_start")
        viewed = [v for v in viewed if start is not None and v["ts"] >= start]
    return bought[:limit], [v["id"] for v in viewed][:limit]


def cart_of(person: dict | None, limit: int) -> list[str]:
    """The items in a person's cart, in the order they went in."""
    return list((person or {}).get("commerce", {}).get("cart") or {})[:limit]


def wants_personalization(person: dict) -> bool:
    if (person.get("preferences") or {}).get("do_not_personalize") is True:
        return False
    return (person.get("consent") or {}).get("personalization", True) is not False


class RecommendService:
    def __init__(self, store: CooccurrenceStore, catalog: Catalog, models=None, people=None,
                 config: RecommendConfig = RecommendConfig()) -> None:
        self.store = store
        self.catalog = catalog
        self.models = models          # engine.recommend.als.ModelHolder, or None
        self.people = people          # engine.profiles.people.People, or None
        self.config = config
        self.held_out = None          # (person, visitor id) -> in the global holdout (engine.experiments), or None
        self._popular: dict[str | None, tuple[float, list[tuple[str, float]]]] = {}
        self._info: dict[str, tuple[float, Info]] = {}
        self._neighbours: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}
        self._rankings: dict[str, tuple[float, tuple]] = {}   # item -> (computed at, (ranking, evidence))
        self._popular_scores: tuple[list | None, dict[str, float]] = (None, {})
        self._refreshing: dict[str, asyncio.Task] = {}
        self._catalog_version: tuple[float, int] = (float("-inf"), -1)

    # --- reads shared by both lists ---------------------------------------------

    async def popular(self, category: str | None = None) -> list[tuple[str, float]]:
        """Top popular items (overall or of a category), cached briefly: it moves slowly."""
        cached = self._popular.get(category)
        if cached and time.monotonic() - cached[0] < POPULAR_CACHE_S:
            return cached[1]
        ranked = await self.store.popular(self.config.candidates * 2, category)
        if len(self._popular) > 1000:
            self._popular.clear()
        self._popular[category] = (time.monotonic(), ranked)
        return ranked

    async def popular_scores(self) -> dict[str, float]:
        """The overall popular items as a dict, one object while the list is cached: kept blends share it."""
        ranked = await self.popular(None)
        if self._popular_scores[0] is not ranked:
            self._popular_scores = (ranked, dict(ranked))
        return self._popular_scores[1]

    async def neighbours(self, items: list[str], kind: str) -> dict[str, Neighbours]:
        """Each item's top normalized co-purchase (or co-view) neighbours and their raw pair counts,
        cached for `neighbours_cache_s`."""
        cfg, now = self.config, time.monotonic()
        out, missing = {}, []
        for item in dict.fromkeys(items):
            cached = self._neighbours.get((kind, item))
            if cached is not None and now - cached[0] < cfg.neighbours_cache_s:
                out[item] = cached[1]
            else:
                missing.append(item)
        if missing:
            fetched = await self.store.similar_counted(missing, kind, cfg.method, cfg.min_support, cfg.candidates)
            if cfg.neighbours_cache_s > 0:
                for item, scores in fetched.items():
                    _keep(self._neighbours, (kind, item), (now, scores))
            out.update(fetched)
        return out

    async def put_catalog(self, items) -> int:
        stored = await self.catalog.put(items)
        self._info.clear()
        return stored

    async def _check_catalog(self) -> None:
        """Drops the cached item info when the catalog changed (a PUT in any process); at most once per second."""
        checked, version = self._catalog_version
        now = time.monotonic()
        if now - checked < CATALOG_CHECK_S:
            return
        current = await self.catalog.version()
        if current != version:
            self._info.clear()
        self._catalog_version = (now, current)

    async def describe(self, items: Iterable[str]) -> dict[str, Info]:
        """Availability and category per item: the catalog's, else the category the stream gave it.

        Cached per process (INFO_CACHE_S, and dropped when the catalog's version moves),
        so a request usually makes no round trip for it; otherwise one for every item missing.
        """
        await self._check_catalog()
        now = time.monotonic()
        out, missing = {}, []
        for item in dict.fromkeys(items):
            cached = self._info.get(item)
            if cached is not None and now - cached[0] < INFO_CACHE_S:
                out[item] = cached[1]
            else:
                missing.append(item)
        if not missing:
            return out
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.catalog.key, missing)
            pipe.hmget(self.store.base + "cat", missing)
            entries, seen = await pipe.execute()
        if len(self._info) + len(missing) > INFO_CACHE_MAX:
            self._info.clear()
        for item, raw, cat in zip(missing, entries, seen):
            cat = cat.decode() if cat is not None else None
            if raw is not None:
                entry = Catalog.parse(item, raw)
                info = Info(entry.available, entry.category or cat)
            else:
                info = Info(True, cat)
            out[item] = info
            self._info[item] = (now, info)
        return out

    async def choose(self, ranked: list[tuple[str, float]], info: dict[str, Info], k: int, exclude: set[str],
                     category: str | None, cap: int, taken: list | None = None) -> list[tuple[str, float]]:
        """`select` over `ranked`, describing only as many candidates as the filters need (a few k usually)."""
        end, step = 0, 2 * k + 10
        while True:
            end = min(len(ranked), end + step)
            info.update(await self.describe(i for i, _ in ranked[:end] if i not in info and i not in exclude))
            chosen = select(ranked[:end], info, k, exclude, category, cap, taken)
            if len(chosen) >= k or end >= len(ranked):
                return chosen
            step *= 2

    def current_model(self):
        return self.models.current if self.models is not None else None

    def als_scores(self, seeds: list[str], model) -> dict[str, float]:
        """ALS item-item scores of the seeds' candidates under `model` (None: no model yet)."""
        return model.scores(seeds, self.config.candidates + len(seeds)) if model is not None else {}

    async def basket_sources(self, seeds: list[str], viewed: list[str] = ()) -> tuple[dict, dict]:
        """The sources of a list for several seeds at once (for-you, and also-bought with a cart), and
        the raw pair counts per seed behind the co-purchase and co-view sources (the evidence)."""
        if viewed:
            co, views = await asyncio.gather(self.neighbours(seeds, "purchase"), self.neighbours(list(viewed), "view"))
        else:   # most lists: no task to spawn, and a kept item's neighbours need no wait at all
            co, views = await self.neighbours(seeds, "purchase"), {}
        popular = await self.popular_scores()
        model = self.current_model()
        sources = {"cooccurrence": _summed(found.scores for found in co.values()),
                   "coview": _summed(found.scores for found in views.values()),
                   "als": self.als_scores(seeds, model),
                   "ease": model.regression_scores(seeds, self.config.candidates) if model is not None else {},
                   "popularity": popular}
        counts = {"cooccurrence": {seed: found.pairs for seed, found in co.items()},
                  "coview": {seed: found.pairs for seed, found in views.items()}}
        return sources, counts

    async def _fill(self, chosen, info, k, exclude, category, cap, seed_category, because) -> tuple[list, bool]:
        """Popularity after the blend: the requested or the seed's category first, then overall.

        Adds each fill item's evidence to `because`: its recent purchases in the list it came from.
        """
        if len(chosen) >= k:
            return chosen, False
        named = [category] if category is not None else ([seed_category] if seed_category else []) + [None]
        lists = [(name, await self.popular(name)) for name in named]
        origin: dict[str, tuple[str | None, float]] = {}
        for name, ranked in lists:
            for item, score in ranked:
                origin.setdefault(item, (name, score))
        candidates = [(item, 0.0) for _, ranked in lists for item, _ in ranked]
        picked = await self.choose(candidates, info, k, exclude, category, cap, taken=chosen)
        fill = [item for item, _ in picked[len(chosen):]]
        for item in fill:
            because[item] = popular_because(*origin[item])
        floor = min((s for _, s in chosen), default=1.0)
        return chosen + below(floor, fill), bool(fill)

    async def _person(self, visitor_id: str) -> dict | None:
        return await self.people.person(visitor_id) if self.people is not None else None

    # --- the two lists ----------------------------------------------------------

    async def also_bought(self, item: str, k: int = 10, visitor_id: str | None = None, category: str | None = None,
                          max_per_category: int | None = None) -> dict:
        cfg = self.config
        cap = cfg.max_per_category if max_per_category is None else max_per_category
        person = await self._person(visitor_id) if visitor_id is not None else None
        bought = list(person["commerce"]["items"]) if person else []
        cart = [i for i in cart_of(person, cfg.seeds_max) if i != item] \
            if person and wants_personalization(person) else []
        if cart:
            weights, (sources, counts) = cfg.for_you_weights, await self.basket_sources([item, *cart])
            warm = any(sources[name] for name in ("cooccurrence", "als", "ease"))
            blended = blend(sources, weights, k=10**9, exclude={item, *cart}) if warm else []
            ranked = [(i, s) for i, s, _ in blended]
            strongest = {i: name for i, _, name in blended}
            because = {}
        else:   # the item's own ranking, kept per process: the same for every visitor
            ranked, kept = await self._also_bought_ranking(item)
            warm = any(why["source"] == "cooccurrence" for why in kept.values())
            because = dict(kept)
            if not warm:    # never bought with anything: its category's best sellers first (the fill)
                ranked = []
        info = await self.describe([item, *bought, *(i for i, _ in ranked[:2 * k + 10])])
        exclude = {item, *cart} | bought_to_drop(bought, info, cfg.repurchase_categories)
        chosen = await self.choose(ranked, info, k, exclude, category, cap)
        chosen, filled = await self._fill(chosen, info, k, exclude, category, cap, info[item].category, because)
        if cart:   # evidence for the k listed only, not for every candidate of the blend
            because.update({i: because_of(i, strongest[i], counts, sources) for i, _ in chosen if i not in because})
        if not warm:
            source = "popularity"
        elif cart:
            source = sources_used(sources, weights, [i for i, _ in chosen], filled)
        else:
            used = {because[i]["source"] for i, _ in chosen}
            source = "+".join(name for name in ("cooccurrence", "popularity") if name in used)
        return {"item": item, "items": response_items(chosen, because), "source": source}

    async def _also_bought_ranking(self, item: str) -> tuple[list[tuple[str, float]], dict[str, dict]]:
        """The item's ranking before any filter and the evidence of each item: the same for every visitor.

        Kept for `neighbours_cache_s`; in the next as long, a request still gets the kept one
        while a background task recomputes it, so a hot item's requests never wait on Redis
        and nothing served is older than twice the cache time.
        """
        ttl, now = self.config.neighbours_cache_s, time.monotonic()
        cached = self._rankings.get(item)
        if cached is not None:
            age = now - cached[0]
            if age < ttl:
                return cached[1]
            if age < 2 * ttl:
                if item not in self._refreshing:
                    task = asyncio.create_task(self._rank_also_bought(item))
                    self._refreshing[item] = task
                    task.add_done_callback(lambda done: self._refreshed(item, done))
                return cached[1]
        return await self._rank_also_bought(item)

    def _refreshed(self, item: str, done: asyncio.Task) -> None:
        """A failed refresh (Redis out of reach) keeps the old ranking; the next request past its time tries again."""
        self._refreshing.pop(item, None)
        if not done.cancelled() and done.exception() is not None:
            log.warning("refreshing also-bought of an item failed: %r", done.exception())

    async def _rank_also_bought(self, item: str) -> tuple[list[tuple[str, float]], dict[str, dict]]:
        """engine.recommend.shrink.rank, scored inside Redis (the SIMILAR script, method shrunk), with
        the popular items competing, and each ranked item's evidence from the same counts."""
        cfg, started = self.config, time.monotonic()
        popular = [b for b, _ in await self.popular(None)]
        found = (await self.store.similar_counted([item], "purchase", "shrunk", 1, cfg.candidates,
                                                  cfg.prior_strength, popular))[item]
        ranked = sorted(((b, v) for b, v in found.scores.items() if b != item), key=lambda p: (-p[1], p[0]))
        because = {b: {"source": "cooccurrence", "with": item, "orders": found.pairs[b]} if found.pairs[b] > 0
                   else {"source": "popularity", "orders": found.counts[b]} for b, _ in ranked}
        if cfg.neighbours_cache_s > 0:
            _keep(self._rankings, item, (started, (ranked, because)))
        return ranked, because

    async def for_you(self, visitor_id: str, k: int = 10, category: str | None = None,
                      max_per_category: int | None = None) -> dict:
        cfg = self.config
        cap = cfg.max_per_category if max_per_category is None else max_per_category
        person = await self._person(visitor_id)
        personal = bool(person) and wants_personalization(person)
        if personal and self.held_out is not None and self.held_out(person, visitor_id):
            personal = False  # the global holdout gets popularity, to measure what personalization earns
        bought, viewed = seeds_of(person, cfg.seeds_max) if personal else ([], [])
        cart = cart_of(person, cfg.seeds_max) if personal else []
        seeds = list(dict.fromkeys(bought + cart + viewed))
        weights = cfg.for_you_weights
        sources, counts = await self.basket_sources(seeds, viewed) if seeds else ({}, {})
        warm = any(sources.get(name) for name in ("cooccurrence", "coview", "als", "ease"))
        blended = blend(sources, weights, k=10**9) if warm else []
        ranked = [(i, s) for i, s, _ in blended]
        strongest = {i: name for i, _, name in blended}
        because: dict[str, dict] = {}
        all_bought = list(person["commerce"]["items"]) if person else []
        info = await self.describe([*all_bought, *seeds, *(i for i, _ in ranked[:2 * k + 10])])
        exclude = bought_to_drop(all_bought, info, cfg.repurchase_categories) | set(viewed) | set(cart)
        chosen = await self.choose(ranked, info, k, exclude, category, cap)
        seed_category = _most_common(info[s].category for s in seeds)
        chosen, filled = await self._fill(chosen, info, k, exclude, category, cap, seed_category, because)
        # evidence for the k listed only, not for every candidate of the blend
        because.update({i: because_of(i, strongest[i], counts, sources) for i, _ in chosen if i not in because})
        return {"visitor_id": visitor_id, "items": response_items(chosen, because),
                "source": sources_used(sources, weights, [i for i, _ in chosen], filled) if warm else "popularity"}

    async def recently_viewed(self, visitor_id: str, k: int = 10) -> dict:
        """The person's recently viewed items (every linked device), none they bought; nothing for a
        visitor who chose not to be personalized or gave no personalization consent."""
        person = await self._person(visitor_id)
        items = recently_viewed(person, k) if person and wants_personalization(person) else []
        return {"visitor_id": visitor_id, "items": items}


def recently_viewed(person: dict, k: int) -> list[dict]:
    """What the person viewed on any of their devices, newest first, without what they bought."""
    bought = set(person["commerce"]["items"])
    viewed = sorted(person.get("viewed") or [], key=lambda v: (-v["ts"], v["id"]))
    out = []
    for v in viewed:
        if v["id"] not in bought and all(v["id"] != seen["id"] for seen in out):
            entry = {"id": v["id"], "viewed_at": v["ts"]}
            if v.get("category"):
                entry["category"] = v["category"]
            out.append(entry)
            if len(out) >= k:
                break
    return out


def _keep(cache: dict, key, value, limit: int = NEIGHBOURS_CACHE_MAX) -> None:
    """Stores `value` as the newest entry; past `limit`, the entries stored longest ago go first."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > limit:
        del cache[next(iter(cache))]


def _summed(per_seed: Iterable[dict[str, float]]) -> dict[str, float]:
    per_seed = list(per_seed)
    if not per_seed:
        return {}
    out = dict(per_seed[0])
    for scores in per_seed[1:]:
        for item, score in scores.items():
            out[item] = out.get(item, 0.0) + score
    return out


def _most_common(categories: Iterable[str | None]) -> str | None:
    counts: dict[str, int] = {}
    for cat in categories:
        if cat is not None:
            counts[cat] = counts.get(cat, 0) + 1
    return max(sorted(counts), key=lambda c: counts[c]) if counts else None
