"""Ranking of the served lists, pure (no I/O, no awaits): sources in, ranked and explained items out.

The service (engine.recommend.service) reads the stores; here its sources are summed
per seed and blended (engine.recommend.blend), the popularity fill is merged in
under the blended scores, and `select` filters: the excluded items (the seeds, what
the visitor bought unless its category is one people buy again), items the catalog
marks unavailable, an optional single category, and at most `cap` per category (0:
no cap; not applied with a category filter). Each response names the sources that
scored the items it returns ("cooccurrence+als", "popularity", ...), and each item
says why it is there (`because`, see `because_of`): the orders holding it and a seed,
the sessions viewing both, the model, or its recent purchases, read from the same
counts that ranked it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from engine.recommend.blend import blend

if TYPE_CHECKING:  # a value the store returns; the store's I/O stays out of here
    from engine.recommend.store import Neighbours

SOURCES = ("cooccurrence", "coview", "als", "ease", "popularity")
BLEND_ALL = 10**9  # the blend ranks every candidate: the filters decide how many are listed

Ranked = list[tuple[str, float]]


@dataclass(frozen=True)
class Info:
    available: bool = True
    category: str | None = None


@dataclass(frozen=True)
class Filters:
    """What a list keeps of a ranking: the first k not excluded, of `category`, at most `cap` a category."""

    k: int
    exclude: frozenset[str] = frozenset()
    category: str | None = None
    cap: int = 0

    def select(self, ranked: Iterable[tuple[str, float]], info: dict[str, Info], taken: Ranked | None = None) -> Ranked:
        return select(ranked, info, self.k, self.exclude, self.category, self.cap, taken)


def window(k: int) -> int:
    """How many candidates are described at first: a few k usually pass the filters."""
    return 2 * k + 10


def select(
    ranked: Iterable[tuple[str, float]],
    info: dict[str, Info],
    k: int,
    exclude: set[str] = frozenset(),
    category: str | None = None,
    max_per_category: int = 0,
    taken: list[tuple[str, float]] | None = None,
) -> list[tuple[str, float]]:
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


def bought_to_drop(bought: Iterable[str], info: dict[str, Info], repurchase: Iterable[str]) -> set[str]:
    again = set(repurchase)
    return {item for item in bought if info.get(item, Info()).category not in again}


# --- sources and the blend ----------------------------------------------------------


def basket(
    co: dict[str, Neighbours],
    views: dict[str, Neighbours],
    als: dict[str, float],
    regression: dict[str, float],
    popular: dict[str, float],
) -> tuple[dict, dict]:
    """The sources of a list for several seeds, and the raw pair counts per seed behind co-purchase
    and co-view (the evidence)."""
    sources = {
        "cooccurrence": summed(found.scores for found in co.values()),
        "coview": summed(found.scores for found in views.values()),
        "als": als,
        "ease": regression,
        "popularity": popular,
    }
    counts = {
        "cooccurrence": {seed: found.pairs for seed, found in co.items()},
        "coview": {seed: found.pairs for seed, found in views.items()},
    }
    return sources, counts


def warm(sources: dict[str, dict], names: Iterable[str]) -> bool:
    """Whether any of the named sources has a candidate (else the list is popularity alone)."""
    return any(sources.get(name) for name in names)


def blended(
    sources: dict[str, dict[str, float]], weights: dict[str, float], exclude: set[str] = frozenset()
) -> tuple[Ranked, dict[str, str]]:
    """Every candidate ranked by the blend, and the source that gave each most of its score."""
    out = blend(sources, weights, k=BLEND_ALL, exclude=exclude)
    return [(item, score) for item, score, _ in out], {item: name for item, _, name in out}


def shrunk(item: str, found: Neighbours) -> tuple[Ranked, dict[str, dict]]:
    """An item's own also-bought ranking (engine.recommend.shrink, scored in Redis) and each ranked
    item's evidence: the orders holding both, or, for a popular item never bought with it, its orders."""
    ranked = sorted(((b, v) for b, v in found.scores.items() if b != item), key=lambda p: (-p[1], p[0]))
    because = {
        b: {"source": "cooccurrence", "with": item, "orders": found.pairs[b]}
        if found.pairs[b] > 0
        else {"source": "popularity", "orders": found.counts[b]}
        for b, _ in ranked
    }
    return ranked, because


