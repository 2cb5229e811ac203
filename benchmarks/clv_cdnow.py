"""Customer value on real purchase history: CDNOW, calibration then holdout.

CDNOW_master.txt (shipped in PyPI's `lifetimes` wheel; `pip install -e '.[bench]'`)
holds every purchase of the 23,570 customers who first bought at CDNOW in the
first quarter of 1997, up to June 1998. The engine's value model
(engine.profiles.value) is fitted on purchases up to 1997-09-30 and predicts,
per customer, the purchases and the spend from 1997-10-01 to 1998-06-30.

Baseline, measured in the same run: each customer's calibration-period rate
carries on (purchase days per day since their first purchase, times the holdout
length; spend likewise). Also reported: the share of holdout revenue that the
top 20% of customers by each ranking bring in (the 80/20 "key" tier), and the
same fit by `lifetimes` as a check of the implementation.

    python benchmarks/clv_cdnow.py
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine  # noqa: E402
from engine.profiles import value  # noqa: E402

CALIBRATION_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)


def data_file() -> Path:
    import lifetimes

    return Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"


def day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() * 1000)


def read(path: Path) -> dict[str, list[tuple[date, float]]]:
    purchases: dict[str, list[tuple[date, float]]] = {}
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 4 and parts[1].isdigit():
            cid, day, _, amount = parts
            purchases.setdefault(cid, []).append((date(int(day[:4]), int(day[4:6]), int(day[6:])), float(amount)))
    return purchases


def metrics(predicted: np.ndarray, actual: np.ndarray) -> dict:
    return {
        "MAE": float(np.abs(predicted - actual).mean()),
        "RMSE": float(np.sqrt(((predicted - actual) ** 2).mean())),
        "corr": float(np.corrcoef(predicted, actual)[0, 1]),
        "total error": float(predicted.sum() / actual.sum() - 1),
    }


def top_share(ranking: np.ndarray, revenue: np.ndarray, share: float = 0.2) -> float:
    """Share of holdout revenue from the top `share` of customers by `ranking`."""
    n = int(len(ranking) * share)
    order = np.lexsort((np.arange(len(ranking)), -ranking))
    return float(revenue[order[:n]].sum() / revenue.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument(
        "--skip-lifetimes", action="store_true", help="do not fit lifetimes' BetaGeoFitter for comparison"
    )
    args = parser.parse_args()
    path = args.data or data_file()
    purchases = read(path)
    cal_end_ms = day_ms(CALIBRATION_END) + value.DAY_MS - 1
    horizon = (HOLDOUT_END - CALIBRATION_END).days

    summaries, actual_days, actual_spend, cal_revenue = [], [], [], []
    for cid in sorted(purchases):
        rows = purchases[cid]
        log = [[day_ms(d), amount, f"{cid}-{i}"] for i, (d, amount) in enumerate(rows) if d <= CALIBRATION_END]
        s = value.summarize(log, cal_end_ms)
        if s is None:
            continue
        summaries.append(s)
        holdout = [(d, a) for d, a in rows if CALIBRATION_END < d <= HOLDOUT_END]
        actual_days.append(len({d for d, _ in holdout}))
        actual_spend.append(sum(a for _, a in holdout))
        cal_revenue.append(s.revenue)

    x = np.array([s.x for s in summaries], float)
    t_x = np.array([s.t_x for s in summaries])
    T = np.array([s.T for s in summaries])
    actual_days, actual_spend = np.array(actual_days, float), np.array(actual_spend)

    started = time.perf_counter()
    model = value.fit(summaries, cal_end_ms, horizon_days=horizon)
    fit_s = time.perf_counter() - started
    predicted_days = value.expected_purchases(model.bgnbd, x, t_x, T, horizon)
    order_value = value.expected_order_value(
        model.gamma_gamma, x, np.array([s.monetary for s in summaries]), model.mean_order_value
    )
    predicted_spend = predicted_days * order_value

    # Baseline: the calibration rate carries on.
    rate_days = (x + 1) / (T + 1)
    baseline_days = rate_days * horizon
    baseline_spend = np.array(cal_revenue) / (T + 1) * horizon

    print(f"machine: {machine()}")
    print(
        f"data: {path.name}, {len(summaries):,} customers, {sum(len(v) for v in purchases.values()):,} purchases; "
        f"calibration to {CALIBRATION_END}, holdout {horizon} days to {HOLDOUT_END}"
    )
    print(
        f"BG/NBD (days) r={model.bgnbd[0]:.4f} alpha={model.bgnbd[1]:.3f} a={model.bgnbd[2]:.4f} b={model.bgnbd[3]:.4f}; "
        f"Gamma-Gamma p={model.gamma_gamma[0]:.3f} q={model.gamma_gamma[1]:.3f} gamma={model.gamma_gamma[2]:.2f}; "
        f"fit (quintiles, both models, tiers) {fit_s:.2f} s"
    )
    print(f"actual holdout: {actual_days.sum():,.0f} purchase days, ${actual_spend.sum():,.0f}")
    print()
    print("| holdout purchases per customer | MAE | RMSE | correlation | total error |")
    print("|---|---|---|---|---|")
    for name, pred in (("BG/NBD", predicted_days), ("baseline: calibration rate carries on", baseline_days)):
        m = metrics(pred, actual_days)
        print(f"| {name} | {m['MAE']:.3f} | {m['RMSE']:.3f} | {m['corr']:.3f} | {m['total error']:+.1%} |")
    print()
    print(
        "| holdout spend per customer ($) | MAE | RMSE | correlation | total error | top-20% share of holdout revenue |"
    )
    print("|---|---|---|---|---|---|")
    for name, pred in (
        ("CLV: BG/NBD x Gamma-Gamma", predicted_spend),
        ("baseline: calibration spend rate carries on", baseline_spend),
        ("ranking by calibration revenue", np.array(cal_revenue)),
    ):
        if name.startswith("ranking"):
            print(f"| {name} | | | | | {top_share(pred, actual_spend):.1%} |")
            continue
        m = metrics(pred, actual_spend)
        print(
            f"| {name} | {m['MAE']:.2f} | {m['RMSE']:.2f} | {m['corr']:.3f} | {m['total error']:+.1%} | {top_share(pred, actual_spend):.1%} |"
        )
    print(f"| (oracle: the actual top 20%) | | | | | {top_share(actual_spend, actual_spend):.1%} |")

    if not args.skip_lifetimes:
        from lifetimes import BetaGeoFitter

        started = time.perf_counter()
        bgf = BetaGeoFitter(penalizer_coef=0.0).fit(x, t_x, T)
        p = bgf.params_
        print()
        print(
            f"check: lifetimes BetaGeoFitter on the same data r={p['r']:.4f} alpha={p['alpha']:.3f} a={p['a']:.4f} b={p['b']:.4f} "
            f"({time.perf_counter() - started:.2f} s); its holdout MAE "
            f"{np.abs(bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, T) - actual_days).mean():.3f}"
        )


if __name__ == "__main__":
    main()
