"""ALS item factors: trained on the event history in Kafka, published in Redis, swapped in live.

Training (`clickstream train`, or the worker's periodic task) replays the topic from
the beginning, as `clickstream replay` does, and folds the events into person x item
confidences (`Interactions`, pure): a purchase weighs more than an add to cart, which
weighs more than a view (`AlsParams.weights`). A person is the user id where a
visitor logged in (first user per cookie, as the profiles do), else the visitor id.
Visitors without analytics consent at the time of an event, and visitors whose
profile is erased (ProfileStore.is_erased) are left out, so an erasure takes a person
out of the next model. implicit's ALS then factorizes the matrix.

Serving uses the item factors only: the score of item j for seed items S is the sum
of the dot products f_s . f_j (benchmarks/recommend_quality.py: the dot product with
regularization ~10 ranks well; the cosine of the factors drops popularity and does not).
The same training fits the item-item regression of engine.recommend.ease on the same
matrix and ships it in the same artefact, so both swap together.

    {prefix}:rec:als:<version>   npz bytes: item ids, item factors, regression weights, meta (JSON)
    {prefix}:rec:als:current     the version being served
    {prefix}:rec:als:info        JSON meta of the current version (parameters, training time)
    {prefix}:rec:als:versions    list of published versions, newest first (the last KEEP are kept)

Every API process holds a `ModelHolder` that polls the pointer and replaces its model
with one reference assignment, so requests never wait on a swap.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows 10x) with threaded BLAS

import asyncio  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Awaitable, Callable, Iterable  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from engine.profiles import orders  # noqa: E402
from engine.profiles.user_ids import is_identity_id  # noqa: E402
from engine.recommend import cooccur, ease  # noqa: E402

log = logging.getLogger("engine.recommend.als")

DEFAULT_WEIGHTS = {"purchase": 5.0, "add_to_cart": 3.0, "product_view": 1.0}
KEEP = 2  # versions kept in Redis: the current one and the one a slow poller may still be reading


@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    regularization: float = 10.0   # tuned in benchmarks/recommend_quality.py; implicit's 0.01 overfits
    iterations: int = 15
    alpha: float = 1.0
    random_state: int | None = 42
    num_threads: int = 0           # 0: every core
    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    item_regression: ease.EaseParams = field(default_factory=ease.EaseParams)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings) -> "AlsParams":
        return cls(factors=settings.als_factors, regularization=settings.als_regularization,
                   iterations=settings.als_iterations,
                   item_regression=ease.EaseParams(regularization=settings.ease_regularization,
                                                   max_items=settings.ease_max_items))


# --- the training set (pure) ----------------------------------------------------


class Interactions:
    """Person x item confidences from events in topic order.

    Consent follows the profile model: an event counts only while the visitor's
    analytics consent (default `consent_default`) holds. Trust follows the worker:
    bots' events count nothing; only a verified identify makes a visitor one user's;
    a browser's purchase counts as `untrusted_orders` says (engine.profiles.orders),
    once per visitor and order id, and gives way to the back end's order of the same
    id; a back end's order id counts once, whatever event ids carried it.
    """

    def __init__(self, weights: dict[str, float] | None = None, consent_default: bool = True,
                 blocked_user_ids: Iterable[str] = (), untrusted_orders: str = "until-trusted") -> None:
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.consent_default = consent_default
        self.blocked = tuple(blocked_user_ids)
        self.untrusted_orders = untrusted_orders
        self.trusted_seen = False
        self.cells: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # visitor -> item -> weight
        self.user_of: dict[str, str] = {}
        self.consent: dict[str, bool] = {}
        self.orders: set[str] = set()                    # trusted order ids
        self.browser_orders: dict[str, list[str]] = {}   # 'visitor:order id' -> items, until a trusted order replaces it
        self.events = 0

    def add(self, event: dict) -> None:
        self.events += 1
        kind, vid = event.get("type"), event.get("visitor_id")
        if not vid or event.get("bot") is True:
            return
        props = event.get("props") or {}
        if kind == "consent":
            analytics = (props.get("consent") or {}).get("analytics")
            if isinstance(analytics, bool):
                self.consent[vid] = analytics
            return
        if not self.consent.get(vid, self.consent_default):
            return
        user_id = event.get("user_id")
        if kind == "identify" and event.get("verified") is True and vid not in self.user_of \
                and is_identity_id(user_id, self.blocked):
            self.user_of[vid] = user_id  # the first user to log in on a cookie owns it
        weight = self.weights.get(kind)
        if not weight:
            return
        if kind == "purchase":
            order = props.get("order") or {}
            self.trusted_seen = orders.mark_claims([event], self.untrusted_orders, self.trusted_seen)
            if order.get("id") is None or not orders.counts(event) or str(order["id"]) in self.orders:
                return
            items = cooccur.order_items(str(line.get("id", "")) for line in order.get("items") or [] if isinstance(line, dict))
            copy = f"{vid}:{order['id']}"
            if event.get("trusted") is not True:
                if copy in self.browser_orders:
                    return
                self.browser_orders[copy] = items
            else:
                self.orders.add(str(order["id"]))
                for item in self.browser_orders.pop(copy, ()):  # the browser's copy gives way
                    self.cells[vid][item] -= weight
        else:
            product = props.get("product") or {}
            items = [str(product["id"])] if product.get("id") is not None else []
        row = self.cells[vid]
        for item in items:
            row[item] += weight

    def visitors(self) -> list[str]:
        return list(self.cells)

    def rows(self, skip: set[str] = frozenset()) -> Iterable[tuple[str, str, float]]:
        """(person, item, weight); visitors of one user become one person."""
        for vid, items in self.cells.items():
            if vid in skip:
                continue
            person = self.user_of.get(vid, vid)
            for item, weight in items.items():
                if weight > 0:   # a browser's order replaced by the back end's leaves zeros
                    yield person, item, weight


# --- the model -------------------------------------------------------------------


@dataclass
class AlsModel:
    version: str
    item_ids: list[str]
    factors: np.ndarray  # (items, factors), float32
    meta: dict = field(default_factory=dict)
    regression: ease.ItemRegression | None = None

    def __post_init__(self) -> None:
        self.index = {item: j for j, item in enumerate(self.item_ids)}

    def __contains__(self, item: str) -> bool:
        return item in self.index

    def scores(self, seeds: Iterable[str], limit: int = 50) -> dict[str, float]:
        """The `limit` items with the largest summed dot product with the seeds (seeds included)."""
        rows = [self.index[s] for s in seeds if s in self.index]
        if not rows or limit <= 0:
            return {}
        summed = self.factors @ self.factors[rows].sum(axis=0)
        n = min(limit, len(summed))
        top = np.argpartition(-summed, n - 1)[:n]
        return {self.item_ids[j]: float(summed[j]) for j in top}

    def regression_scores(self, seeds: Iterable[str], limit: int = 50) -> dict[str, float]:
        """The regression's `limit` best items for the seeds (seeds left out); {} without one."""
        if self.regression is None:
            return {}
        rows = [self.index[s] for s in seeds if s in self.index]
        return {self.item_ids[j]: score for j, score in self.regression.scores(rows, limit).items()}

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays = {}
        if self.regression is not None:
            arrays = {"regression_seeds": self.regression.seeds, "regression_targets": self.regression.targets,
                      "regression_weights": self.regression.weights}
        np.savez(buffer, item_ids=np.array(self.item_ids, dtype=str), factors=self.factors.astype(np.float32),
                 meta=np.array(json.dumps(dict(self.meta, version=self.version))), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "AlsModel":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            regression = None
            if "regression_seeds" in npz.files:   # models published before the regression have none
                regression = ease.ItemRegression(npz["regression_seeds"], npz["regression_targets"],
                                                 npz["regression_weights"])
            return cls(meta["version"], [str(i) for i in npz["item_ids"]], np.ascontiguousarray(npz["factors"]), meta,
                       regression)


def new_version() -> str:
    return f"{int(time.time() * 1000)}-{os.urandom(3).hex()}"


def train_matrix(matrix: sp.csr_matrix, item_ids: list[str], params: AlsParams = AlsParams(),
                 show_progress: bool = False, persons: int | None = None) -> AlsModel:
    """Fits implicit's CPU ALS on a persons x items CSR matrix of confidences."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with threadpool_limits(1, "blas"):  # implicit parallelizes itself; a threaded BLAS under it is 10x slower
        als = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization, alpha=params.alpha,
                                      iterations=params.iterations, random_state=params.random_state,
                                      num_threads=params.num_threads)
        als.fit(matrix, show_progress=show_progress)
    als_seconds = time.perf_counter() - started
    regression, wanted = None, min(params.item_regression.max_items, len(item_ids))
    if wanted > 0:
        if show_progress:
            print(f"train: item-item regression on the {wanted:,} most touched items", file=sys.stderr, flush=True)
        regression = ease.fit(matrix, params.weights.get("purchase", 1.0), params.item_regression)
    seconds = time.perf_counter() - started
    meta = {"params": params.to_json(), "trained_at": int(time.time() * 1000), "train_seconds": round(seconds, 3),
            "als_seconds": round(als_seconds, 3), "regression_seconds": round(seconds - als_seconds, 3),
            "regression_items": len(regression.rows) if regression is not None else 0,
            "persons": persons if persons is not None else matrix.shape[0], "items": len(item_ids),
            "interactions": int(matrix.nnz)}
    return AlsModel(new_version(), list(item_ids), np.ascontiguousarray(als.item_factors, dtype=np.float32), meta,
                    regression)


def build_matrix(interactions: Iterable[tuple[str, str, float]]) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """(persons x items CSR with summed weights, person ids, item ids)."""
    persons: dict[str, int] = {}
    items: dict[str, int] = {}
    rows, cols, values = [], [], []
    for person, item, weight in interactions:
        rows.append(persons.setdefault(person, len(persons)))
        cols.append(items.setdefault(item, len(items)))
        values.append(weight)
    matrix = sp.csr_matrix((np.asarray(values, dtype=np.float32), (np.asarray(rows, dtype=np.int32), np.asarray(cols, dtype=np.int32))),
                           shape=(len(persons), len(items)))
    matrix.sum_duplicates()
    return matrix, list(persons), list(items)


def train_from_interactions(interactions: Iterable[tuple[str, str, float]], params: AlsParams = AlsParams(),
                            show_progress: bool = False) -> AlsModel:
    """Pure-ish (no I/O): (person, item, weight) triples -> a model. For benchmarks and tests."""
    matrix, persons, items = build_matrix(interactions)
    if matrix.nnz == 0:
        raise ValueError("no interactions to train on")
    return train_matrix(matrix, items, params, show_progress, persons=len(persons))


# --- Redis: publish and hold -----------------------------------------------------


def _keys(prefix: str) -> dict[str, str]:
    base = f"{prefix}:rec:als:"
    return {"base": base, "current": base + "current", "info": base + "info", "versions": base + "versions",
            "lock": base + "lock"}


async def publish(redis, prefix: str, model: AlsModel, keep: int = KEEP) -> None:
    """Stores the model, then moves the pointer to it; older versions beyond `keep` are deleted."""
    keys = _keys(prefix)
    await redis.set(keys["base"] + model.version, model.to_bytes())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys["current"], model.version)
        pipe.set(keys["info"], json.dumps(dict(model.meta, version=model.version)))
        pipe.lpush(keys["versions"], model.version)
        pipe.lrange(keys["versions"], keep, -1)
        pipe.ltrim(keys["versions"], 0, keep - 1)
        old = (await pipe.execute())[3]
    if old:
        await redis.delete(*[keys["base"] + v.decode() for v in old])


async def load_current(redis, prefix: str) -> AlsModel | None:
    keys = _keys(prefix)
    version = await redis.get(keys["current"])
    if version is None:
        return None
    data = await redis.get(keys["base"] + version.decode())
    return None if data is None else await asyncio.to_thread(AlsModel.from_bytes, data)


async def info(redis, prefix: str) -> dict | None:
    raw = await redis.get(_keys(prefix)["info"])
    return None if raw is None else json.loads(raw)


class ModelHolder:
    """The API process's current model, replaced by one reference assignment when a new one is published."""

    def __init__(self, redis, prefix: str, poll_s: float = 5.0) -> None:
        self.redis = redis
        self.keys = _keys(prefix)
        self.poll_s = poll_s
        self.current: AlsModel | None = None
        self._task: asyncio.Task | None = None

    async def refresh(self) -> bool:
        """Loads the published version if it is not the one held; True when swapped."""
        version = await self.redis.get(self.keys["current"])
        if version is None:
            return False
        version = version.decode()
        if self.current is not None and self.current.version == version:
            return False
        data = await self.redis.get(self.keys["base"] + version)
        if data is None:
            return False  # replaced again meanwhile; the next poll finds the newer one
        model = await asyncio.to_thread(AlsModel.from_bytes, data)  # parsing off the event loop
        self.current = model
        log.info("serving ALS model %s (%d items)", version, len(model.item_ids))
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis away: keep serving the model held
                log.warning("could not poll the ALS model: %r", exc)
            await asyncio.sleep(self.poll_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None


# --- training from Kafka ---------------------------------------------------------


async def read_history(settings, interactions: Interactions, progress: bool = True) -> int:
    """Feeds every event of the topic, from the beginning to the end seen at the start, to `interactions`."""
    from engine.stream import kafka
    from engine.stream.history import read_history

    await kafka.ensure_topics(settings)
    done = 0
    async for events in read_history(settings, "train: read", progress, settings.batch_size):
        for event in events:
            interactions.add(event)
        done += len(events)
    return done


async def erased_among(profiles, visitor_ids: list[str], chunk: int = 1000) -> set[str]:
    """The visitor ids whose profile is erased (a tombstone), a pipeline per `chunk`."""
    out = set()
    for start in range(0, len(visitor_ids), chunk):
        part = visitor_ids[start:start + chunk]
        async with profiles.redis.pipeline(transaction=False) as pipe:
            for vid in part:
                pipe.hexists(profiles.profile_key(vid), "t")
            flags = await pipe.execute()
        out.update(vid for vid, erased in zip(part, flags) if erased)
    return out


async def train(settings, redis, profiles, params: AlsParams = AlsParams(), progress: bool = True,
                out_path: Path | None = None) -> AlsModel:
    """`clickstream train`: the topic's history -> ALS -> published in Redis (and to `out_path`).

    `profiles` (engine.profiles.store.ProfileStore) tells which visitors were erased."""
    history = Interactions(params.weights, settings.consent_default, settings.blocked_user_ids,
                           settings.untrusted_orders)
    await read_history(settings, history, progress)
    erased = await erased_among(profiles, history.visitors())
    rows = list(history.rows(skip=erased))
    if not rows:
        raise ValueError("no interactions to train on (no purchases or views in the topic yet)")
    model = await asyncio.to_thread(train_from_interactions, rows, params, progress)
    model.meta.update(events=history.events, erased_visitors=len(erased))
    await publish(redis, settings.redis_prefix, model)
    if out_path is not None:
        Path(out_path).write_bytes(model.to_bytes())
    log.info("ALS model %s: %d persons, %d items, %d interactions, %.1f s",
             model.version, model.meta["persons"], model.meta["items"], model.meta["interactions"],
             model.meta["train_seconds"])
    return model


async def retrain_periodically(redis, prefix: str, every_s: float, stopping: Callable[[], bool],
                               train_once: Callable[[], Awaitable[AlsModel]], poll_s: float = 5.0) -> None:
    """The worker's task: retrain when the current model is older than `every_s` (0: never).

    A lock in Redis (expiring after `every_s`) lets one worker of many train per interval.
    """
    if every_s <= 0:
        return
    lock = _keys(prefix)["lock"]
    while not stopping():
        try:
            current = await info(redis, prefix)
            age_s = (time.time() * 1000 - current["trained_at"]) / 1000 if current else float("inf")
            if age_s >= every_s and await redis.set(lock, os.getpid(), nx=True, ex=max(int(every_s), 1)):
                await train_once()
        except ValueError as exc:
            log.info("ALS retrain skipped: %s", exc)
        except Exception as exc:
            log.warning("ALS retrain failed: %r", exc)
        await asyncio.sleep(poll_s)
