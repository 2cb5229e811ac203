"""Offline "also bought" quality: leave one item out of a basket, rank the rest.

Data sets (the same table for each, so nothing is tuned to groceries alone):
  groceries  the real baskets in ../shared/data/groceries.csv (9,835 baskets, 169 items)
  synthetic  20,000 generated baskets with a known structure: 1,000 items of Zipf
             popularity, each in one of 20 hidden topics; a basket draws from 1-2 topics
             plus the global popularity (fixed seed)

Split: `--split order` (default) trains on the first 80% of baskets by basket id and
tests on the last 20%; groceries ids follow time, so this tests on the future.
`--split random` shuffles the baskets with `--seed` first.

Protocol: every test basket with >= 2 distinct items loses one item (a seeded random
choice); each method ranks 10 items given the others, never the query items
themselves. HitRate@10 = share of baskets whose left-out item is in the 10;
MRR@10 = mean of 1/rank (0 when missing). An item unseen in training is a miss.

Methods (all fitted on the training baskets only):
  popularity          baskets containing the item (no timestamps, so no decay)
  cooc raw            co-occurrence counts (CoCounts, method='raw'), summed over query items
  cooc cosine/jaccard/lift   normalized co-occurrence, summed over query items
  als ...             implicit ALS (64 factors, 15 iterations, fixed random_state) on the
                      basket x item matrix, baskets as users. Three ways to query it:
                      item-item dot: item-factor dot products summed over the query items
                        (what is used; it keeps the popularity the factor norms carry);
                      item-item cosine: `similar_items`, summed; near random here, since
                        normalizing the factors throws that popularity away;
                      fold-in: the query as a new user, `recommend(recalculate_user=True)`.
                      Regularization 0.05 overfits (64 factors for 169 items), so it is
                      tuned too; the untuned row is kept for reference.
  blend               engine.recommend.blend: cooc cosine + als item-item dot + popularity
                      fill, each source cut to its top 50 candidates (as served)

Tuning, on a validation slice only (models refitted on the first 80% of the training
baskets, scored on the remaining 20% of them; the test baskets choose nothing): first
the ALS regularization from GRID_REG by the item-item dot HitRate@10, then the blend
weights on a grid (cosine's weight fixed at 1, only ratios matter) by HitRate@10, with
MRR@10 breaking ties. Each data set is tuned the same way on its own training baskets.
The paired differences at the end of each table say which gaps are larger than noise.

Usage: python benchmarks/recommend_quality.py [--data PATH] [--split order|random] [--seed N]
Prints markdown tables only; writes nothing.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with threaded BLAS

import argparse  # noqa: E402
import csv  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from itertools import product  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.recommend.blend import blend  # noqa: E402
from engine.recommend.cooccur import CoCounts  # noqa: E402
from engine.recommend.popularity import top  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "groceries.csv"
K = 10
CANDIDATES = 50
ALS_PARAMS = dict(factors=64, iterations=15, random_state=42)
GRID_REG = (0.05, 1.0, 10.0, 30.0, 100.0)
GRID_ALS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
GRID_POP = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
Query = tuple[list[str], str]


def load_groceries(path: Path) -> list[list[str]]:
    """Baskets in basket-id order, each its distinct items in file order."""
    baskets: dict[int, dict[str, None]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            baskets.setdefault(int(row["basket"]), {})[row["item"]] = None
    return [list(baskets[b]) for b in sorted(baskets)]


def synthetic(n_baskets: int = 20_000, n_items: int = 1_000, n_topics: int = 20, seed: int = 7) -> list[list[str]]:
    """Baskets with a hidden topic structure under Zipf popularity, so co-purchase has signal to find."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)
    topic_of = rng.integers(n_topics, size=n_items)
    topics = [popularity * (topic_of == t) for t in range(n_topics)]
    topics = [p / p.sum() for p in topics]
    overall = popularity / popularity.sum()
    baskets = []
    for _ in range(n_baskets):
        chosen = rng.choice(n_topics, size=rng.integers(1, 3), replace=False)
        p = 0.3 * overall + 0.7 * sum(topics[t] for t in chosen) / len(chosen)
        size = min(1 + rng.poisson(3.5), 30)
        baskets.append([f"i{i:04d}" for i in rng.choice(n_items, size=size, replace=False, p=p)])
    return baskets


def split(baskets: list[list[str]], how: str, seed: int, train_share: float = 0.8):
    if how == "random":
        baskets = baskets[:]
        random.Random(seed).shuffle(baskets)
    cut = int(len(baskets) * train_share)
    return baskets[:cut], baskets[cut:]


