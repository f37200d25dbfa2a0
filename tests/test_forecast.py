"""Tests of revmodel.models and revmodel.forecast."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import cli, forecast, models
from revmodel import reconcile as rec
from revmodel.errors import DataError, ParameterError
from revmodel.forecast import SeriesTask, forecast_cube, forecast_many, forecast_series

RNG = np.random.default_rng(20261122)
SEASON = 1 + 0.3 * np.sin(2 * np.pi * np.arange(12) / 12)


def seasonal_series(n: int, rng=RNG, noise: float = 0.02) -> np.ndarray:
    t = np.arange(n)
    return (200 + 2 * t) * SEASON[t % 12] * rng.lognormal(0, noise, n)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "model",
    [
        models.default_model(),
        pytest.param(models.ETS(), marks=pytest.mark.slow),
        models.Deseasonalized(models.Theta(deseasonalize=False)),
        pytest.param(models.AutoSARIMAX(), marks=pytest.mark.slow),
        models.SeasonalNaive(),
    ],
    ids=lambda m: type(m).__name__ if not isinstance(m, models.Deseasonalized) else repr(m)[:40],
)
def test_model_recovers_seasonal_pattern(model):
    y = seasonal_series(72 + 12, rng=np.random.default_rng(3), noise=0.01)
    truth = (200 + 2 * np.arange(72, 84)) * SEASON[np.arange(72, 84) % 12]
    mean, q = model.fit_predict(y[:72], 12, quantiles=(0.1, 0.5, 0.9))
    assert mean.shape == (12,) and q.shape == (3, 12)
    # seasonal naive misses one year of trend (24 = 12 months x 2/month, about 10%)
    tolerance = 0.12 if isinstance(model, models.SeasonalNaive) else 0.05
    np.testing.assert_allclose(mean, truth, rtol=tolerance)
    assert np.all(q[0] <= q[1]) and np.all(q[1] <= q[2])
    assert model.residuals.shape == (72,)


def test_estimator_api_attributes():
    y = seasonal_series(60)
    ets = models.ETS(trend="add_damped", seasonal="add").fit(y)
    assert np.isfinite(ets.aicc) and ets.aic == ets.aicc
    assert ets.name == "ets(A,Ad,A)"
    mean, q = ets.predict(12, quantiles=(0.05, 0.5, 0.95))
    assert np.all(q[0] < mean) and np.all(mean < q[2])
    with pytest.raises(RuntimeError, match="call fit"):
        models.SES().predict(3)


def test_combination_median_and_mean():
    y = seasonal_series(60)
    members = [models.SES(), models.Holt(damped=True), models.Theta()]
    means = [m.fit_predict(y, 6)[0] for m in members]
    med, _ = models.Combination([models.SES(), models.Holt(), models.Theta()]).fit_predict(y, 6)
    avg, _ = models.Combination(
        [models.SES(), models.Holt(), models.Theta()], how="mean"
    ).fit_predict(y, 6)
    np.testing.assert_allclose(med, np.median(means, axis=0))
    np.testing.assert_allclose(avg, np.mean(means, axis=0))
    with pytest.raises(ValueError, match="how must be 'median' or 'mean'"):
        models.Combination(members, how="max")


@pytest.mark.parametrize("variant, expected", [("classic", 10.0), ("sba", 9.5), ("tsb", 5.0)])
def test_croston_on_regular_intermittent_demand(variant, expected):
    # demand of 20 every other month: Croston gives 20 / 2, SBA 10 * (1 - 0.1 / 2),
    # TSB probability 0.5 x size 20 (it settles from its starting probability 1)
    y = np.tile([0.0, 20.0], 200)
    mean, q = models.Croston(variant, alpha=0.1, beta=0.1).fit_predict(y, 4)
    tol = 0.6 if variant == "tsb" else 1e-6
    np.testing.assert_allclose(
        mean, expected * np.ones(4) * (2 if variant == "tsb" else 1), atol=tol
    )
    assert q.shape == (3, 4)


def test_seasonality_test():
    seasonal, text = models.seasonality_test(seasonal_series(60))
    assert seasonal and text.startswith("seasonal (ACF lag 12")
    noise = np.random.default_rng(5).normal(100, 5, 60)
    assert models.seasonality_test(noise)[0] is False
    assert models.seasonality_test(noise[:30]) == (
        False,
        "too short to test seasonality (30 < 36 months)",
    )


def test_interval_coverage_on_simulated_local_level():
    # local level (random walk plus noise): the 80% interval of the default method
    # should cover close to 80% of future values over many series
    rng = np.random.default_rng(11)
    hits, total = 0, 0
    for _ in range(30):
        level = 100 + np.cumsum(rng.normal(0, 2, 66))
        y = level + rng.normal(0, 4, 66)
        res = forecast_series(y[:60], 6, quantiles=(0.1, 0.9), nonnegative=False)
        future = y[60:]
        hits += np.sum((future >= res.quantiles[0]) & (future <= res.quantiles[1]))
        total += future.size
    assert 0.70 <= hits / total <= 0.92


# --------------------------------------------------------------------------- awkward series

_BASE = seasonal_series(60, rng=np.random.default_rng(8))
_INTERMITTENT = np.where(np.random.default_rng(9).random(48) < 0.6, 0.0, 100.0)
_INTERMITTENT[-1] = 80.0

AWKWARD = {
    "short": (
        _BASE[:14],
        SEASON,
        "short history (14 months < 24): parent seasonal profile borrowed",
    ),
    "short_no_profile": (
        _BASE[:14],
        None,
        "short history (14 months < 24), no parent seasonal profile",
    ),
    "very_short": (_BASE[:3], None, "only 3 months of history: mean of the months observed"),
    "intermittent": (_INTERMITTENT, None, "croston_sba chosen: intermittent (ADI"),
    "leaver": (
        np.r_[_BASE[:40], np.zeros(12)],
        None,
        "inactive: last 12 months zero: zero forecast",
    ),
    "negative": (_BASE - 250, None, "negative months present: additive models only"),
    "all_nan": (np.full(30, np.nan), None, "no observations (all NaN): zero forecast"),
    "all_zero": (np.zeros(30), None, "all-zero history: zero forecast"),
    "nan_gaps": (
        np.where(np.arange(60) % 7 == 3, np.nan, _BASE)[:-1],
        None,
        "8 NaN months interpolated",
    ),
    "trailing_nan": (
        np.r_[_BASE[:40], np.nan, np.nan],
        None,
        "2 trailing NaN months filled with the last value",
    ),
    "constant": (np.full(40, 5.0), None, "constant series (5): flat forecast"),
    "late_start": (np.r_[np.zeros(20), _BASE[:40]], None, "20 leading zero months dropped"),
}


@pytest.mark.parametrize("case", sorted(AWKWARD))
def test_awkward_series_forecast_and_reason(case):
    y, profile, reason = AWKWARD[case]
    res = forecast_series(y, 12, seasonal_profile=profile, nonnegative=True)
    assert reason in res.reason
    assert res.mean.shape == (12,) and res.quantiles.shape == (3, 12)
    assert np.all(np.isfinite(res.mean)) and np.all(np.isfinite(res.quantiles))
    assert np.all(res.mean >= 0) and np.all(res.quantiles >= 0)
    assert res.residuals.shape == y.shape


def test_leaver_flag_gives_zero():
    res = forecast_series(_BASE, 6, ended=True)
    assert res.model_name == "zero"
    assert res.reason == "left (end date on or before the forecast origin): zero forecast"
    np.testing.assert_array_equal(res.mean, np.zeros(6))


def test_negative_series_keeps_negative_forecast_when_not_clipped():
    res = forecast_series(_BASE - 250, 12)
    # additive season for the adjusted part; Holt-Winters fitted as it is (no log)
    assert res.model_name == (
        "mean(add_deseasonalized[mean(ses, holt_damped, theta, theta3)], holt_winters)"
    )
    assert np.any(res.mean < 0)


def test_clipping_is_recorded():
    y = np.linspace(100, 2, 40) + np.random.default_rng(2).normal(0, 3, 40)
    res = forecast_series(y, 24, method="ets")
    assert np.all(res.quantiles >= 0)
    assert "negative values clipped at 0" in res.reason


def test_short_series_uses_profile():
    y = _BASE[:18]
    res = forecast_series(y, 12, seasonal_profile=SEASON)
    assert res.model_name == "mul_deseasonalized[mean(ses, holt_damped)]"
    # the borrowed season shows in the forecast: peak at phase 3, trough at phase 9
    phases = (18 + np.arange(12)) % 12
    assert res.mean[phases == 3][0] > res.mean[phases == 9][0] * 1.5


class Broken(models.Forecaster):
    name = "broken"

    def _fit(self, y):
        raise np.linalg.LinAlgError("singular matrix")


def test_failing_model_gives_nan_and_reason():
    res = forecast_series(_BASE, 6, model=Broken(), fallbacks=())
    assert res.model_name == "failed"
    assert np.all(np.isnan(res.mean)) and np.all(np.isnan(res.quantiles))
    assert (
        res.reason
        == "every model failed (model given by the caller): broken: LinAlgError: singular matrix"
    )
    assert res.fallbacks == ("broken: LinAlgError: singular matrix",)


def test_failing_model_falls_back():
    res = forecast_series(_BASE, 6, model=Broken())
    assert res.model_name == "holt_damped"
    assert res.reason.startswith("holt_damped chosen as fallback after 1 failed model(s)")
    assert np.all(np.isfinite(res.mean))


def test_combination_member_failure_is_recorded():
    comb = models.Combination([models.SES(), Broken()])
    res = forecast_series(_BASE, 6, model=comb)
    assert res.model_name == "median(ses)"
    assert res.fallbacks == ("broken: LinAlgError: singular matrix",)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"h": 0}, "horizon must be a whole number of months >= 1, got 0"),
        ({"h": 3, "quantiles": (0.1, 1.0)}, r"quantiles must lie strictly between 0 and 1"),
        ({"h": 3, "method": "prophet"}, "method must be one of auto, holdout"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        forecast_series(_BASE, **kwargs)


def test_holdout_method_records_scores():
    res = forecast_series(_BASE, 12, method="holdout")
    assert "holdout sMAPE over the last 12 months: " in res.reason
    assert np.all(np.isfinite(res.mean))


# --------------------------------------------------------------------------- many series, cache


def test_cache_refits_only_what_changed(tmp_path):
    rng = np.random.default_rng(4)
    tasks = {f"s{i}": SeriesTask(seasonal_series(36, rng=rng)) for i in range(5)}
    first, counts = forecast_many(tasks, 6, cache_dir=tmp_path, progress=False)
    assert counts == {"series": 5, "refits": 5, "cache_hits": 0}
    again, counts = forecast_many(tasks, 6, cache_dir=tmp_path, progress=False)
    assert counts == {"series": 5, "refits": 0, "cache_hits": 5}
    np.testing.assert_array_equal(again["s2"].mean, first["s2"].mean)
    changed = dict(tasks)
    y = tasks["s3"].y.copy()
    y[-1] *= 1.1
    changed["s3"] = SeriesTask(y)
    _, counts = forecast_many(changed, 6, cache_dir=tmp_path, progress=False)
    assert counts == {"series": 5, "refits": 1, "cache_hits": 4}
    _, counts = forecast_many(tasks, 7, cache_dir=tmp_path, progress=False)
    assert counts["refits"] == 5  # a new horizon is a new setting


# --------------------------------------------------------------------------- the cube


def small_cube(months: int = 36, as_of_index: int = 29) -> xr.Dataset:
    """2 segments x 2 regions x 4 reps x 36 months; each rep sells in one region."""
    rng = np.random.default_rng(21)
    month = pd.date_range("2023-01-01", periods=months, freq="MS")
    segments, regions, reps = ["Enterprise", "SMB"], ["EMEA", "NA"], ["r1", "r2", "r3", "r4"]
    rep_region = ["EMEA", "EMEA", "NA", "NA"]
    values = np.zeros((2, 2, 4, months))
    t = np.arange(months)
    for k, region in enumerate(rep_region):
        j = regions.index(region)
        for i in range(2):
            values[i, j, k] = (
                (1000 * (i + 1) + 10 * t) * SEASON[t % 12] * rng.lognormal(0, 0.05, months)
            )
    values[:, :, 3, :20] = 0.0  # r4 hired in month 20: short history
    values[:, :, 1, 26:] = 0.0  # r2 left after month 25
    values[..., as_of_index + 1 :] = np.nan
    ds = xr.Dataset(
        {
            "bookings": (
                ("segment", "region", "rep", "month"),
                values,
                {"units": "USD/month", "long_name": "bookings"},
            )
        },
        coords={
            "segment": segments,
            "region": regions,
            "rep": reps,
            "month": month,
            "manager": ("rep", ["m1", "m1", "m2", "m2"]),
            "rep_region": ("rep", rep_region),
            "end_date": ("rep", pd.to_datetime([pd.NaT, "2025-02-15", pd.NaT, pd.NaT])),
        },
        attrs={
            "as_of": f"{month[as_of_index]:%Y-%m-01}",
            "fiscal_year_start": 2,
            "fiscal_year_naming": "end",
            "currency": "USD",
        },
    )
    return ds


def test_forecast_cube_dims_coords_and_nodes(tmp_path):
    ds = small_cube()
    fc = forecast_cube(ds, horizon=6, cache_dir=tmp_path, progress=False)
    assert fc["forecast"].dims == ("segment", "region", "rep", "month", "quantile")
    assert fc["mean"].dims == ("segment", "region", "rep", "month")
    assert fc["model"].dims == ("segment", "region", "rep")
    assert list(fc["month"].values) == list(
        pd.date_range("2025-07-01", periods=6, freq="MS").values
    )
    assert list(fc["quantile"].values) == [0.1, 0.5, 0.9]
    assert list(fc["fiscal_quarter"].values[:3]) == ["FY2026-Q2", "FY2026-Q3", "FY2026-Q3"]
    # 8 bottom cells with data: 4 reps x 2 segments, each rep in one region
    bottom = fc["level"].values == "rep/segment"
    assert bottom.sum() == 8
    assert list(dict.fromkeys(fc["level"].values)) == [
        level for level, _ in forecast.AGGREGATION_LEVELS
    ]
    assert fc.sizes["node"] == 1 + 2 + 2 + 4 + 2 + 4 + 4 + 8
    # the empty cell (Enterprise, NA, r1) gets zero and says why
    cell = dict(segment="Enterprise", region="NA", rep="r1")
    assert str(fc["model"].sel(cell).item()) == "none"
    assert float(fc["mean"].sel(cell).sum()) == 0.0
    # the rep who left gets zero, recorded
    left = fc["reason"].sel(segment="SMB", region="EMEA", rep="r2").item()
    assert left == "left (end date on or before the forecast origin): zero forecast"
    # the rep hired late borrows the segment profile
    late = fc["reason"].sel(segment="SMB", region="NA", rep="r4").item()
    assert "short history (10 months < 24): parent seasonal profile borrowed" in late
    # aggregate quantiles come from the aggregate model, mean forecasts are non-negative
    total = fc["node_forecast"].sel(node="total")
    assert np.all(np.isfinite(total)) and np.all(fc["forecast"] >= 0)
    node = fc["node_mean"].sel(node="rep/segment=r3/SMB/NA")
    np.testing.assert_allclose(node, fc["mean"].sel(segment="SMB", region="NA", rep="r3"))
    assert fc["node_residual"].dims == ("node", "history_month")
    assert fc.sizes["history_month"] == 30
    assert fc["node_manager"].sel(node="manager/segment=m2/SMB").item() == "m2"
    assert fc["node_region"].sel(node="manager/segment=m2/SMB").item() == "*"
    assert fc.attrs["refits"] == fc.sizes["node"] and fc.attrs["as_of"] == "2025-06-01"


def test_forecast_cube_cache_refits_touched_nodes(tmp_path):
    ds = small_cube()
    fc = forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False, pooled=False)
    again = forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False, pooled=False)
    assert again.attrs["refits"] == 0
    xr.testing.assert_identical(fc, again.assign_attrs(refits=fc.attrs["refits"], cache_hits=0))
    changed = ds.copy(deep=True)
    changed["bookings"].loc[dict(segment="SMB", region="NA", rep="r3", month="2025-06-01")] *= 1.2
    third = forecast_cube(changed, horizon=3, cache_dir=tmp_path, progress=False, pooled=False)
    # the cell and its total, region, segment, region/segment, manager, manager/segment
    # and rep nodes; r4's SMB cell, whose short history borrows the SMB profile; and r4's
    # rep node, which borrows the total's
    assert third.attrs["refits"] == 10


def test_forecast_cube_cache_with_the_pooled_member(tmp_path):
    """The cross-series member's weights are in every key: one changed cell refits every node."""
    ds = small_cube()
    fc = forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False)
    regular = [str(m) for m in fc["node_model"].values if "pooled_ar" in str(m)]
    assert regular, "the small cube has enough windows for the pooled member"
    again = forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False)
    assert again.attrs["refits"] == 0
    changed = ds.copy(deep=True)
    changed["bookings"].loc[dict(segment="SMB", region="NA", rep="r3", month="2025-06-01")] *= 1.2
    third = forecast_cube(changed, horizon=3, cache_dir=tmp_path, progress=False)
    assert third.attrs["refits"] == third.sizes["node"]


