"""The ALS model as served: item factors and the item-item regression, scored and (de)serialized.

The score of item j for seed items S is the sum of the dot products f_s . f_j
(benchmarks/recommend_quality.py: the dot product with regularization ~10 ranks well;
the cosine of the factors drops popularity and does not). The item-item regression of
engine.recommend.ease ships in the same artefact (npz bytes: item ids, item factors,
regression weights, meta as JSON), so both swap together.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from engine.recommend import ease


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
            arrays = {
                "regression_seeds": self.regression.seeds,
                "regression_targets": self.regression.targets,
                "regression_weights": self.regression.weights,
            }
        np.savez(
            buffer,
            item_ids=np.array(self.item_ids, dtype=str),
            factors=self.factors.astype(np.float32),
            meta=np.array(json.dumps(dict(self.meta, version=self.version))),
            **arrays,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "AlsModel":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            regression = None
            if "regression_seeds" in npz.files:  # models published before the regression have none
                regression = ease.ItemRegression(
                    npz["regression_seeds"], npz["regression_targets"], npz["regression_weights"]
                )
            return cls(
                meta["version"],
                [str(i) for i in npz["item_ids"]],
                np.ascontiguousarray(npz["factors"]),
                meta,
                regression,
            )


def new_version() -> str:
    return f"{int(time.time() * 1000)}-{os.urandom(3).hex()}"
