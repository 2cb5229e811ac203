"""Also-bought served by the running engine: real baskets in, lists and latency out.

Claim: real baskets replayed through the running engine give lists that beat both
baselines, each served in milliseconds.

1. Starts the engine as it runs in production, one process each: a Tansu broker,
   `clickstream worker`, `clickstream api` (collector and API in one app). Uses the
   Redis at 127.0.0.1:6379 under a key prefix of its own (else starts a redis-server).
2. Groceries (../shared/data/groceries.csv: 9,835 real baskets, 169 items), in basket-id
   order, which follows time: the first 80% are POSTed to /v1/events as purchase events
   (one visitor and one order per basket, category = level2, timestamps spread over the
   30 days the data covers, ending now; the data has no prices), 500 per request. Waits
   until the worker has counted every order (`{prefix}:rec:{co}:totals` orders).
3. `clickstream train` reads the topic and publishes the ALS model; waits until the API
   serves lists whose source names "als".
4. Every test basket (the last 20%) with >= 2 distinct items gives a (seed, target)
   pair, both drawn with a fixed seed, `--draws` times (seeds --seed, --seed + 1, ...).
   GET /v1/recommendations/also-bought?item=SEED&k=10, once with max_per_category=0
   (no cap) and once with the default cap (3 per category). HitRate@10 = share of pairs
   whose target is in the list; MRR@10 = mean 1/rank. Baselines from the same training
   baskets and the same pairs, computed here: popularity (baskets holding the item; the
   seed excluded) and raw co-occurrence (the seed's top 10 partners by pair count, ties
   and fill by popularity). Each basket's mean over its draws is one unit: the paired
   difference to each baseline comes with a 95% interval over the baskets (normal
   approximation); more draws shrink the noise of which item was drawn, not of which
   baskets were bought.
5. Also-bought with a cart, as ../shared/data's README puts the task (leave one item out,
   ask for the items bought with the others): for each draw of 4, each test shopper
   (visitor c<draw>-<basket>) adds the rest of their basket to the cart (add_to_cart
   events through the collector; the seed is one of them), then GET also-bought?item=SEED
   &visitor_id=c<draw>-<basket>: the list for the product page of someone with that cart.
   The baselines get the same items: popularity, and raw pair counts summed over the
   cart (ties and fill by popularity); neither lists the cart's items.
6. Basket queries for for-you: each test shopper (visitor t<basket>) buys the
   rest of their basket, the same held-out target as in 4; then GET
   /v1/recommendations/for-you?visitor_id=t<basket>&k=10 (the list for someone who
   bought those items; they are filtered out of it). The baselines count the same
   orders (training baskets + the rests): popularity, and raw pair counts summed over
   the rest of the basket (ties and fill by popularity); neither lists the query items.
7. Latency: client-side percentiles of those requests (one keep-alive client, sequential,
   loopback) and the server's own histogram from GET /metrics (route template
   /v1/recommendations/also-bought), interpolated within its buckets.
8. Freshness: two new visitors each buy the same two brand-new items; seconds from the
   POST until also-bought of one lists the other with its 2 orders as evidence.
9. Stops every process it started and deletes its Redis keys.

Usage: python benchmarks/recommend_served.py [--data PATH] [--seed N] [--draws N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit (ALS training) warns with threaded BLAS

import argparse  # noqa: E402
import csv  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import redis  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.embedded import Supervisor, broker_command, free_port, redis_command, wait_for_port, wait_healthy  # noqa: E402
from engine.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "groceries.csv"
K = 10
PER_REQUEST = 500
DAYS = 30
ROUTE = "/v1/recommendations/also-bought"
FOR_YOU = "/v1/recommendations/for-you"
AUTH = {"Authorization": "Bearer bench"}  # the shop's back end: its events are trusted and never rate limited


def vid(name: str) -> str:
    """The engine's form of a visitor id (a v4 UUID), derived from the benchmark's readable name."""
    return str(uuid.UUID(bytes=uuid.uuid5(uuid.NAMESPACE_URL, name).bytes, version=4))


Basket = tuple[int, list[tuple[str, str]]]  # basket id, distinct (item, level2) in file order


# --- data, baselines and scores (pure) ---------------------------------------------


def load_baskets(path: Path) -> list[Basket]:
    baskets: dict[int, dict[str, str]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            baskets.setdefault(int(row["basket"]), {}).setdefault(row["item"], row["level2"])
    return [(b, list(baskets[b].items())) for b in sorted(baskets)]


def purchase_event(basket: Basket, ts: int, tag: str, who: str = "g") -> dict:
    bid, lines = basket
    return {
        "event_id": f"{tag}-{who}{bid}",
        "type": "purchase",
        "visitor_id": f"{who}{bid}",
        "session_id": f"s{bid}",
        "ts": ts,
        "props": {
            "order": {
                "id": f"{who}{bid}",
                "items": [{"id": item, "qty": 1, "category": level2} for item, level2 in lines],
            }
        },
    }


def make_pairs(test: list[Basket], seed: int) -> list[tuple[str, str]]:
    """(seed item, held-out target) per test basket of >= 2 distinct items."""
    rng = random.Random(seed)
    out = []
    for _, lines in test:
        items = [item for item, _ in lines]
        if len(items) >= 2:
            query = rng.choice(items)
            out.append((query, rng.choice([i for i in items if i != query])))
    return out


def cart_events(rests: list[Basket], ts: int, tag: str, who: str) -> list[dict]:
    """Each shopper (visitor <who><basket>) puts the rest of their basket in the cart, one add_to_cart per item."""
    return [
        {
            "event_id": f"{tag}-{who}{bid}-{n}",
            "type": "add_to_cart",
            "visitor_id": f"{who}{bid}",
            "session_id": f"{who}{bid}",
            "ts": ts + n,
            "props": {"product": {"id": item, "category": level2}, "qty": 1},
        }
        for bid, lines in rests
        for n, (item, level2) in enumerate(lines)
    ]


def rest_of(test: list[Basket], pairs: list[tuple[str, str]]) -> list[Basket]:
    """Each test basket of >= 2 items without its held-out target: what its shopper is asked about."""
    kept = [basket for basket in test if len(basket[1]) >= 2]
    return [
        (bid, [(item, cat) for item, cat in lines if item != target]) for (bid, lines), (_, target) in zip(kept, pairs)
    ]


class Baselines:
    """Popularity and raw co-occurrence counts of the training baskets."""

    def __init__(self, train: list[Basket]) -> None:
        self.popularity: Counter = Counter()
        self.pairs: dict[str, Counter] = defaultdict(Counter)
        for _, lines in train:
            self.add([item for item, _ in lines])

    def add(self, items: list[str]) -> None:
        self.popularity.update(items)
        for a in items:
            for b in items:
                if a != b:
                    self.pairs[a][b] += 1
        self.by_popularity = sorted(self.popularity, key=lambda i: (-self.popularity[i], i))

    def popular(self, *seeds: str) -> list[str]:
        return [i for i in self.by_popularity if i not in seeds][:K]

    def cooccurring(self, *seeds: str) -> list[str]:
        """Raw pair counts summed over the seeds, ties and fill by popularity."""
        partners: Counter = Counter()
        for seed in seeds:
            partners.update(self.pairs.get(seed, Counter()))
        ranked = sorted((i for i in partners if i not in seeds), key=lambda i: (-partners[i], -self.popularity[i], i))[
            :K
        ]
        return ranked + [i for i in self.popular(*seeds) if i not in ranked][: K - len(ranked)]


def reciprocal_ranks(lists: list[list[str]], pairs: list[tuple[str, str]]) -> list[float]:
    """1/rank of the target in each list (0 when it is not in the top K)."""
    return [1.0 / (ids.index(target) + 1) if target in ids[:K] else 0.0 for ids, (_, target) in zip(lists, pairs)]


def paired_gap(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95% interval."""
    diffs = [x - y for x, y in zip(a, b)]
    return statistics.fmean(diffs), 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def histogram(text: str, route: str) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of the also-bought route, status 200, from Prometheus text."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "clickstream_http_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_bucket") and labels.get("route") == route and labels.get("status") == "200":
                le = float(labels["le"])
                out[le] = out.get(le, 0.0) + sample.value
    return out


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, int]:
    """Prometheus' histogram_quantile over the requests between two scrapes; (seconds, requests)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return math.nan, 0
    rank, low, below = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if math.isinf(bound):
                return low, int(total)
            return low + (bound - low) * (rank - below) / max(cumulative - below, 1e-12), int(total)
        low, below = bound, cumulative
    return bounds[-1], int(total)


# --- the running engine -------------------------------------------------------------


class Engine:
    """Broker, Redis (if none is running), worker and API as child processes (engine.embedded's
    Supervisor, logs in a temporary folder); stop() ends them all."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-served-{tag}-"))
        self.supervisor = Supervisor(self.dir)
        self.redis_url = "redis://127.0.0.1:6379/0"
        self.own_redis = False
        self.settings: Settings | None = None
        self.env: dict = {}
        self.port = 0

    def start(self) -> None:
        spawn = self.supervisor.spawn
        broker_port = free_port()
        wait_for_port(broker_port, 30, spawn("broker", broker_command(broker_port)))
        try:
            redis.Redis.from_url(self.redis_url).ping()
        except redis.RedisError:
            port = free_port()
            wait_for_port(port, 30, spawn("redis", redis_command(port, self.dir)))
            self.redis_url, self.own_redis = f"redis://127.0.0.1:{port}/0", True
        self.settings = replace(
            Settings(),
            kafka=f"127.0.0.1:{broker_port}",
            redis=self.redis_url,
            api_keys=("bench",),
            topic=f"served-{self.tag}",
            consumer_group=f"served-{self.tag}",
            redis_prefix=f"served{self.tag}",
            rebalance_timeout_s=1.0,
            worker_heartbeat_s=0.5,
            data_dir=self.dir,
            log_level="warning",
        )
        self.env = dict(os.environ, **self.settings.environ())
        spawn("worker", [sys.executable, "-m", "engine.cli", "worker"], self.env)
        self.port = free_port()
        spawn(
            "api",
            [sys.executable, "-m", "engine.cli", "api", "--host", "127.0.0.1", "--port", str(self.port)],
            self.env,
        )
        wait_healthy(f"{self.url}/healthz", 120, self.supervisor)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check_alive(self) -> None:
        dead = self.supervisor.exited()
        if dead:
            raise RuntimeError(f"{dead[0]} exited with code {dead[1]} (log: {self.dir / dead[0]}.log)")

    def train(self) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "train", "--quiet"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if done.returncode != 0:
            raise RuntimeError(f"clickstream train failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def problems(self) -> list[str]:
        """Lines of the worker's and API's logs that report errors."""
        out = []
        for name in ("worker", "api"):
            path = self.dir / f"{name}.log"
            if path.exists():
                out += [
                    f"{name}: {line}"
                    for line in path.read_text(errors="replace").splitlines()
                    if "ERROR" in line or "Traceback" in line or "CRITICAL" in line
                ]
        return out

    def stop(self) -> None:
        self.supervisor.stop_all()
        if self.settings is not None and not self.own_redis:
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"{self.settings.redis_prefix}:*", count=5000))
            for start in range(0, len(keys), 5000):
                client.unlink(*keys[start : start + 5000])
            client.close()