def test_forecast_reconciled_reads_its_fits_from_the_cache_it_is_given(tmp_path, monkeypatch):
    """What `revmodel forecast` runs, with a cache folder: the second run fits nothing and
    writes the same reconciled forecast; no fit lands in the default cache."""
    from revmodel import config

    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "default")
    ds = small_cube()
    settings = rec.SampleSettings(n_samples=100)
    first, note = forecast.forecast_reconciled(
        ds, horizon=3, settings=settings, cache_dir=tmp_path / "fits"
    )
    again, _ = forecast.forecast_reconciled(
        ds, horizon=3, settings=settings, cache_dir=tmp_path / "fits"
    )
    assert first.attrs["refits"] == first.sizes["node"] and again.attrs["refits"] == 0
    assert note == "reconciled with mint_shrink, quantiles from 100 coherent sample paths"
    xr.testing.assert_identical(
        again, first.assign_attrs(refits=0, cache_hits=first.attrs["refits"])
    )
    assert list((tmp_path / "fits").rglob("*.pkl")) and not (tmp_path / "default").exists()


def test_forecast_cube_dask_backed_input_is_identical_to_eager(tmp_path):
    ds = small_cube()
    eager = forecast_cube(ds, horizon=3, cache_dir=tmp_path / "a", progress=False)
    lazy = forecast_cube(ds.chunk({"rep": 2}), horizon=3, cache_dir=tmp_path / "b", progress=False)
    assert lazy.sizes["node"] == 27
    xr.testing.assert_identical(lazy, eager)