def queries(baskets: list[list[str]], seed: int) -> list[Query]:
    """One (query items, left-out item) per basket of >= 2 distinct items; seeded, so repeatable."""
    rng = random.Random(seed)
    out = []
    for basket in baskets:
        items = list(dict.fromkeys(basket))
        if len(items) >= 2:
            held = rng.choice(items)
            out.append(([i for i in items if i != held], held))
    return out


def per_query(ranked: list[list[str]], qs: list[Query]) -> np.ndarray:
    """(hit, reciprocal rank) per query, kept so methods can be compared pair by pair."""
    out = np.zeros((len(qs), 2))
    for n, (ids, (_, held)) in enumerate(zip(ranked, qs)):
        if held in ids[:K]:
            out[n] = 1.0, 1.0 / (ids.index(held) + 1)
    return out


def score(ranked: list[list[str]], qs: list[Query]) -> tuple[float, float]:
    hr, mrr = per_query(ranked, qs).mean(axis=0)
    return float(hr), float(mrr)


class Models:
    """Everything fitted on one set of training baskets."""

    def __init__(self, train: list[list[str]], reg: float):
        t = time.perf_counter()
        self.pop = Counter(i for b in train for i in dict.fromkeys(b))
        self.pop_top = dict(top(self.pop, CANDIDATES + 50))
        self.fit_pop = time.perf_counter() - t

        t = time.perf_counter()
        self.co = CoCounts()
        for b in train:
            self.co.add_order(b)
        self._nb: dict[tuple[str, str], dict[str, float]] = {}
        self.fit_co = time.perf_counter() - t

        self.items = sorted(self.pop)
        self.index = {item: j for j, item in enumerate(self.items)}
        self.x = self.matrix(train)
        self.refit_als(reg)

    def refit_als(self, reg: float) -> None:
        """ALS and its item-item similarities: factor dot products, and the cosine `similar_items` gives."""
        t = time.perf_counter()
        self.als = AlternatingLeastSquares(regularization=reg, **ALS_PARAMS)
        self.als.fit(self.x, show_progress=False)
        n = len(self.items)
        self.sim = {"dot": self.als.item_factors @ self.als.item_factors.T,
                    "cos": np.zeros((n, n), dtype=np.float32)}
        ids, sims = self.als.similar_items(np.arange(n), N=n)
        np.put_along_axis(self.sim["cos"], ids, sims, axis=1)
        self.fit_als = time.perf_counter() - t

    def matrix(self, baskets: list[list[str]]) -> sp.csr_matrix:
        rows, cols = [], []
        for r, b in enumerate(baskets):
            for j in {self.index[i] for i in b if i in self.index}:
                rows.append(r)
                cols.append(j)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(baskets), len(self.items)))

    def cooc(self, query: list[str], method: str) -> dict[str, float]:
        """Neighbour scores summed over the query items (neighbours cached per item)."""
        out: dict[str, float] = {}
        for q in query:
            nb = self._nb.get((q, method))
            if nb is None:
                nb = self._nb[(q, method)] = self.co.neighbours(q, method)
            for item, s in nb.items():
                out[item] = out.get(item, 0.0) + s
        return out

    def als_item(self, query: list[str], kind: str = "dot") -> dict[str, float]:
        """Item-item ALS similarity summed over the query items; its top candidates only."""
        rows = [self.index[q] for q in query if q in self.index]
        if not rows:
            return {}
        summed = self.sim[kind][rows].sum(axis=0)
        return {self.items[j]: float(summed[j]) for j in np.argsort(-summed)[:CANDIDATES + len(rows)]}

    def als_foldin(self, qs: list[Query]) -> list[list[str]]:
        ids, _ = self.als.recommend(np.arange(len(qs)), self.matrix([q for q, _ in qs]), N=K,
                                    recalculate_user=True, filter_already_liked_items=True)
        return [[self.items[j] for j in row if j >= 0] for row in ids]

    def sources(self, query: list[str]) -> dict[str, dict[str, float]]:
        cos = self.cooc(query, "cosine")
        cos = dict(sorted(cos.items(), key=lambda p: (-p[1], p[0]))[:CANDIDATES + len(query)])
        return {"cooc": cos, "als": self.als_item(query), "pop": self.pop_top}


def ranked(scores: dict[str, float], query: list[str]) -> list[str]:
    return [i for i, _ in top(scores, K, exclude=query)]


def run_blend(sources: list[dict], qs: list[Query], weights: dict[str, float]) -> list[list[str]]:
    return [[i for i, _, _ in blend(s, weights, K, set(q))] for s, (q, _) in zip(sources, qs)]


