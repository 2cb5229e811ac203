"""Offline recommendation quality: leave one item out of a basket, rank the rest.

Data sets (the same tables for each, so nothing is tuned to groceries alone):
  groceries  the real baskets in ../shared/data/groceries.csv (9,835 baskets, 169 items)
  synthetic  20,000 generated baskets with a known structure: 1,000 items of Zipf
             popularity, each in one of 20 hidden topics; a basket draws from 1-2 topics
             plus the global popularity (fixed seed)

Split: `--split order` (default) trains on the first 80% of baskets by basket id and
tests on the last 20%; groceries ids follow time, so this tests on the future.
`--split random` shuffles the baskets with `--seed` first.

Protocol: every test basket with >= 2 distinct items loses one item (a seeded random
choice); each method ranks 10 items, never the query items themselves. Two queries
per basket, the same left-out item in both:
  basket    the rest of the basket: the served for-you path for a shopper whose bought
            items are the query, and also-bought for a shopper with those items in the
            cart (per-item lists summed, FOR_YOU_WEIGHTS)
  one item  one other item of the basket, drawn at random: exactly the also-bought
            call (RecommendService.also_bought, ALSO_BOUGHT_WEIGHTS)
HitRate@10 = share of baskets whose left-out item is in the 10; MRR@10 = mean of
1/rank (0 when missing). An item unseen in training is a miss.

Methods (all fitted on the training baskets only):
  popularity           baskets containing the item (no timestamps, so no decay)
  cooc <measure>       co-occurrence (CoCounts, min support 2), summed over the query items:
                       raw counts, or engine.recommend.cooccur's normalized measures
  als item-item dot    the engine's ALS (engine.recommend.als_training.train_from_interactions:
                       AlsParams, each basket a person, every line a purchase of weight
                       DEFAULT_WEIGHTS['purchase']), AlsModel.scores summed over the query;
                       at the served regularization (AlsParams) and at the one the
                       validation slice prefers when it differs
  als item-item cosine the same factors normalized first, for reference
  ease item-item       the regression the same training fits (engine.recommend.ease, EaseParams,
                       the purchase weight scaled to 1), AlsModel.regression_scores summed over the query
  served blend         what RecommendService does with the query as seeds: per item, the
                       store's top RecommendConfig.candidates neighbours by
                       RecommendConfig.method (min support RecommendConfig.min_support),
                       summed over the items; AlsModel.scores; the regression's top
                       candidates; the top 2 x candidates popular items; engine.recommend.blend
                       with the served weights. The served filters are left out (category
                       cap, availability, what the visitor bought), and groceries has no
                       person ids
  served blend without the regression   the same with the regression's weight 0 (basket queries)

Tuning, on a validation slice only (models refitted on the first 80% of the training
baskets, scored on the remaining 20% of them; the test baskets choose nothing): the
ALS regularization from GRID_REG by the item-item dot HitRate@10 (basket queries),
the regression's lambda from GRID_LAMBDA by its own HitRate@10 (basket queries),
then, at the served regularization and lambda, the blend weights on a grid (co-occurrence fixed
at 1, only ratios matter). The weights chosen for the served constants are those
whose worse gain in HitRate@10 over the better baseline (popularity or raw counts),
across the two data sets, is the largest (MRR@10 breaks ties): one choice for both,
not one per data set. The script prints that joint choice next to the served
constants, and the paired differences at the end of each table say which gaps are
larger than noise.

Usage: python benchmarks/recommend_quality.py [--data PATH] [--split order|random] [--seed N]
Prints markdown tables only; writes nothing.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with threaded BLAS

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from itertools import product  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.recommend import als_training, ease  # noqa: E402
from engine.recommend.als_model import AlsModel  # noqa: E402
from engine.recommend.blend import blend  # noqa: E402
from engine.recommend.cooccur import METHODS, CoCounts, order_items  # noqa: E402
from engine.recommend.popularity import top  # noqa: E402
from engine.recommend.config import FOR_YOU_WEIGHTS, RecommendConfig  # noqa: E402
from engine.recommend.interactions import DEFAULT_WEIGHTS  # noqa: E402

# The one-item blend served before engine.recommend.shrink replaced it (benchmarks/recommend_robust.py
# compares the two on every data set); kept here so this script still measures it.
ALSO_BOUGHT_WEIGHTS = {"cooccurrence": 1.0, "als": 0.1, "ease": 0.0, "popularity": 0.25}

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "groceries.csv"
K = 10
SERVED = RecommendConfig()
SERVED_REG = als_training.AlsParams().regularization
SERVED_EASE = ease.EaseParams()
PURCHASE = DEFAULT_WEIGHTS["purchase"]
GRID_REG = (3.0, 10.0, 30.0, 100.0)
GRID_ALS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
GRID_POP = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
GRID_LAMBDA = (30.0, 100.0, 300.0, 1000.0)
GRID_EASE = (0.0, 0.25, 0.5, 1.0, 2.0)
PROTOCOLS = {"basket": FOR_YOU_WEIGHTS, "one item": ALSO_BOUGHT_WEIGHTS}
WEIGHT_NAMES = {"basket": "FOR_YOU_WEIGHTS", "one item": "ALSO_BOUGHT_WEIGHTS"}
SOURCES = ("cooccurrence", "als", "ease", "popularity")
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


def queries(baskets: list[list[str]], seed: int, every_item: bool = False) -> dict[str, list[Query]]:
    """Per protocol, one (query items, left-out item) per basket of >= 2 distinct items; seeded.

    The left-out items are drawn first and alone, so they stay the ones earlier runs used.
    `every_item` (validation only) leaves out each item of a basket in turn: more queries, less noise.
    """
    rng, pick = random.Random(seed), random.Random(seed + 1)
    out: dict[str, list[Query]] = {"basket": [], "one item": []}
    for basket in baskets:
        items = list(dict.fromkeys(basket))
        if len(items) >= 2:
            for held in items if every_item else [rng.choice(items)]:
                rest = [i for i in items if i != held]
                out["basket"].append((rest, held))
                out["one item"].append(([pick.choice(rest)], held))
    return out


def per_query(ranked: list[list[str]], qs: list[Query]) -> np.ndarray:
    """(hit, reciprocal rank) per query, kept so methods can be compared pair by pair."""
    out = np.zeros((len(qs), 2))
    for n, (ids, (_, held)) in enumerate(zip(ranked, qs)):
        if held in ids[:K]:
            out[n] = 1.0, 1.0 / (ids.index(held) + 1)
    return out


class Models:
    """Everything fitted on one set of training baskets."""

    def __init__(self, train: list[list[str]], reg: float):
        t = time.perf_counter()
        self.pop = Counter(i for b in train for i in order_items(b))
        self.pop_top = dict(top(self.pop, 2 * SERVED.candidates))  # RecommendService.popular
        self.fit_pop = time.perf_counter() - t

        t = time.perf_counter()
        self.co = CoCounts()
        for b in train:
            self.co.add_order(b)
        self._nb: dict[tuple[str, str], dict[str, float]] = {}
        self.fit_co = time.perf_counter() - t

        self.rows = [(f"b{n}", item, PURCHASE) for n, b in enumerate(train) for item in order_items(b)]
        self.matrix, _, self.items = als_training.build_matrix(self.rows)
        self.refit_als(reg)

    def refit_als(self, reg: float) -> None:
        """The engine's own training (train_matrix: ALS, then the regression), the served parameters but `reg`."""
        t = time.perf_counter()
        self.reg = reg
        self.als = als_training.train_matrix(
            self.matrix, self.items, als_training.AlsParams(regularization=reg, item_regression=SERVED_EASE)
        )
        self.fit_als = time.perf_counter() - t
        self.fit_ease = self.als.meta["regression_seconds"]
        f = self.als.factors
        self.unit = AlsModel("unit", self.als.item_ids, f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-9))

    def refit_ease(self, lam: float) -> None:
        """The regression alone at `lam` in place of the served one (for tuning)."""
        self.als.regression = ease.fit(self.matrix, PURCHASE, dataclasses.replace(SERVED_EASE, regularization=lam))

    def neighbours(self, q: str, method: str) -> dict[str, float]:
        nb = self._nb.get((q, method))
        if nb is None:
            nb = self._nb[(q, method)] = self.co.neighbours(q, method, SERVED.min_support)
        return nb

    def cooc(self, query: list[str], method: str) -> dict[str, float]:
        """All neighbour scores summed over the query items (the co-occurrence baselines)."""
        out: dict[str, float] = {}
        for q in query:
            for item, s in self.neighbours(q, method).items():
                out[item] = out.get(item, 0.0) + s
        return out

    def als_item(self, query: list[str], model: AlsModel | None = None) -> dict[str, float]:
        model = model or self.als
        return model.scores(query, len(model.item_ids))

    def ease_item(self, query: list[str]) -> dict[str, float]:
        return self.als.regression_scores(query, len(self.als.item_ids))

    def sources(self, query: list[str], method: str) -> dict[str, dict[str, float]]:
        """What RecommendService hands to blend() for these seed items."""
        co: dict[str, float] = {}
        for q in query:  # the store's script: top `candidates` by score, ties by id; summed as for-you does
            for item, s in sorted(self.neighbours(q, method).items(), key=lambda p: (-p[1], p[0]))[: SERVED.candidates]:
                co[item] = co.get(item, 0.0) + s
        return {
            "cooccurrence": co,
            "als": self.als.scores(query, SERVED.candidates + len(query)),
            "ease": self.als.regression_scores(query, SERVED.candidates),
            "popularity": self.pop_top,
        }