def test_forecast_nodes_are_the_hierarchy_rows(tmp_path):
    ds = small_cube()
    fc = forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False)
    hist = ds["bookings"].sel(month=ds["month"] <= np.datetime64("2025-06-01"))
    built = rec.hierarchy_from_cube(hist)
    h = forecast.forecast_hierarchy(fc)
    # one hierarchy, row i = node i: same summing matrix as the cube's, no re-matching
    assert (h.S != built.S).nnz == 0
    np.testing.assert_array_equal(h.labels(), fc["node"].values)
    nf = forecast.node_forecasts(hist, fc)
    np.testing.assert_array_equal(nf.mean, fc["node_mean"].values)
    # each node's history is the sum of its cells' history
    node_hist = fc["node_history"].values
    np.testing.assert_allclose(h.S @ node_hist[h.bottom], node_hist)
    shuffled = fc.isel(node=np.r_[1, 0, 2:27])
    with pytest.raises(DataError, match="the forecast's nodes are not those of its hierarchy"):
        forecast.forecast_hierarchy(shuffled)
    other = hist.where(hist["rep"] != "r3", 0.0)
    with pytest.raises(DataError, match="the forecast lacks some bottom cells of the history"):
        forecast.node_forecasts(other, fc)


def test_forecast_cube_errors():
    ds = small_cube()
    with pytest.raises(
        ParameterError, match="measure 'arr' is not in the cube; available: bookings"
    ):
        forecast_cube(ds, measure="arr")
    with pytest.raises(DataError, match=r"the cube has no attrs\['as_of'\]"):
        forecast_cube(ds.drop_attrs(deep=False))


