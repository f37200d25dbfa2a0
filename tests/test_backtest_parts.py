"""The pieces rolling_origin is made of, each checked on its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import backtest, forecast
from revmodel.errors import ParameterError

MONTHS = pd.date_range("2025-01-01", periods=6, freq="MS")


def cube() -> xr.Dataset:
    """1 segment x 1 region x 2 reps x 6 months: r1 sells from the start, r2 from month 5."""
    v = np.zeros((1, 1, 2, 6))
    v[0, 0, 0] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    v[0, 0, 1, 4:] = [7.0, 8.0]
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), v)},
        coords={
            "segment": ["SMB"],
            "region": ["EMEA"],
            "rep": ["r1", "r2"],
            "month": MONTHS,
            "manager": ("rep", ["m1", "m1"]),
        },
        attrs={"as_of": "2025-06-01"},
    )


def test_check_backtest_names_the_bad_argument():
    with pytest.raises(
        ParameterError, match="backtest: measure 'arr' is not in the cube; available: bookings"
    ):
        backtest._check_backtest(cube(), "arr", "mint_shrink")
    with pytest.raises(ParameterError, match="backtest: unknown reconciliation method 'magic'"):
        backtest._check_backtest(cube(), "bookings", "magic")


def test_measure_only_keeps_the_measure_attrs_and_managers():
    ds = cube().assign(other=lambda d: d["bookings"] * 2)
    da, base = backtest._measure_only(ds, "bookings")
    assert da.dims == ("segment", "region", "rep", "month")
    assert list(base.data_vars) == ["bookings"]
    assert base.attrs == {"as_of": "2025-06-01"}
    assert base["manager"].values.tolist() == ["m1", "m1"]


def test_new_cells_counts_cells_first_sold_after_the_origin():
    ds = cube()
    da = ds["bookings"]
    # origin 2025-03: r2 has nothing before it and sells in the window
    fold = backtest._make_fold(da, MONTHS, 0, MONTHS[2], 3)
    assert backtest._new_cells(fold) == 1
    late = backtest._make_fold(da, MONTHS, 0, MONTHS[4], 1)
    assert backtest._new_cells(late) == 0


def test_fold_run_needs_the_statistical_forecast_only_for_its_models():
    only_naive = backtest._FoldRun({"seasonal_naive": backtest.SeasonalNaive()}, "ols", 3)
    assert not only_naive.needs_statistical
    with_base = backtest._FoldRun(
        {"seasonal_naive": backtest.SeasonalNaive(), "base": backtest.BaseForecast()}, "ols", 3
    )
    assert with_base.needs_statistical


def test_forecast_options_reach_forecast_cube(monkeypatch, tmp_path):
    seen = {}

    def spy(ds, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(forecast, "forecast_cube", spy)
    da, base = backtest._measure_only(cube(), "bookings")
    fold = backtest._make_fold(da, MONTHS, 0, MONTHS[2], 3)
    settings = backtest.BacktestSettings(
        "bookings", "auto", backtest.ForecastOptions(tmp_path, False, 3, None)
    )
    with pytest.raises(RuntimeError, match="stop"):
        backtest._statistical(base, fold, 3, settings)
    assert seen == {
        "measure": "bookings",
        "horizon": 3,
        "method": "auto",
        "cache_dir": tmp_path,
        "progress": False,
        "n_workers": 3,
        # no threshold given: forecast_cube's own default
        "distributed_threshold": forecast.DISTRIBUTED_THRESHOLD,
    }
    with pytest.raises(AttributeError):
        settings.forecast_options.n_workers = 1  # frozen