def ranked(scores: dict[str, float], query: list[str]) -> list[str]:
    return [i for i, _ in top(scores, K, exclude=query)]


def run_blend(sources: list[dict], qs: list[Query], weights: dict[str, float]) -> list[list[str]]:
    return [[i for i, _, _ in blend(s, weights, K, set(q))] for s, (q, _) in zip(sources, qs)]


class Grid:
    """HitRate@10 and MRR@10 of every weight combination at once: blend()'s arithmetic in numpy.

    Per query, the candidates' source scores form a matrix; a weight vector scores them
    as blend() does, to the bit (weight * score / max, added source by source in name
    order), and ranks them as it does (ties by id, nothing at or below 0).
    """

    NAMES = sorted(SOURCES)

    def __init__(self, sources: list[dict], qs: list[Query]):
        self.parts = []
        for src, (q, held) in zip(sources, qs):
            exclude = set(q)
            kept = {
                name: {i: v for i, v in src.get(name, {}).items() if v > 0 and i not in exclude} for name in self.NAMES
            }
            ids = sorted({i for scores in kept.values() for i in scores})
            if held not in ids:
                self.parts.append(None)
                continue
            at = {i: n for n, i in enumerate(ids)}
            m = np.zeros((len(ids), len(self.NAMES)))
            best = np.ones(len(self.NAMES))
            for c, name in enumerate(self.NAMES):
                for i, v in kept[name].items():
                    m[at[i], c] = v
                best[c] = max(kept[name].values(), default=1.0)
            self.parts.append((m, best, at[held]))

    def score(self, weights: list[dict[str, float]]) -> np.ndarray:
        """(combinations, 2): mean hit and reciprocal rank."""
        w = np.array([[wt.get(name, 0.0) for wt in weights] for name in self.NAMES])  # (sources, combos)
        out = np.zeros((len(weights), 2))
        for part in self.parts:
            if part is None:
                continue
            m, best, h = part
            s = np.zeros((len(m), len(weights)))
            for c in range(len(self.NAMES)):
                s += m[:, c, None] * w[c][None, :] / best[c]
            mine = s[h]
            before = (s > mine) | ((s == mine) & (np.arange(len(s)) < h)[:, None])
            rank = (before & (s > 0)).sum(axis=0) + 1
            hit = (mine > 0) & (rank <= K)
            out[:, 0] += hit
            out[:, 1] += np.where(hit, 1.0 / rank, 0.0)
        return out / len(self.parts)


