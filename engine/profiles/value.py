"""Customer value: RFM scores, lifetime value (BG/NBD with Gamma-Gamma) and the value tier.

Pure code. The population-level parts (quintile edges, the fitted BG/NBD and
Gamma-Gamma parameters, tier thresholds) form a `ValueModel`, which the worker
refits from every buying customer now and then (engine.profiles.value_store);
one person's value is then computed on read from their order log, so it is
always current.

- BG/NBD (Fader, Hardie and Lee, 2005) models how often a customer buys while
  "alive" and the chance they have quietly left; it predicts purchases in the
  next `horizon_days` from (repeat purchases x, time of the last one t_x, age T).
- Gamma-Gamma (Fader, Hardie and Lee, 2005) shrinks a customer's average order
  value towards the population's; CLV = expected purchases x expected value.
- The tier is the 80/20 view: "key" customers are the top 20% by CLV (or by
  revenue while no model is fitted), "growth" the next 30%, "low" the rest.

Time is counted in days: purchases on one day are one transaction, as in the
model's original use on CDNOW.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

DAY_MS = 86_400_000
HORIZON_DAYS = 365
KEY_SHARE, GROWTH_SHARE = 0.2, 0.3


@dataclass(frozen=True)
class Summary:
    """A customer's purchase history in BG/NBD terms (days)."""

    x: int  # repeat purchase days (purchase days after the first)
    t_x: float  # days from first to last purchase day
    T: float  # days from first purchase day to now
    monetary: float  # mean revenue of the repeat purchase days (0 without repeats)
    orders: int
    revenue: float
    recency_days: float  # days since the last purchase


