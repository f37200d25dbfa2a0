"""The KPI catalogue on the cube by populated cell gives what it gives on the dense cube,
without ever spreading the cells over every segment x region x rep series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import cube, kpi, retention


@pytest.fixture(scope="module")
def cubes(small_company):
    tables, _ = small_company
    dense = cube.build_cube(tables, fiscal_year_start=2, currency="EUR")
    cells = cube.build_cube(tables, fiscal_year_start=2, currency="EUR", layout="cells")
    return tables, dense, cells


@pytest.fixture(scope="module")
def inputs(cubes):
    _, dense, _ = cubes
    n_months = dense.sizes["month"]
    quota = pd.DataFrame(
        {
            "rep": np.repeat(dense["rep"].values, n_months),
            "month": np.tile(dense["month"].values, dense.sizes["rep"]),
            "quota": 40_000.0,
        }
    )
    costs = pd.DataFrame({"month": dense["month"].values, "cost": 250_000.0})
    return quota, costs


@pytest.mark.parametrize(
    "dims", [(), ("region",), ("segment", "region"), ("rep",), ("manager",), ("rep_segment",)]
)
def test_every_kpi_on_cells_is_the_dense_one(cubes, inputs, dims, monkeypatch):
    tables, dense, cells = cubes
    quota, costs = inputs
    extra = {"tables": tables}
    if dims in ((), ("region",), ("rep",), ("manager",)):  # levels a quota by rep rolls up to
        extra["quota"] = quota
    if dims == ():
        extra["costs"] = costs
    expected = kpi.compute(dense, dims=dims, period="fiscal_quarter", **extra)

    def refuse(ds):
        raise AssertionError("the cells were spread over every series")

    monkeypatch.setattr(cube, "unstack_cells", refuse)
    got = kpi.compute(cells, dims=dims, period="fiscal_quarter", **extra)
    xr.testing.assert_identical(got, expected)
    shown = set(got.data_vars)
    assert {"arr", "customers", "dso", "backlog", "sales_cycle", "win_rate"} <= shown
    if dims in ((), ("region",), ("rep",), ("manager",)):
        assert {"pipeline_coverage", "quota_attainment"} <= shown
    assert ("cac" in shown) == (dims == ())


def test_cell_kpis_agree_with_the_deals_counted_by_hand(cubes):
    """Win rate and sales cycle of a fiscal year, and customers by region, from the rows."""
    tables, _, cells = cubes
    k = kpi.compute(cells, ["win_rate", "sales_cycle"], period="fiscal_year", tables=tables).sel(
        fiscal_year="FY2026"
    )
    opps = tables["opportunities"]
    close = pd.to_datetime(opps["close_date"])
    # FY2026 starting in February: Feb 2025 - Jan 2026 (all before as_of)
    in_year = (close >= "2025-02-01") & (close < "2026-02-01")
    won, lost = in_year & (opps["stage"] == "won"), in_year & (opps["stage"] == "lost")
    assert float(k["win_rate"]) == pytest.approx(won.sum() / (won.sum() + lost.sum()), rel=1e-12)
    timed = opps[won & opps["created_date"].notna()]
    days = (close[timed.index] - pd.to_datetime(timed["created_date"])).dt.days.clip(lower=0)
    assert float(k["sales_cycle"]) == pytest.approx(days.mean(), rel=1e-12)


def test_table_measures_of_a_rolled_up_cube_come_by_its_own_dims(cubes):
    """Customers and receivables summed straight to regions: the dense cells' sums."""
    tables, dense, cells = cubes
    by_region = cube.rollup(cells, ("region",), "month")
    members = retention.series_members(cells)
    customers = retention.customer_measures(by_region, tables, members=members)["customers"]
    assert customers.dims == ("region", "month")
    dense_customers = retention.customer_measures(dense, tables)["customers"]
    xr.testing.assert_equal(
        customers, dense_customers.sum(["segment", "rep"], min_count=1).transpose(*customers.dims)
    )
    receivables = kpi.finance_measures(by_region, tables, members)["receivables"]
    assert receivables.dims == ("region", "month")
    dense_receivables = kpi.finance_measures(dense, tables)["receivables"]
    np.testing.assert_allclose(
        receivables.values,
        dense_receivables.sum(["segment", "rep"], min_count=1).transpose(*receivables.dims).values,
        rtol=1e-12,
    )


def test_the_cube_summary_of_cells_is_the_dense_one(cubes, monkeypatch):
    _, dense, cells = cubes
    expected = kpi.cube_summary(dense)
    monkeypatch.setattr(cube, "unstack_cells", lambda ds: pytest.fail("cells spread out"))
    assert kpi.cube_summary(cells) == expected
    assert "Churn rate (gross revenue churn, last 12 months): " in expected