def combos() -> list[dict[str, float]]:
    return [
        {"cooccurrence": 1.0, "als": a, "ease": e, "popularity": p}
        for a, e, p in product(GRID_ALS, GRID_EASE, GRID_POP)
    ]


def tune(train: list[list[str]], seed: int) -> dict:
    """ALS regularization, then the blend grid per protocol, on a validation slice of the training baskets only."""
    t = time.perf_counter()
    fit, val = split(train, "order", seed)
    qs = queries(val, seed + 1, every_item=True)
    m = Models(fit, GRID_REG[0])
    by_reg = {}
    for reg in GRID_REG:
        m.refit_als(reg)
        by_reg[reg] = per_query([ranked(m.als_item(q), q) for q, _ in qs["basket"]], qs["basket"]).mean(axis=0)
    best_reg = max(GRID_REG, key=lambda r: tuple(by_reg[r]))
    m.refit_als(SERVED_REG)
    by_lambda = {}
    for lam in GRID_LAMBDA:
        m.refit_ease(lam)
        by_lambda[lam] = per_query([ranked(m.ease_item(q), q) for q, _ in qs["basket"]], qs["basket"]).mean(axis=0)
    best_lambda = max(GRID_LAMBDA, key=lambda r: tuple(by_lambda[r]))
    m.refit_ease(SERVED_EASE.regularization)
    out = {
        "reg": best_reg,
        "by_reg": by_reg,
        "lambda": best_lambda,
        "by_lambda": by_lambda,
        "grid": {},
        "baseline": {},
        "served": {},
    }
    for proto, pq in qs.items():
        srcs = [m.sources(q, SERVED.method) for q, _ in pq]
        grid = Grid(srcs, pq)
        out["grid"][proto] = grid.score(combos())
        served = per_query(run_blend(srcs, pq, PROTOCOLS[proto]), pq).mean(axis=0)
        assert np.array_equal(grid.score([PROTOCOLS[proto]])[0], served), "Grid must rank as blend() does"
        out["served"][proto] = served
        out["baseline"][proto] = max(
            per_query([ranked(m.pop, q) for q, _ in pq], pq).mean(axis=0)[0],
            per_query([ranked(m.cooc(q, "raw"), q) for q, _ in pq], pq).mean(axis=0)[0],
        )
    out["seconds"] = time.perf_counter() - t
    return out


