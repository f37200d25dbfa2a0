"""Tests of the cross-series (pooled) members of the default method: revmodel.models.PooledAR,
revmodel.models.PooledNet, revmodel.models.Pooled and revmodel.forecast.fit_pooled."""

from __future__ import annotations

from dataclasses import replace

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
    np.testing.assert_array_equal(base.nets[1].weights, cut.nets[1].weights)
    assert base.nets[0].n_windows == base.n_windows
    assert [n.lags for n in base.nets] == [12, 24]
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
    assert any("pooled_net" in str(m) for m in fc["node_model"].values)
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
    nets = [np.exp(n.forecast(models.pooled_input(y), 6)) * factors for n in pool.nets]
    inner = local.fitted[0].model.fitted
    assert [m.name for m in inner[:3]] == ["log[pooled_ar]", "log[pooled_net]", "log[pooled_net]"]
    parts = [m.predict(6)[0] for m in inner[3:]]
    adjusted_parts = [p * factors for p in parts]
    holt_winters = local.fitted[1].predict(6)[0]
    # the seasonal nets, on the log of the series as it is, season included
    assert [n.lags for n in pool.seasonal_nets] == [13, 24]
    seasonal = [np.exp(n.forecast(np.log(y), 6)) for n in pool.seasonal_nets]
    assert local.fitted[2].name == "mean(log[pooled_net], log[pooled_net])"
    # six members on the adjusted series (weight 3/5 between them), Holt-Winters 1/5 and the
    # seasonal nets 1/5 (their mean)
    expected = 0.6 * (own + sum(nets) + sum(adjusted_parts)) / 6 + 0.2 * holt_winters
    expected += 0.2 * sum(seasonal) / 2
    np.testing.assert_allclose(with_pool, expected, rtol=1e-10)


def test_seasonal_nets_are_left_out_where_the_season_is_not_the_series_own():
    """A borrowed seasonal profile (a short series) or ``seasonal="none"``: the nets that
    learn the season are not members; the weights are then those of the model without them."""
    histories = [growing(60) for _ in range(15)]
    pool = fit_pooled(histories, h=6)
    y = histories[2]
    profile = 1 + 0.1 * np.cos(2 * np.pi * np.arange(12) / 12)
    for kwargs in ({"seasonal": "none"}, {"profile": profile}):
        model = models.default_model(pooled=pool, **kwargs)
        assert model.weights == [4.0, 1.0]
        model.fit(y, 12)
        assert "pooled_net], log[pooled_net])" not in model.name
    assert models.default_model(pooled=pool).weights == [3.0, 1.0, 1.0]
    # a pooled model without seasonal nets (fitted before they existed): two parts
    assert models.default_model(pooled=replace(pool, seasonal_nets=())).weights == [4.0, 1.0]
    # the seasonal nets are part of the cache key
    assert replace(pool, seasonal_nets=pool.seasonal_nets[:1]).digest() != pool.digest()
    assert models.seasonal_input(np.array([1.0, 0.0, 2.0])) is None


def test_seasonal_nets_learn_a_season_shared_across_series():
    """Series that share a yearly pattern (peaks in March and December) under their own
    growth and noise: the seasonal nets, from the log series as they are, forecast the pattern
    for a series whose last two years they see."""
    rng = np.random.default_rng(7)
    t = np.arange(96)
    pattern = np.log(np.array([1.0, 1.1, 1.6, 1.0, 0.9, 0.9, 0.8, 0.8, 0.9, 1.0, 1.1, 1.7]))
    histories = [
        200 * np.exp(np.cumsum(rng.normal(0.005, 0.02, t.size)) + pattern[t % 12])
        for _ in range(40)
    ]
    pool = fit_pooled(histories, h=12)
    y = histories[5]
    for net in pool.seasonal_nets:
        path = net.forecast(np.log(y), 12)  # months 96..107: January to December
        shape = path - path.mean()
        assert np.corrcoef(shape, pattern - pattern.mean())[0, 1] > 0.95
        # the peaks of the forecast are March and December
        assert sorted(np.argsort(shape)[-2:].tolist()) == [2, 11]


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


def _independent_scale(z: np.ndarray) -> float:
    """Mean absolute 12-month change, written out with a loop."""
    changes = [abs(z[t] - z[t - 12]) for t in range(12, len(z))]
    return max(sum(changes) / len(changes), 1e-3)


