"""The plan (capacity, quotas) on the cube by populated cell gives what it gives on the dense cube."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import capacity, quota
from revmodel.assumptions import Assumptions
from revmodel.cube import build_cube


@pytest.fixture(scope="module")
def cubes(small_company):
    tables, _ = small_company
    dense = build_cube(tables, fiscal_year_start=2, currency="EUR")
    cells = build_cube(tables, fiscal_year_start=2, currency="EUR", layout="cells")
    return dense, cells


def test_plan_inputs_of_cells_equal_the_dense_ones(cubes):
    dense, cells = cubes
    assert "cell" in cells.dims and cells.sizes["cell"] < (
        dense.sizes["segment"] * dense.sizes["region"] * dense.sizes["rep"]
    )
    inputs = capacity.plan_inputs(cells)
    xr.testing.assert_identical(inputs, capacity.plan_inputs(dense))
    # the company's bookings in the history window, added up here from the cells
    window = inputs.attrs["history_window"]
    in_window = (cells["fiscal_year"] == window).values & (
        pd.DatetimeIndex(cells["month"].values) <= pd.Timestamp(cells.attrs["as_of"])
    )
    by_hand = float(np.nansum(cells["bookings"].values[:, in_window]))
    assert in_window.sum() == 12
    assert inputs.attrs["last_year_bookings"] == pytest.approx(by_hand, rel=1e-12)


def test_capacity_plan_and_quotas_on_cells_equal_the_dense_ones(cubes):
    dense, cells = cubes
    a = Assumptions()
    xr.testing.assert_identical(capacity.capacity_plan(cells, a), capacity.capacity_plan(dense, a))
    plan_cells, plan_dense = quota.top_down(cells, a), quota.top_down(dense, a)
    xr.testing.assert_identical(plan_cells, plan_dense)
    assert float(plan_cells["quota"].sum()) > 0
