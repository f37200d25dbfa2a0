"""Tests of the starting states of the Holt-Winters member (revmodel.models.HoltWinters)."""

from __future__ import annotations

import numpy as np
import pytest

from revmodel import models
from tests.test_models import _statsmodels_holt_winters


def _employment_like(n: int = 240, seed: int = 3) -> np.ndarray:
    """A long smooth seasonal series whose season and trend drift over the years."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    trend = 1000 + np.cumsum(rng.normal(0.8, 1.5, n))
    season = (30 + 0.15 * t) * np.sin(2 * np.pi * t / 12) + 10 * np.cos(4 * np.pi * t / 12)
    return trend + season + rng.normal(0, 3, n)


@pytest.mark.parametrize("start", ["heuristic", "estimated"])
def test_one_start_is_statsmodels_fit(start):
    y = _employment_like()
    fit = models.HoltWinters(start=start).fit(y)
    ref = _statsmodels_holt_winters(y, start)
    mean, _ = fit.predict(12)
    np.testing.assert_allclose(mean, np.maximum(ref.forecast(12), 0), rtol=1e-10)
    np.testing.assert_allclose(fit.residuals, y - ref.fittedvalues, rtol=1e-10, atol=1e-8)


def test_both_starts_keep_the_smaller_sum_of_squares():
    y = _employment_like()
    sse = {s: float(_statsmodels_holt_winters(y, s).sse) for s in ("heuristic", "estimated")}
    best = min(sse, key=sse.get)
    fit = models.HoltWinters(start="both").fit(y)
    assert float(np.sum(fit.residuals**2)) == pytest.approx(sse[best], rel=1e-10)
    mean, _ = fit.predict(12)
    np.testing.assert_allclose(
        mean, np.maximum(_statsmodels_holt_winters(y, best).forecast(12), 0), rtol=1e-10
    )
    # never a worse in-sample fit than the heuristic start alone
    assert np.sum(fit.residuals**2) <= sse["heuristic"] * (1 + 1e-12)


def test_both_starts_use_only_the_history():
    y = _employment_like(252)
    origin = 228
    a = models.HoltWinters(start="both").fit(y[:origin]).predict(12)[0]
    changed = y.copy()
    changed[origin:] *= 1.5
    b = models.HoltWinters(start="both").fit(changed[:origin]).predict(12)[0]
    np.testing.assert_array_equal(a, b)


def test_short_series_have_a_single_estimated_start():
    rng = np.random.default_rng(5)
    y = 50 + 5 * np.sin(np.arange(30) * np.pi / 6) + rng.normal(0, 1, 30)  # < 2 m + 10
    for start in ("heuristic", "both", "estimated"):
        fit = models.HoltWinters(start=start).fit(y)
        ref = _statsmodels_holt_winters(y, "estimated")
        np.testing.assert_allclose(fit.predict(6)[0], np.maximum(ref.forecast(6), 0), rtol=1e-10)


def test_unknown_start_is_refused():
    with pytest.raises(ValueError, match="start"):
        models.HoltWinters(start="brute")


def test_auto_tries_both_starts_on_long_series_only():
    months = models.HW_BOTH_STARTS_SEASONS * 12
    long = _employment_like(months)
    short = long[-(months - 1) :]
    for y, same_as in ((long, "both"), (short, "heuristic")):
        auto = models.HoltWinters(start="auto").fit(y).predict(12)[0]
        ref = models.HoltWinters(start=same_as).fit(y).predict(12)[0]
        np.testing.assert_array_equal(auto, ref)


def test_default_model_holt_winters_member_tries_both_starts_on_long_series():
    model = models.default_model()
    in_model = model.models[-1]
    assert isinstance(in_model, models.HoltWinters) and in_model.start == "auto"
