"""Next item mid-session: the last item's co-occurrence where it has evidence, the session-kNN where it has little.

For a session s ending in item a, a seen in n_a recent sessions, c_ab of which also hold b,
and v_b the V-SKNN score of b for s (engine.recommend.sknn.scores):

    score(b) = w * c_ab / max_x c_ax + (1 - w) * v_b / max_x v_x

    w = 0                    when n_a < T   (too few sessions: the neighbours of the whole session)
    w = n_a / (n_a + tau)    from T on      (tau = 0: w = 1, the last item's counts alone)

Each part is scaled to its best item, so w alone says which part orders the list. A
last item seen in enough sessions is ranked by its own pair counts; one seen in fewer
than T lets the neighbours of the whole session order the list: on a sparse catalogue
its pairs are single sightings, and the session's earlier items carry what it lacks.
Ties go to the more popular item, then the smaller id, as co-occurrence of the last item
breaks them. Two forms were measured: the hard one (tau 0, a threshold T) and the blend
(T 1, a scale tau).

T and tau are chosen by `benchmarks/recommend_robust.py`: 5-fold cross-validation inside
the training sessions of five data sets of different density together, the option whose
worst HitRate@10 gain over the last item's co-occurrence is largest (RESULTS.md).
Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from engine.recommend import sknn

# benchmarks/recommend_robust.py chose them by cross-validation across five data sets (RESULTS.md)
EVIDENCE_THRESHOLD = 4  # T: sessions holding the last item from which its counts order the list
EVIDENCE_SCALE = 0.0  # tau: 0, the hard form (w is 0 or 1)


def weight(n_last: float, tau: float = EVIDENCE_SCALE, threshold: float = EVIDENCE_THRESHOLD) -> float:
    """w: the share of the last item's co-occurrence in the score, by how many sessions hold the last item."""
    if tau < 0:
        raise ValueError("tau must be >= 0")
    if n_last <= 0 or n_last < threshold or math.isinf(tau):
        return 0.0
    return n_last / (n_last + tau)


def scores(
    pairs: Mapping[str, float],
    n_last: float,
    knn: Mapping[str, float],
    tau: float = EVIDENCE_SCALE,
    threshold: float = EVIDENCE_THRESHOLD,
) -> dict[str, float]:
    """score(b) for every b with a pair count or a neighbour vote (zero parts left out)."""
    w = weight(n_last, tau, threshold)
    out: dict[str, float] = {}
    top = max(pairs.values(), default=0.0)
    if w > 0 and top > 0:
        for b, c in pairs.items():
            if c > 0:
                out[b] = w * c / top
    top = max(knn.values(), default=0.0)
    if w < 1 and top > 0:
        for b, v in knn.items():
            if v > 0:
                out[b] = out.get(b, 0.0) + (1 - w) * v / top
    return out


def rank(
    pairs: Mapping[str, float],
    n_last: float,
    knn: Mapping[str, float],
    tau: float = EVIDENCE_SCALE,
    threshold: float = EVIDENCE_THRESHOLD,
    exclude: Iterable[str] = (),
    popularity: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Items best first, without `exclude` (the session's own items); ties by popularity, then id."""
    skip = set(exclude)
    pop = popularity or {}
    scored = scores(pairs, n_last, knn, tau, threshold)
    return sorted(
        ((b, s) for b, s in scored.items() if b not in skip), key=lambda p: (-p[1], -pop.get(p[0], 0.0), p[0])
    )


@dataclass(frozen=True)
class SessionList:
    """The rule's ranking for one session and the stored sessions it read (the evidence's ground)."""

    ranked: list[tuple[str, float]]
    weight: float  # w of the last item
    used: tuple[str, ...] = ()  # the neighbours and the sessions holding the last item
    pairs: Mapping[str, float] | None = None  # from_counts: the last item's pair counts (the used sessions)

    def evidence(self, session: Sequence[str], candidates: Mapping[str, Sequence[str]] | None, item: str) -> dict:
        """{"source": "session", "with": the latest session item that a used session holding `item` shares,
        "sessions": how many used sessions hold `item`}."""
        if self.pairs is not None:
            return {"source": "session", "with": session[-1], "sessions": int(self.pairs.get(item, 0))}
        holders = [candidates[sid] for sid in self.used if item in candidates[sid]]
        shared = {i for items in holders for i in items}
        with_item = next((i for i in reversed(session) if i in shared), session[-1] if session else None)
        return {"source": "session", "with": with_item, "sessions": len(holders)}


def for_session(
    session: Sequence[str],
    candidates: Mapping[str, Sequence[str]],
    tau: float = EVIDENCE_SCALE,
    threshold: float = EVIDENCE_THRESHOLD,
    k: int = sknn.K_NEIGHBOURS,
    popularity: Mapping[str, float] | None = None,
) -> SessionList:
    """The rule over stored sessions: the last item's pairs and n_last counted in the `candidates` holding it
    (engine.recommend.sessions reads every indexed session holding it, so n_last is exact below PER_ITEM)."""
    if not session:
        return SessionList([], 0.0, ())
    last = session[-1]
    holding = [sid for sid, items in candidates.items() if last in items]
    pairs: dict[str, float] = {}
    for sid in holding:
        for b in set(candidates[sid]):
            pairs[b] = pairs.get(b, 0.0) + 1.0
    near = sknn.neighbours(session, candidates, k, True)
    knn, _ = sknn.scores(session, {sid: candidates[sid] for sid, _ in near}, k, True)
    w = weight(len(holding), tau, threshold)
    ranked = rank(pairs, len(holding), knn, tau, threshold, exclude=session, popularity=popularity)
    # the sessions whose part counts: the neighbours when w < 1, the last item's sessions when w > 0
    used = tuple(dict.fromkeys(([sid for sid, _ in near] if w < 1 else []) + (holding if w > 0 else [])))
    return SessionList(ranked, w, used)


def from_counts(
    session: Sequence[str],
    pairs: Mapping[str, float],
    n_last: int,
    threshold: float = EVIDENCE_THRESHOLD,
    popularity: Mapping[str, float] | None = None,
) -> SessionList:
    """The hard form (tau 0) when the last item is in `threshold` or more sessions: its pair counts alone
    (`pairs`: item -> the n_last sessions holding it, as engine.recommend.sessions counts them)."""
    if n_last < threshold:
        raise ValueError("below the threshold the rule needs the sessions (for_session)")
    ranked = rank(pairs, n_last, {}, 0.0, threshold, exclude=session, popularity=popularity)
    return SessionList(ranked, 1.0, (), dict(pairs))
