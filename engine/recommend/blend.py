"""Blend several candidate sources into one ranked "also bought" list.

Sources score on different scales (a confidence is at most 1, a summed ALS similarity
or a purchase count is not), so each source is divided by its own maximum before
the weighted sum; a weight then means "how much the best item of this source is
worth". The served blend uses three sources, in this order of weight:

1. normalized co-purchase similarity (by default the confidence P(b | a) of the
   co-occurrence counts, summed over the seed items, so each seed has one vote of
   the same size): the most precise signal where pairs have support;
2. ALS item-item similarity (dot product of item factors, summed over the seed
   items): generalizes to pairs seen too rarely to count. The dot product, not the
   cosine of the factors, which drops popularity and ranked near random offline;
3. decayed popularity, with a small weight: the fallback that fills the list when
   the first two have fewer than k candidates, and breaks their near-ties.

Weights come from `benchmarks/recommend_quality.py`, tuned on a validation slice of
the training baskets. Negative scores (ALS similarity can be below 0) are clipped
to 0: they mean "unrelated", not "avoid". Pure: no I/O, no state.
"""

from __future__ import annotations

from typing import Mapping


def blend(
    sources: Mapping[str, Mapping[str, float]], weights: Mapping[str, float], k: int, exclude: set[str] = frozenset()
) -> list[tuple[str, float, str]]:
    """The top k (id, score, strongest source) by weighted max-normalized score, ties by id.

    Each source is normalized by its max over the candidates left after `exclude`, so
    its best candidate is worth exactly its weight whatever the seed items are.

    The strongest source is the one contributing most to that item's score (ties by
    source name); it lets the caller say why an item was shown. Items no source scores
    above 0 are left out. A source without a weight is an error rather than silently
    ignored; a weight without a source is fine (that source may be unavailable).
    """
    missing = set(sources) - set(weights)
    if missing:
        raise ValueError(f"no weight for sources {sorted(missing)}")
    if any(w < 0 for w in weights.values()):
        raise ValueError("weights must be >= 0")
    if k <= 0:
        return []
    total: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for name in sorted(sources):
        weight = weights[name]
        if weight == 0:
            continue
        kept = [(item, score) for item, score in sources[name].items() if score > 0 and item not in exclude]
        if not kept:
            continue
        top = max([score for _, score in kept])
        for item, score in kept:
            part = weight * score / top
            before = total.get(item)
            if before is None:
                total[item] = part
                best[item] = (part, name)
            else:
                total[item] = before + part
                if part > best[item][0]:
                    best[item] = (part, name)
    ranked = sorted([(-score, item) for item, score in total.items()])[:k]  # tuples compare in C: no key calls
    return [(item, -negative, best[item][1]) for negative, item in ranked]
