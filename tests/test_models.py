"""Tests of the numpy SES, damped Holt and Theta fits of revmodel.models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from revmodel import models

RNG = np.random.default_rng(7)
Y = 100 + np.cumsum(RNG.normal(0.5, 3, 80))


def test_ses_grid_initial_level_is_least_squares():
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing

    for alpha in (0.1, 0.5, 0.9):
        sse, initial, final = models.ses_grid(Y, np.array([alpha]))
        levels = models._ses_levels(Y, alpha, initial[0])
        assert sse[0] == pytest.approx(np.sum((Y - levels[:-1]) ** 2))
        assert final[0] == pytest.approx(levels[-1])
        for shift in (-1.0, 1.0):
            worse = models._ses_levels(Y, alpha, initial[0] + shift)
            assert np.sum((Y - worse[:-1]) ** 2) > sse[0]
        sm = SimpleExpSmoothing(Y, initialization_method="estimated").fit(
            smoothing_level=alpha, optimized=True
        )
        assert sse[0] <= sm.sse * (1 + 1e-6)


def test_fast_ses_is_close_to_statsmodels_optimum():
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing

    fit = models.FastSES().fit(Y)
    sm = SimpleExpSmoothing(Y, initialization_method="estimated").fit()
    assert np.sum(fit.residuals**2) <= sm.sse * 1.01
    mean, q = fit.predict(6)
    np.testing.assert_allclose(mean, fit._level[-1])
    assert np.all(q[0] < q[1]) and np.all(q[1] < q[2])


def test_damped_holt_grid_matches_the_recursion():
    grid, sse, initial, final = models.damped_holt_grid(
        Y, np.array([0.3]), np.array([0.2]), np.array([0.9])
    )
    (a, b, phi), (l0, b0) = grid[0], initial[0]
    assert b == pytest.approx(0.06)
    lev, tr, errs = l0, b0, []
    for v in Y:
        f = lev + phi * tr
        errs.append(v - f)
        new = a * v + (1 - a) * f
        tr, lev = b * (new - lev) + (1 - b) * phi * tr, new
    assert sse[0] == pytest.approx(np.sum(np.square(errs)))
    np.testing.assert_allclose(final[0], [lev, tr])


def test_fast_damped_holt_follows_a_linear_trend():
    y = 50 + 3.0 * np.arange(40)
    mean, _ = models.FastDampedHolt().fit_predict(y, 3)
    # a damped trend stays below the line but close over 3 months
    np.testing.assert_allclose(mean, 50 + 3.0 * np.arange(40, 43), rtol=0.01)
    assert np.all(np.diff(mean) > 0)


def test_fast_theta_is_ses_plus_half_the_drift():
    fit = models.FastTheta().fit(Y)
    mean, _ = fit.predict(12)
    a, n = fit._alpha, Y.size
    b0 = np.polyfit(np.arange(n), Y, 1)[0]
    k = np.arange(12)
    expected = fit._level[-1] + 0.5 * b0 * (k + 1 / a - (1 - a) ** n / a)
    np.testing.assert_allclose(mean, expected)
    ses_mean, _ = models.FastSES().fit_predict(Y, 12)
    theta1_mean, _ = models.FastTheta(theta=1.0).fit_predict(Y, 12)
    np.testing.assert_allclose(theta1_mean, ses_mean)
    with pytest.raises(ValueError, match="theta must be at least 1, got 0.5"):
        models.FastTheta(theta=0.5)


@pytest.mark.parametrize("model", [models.FastSES, models.FastDampedHolt, models.FastTheta])
@pytest.mark.parametrize("n", [1, 2, 3, 12])
def test_fast_models_on_short_series(model, n):
    y = np.arange(1.0, n + 1) * 10
    mean, q = model().fit_predict(y, 4)
    assert mean.shape == (4,) and q.shape == (3, 4)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(q))


def test_default_model_members():
    fit = models.default_model().fit(Y)
    assert fit.name == (
        "mean(mean(log[ses], log[holt_damped], log[theta], log[theta3]), holt_winters)"
    )
    assert fit.residuals.shape == Y.shape
    adjusted, in_model = fit.fitted
    mean, q = fit.predict(6)
    m1, q1 = adjusted.predict(6)
    m2, q2 = in_model.predict(6)
    np.testing.assert_allclose(mean, 0.8 * m1 + 0.2 * m2)
    np.testing.assert_allclose(q, 0.8 * q1 + 0.2 * q2)


def _employment_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Monthly head count of an industry: slow growth, a fixed seasonal swing, little noise."""
    t = np.arange(n)
    season = np.array([-9, -7, -3, 1, 5, 9, 8, 7, 3, 0, -4, -10], dtype=float)
    return 800 + 0.6 * t + season[t % 12] + rng.normal(0, 1.5, n)