# --- the run ------------------------------------------------------------------------


def post_events(client: httpx.Client, events: list[dict]) -> None:
    for start in range(0, len(events), PER_REQUEST):
        chunk = [dict(e, visitor_id=vid(e["visitor_id"])) for e in events[start : start + PER_REQUEST]]
        response = client.post("/v1/events", json={"events": chunk}, headers=AUTH)
        body = response.json()
        if response.status_code != 202 or body.get("accepted") != len(chunk) or body.get("rejected"):
            raise RuntimeError(f"collector answered {response.status_code}: {response.text[:500]}")


def wait_orders(engine: Engine, client: redis.Redis, expected: int, timeout_s: float = 120) -> None:
    key = f"{engine.settings.redis_prefix}:rec:{{co}}:totals"
    deadline = time.monotonic() + timeout_s
    counted = 0
    while time.monotonic() < deadline:
        engine.check_alive()
        counted = int(client.hget(key, "orders") or 0)
        if counted >= expected:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the worker counted {counted} of {expected} orders in {timeout_s} s")


def ask(client: httpx.Client, route: str, params: dict, cap: int | None) -> tuple[dict, float]:
    """One list: (its JSON, seconds the GET took)."""
    params = {**params, "k": K, **({} if cap is None else {"max_per_category": cap})}
    started = time.perf_counter()
    response = client.get(route, params=params, headers=AUTH)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{route} {params} answered {response.status_code}: {response.text[:300]}")
    return response.json(), elapsed