def test_forecast_command_writes_netcdf(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("revmodel.config.CACHE_DIR", tmp_path / "cache")
    cube = tmp_path / "cube.nc"
    small_cube().to_netcdf(cube)
    out = tmp_path / "fc.nc"
    args = ["forecast", str(cube), "--horizon", "4", "--reconcile", "none", "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "series: 27 (27 fitted, 0 from cache)" in printed
    assert f"base forecasts (not reconciled); written to {out}" in printed
    back = xr.open_dataset(out)
    assert back["node_forecast"].shape == (27, 4, 3)
    missing = ["forecast", str(tmp_path / "nope.nc"), "--horizon", "4", "--out", str(out)]
    assert cli.main(missing) == 2
    assert re.search(
        r"^error: .*nope.nc: no such cube file; build one with `revmodel cube DIR --out nope.nc`\.$",
        capsys.readouterr().err,
        re.M,
    )


@pytest.mark.slow
def test_distributed_path_with_local_cluster(tmp_path):
    rng = np.random.default_rng(6)
    tasks = {i: SeriesTask(seasonal_series(40, rng=rng)) for i in range(6)}
    local, _ = forecast_many(tasks, 4, cache_dir=tmp_path / "a", progress=False)
    dist, counts = forecast_many(
        tasks, 4, cache_dir=tmp_path / "b", progress=False, distributed_threshold=0
    )
    assert counts["refits"] == 6
    for key in tasks:
        np.testing.assert_allclose(dist[key].mean, local[key].mean)
        assert dist[key].reason == local[key].reason


@pytest.mark.slow
def test_forecast_cube_on_a_local_cluster_is_identical_to_in_process(tmp_path):
    ds = small_cube()
    eager = forecast_cube(ds, horizon=3, cache_dir=tmp_path / "a", progress=False)
    dist = forecast_cube(
        ds.chunk({"rep": 2}),
        horizon=3,
        cache_dir=tmp_path / "b",
        progress=False,
        distributed_threshold=0,
    )
    xr.testing.assert_identical(dist, eager)


def test_forecast_command_reconciles(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("revmodel.config.CACHE_DIR", tmp_path / "cache")
    cube = tmp_path / "cube.nc"
    small_cube().to_netcdf(cube)
    out = tmp_path / "fc.nc"
    args = [
        "forecast",
        str(cube),
        "--horizon",
        "3",
        "--reconcile",
        "mint_shrink",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert (
        "reconciled with mint_shrink, quantiles from 500 coherent sample paths; bands "
        "calibrated on 2 past origins (factors: total "
    ) in printed  # calibrated by default
    back = xr.open_dataset(out)
    cal = rec.BandCalibration.from_attrs(back.attrs)
    assert cal is not None and cal.origins == ("2024-12", "2025-03")
    assert f"; {cal.describe()}; written to {out}" in printed
    base = forecast_cube(small_cube(), horizon=3, cache_dir=tmp_path / "cache" / "forecast")
    assert back.attrs["reconcile_method"] == "mint_shrink"
    assert list(back["quantile"].values) == [0.1, 0.5, 0.9]
    # node_forecast: the reconciled forecast at every node, with today's coords and levels
    node = back["node_forecast"]
    assert node.dims == ("node", "month", "quantile")
    assert set(back["level"].values) == {
        "total", "region", "segment", "region/segment", "manager", "manager/segment", "rep",
        "rep/segment",
    }  # fmt: skip
    for coord in ("level", "node_segment", "node_region", "node_manager", "node_rep"):
        assert back[coord].dims == ("node",)
    xr.testing.assert_allclose(back["base_node_forecast"], base["node_forecast"])
    xr.testing.assert_allclose(back["base_forecast"], base["forecast"])
    assert bool((node >= 0).all()) and bool((node.diff("quantile") >= 0).all())
    # the reconciled means add up; the cell quantiles are the bottom nodes' quantiles
    h = forecast.forecast_hierarchy(back)
    mean = back["node_mean"].values
    np.testing.assert_allclose(h.S @ mean[h.bottom], mean, rtol=1e-9)
    cells = back["forecast"].values[h.cells[:, 0], h.cells[:, 1], h.cells[:, 2]]
    np.testing.assert_array_equal(cells, node.values[h.bottom])
    rec_mean = back["reconciled_mean"]
    assert rec_mean.dims == ("segment", "region", "rep", "month")
    np.testing.assert_allclose(
        rec_mean.values[h.cells[:, 0], h.cells[:, 1], h.cells[:, 2]], mean[h.bottom]
    )
    # the total's band brackets its reconciled mean
    total = node.sel(node="total")
    assert bool((total.sel(quantile=0.1) < back["node_mean"].sel(node="total")).all())
    assert bool((total.sel(quantile=0.9) > back["node_mean"].sel(node="total")).all())


def test_forecast_command_says_when_a_reconciliation_stopped_at_its_cap(
    tmp_path, capsys, monkeypatch
):
    """A band whose non-negative solves hit their iteration cap is coherent and >= 0 but not
    the exact solution: the file says so (reconcile_converged 0) and so does the command."""
    from revmodel import reconcile as rc

    monkeypatch.setattr("revmodel.config.CACHE_DIR", tmp_path / "cache")
    cube = tmp_path / "cube.nc"
    small_cube().to_netcdf(cube)
    args = ["forecast", str(cube), "--horizon", "3", "--calibrate-bands", "0", "--out"]
    assert cli.main([*args, str(tmp_path / "fc.nc")]) == 0
    assert forecast.NOT_CONVERGED not in capsys.readouterr().out
    assert xr.open_dataset(tmp_path / "fc.nc").attrs["reconcile_converged"] == 1
    monkeypatch.setattr(rc, "NONNEGATIVE_MAX_ITER", 1)  # one step: paths with bounds stop short
    assert cli.main([*args, str(tmp_path / "capped.nc")]) == 0
    printed = capsys.readouterr().out
    assert forecast.NOT_CONVERGED in printed
    assert forecast.NOT_CONVERGED == (
        "warning: the non-negative reconciliation stopped at its iteration cap for some months "
        "or sample paths; those are coherent and >= 0 but not the exact reconciled solution "
        "(attribute reconcile_converged = 0)"
    )
    capped = xr.open_dataset(tmp_path / "capped.nc")
    assert capped.attrs["reconcile_converged"] == 0
    node = capped["node_forecast"]
    assert bool((node >= 0).all()) and bool((node.diff("quantile") >= 0).all())
