"""The interval of an aggregate over months is its own, never a sum of monthly bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from revmodel import reconcile

LEVELS = [0.1, 0.5, 0.9]
Z = stats.norm.ppf(LEVELS)


def _normal(mean: float, sd: float, months: int) -> np.ndarray:
    return np.array([[[mean + sd * z for z in Z]] * months])


def test_quarter_band_of_normal_months_is_the_normal_sum():
    band, labels = reconcile.period_quantiles(_normal(100.0, 30.0, 3), LEVELS, n_samples=20000)
    assert labels == [0]
    expected = 300.0 + 30.0 * np.sqrt(3.0) * Z  # independent months: sd grows with sqrt(3)
    np.testing.assert_allclose(band[0], expected, rtol=0.01)
    added = 3 * _normal(100.0, 30.0, 1)[0, 0]  # what adding the bounds would give
    assert band[0, 2] - band[0, 0] < 0.6 * (added[2] - added[0])


def test_floored_monthly_bounds_do_not_make_a_zero_lower_bound():
    months = np.array([[[0.0, 10.0, 30.0]] * 3])  # each month's p10 floored at 0
    band, _ = reconcile.period_quantiles(months, LEVELS)
    assert 10.0 < band[0, 0] < 30.0  # the quarter's own p10, not 0 + 0 + 0
    assert band[0, 0] < band[0, 1] < band[0, 2] < 90.0


def test_nodes_of_a_group_add_draw_by_draw_and_the_seed_fixes_the_result():
    two = np.concatenate([_normal(50.0, 10.0, 2), _normal(50.0, 10.0, 2)])
    band, labels = reconcile.period_quantiles(two, LEVELS, groups=["R1", "R1"], n_samples=20000)
    assert labels == ["R1"]
    np.testing.assert_allclose(band[0], 200.0 + 10.0 * 2.0 * Z, rtol=0.01)
    again, _ = reconcile.period_quantiles(two, LEVELS, groups=["R1", "R1"], n_samples=20000)
    np.testing.assert_array_equal(band, again)


@pytest.mark.parametrize("months", [1, 12])
def test_one_row_per_group_in_order(months):
    q = np.concatenate([_normal(10.0, 1.0, months), _normal(20.0, 1.0, months)])
    band, labels = reconcile.period_quantiles(q, LEVELS, groups=["b", "a"])
    assert labels == ["b", "a"]
    assert band[0, 1] == pytest.approx(10.0 * months, rel=0.02)
    assert band[1, 1] == pytest.approx(20.0 * months, rel=0.02)