def also_bought(client: httpx.Client, item: str, cap: int | None, visitor: str | None = None) -> tuple[dict, float]:
    return ask(client, ROUTE, {"item": item, **({"visitor_id": vid(visitor)} if visitor else {})}, cap)


def wait_carts(engine: Engine, api: httpx.Client, carts: dict[str, int], timeout_s: float = 120) -> None:
    """Until every visitor's profile holds as many cart items as they added."""
    deadline = time.monotonic() + timeout_s
    for visitor, expected in carts.items():
        while True:
            response = api.get(f"/v1/profiles/{vid(visitor)}", headers=AUTH)
            if response.status_code == 200 and len(response.json()["commerce"]["cart"]) >= expected:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cart of {visitor} was not complete after {timeout_s} s")
            engine.check_alive()
            time.sleep(0.05)


def for_you(client: httpx.Client, visitor: str, cap: int | None) -> tuple[dict, float]:
    return ask(client, FOR_YOU, {"visitor_id": vid(visitor)}, cap)


def wait_for_als(client: httpx.Client, collector: httpx.Client, items: list[str], timeout_s: float = 30) -> float:
    """Seconds until a served list names ALS among its sources (the API polls for models every 5 s).

    Asked as for-you of a probe visitor who viewed the items: the one-item also-bought is
    the item's own counts (engine.recommend.shrink) and never uses the model.
    """
    started = time.monotonic()
    post_events(
        collector,
        [
            {
                "event_id": f"als-probe-{n}",
                "type": "product_view",
                "visitor_id": "als-probe",
                "session_id": "als-probe",
                "ts": int(time.time() * 1000) + n,
                "props": {"product": {"id": item}},
            }
            for n, item in enumerate(items)
        ],
    )
    while time.monotonic() - started < timeout_s:
        if "als" in for_you(client, "als-probe", 0)[0]["source"].split("+"):
            return time.monotonic() - started
        time.sleep(0.25)
    raise TimeoutError(f"no served list used the ALS model within {timeout_s} s")


