"""Model training time on 1 million synthetic interactions: the engine's settings against baselines, same run.

Data (fixed seed): N interactions (default 1,000,000) from 50,000 persons over 20,000
items of Zipf popularity, each item in one of 40 hidden topics; a person draws from one
topic (70%) and the overall popularity (30%); 1 in 10 interactions is a purchase
(weight 5), the rest views (weight 1). Repeats of a (person, item) pair add up.

Rows, each fitting the same matrix with implicit's CPU ALS:
  engine         engine.recommend.als_training.train_from_interactions with AlsParams() (64 factors,
                 15 iterations, regularization 10, conjugate gradient, every core; then the
                 item-item regression of engine.recommend.ease over the 5,000 most touched
                 items), timed from the (person, item, weight) triples, so building the
                 matrix is included; and the same without the regression
  baselines      implicit's defaults (100 factors, regularization 0.01); the exact Cholesky
                 solver instead of conjugate gradient; the engine's parameters on one thread
The goal is the engine row under 20 s. A structure check keeps the speed honest: the share
of the 10 nearest items (factor dot product; for the regression, its 10 largest weights)
of the 1,000 most popular items that are in their own hidden topic (random: 1/40).

Usage: python benchmarks/train_speed.py [--interactions N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.recommend.als_model import AlsModel  # noqa: E402
from engine.recommend.als_training import AlsParams, build_matrix, train_from_interactions, train_matrix  # noqa: E402
from engine.recommend.ease import EaseParams  # noqa: E402

ALS_ONLY = EaseParams(max_items=0)

PERSONS, ITEMS, TOPICS = 50_000, 20_000, 40


def synthetic(n: int, seed: int = 7) -> tuple[list[tuple[str, str, float]], np.ndarray]:
    """(person, item, weight) triples and each item's hidden topic."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, ITEMS + 1) ** 0.8
    topic_of = rng.integers(TOPICS, size=ITEMS)
    person_topic = rng.integers(TOPICS, size=PERSONS)
    persons = rng.integers(PERSONS, size=n)
    items = np.empty(n, dtype=np.int64)
    from_topic = rng.random(n) < 0.7
    overall = popularity / popularity.sum()
    items[~from_topic] = rng.choice(ITEMS, size=int((~from_topic).sum()), p=overall)
    for t in range(TOPICS):
        chosen = from_topic & (person_topic[persons] == t)
        p = popularity * (topic_of == t)
        items[chosen] = rng.choice(ITEMS, size=int(chosen.sum()), p=p / p.sum())
    weights = np.where(rng.random(n) < 0.1, 5.0, 1.0)
    rows = [(f"p{p}", f"i{i}", w) for p, i, w in zip(persons.tolist(), items.tolist(), weights.tolist())]
    return rows, topic_of


def same_topic_share(model, topic_of: np.ndarray, top_items: int = 1000, k: int = 10) -> float:
    index = {int(item[1:]): j for j, item in enumerate(model.item_ids)}
    popular = [i for i in range(ITEMS) if i in index][:top_items]  # item ids are in popularity order
    factors = model.factors
    rows = np.array([index[i] for i in popular])
    scores = factors[rows] @ factors.T
    scores[np.arange(len(rows)), rows] = -np.inf
    nearest = np.argpartition(-scores, k, axis=1)[:, :k]
    ids = np.array([int(x[1:]) for x in model.item_ids])
    return float((topic_of[ids[nearest]] == topic_of[np.array(popular)][:, None]).mean())


def regression_same_topic_share(model, topic_of: np.ndarray, top_items: int = 1000, k: int = 10) -> float:
    """The same share for the regression: each popular item's k largest weights."""
    index = {int(item[1:]): j for j, item in enumerate(model.item_ids)}
    popular = [i for i in range(ITEMS) if i in index][:top_items]
    ids = np.array([int(x[1:]) for x in model.item_ids])
    right = total = 0
    for i in popular:
        nearest = sorted(model.regression.scores([index[i]], k).items(), key=lambda p: -p[1])
        right += sum(topic_of[ids[j]] == topic_of[i] for j, _ in nearest)
        total += k
    return right / total


