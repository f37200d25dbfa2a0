"""Forecasts of what CRM exports are made of: lumpy reps, sparse cells, a go-live ramp.

Every figure a forecast is checked against is computed here, from the simulated
process or by the method's own recursion written out again, never by revmodel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import forecast, models


def _sba_by_hand(y: np.ndarray, alpha: float = 0.1) -> float:
    """Croston SBA from the mean size and mean interval (the first gap from the start)."""
    demand = np.flatnonzero(y)
    size, interval = y[demand].mean(), (demand[-1] + 1) / demand.size
    gap = 0
    for v in y:
        gap += 1
        if v:
            size += alpha * (v - size)
            interval += alpha * (gap - interval)
            gap = 0
    return size / interval * (1 - alpha / 2)


def test_a_big_first_deal_does_not_stay_in_the_rep_s_forecast():
    # a rep's months after their first sale (a Salesforce export): the first deal is 10x
    y = np.array([511.0, 15, 0, 29, 0, 30, 43, 40, 0, 0, 0, 23, 0])
    mean, q = models.Croston("sba").fit_predict(y, 3)
    expected = _sba_by_hand(y)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    assert expected < y.mean()  # 47.4 against the months' 53.2 (from the first deal: 189)
    # the band: the months' own quantiles scaled to the forecast, widened with the horizon
    widen = np.sqrt(1 + np.arange(3) * 0.1**2)
    scaled = np.quantile(y, [0.1, 0.5, 0.9]) * expected / y.mean()
    np.testing.assert_allclose(q, expected + (scaled - expected)[:, None] * widen, rtol=1e-12)
    assert q[0, 0] == 0.0  # 6 months of 13 without a deal
    assert q[2, 0] > 0


def test_a_sparse_series_band_holds_its_months_and_its_mean():
    rng = np.random.default_rng(11)
    deal = rng.random(48) < 0.55
    y = np.where(deal, rng.lognormal(np.log(20_000), 0.6, 48), 0.0)
    fc = forecast.forecast_series(y, 6)
    assert fc.model_name == "croston_sba"
    lo, mid, hi = fc.quantiles
    assert np.all(lo == 0.0)  # a month without a deal is as likely as it was
    assert np.all(lo <= fc.mean) and np.all(fc.mean <= hi)
    # the band holds about 80% of the months it was drawn from (exactly: its quantiles)
    inside = (y >= lo[0]) & (y <= hi[0])
    assert 0.7 <= inside.mean() <= 0.95


def _rep_selling_everywhere(seed: int = 5, months: int = 40) -> tuple[xr.Dataset, np.ndarray]:
    """Two reps, each closing ~3 deals a month, each deal in a random segment x region."""
    rng = np.random.default_rng(seed)
    segments, regions, reps = ["SMB", "Mid", "Ent"], ["East", "North", "South", "West"], ["a", "b"]
    values = np.zeros((3, 4, 2, months))
    for r in range(2):
        for t in range(months):
            for _ in range(rng.poisson(3.0)):
                s, g = rng.integers(3), rng.integers(4)
                values[s, g, r, t] += rng.lognormal(np.log(10_000), 0.8)
    ds = xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), values)},
        coords={
            "segment": segments,
            "region": regions,
            "rep": reps,
            "month": pd.date_range("2023-01-01", periods=months, freq="MS"),
            "manager": ("rep", ["m1", "m1"]),
        },
        attrs={
            "as_of": f"{pd.Timestamp('2023-01-01') + pd.DateOffset(months=months - 1):%Y-%m-%d}"
        },
    )
    return ds, values


def test_cells_of_a_rep_who_sells_everywhere_sum_to_the_rep_s_rate(tmp_path):
    # 12 cells per rep, most months of a cell without a deal; a cell's history starts when
    # its rep started selling, not at its own first deal (it would open on that deal)
    ds, values = _rep_selling_everywhere()
    fc = forecast.forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False, pooled=False)
    bottom = fc["level"].values == "rep/segment"
    for r in ("a", "b"):
        cells = bottom & (fc["node_rep"].values == r)
        summed = fc["node_mean"].values[cells].sum(axis=0)
        rate = values[:, :, ["a", "b"].index(r), -24:].sum(axis=(0, 1)).mean()
        assert 0.75 < summed.mean() / rate < 1.3, (r, summed, rate)
    reasons = fc["node_reason"].values[bottom]
    assert not any("leading zero months dropped" in str(x) for x in reasons)


def test_since_keeps_a_cell_s_months_before_its_first_deal():
    y = np.zeros(36)
    y[[30, 34]] = 60_000.0  # two deals in the last six months of a rep active for three years
    kept = forecast.forecast_series(y, 3, since=0)
    assert kept.model_name == "croston_sba" and "leading zero" not in kept.reason
    assert kept.mean[0] < 60_000.0 * 2 / 36 * 1.5  # about the rate of three years
    dropped = forecast.forecast_series(y, 3)
    assert "30 leading zero months dropped" in dropped.reason
    assert dropped.mean[0] > 3 * kept.mean[0]


def test_a_go_live_ramp_is_dropped_and_the_band_is_the_level_s():
    rng = np.random.default_rng(2)
    y = np.concatenate([[55.0, 42.0, 89.0], rng.normal(300.0, 30.0, 30)])
    fc = forecast.forecast_series(y, 3)
    assert "3 start-up months dropped (each under 33% of the median of months 7-18)" in fc.reason
    # the level is 300 with sd 30: a 10-90% band of about 300 +- 38, not one reaching 100
    assert np.all(np.abs(fc.mean - 300.0) < 30.0)
    assert np.all(fc.quantiles[0] > 220.0) and np.all(fc.quantiles[2] < 380.0)
