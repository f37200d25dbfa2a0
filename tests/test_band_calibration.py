"""Calibrated reconciled bands: conformal scores, per-level factors, coverage, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import backtest
from revmodel import reconcile as rc
from revmodel.errors import ParameterError
from tests.test_reconcile import _gaussian_base, assert_coherent, residuals_for, tiny_cube

LEVELS = np.array([0.1, 0.5, 0.9])


@pytest.fixture(scope="module")
def hierarchy() -> rc.Hierarchy:
    return rc.hierarchy_from_cube(tiny_cube())


def test_band_scores_are_distances_in_units_of_the_band_on_their_side():
    actual = np.array([100.0, 70.0, 130.0, 110.0, 95.0, 100.0])
    center = np.full(6, 100.0)
    lower = np.array([80.0, 80.0, 90.0, 100.0, 100.0, 100.0])
    upper = np.array([110.0, 110.0, 120.0, 100.0, 140.0, 100.0])
    got = rc.band_scores(actual, center, lower, upper)
    # 0 at the centre; 30/20 below; 30/20 above; above a band of no upper width: never held
    np.testing.assert_allclose(got, [0.0, 1.5, 1.5, np.inf, np.inf, 0.0])
    inside = (actual >= lower) & (actual <= upper)
    np.testing.assert_array_equal(got <= 1, inside)


def test_scale_band_moves_every_quantile_away_from_the_median_by_its_node_factor():
    q = np.array([[[80.0, 100.0, 150.0]] * 2, [[5.0, 10.0, 12.0]] * 2])  # 2 nodes x 2 months
    out = rc.scale_band(q, LEVELS, np.array([2.0, 0.5]))
    np.testing.assert_allclose(out[0, 0], [60.0, 100.0, 200.0])
    np.testing.assert_allclose(out[1, 1], [7.5, 10.0, 11.0])


def test_learned_factor_is_the_conformal_quantile_shrunk_towards_the_pooled_one():
    rng = np.random.default_rng(4)
    top = rng.uniform(0.0, 2.0, 9)
    bottom = rng.uniform(0.0, 1.0, 391)
    scale = rc.learn_band_scale({"total": top, "rep/segment": bottom}, coverage=0.8, pool=30)
    both = np.sort(np.concatenate([top, bottom]))
    pooled = both[int(np.ceil(401 * 0.8)) - 1]
    own_top = np.sort(top)[int(np.ceil(10 * 0.8)) - 1]
    own_bottom = np.sort(bottom)[int(np.ceil(392 * 0.8)) - 1]
    w_top, w_bottom = 9 / 39, 391 / 421
    f = scale.as_dict()
    assert f["total"] == pytest.approx(own_top**w_top * pooled ** (1 - w_top))
    assert f["rep/segment"] == pytest.approx(own_bottom**w_bottom * pooled ** (1 - w_bottom))
    assert scale.n_scores == (9, 391)
    # a level never seen keeps its own band; bounds hold
    assert rc.learn_band_scale({}).as_dict() == {}
    assert rc.learn_band_scale({"total": np.full(50, 1e6)}).as_dict()["total"] == pytest.approx(5.0)
    with pytest.raises(ParameterError, match="coverage must be between 0 and 1, got 80"):
        rc.learn_band_scale({"total": top}, coverage=80)


def test_band_scale_rejects_mismatched_or_non_positive_factors():
    with pytest.raises(ParameterError, match="BandScale: 2 levels but 1 factors"):
        rc.BandScale(("total", "region"), (1.0,))
    with pytest.raises(ParameterError, match="factors must be positive numbers, got 0.0"):
        rc.BandScale(("total",), (0.0,))


def _coverage_by_level(h, lo, hi, actual) -> dict[str, float]:
    inside = (actual[:, None, :] >= lo[..., None]) & (actual[:, None, :] <= hi[..., None])
    cov = inside.mean(axis=(1, 2))
    levels_of = h.nodes["level"].to_numpy()
    return {lv: float(cov[levels_of == lv].mean()) for lv in dict.fromkeys(levels_of)}


@pytest.mark.parametrize("misstated", [0.6, 1.6])
def test_calibration_brings_a_misstated_band_to_80_percent_at_every_level(hierarchy, misstated):
    """Base spread understated (0.6) or overstated (1.6) at every node of a known Gaussian."""
    h = hierarchy
    q, levels, draw, S = _gaussian_base(h, horizon=2)
    q_model = rc.scale_band(q, levels, np.full(h.n_nodes, misstated))
    mu = draw(20_000).mean(1)
    resid = S @ (draw(240) - mu[:, None])
    settings = rc.SampleSettings(n_samples=1000, seed=1)
    raw = rc.sample_reconciled(q_model, levels, h, "mint_shrink", resid, False, settings=settings)
    lo, mid, hi = (raw.quantiles[..., i] for i in range(3))
    # past origins: actuals drawn before the ones the calibrated band is judged on
    past = S @ draw(150)
    score = rc.band_scores(past[:, None, :], mid[..., None], lo[..., None], hi[..., None])
    levels_of = h.nodes["level"].to_numpy()
    scale = rc.learn_band_scale({lv: score[levels_of == lv].ravel() for lv in set(levels_of)})
    for f in scale.factors:
        assert f == pytest.approx(1 / misstated, rel=0.15)
    cal = rc.sample_reconciled(
        q_model, levels, h, "mint_shrink", resid, False,
        settings=rc.SampleSettings(n_samples=1000, seed=1, scale=scale),
    )  # fmt: skip
    actual = S @ draw(4000)
    before = _coverage_by_level(h, lo, hi, actual)
    after = _coverage_by_level(h, cal.quantiles[..., 0], cal.quantiles[..., 2], actual)
    for level, got in after.items():
        assert 0.74 <= got <= 0.86, (level, got, before[level])
        assert abs(before[level] - 0.8) > 0.08, (level, before[level])  # it was off
    assert cal.info["band_scale"] == scale.as_dict()
    np.testing.assert_allclose(cal.quantiles[..., 1], mid, rtol=0.05)  # the median stays


def test_calibrated_paths_add_up_hold_locks_and_stay_nonnegative(hierarchy):
    h = hierarchy
    q, levels, _, _ = _gaussian_base(h, horizon=3)
    q = q - 1500.0  # many draws below 0 before reconciliation, more once widened
    scale = rc.BandScale(("total", "rep/segment"), (3.0, 2.5), (10, 10))
    locked = {("total", ()): [9000.0, np.nan, 8000.0], ("manager", "M1"): 2500.0}
    res = rc.sample_reconciled(
        q, levels, h, "mint_shrink", residuals_for(h), nonnegative=True, locked=locked,
        settings=rc.SampleSettings(n_samples=60, seed=3, scale=scale),
    )  # fmt: skip
    s = res.samples
    for t in range(3):
        assert_coherent(h, s[:, t, :], rtol=1e-9)
    assert s.min() >= 0.0
    np.testing.assert_array_equal(s[0, 0], np.full(60, 9000.0))
    np.testing.assert_array_equal(s[0, 2], np.full(60, 8000.0))
    np.testing.assert_array_equal(s[h.index("manager", "M1")], np.full((3, 60), 2500.0))
    plain = rc.sample_reconciled(
        q, levels, h, "mint_shrink", residuals_for(h), nonnegative=True, locked=locked,
        settings=rc.SampleSettings(n_samples=60, seed=3),
    )  # fmt: skip
    free = h.nodes["level"].to_numpy() == "rep/segment"
    assert np.ptp(s[free], axis=-1).mean() > 1.5 * np.ptp(plain.samples[free], axis=-1).mean()


def test_band_calibration_learns_only_from_folds_ended_by_the_origin():
    past = [
        (pd.Timestamp("2025-03-01"), {"total": np.full(40, 1.5)}),
        (pd.Timestamp("2025-06-01"), {"total": np.full(40, 0.5)}),
        (pd.Timestamp("2025-09-01"), {"total": np.full(40, 4.0)}),  # ends after the origin
    ]
    got = backtest.band_calibration(past, pd.Timestamp("2025-06-01"), 0.8)
    assert got.n_scores == (80,)
    assert got.as_dict() == {"total": pytest.approx(1.5)}  # 80% of 80 scores: the 1.5s
    assert backtest.band_calibration(past, pd.Timestamp("2025-02-01")).as_dict() == {}


def _toy_cube(last: float = 1.0) -> xr.Dataset:
    rng = np.random.default_rng(11)
    months = pd.date_range("2022-01-01", periods=48, freq="MS")
    season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(48) / 12)
    values = 100 * season * rng.gamma(20.0, 0.05, (1, 2, 3, 48))
    values[0, 1, :2] = 0.0  # r1 and r2 sell in EMEA, r3 in NA
    values[0, 0, 2] = 0.0
    values[..., -3:] *= last
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), values)},
        coords={
            "segment": ["SMB"],
            "region": ["EMEA", "NA"],
            "rep": ["r1", "r2", "r3"],
            "month": months,
            "manager": ("rep", ["M1", "M1", "M2"]),
        },
        attrs={"as_of": "2025-12-01"},
    )


@pytest.mark.slow
def test_backtest_calibrates_each_fold_on_earlier_origins_only(tmp_path):
    """Changing the last fold's actuals changes its scores but no fold's band factors.

    Both runs share a forecast cache: every origin sees the same history.
    """

    def run(last: float):
        return backtest.rolling_origin(
            _toy_cube(last), horizon=3, folds=2, step=3, models=["reconciled", "calibrated"],
            calibration_folds=2, cache_dir=tmp_path,
        )  # fmt: skip

    a, b = run(1.0), run(3.0)
    assert a.info["band_scale"] == b.info["band_scale"]
    first, second = a.info["band_scale"]
    assert (first["fold"], second["fold"]) == (0, 1)
    nodes = rc.hierarchy_from_cube(_toy_cube()["bookings"]).nodes["level"].value_counts()
    # fold 0 learns from the 2 calibration origins, fold 1 from those and fold 0: 3 months each
    assert dict(zip(first["factors"], first["n"], strict=True)) == {
        lv: 2 * 3 * int(nodes[lv]) for lv in first["factors"]
    }
    assert second["n"] == tuple(3 * n // 2 for n in first["n"])
    last = a.scores.query("fold == 1 and model == 'calibrated'")["actual"].sum()
    assert b.scores.query("fold == 1 and model == 'calibrated'")["actual"].sum() == pytest.approx(
        3 * last
    )
    # only scored folds appear in the scores; the calibration origins are forecast, not scored
    assert sorted(a.scores["fold"].unique()) == [0, 1]


def test_the_default_calibration_says_why_it_is_not_applied():
    """Calibrated by default (2 origins) where the history allows it; otherwise a note."""
    from revmodel import config, parameters

    assert config.BAND_CALIBRATION_FOLDS == 2
    assert parameters.SCHEMA["band_calibration_folds"].default == 2
    cube = _toy_cube()  # 36 months to 2025-12
    short = cube.isel(month=slice(-14, None))
    assert backtest.calibration_for(short, 3, 2) == (
        None,
        "bands not calibrated: the 14 months of history up to 2025-12 leave no past origin "
        "with 3 months of actuals after it and 12 before it; the 10-90% bands are the models' own",
    )
    assert backtest.calibration_for(cube, 3, 2, reconcile="none") == (
        None,
        "bands not calibrated: the forecast is not reconciled; the 10-90% bands are the "
        "models' own",
    )
    assert backtest.calibration_folds_available(cube.isel(month=slice(-16, None)), 3, 2) == 1


@pytest.mark.slow
def test_past_bands_drawn_on_a_local_cluster_are_the_bands_drawn_here(tmp_path, monkeypatch):
    """Above BAND_PARALLEL_MIN_NODES each calibration round draws the past origins' bands at
    once on a local cluster of single-threaded processes: the same bands to the bit, so the
    same factors and the same scored bands; below it every band is drawn here."""
    cube = _toy_cube()
    args = dict(horizon=3, folds=1, step=3, models=["calibrated"], calibration_folds=3)
    here = backtest.rolling_origin(cube, **args, cache_dir=tmp_path)
    assert "bands_on_workers" not in here.info  # 16 nodes: far below the threshold
    monkeypatch.setattr(backtest, "BAND_PARALLEL_MIN_NODES", 0)
    there = backtest.rolling_origin(cube, **args, cache_dir=tmp_path)
    rounds = len(there.info["band_rounds"][0]["held"])
    assert there.info["bands_on_workers"] == 3 * rounds  # every past origin's band, each round
    assert there.info["band_scale"] == here.info["band_scale"]
    assert there.info["band_rounds"] == here.info["band_rounds"]
    pd.testing.assert_frame_equal(there.scores, here.scores)
    calibrated = here.scores[here.scores["model"] == "calibrated"]
    assert len(calibrated) and calibrated["lower"].notna().all()


def test_too_many_calibration_folds_is_a_clear_error():
    with pytest.raises(
        ParameterError,
        match=r"backtest: 12 calibration folds 3 months apart put the first origin at 2022-06, "
        r"leaving 6 months of history \(at least 12 needed\); use fewer calibration folds",
    ):
        backtest.rolling_origin(
            _toy_cube(), horizon=3, folds=2, step=3, models=["calibrated"], calibration_folds=12
        )


@pytest.mark.slow
def test_band_scale_for_a_forecast_learns_what_the_backtest_learns_and_the_cli_applies_it(
    tmp_path, capsys
):
    from revmodel import cli

    cube = _toy_cube()
    first = backtest.rolling_origin(
        cube, horizon=3, folds=1, step=3, models=["calibrated"], calibration_folds=2,
        cache_dir=tmp_path,
    )  # fmt: skip
    # a forecast made at the backtest's origin learns from the same two origins before it
    at_origin = cube.assign_attrs(as_of=f"{first.origins[0]:%Y-%m-%d}")
    scale = backtest.calibrate_bands(at_origin, horizon=3, folds=2, cache_dir=tmp_path).scale
    assert scale.as_dict() == first.info["band_scale"][0]["factors"]
    assert scale.n_scores == first.info["band_scale"][0]["n"]

    cube.to_netcdf(tmp_path / "cube.nc")
    args = ["forecast", str(tmp_path / "cube.nc"), "--horizon", "3", "--out"]
    assert cli.main([*args, str(tmp_path / "fc.nc")]) == 0  # calibrated on 2 by default
    out = capsys.readouterr().out
    expected = backtest.calibrate_bands(cube, horizon=3, folds=2).scale
    factors = ", ".join(f"{lv} {f:.2f}" for lv, f in expected.as_dict().items())
    assert f"; bands calibrated on 2 past origins (factors: {factors})" in out
    fc = xr.open_dataset(tmp_path / "fc.nc")
    assert fc.attrs["band_scale"] == factors
    assert "band_calibration_note" not in fc.attrs
    assert cli.main([*args, str(tmp_path / "plain.nc"), "--calibrate-bands", "0"]) == 0
    assert (
        "; bands not calibrated: --calibrate-bands is 0; the 10-90% bands are the models' own; "
        "written to"
    ) in capsys.readouterr().out
    plain = xr.open_dataset(tmp_path / "plain.nc")
    assert "band_scale" not in plain.attrs
    assert plain.attrs["band_calibration_note"].startswith("bands not calibrated")
    # same reconciled mean; every level's band scaled around its median, by a factor among
    # the levels' own (the reconciliation mixes the levels' spreads: the total's band holds
    # the bottom's widening too), and not left as it was
    np.testing.assert_allclose(fc["node_mean"], plain["node_mean"])
    learned = [*expected.factors, *(f for by_month in expected.by_step for f in by_month)]
    assert max(learned) - min(learned) > 0.1  # levels learned different factors
    for level in np.unique(fc["level"].values):
        nodes = fc["node"].values[fc["level"].values == level]
        wide = fc["node_forecast"].sel(node=nodes)
        own = plain["node_forecast"].sel(node=nodes)
        ratio = float(
            (wide.sel(quantile=0.9) - wide.sel(quantile=0.1)).sum()
            / (own.sel(quantile=0.9) - own.sel(quantile=0.1)).sum()
        )
        assert min(learned) - 0.05 <= ratio <= max(learned) + 0.05, (level, ratio, learned)
        assert abs(ratio - 1) > 0.05, (level, ratio)
    with pytest.raises(ParameterError, match="band calibration needs a reconciliation method"):
        backtest.calibrate_bands(cube, horizon=3, reconcile="none")


def _drifting_folds(h, q, levels, draw, S, spreads, settings):
    """Scores of the model's band at past origins whose errors spread ``spreads`` times the model's."""
    mu = draw(20_000).mean(1)
    resid = S @ (draw(240) - mu[:, None])
    raw = rc.sample_reconciled(q, levels, h, "mint_shrink", resid, False, settings=settings)
    lo, mid, hi = (raw.quantiles[..., i] for i in range(3))
    levels_of = h.nodes["level"].to_numpy()
    past = []
    for k, spread in enumerate(spreads):
        actual = S @ mu[:, None] + spread * (S @ (draw(60) - mu[:, None]))
        score = rc.band_scores(actual[:, None, :], mid[..., None], lo[..., None], hi[..., None])
        end = pd.Timestamp("2024-01-01") + pd.DateOffset(months=3 * k)
        past.append((end, {lv: score[levels_of == lv] for lv in dict.fromkeys(levels_of)}))
    return past, mu, resid


def test_recent_origins_weigh_more_when_errors_grow_over_the_folds(hierarchy):
    """Errors 1.0, 1.2, 1.4, 1.6 times the model's at four past origins, 1.6 at the next.

    Weighing the recent origins more (the default decay) brings every level and every
    month ahead to 80%; weighing the four alike leaves the band too narrow.
    """
    h = hierarchy
    q, levels, draw, S = _gaussian_base(h, horizon=3, seed=9)
    settings = rc.SampleSettings(n_samples=1000, seed=2)
    past, mu, resid = _drifting_folds(h, q, levels, draw, S, (1.0, 1.2, 1.4, 1.6), settings)
    origin = past[-1][0]
    levels_of = h.nodes["level"].to_numpy()
    actual = S @ mu[:, None] + 1.6 * (S @ (draw(4000) - mu[:, None]))
    got = {}
    for decay in (backtest.CALIBRATION_DECAY, 1.0):
        scale = backtest.band_calibration(past, origin, 0.8, decay=decay)
        cal = rc.sample_reconciled(
            q, levels, h, "mint_shrink", resid, False,
            settings=rc.SampleSettings(n_samples=1000, seed=2, scale=scale),
        )  # fmt: skip
        lo, hi = cal.quantiles[..., 0][..., None], cal.quantiles[..., 2][..., None]
        inside = (actual[:, None, :] >= lo) & (actual[:, None, :] <= hi)  # nodes x h x draws
        got[decay] = {
            lv: inside[levels_of == lv].mean(axis=(0, 2)) for lv in dict.fromkeys(levels_of)
        }
    for lv, by_step in got[backtest.CALIBRATION_DECAY].items():
        assert ((by_step >= 0.74) & (by_step <= 0.86)).all(), (lv, by_step)
    # alike: every level's band too narrow by several points
    for lv, by_step in got[1.0].items():
        assert by_step.mean() < got[backtest.CALIBRATION_DECAY][lv].mean() - 0.02, lv
    with pytest.raises(ParameterError, match=r"decay must be in \(0, 1\], got 0.0"):
        backtest.band_calibration(past, origin, 0.8, decay=0.0)


def test_weighted_conformal_quantile_reduces_to_the_plain_one_with_equal_weights():
    rng = np.random.default_rng(3)
    v = rng.exponential(size=97)
    for cov in (0.5, 0.8, 0.9):
        assert rc._conformal_quantile(v, cov, np.full(97, 2.5)) == rc._conformal_quantile(v, cov)
    # the newest half alone once the old half weighs (almost) nothing
    old, new = rng.uniform(2, 3, 50), rng.uniform(0, 1, 50)
    w = np.r_[np.full(50, 1e-9), np.ones(50)]
    assert rc._conformal_quantile(np.r_[old, new], 0.8, w) == rc._conformal_quantile(new, 0.8)


def test_each_month_ahead_gets_its_own_factor_where_its_errors_differ(hierarchy):
    """The model's band is right one month ahead, too narrow by 1.3 and 1.6 two and three ahead.

    Scores by month ahead give each month its own factor: every level and month lands
    at 80%; one factor per level over the three months cannot (too wide at the first).
    """
    h = hierarchy
    q, levels, draw, S = _gaussian_base(h, horizon=3, seed=13)
    mu = draw(20_000).mean(1)
    resid = S @ (draw(240) - mu[:, None])
    grow = np.array([1.0, 1.3, 1.6])
    raw = rc.sample_reconciled(
        q, levels, h, "mint_shrink", resid, False, settings=rc.SampleSettings(1000, 4)
    )
    lo, mid, hi = (raw.quantiles[..., i][..., None] for i in range(3))
    levels_of = h.nodes["level"].to_numpy()

    def actuals(k: int) -> np.ndarray:  # nodes x months ahead x k
        e = np.stack([S @ (draw(k) - mu[:, None]) for _ in grow], axis=1)
        return (S @ mu)[:, None, None] + grow[None, :, None] * e

    past = []
    for j in range(4):
        score = rc.band_scores(actuals(60), mid, lo, hi)  # nodes x 3 x 60
        by_month = {
            lv: np.moveaxis(score[levels_of == lv], 1, -1).reshape(-1, 3)
            for lv in dict.fromkeys(levels_of)
        }
        past.append((pd.Timestamp("2024-01-01") + pd.DateOffset(months=3 * j), by_month))
    flat = [(end, {lv: v.ravel() for lv, v in s.items()}) for end, s in past]
    test = actuals(4000)
    got = {}
    for name, scores in (("by month", past), ("flat", flat)):
        scale = backtest.band_calibration(scores, past[-1][0], 0.8, decay=1.0)
        assert bool(scale.by_step) == (name == "by month")
        cal = rc.sample_reconciled(
            q, levels, h, "mint_shrink", resid, False,
            settings=rc.SampleSettings(n_samples=1000, seed=4, scale=scale),
        )  # fmt: skip
        c_lo, c_hi = cal.quantiles[..., 0][..., None], cal.quantiles[..., 2][..., None]
        inside = (test >= c_lo) & (test <= c_hi)
        got[name] = {
            lv: inside[levels_of == lv].mean(axis=(0, 2)) for lv in dict.fromkeys(levels_of)
        }
    for lv, by_step in got["by month"].items():
        assert ((by_step >= 0.74) & (by_step <= 0.86)).all(), (lv, by_step)
        assert got["flat"][lv][0] > 0.88 and got["flat"][lv][2] < 0.74, (lv, got["flat"][lv])
    scale = backtest.band_calibration(past, past[-1][0], 0.8, decay=1.0)
    for row in scale.by_step:  # the factors grow with the months ahead, as the errors do
        assert row[0] < row[1] < row[2]


def test_levels_misstated_in_opposite_directions_each_reach_80_percent(hierarchy):
    """Bottoms' base spread understated (0.6), every aggregate's overstated (1.7).

    The reconciled band of a level mixes every level's spread: one factor per level
    learned once leaves the bottom too narrow, and so does a single secant step after
    it (the two rounds of before); the rounds of :func:`backtest.calibration_rounds`
    go on until the past bands hold 80% at every level, and so do fresh actuals.
    """
    h = hierarchy
    q, levels, draw, S = _gaussian_base(h, horizon=2, seed=21)
    levels_of = h.nodes["level"].to_numpy()
    q_model = rc.scale_band(q, levels, np.where(levels_of == rc.BOTTOM_LEVEL, 0.6, 1.7))
    mu = draw(20_000).mean(1)
    resid = S @ (draw(240) - mu[:, None])
    origin = pd.Timestamp("2025-06-01")
    past = S @ draw(300)  # the past origin's actuals
    fresh = S @ draw(4000)  # the actuals the calibrated band is judged on

    def band(scale: rc.BandScale) -> tuple[np.ndarray, ...]:
        settings = rc.SampleSettings(n_samples=1000, seed=6, scale=scale if scale.levels else None)
        s = rc.sample_reconciled(q_model, levels, h, "mint_shrink", resid, False, settings=settings)
        return tuple(s.quantiles[..., i][..., None] for i in range(3))

    def scores_with(scale: rc.BandScale) -> list:
        lo, mid, hi = band(scale)
        score = rc.band_scores(past[:, None, :], mid, lo, hi)
        return [(origin, {lv: score[levels_of == lv] for lv in dict.fromkeys(levels_of)})]

    def coverage(scale: rc.BandScale) -> dict[str, float]:
        lo, _, hi = band(scale)
        inside = (fresh[:, None, :] >= lo) & (fresh[:, None, :] <= hi)
        return {lv: float(inside[levels_of == lv].mean()) for lv in dict.fromkeys(levels_of)}

    scale, held = backtest.calibration_rounds(scores_with, origin)
    two, _ = backtest.calibration_rounds(scores_with, origin, rounds=2)
    plain, after, before = coverage(rc.BandScale()), coverage(scale), coverage(two)
    assert plain["total"] > 0.95 and plain[rc.BOTTOM_LEVEL] > 0.8, plain  # mixed by MinT
    assert before[rc.BOTTOM_LEVEL] < 0.74, before  # two rounds: the bottom still too narrow
    assert 3 <= len(held) <= backtest.CALIBRATION_ROUNDS, held
    for lv, got in after.items():
        assert 0.75 <= got <= 0.85, (lv, got, plain[lv], before[lv])
    worst = [max(abs(c - 0.8) for c in r.values()) for r in held]  # past bands, by round
    # after the second round's draw still off; after the last within 6 points (the rounds
    # stop at CALIBRATION_ROUNDS: here the fourth overshot the total, 74.8% of the past, 2.2
    # binomial standard errors of its 300 actuals)
    assert worst[-1] < 0.06 and worst[1] > 0.05, (held, after)
    f = scale.as_dict()  # the bottom widened and the total narrowed, each by its own factor
    assert f[rc.BOTTOM_LEVEL] > 1.3 and f["total"] < 0.7, f


def test_past_coverage_and_the_stopping_rule_by_hand():
    past = [
        (pd.Timestamp("2025-03-01"), {"total": np.array([0.5, 2.0]), "rep": np.array([[0.2]])}),
        (pd.Timestamp("2025-06-01"), {"total": np.array([0.5, 0.5]), "rep": np.array([[3.0]])}),
        (pd.Timestamp("2025-09-01"), {"total": np.array([9.0, 9.0])}),  # not ended by the origin
    ]
    got = backtest.past_coverage(past, pd.Timestamp("2025-06-01"))
    # weights 0.5 (older) and 1: total (0.5 * 1 + 1 * 2) / 3, n = 3^2 / 2.5; rep 0.5 / 1.5
    assert got["total"] == pytest.approx((2.5 / 3, 3.6))
    assert got["rep"] == pytest.approx((1 / 3, 1.5**2 / 1.25))
    tol = backtest.CALIBRATION_TOLERANCE
    assert backtest.calibration_held({"rep": (0.8 + 0.9 * tol, 1e6)})
    assert not backtest.calibration_held({"rep": (0.8 - 1.1 * tol, 1e6)})
    # a level of 16 past actuals is held within its standard error (10%), not the tolerance
    assert backtest.calibration_held({"total": (0.71, 16.0), "rep": (0.8, 1e6)})
    assert not backtest.calibration_held({"total": (0.69, 16.0), "rep": (0.8, 1e6)})