def test_pooled_net_fit_is_an_explicit_ridge_on_its_features():
    """The chunked normal equations give the ridge solution of the feature matrix written out
    window by window, solved as an augmented least-squares problem."""
    inputs = [np.log(growing(40)) for _ in range(6)] + [None, np.log(growing(7))]
    net = models.PooledNet.fit(inputs, h=3, lags=5, hidden=7, ridge=0.01, min_windows=1, chunk=11)
    rows, targets = [], []
    for z in inputs[:6]:
        s = _independent_scale(z)
        for t in range(5, z.size - 3 + 1):
            window = (z[t - 5 : t] - z[t - 1]) / s
            hidden = np.maximum(window @ net.projection + net.bias, 0)
            rows.append(np.concatenate([window, hidden]))
            targets.append((z[t : t + 3] - z[t - 1]) / s)
    f, y = np.array(rows), np.array(targets)
    assert (net.n_windows, net.n_series) == (len(rows), 6)
    k = f.shape[1]
    aug_f = np.vstack([f, np.sqrt(0.01 * len(rows)) * np.eye(k)])
    aug_y = np.vstack([y, np.zeros((k, 3))])
    expected = np.linalg.lstsq(aug_f, aug_y, rcond=None)[0]
    np.testing.assert_allclose(net.weights, expected, rtol=1e-7, atol=1e-9)
    # the random projection is fixed by the seed
    again = models.PooledNet.fit(inputs, h=3, lags=5, hidden=7, ridge=0.01, min_windows=1)
    np.testing.assert_allclose(again.weights, net.weights, rtol=1e-9, atol=1e-12)
    assert (
        again.digest()
        == models.PooledNet.fit(inputs, h=3, lags=5, hidden=7, ridge=0.01, min_windows=1).digest()
    )


def test_pooled_net_forecast_by_hand():
    inputs = [np.log(growing(60)) for _ in range(10)]
    net = models.PooledNet.fit(inputs, h=4, lags=6, hidden=10)
    z = inputs[2]
    s = _independent_scale(z)
    window = (z[-6:] - z[-1]) / s
    features = np.concatenate([window, np.maximum(window @ net.projection + net.bias, 0)])
    expected = z[-1] + s * features @ net.weights
    np.testing.assert_allclose(net.forecast(z, 4), expected, rtol=1e-12)
    # beyond its horizon the last step is held; a short history is padded with its first value
    longer = net.forecast(z, 7)
    np.testing.assert_array_equal(longer[:4], net.forecast(z, 4))
    np.testing.assert_array_equal(longer[4:], longer[3])
    np.testing.assert_allclose(longer[4:], expected[-1], rtol=1e-12)
    short = z[:4]
    padded = np.concatenate([[short[0]] * 2, short])
    window = (padded - padded[-1]) / models.window_scale(short)
    features = np.concatenate([window, np.maximum(window @ net.projection + net.bias, 0)])
    np.testing.assert_allclose(
        net.forecast(short, 4),
        short[-1] + models.window_scale(short) * features @ net.weights,
        rtol=1e-12,
    )


def test_pooled_net_forecast_uses_no_month_after_the_origin():
    """Months after the origin, of the series or of the others, change no forecast."""
    histories = [growing(60) for _ in range(25)]
    origin = 42
    changed = [np.concatenate([y[:origin], y[origin:] * 50]) for y in histories]
    a = fit_pooled([y[:origin] for y in histories], h=6)
    b = fit_pooled([y[:origin] for y in changed], h=6)
    for i in (0, 7):
        fa = forecast_series(histories[i][:origin], 6, pooled=a)
        fb = forecast_series(changed[i][:origin], 6, pooled=b)
        np.testing.assert_array_equal(fa.mean, fb.mean)
        assert "log[pooled_net]" in fa.model_name
    # a month before the origin moves the non-linear member
    earlier = [y.copy() for y in histories]
    earlier[0][origin - 1] *= 1.5
    c = fit_pooled([y[:origin] for y in earlier], h=6)
    assert not np.allclose(c.nets[0].weights, a.nets[0].weights)
    assert not np.allclose(c.seasonal_nets[1].weights, a.seasonal_nets[1].weights)
    np.testing.assert_array_equal(a.seasonal_nets[1].weights, b.seasonal_nets[1].weights)