def _statsmodels_holt_winters(y: np.ndarray, start: str = "heuristic"):
    """statsmodels' damped additive Holt-Winters fit of ``y``: the reference the member reproduces."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():  # its convergence notes, as the member's own fit
        warnings.simplefilter("ignore")
        return ExponentialSmoothing(
            y,
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=12,
            initialization_method=start,
        ).fit(use_brute=False)


def test_default_model_fits_holt_winters_on_the_series_own_scale():
    # long, smooth, additively seasonal series (the US-employment industries' shape):
    # the Holt-Winters member is statsmodels' fit of the series itself, not of its log
    rng = np.random.default_rng(11)
    y = _employment_like(300, rng)
    fit = models.default_model().fit(y)
    adjusted, in_model = fit.fitted
    assert in_model.name == "holt_winters"
    # 25 years: both starting states tried, the smaller sum of squares kept
    res = min(
        (_statsmodels_holt_winters(y, start) for start in ("heuristic", "estimated")),
        key=lambda r: r.sse,
    )
    mean, _ = fit.predict(12)
    np.testing.assert_allclose(mean, 0.8 * adjusted.predict(12)[0] + 0.2 * res.forecast(12))
    # a year ahead the combination stays within 1% of the noise-free continuation
    t = np.arange(300, 312)
    truth = 800 + 0.6 * t + np.array([-9, -7, -3, 1, 5, 9, 8, 7, 3, 0, -4, -10])[t % 12]
    assert np.sum(np.abs(mean - truth)) / np.sum(truth) < 0.01


def test_holt_winters_reproduces_statsmodels_fit():
    t = np.arange(84)
    y = np.log(300 + 2 * t) + 0.1 * np.sin(2 * np.pi * t / 12) + RNG.normal(0, 0.02, 84)
    fit = models.HoltWinters().fit(y)
    res = _statsmodels_holt_winters(y)
    mean, q = fit.predict(18)
    np.testing.assert_allclose(mean, res.forecast(18), rtol=1e-10)
    origin = fit.origin_forecasts(18)
    np.testing.assert_allclose(origin[-1, :11], mean[:11], rtol=1e-10)
    # step 1 from the state after s months is the fitted value of month s
    np.testing.assert_allclose(origin[:-1, 0], res.fittedvalues, rtol=1e-10)
    np.testing.assert_allclose(fit.residuals, y - res.fittedvalues)
    # band: in-sample RMSE by horizon, 1.2816 of it either side of the mean
    err = y[1:] - origin[1:-1, 0]
    half = 1.2815515655 * np.sqrt(np.mean(err**2))
    np.testing.assert_allclose(q[2, 0] - mean[0], half, rtol=1e-6)
    np.testing.assert_allclose(mean[0] - q[0, 0], half, rtol=1e-6)
    assert np.all(np.diff(q[2] - q[0]) >= -1e-12)


@pytest.mark.parametrize("months", [20, 30, 60, 150])
def test_holt_winters_forecast_is_statsmodels_forecast_at_every_horizon(months):
    """The member's forecast from its states is statsmodels' own ``forecast``: with and
    without a season (under two seasons and two months), one start or both (12 years or
    more), a month, a season and several seasons ahead."""
    rng = np.random.default_rng(months)
    y = _employment_like(months, rng) if months >= 60 else 100 + np.cumsum(rng.normal(1, 3, months))
    for seasonal in (True, False):
        fit = models.HoltWinters(seasonal=seasonal, start="auto").fit(y)
        for h in (1, 11, 12, 13, 25, 40):
            np.testing.assert_allclose(fit.forecast(h), fit._res.forecast(h), rtol=1e-12)
    assert fit.name == "holt_damped"


def test_holt_winters_without_two_seasons_has_no_season():
    y = 50 + np.arange(20.0)
    fit = models.HoltWinters().fit(y)
    assert fit.name == "holt_damped"
    mean, _ = fit.predict(3)
    # a straight line: the damped trend continues it, a little flatter
    assert np.all(np.diff(mean) > 0) and np.all(np.diff(mean) <= 1 + 1e-6)
    assert mean[0] == pytest.approx(70, abs=0.5)


def test_weighted_combination_drops_a_failed_members_weight():
    class Broken(models.Forecaster):
        name = "broken"

        def _fit(self, y):
            raise ValueError("no fit")

    y = 10 + np.arange(30.0)
    comb = models.Combination(
        [models.FastSES(), Broken(), models.FastDampedHolt()], how="mean", weights=(3, 5, 1)
    )
    mean, _ = comb.fit_predict(y, 4)
    ses, _ = models.FastSES().fit_predict(y, 4)
    holt, _ = models.FastDampedHolt().fit_predict(y, 4)
    np.testing.assert_allclose(mean, 0.75 * ses + 0.25 * holt)
    assert comb.failed == ["broken: ValueError: no fit"]
    assert models.fit_reports(comb)[1] == ["broken: ValueError: no fit"]


def test_combination_rejects_weights_that_do_not_fit():
    with pytest.raises(ValueError, match="one positive number per member, with how='mean'"):
        models.Combination([models.FastSES()], how="median", weights=(1,))
    with pytest.raises(ValueError, match=r"got \[1, 2\] for 1 members"):
        models.Combination([models.FastSES()], how="mean", weights=(1, 2))


def test_log_scale_fits_the_log_of_positive_series():
    y = 100 * 1.02 ** np.arange(48)
    fit = models.LogScale(models.FastDampedHolt()).fit(y)
    assert fit.logged and fit.name == "log[holt_damped]"
    mean, q = fit.predict(6)
    # damped (phi <= 0.98): within 2% of the growth path over 6 months
    np.testing.assert_allclose(mean, 100 * 1.02 ** np.arange(48, 54), rtol=0.02)
    assert np.all(q[0] <= mean) and np.all(mean <= q[2])
    np.testing.assert_allclose(fit.residuals[1:], 0, atol=0.5)


def test_log_scale_keeps_series_with_zeros_linear():
    y = np.array([0.0, 5, 3, 8, 6, 9, 7, 10, 12, 11])
    fit = models.LogScale(models.FastSES()).fit(y)
    assert not fit.logged and fit.name == "ses"
    plain, _ = models.FastSES().fit_predict(y, 3)
    np.testing.assert_allclose(fit.predict(3)[0], plain)


PATTERN = np.array([0.8, 0.85, 0.95, 1.0, 1.05, 1.1, 1.2, 1.15, 1.05, 1.0, 0.95, 0.9])


def test_stl_default_model_returns_the_seasonal_pattern_of_a_flat_series():
    # level 200 times a fixed monthly pattern: the forecast is that pattern, continued
    t = np.arange(96)
    y = 200 * PATTERN[t % 12]
    comb = models.default_model()
    mean, q = comb.fit_predict(y, 18)
    model = comb.fitted[0]
    assert model.kind == "mul" and model.decomposition == "stl"
    np.testing.assert_allclose(mean, 200 * PATTERN[(96 + np.arange(18)) % 12], rtol=1e-4)
    geometric = PATTERN / np.exp(np.mean(np.log(PATTERN)))
    np.testing.assert_allclose(model._index, geometric, rtol=1e-6)
    assert models.fit_reports(comb)[0] == [model.note] and model.note.startswith("seasonal")
    assert np.all(q[0] <= mean + 1e-9) and np.all(mean <= q[2] + 1e-9)


@pytest.mark.parametrize("months", [53, 100, 127])
def test_stl_indices_are_by_calendar_phase_whatever_the_length(months):
    # index[i % 12] applies to y[i]: a length that is not a whole number of years starts the
    # recent window at another phase, the indices stay January's, February's, ...
    t = np.arange(months)
    y = 200 * PATTERN[t % 12] * np.exp(0.002 * t)
    model = models.Deseasonalized(models.FastSES(), decomposition="stl", test_level=0.95).fit(y)
    assert model.kind == "mul"
    geometric = PATTERN / np.exp(np.mean(np.log(PATTERN)))
    np.testing.assert_allclose(model._index, geometric, rtol=2e-3)


def test_stl_indices_follow_a_pattern_that_grows():
    # the seasonal swing grows from +-2% to +-40% over ten years: the STL indices
    # (last five years) are close to the recent swing, the classical ones average it away
    t = np.arange(120)
    amplitude = 0.02 + 0.38 * t / 119
    y = 1000 * np.exp(0.004 * t + amplitude * np.sin(2 * np.pi * t / 12))
    recent = 0.02 + 0.38 * np.arange(60, 120).mean() / 119  # mean swing of the last 5 years
    swing = {}
    for how in ("stl", "classical"):
        m = models.Deseasonalized(models.FastSES(), decomposition=how, test_level=0.95).fit(y)
        assert m.kind == "mul"
        swing[how] = np.log(m._index).max()
    assert swing["stl"] == pytest.approx(recent, rel=0.1)
    assert swing["classical"] < 0.8 * recent


def test_stl_additive_indices_for_a_series_with_negative_months():
    t = np.arange(72)
    season = 30 * np.sin(2 * np.pi * t / 12)
    y = 5 + 0.2 * t + season
    assert np.any(y < 0)
    m = models.Deseasonalized(models.FastDampedHolt(), decomposition="stl").fit(y)
    assert m.kind == "add"
    assert m._index.sum() == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(m._index, season[:12], atol=0.5)


def test_deseasonalized_rejects_an_unknown_decomposition():
    with pytest.raises(ValueError, match="decomposition must be 'classical' or 'stl', got 'x11'"):
        models.Deseasonalized(models.FastSES(), decomposition="x11")


def test_stl_band_narrows_when_the_recent_years_are_calmer():
    rng = np.random.default_rng(3)
    t = np.arange(120)
    noise = np.where(t < 60, 0.08, 0.02) * rng.standard_normal(120)
    y = 500 * PATTERN[t % 12] * np.exp(noise)
    model = models.default_model().models[0]
    mean, q = model.fit_predict(y, 12)
    r = model.model.residuals[np.isfinite(model.model.residuals)]
    expected = (np.mean(r[-60:] ** 2) / np.mean(r**2)) ** 0.25
    assert model.spread_factor() == pytest.approx(expected)
    assert 0.4 < expected < 0.8
    inner_mean, inner_q = model.model.predict(12)
    f = model._index[(120 + np.arange(12)) % 12]
    np.testing.assert_allclose(q[2] - q[0], expected * (inner_q[2] - inner_q[0]) * f)
    np.testing.assert_allclose(mean, inner_mean * f)
    classical = models.Deseasonalized(models.FastSES(), test_level=0.95).fit(y)
    assert classical.kind == "mul" and classical.spread_factor() == 1.0


def test_holt_winters_does_not_forecast_a_positive_series_below_zero():
    # a positive series falling steeply: statsmodels' damped trend crosses 0, the member stops at 0

    t = np.arange(60)
    y = 500 - 8.0 * t + 20 * np.sin(2 * np.pi * t / 12) + RNG.normal(0, 2, 60)
    assert np.all(y > 0)
    res = _statsmodels_holt_winters(y)
    raw = np.asarray(res.forecast(24))
    assert np.any(raw < 0)
    mean, q = models.HoltWinters().fit(y).predict(24)
    np.testing.assert_allclose(mean, np.maximum(raw, 0))
    assert np.all(q >= 0)
    # a series with negative months keeps its negative forecast
    mean, _ = models.HoltWinters().fit(y - 200).predict(24)
    assert np.any(mean < 0)
