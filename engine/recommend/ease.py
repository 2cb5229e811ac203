"""Item-item regression (EASE: H. Steck, "Embarrassingly Shallow Autoencoders", 2019).

Fits the item x item weights B that best predict each item of a person's row from
the person's other items:

    minimize ||X - X B||^2 + lambda ||B||^2  subject to diag(B) = 0
    closed form: P = (X'X + lambda I)^-1,  B_ij = -P_ij / P_jj

and scores item j for seed items S as sum over s of B_sj. Where summed co-occurrence
counts an item once for every seed it goes with, B gives each seed only what the
other seeds do not already explain, which ranks the missing item of a basket better
(benchmarks/recommend_quality.py, basket queries). For one seed it is worse than
co-occurrence, so the also-bought list of a product alone does not use it.

The matrix is the one ALS is trained on (person x item confidences), divided by the
purchase weight and capped at 1, so a purchase counts 1 and a view less. Only the
`max_items` items most people touched take part: the inverse costs items^3 (5,000
items take ~5 s on two cores); the rest are left to co-occurrence and ALS. Each
item keeps its `keep` largest weights by size, negative ones too, since those are
the corrections. Pure: no I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import scipy.sparse as sp


CHUNK = 500  # rows ranked at a time, so picking each row's largest weights needs no n x n temporaries


@dataclass(frozen=True)
class EaseParams:
    regularization: float = 100.0  # lambda; chosen on the validation slices of benchmarks/recommend_quality.py
    max_items: int = 5_000  # 0: leave the regression out
    keep: int = 200  # weights kept per item


@dataclass
class ItemRegression:
    """Per seed item (row r is item `seeds[r]`), its kept weights: item indices `targets` and `weights`."""

    seeds: np.ndarray  # (rows,) int32 indices into the model's item ids
    targets: np.ndarray  # (rows, keep) int32 indices into the model's item ids
    weights: np.ndarray  # (rows, keep) float32

    def __post_init__(self) -> None:
        self.rows = {int(item): r for r, item in enumerate(self.seeds)}

    def scores(self, seeds: Iterable[int], limit: int) -> dict[int, float]:
        """The `limit` item indices with the largest summed weight from the seeds (seeds left out)."""
        seeds = list(seeds)
        rows = [self.rows[s] for s in seeds if s in self.rows]
        if not rows or limit <= 0:
            return {}
        summed = np.bincount(self.targets[rows].ravel(), weights=self.weights[rows].ravel())
        summed[[s for s in seeds if s < len(summed)]] = 0.0
        positive = np.flatnonzero(summed > 0)
        if len(positive) > limit:
            positive = positive[np.argpartition(-summed[positive], limit - 1)[:limit]]
        return {int(j): float(summed[j]) for j in positive}


def fit(matrix: sp.csr_matrix, purchase_weight: float, params: EaseParams = EaseParams()) -> ItemRegression | None:
    """B on the `max_items` columns of `matrix` most persons touched; None when there are fewer than 2 such items."""
    from threadpoolctl import threadpool_limits

    touched = np.asarray((matrix > 0).sum(axis=0)).ravel()
    columns = np.argsort(-touched, kind="stable")[: params.max_items]
    columns = columns[touched[columns] > 0]
    n = len(columns)
    if n < 2:
        return None
    x = matrix[:, columns].astype(np.float64) / purchase_weight
    x.data = np.minimum(x.data, 1.0)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices(n)] += params.regularization
    with threadpool_limits(os.cpu_count() or 1, "blas"):  # the inverse is plain BLAS work: every core
        b = np.linalg.inv(gram)
    del gram
    b /= -np.diag(b)[None, :]  # in place: at 5,000 items each n x n copy is 200 MB
    np.fill_diagonal(b, 0.0)
    keep = min(params.keep, n - 1)
    targets = np.empty((n, keep), dtype=np.int32)
    weights = np.empty((n, keep), dtype=np.float32)
    for start in range(0, n, CHUNK):
        rows = b[start : start + CHUNK]
        top = np.argpartition(-np.abs(rows), keep - 1, axis=1)[:, :keep]
        targets[start : start + CHUNK] = columns[top]
        weights[start : start + CHUNK] = np.take_along_axis(rows, top, axis=1)
    return ItemRegression(seeds=columns.astype(np.int32), targets=targets, weights=weights)