def joint_choice(tuned: list[dict], proto: str) -> tuple[dict[str, float], list[np.ndarray]]:
    """The grid weights whose worse HitRate@10 gain over the better baseline, across data sets, is largest."""
    gains = np.stack([t["grid"][proto][:, 0] - t["baseline"][proto] for t in tuned])  # (sets, combos)
    mrr = np.stack([t["grid"][proto][:, 1] for t in tuned]).min(axis=0)
    best = max(range(gains.shape[1]), key=lambda c: (round(gains[:, c].min(), 6), mrr[c]))
    return combos()[best], [t["grid"][proto][best] for t in tuned]


def fmt(w: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in w.items()) + "}"


def evaluate(name: str, baskets: list[list[str]], how: str, seed: int, tuned: dict) -> None:
    train, test = split(baskets, how, seed)
    qs = queries(test, seed)
    m = Models(train, SERVED_REG)
    n_items = len({i for b in baskets for i in b})
    print(
        f"\n### {name}: {len(baskets):,} baskets, {n_items:,} items; split {how}: "
        f"{len(train):,} train / {len(test):,} test baskets\n"
    )
    regs = ", ".join(f"{r:g}: {hr:.3f}" for r, (hr, _) in tuned["by_reg"].items())
    lams = ", ".join(f"{r:g}: {hr:.3f}" for r, (hr, _) in tuned["by_lambda"].items())
    print(
        f"Validation slice ({tuned['seconds']:.1f} s): ALS regularization by item-item HitRate@10 {{{regs}}}, "
        f"best {tuned['reg']:g} (served: {SERVED_REG:g}). Regression lambda by its own HitRate@10 {{{lams}}}, "
        f"best {tuned['lambda']:g} (served: {SERVED_EASE.regularization:g}).\n"
    )
    models = [(SERVED_REG, m)]
    if tuned["reg"] != SERVED_REG:
        models.append((tuned["reg"], Models(train, tuned["reg"])))

    for proto, weights in PROTOCOLS.items():
        pq = qs[proto]
        rows = []

        def timed(label: str, fit_s: float, fn) -> None:
            t = time.perf_counter()
            out = fn()
            rows.append((label, per_query(out, pq), fit_s, time.perf_counter() - t))

        timed("popularity", m.fit_pop, lambda: [ranked(m.pop, q) for q, _ in pq])
        for method in ("raw", "cosine", "jaccard", "lift", "confidence"):
            timed(f"cooc {method}", m.fit_co, lambda method=method: [ranked(m.cooc(q, method), q) for q, _ in pq])
        for reg, mm in models:
            timed(
                f"als item-item dot, reg {reg:g}", mm.fit_als, lambda mm=mm: [ranked(mm.als_item(q), q) for q, _ in pq]
            )
        timed(
            f"als item-item cosine, reg {SERVED_REG:g}",
            m.fit_als,
            lambda: [ranked(m.als_item(q, m.unit), q) for q, _ in pq],
        )
        timed(
            f"ease item-item regression, lambda {SERVED_EASE.regularization:g}",
            m.fit_ease,
            lambda: [ranked(m.ease_item(q), q) for q, _ in pq],
        )
        fit_all = m.fit_co + m.fit_als + m.fit_pop  # fit_als includes the regression
        if weights.get("ease"):
            timed(
                "served blend without the regression (ease 0)",
                fit_all,
                lambda: run_blend([m.sources(q, SERVED.method) for q, _ in pq], pq, dict(weights, ease=0.0)),
            )
        timed(
            f"**served blend**: {SERVED.method}, {WEIGHT_NAMES[proto]}",
            fit_all,
            lambda: run_blend([m.sources(q, SERVED.method) for q, _ in pq], pq, weights),
        )

        call = (
            "for-you and also-bought with a cart: the rest of the basket as seeds"
            if proto == "basket"
            else "the also-bought call, one other item of the basket as the seed"
        )
        print(f"#### {name}, {proto} queries ({call}); {len(pq):,} test baskets\n")
        print("| method | HitRate@10 | MRR@10 | fit s | query s |")
        print("|---|---|---|---|---|")
        for label, r, fit_s, q_s in rows:
            hr, mrr = r.mean(axis=0)
            print(f"| {label} | {hr:.3f} | {mrr:.3f} | {fit_s:.2f} | {q_s:.2f} |")
        print("\nServed blend minus each, same test baskets (mean paired difference, 95% interval):\n")
        served = rows[-1][1]
        for label, r, _, _ in rows[:-1]:
            if label.startswith(
                (
                    "popularity",
                    "cooc raw",
                    "cooc cosine",
                    "cooc confidence",
                    "als item-item dot",
                    "ease",
                    "served blend without",
                )
            ):
                d = served - r
                half = 1.96 * d.std(axis=0, ddof=1) / np.sqrt(len(d))
                print(
                    f"- vs {label}: HitRate@10 {d[:, 0].mean():+.3f} ± {half[0]:.3f}, "
                    f"MRR@10 {d[:, 1].mean():+.3f} ± {half[1]:.3f}"
                )
        print()


