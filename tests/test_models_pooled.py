"""Tests of the cross-series (pooled) member of the default method: revmodel.models.PooledAR,
revmodel.models.Pooled and revmodel.forecast.fit_pooled."""

from __future__ import annotations

import numpy as np
import pytest

from revmodel import models
from revmodel.forecast import SeriesTask, fit_pooled, forecast_many, forecast_series

RNG = np.random.default_rng(15)


def growing(n: int, rng=RNG, drift: float = 0.01) -> np.ndarray:
    """A positive monthly series with a yearly season and a growth rate."""
    t = np.arange(n)
    season = 1 + 0.2 * np.sin(2 * np.pi * t / 12)
    return 100 * np.exp(np.cumsum(rng.normal(drift, 0.03, n))) * season


def test_ridge_fit_reproduces_a_hand_computed_fit():
    a = np.array([0.0, 1.0, 3.0, 2.0, 4.0])
    b = np.array([1.0, 0.5, 0.0, 1.5])
    # lags 2, one step: windows (z[t-2], z[t-1]) -> z[t], all relative to z[t-1]
    rows = [(0.0 - 1.0, 0.0, 3.0 - 1.0), (1.0 - 3.0, 0.0, 2.0 - 3.0), (3.0 - 2.0, 0.0, 4.0 - 2.0)]
    rows += [(1.0 - 0.5, 0.0, 0.0 - 0.5), (0.5 - 0.0, 0.0, 1.5 - 0.0)]
    x = np.array([r[:2] for r in rows])
    y = np.array([r[2] for r in rows])
    ridge = 0.1
    # the ridge solution as an augmented least-squares problem: rows sqrt(ridge * windows) * I
    aug_x = np.vstack([x, np.sqrt(ridge * len(rows)) * np.eye(2)])
    aug_y = np.concatenate([y, [0.0, 0.0]])
    expected = np.linalg.lstsq(aug_x, aug_y, rcond=None)[0]
    fit = models.PooledAR.fit([a, b, None], h=1, lags=2, ridge=ridge, min_windows=1)
    assert (fit.n_windows, fit.n_series) == (5, 2)
    np.testing.assert_allclose(fit.weights[:, 0], expected, rtol=1e-12)
    # the last input of a window is its level: its weight multiplies a zero
    assert fit.forecast(np.array([2.0, 5.0]), 1)[0] == pytest.approx(
        5.0 + (2.0 - 5.0) * expected[0]
    )


def test_unpenalised_fit_is_statsmodels_ols_per_step():
    import statsmodels.api as sm

    inputs = [np.log(growing(60)) for _ in range(8)]
    fit = models.PooledAR.fit(inputs, h=3, lags=4, ridge=0.0)
    x = np.vstack([models._lag_windows(z, 4, 3)[0] for z in inputs])
    y = np.vstack([models._lag_windows(z, 4, 3)[1] for z in inputs])
    assert np.all(x[:, -1] == 0)  # each window relative to its last input
    for step in range(3):
        ols = sm.OLS(y[:, step], x[:, :-1]).fit()
        np.testing.assert_allclose(fit.weights[:-1, step], ols.params, rtol=1e-8)
        assert abs(fit.weights[-1, step]) < 1e-12


def test_windows_never_reach_past_the_end_of_a_history():
    """A window's targets lie inside the history: values after the origin are never used."""
    z = np.arange(20.0)
    x, y = models._lag_windows(z, 12, 3)
    assert x.shape == (6, 12) and y.shape == (6, 3)
    # the last window ends at the last value (relative to its last input, 16)
    np.testing.assert_array_equal(y[-1] + 16.0, [17.0, 18.0, 19.0])
    histories = [growing(48) for _ in range(30)]
    futures = [np.concatenate([y, 1e6 * np.ones(18)]) for y in histories]
    base = fit_pooled(histories, h=6)
    # the same histories cut at their origins, whatever came after, give the same weights
    cut = fit_pooled([f[:48] for f in futures], h=6)
    np.testing.assert_array_equal(base.weights, cut.weights)
    # and the windows of each history are exactly n - lags - h + 1
    assert base.n_windows == 30 * (48 - 12 - 6 + 1)


