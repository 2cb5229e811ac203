"""The report's statistics against known values: the mSPRT interval, the SRM chi-square, CUPED."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from engine.experiments import stats


def test_msprt_interval_matches_the_closed_form():
    # d = 0.1, V = 0.01, tau² = 0.01, alpha = 0.05: half-width sqrt(0.02 (2 ln 20 + ln 2)) = 0.365639
    iv = stats.msprt_interval(0.1, 0.01, 0.01)
    assert iv.high - iv.estimate == pytest.approx(0.365639, abs=1e-6)
    assert iv.low == pytest.approx(0.1 - 0.365639, abs=1e-6)
    assert iv.p_value == 1.0  # L = sqrt(1/2) e^0.25 < 1: no evidence at all
    # d = 0.3: L = sqrt(1/2) exp(0.01 · 0.09 / (2 · 0.01 · 0.02)) = 0.70711 · e^2.25 = 6.70882; p = 1/L
    assert stats.msprt_interval(0.3, 0.01, 0.01).p_value == pytest.approx(0.149057, abs=1e-6)


def test_the_interval_is_wider_than_a_fixed_horizon_one_and_shrinks_with_data():
    z_half = 1.959964 * math.sqrt(1e-4)
    iv = stats.msprt_interval(0.0, 1e-4, 1e-4)
    assert iv.high > z_half
    assert stats.msprt_interval(0.0, 1e-5, 1e-4).high < iv.high
    # a difference far outside the interval has a small always-valid p-value
    assert stats.msprt_interval(0.1, 1e-4, 1e-4).p_value < 1e-10


def test_difference_covers_the_truth_under_daily_peeking():
    """200 experiments, each looked at 10 times: the intervals of all 10 looks cover the truth in >= 95%."""
    rng = np.random.default_rng(7)
    always_covered = 0
    for _ in range(200):
        t = rng.binomial(1, 0.12, 5000).astype(float)
        c = rng.binomial(1, 0.10, 5000).astype(float)
        covered = True
        for n in range(500, 5001, 500):
            iv = stats.difference(t[:n], c[:n])
            covered &= iv.low <= 0.02 <= iv.high
        always_covered += covered
    assert always_covered / 200 >= 0.93


def test_srm_against_scipy_and_textbook_values():
    # 600 against 400 on a 50/50 split: chi² = (100² + 100²) / 500 = 40
    result = stats.srm({"a": 600, "b": 400}, {"a": 0.5, "b": 0.5})
    assert result["chi2"] == 40.0 and result["mismatch"]
    assert result["p_value"] == pytest.approx(sps.chi2.sf(40, 1))
    assert not stats.srm({"a": 505, "b": 495}, {"a": 0.5, "b": 0.5})["mismatch"]
    # a 10/90 split that arrives as configured
    fine = stats.srm({"control": 98, "x": 902}, {"control": 0.1, "x": 0.9})
    assert fine["expected"] == {"control": 100.0, "x": 900.0} and not fine["mismatch"]
    assert stats.srm({"a": 3}, {"a": 1.0}) is None


def test_cuped_recovers_theta_and_cuts_the_variance_by_one_minus_r_squared():
    rng = np.random.default_rng(3)
    x = [rng.poisson(5, 20000).astype(float) for _ in range(2)]
    y = [2.0 * xi + rng.normal(0, 2.0, len(xi)) + shift for xi, shift in zip(x, (0.0, 0.1))]
    adjusted, theta = stats.cuped_adjust(y, x)
    assert theta == pytest.approx(2.0, abs=0.02)
    r2 = np.corrcoef(np.concatenate(x), np.concatenate(y))[0, 1] ** 2  # var 20 of 24: r² = 5/6
    assert adjusted[0].var() / y[0].var() == pytest.approx(1 - r2, abs=0.02)
    plain, reduced = stats.difference(y[1], y[0]), stats.difference(adjusted[1], adjusted[0])
    assert reduced.high - reduced.low < 0.5 * (plain.high - plain.low)
    assert reduced.low <= 0.1 <= reduced.high
    assert stats.cuped_theta([np.ones(5)], [np.ones(5)]) == 0.0