def main() -> None:
    global SERVED, SERVED_REG
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", type=Path, default=DATA, help="groceries CSV (basket,item,...)")
    ap.add_argument("--split", choices=("order", "random"), default="order")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--method",
        choices=METHODS,
        default=SERVED.method,
        help="similarity in place of RecommendConfig.method, to measure a change before making it",
    )
    ap.add_argument(
        "--als-regularization", type=float, default=SERVED_REG, help="in place of AlsParams().regularization, likewise"
    )
    args = ap.parse_args()
    changed = [
        f"{name} {new!r} in place of the served {old!r}"
        for name, new, old in (
            ("similarity", args.method, SERVED.method),
            ("ALS regularization", args.als_regularization, SERVED_REG),
        )
        if new != old
    ]
    SERVED, SERVED_REG = dataclasses.replace(SERVED, method=args.method), args.als_regularization
    print(f"Machine: {machine()}")
    if changed:
        print(f"Not the served code: {'; '.join(changed)}")
    print(
        f"Served: similarity {SERVED.method}, min support {SERVED.min_support:g}, {SERVED.candidates} candidates "
        f"per source; ALS {als_training.AlsParams().factors} factors, regularization {SERVED_REG:g}, purchase weight "
        f"{PURCHASE:g}; ALSO_BOUGHT_WEIGHTS {fmt(ALSO_BOUGHT_WEIGHTS)}; FOR_YOU_WEIGHTS {fmt(FOR_YOU_WEIGHTS)}"
    )
    sets = [("groceries", load_groceries(args.data)), ("synthetic (20 hidden topics, Zipf popularity)", synthetic())]
    tuned = [tune(split(baskets, args.split, args.seed)[0], args.seed) for _, baskets in sets]

    print("\nBlend weights chosen on the validation slices (cooccurrence 1; one choice for both data sets):\n")
    print(
        "| queries | served constant | served weights: validation HitRate@10 / MRR@10 per data set "
        "| joint choice | its validation HitRate@10 / MRR@10 | better baseline's validation HitRate@10 |"
    )
    print("|---|---|---|---|---|---|")
    for proto, weights in PROTOCOLS.items():
        choice, scores = joint_choice(tuned, proto)
        served = " ; ".join(f"{t['served'][proto][0]:.3f} / {t['served'][proto][1]:.3f}" for t in tuned)
        chosen = " ; ".join(f"{hr:.3f} / {mrr:.3f}" for hr, mrr in scores)
        base = " ; ".join(f"{t['baseline'][proto]:.3f}" for t in tuned)
        print(f"| {proto} | {WEIGHT_NAMES[proto]} {fmt(weights)} | {served} | {fmt(choice)} | {chosen} | {base} |")

    for (name, baskets), t in zip(sets, tuned):
        evaluate(name, baskets, args.split, args.seed, t)


if __name__ == "__main__":
    main()
