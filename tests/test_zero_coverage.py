"""Bands of a measure that is often 0: coverage by the randomized PIT, calibration alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from revmodel import backtest
from revmodel import reconcile as rc

LEVELS = [0.1, 0.5, 0.9]


def _zero_inflated(p0: np.ndarray, n: int, seed: int = 3):
    """Per cell: actuals that are 0 with chance p0, else Gamma(2, 100); the exact quantiles."""
    rng = np.random.default_rng(seed)
    p0 = np.asarray(p0, dtype=float)
    zero = rng.random((p0.size, n)) < p0[:, None]
    actual = np.where(zero, 0.0, rng.gamma(2.0, 100.0, (p0.size, n)))

    def q(level: float) -> np.ndarray:
        cont = np.clip((level - p0) / (1 - p0), 0.0, None)
        return np.where(level <= p0, 0.0, stats.gamma.ppf(cont, 2.0, scale=100.0))

    lower, center, upper = (np.repeat(q(lv)[:, None], n, axis=1) for lv in LEVELS)
    return actual, lower, center, upper


def test_the_exact_band_of_a_measure_often_0_covers_80_percent_by_its_randomized_pit():
    """Cells 0 with chance 5% to 95%: the exact 10-90% band holds an actual of 0 whenever it
    starts at 0 (p0 >= 10%), 90% of the actuals of a cell with p0 = 35%; counted by the
    randomized PIT, 80% in every cell."""
    p0 = np.array([0.05, 0.2, 0.35, 0.6, 0.95])
    actual, lower, _, upper = _zero_inflated(p0, 40_000)
    w = np.repeat(backtest.zero_inside(p0, LEVELS)[:, None], actual.shape[1], axis=1)
    np.testing.assert_allclose(
        backtest.zero_inside(p0, LEVELS), [0.0, 0.5, 0.25 / 0.35, 0.5 / 0.6, 0.8 / 0.95]
    )
    for i in range(p0.size):
        plain = backtest.interval_coverage(actual[i], lower[i], upper[i])
        fair = backtest.interval_coverage(actual[i], lower[i], upper[i], w[i])
        assert fair == pytest.approx(0.8, abs=0.01), (p0[i], fair)
        if p0[i] >= 0.1:  # the band starts at 0: every 0 counted inside
            assert plain == pytest.approx(max(0.9, p0[i]), abs=0.01), (p0[i], plain)
    both = backtest.interval_coverage(actual, lower, upper, w)
    assert both == pytest.approx(0.8, abs=0.005)
    # the per-cell shares the benchmark and the summary table add up
    inside = backtest.cell_inside(actual, lower, upper, w)
    assert np.nanmean(inside) == pytest.approx(both)
    assert set(np.unique(inside[actual > 0])) <= {0.0, 1.0}


def test_an_exact_band_of_a_measure_often_0_learns_no_correction():
    """Scored by the randomized PIT, the exact band's factor is 1 and it holds 80% of the
    past actuals the calibration counts, not the 90% of its 0s counted as inside."""
    p0 = np.array([0.2, 0.35, 0.6])
    actual, lower, center, upper = _zero_inflated(p0, 8_000, seed=5)
    w = np.repeat(backtest.zero_inside(p0, LEVELS)[:, None], actual.shape[1], axis=1)
    plain = rc.band_scores(actual, center, lower, upper)
    fair = backtest.atom_scores(plain, actual, lower, w, seed=(20261129, 0))
    atom = (actual == 0) & (lower == 0)
    assert np.isin(fair[atom], [0.0, np.inf]).all()
    np.testing.assert_array_equal(fair[~atom], plain[~atom])
    assert np.isinf(fair[atom]).mean() == pytest.approx(1 - (w[atom]).mean(), abs=0.01)
    # the same draws in every round: the same scores from the same seed
    again = backtest.atom_scores(plain, actual, lower, w, seed=(20261129, 0))
    np.testing.assert_array_equal(fair, again)
    f_fair = rc.learn_band_scale({"rep/segment": fair.ravel()}).as_dict()["rep/segment"]
    assert f_fair == pytest.approx(1.0, abs=0.05)
    # counted as inside, the 0s make the exact band look too wide: it holds 90% of them
    assert (fair <= 1).mean() == pytest.approx(0.8, abs=0.01)
    assert (plain <= 1).mean() > 0.85


def _sparse_cube() -> xr.Dataset:
    """A small team's bookings: 1 segment x 2 regions x 4 reps x 48 months, a deal in a
    rep's month with chance 30-70% (as a CRM's closed-won opportunities summed by month)."""
    rng = np.random.default_rng(17)
    months = pd.date_range("2022-01-01", periods=48, freq="MS")
    chance = np.array([0.3, 0.5, 0.6, 0.7])
    deals = rng.random((1, 2, 4, 48)) < chance[None, None, :, None]
    values = np.where(deals, rng.gamma(3.0, 4000.0, (1, 2, 4, 48)), 0.0)
    values[0, 1, :2] = 0.0  # r1 and r2 sell in EMEA, r3 and r4 in NA
    values[0, 0, 2:] = 0.0
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), values)},
        coords={
            "segment": ["SMB"],
            "region": ["EMEA", "NA"],
            "rep": ["r1", "r2", "r3", "r4"],
            "month": months,
            "manager": ("rep", ["M1", "M1", "M2", "M2"]),
        },
        attrs={"as_of": "2025-12-01", "fiscal_year_start": 1},
    )


@pytest.mark.slow
def test_a_backtest_of_sparse_reps_counts_their_months_without_deals_by_the_forecasts_chance_of_0(
    tmp_path,
):
    res = backtest.rolling_origin(
        _sparse_cube(), horizon=3, folds=2, step=3, models=["calibrated", "base"],
        calibration_folds=2, cache_dir=tmp_path,
    )  # fmt: skip
    sc = res.scores
    cal = sc[sc["model"] == "calibrated"]
    atoms = (cal["actual"] == 0) & (cal["lower"] == 0)
    assert atoms.sum() >= 6  # months without a deal, forecast as possibly 0
    share = cal.loc[atoms, "zero_inside"]
    assert share.notna().all() and ((share >= 0) & (share <= 1)).all()
    assert (share < 1).any()
    # the models' own quantiles say nothing of a chance of 0: counted as they are
    assert sc.loc[sc["model"] == "base", "zero_inside"].isna().all()
    table = backtest.summary_table(res)
    for level, g in cal.groupby("level"):
        by_hand = np.nanmean(
            backtest.cell_inside(g["actual"], g["lower"], g["upper"], g["zero_inside"])
        )
        got = table[(table["model"] == "calibrated") & (table["level"] == level)]["coverage"]
        assert float(got.iloc[0]) == pytest.approx(by_hand), level
    rep = cal[cal["level"] == "rep"]
    plain = backtest.interval_coverage(rep["actual"], rep["lower"], rep["upper"])
    fair = backtest.interval_coverage(rep["actual"], rep["lower"], rep["upper"], rep["zero_inside"])
    assert fair < plain