def summed(per_seed: Iterable[dict[str, float]]) -> dict[str, float]:
    per_seed = list(per_seed)
    if not per_seed:
        return {}
    out = dict(per_seed[0])
    for scores in per_seed[1:]:
        for item, score in scores.items():
            out[item] = out.get(item, 0.0) + score
    return out


# --- the popularity fill --------------------------------------------------------------


def fill_categories(category: str | None, seed_category: str | None) -> list[str | None]:
    """The popular lists a fill draws from, in order: the requested or the seed's category, then overall."""
    return [category] if category is not None else ([seed_category] if seed_category else []) + [None]


def fill_candidates(lists: list[tuple[str | None, Ranked]]) -> tuple[Ranked, dict[str, tuple[str | None, float]]]:
    """The popular lists as one candidate list, and where each item came from (list, purchases)."""
    origin: dict[str, tuple[str | None, float]] = {}
    for name, ranked in lists:
        for item, score in ranked:
            origin.setdefault(item, (name, score))
    return [(item, 0.0) for _, ranked in lists for item, _ in ranked], origin


def with_fill(chosen: Ranked, picked: Ranked, origin: dict[str, tuple[str | None, float]]) -> tuple[Ranked, dict]:
    """`chosen` and the fill items `picked` added after it, each scored under the lowest blended
    score, and the fill items' evidence: their recent purchases in the list they came from."""
    fill = [item for item, _ in picked[len(chosen) :]]
    floor = min((s for _, s in chosen), default=1.0)
    return chosen + below(floor, fill), {item: popular_because(*origin[item]) for item in fill}


def below(floor: float, items: list[str]) -> list[tuple[str, float]]:
    """Scores for fill items: in their order, every one under `floor` (the lowest blended score)."""
    n = len(items)
    return [(item, floor * (n - i) / (n + 1)) for i, item in enumerate(items)]


# --- what a response says ------------------------------------------------------------


def sources_used(
    sources: dict[str, dict[str, float]], weights: dict[str, float], items: Iterable[str], filled: bool
) -> str:
    items = list(items)
    used = [
        name
        for name in SOURCES
        if name in sources and weights.get(name, 0) > 0 and any(sources[name].get(i, 0) > 0 for i in items)
    ]
    if filled and "popularity" not in used:
        used.append("popularity")
    return "+".join(used) or "popularity"


def own_source(chosen: Ranked, because: dict[str, dict]) -> str:
    """The source of an item's own also-bought list: its co-purchases, the popular items, or both."""
    used = {because[i]["source"] for i, _ in chosen}
    return "+".join(name for name in ("cooccurrence", "popularity") if name in used)


def response_items(chosen: list[tuple[str, float]], because: dict[str, dict]) -> list[dict]:
    return [{"id": item, "score": round(score, 6), "because": because[item]} for item, score in chosen]


def evidence(
    chosen: Ranked, strongest: dict[str, str], counts: dict, sources: dict, known: dict[str, dict]
) -> dict[str, dict]:
    """`because_of` for the blended items listed (not for every candidate of the blend), but those `known`."""
    return {i: because_of(i, strongest[i], counts, sources) for i, _ in chosen if i not in known}


def popular_because(category: str | None, purchases: float) -> dict:
    """Evidence of a popularity pick: its purchases decayed to now, in its category's list or overall."""
    out = {"source": "popularity", "purchases": round(purchases, 2)}
    if category is not None:
        out["category"] = category
    return out


def because_of(
    item: str, source: str, counts: dict[str, dict[str, dict[str, int]]], sources: dict[str, dict[str, float]]
) -> dict:
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


def most_common(categories: Iterable[str | None]) -> str | None:
    counts: dict[str, int] = {}
    for cat in categories:
        if cat is not None:
            counts[cat] = counts.get(cat, 0) + 1
    return max(sorted(counts), key=lambda c: counts[c]) if counts else None