def freshness(client: httpx.Client, api: httpx.Client, tag: str, timeout_s: float = 30) -> tuple[float, float]:
    """(seconds until the collector accepted, seconds until also-bought of A lists B, bought with it twice)."""
    a, b = f"fresh-{tag}-a", f"fresh-{tag}-b"
    now = int(time.time() * 1000)
    events = [
        {
            "event_id": f"{tag}-fresh{n}",
            "type": "purchase",
            "visitor_id": f"fresh-{tag}-{n}",
            "session_id": f"fresh{n}",
            "ts": now,
            "props": {
                "order": {
                    "id": f"fresh-{tag}-{n}",
                    "items": [{"id": a, "qty": 1, "category": "fresh"}, {"id": b, "qty": 1, "category": "fresh"}],
                }
            },
        }
        for n in range(2)
    ]
    started = time.perf_counter()
    post_events(client, events)
    accepted = time.perf_counter() - started
    while time.perf_counter() - started < timeout_s:
        items = also_bought(api, a, 0)[0]["items"]
        # listed with both orders as its evidence (a new item's 2 orders do not outrank the best sellers)
        if any(i["id"] == b and i["because"].get("orders") == 2 for i in items):
            return accepted, time.perf_counter() - started
        time.sleep(0.01)
    raise TimeoutError(f"also-bought of a new item did not list its partner within {timeout_s} s")


def per_basket(draws: list[list[float]]) -> tuple[list[float], list[float]]:
    """(hit, reciprocal rank) per test basket, each the mean over the draws of its seed and target."""
    hits = [statistics.fmean(float(r > 0) for r in rrs) for rrs in zip(*draws)]
    return hits, [statistics.fmean(rrs) for rrs in zip(*draws)]


