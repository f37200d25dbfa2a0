"""Band calibration counts a node's months from one origin as a few scores, not as many."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from revmodel import backtest
from revmodel import reconcile as rc

Z90 = float(stats.norm.ppf(0.9))


def test_effective_scores_by_hand():
    # one node, two origins, 12 months ahead: two rows of at most 3 scores each
    assert rc.effective_scores(np.zeros((2, 12))) == pytest.approx(6.0)
    # a quarter ahead: every month counts
    assert rc.effective_scores(np.zeros((60, 3))) == pytest.approx(180.0)
    assert rc.effective_scores(np.zeros(40)) == pytest.approx(40.0)  # flat: a score a row
    # weights 1 and 0.5 for two folds of one row x 12: (18^2 / 15) x 3 / 12
    got = rc.effective_scores(
        [np.zeros((1, 12)), np.zeros((1, 12))], [np.ones((1, 12)), np.full((1, 12), 0.5)]
    )
    assert got == pytest.approx(18**2 / 15 * 3 / 12)
    # NaN months are not scored: 6 of 12 scored in each of 2 rows -> 2 x 3
    v = np.zeros((2, 12))
    v[:, 6:] = np.nan
    assert rc.effective_scores(v) == pytest.approx(6.0)
    assert rc.effective_scores(np.zeros((2, 12)), row_scores=12) == pytest.approx(24.0)


def _persistent_scores(rng, nodes: int, origins: int, h: int, width: float, persist: float):
    """Scores of a node's months from one origin that share most of their error."""
    rows = []
    for _ in range(origins):
        common = rng.normal(size=(nodes, 1))
        e = np.sqrt(persist) * common + np.sqrt(1 - persist) * rng.normal(size=(nodes, h))
        rows.append(np.abs(e) / width)
    return np.concatenate(rows)


def _calibrated_total(monkeypatch, row_scores: int, reps: int = 300) -> np.ndarray:
    """Share of fresh actuals inside the total's calibrated band, one per calibration.

    Every level's model band is too wide by 1 / 0.6 (errors N(0, 1), half-band
    1.28 / 0.6); two past origins, 12 months ahead, errors persisting over the months.
    """
    monkeypatch.setattr(rc, "BAND_SCALE_ROW_SCORES", row_scores)
    rng = np.random.default_rng(11)
    width = Z90 / 0.6
    out = []
    for _ in range(reps):
        scores = {
            "total": _persistent_scores(rng, 1, 2, 12, width, 0.9),
            "rep": _persistent_scores(rng, 100, 2, 12, width, 0.9),
        }
        f = rc.learn_band_scale(scores, 0.8).as_dict()["total"]
        out.append(2 * stats.norm.cdf(f * width) - 1)
    return np.asarray(out)


def test_a_one_node_level_learns_from_its_rows_not_its_months(monkeypatch):
    """Two origins of one node are two draws, not 24: the factor leans on the pooled one.

    Counting the 24 months as 24 scores, the total's factor follows two draws: its
    coverage of fresh actuals spreads over 77% +- 9% between calibrations; as 2 x 3
    scores it stays at 79% +- 4%.
    """
    capped = _calibrated_total(monkeypatch, rc.BAND_SCALE_ROW_SCORES)
    months = _calibrated_total(monkeypatch, 10**6)
    assert 0.78 <= capped.mean() <= 0.82, capped.mean()
    assert capped.std() < 0.05, capped.std()
    assert months.std() > 0.08, months.std()
    assert abs(capped.mean() - 0.8) < abs(months.mean() - 0.8)


def test_the_stopping_rule_does_not_chase_a_one_node_level_through_its_noise():
    """One node, two origins of 12 months: its past share is noise of about 17 points."""
    origin = pd.Timestamp("2025-12-01")
    held_rows = np.where(np.arange(12) < 8, 0.5, 2.0)[None, :]  # 8 of 12 months held
    reps = np.repeat([[0.5], [2.0]], [160, 40], axis=0) * np.ones(12)  # 80% held
    past = [
        (pd.Timestamp("2025-06-01"), {"total": held_rows, "rep": reps}),
        (pd.Timestamp("2025-12-01"), {"total": held_rows, "rep": reps}),
    ]
    got = backtest.past_coverage(past, origin)
    n = (18**2 / 15) * 3 / 12  # weights 1 and 0.5 over 12 months, rows of 3 scores
    assert got["total"] == pytest.approx((8 / 12, n))
    assert backtest.calibration_held(got)  # 67% is within the noise of ~5 scores
    # the months as scores (n = 21.6) would call 67% off and draw another round
    assert not backtest.calibration_held({"total": (8 / 12, 18**2 / 15), "rep": got["rep"]})
