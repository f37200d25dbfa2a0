"""Time aggregation in the cube contract: flows add up, ARR is the period-end value.

Every figure is checked against one computed in the test from the tables
(subscription terms, won deals) with pandas, not through the cube's roll-up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import calendar as fcal
from revmodel import sample
from revmodel.cube import MEASURES, aggregation, build_cube, rollup
from revmodel.errors import ParameterError

LEVELS = [(), ("rep",), ("manager",), ("region",), ("segment",), ("rep_region",)]
PERIODS = ["fiscal_quarter", "fiscal_year"]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return sample.generate(reps=16, months=30)


@pytest.fixture(scope="module", params=["sample-november", "april-partial"])
def case(request, tables):
    """The sample's calendar, and an April fiscal year cut mid-quarter by as_of."""
    if request.param == "sample-november":
        ds = build_cube(tables, fiscal_year_start=11)
    else:
        last = pd.Timestamp(build_cube(tables).attrs["as_of"])
        # Two months before the data's end: the last fiscal quarter and year are partial.
        as_of = last - pd.DateOffset(months=2)
        if (as_of.month - 4) % 3 == 2:  # a quarter end: move one month back
            as_of -= pd.DateOffset(months=1)
        ds = build_cube(tables, fiscal_year_start=4, as_of=as_of)
    return tables, ds


def _expected_arr_total(tables, ds, period: str) -> pd.Series:
    """ARR at the last month with actuals of each period, from the subscription terms."""
    subs = tables["subscriptions"]
    months = pd.DatetimeIndex(ds["month"].values)
    as_of = pd.Timestamp(ds.attrs["as_of"])
    labels = pd.Series(np.asarray(ds[period].values).astype(str), index=months)
    ends = labels[months <= as_of].groupby(level=0).first()
    ends = pd.Series(ends.index, index=ends.values).groupby(level=0).max()
    start = subs["start_date"].dt.to_period("M").dt.to_timestamp()
    end = subs["end_date"].dt.to_period("M").dt.to_timestamp()
    out = {}
    for label, month in ends.items():
        active = (start <= month) & (end.isna() | (end > month))
        out[label] = float(subs.loc[active, "arr"].sum())
    return pd.Series(out)


@pytest.mark.parametrize("period", PERIODS)
def test_arr_of_a_period_is_its_last_month_with_actuals_total(case, period):
    tables, ds = case
    got = rollup(ds["arr"], period=period).to_series().dropna()
    expected = _expected_arr_total(tables, ds, period)
    pd.testing.assert_series_equal(
        got.sort_index(), expected.sort_index(), check_names=False, check_index_type=False
    )
    assert rollup(ds["arr"], period=period).attrs["units"] == "USD/year"


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("level", LEVELS)
def test_arr_at_every_level_is_the_last_month(case, level, period):
    """Independent path: pick each period's last actual month, then group with pandas."""
    _, ds = case
    as_of = np.datetime64(pd.Timestamp(ds.attrs["as_of"]), "ns")
    frame = ds["arr"].sel(month=slice(None, as_of)).to_dataframe().reset_index()
    frame["label"] = frame[period].astype(str)
    last = frame.groupby("label")["month"].transform("max")
    frame = frame[frame["month"] == last]
    keys = ["label", *level]
    expected = frame.groupby(keys)["arr"].sum().sort_index()
    got = rollup(ds, level, period)["arr"].to_series().dropna()
    got.index = got.index.set_names(["label" if n == period else n for n in got.index.names])
    got = got.reorder_levels(keys) if len(keys) > 1 else got
    pd.testing.assert_series_equal(
        got.sort_index(), expected, check_names=False, check_index_type=False
    )


@pytest.mark.parametrize("period", PERIODS)
def test_flows_sum_over_the_period(case, period):
    tables, ds = case
    opps = tables["opportunities"]
    as_of = pd.Timestamp(ds.attrs["as_of"])
    won = opps[opps["stage"] == "won"].copy()
    won["month"] = won["close_date"].dt.to_period("M").dt.to_timestamp()
    won = won[(won["month"] >= ds["month"].values[0]) & (won["month"] <= as_of)]
    won["label"] = fcal.month_coords(
        pd.DatetimeIndex(won["month"]), ds.attrs["fiscal_year_start"], "end"
    )[period]
    expected = won.groupby("label")["amount"].sum()
    got = rollup(ds["bookings"], period=period).to_series().dropna()
    np.testing.assert_allclose(got.reindex(expected.index).to_numpy(), expected.to_numpy())
    unit = "quarter" if period == "fiscal_quarter" else "year"
    assert rollup(ds, period=period)["bookings"].attrs["units"] == f"USD/{unit}"


