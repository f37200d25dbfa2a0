"""The pieces forecast_series and forecast_cube are made of, each checked on its own."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import forecast, models


def test_fill_gaps_interpolates_inside_and_carries_the_last_value_forward():
    z, notes = forecast._fill_gaps(np.array([2.0, np.nan, np.nan, 8.0, np.nan]))
    # 2 -> 8 over three steps is 2, 4, 6, 8; the trailing month repeats 8
    np.testing.assert_array_equal(z, [2.0, 4.0, 6.0, 8.0, 8.0])
    assert notes == [
        "2 NaN months interpolated",
        "1 trailing NaN months filled with the last value",
    ]


def test_fill_gaps_leaves_a_complete_series_alone():
    y = np.array([1.0, 0.0, 3.0])
    z, notes = forecast._fill_gaps(y)
    np.testing.assert_array_equal(z, y)
    assert notes == []


def test_prepare_history_drops_leading_nan_and_zero_months():
    y = np.array([np.nan, np.nan, 0.0, 0.0, 5.0, 0.0, 5.0, 0.0])
    s = forecast._prepare_history(y, nonnegative=True)
    np.testing.assert_array_equal(s.z, [5.0, 0.0, 5.0, 0.0])
    assert s.offset == 4  # z[0] is y[4]
    assert s.n_in == 8
    assert s.notes == ("2 leading zero months dropped",)
    assert (s.n, s.nonzero, s.adi) == (4, 2, 2.0)  # ADI = 4 months / 2 with demand
    assert s.intermittent  # 2.0 >= 1.32, no negative month
    assert not s.all_zero


def test_prepare_history_of_zeros_is_all_zero():
    s = forecast._prepare_history(np.array([np.nan, 0.0, 0.0]), nonnegative=True)
    assert s.all_zero and s.n == 0 and s.offset == 1


def test_negative_months_rule_out_croston():
    s = forecast._prepare_history(np.array([4.0, 0.0, -1.0, 0.0, 0.0, 3.0]), nonnegative=False)
    assert s.additive_only
    assert s.adi == pytest.approx(2.0)
    assert not s.intermittent


@pytest.mark.parametrize(
    ("y", "model", "reason"),
    [
        ([0.0, 0.0, 0.0], "zero", "all-zero history: zero forecast"),
        ([3.0, 3.0, 3.0, 3.0], "constant", "constant series (3): flat forecast"),
        ([5.0] + [1.0] * 5 + [0.0] * 6, "zero", "inactive: last 6 months zero: zero forecast"),
    ],
)
def test_trivial_forecast(y, model, reason):
    s = forecast._prepare_history(np.array(y), nonnegative=True)
    out = forecast._trivial_forecast(s, 3, (0.1, 0.9))
    assert (out.model_name, out.reason) == (model, reason)
    value = 3.0 if model == "constant" else 0.0
    np.testing.assert_array_equal(out.mean, [value] * 3)
    np.testing.assert_array_equal(out.quantiles, np.full((2, 3), value))


def test_trivial_forecast_leaves_a_regular_series_to_the_models():
    s = forecast._prepare_history(np.array([1.0, 2.0, 3.0, 2.0]), nonnegative=True)
    assert forecast._trivial_forecast(s, 3, (0.5,)) is None


def test_mean_forecast_of_a_short_series():
    s = forecast._prepare_history(np.array([np.nan, 2.0, 4.0]), nonnegative=True)
    out = forecast._mean_forecast(s, 2, (0.5,))
    np.testing.assert_array_equal(out.mean, [3.0, 3.0])
    np.testing.assert_allclose(out.quantiles, [[3.0, 3.0]])  # the median of a normal is its mean
    assert out.reason == "only 2 months of history: mean of the months observed"
    assert out.residuals.shape == (3,) and np.isnan(out.residuals).all()


def test_primary_model_follows_the_rules_in_order():
    long = forecast._prepare_history(np.arange(1.0, 31.0), nonnegative=True)
    short = forecast._prepare_history(np.arange(1.0, 11.0), nonnegative=True)
    sparse = forecast._prepare_history(np.tile([4.0, 0.0, 0.0], 10), nonnegative=True)
    args = dict(h=3, season_length=12, profile=None, model=None, min_history=24)
    assert forecast._primary_model(sparse, method="auto", **args)[0].name == "croston_sba"
    model, why = forecast._primary_model(short, method="auto", **args)
    assert why == (
        "short history (10 months < 24), no parent seasonal profile: "
        "non-seasonal level/trend by SES and damped Holt"
    )
    assert forecast._primary_model(long, method="auto", **args)[1] == "default method"
    assert forecast._primary_model(long, method="ets", **args)[1] == "method 'ets' requested"


def test_a_failing_model_hands_over_to_the_next():
    class Broken:
        name = "broken"

        def fit_predict(self, y, h, m, q=None):
            raise ValueError("no fit")

    s = forecast._prepare_history(np.arange(1.0, 31.0), nonnegative=True)
    from revmodel import models

    out = forecast._fit_first_working(
        [Broken(), models.SES()], s, 2, 12, (0.5,), "given", ["a note"]
    )
    assert out.fallbacks == ("broken: ValueError: no fit",)
    assert out.reason == "ses chosen as fallback after 1 failed model(s) (given); a note"
    none_left = forecast._fit_first_working([Broken()], s, 2, 12, (0.5,), "given", [])
    assert none_left.model_name == "failed"
    assert none_left.reason == "every model failed (given): broken: ValueError: no fit"
    assert np.isnan(none_left.mean).all()


def test_fit_settings_enter_the_cache_key_as_sorted_json():
    settings = forecast.FitSettings(6, (0.1, 0.9), 12, "auto", 24)
    assert json.loads(settings.cache_text()) == {
        "h": 6,
        "quantiles": [0.1, 0.9],
        "season_length": 12,
        "method": "auto",
        "min_history": 24,
        "pooled": None,
    }
    task = forecast.SeriesTask(np.arange(5.0))
    other = forecast.FitSettings(7, (0.1, 0.9), 12, "auto", 24)
    assert forecast._cache_key(task, settings) != forecast._cache_key(task, other)
    # the cross-series member enters by the digest of its weights
    weights = np.arange(12.0 * 6).reshape(12, 6) / 100
    pooled = models.PooledAR(weights, n_windows=300, n_series=10)
    with_pool = forecast.FitSettings(6, (0.1, 0.9), 12, "auto", 24, pooled)
    assert json.loads(with_pool.cache_text())["pooled"] == pooled.digest()
    moved = models.PooledAR(weights + 1e-6, n_windows=300, n_series=10)
    moved_key = forecast._cache_key(
        task, forecast.FitSettings(6, (0.1, 0.9), 12, "auto", 24, moved)
    )
    assert (
        len({forecast._cache_key(task, settings), forecast._cache_key(task, with_pool), moved_key})
        == 3
    )
    with pytest.raises(AttributeError):
        settings.h = 3  # frozen


def _cube(end_dates, manager=True):
    months = pd.date_range("2025-01-01", periods=4, freq="MS")
    ds = xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), np.ones((1, 1, 2, 4)))},
        coords={
            "segment": ["SMB"],
            "region": ["EMEA"],
            "rep": ["r1", "r2"],
            "month": months,
            "end_date": ("rep", pd.to_datetime(end_dates)),
        },
        attrs={"as_of": "2025-03-01"},
    )
    if manager:
        ds = ds.assign_coords(manager=("rep", ["m1", "m2"]))
    return ds


def test_reps_ended_counts_an_end_date_inside_the_as_of_month():
    ds = _cube(["2025-03-31", "2025-04-01"])
    ended = forecast._reps_ended(ds, pd.Timestamp("2025-03-01"))
    np.testing.assert_array_equal(ended, [True, False])
    no_dates = ds.drop_vars("end_date")
    np.testing.assert_array_equal(
        forecast._reps_ended(no_dates, pd.Timestamp("2025-03-01")), [False, False]
    )


def test_rep_managers_fall_back_to_the_placeholder():
    from revmodel import config

    np.testing.assert_array_equal(forecast._rep_managers(_cube([None, None])), ["m1", "m2"])
    unnamed = forecast._rep_managers(_cube([None, None], manager=False))
    np.testing.assert_array_equal(unnamed, [config.PLACEHOLDER] * 2)


def test_history_to_keeps_the_months_up_to_as_of():
    da = forecast._history_to(_cube([None, None]), "bookings", pd.Timestamp("2025-03-01"))
    assert da.dims == ("segment", "region", "rep", "month")
    assert [f"{m:%Y-%m}" for m in pd.DatetimeIndex(da["month"].values)] == [
        "2025-01",
        "2025-02",
        "2025-03",
    ]
    with pytest.raises(Exception, match="the cube holds no months up to as_of 2024-12"):
        forecast._history_to(_cube([None, None]), "bookings", pd.Timestamp("2024-12-01"))


def test_check_cube_names_what_is_missing():
    ds = _cube([None, None])
    with pytest.raises(Exception, match="measure 'arr' is not in the cube; available: bookings"):
        forecast._check_cube(ds, "arr")
    ds.attrs = {}
    with pytest.raises(Exception, match=r"the cube has no attrs\['as_of'\]"):
        forecast._check_cube(ds, "bookings")


def test_run_counts():
    ok = forecast.SeriesForecast(np.zeros(1), np.zeros((1, 1)), (0.5,), "SES", "", ("x: e",))
    bad = forecast.SeriesForecast(np.zeros(1), np.zeros((1, 1)), (0.5,), "failed", "")
    counts = {"series": 2, "refits": 1, "cache_hits": 1}
    assert forecast._run_counts(counts, [ok, bad]) == {
        "n_series": 2,
        "refits": 1,
        "cache_hits": 1,
        "n_fallbacks": 1,
        "n_failed": 1,
    }


def test_a_leavers_own_nodes_end_with_him_and_do_not_pull_his_cells_up(tmp_path):
    """r1 left at the origin, selling in two segments under his own manager m1: his cells,
    his rep node and m1's nodes forecast 0 (their model says they left), so the reconciled
    forecast keeps every one of his cells at 0 (the total's adds up to r2's cells)."""
    months = pd.date_range("2023-01-01", periods=30, freq="MS")
    rng = np.random.default_rng(0)
    sales = 1000.0 + rng.gamma(4.0, 100.0, (2, 1, 2, 30))
    ds = xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), sales)},
        coords={
            "segment": ["Enterprise", "SMB"],
            "region": ["EMEA"],
            "rep": ["r1", "r2"],
            "month": months,
            "end_date": ("rep", pd.to_datetime(["2025-06-15", None])),
            "manager": ("rep", ["m1", "m2"]),
        },
        attrs={"as_of": "2025-06-01"},
    )
    fc = forecast.forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False)
    left = "left (end date on or before the forecast origin): zero forecast"
    reasons = dict(zip(fc["node"].values, fc["node_reason"].values, strict=True))
    for node in (
        "rep=r1", "manager=m1", "manager/segment=m1/Enterprise",
        "manager/segment=m1/SMB", "rep/segment=r1/Enterprise/EMEA", "rep/segment=r1/SMB/EMEA",
    ):  # fmt: skip
        assert reasons[node] == left, node
        np.testing.assert_array_equal(fc["node_mean"].sel(node=node), 0.0)
    assert reasons["rep=r2"] != left and reasons["total"] != left
    out, _ = forecast.reconcile_dataset(fc, method="mint_shrink")
    # (to a thousandth of a dollar: the total, forecast from both reps' history, still asks
    # for more; the reconciler gives it to r2's cells, whose errors are the ones that vary)
    np.testing.assert_allclose(out["reconciled_mean"].sel(rep="r1"), 0.0, atol=1e-3)
    np.testing.assert_allclose(out["forecast"].sel(rep="r1"), 0.0, atol=1e-3)
    np.testing.assert_allclose(
        out["node_mean"].sel(node="total"),
        out["reconciled_mean"].sum(("segment", "region", "rep")),
        rtol=1e-9,
    )
