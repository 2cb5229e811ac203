"""Session-based k-nearest neighbours (SKNN and V-SKNN): what similar recent sessions went on to see.

For the current session s (its items in order) and a pool of recent sessions:

1. candidates: the `sample` most recent sessions sharing an item with s;
2. similarity of a candidate t: sum over the items of s also in t of the item's weight,
   divided by sqrt(|t|) (the cosine up to |s|, which is the same for every candidate).
   SKNN weighs every item of s 1; V-SKNN weighs the item at position p of n (1-based)
   p / n, so the latest item counts most (Ludewig and Jannach, "Evaluation of
   session-based recommendation algorithms", 2018);
3. the `k` most similar candidates vote: an item's score is the sum of the
   similarities of the neighbours holding it. The items of s are not scored.

Each score says which neighbours gave it (`votes`): the number of neighbour sessions
holding the item, the evidence shown with it. Pure: no I/O; `SessionPool` is the
in-memory form the benchmark and the tests build, the store keeps the same shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

K_NEIGHBOURS = 100
SAMPLE = 500


def weights(session: Sequence[str], decay: bool) -> dict[str, float]:
    """Each distinct item of the session with its weight (its latest position counts)."""
    n = len(session)
    out: dict[str, float] = {}
    for p, item in enumerate(session, 1):
        out[item] = p / n if decay else 1.0
    return out


def neighbours(
    session: Sequence[str], candidates: Mapping[str, Sequence[str]], k: int = K_NEIGHBOURS, decay: bool = True
) -> list[tuple[str, float]]:
    """The k candidates (id -> items) most similar to `session`, best first, ties by id."""
    w = weights(session, decay)
    scored = []
    for sid, items in candidates.items():
        distinct = set(items)
        sim = sum(w[i] for i in distinct if i in w)
        if sim > 0:
            scored.append((sid, sim / math.sqrt(len(distinct))))
    scored.sort(key=lambda p: (-p[1], p[0]))
    return scored[:k]


def scores(
    session: Sequence[str], candidates: Mapping[str, Sequence[str]], k: int = K_NEIGHBOURS, decay: bool = True
) -> tuple[dict[str, float], dict[str, int]]:
    """(item -> summed similarity of the neighbours holding it, item -> how many neighbours hold it)."""
    seen = set(session)
    score: dict[str, float] = {}
    votes: dict[str, int] = {}
    for sid, sim in neighbours(session, candidates, k, decay):
        for item in set(candidates[sid]):
            if item not in seen:
                score[item] = score.get(item, 0.0) + sim
                votes[item] = votes.get(item, 0) + 1
    return score, votes


@dataclass
class SessionPool:
    """Recent sessions, oldest first, and the sessions each item is in: the candidates of step 1."""

    sessions: dict[str, list[str]] = field(default_factory=dict)
    by_item: dict[str, list[str]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)

    def add(self, sid: str, items: Iterable[str]) -> None:
        items = list(dict.fromkeys(items))
        self.sessions[sid] = items
        self.order[sid] = len(self.order)
        for item in items:
            self.by_item.setdefault(item, []).append(sid)

    def candidates(self, session: Sequence[str], sample: int = SAMPLE) -> dict[str, list[str]]:
        """The `sample` most recent sessions sharing an item with `session` (recency: order of `add`)."""
        ids = {sid for item in set(session) for sid in self.by_item.get(item, ())[-sample:]}
        recent = sorted(ids, key=lambda sid: -self.order[sid])[:sample]
        return {sid: self.sessions[sid] for sid in recent}