def report(title: str, results: dict[str, tuple[list[float], list[float]]]) -> None:
    """HitRate@10 and MRR@10 of each list, then each served list minus each baseline, paired by basket."""
    print(f"\n{title}\n")
    print("| list | HitRate@10 | MRR@10 |")
    print("|---|---|---|")
    for name, (hits, rr) in results.items():
        print(f"| {name} | {statistics.fmean(hits):.3f} | {statistics.fmean(rr):.3f} |")
    print()
    print("| served minus baseline (same queries) | HitRate@10, 95% interval | MRR@10, 95% interval | HitRate ratio |")
    print("|---|---|---|---|")
    for served in (name for name in results if "baseline" not in name):
        for baseline in (name for name in results if "baseline" in name):
            (hit_a, a), (hit_b, b) = results[served], results[baseline]
            dh, ch = paired_gap(hit_a, hit_b)
            dm, cm = paired_gap(a, b)
            ratio = statistics.fmean(hit_a) / statistics.fmean(hit_b)
            print(
                f"| {served} - {baseline.removesuffix(' (baseline)')} | {dh:+.3f} ± {ch:.3f} | {dm:+.3f} ± {cm:.3f} "
                f"| {ratio:.2f}x |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--draws", type=int, default=5, help="draws of seed and target per test basket (also-bought)")
    args = ap.parse_args()
    run_started = time.monotonic()

    baskets = load_baskets(args.data)
    cut = int(len(baskets) * 0.8)
    train, test = baskets[:cut], baskets[cut:]
    draws = [make_pairs(test, args.seed + d) for d in range(args.draws)]
    pairs = draws[0]
    lines = sum(len(lines) for _, lines in baskets)
    items = {item for _, lines in baskets for item, _ in lines}
    print(f"machine: {machine()}")
    print(
        f"data: {args.data.name}: {len(baskets):,} baskets, {len(items)} items, {lines:,} distinct basket lines; "
        f"train = first {len(train):,} baskets, test = last {len(test):,} ({len(pairs):,} with >= 2 items: "
        f"one seed, one target each; {args.draws} draws, seeds {args.seed}..{args.seed + args.draws - 1})"
    )
    print("engine: Tansu broker, 1 worker, 1 api process (uvicorn), Redis; all on this machine, loopback HTTP")

    now = int(time.time() * 1000)
    span = DAYS * 86_400_000
    tag = uuid.uuid4().hex[:8]
    events = [purchase_event(basket, now - span + n * span // len(baskets), tag) for n, basket in enumerate(train)]

    base = Baselines(train)
    engine = Engine(tag)
    basket_results, basket_latencies, cart_latencies = {}, [], []
    try:
        started = time.monotonic()
        engine.start()
        print(f"engine healthy in {time.monotonic() - started:.1f} s (logs: {engine.dir})", flush=True)
        store = redis.Redis.from_url(engine.redis_url)
        with (
            httpx.Client(base_url=engine.url, timeout=30) as collector,
            httpx.Client(base_url=engine.url, timeout=30) as api,
        ):
            started = time.perf_counter()
            post_events(collector, events)
            posted = time.perf_counter() - started
            wait_orders(engine, store, len(train))
            counted = time.perf_counter() - started
            print(
                f"ingest: {len(events):,} purchases POSTed in {posted:.2f} s, all counted by the worker "
                f"{counted:.2f} s after the first POST",
                flush=True,
            )

            started = time.monotonic()
            print(f"train: {engine.train()} ({time.monotonic() - started:.1f} s with start-up)", flush=True)
            print(
                f"the API served ALS {wait_for_als(api, collector, base.by_popularity[:5]):.1f} s after training ended",
                flush=True,
            )

            scrape_before = histogram(api.get("/metrics").text, ROUTE)
            latencies: list[float] = []
            per_draw: dict[str, list[list[float]]] = defaultdict(list)
            for draw in draws:
                for name, cap in (("served, no category cap", 0), ("served, default cap (3 per category)", None)):
                    lists, sources = [], Counter()
                    for seed_item, _ in draw:
                        body, elapsed = also_bought(api, seed_item, cap)
                        latencies.append(elapsed)
                        lists.append([entry["id"] for entry in body["items"]])
                        sources[body["source"]] += 1
                    per_draw[name].append(reciprocal_ranks(lists, draw))
                per_draw["popularity (baseline)"].append(reciprocal_ranks([base.popular(s) for s, _ in draw], draw))
                per_draw["raw co-occurrence (baseline)"].append(
                    reciprocal_ranks([base.cooccurring(s) for s, _ in draw], draw)
                )
            print(f"also-bought sources: {dict(sources.most_common())}", flush=True)
            scrape_after = histogram(api.get("/metrics").text, ROUTE)
            results = {name: per_basket(rrs) for name, rrs in per_draw.items()}

            # Also-bought on a product page with a cart: each draw's test shopper has the rest of their
            # basket (seed included) in the cart and asks about the seed. No orders change the counts.
            cart_draws: dict[str, list[list[float]]] = defaultdict(list)
            for d, draw in enumerate(draws):
                rests, who = rest_of(test, draw), f"c{d}-"
                post_events(collector, cart_events(rests, now, tag, who))
                wait_carts(engine, api, {f"{who}{bid}": len(lines) for bid, lines in rests})
                for name, cap in (("served, no category cap", 0), ("served, default cap (3 per category)", None)):
                    lists, sources = [], Counter()
                    for (seed_item, _), (bid, _) in zip(draw, rests):
                        body, elapsed = also_bought(api, seed_item, cap, visitor=f"{who}{bid}")
                        cart_latencies.append(elapsed)
                        lists.append([entry["id"] for entry in body["items"]])
                        sources[body["source"]] += 1
                    cart_draws[name].append(reciprocal_ranks(lists, draw))
                queries = [[item for item, _ in lines] for _, lines in rests]
                cart_draws["popularity (baseline)"].append(reciprocal_ranks([base.popular(*q) for q in queries], draw))
                cart_draws["raw co-occurrence (baseline)"].append(
                    reciprocal_ranks([base.cooccurring(*q) for q in queries], draw)
                )
            print(f"also-bought with a cart, sources: {dict(sources.most_common())}", flush=True)
            cart_results = {name: per_basket(rrs) for name, rrs in cart_draws.items()}

            # Basket queries: each test shopper buys the rest of their basket; for-you is asked for the
            # held-out item. The baselines count the same orders the engine does (training + the rests).
            rests = rest_of(test, pairs)
            post_events(collector, [purchase_event(b, now, tag, who="t") for b in rests])
            wait_orders(engine, store, len(train) + len(rests))
            time.sleep(1.0)  # the profiles are saved in the same batch; give the API's caches a second
            for _, lines in rests:
                base.add([item for item, _ in lines])
            for name, cap in (("for-you, no category cap", 0), ("for-you, default cap (3 per category)", None)):
                lists, sources = [], Counter()
                for bid, _ in rests:
                    body, elapsed = for_you(api, f"t{bid}", cap)
                    basket_latencies.append(elapsed)
                    lists.append([entry["id"] for entry in body["items"]])
                    sources[body["source"]] += 1
                basket_results[name] = per_basket([reciprocal_ranks(lists, pairs)])
                print(f"{name}: sources {dict(sources.most_common())}", flush=True)
            queries = [[item for item, _ in lines] for _, lines in rests]
            basket_results["popularity (baseline)"] = per_basket(
                [reciprocal_ranks([base.popular(*q) for q in queries], pairs)]
            )
            basket_results["raw co-occurrence (baseline)"] = per_basket(
                [reciprocal_ranks([base.cooccurring(*q) for q in queries], pairs)]
            )

            accepted_s, fresh_s = freshness(collector, api, tag)
        problems = engine.problems()
        store.close()
    finally:
        engine.stop()

    report(
        f"also-bought: one item of the basket as the seed ({len(pairs):,} test baskets x {args.draws} draws of "
        f"seed and target; each basket's mean over the draws is one unit of the intervals)",
        results,
    )
    report(
        f"also-bought with the rest of the basket in the shopper's cart ({len(pairs):,} test baskets x "
        f"{args.draws} draws; the same seeds and targets as above)",
        cart_results,
    )
    report(f"for-you: the shopper bought the rest of the basket ({len(pairs):,} baskets)", basket_results)
    print()
    ms = [s * 1000 for s in latencies]
    server_p50, n_server = bucket_quantile(scrape_before, scrape_after, 0.50)
    server_p99, _ = bucket_quantile(scrape_before, scrape_after, 0.99)
    print(
        f"latency, client side ({len(ms):,} sequential GETs, one keep-alive connection, loopback): "
        f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms, max {max(ms):.2f} ms"
    )
    print(
        f"latency, server side (GET /metrics histogram, {n_server:,} requests, interpolated within buckets "
        f"{sorted(scrape_after)[:-1]} s): p50 ~{server_p50 * 1000:.2f} ms, p99 ~{server_p99 * 1000:.2f} ms"
    )
    ms = [s * 1000 for s in cart_latencies]
    print(
        f"also-bought with a cart, latency client side ({len(ms):,} sequential GETs): p50 {percentile(ms, 50):.2f} ms, "
        f"p99 {percentile(ms, 99):.2f} ms"
    )
    ms = [s * 1000 for s in basket_latencies]
    print(
        f"for-you latency, client side ({len(ms):,} sequential GETs): p50 {percentile(ms, 50):.2f} ms, "
        f"p99 {percentile(ms, 99):.2f} ms"
    )
    print(
        f"freshness: 2 purchases of 2 new items POSTed, accepted in {accepted_s * 1000:.0f} ms; "
        f"also-bought of one lists the other (2 orders) after {fresh_s:.2f} s"
    )
    if problems:
        print(f"errors in the engine's logs ({len(problems)}):")
        for line in problems[:20]:
            print(f"  {line}")
    else:
        print("no errors in the worker's or the API's log")
    print(f"run: {time.monotonic() - run_started:.0f} s; every process stopped, keys under the run's prefix deleted")
    if not problems:
        shutil.rmtree(engine.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
