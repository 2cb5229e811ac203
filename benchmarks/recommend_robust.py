"""Recommendation quality across data sets of different density, with nothing tuned on one of them.

Data sets (all in ../shared/data plus generated shops, so a choice must hold on each):
  groceries        ../shared/data/groceries.csv: 9,835 real baskets, 169 items
  groceries 30%    a seeded random 30% of its baskets (time order kept)
  groceries 10%    likewise 10%: the sparse end of real data
  shop dense       generated: 1,000 items of Zipf popularity in 20 hidden topics, sessions
                   that walk from an item to its successors in the topic, a basket of what
                   the session bought
  shop sparse      the same generator with 20,000 items and fewer sessions: most pairs seen once

One-item queries (the also-bought call): time split, first 80% of baskets train; in
each test basket of >= 2 items one item is held out and another is the seed, DRAWS
seeded draws per basket. HitRate@10 = share of queries whose held-out item is in the 10 listed; every
list is filled by popularity to 10, as the engine fills. Methods:
  popularity          orders holding the item
  raw co-occurrence   the seed's pair counts, no minimum support, ties and fill by popularity
  previous also-bought  the blend served before this change: confidence (min support 2, top 50),
                      ALS item-item (the engine's training) weight 0.1, popularity 0.25
  also-bought         engine.recommend.shrink.rank with the m chosen below (the default: PRIOR_STRENGTH)
  also-bought, m by leave-one-out   the same with the m the engine chooses for itself
                      (engine.recommend.prior_choice, what the worker runs: exact leave-one-out
                      on a random sample of prior_job.SAMPLE training orders, grid prior_choice.GRID)

Choice of m (the prior strength): each data set's training baskets are cut into FOLDS
blocks, each held out once while the others fit (cross-validation); for every m in GRID_M, HitRate@10 on the validation
queries minus the better of raw counts' and popularity's; the m whose worst gain across the data sets is largest
(mean gain, then the smaller m, break ties) is used on every test set. Test baskets choose
nothing.

Session queries (next item): the shops' view sessions and groceries baskets in a
random order (whole, 30%, 10%), first 80% of sessions as the pool; in each test session of >= 2 items a
seeded cut t, the first t items are the session so far and item t + 1 the target.
Methods: popularity; co-occurrence of the last item (its pair counts within sessions,
fill by popularity); SKNN and V-SKNN (engine.recommend.sknn, fill by popularity),
neighbours k from GRID_K chosen on a validation split the same way.

Evidence rule (engine.recommend.session_rule): the last item's pair counts and the V-SKNN
scores blended with weight n / (n + tau) on the counts, n the sessions holding the last
item; tau from GRID_TAU (and, to compare, the hard form: V-SKNN below T sessions, the
counts from T, T in GRID_T) chosen by FOLDS-fold cross-validation inside the training
sessions of the five sets together, the worst gain over the last item's co-occurrence
deciding, as m is chosen.

Intervals: 95% percentile bootstrap (BOOT resamples; for one-item queries the unit is
the test basket, the mean of its draws; for sessions, the query); differences are
paired (the same resamples for both lists).

Usage: python benchmarks/recommend_robust.py [--data PATH] [--seed N] [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from benchmarks.recommend_quality import ALSO_BOUGHT_WEIGHTS as PREVIOUS_WEIGHTS  # noqa: E402
from benchmarks.recommend_quality import DATA as BESIDE, Models, load_groceries  # noqa: E402
from engine.recommend import prior_choice, prior_job, session_rule, shrink, sknn  # noqa: E402
from engine.recommend.blend import blend  # noqa: E402
from engine.recommend.cooccur import CoCounts, order_items  # noqa: E402

# ../shared beside the checkout (main), else two levels up (a worktree under wt/)
DATA = next((p for p in (BESIDE, BESIDE.parents[3] / "shared" / "data" / "groceries.csv") if p.exists()), BESIDE)
K = 10
BOOT = 2000
DRAWS = 5  # (seed, held-out) draws per test basket
FOLDS = 5  # blocks of the training baskets, each held out once to choose m
OTHER_SAMPLES = 4  # further random samples leave-one-out chooses on, to show how stable its choice is
GRID_M = (0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0)
GRID_K = (50, 100, 200)
GRID_TAU = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, float("inf"))
GRID_T = (1, 2, 4, 8, 16, 32, 64)  # the hard form: the session-kNN below T sessions, the last item's counts from T


# --- data ----------------------------------------------------------------------


def thinned(baskets: list[list[str]], share: float, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [b for b in baskets if rng.random() < share]


def shop(n_sessions: int, n_items: int, n_topics: int, zipf: float, seed: int) -> list[list[str]]:
    """View sessions of a generated shop, in time order: each a walk through one or two hidden topics.

    Items have Zipf popularity; within a topic each item leads on to a few successors (the
    next items of the topic's list, by popularity), which is the order a session-aware
    method can find and a basket-level one cannot.
    """
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** zipf
    topic_of = rng.integers(n_topics, size=n_items)
    members = [np.flatnonzero(topic_of == t) for t in range(n_topics)]
    in_topic = [pop[m] / pop[m].sum() for m in members]
    overall = pop / pop.sum()
    position = {int(i): (t, n) for t in range(n_topics) for n, i in enumerate(members[t])}
    sessions = []
    for _ in range(n_sessions):
        topics = rng.choice(n_topics, size=rng.integers(1, 3), replace=False)
        length = min(2 + rng.poisson(3.0), 20)
        t = int(rng.choice(topics))
        current = int(rng.choice(members[t], p=in_topic[t]))
        walk = [current]
        while len(walk) < length:
            u = rng.random()
            t, n = position[current]
            if u < 0.55:
                after = members[t][n + 1 : n + 4]
                if len(after) == 0:
                    after = members[t][:3]
                current = int(rng.choice(after, p=pop[after] / pop[after].sum()))
            elif u < 0.85:
                t = int(rng.choice(topics))
                current = int(rng.choice(members[t], p=in_topic[t]))
            else:
                current = int(rng.choice(n_items, p=overall))
            if current not in walk:
                walk.append(current)
            elif rng.random() < 0.3:
                break
        sessions.append([f"i{i:05d}" for i in walk])
    return sessions


def baskets_of(sessions: list[list[str]], seed: int, share: float = 0.45) -> list[list[str]]:
    """What each session bought: each viewed item with probability `share`; sessions that bought nothing dropped."""
    rng = random.Random(seed)
    out = []
    for s in sessions:
        bought = [i for i in s if rng.random() < share]
        if bought:
            out.append(bought)
    return out


def split(rows: list, share: float = 0.8) -> tuple[list, list]:
    cut = int(len(rows) * share)
    return rows[:cut], rows[cut:]


# --- one-item queries ----------------------------------------------------------


def item_queries(baskets: list[list[str]], seed: int, draws: int = DRAWS) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(seed, held-out item) queries, `draws` per basket of >= 2 items, and each query's basket number."""
    rng = random.Random(seed)
    out, group = [], []
    for n, b in enumerate(baskets):
        items = order_items(b)
        if len(items) >= 2:
            for _ in range(draws):
                held, seed_item = rng.sample(items, 2)
                out.append((seed_item, held))
                group.append(n)
    return out, np.array(group, dtype=int)


def by_basket(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each basket's mean over its draws: the unit the intervals resample (draws of a basket are not independent)."""
    _, inverse, sizes = np.unique(group, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=values) / sizes


class Counts:
    def __init__(self, train: list[list[str]]):
        self.co = CoCounts()
        for b in train:
            self.co.add_order(b)
        self.popular = [i for i, _ in sorted(self.co.counts.items(), key=lambda p: (-p[1], p[0]))[: K + 50]]
        self.with_popular = True

    def fill(self, listed: list[str], seed: str) -> list[str]:
        out = [i for i in listed if i != seed][:K]
        for item in self.popular:
            if len(out) >= K:
                break
            if item != seed and item not in out:
                out.append(item)
        return out

    def pop_list(self, seed: str) -> list[str]:
        return self.fill([], seed)

    def raw(self, seed: str) -> list[str]:
        pairs = self.co.pairs.get(seed, {})
        counts = self.co.counts
        return self.fill(
            [b for b, _ in sorted(pairs.items(), key=lambda p: (-p[1], -counts[p[0]], p[0]))[: K + 1]], seed
        )

    def shrunk(self, seed: str, m: float) -> list[str]:
        ranked = shrink.rank(
            self.co.pairs.get(seed, {}),
            self.co.counts.get(seed, 0),
            self.co.counts,
            self.co.orders,
            m,
            exclude=(seed,),
            popular=self.popular if self.with_popular else (),
        )
        return self.fill([b for b, _ in ranked[:K]], seed)


def hits(lists: list[list[str]], targets: list[str]) -> np.ndarray:
    """(hit, reciprocal rank) per query."""
    out = np.zeros((len(lists), 2))
    for n, (ids, held) in enumerate(zip(lists, targets)):
        if held in ids[:K]:
            out[n] = 1.0, 1.0 / (ids.index(held) + 1)
    return out


def previous_blend(train: list[list[str]], counts: Counts, qs: list[tuple[str, str]]) -> list[list[str]]:
    m = Models(train, 10.0)
    out = []
    for seed, _ in qs:
        ranked = [i for i, _, _ in blend(m.sources([seed], "confidence"), PREVIOUS_WEIGHTS, K, {seed})]
        out.append(counts.fill(ranked, seed))
    return out


# --- session queries -----------------------------------------------------------


def session_queries(sessions: list[list[str]], seed: int) -> list[tuple[list[str], str]]:
    rng = random.Random(seed)
    out = []
    for s in sessions:
        s = list(dict.fromkeys(s))
        if len(s) >= 2:
            t = rng.randrange(1, len(s))
            out.append((s[:t], s[t]))
    return out


class SessionModels:
    def __init__(self, train: list[list[str]]):
        self.pool = sknn.SessionPool()
        self.co = CoCounts()
        for n, s in enumerate(train):
            self.pool.add(f"s{n}", s)
            self.co.add_order(s)
        self.popular = [i for i, _ in sorted(self.co.counts.items(), key=lambda p: (-p[1], p[0]))[: K + 50]]

    def fill(self, listed: list[str], prefix: list[str]) -> list[str]:
        seen = set(prefix)
        out = [i for i in listed if i not in seen][:K]
        for item in self.popular:
            if len(out) >= K:
                break
            if item not in seen and item not in out:
                out.append(item)
        return out

    def pop_list(self, prefix):
        return self.fill([], prefix)

    def last_item(self, prefix):
        pairs, counts = self.co.pairs.get(prefix[-1], {}), self.co.counts
        return self.fill(
            [b for b, _ in sorted(pairs.items(), key=lambda p: (-p[1], -counts[p[0]], p[0]))[: K + 20]], prefix
        )

    def decayed(self, prefix):
        """Pair counts of every item of the session so far, the item at position p of n weighted p / n."""
        score: dict[str, float] = {}
        for item, w in sknn.weights(prefix, True).items():
            pairs = self.co.pairs.get(item, {})
            top = max(pairs.values(), default=1)
            for b, c in pairs.items():
                score[b] = score.get(b, 0.0) + w * c / top
        return self.fill([i for i, _ in sorted(score.items(), key=lambda p: (-p[1], p[0]))[: K + 20]], prefix)

    def knn(self, prefix, k: int, decay: bool):
        score, _ = sknn.scores(prefix, self.pool.candidates(prefix), k, decay)
        return self.fill([i for i, _ in sorted(score.items(), key=lambda p: (-p[1], p[0]))[: K + 20]], prefix)

    def parts(self, prefix, k: int):
        """What the evidence rule reads for a session: the last item's pairs, its sessions, the V-SKNN scores."""
        score, _ = sknn.scores(prefix, self.pool.candidates(prefix), k, True)
        return self.co.pairs.get(prefix[-1], {}), self.co.counts.get(prefix[-1], 0), score

    def rule(self, prefix, parts, tau: float, threshold: float):
        pairs, n_last, score = parts
        ranked = session_rule.rank(pairs, n_last, score, tau, threshold, exclude=prefix, popularity=self.co.counts)
        return self.fill([i for i, _ in ranked[: K + 20]], prefix)


# --- statistics ----------------------------------------------------------------


class Boot:
    def __init__(self, n: int, seed: int):
        self.idx = np.random.default_rng(seed).integers(n, size=(BOOT, n)) if n else np.zeros((BOOT, 0), int)

    def interval(self, values: np.ndarray) -> tuple[float, float, float]:
        means = values[self.idx].mean(axis=1)
        return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def show(value: tuple[float, float, float], signed: bool = False) -> str:
    mean, lo, hi = value
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]" if signed else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


# --- the runs ------------------------------------------------------------------


def choose_m(sets: list[tuple[str, list[list[str]]]], seed: int) -> tuple[float, dict]:
    """m by FOLDS-fold cross-validation inside each training split: the worst gain across data sets decides."""
    gains = {}
    for name, baskets in sets:
        train, _ = split(baskets)
        size = len(train) // FOLDS
        total = {"raw": 0.0, "pop": 0.0, **{m: 0.0 for m in GRID_M}}
        n = 0
        for f in range(FOLDS):
            val = train[f * size : (f + 1) * size]
            c = Counts(train[: f * size] + train[(f + 1) * size :])
            qs, _ = item_queries(val, seed + 1 + f)
            targets = [h for _, h in qs]
            n += len(qs)
            total["raw"] += hits([c.raw(s) for s, _ in qs], targets)[:, 0].sum()
            total["pop"] += hits([c.pop_list(s) for s, _ in qs], targets)[:, 0].sum()
            for m in GRID_M:
                total[m] += hits([c.shrunk(s, m) for s, _ in qs], targets)[:, 0].sum()
        better = max(total["raw"], total["pop"]) / n
        gains[name] = {m: total[m] / n - better for m in GRID_M}
    best = max(
        GRID_M,
        key=lambda m: (
            round(min(g[m] for g in gains.values()), 6),
            round(float(np.mean([g[m] for g in gains.values()])), 6),
            -m,
        ),
    )
    return best, gains


def choose_k(sets: list[tuple[str, list[list[str]]]], seed: int) -> tuple[int, dict]:
    gains = {}
    for name, sessions in sets:
        train, _ = split(sessions)
        fit, val = split(train)
        sm = SessionModels(fit)
        qs = session_queries(val, seed + 1)
        targets = [h for _, h in qs]
        last = hits([sm.last_item(p) for p, _ in qs], targets)[:, 0].mean()
        gains[name] = {k: hits([sm.knn(p, k, True) for p, _ in qs], targets)[:, 0].mean() - last for k in GRID_K}
    best = max(GRID_K, key=lambda k: (round(min(g[k] for g in gains.values()), 6), -k))
    return best, gains


def rule_options() -> list[tuple[str, float, float]]:
    """(label, tau, T): the blend (T 1) over GRID_TAU, then the hard form (tau 0) over GRID_T."""
    return [(f"tau {x:g}", x, 1) for x in GRID_TAU] + [(f"T {t}", 0.0, t) for t in GRID_T]


def rule_lists(sm: SessionModels, qs, k: int, tau: float, threshold: float) -> list[list[str]]:
    return [sm.rule(p, sm.parts(p, k), tau, threshold) for p, _ in qs]


def choose_rule(sets, k: int, seed: int) -> tuple[tuple[str, float, float], dict]:
    """tau (and, to compare, a hard threshold T) by FOLDS-fold cross-validation inside each training split.

    Each fold of the training sessions is held out once while the rest are the pool; the
    HitRate@10 gain over the last item's co-occurrence per option; the option whose worst gain
    across the data sets is largest (then the mean gain, then the option listed first) is used.
    """
    options = rule_options()
    gains = {}
    for name, sessions in sets:
        train, _ = split(sessions)
        size = len(train) // FOLDS
        total = {"last": 0.0, **{label: 0.0 for label, _, _ in options}}
        n = 0
        for f in range(FOLDS):
            sm = SessionModels(train[: f * size] + train[(f + 1) * size :])
            qs = session_queries(train[f * size : (f + 1) * size], seed + 1 + f)
            targets = [h for _, h in qs]
            n += len(qs)
            parts = [sm.parts(p, k) for p, _ in qs]
            total["last"] += hits([sm.last_item(p) for p, _ in qs], targets)[:, 0].sum()
            for label, tau, threshold in options:
                lists = [sm.rule(p, pp, tau, threshold) for (p, _), pp in zip(qs, parts)]
                total[label] += hits(lists, targets)[:, 0].sum()
        gains[name] = {label: (total[label] - total["last"]) / n for label, _, _ in options}
    return best_option(options, gains), gains


def best_option(options, gains):
    """The largest worst gain across the data sets, then the largest mean gain, then the option listed first."""
    order = {o[0]: n for n, o in enumerate(options)}
    return max(
        options,
        key=lambda o: (
            round(min(g[o[0]] for g in gains.values()), 6),
            round(float(np.mean([g[o[0]] for g in gains.values()])), 6),
            -order[o[0]],
        ),
    )


def one_item_table(sets, m: float, seed: int, with_previous: bool) -> None:
    print(
        "| data set | train / test baskets | items | queries | popularity | raw co-occurrence | "
        "previous also-bought | also-bought | also-bought - raw | also-bought - popularity | "
        "MRR@10 also-bought / raw |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, baskets in sets:
        train, test = split(baskets)
        c = Counts(train)
        qs, group = item_queries(test, seed)
        targets = [h for _, h in qs]

        def per(lists):
            return by_basket(hits(lists, targets)[:, 0], group)

        boot = Boot(len(np.unique(group)), seed)
        pop = per([c.pop_list(s) for s, _ in qs])
        raw = per([c.raw(s) for s, _ in qs])
        ours = per([c.shrunk(s, m) for s, _ in qs])
        mrr = (
            hits([c.shrunk(s, m) for s, _ in qs], targets)[:, 1].mean(),
            hits([c.raw(s) for s, _ in qs], targets)[:, 1].mean(),
        )
        prev = show(boot.interval(per(previous_blend(train, c, qs)))) if with_previous else "-"
        n_items = len({i for b in baskets for i in b})
        print(
            f"| {name} | {len(train):,} / {len(test):,} | {n_items:,} | {len(qs):,} | "
            f"{show(boot.interval(pop))} | {show(boot.interval(raw))} | {prev} | "
            f"{show(boot.interval(ours))} | {show(boot.interval(ours - raw), True)} | "
            f"{show(boot.interval(ours - pop), True)} | {mrr[0]:.3f} / {mrr[1]:.3f} |"
        )


def chosen_by_leave_one_out(train: list[list[str]], c: Counts, seed: int) -> prior_choice.Choice:
    """The engine's own choice on the training split: a random sample of its orders, as the worker samples."""
    sample = random.Random(seed).sample(train, min(prior_job.SAMPLE, len(train)))
    sample = prior_choice.affordable(sample, lambda a: len(c.co.pairs.get(a, {})), len(c.popular))
    return prior_choice.choose(sample, c.co.pairs, c.co.counts, c.co.orders, c.popular)


def learned_table(sets, seed: int) -> None:
    """Per data set: the m leave-one-out chose on the training split, and the test HitRate@10 with it."""
    rows, grid, per_m = [], [], []
    for name, baskets in sets:
        train, test = split(baskets)
        c = Counts(train)
        t = time.perf_counter()
        choice = chosen_by_leave_one_out(train, c, seed)
        took = time.perf_counter() - t
        # how much the choice depends on the sample: other random samples of the same training split
        others = [chosen_by_leave_one_out(train, c, seed + n).strength for n in range(1, OTHER_SAMPLES + 1)]
        grid.append((name, choice, took, others))
        qs, group = item_queries(test, seed)
        targets = [h for _, h in qs]

        def per(lists):
            return by_basket(hits(lists, targets)[:, 0], group)

        boot = Boot(len(np.unique(group)), seed)
        pop = per([c.pop_list(s) for s, _ in qs])
        raw = per([c.raw(s) for s, _ in qs])
        fixed = per([c.shrunk(s, shrink.PRIOR_STRENGTH) for s, _ in qs])
        ours = per([c.shrunk(s, choice.strength) for s, _ in qs])
        every = {m: per([c.shrunk(s, m) for s, _ in qs]).mean() for m in prior_choice.GRID}
        per_m.append(
            f"| {name} | {pop.mean():.3f} | {raw.mean():.3f} | "
            + " | ".join(f"{every[m]:.3f}" for m in prior_choice.GRID)
            + " |"
        )
        rows.append(
            f"| {name} | {choice.orders:,} / {choice.queries:,} | {choice.strength:g} | "
            f"{show(boot.interval(pop))} | {show(boot.interval(raw))} | {show(boot.interval(fixed))} | "
            f"{show(boot.interval(ours))} | {show(boot.interval(ours - raw), True)} | "
            f"{show(boot.interval(ours - pop), True)} | {show(boot.interval(ours - fixed), True)} |"
        )
    print(
        "\nLeave-one-out inside each training split (engine.recommend.prior_choice on a random sample of "
        f"{prior_job.SAMPLE:,} training orders), HitRate@10 per m:\n"
    )
    print(
        "| data set | orders / queries | "
        + " | ".join(f"m {x:g}" for x in prior_choice.GRID)
        + f" | chosen | s | chosen on {OTHER_SAMPLES} other samples |"
    )
    print("|---|---|" + "---|" * len(prior_choice.GRID) + "---|---|---|")
    for name, choice, took, others in grid:
        rates = choice.hit_rates()
        print(
            f"| {name} | {choice.orders:,} / {choice.queries:,} | "
            + " | ".join(f"{rates[x]:.4f}" for x in prior_choice.GRID)
            + f" | {choice.strength:g} | {took:.1f} | {', '.join(f'{m:g}' for m in others)} |"
        )
    print("\nTest baskets, also-bought with the m chosen by leave-one-out (HitRate@10 [95% interval]):\n")
    print(
        "| data set | LOO orders / queries | chosen m | popularity | raw co-occurrence | "
        f"also-bought m {shrink.PRIOR_STRENGTH:g} | also-bought, m by leave-one-out | - raw | - popularity | "
        f"- m {shrink.PRIOR_STRENGTH:g} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    print("\nTest baskets, HitRate@10 with each m of the grid (where another sample's choice would land):\n")
    print("| data set | popularity | raw co-occurrence | " + " | ".join(f"m {x:g}" for x in prior_choice.GRID) + " |")
    print("|---|---|---|" + "---|" * len(prior_choice.GRID))
    for row in per_m:
        print(row)


def session_table(sets, k: int, seed: int, rules: list[tuple[str, float, float]] = ()) -> None:
    print(
        "| data set | pool / test sessions | queries | method | HitRate@10 | MRR@10 | HitRate@10 - last item | "
        "MRR@10 - last item |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, sessions in sets:
        train, test = split(sessions)
        sm = SessionModels(train)
        qs = session_queries(test, seed)
        targets = [h for _, h in qs]
        boot = Boot(len(qs), seed)
        t = time.perf_counter()
        rows = [
            ("popularity", hits([sm.pop_list(p) for p, _ in qs], targets)),
            ("co-occurrence of the last item", hits([sm.last_item(p) for p, _ in qs], targets)),
            (
                "co-occurrence of every item so far, the latest weighted most",
                hits([sm.decayed(p) for p, _ in qs], targets),
            ),
            (f"SKNN, k {k}", hits([sm.knn(p, k, False) for p, _ in qs], targets)),
            (f"V-SKNN, k {k}", hits([sm.knn(p, k, True) for p, _ in qs], targets)),
        ]
        for label, tau, threshold in rules:
            rows.append(
                (f"evidence rule, {label} (V-SKNN k {k})", hits(rule_lists(sm, qs, k, tau, threshold), targets))
            )
        last = rows[1][1]
        for label, r in rows:
            diff = (
                ("-", "-")
                if label == "co-occurrence of the last item"
                else (show(boot.interval(r[:, 0] - last[:, 0]), True), show(boot.interval(r[:, 1] - last[:, 1]), True))
            )
            print(
                f"| {name} | {len(train):,} / {len(test):,} | {len(qs):,} | {label} | {show(boot.interval(r[:, 0]))} | "
                f"{show(boot.interval(r[:, 1]))} | {diff[0]} | {diff[1]} |"
            )
        if rules:
            # the queries whose last item has little evidence (w < 1/2, first rule): where the session-kNN leads
            _, tau, threshold = rules[0]
            thin = np.array([session_rule.weight(sm.co.counts.get(p[-1], 0), tau, threshold) < 0.5 for p, _ in qs])
            if thin.any():
                sub = Boot(int(thin.sum()), seed)
                d = rows[len(rows) - len(rules)][1][thin, 0] - last[thin, 0]
                print(
                    f"<!-- {name}: session-kNN leads (w < 1/2) on {int(thin.sum()):,} of {len(qs):,} queries, "
                    f"HitRate@10 there rule - last item {show(sub.interval(d), True)} -->"
                )
        print(f"<!-- {name}: {time.perf_counter() - t:.1f} s -->")


def also_bought_lists(sm: SessionModels, c: Counts, qs, k: int, m: float) -> dict[str, list[list[str]]]:
    """Per query (the session so far, the seed its last item): today's also-bought, popularity, the
    session path (engine.recommend.session_rule over the pool, the session's items left out, filled by
    the orders' popularity; today's list where the rule ranks nothing), and the session path gated by
    the seed's evidence (the pool sessions holding it: below T only, from T only)."""
    out: dict[str, list[list[str]]] = {"today": [], "pop": [], "session": [], "below": [], "from": []}
    threshold = session_rule.EVIDENCE_THRESHOLD
    for prefix, _ in qs:
        seed = prefix[-1]
        today = c.shrunk(seed, m)
        pairs, n_seed, score = sm.parts(prefix, k)
        ranked = session_rule.rank(pairs, n_seed, score, 0.0, threshold, exclude=prefix, popularity=c.co.counts)
        seen = set(prefix)
        session = today if not ranked else [i for i, _ in ranked[:K]]
        session += [i for i in c.popular if i not in seen and i not in session][: K - len(session)]
        out["today"].append(today)
        out["pop"].append(c.pop_list(seed))
        out["session"].append(session)
        out["below"].append(session if n_seed < threshold else today)
        out["from"].append(session if n_seed >= threshold else today)
    return out


GATES = {"always": "session", "below T only": "below", "from T only": "from", "never": "today"}


def choose_gate(sets, orders_of, k: int, seed: int) -> tuple[str, dict]:
    """Where also-bought with a visitor takes the session path, by FOLDS-fold cross-validation inside each
    training split (each fifth of the training sessions the queries, the rest the pool and its orders):
    the HitRate@10 gain over today's also-bought per gate; the largest worst gain across the data sets
    decides, then the mean gain, then the gate listed first."""
    m, gains = shrink.PRIOR_STRENGTH, {}
    for name, sessions in sets:
        train, _ = split(sessions)
        size = len(train) // FOLDS
        total, n = {gate: 0.0 for gate in GATES}, 0
        for f in range(FOLDS):
            pool = train[: f * size] + train[(f + 1) * size :]
            qs = session_queries(train[f * size : (f + 1) * size], seed + 1 + f)
            targets = [h for _, h in qs]
            n += len(qs)
            lists = also_bought_lists(SessionModels(pool), Counts(orders_of(name, pool)), qs, k, m)
            today = hits(lists["today"], targets)[:, 0].sum()
            for gate, key in GATES.items():
                total[gate] += hits(lists[key], targets)[:, 0].sum() - today
        gains[name] = {gate: total[gate] / n for gate in GATES}
    options = [(gate,) for gate in GATES]
    return best_option(options, gains)[0], gains


def also_bought_table(sets, orders_of, k: int, seed: int) -> None:
    """Also-bought with a visitor mid-session: the next item after the seed, the session so far before it."""
    m, threshold = shrink.PRIOR_STRENGTH, session_rule.EVIDENCE_THRESHOLD
    print(
        "| data set | pool sessions / orders | queries | method | HitRate@10 | MRR@10 | HitRate@10 - today | "
        "MRR@10 - today | HitRate@10 - popularity |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    labels = {
        "pop": "popularity (orders)",
        "today": f"co-occurrence of the seed (orders): today's also-bought, m {m:g}",
        "session": f"session path: evidence rule, T {threshold:g}, session so far + seed (V-SKNN k {k})",
        "below": f"session path only where the seed is in < {threshold:g} pool sessions",
        "from": f"session path only where the seed is in >= {threshold:g} pool sessions",
    }
    for name, sessions in sets:
        train, test = split(sessions)
        orders = orders_of(name, train)
        sm, c = SessionModels(train), Counts(orders)
        qs = session_queries(test, seed)
        targets = [h for _, h in qs]
        boot = Boot(len(qs), seed)
        r = {key: hits(lists, targets) for key, lists in also_bought_lists(sm, c, qs, k, m).items()}
        today, pop = r["today"], r["pop"]
        for key, label in labels.items():
            over_pop = "-" if key == "pop" else show(boot.interval(r[key][:, 0] - pop[:, 0]), True)
            diff = (
                ("-", "-")
                if key == "today"
                else (
                    show(boot.interval(r[key][:, 0] - today[:, 0]), True),
                    show(boot.interval(r[key][:, 1] - today[:, 1]), True),
                )
            )
            print(
                f"| {name} | {len(train):,} / {len(orders):,} | {len(qs):,} | {label} | "
                f"{show(boot.interval(r[key][:, 0]))} | {show(boot.interval(r[key][:, 1]))} | {diff[0]} | {diff[1]} | "
                f"{over_pop} |"
            )
        thin = np.array([sm.co.counts.get(p[-1], 0) < threshold for p, _ in qs])
        for part, where in (("< T", thin), (">= T", ~thin)):
            if where.any():
                sub = Boot(int(where.sum()), seed)
                d = r["session"][where] - today[where]
                print(
                    f"<!-- {name}: seed in {part} pool sessions on {int(where.sum()):,} of {len(qs):,} queries, "
                    f"session path - today: HitRate@10 {show(sub.interval(d[:, 0]), True)}, "
                    f"MRR@10 {show(sub.interval(d[:, 1]), True)} -->"
                )


def also_bought(session_sets, k: int, seed: int) -> None:
    def orders_of(name: str, pool: list[list[str]]) -> list[list[str]]:
        """What a pool's sessions bought: a shop's baskets of its view sessions, the groceries baskets themselves."""
        return baskets_of(pool, seed) if name.startswith("shop") else pool

    gate, gains = choose_gate(session_sets, orders_of, k, seed)
    print(
        f"\nAlso-bought with a visitor mid-session: where the session path is taken, by {FOLDS}-fold "
        f"cross-validation inside each training split (HitRate@10 gain over today's also-bought; T "
        f"{session_rule.EVIDENCE_THRESHOLD:g}, the seed's pool sessions):\n"
    )
    print("| data set | " + " | ".join(GATES) + " |")
    print("|---|" + "---|" * len(GATES))
    for name, g in gains.items():
        print(f"| {name} | " + " | ".join(f"{g[x]:+.4f}" for x in GATES) + " |")
    print(f"\nchosen: {gate} (largest worst gain across the data sets)\n")
    print("Also-bought with a visitor mid-session, next item after the seed [95% bootstrap interval]:\n")
    also_bought_table(session_sets, orders_of, k, seed)


def one_item(basket_sets, args) -> None:
    m, gains = choose_m(basket_sets, args.seed)
    print(
        f"\nPrior strength m by {FOLDS}-fold cross-validation inside each training split (HitRate@10 gain over "
        f"the better of raw counts and popularity, per m), "
        f"served {shrink.PRIOR_STRENGTH:g}:\n"
    )
    print("| data set | " + " | ".join(f"m {x:g}" for x in GRID_M) + " |")
    print("|---|" + "---|" * len(GRID_M))
    for name, g in gains.items():
        print(f"| {name} | " + " | ".join(f"{g[x]:+.4f}" for x in GRID_M) + " |")
    print(f"\nchosen m = {m:g} (largest worst gain across the data sets)\n")
    if m != shrink.PRIOR_STRENGTH:
        print(f"NOTE: the served PRIOR_STRENGTH {shrink.PRIOR_STRENGTH:g} is not the chosen m {m:g}\n")
    print("One-item queries (also-bought of one seed), HitRate@10 [95% bootstrap interval]:\n")
    one_item_table(basket_sets, m, args.seed, not args.no_previous)
    learned_table(basket_sets, args.seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-previous", action="store_true", help="skip the previous blend (it trains ALS per set)")
    ap.add_argument("--items-only", action="store_true", help="one-item queries only")
    ap.add_argument("--learned-only", action="store_true", help="only the m chosen by leave-one-out")
    ap.add_argument("--sessions-only", action="store_true", help="next-item queries only")
    ap.add_argument(
        "--also-bought-only",
        action="store_true",
        help="also-bought with a visitor mid-session only (served k and T, nothing chosen)",
    )
    args = ap.parse_args()
    started = time.perf_counter()
    print(f"Machine: {machine()}")
    groceries = load_groceries(args.data)
    dense = shop(25_000, 1_000, 20, 1.0, args.seed)
    sparse = shop(12_000, 20_000, 200, 0.8, args.seed + 1)
    basket_sets = [
        ("groceries", groceries),
        ("groceries 30%", thinned(groceries, 0.3, args.seed)),
        ("groceries 10%", thinned(groceries, 0.1, args.seed)),
        ("shop dense", baskets_of(dense, args.seed)),
        ("shop sparse", baskets_of(sparse, args.seed)),
    ]
    rng = random.Random(args.seed)
    shuffled = [rng.sample(b, len(b)) for b in groceries]
    session_sets = [
        ("shop dense", dense),
        ("shop sparse", sparse),
        ("groceries, baskets in random order", shuffled),
        ("groceries 30%, random order", thinned(shuffled, 0.3, args.seed)),
        ("groceries 10%, random order", thinned(shuffled, 0.1, args.seed)),
    ]

    if args.learned_only:
        learned_table(basket_sets, args.seed)
        return
    if args.also_bought_only:
        also_bought(session_sets, sknn.K_NEIGHBOURS, args.seed)
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
        return
    if not args.sessions_only:
        one_item(basket_sets, args)
    if args.items_only:
        return
    k, kgains = choose_k(session_sets, args.seed)
    print(
        "\nV-SKNN neighbours k chosen on the validation splits (HitRate@10 gain over the last item's co-occurrence):\n"
    )
    for name, g in kgains.items():
        print(f"- {name}: " + ", ".join(f"k {x}: {g[x]:+.4f}" for x in GRID_K))
    print(f"\nchosen k = {k}\n")
    rule, rgains = choose_rule(session_sets, k, args.seed)
    print(
        f"Evidence rule by {FOLDS}-fold cross-validation inside each training split (HitRate@10 gain over the "
        f"last item's co-occurrence; tau: the blend weight n / (n + tau), T: the hard threshold), "
        f"served T {session_rule.EVIDENCE_THRESHOLD:g}, tau {session_rule.EVIDENCE_SCALE:g}:\n"
    )
    options = rule_options()
    print("| data set | " + " | ".join(o[0] for o in options) + " |")
    print("|---|" + "---|" * len(options))
    for name, g in rgains.items():
        print(f"| {name} | " + " | ".join(f"{g[o[0]]:+.4f}" for o in options) + " |")
    print(f"\nchosen: {rule[0]} (largest worst gain across the data sets)\n")
    if (rule[1], rule[2]) != (session_rule.EVIDENCE_SCALE, session_rule.EVIDENCE_THRESHOLD):
        print("NOTE: the served rule is not the chosen one\n")
    # for comparison: the blend with the largest mean gain on validation, whatever it loses on one set
    other = max((o for o in options if o[2] == 1), key=lambda o: float(np.mean([g[o[0]] for g in rgains.values()])))
    print("Next-item queries on sessions, [95% bootstrap interval]:\n")
    session_table(session_sets, k, args.seed, [rule, other])
    also_bought(session_sets, k, args.seed)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
