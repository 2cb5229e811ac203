"""What recommendation serving is tuned by: the blend's weights, the filters' defaults, cache time.

One frozen RecommendConfig per RecommendService (engine.recommend.service), built from
Settings in the composition root (engine.wiring).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.recommend import shrink

# benchmarks/recommend_quality.py: one choice for groceries and the synthetic shop, made on their
# validation slices (confidence similarity, ALS regularization 10, regression lambda 100). For-you and
# also-bought with a cart, on whole-basket queries: the regression at the weight of co-purchase, ALS at
# half of it. Co-view is not tuned (no view data). Also-bought of one item is engine.recommend.shrink.
FOR_YOU_WEIGHTS = {"cooccurrence": 1.0, "coview": 0.5, "als": 0.5, "ease": 1.0, "popularity": 0.1}
# A product page is asked for over and over: its neighbours (and its also-bought ranking) are kept per
# process this long, so a hot item costs one Redis script per second instead of one per request
# (benchmarks/recommend_latency.py). A new order shows within twice this plus the worker's delay.
NEIGHBOURS_CACHE_S = 1.0


@dataclass(frozen=True)
class RecommendConfig:
    for_you_weights: dict = field(default_factory=lambda: dict(FOR_YOU_WEIGHTS))
    method: str = "confidence"  # cooccur.METHODS; CLICKSTREAM_RECOMMEND_SIMILARITY
    min_support: float = 2  # for-you and carts; also-bought of one item has none
    prior_strength: float = shrink.PRIOR_STRENGTH  # m of engine.recommend.shrink until one is chosen (prior_job)
    candidates: int = 50  # per source, as in the offline benchmark
    max_per_category: int = 3  # default of the query parameter; 0: no cap
    repurchase_categories: tuple[str, ...] = ()
    seeds_max: int = 20  # newest bought + viewed items a for-you list starts from
    neighbours_cache_s: float = NEIGHBOURS_CACHE_S  # 0: ask Redis on every request

    @classmethod
    def from_settings(cls, settings) -> "RecommendConfig":
        return cls(
            max_per_category=settings.recommend_max_per_category,
            repurchase_categories=settings.recommend_repurchase_categories,
            method=settings.recommend_similarity,
        )