def tune(train: list[list[str]], seed: int) -> tuple[float, dict[str, float], float, float]:
    """ALS regularization, then blend weights, chosen on a validation slice of the training baskets only."""
    fit, val = split(train, "order", seed)
    qs = queries(val, seed + 1)
    m = Models(fit, GRID_REG[0])
    best_reg = None
    for reg in GRID_REG:
        m.refit_als(reg)
        key = score([ranked(m.als_item(q), q) for q, _ in qs], qs)
        if best_reg is None or key > best_reg[1]:
            best_reg = (reg, key)
    m.refit_als(best_reg[0])
    srcs = [m.sources(q) for q, _ in qs]
    best = None
    for w_als, w_pop in product(GRID_ALS, GRID_POP):
        w = {"cooc": 1.0, "als": w_als, "pop": w_pop}
        hr, mrr = score(run_blend(srcs, qs, w), qs)
        if best is None or (hr, mrr) > best[1:]:
            best = (w, hr, mrr)
    return (best_reg[0], *best)


def evaluate(name: str, baskets: list[list[str]], how: str, seed: int) -> None:
    train, test = split(baskets, how, seed)
    qs = queries(test, seed)
    t = time.perf_counter()
    reg, weights, val_hr, val_mrr = tune(train, seed)
    tune_s = time.perf_counter() - t
    m = Models(train, GRID_REG[0])
    rows = []

    def timed(label: str, fit_s: float, fn) -> None:
        t = time.perf_counter()
        out = fn()
        rows.append((label, per_query(out, qs), fit_s, time.perf_counter() - t))

    timed("popularity", m.fit_pop, lambda: [ranked(m.pop, q) for q, _ in qs])
    for method in ("raw", "cosine", "jaccard", "lift"):
        timed(f"cooc {method}", m.fit_co, lambda method=method: [ranked(m.cooc(q, method), q) for q, _ in qs])
    timed("als item-item dot, reg 0.05 (untuned)", m.fit_als, lambda: [ranked(m.als_item(q), q) for q, _ in qs])
    m.refit_als(reg)
    timed(f"als item-item cosine (similar_items), reg {reg:g}", m.fit_als,
          lambda: [ranked(m.als_item(q, "cos"), q) for q, _ in qs])
    timed(f"als item-item dot, reg {reg:g}", m.fit_als, lambda: [ranked(m.als_item(q), q) for q, _ in qs])
    timed(f"als fold-in (recalculate_user), reg {reg:g}", m.fit_als, lambda: m.als_foldin(qs))
    timed("blend (cosine + als + popularity)", m.fit_co + m.fit_als + m.fit_pop,
          lambda: run_blend([m.sources(q) for q, _ in qs], qs, weights))

    n_items = len({i for b in baskets for i in b})
    print(f"\n### {name}: {len(baskets):,} baskets, {n_items:,} items; split {how}: "
          f"{len(train):,} train / {len(test):,} test baskets\n")
    print(f"Tuned on a validation slice of train ({tune_s:.1f} s): ALS regularization {reg:g}, "
          f"blend weights {weights}; "
          f"validation HitRate@10 {val_hr:.3f}, MRR@10 {val_mrr:.3f}\n")
    print("| method | HitRate@10 | MRR@10 | test baskets | fit s | query s |")
    print("|---|---|---|---|---|---|")
    for label, pq, fit_s, q_s in rows:
        hr, mrr = pq.mean(axis=0)
        print(f"| {label} | {hr:.3f} | {mrr:.3f} | {len(qs):,} | {fit_s:.2f} | {q_s:.2f} |")
    print("\nBlend minus each baseline, same test baskets (mean paired difference, 95% interval):\n")
    blended = rows[-1][1]
    for label, pq, _, _ in rows:
        if label in ("popularity", "cooc raw", "cooc cosine") or label.startswith("als item-item dot, reg") \
                and "untuned" not in label:
            d = blended - pq
            half = 1.96 * d.std(axis=0, ddof=1) / np.sqrt(len(d))
            print(f"- vs {label}: HitRate@10 {d[:, 0].mean():+.3f} ± {half[0]:.3f}, "
                  f"MRR@10 {d[:, 1].mean():+.3f} ± {half[1]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", type=Path, default=DATA, help="groceries CSV (basket,item,...)")
    ap.add_argument("--split", choices=("order", "random"), default="order")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    print(f"Machine: {machine()}")
    evaluate("groceries", load_groceries(args.data), args.split, args.seed)
    evaluate("synthetic (20 hidden topics, Zipf popularity)", synthetic(), args.split, args.seed)


if __name__ == "__main__":
    main()