def summarize(order_log: Iterable[Sequence], now_ms: int) -> Summary | None:
    """order_log: [ts_ms, revenue, order_id] entries (profile commerce.order_log)."""
    by_day: dict[int, float] = {}
    orders, revenue = 0, 0.0
    for ts, amount, *_ in order_log:
        day = int(ts) // DAY_MS
        by_day[day] = by_day.get(day, 0.0) + float(amount or 0)
        orders += 1
        revenue += float(amount or 0)
    if not by_day:
        return None
    days = sorted(by_day)
    today = max(now_ms // DAY_MS, days[-1])
    repeats = [by_day[d] for d in days[1:]]
    return Summary(
        x=len(days) - 1,
        t_x=float(days[-1] - days[0]),
        T=float(today - days[0]),
        monetary=sum(repeats) / len(repeats) if repeats else 0.0,
        orders=orders,
        revenue=round(revenue, 2),
        recency_days=float(today - days[-1]),
    )


# --- BG/NBD -------------------------------------------------------------------


def bgnbd_log_likelihood(params: Sequence[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    alive = common + betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(
            x > 0,
            common + betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return np.logaddexp(alive, left)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[float, float, float, float]:
    """Maximum likelihood (r, alpha, a, b), fitted in log space so all stay positive."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))

    def loss(log_params):
        return -bgnbd_log_likelihood(np.exp(log_params), x, t_x, T).sum() / len(x)

    start = np.log([0.5, max(T.mean(), 1.0), 1.0, 1.0])
    # Bounded: with little variation between customers r and alpha run off together.
    bounds = [
        (np.log(1e-3), np.log(1e3)),
        (np.log(1e-3), np.log(1e6)),
        (np.log(1e-3), np.log(1e3)),
        (np.log(1e-3), np.log(1e3)),
    ]
    best = minimize(
        loss, start, method="Nelder-Mead", bounds=bounds, options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-10}
    )
    return tuple(float(v) for v in np.exp(best.x))


def expected_purchases(params: Sequence[float], x, t_x, T, horizon: float):
    """E[purchases in (T, T + horizon]] for customers with history (x, t_x, T)."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    z = horizon / (alpha + T + horizon)
    head = (a + b + x - 1) / (a - 1 if a != 1 else 1e-9)  # a < 1 is common: head and body are both negative
    body = 1 - ((alpha + T) / (alpha + T + horizon)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    expected = head * body / (1 + tail)
    # Where the series does not converge numerically, the customer's own rate carries on.
    return np.where(np.isfinite(expected) & (expected >= 0), expected, (x + 1) / (T + 1) * horizon)


def probability_alive(params: Sequence[float], x, t_x, T):
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return 1 / (1 + tail)


# --- Gamma-Gamma ----------------------------------------------------------------


def fit_gamma_gamma(x: np.ndarray, monetary: np.ndarray) -> tuple[float, float, float]:
    """(p, q, gamma) from customers with repeat purchases and a positive mean value."""
    x, m = np.asarray(x, dtype=float), np.asarray(monetary, dtype=float)

    def loss(log_params):
        p, q, g = np.exp(log_params)
        ll = (
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(g)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(g + m * x)
        )
        return -ll.sum() / len(x)

    best = minimize(
        loss,
        np.log([1.0, 2.0, max(m.mean(), 1.0)]),
        method="Nelder-Mead",
        bounds=[(np.log(1e-3), np.log(1e4))] * 3,
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-10},
    )
    return tuple(float(v) for v in np.exp(best.x))


def expected_order_value(params: Sequence[float], x, monetary, population_mean: float):
    """Gamma-Gamma's expected value of a customer's future order; the population mean without repeats."""
    p, q, g = params
    x, m = np.asarray(x, dtype=float), np.asarray(monetary, dtype=float)
    if q <= 1:
        return np.where(x > 0, m, population_mean)
    prior = g * p / (q - 1)
    weight = p * x / (p * x + q - 1)
    return np.where(x > 0, (1 - weight) * prior + weight * m, prior)


# --- the population model and one person's value ----------------------------------


@dataclass
class ValueModel:
    customers: int = 0
    fitted_at: int = 0
    recency_edges: list[float] = field(default_factory=list)  # ascending quintile edges
    frequency_edges: list[float] = field(default_factory=list)
    monetary_edges: list[float] = field(default_factory=list)
    bgnbd: list[float] | None = None  # r, alpha, a, b
    gamma_gamma: list[float] | None = None  # p, q, gamma
    mean_order_value: float = 0.0
    horizon_days: int = HORIZON_DAYS
    key_threshold: float | None = None  # CLV (or revenue) from which a customer is "key"
    growth_threshold: float | None = None
    tier_basis: str = "revenue"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ValueModel":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _edges(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(values, [0.2, 0.4, 0.6, 0.8])] if len(values) else []


def _quintile(value: float, edges: list[float], higher_is_better: bool = True) -> int:
    """1..5, 5 best; without edges every customer is a 3."""
    if not edges:
        return 3
    rank = 1 + sum(value > e for e in edges)
    return rank if higher_is_better else 6 - rank


MIN_CUSTOMERS_FOR_CLV = 50


def fit(summaries: list[Summary], now_ms: int, horizon_days: int = HORIZON_DAYS) -> ValueModel:
    """The population model from every buying customer's summary."""
    model = ValueModel(customers=len(summaries), fitted_at=now_ms, horizon_days=horizon_days)
    if not summaries:
        return model
    recency = np.array([s.recency_days for s in summaries])
    frequency = np.array([s.orders for s in summaries], dtype=float)
    monetary = np.array([s.revenue / max(s.orders, 1) for s in summaries])
    model.recency_edges, model.frequency_edges, model.monetary_edges = (
        _edges(recency),
        _edges(frequency),
        _edges(monetary),
    )
    model.mean_order_value = float(monetary.mean())
    x = np.array([s.x for s in summaries], dtype=float)
    basis = np.array([s.revenue for s in summaries])
    if len(summaries) >= MIN_CUSTOMERS_FOR_CLV and (x > 0).sum() >= 10:
        model.bgnbd = list(fit_bgnbd(x, [s.t_x for s in summaries], [s.T for s in summaries]))
        repeat = np.array([s.monetary > 0 for s in summaries])
        model.gamma_gamma = list(fit_gamma_gamma(x[repeat], np.array([s.monetary for s in summaries])[repeat]))
        basis = np.array([clv(model, s) for s in summaries])
        model.tier_basis = "clv"
    model.key_threshold = float(np.quantile(basis, 1 - KEY_SHARE))
    model.growth_threshold = float(np.quantile(basis, 1 - KEY_SHARE - GROWTH_SHARE))
    return model


def clv(model: ValueModel, s: Summary) -> float:
    """Expected revenue over the model's horizon (undiscounted)."""
    if model.bgnbd is None or model.gamma_gamma is None:
        return 0.0
    purchases = float(expected_purchases(model.bgnbd, s.x, s.t_x, s.T, model.horizon_days))
    order_value = float(expected_order_value(model.gamma_gamma, s.x, s.monetary, model.mean_order_value))
    return purchases * order_value


def tier(model: ValueModel, basis: float) -> str:
    if model.key_threshold is None or basis <= 0:
        return "low"
    if basis >= model.key_threshold:
        return "key"
    return "growth" if basis >= (model.growth_threshold or 0) else "low"


def person_value(model: ValueModel, order_log: Iterable[Sequence], now_ms: int) -> dict:
    """What the profile shows under `value`."""
    s = summarize(order_log, now_ms)
    if s is None:
        return {"tier": "low", "orders": 0, "revenue": 0.0, "rfm": None, "clv": None}
    monetary = s.revenue / max(s.orders, 1)
    r, f, m = (
        _quintile(s.recency_days, model.recency_edges, higher_is_better=False),
        _quintile(s.orders, model.frequency_edges),
        _quintile(monetary, model.monetary_edges),
    )
    out = {
        "orders": s.orders,
        "revenue": s.revenue,
        "rfm": {
            "recency_days": s.recency_days,
            "frequency": s.orders,
            "monetary": round(monetary, 2),
            "r": r,
            "f": f,
            "m": m,
            "score": f"{r}{f}{m}",
        },
        "clv": None,
    }
    basis = s.revenue
    if model.bgnbd is not None:
        value = clv(model, s)
        out["clv"] = {
            "value": round(value, 2),
            "horizon_days": model.horizon_days,
            "expected_purchases": round(float(expected_purchases(model.bgnbd, s.x, s.t_x, s.T, model.horizon_days)), 3),
            "probability_alive": round(float(probability_alive(model.bgnbd, s.x, s.t_x, s.T)), 3),
        }
        basis = value
    out["tier"] = tier(model, basis)
    return out