def test_leakage_forecast_cube_uses_no_month_after_as_of(tmp_path):
    """The pooled fit of a cube sees the months up to ``as_of`` only: the months after it
    (NaN in one cube, huge in the other) change nothing."""
    import xarray as xr

    from revmodel.forecast import forecast_cube
    from tests.test_forecast import small_cube

    ds = small_cube()
    later = ds.copy(deep=True)
    values = later["bookings"].values
    values[..., 30:] = 1e9
    fc = forecast_cube(ds, horizon=3, cache_dir=tmp_path / "a", progress=False)
    fc_later = forecast_cube(later, horizon=3, cache_dir=tmp_path / "b", progress=False)
    assert any("pooled_ar" in str(m) for m in fc["node_model"].values)
    xr.testing.assert_identical(fc, fc_later)
    # a month before as_of does move the pooled member, and with it every regular node
    earlier = ds.copy(deep=True)
    earlier["bookings"].values[0, 0, 0, 10] *= 3
    fc_earlier = forecast_cube(earlier, horizon=3, cache_dir=tmp_path / "c", progress=False)
    total = fc["node"].values.tolist().index("total")
    assert not np.allclose(fc_earlier["node_mean"].values[total], fc["node_mean"].values[total])


def test_pooled_member_forecast_shape_and_non_negativity():
    histories = [growing(72, drift=-0.03) for _ in range(20)]
    pool = fit_pooled(histories, h=18)
    assert pool is not None and pool.weights.shape == (12, 18)
    fc = forecast_series(histories[0], 24, pooled=pool)
    assert fc.mean.shape == (24,) and fc.quantiles.shape == (3, 24)
    assert np.all(np.isfinite(fc.quantiles)) and np.all(fc.quantiles >= 0)
    assert np.all(fc.quantiles[0] <= fc.quantiles[1]) and np.all(fc.quantiles[1] <= fc.quantiles[2])
    assert "log[pooled_ar]" in fc.model_name and "log[ses]" not in fc.model_name
    # beyond the horizon it was fitted for, the pooled member holds its last step
    z = models.pooled_input(histories[0])
    path = pool.forecast(z, 24)
    np.testing.assert_array_equal(path[18:], path[17])


def test_pooled_member_equals_its_share_of_the_default_combination():
    histories = [growing(60) for _ in range(15)]
    pool = fit_pooled(histories, h=6)
    y = histories[3]
    with_pool, _ = models.default_model(pooled=pool).fit_predict(y, 6)
    adjusted = models.default_adjustment()
    adjusted.season_length = 12
    _, _ = adjusted.adjust(y)
    factors = adjusted._factors(y.size, 6)
    factors = factors if adjusted.kind == "mul" else np.ones(6)
    own = np.exp(pool.forecast(models.pooled_input(y), 6)) * factors
    local = models.default_model(pooled=pool)
    local.fit(y, 12)
    parts = [m.predict(6)[0] for m in local.fitted[0].model.fitted[1:]]
    adjusted_parts = [p * factors for p in parts]
    holt_winters = local.fitted[1].predict(6)[0]
    expected = (own + sum(adjusted_parts) + holt_winters) / 5
    np.testing.assert_allclose(with_pool, expected, rtol=1e-10)


def test_one_short_series_falls_back_to_the_per_series_combination():
    y = growing(40)
    assert fit_pooled([y], h=12) is None  # 17 windows: too few to pool
    out, _ = forecast_many({"only": SeriesTask(y)}, 12, use_cache=False, progress=False)
    single = forecast_series(y, 12)
    assert "log[ses]" in out["only"].model_name and "pooled" not in out["only"].model_name
    np.testing.assert_allclose(out["only"].mean, single.mean)
    # series with a zero or negative month, short or intermittent ones give no windows
    assert models.pooled_input(np.array([1.0, 0.0, 2.0] * 10)) is None
    assert fit_pooled([np.r_[y[:30], -1.0, y[30:]]] * 20, h=12) is None
