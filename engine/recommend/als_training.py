"""ALS training, pure-ish (no I/O): (person, item, weight) triples -> a persons x items matrix -> a model.

implicit's CPU ALS factorizes the matrix of confidences (engine.recommend.interactions);
the same training fits the item-item regression of engine.recommend.ease on the same
matrix. Publishing the model is engine.recommend.als_store's; reading the history and
retraining, engine.recommend.als_retrain's.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import scipy.sparse as sp

from engine.recommend import ease
from engine.recommend.als_model import AlsModel, new_version
from engine.recommend.interactions import DEFAULT_WEIGHTS


@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    regularization: float = 10.0  # tuned in benchmarks/recommend_quality.py; implicit's 0.01 overfits
    iterations: int = 15
    alpha: float = 1.0
    random_state: int | None = 42
    num_threads: int = 0  # 0: every core
    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    item_regression: ease.EaseParams = field(default_factory=ease.EaseParams)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings) -> "AlsParams":
        return cls(
            factors=settings.als_factors,
            regularization=settings.als_regularization,
            iterations=settings.als_iterations,
            item_regression=ease.EaseParams(
                regularization=settings.ease_regularization, max_items=settings.ease_max_items
            ),
        )


def train_matrix(
    matrix: sp.csr_matrix,
    item_ids: list[str],
    params: AlsParams = AlsParams(),
    show_progress: bool = False,
    persons: int | None = None,
) -> AlsModel:
    """Fits implicit's CPU ALS on a persons x items CSR matrix of confidences."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    # implicit parallelizes itself; a threaded BLAS under it is 10x slower (and implicit warns). Limited
    # here, at run time, not with OPENBLAS_NUM_THREADS: that is read once, when numpy first loads
    # OpenBLAS, which in every process of the engine happens before this module is imported.
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            alpha=params.alpha,
            iterations=params.iterations,
            random_state=params.random_state,
            num_threads=params.num_threads,
        )
        als.fit(matrix, show_progress=show_progress)
    als_seconds = time.perf_counter() - started
    regression, wanted = None, min(params.item_regression.max_items, len(item_ids))
    if wanted > 0:
        if show_progress:
            print(f"train: item-item regression on the {wanted:,} most touched items", file=sys.stderr, flush=True)
        regression = ease.fit(matrix, params.weights.get("purchase", 1.0), params.item_regression)
    seconds = time.perf_counter() - started
    meta = {
        "params": params.to_json(),
        "trained_at": int(time.time() * 1000),
        "train_seconds": round(seconds, 3),
        "als_seconds": round(als_seconds, 3),
        "regression_seconds": round(seconds - als_seconds, 3),
        "regression_items": len(regression.rows) if regression is not None else 0,
        "persons": persons if persons is not None else matrix.shape[0],
        "items": len(item_ids),
        "interactions": int(matrix.nnz),
    }
    return AlsModel(
        new_version(), list(item_ids), np.ascontiguousarray(als.item_factors, dtype=np.float32), meta, regression
    )


def build_matrix(interactions: Iterable[tuple[str, str, float]]) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """(persons x items CSR with summed weights, person ids, item ids)."""
    persons: dict[str, int] = {}
    items: dict[str, int] = {}
    rows, cols, values = [], [], []
    for person, item, weight in interactions:
        rows.append(persons.setdefault(person, len(persons)))
        cols.append(items.setdefault(item, len(items)))
        values.append(weight)
    matrix = sp.csr_matrix(
        (np.asarray(values, dtype=np.float32), (np.asarray(rows, dtype=np.int32), np.asarray(cols, dtype=np.int32))),
        shape=(len(persons), len(items)),
    )
    matrix.sum_duplicates()
    return matrix, list(persons), list(items)


def train_from_interactions(
    interactions: Iterable[tuple[str, str, float]], params: AlsParams = AlsParams(), show_progress: bool = False
) -> AlsModel:
    """Pure-ish (no I/O): (person, item, weight) triples -> a model. For benchmarks and tests."""
    matrix, persons, items = build_matrix(interactions)
    if matrix.nnz == 0:
        raise ValueError("no interactions to train on")
    return train_matrix(matrix, items, params, show_progress, persons=len(persons))