def test_partial_last_period_takes_the_last_month_with_actuals(tables):
    ds = build_cube(tables, fiscal_year_start=4, as_of="2026-08-15")
    q = rollup(ds, "region", period="fiscal_quarter")
    # FY2027-Q2 (Jul-Sep 2026) has actuals for July and August only.
    aug = ds["arr"].sel(month="2026-08-01").sum(["segment", "rep"])
    got = q["arr"].sel(fiscal_quarter="FY2027-Q2", drop=True)
    np.testing.assert_array_equal(got.values, aug.values)
    assert float(got.sum()) > 0
    jul_aug = (
        ds["bookings"].sel(month=slice("2026-07-01", "2026-08-01")).sum(["segment", "rep", "month"])
    )
    np.testing.assert_allclose(q["bookings"].sel(fiscal_quarter="FY2027-Q2").values, jul_aug.values)
    # A quarter wholly after as_of has no stock and no flow.
    later = [p for p in q["fiscal_quarter"].values if p > "FY2027-Q2"]
    assert later and bool(q["arr"].sel(fiscal_quarter=later).isnull().all())


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize(
    "level", [(), pytest.param(("manager",), marks=pytest.mark.slow), ("rep",)]
)
def test_dask_backed_cube_rolls_up_identically(case, level, period):
    _, ds = case
    lazy = rollup(ds.chunk({"rep": 5}), level, period)
    xr.testing.assert_identical(lazy.compute(), rollup(ds, level, period))


def test_every_measure_declares_its_aggregation(case):
    _, ds = case
    stocks = {n for n, m in MEASURES.items() if m.aggregation == "last"}
    assert stocks == {"arr"}
    for name in MEASURES:
        assert ds[name].attrs["aggregation"] == MEASURES[name].aggregation
    flows = {"bookings", "won", "lost", "new_arr", "expansion_arr", "contraction_arr"}
    flows |= {"new_bookings", "expansion_bookings", "renewal_bookings"}
    assert flows | {"churned_arr", "pipeline"} == {n for n in MEASURES if n not in stocks}


def test_a_string_is_one_level(case):
    _, ds = case
    xr.testing.assert_identical(
        rollup(ds, "region", "fiscal_year"), rollup(ds, ("region",), "fiscal_year")
    )
    xr.testing.assert_identical(ds.rev.rollup("region"), rollup(ds, ("region",)))


def test_unknown_level_lists_the_valid_ones(case):
    _, ds = case
    with pytest.raises(ParameterError) as err:
        rollup(ds, "regions")
    assert str(err.value) == (
        "rollup: unknown level 'regions'; use any of segment, region, rep, manager, "
        "rep_region, rep_segment."
    )


def test_a_measure_without_an_aggregation_is_refused(case):
    _, ds = case
    odd = (ds["arr"] * 2).rename("score")
    odd.attrs = {"units": "points"}
    with pytest.raises(ParameterError) as err:
        rollup(odd, period="fiscal_year")
    assert str(err.value) == (
        "rollup: measure 'score' does not say how it aggregates over time: set "
        "attrs['aggregation'] to 'sum' (a flow, e.g. bookings) or 'last' (a stock, e.g. ARR)."
    )
    assert aggregation(odd.assign_attrs(aggregation="last")) == "last"


def test_ratios_are_recomputed_from_their_parts(case):
    _, ds = case
    parts = ds[["won", "lost"]].assign(closed=ds["won"] + ds["lost"])
    parts["closed"].attrs = {"units": "deals/month", "aggregation": "sum"}
    rate = (parts["won"] / parts["closed"]).assign_attrs(
        aggregation="ratio", numerator="won", denominator="closed", units="1"
    )
    out = rollup(parts.assign(win_rate=rate), "region", "fiscal_year")
    expected = out["won"] / out["closed"].where(out["closed"] != 0)
    np.testing.assert_allclose(out["win_rate"].values, expected.values)
    with pytest.raises(ParameterError, match="is a ratio; roll up its parts"):
        rollup(rate.rename("win_rate"), period="fiscal_year")