def fit_with_implicit(matrix, **kwargs):
    """A baseline fitted by implicit directly (parameters the engine's AlsParams does not expose)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(random_state=42, **kwargs)
        als.fit(matrix, show_progress=False)
    return time.perf_counter() - started, als


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--interactions", type=int, default=1_000_000)
    args = ap.parse_args()
    print(f"Machine: {machine()}")
    t = time.perf_counter()
    rows, topic_of = synthetic(args.interactions)
    gen_s = time.perf_counter() - t

    t = time.perf_counter()
    train_from_interactions(rows[:20_000], AlsParams(item_regression=ALS_ONLY))  # loads implicit, starts its threads
    warm_s = time.perf_counter() - t
    t = time.perf_counter()
    engine_model = train_from_interactions(rows, AlsParams())
    engine_s = time.perf_counter() - t
    t = time.perf_counter()
    matrix, persons, items = build_matrix(rows)
    build_s = time.perf_counter() - t
    print(
        f"\nData: {len(rows):,} interactions ({gen_s:.1f} s to generate), {len(persons):,} persons x "
        f"{len(items):,} items, {matrix.nnz:,} distinct (person, item) cells; building the matrix from the "
        f"triples takes {build_s:.1f} s of the engine row. Every row runs warm: a first training of 20,000 "
        f"interactions in this process, untimed below, took {warm_s:.1f} s (loading implicit, starting its "
        f"threads), which `clickstream train` pays once.\n"
    )

    meta = engine_model.meta
    results = [
        (
            "engine: AlsParams() from triples (64 factors, reg 10, CG, all cores; then the regression)",
            engine_s,
            same_topic_share(engine_model, topic_of),
        ),
        (
            f"  of which the item-item regression ({meta['regression_items']:,} items, lambda "
            f"{AlsParams().item_regression.regularization:g}; its own share)",
            meta["regression_seconds"],
            regression_same_topic_share(engine_model, topic_of),
        ),
    ]
    t = time.perf_counter()
    als_only = train_from_interactions(rows, AlsParams(item_regression=ALS_ONLY))
    results.append(
        (
            "engine without the regression (CLICKSTREAM_EASE_MAX_ITEMS=0), from triples",
            time.perf_counter() - t,
            same_topic_share(als_only, topic_of),
        )
    )
    one_thread = train_matrix(matrix, items, AlsParams(num_threads=1, item_regression=ALS_ONLY))
    results.append(
        (
            "engine ALS parameters, 1 thread (ALS fit only)",
            one_thread.meta["train_seconds"],
            same_topic_share(one_thread, topic_of),
        )
    )
    for label, kwargs in (
        ("implicit defaults: 100 factors, reg 0.01, CG (fit only)", {}),
        ("64 factors, reg 10, exact Cholesky solver (fit only)", dict(factors=64, regularization=10.0, use_cg=False)),
    ):
        seconds, als = fit_with_implicit(matrix, **kwargs)
        model = AlsModel("baseline", items, np.ascontiguousarray(als.item_factors, dtype=np.float32))
        results.append((label, seconds, same_topic_share(model, topic_of)))

    print("| configuration | seconds | vs engine | same-topic share of 10 nearest |")
    print("|---|---|---|---|")
    for label, seconds, share in results:
        print(f"| {label} | {seconds:.2f} | {seconds / engine_s:.2f}x | {share:.3f} |")
    print(
        f"\nGoal: under 20 s for {len(rows):,} interactions: "
        f"{'met' if engine_s < 20 else 'NOT met'} ({engine_s:.1f} s). Random same-topic share: {1 / TOPICS:.3f}."
    )


if __name__ == "__main__":
    main()
