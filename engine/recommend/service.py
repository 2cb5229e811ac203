"""Recommendations served: "also bought" for an item, and "for you" for a visitor.

The orchestration: reads the stores (co-occurrence, catalog, people, the ALS model),
ranks with engine.recommend.ranking (pure), keeps what it read in
engine.recommend.caches and refreshes a hot item's ranking behind its requests. A list
is asked for as an engine.recommend.request.ListRequest.

also-bought(item): the item's own pair counts shrunk toward popularity by how few
orders the item has (engine.recommend.shrink: (c_ab + m n_b / N) / (n_a + m), no
minimum support; m is the one the worker chose from the shop's own orders by
leave-one-out (engine.recommend.prior_job), read by the scoring script, else
RecommendConfig.prior_strength). The popular items compete with the pairs by their
prior. A cold item (never bought with anything) gets popularity: its own category
first, then overall; so does any list left short of k. The ranking of an
item, before the per-request filters, is kept per process for neighbours_cache_s and
refreshed behind the requests (see _also_bought_ranking).

also-bought(item, anonymous visitor mid-session): the same evidence rule as for-you's below,
over the session's items with the asked item as the latest (moved or added at the end: it
is what the visitor looks at now); the session's and the cart's items are left out. Chosen
in benchmarks/recommend_robust.py by cross-validation on next-item queries (above the
item's own list on every set's validation queries; RESULTS.md). It comes before the cart's
blend, as for-you's session list does (the benchmark's sessions have no cart: not measured
against it). Where the rule has nothing (no session in the pool, an identified person, the
global holdout, nothing shared), the lists below, as before.

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
personalized, or one without personalization consent gets popularity. The viewed
seeds are left out of the list (ALS would rank them first), and so is what the
visitor bought, unless its category is one people buy again (`repurchase_categories`).

for-you(anonymous visitor mid-session): when the current session's views are in the
pool of recent sessions (engine.recommend.sessions) and other sessions share them, the
list is engine.recommend.session_rule's: the last item's co-occurrence in those
sessions where it has evidence, V-SKNN over them where it has little; each item says
which session item connects it and how many of the sessions read hold it
(`{"source": "session", "with", "sessions"}`). Source "session".
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Iterable

from engine.recommend import ranking, session_rule
from engine.recommend.caches import RecommendCaches, lookup
from engine.recommend.catalog import Catalog
from engine.recommend.config import RecommendConfig
from engine.recommend.ranking import Filters, Info, Ranked
from engine.recommend.request import ListRequest
from engine.recommend.seeds import bought_items, cart_of, recently_viewed, seeds_of, wants_personalization
from engine.recommend.store import CooccurrenceStore, Neighbours

log = logging.getLogger("engine.recommend")

CART_SOURCES = ("cooccurrence", "als", "ease")  # also-bought with a cart is warm with one of these
FOR_YOU_SOURCES = ("cooccurrence", "coview", "als", "ease")


class RecommendService:
    def __init__(
        self,
        store: CooccurrenceStore,
        catalog: Catalog,
        models=None,
        people=None,
        config: RecommendConfig = RecommendConfig(),
        sessions=None,
    ) -> None:
        self.store = store
        self.sessions = sessions  # engine.recommend.sessions.SessionStore, or None
        self.catalog = catalog
        self.models = models  # engine.recommend.als_store.ModelHolder, or None
        self.people = people  # engine.profiles.people.People, or None
        self.config = config
        self.held_out = None  # (person, visitor id) -> in the global holdout (engine.experiments), or None
        self._refreshing: dict[str, asyncio.Task] = {}

    @property
    def config(self) -> RecommendConfig:
        return self._config

    @config.setter
    def config(self, config: RecommendConfig) -> None:
        """A new config starts with new caches: their times are the config's."""
        self._config = config
        self.caches = RecommendCaches(config.neighbours_cache_s)

    # --- the lists ------------------------------------------------------------------

    async def also_bought(
        self,
        item: str,
        k: int = 10,
        visitor_id: str | None = None,
        category: str | None = None,
        max_per_category: int | None = None,
    ) -> dict:
        return await self.also_bought_list(ListRequest(item, visitor_id, k, category, max_per_category))

    async def for_you(
        self, visitor_id: str, k: int = 10, category: str | None = None, max_per_category: int | None = None
    ) -> dict:
        return await self.for_you_list(ListRequest(None, visitor_id, k, category, max_per_category))

    async def also_bought_list(self, request: ListRequest) -> dict:
        cfg, item = self.config, request.item
        person = await self._person(request.visitor_id) if request.visitor_id is not None else None
        personal = bool(person) and wants_personalization(person)
        bought = bought_items(person)
        cart = [i for i in cart_of(person, cfg.seeds_max) if i != item] if personal else []
        session = await self._also_bought_session(person, request.visitor_id, item) if personal else None
        if session is not None:  # an anonymous visitor mid-session: the session's items, the item the latest
            ranked, warm, because = session[2].ranked, True, {}
        elif cart:
            sources, counts = await self.basket_sources([item, *cart])
            warm = ranking.warm(sources, CART_SOURCES)
            ranked, strongest = ranking.blended(sources, cfg.for_you_weights, {item, *cart}) if warm else ([], {})
            because = {}
        else:  # the item's own ranking, kept per process: the same for every visitor
            ranked, kept = await self._also_bought_ranking(item)
            warm = any(why["source"] == "cooccurrence" for why in kept.values())
            because = dict(kept)
            if not warm:  # never bought with anything: its category's best sellers first (the fill)
                ranked = []
        info = await self.describe([item, *bought, *(i for i, _ in ranked[: ranking.window(request.k)])])
        seen = set(session[0]) if session is not None else set()
        filters = request.filters(
            {item, *cart} | seen | ranking.bought_to_drop(bought, info, cfg.repurchase_categories),
            cfg.max_per_category,
        )
        chosen, filled = await self._choose_and_fill(ranked, info, filters, info[item].category, because)
        if session is not None:
            source = self._session_evidence(session, chosen, filled, because)
        elif not warm:
            source = "popularity"
        elif cart:  # evidence for the k listed only, not for every candidate of the blend
            because.update(ranking.evidence(chosen, strongest, counts, sources, because))
            source = ranking.sources_used(sources, cfg.for_you_weights, [i for i, _ in chosen], filled)
        else:
            source = ranking.own_source(chosen, because)
        return {"item": item, "items": ranking.response_items(chosen, because), "source": source}

    async def for_you_list(self, request: ListRequest) -> dict:
        cfg, visitor_id = self.config, request.visitor_id
        person = await self._person(visitor_id)
        personal = bool(person) and wants_personalization(person)
        if personal and self._held_out(person, visitor_id):
            personal = False  # the global holdout gets popularity, to measure what personalization earns
        bought, viewed = seeds_of(person, cfg.seeds_max) if personal else ([], [])
        cart = cart_of(person, cfg.seeds_max) if personal else []
        seeds = list(dict.fromkeys(bought + cart + viewed))
        session = await self._session_list(person, visitor_id) if personal and viewed else None
        if session is not None:  # an anonymous visitor mid-session: the evidence rule over recent sessions
            sources, counts, warm = {}, {}, True
            ranked, strongest = session[2].ranked, {}
            viewed = list(dict.fromkeys([*viewed, *session[0]]))
        else:
            sources, counts = await self.basket_sources(seeds, viewed) if seeds else ({}, {})
            warm = ranking.warm(sources, FOR_YOU_SOURCES)
            ranked, strongest = ranking.blended(sources, cfg.for_you_weights) if warm else ([], {})
        all_bought = bought_items(person)
        info = await self.describe([*all_bought, *seeds, *(i for i, _ in ranked[: ranking.window(request.k)])])
        filters = request.filters(
            ranking.bought_to_drop(all_bought, info, cfg.repurchase_categories) | set(viewed) | set(cart),
            cfg.max_per_category,
        )
        because: dict[str, dict] = {}
        seed_category = ranking.most_common(info[s].category for s in seeds)
        chosen, filled = await self._choose_and_fill(ranked, info, filters, seed_category, because)
        if session is not None:
            source = self._session_evidence(session, chosen, filled, because)
        else:
            because.update(ranking.evidence(chosen, strongest, counts, sources, because))
            source = (
                ranking.sources_used(sources, cfg.for_you_weights, [i for i, _ in chosen], filled)
                if warm
                else "popularity"
            )
        return {"visitor_id": visitor_id, "items": ranking.response_items(chosen, because), "source": source}

    async def recently_viewed(self, visitor_id: str, k: int = 10) -> dict:
        """The person's recently viewed items (every linked device), none they bought; nothing for a
        visitor who chose not to be personalized or gave no personalization consent."""
        person = await self._person(visitor_id)
        items = recently_viewed(person, k) if person and wants_personalization(person) else []
        return {"visitor_id": visitor_id, "items": items}

    # --- choosing from a ranking ---------------------------------------------------------

    async def _choose_and_fill(
        self,
        ranked: Ranked,
        info: dict[str, Info],
        filters: Filters,
        seed_category: str | None,
        because: dict[str, dict],
    ) -> tuple[Ranked, bool]:
        """The filtered ranking, then popularity after it (the requested or the seed's category first,
        then overall) while the list is short; each fill item's evidence goes into `because`."""
        chosen = await self.choose(ranked, info, filters)
        if len(chosen) >= filters.k:
            return chosen, False
        lists = [(name, await self.popular(name)) for name in ranking.fill_categories(filters.category, seed_category)]
        candidates, origin = ranking.fill_candidates(lists)
        picked = await self.choose(candidates, info, filters, taken=chosen)
        chosen, fill_because = ranking.with_fill(chosen, picked, origin)
        because.update(fill_because)
        return chosen, bool(fill_because)

    async def choose(
        self, ranked: Ranked, info: dict[str, Info], filters: Filters, taken: Ranked | None = None
    ) -> Ranked:
        """`filters.select` over `ranked`, describing only as many candidates as the filters need (a few k usually)."""
        end, step = 0, ranking.window(filters.k)
        while True:
            end = min(len(ranked), end + step)
            info.update(await self.describe(i for i, _ in ranked[:end] if i not in info and i not in filters.exclude))
            chosen = filters.select(ranked[:end], info, taken)
            if len(chosen) >= filters.k or end >= len(ranked):
                return chosen
            step *= 2

    # --- the sources ---------------------------------------------------------------------

    def current_model(self):
        return self.models.current if self.models is not None else None

    async def basket_sources(self, seeds: list[str], viewed: list[str] = ()) -> tuple[dict, dict]:
        """The sources of a list for several seeds at once (for-you, and also-bought with a cart), and
        the raw pair counts per seed behind the co-purchase and co-view sources (the evidence)."""
        if viewed:
            co, views = await asyncio.gather(self.neighbours(seeds, "purchase"), self.neighbours(list(viewed), "view"))
        else:  # most lists: no task to spawn, and a kept item's neighbours need no wait at all
            co, views = await self.neighbours(seeds, "purchase"), {}
        popular = await self.popular_scores()
        model, n = self.current_model(), self.config.candidates
        if model is None:
            return ranking.basket(co, views, {}, {}, popular)
        return ranking.basket(
            co, views, model.scores(seeds, n + len(seeds)), model.regression_scores(seeds, n), popular
        )

    async def popular(self, category: str | None = None) -> Ranked:
        """Top popular items (overall or of a category), kept briefly: it moves slowly."""
        ranked = self.caches.popular.get(category)
        if ranked is None:
            ranked = await self.store.popular(self.config.candidates * 2, category)
            self.caches.popular[category] = ranked
        return ranked

    async def popular_scores(self) -> dict[str, float]:
        """The overall popular items as a dict, one object while the list is kept: kept blends share it."""
        return self.caches.popular_scores(await self.popular(None))

    async def neighbours(self, items: list[str], kind: str) -> dict[str, Neighbours]:
        """Each item's top normalized co-purchase (or co-view) neighbours and their raw pair counts,
        kept for `neighbours_cache_s`."""
        cfg, kept = self.config, self.caches.neighbours
        out, missing = lookup(kept, items, key=lambda item: (kind, item))
        if missing:
            fetched = await self.store.similar_counted(missing, kind, cfg.method, cfg.min_support, cfg.candidates)
            for item, found in fetched.items():
                kept[(kind, item)] = found
            out.update(fetched)
        return out

    def _held_out(self, person: dict, visitor_id: str) -> bool:
        """In the global holdout (engine.experiments): kept out of personalization, to measure what it earns."""
        return self.held_out is not None and self.held_out(person, visitor_id)

    async def _also_bought_session(self, person: dict, visitor_id: str, item: str):
        """_session_list for also-bought with a visitor, `item` (what they look at now) the session's latest."""
        if self._held_out(person, visitor_id):
            return None
        return await self._session_list(person, visitor_id, item)

    @staticmethod
    def _session_evidence(session, chosen: Ranked, filled: bool, because: dict[str, dict]) -> str:
        """Each listed item's session evidence (the fill's is already in `because`), and the list's source."""
        items, candidates, found = session
        because.update({i: found.evidence(items, candidates, i) for i, _ in chosen if i not in because})
        return "session+popularity" if filled else "session"

    async def _session_list(self, person: dict, visitor_id: str, latest: str | None = None):
        """(the session's items, the stored sessions read or None, session_rule.SessionList) for an anonymous
        visitor whose current session has views in the pool and other sessions sharing them; else None.
        `latest`: the item the visitor is looking at now, taken as the session's latest (moved or added at
        its end).

        The last item's counts in its recent sessions are kept for caches.SESSION_COUNTS_TIMES times
        neighbours_cache_s (the same for every visitor, less their own session); the sessions themselves
        are read, fresh, only below the threshold."""
        current = (person.get("sessions") or {}).get("current")
        if self.sessions is None or person.get("user_id") or not current:
            return None
        session, indexed = await self.sessions.head(visitor_id, current, latest)
        if not session:
            return None
        counts = self.caches.session_counts.get(session[-1])
        if counts is None:
            counts = await self.sessions.last_counts(session[-1])
            self.caches.session_counts[session[-1]] = counts
        n_all, pairs = counts
        n_last = n_all - 1 if indexed and n_all > 0 else n_all
        popular = await self.popular_scores()
        if n_last >= session_rule.EVIDENCE_THRESHOLD:
            found, candidates = session_rule.from_counts(session, pairs, n_last, popularity=popular), None
        else:
            read = await self.sessions.read(visitor_id, current, latest=latest)
            if read.pairs is not None:  # more sessions since the counts were kept
                found, candidates = (
                    session_rule.from_counts(read.session, read.pairs, read.n_last, popularity=popular),
                    None,
                )
            elif read.candidates:
                found, candidates = (
                    session_rule.for_session(read.session, read.candidates, popularity=popular),
                    read.candidates,
                )
            else:
                return None
            session = read.session
        return (session, candidates, found) if found.ranked else None

    async def _person(self, visitor_id: str) -> dict | None:
        return await self.people.person(visitor_id) if self.people is not None else None

    # --- an item's own also-bought ranking, refreshed behind the requests ------------------

    async def _also_bought_ranking(self, item: str) -> tuple[Ranked, dict[str, dict]]:
        """The item's ranking before any filter and the evidence of each item: the same for every visitor.

        Kept for `neighbours_cache_s`; in the next as long, a request still gets the kept one
        while a background task recomputes it, so a hot item's requests never wait on Redis
        and nothing served is older than twice the cache time.
        """
        kept = self.caches.ranking(item)
        if kept is None:
            return await self._rank_also_bought(item)
        ranked, stale = kept
        if stale and item not in self._refreshing:
            task = asyncio.create_task(self._rank_also_bought(item))
            self._refreshing[item] = task
            task.add_done_callback(lambda done: self._refreshed(item, done))
        return ranked

    def _refreshed(self, item: str, done: asyncio.Task) -> None:
        """A failed refresh (Redis out of reach) keeps the old ranking; the next request past its time tries again."""
        self._refreshing.pop(item, None)
        if not done.cancelled() and done.exception() is not None:
            log.warning("refreshing also-bought of an item failed: %r", done.exception())

    async def _rank_also_bought(self, item: str) -> tuple[Ranked, dict[str, dict]]:
        """engine.recommend.shrink.rank, scored inside Redis (the SIMILAR script, method shrunk, with the
        stored prior strength if one was chosen), with the popular items competing, and each ranked item's
        evidence from the same counts."""
        cfg, caches, started = self.config, self.caches, time.monotonic()  # a new config meanwhile: not kept
        popular = [b for b, _ in await self.popular(None)]
        found = (
            await self.store.similar_counted(
                [item], "purchase", "shrunk", 1, cfg.candidates, cfg.prior_strength, popular, stored_strength=True
            )
        )[item]
        ranked = ranking.shrunk(item, found)
        caches.keep_ranking(item, started, ranked)
        return ranked

    # --- the catalog ------------------------------------------------------------------------

    async def put_catalog(self, items) -> int:
        stored = await self.catalog.put(items)
        self.caches.info.clear()
        return stored

    async def describe(self, items: Iterable[str]) -> dict[str, Info]:
        """Availability and category per item: the catalog's, else the category the stream gave it.

        Kept per process (and dropped when the catalog's version moves, checked at most once a
        second), so a request usually makes no round trip for it; otherwise one for every item missing.
        """
        if self.caches.catalog_check_due():
            self.caches.catalog_seen(await self.catalog.version())
        out, missing = lookup(self.caches.info, items)
        if not missing:
            return out
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.catalog.key, missing)
            pipe.hmget(self.store.base + "cat", missing)
            entries, seen = await pipe.execute()
        for item, raw, cat in zip(missing, entries, seen):
            cat = cat.decode() if cat is not None else None
            if raw is not None:
                entry = Catalog.parse(item, raw)
                info = Info(entry.available, entry.category or cat)
            else:
                info = Info(True, cat)
            out[item] = info
            self.caches.info[item] = info
        return out
