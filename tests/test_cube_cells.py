"""The cube by populated cell: memory follows the cells that hold data, answers stay the same.

The company here is shaped like a real export rather than the sample: reps sell
into several segments and regions (a deal's own labels win over its account's),
a rep on the roster has no deal yet, one deal has no rep, the fiscal year starts
in February and amounts are in euros.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import cube, forecast
from revmodel.cube import build_cube, rollup, stack_cells, unstack_cells
from revmodel.errors import ParameterError

T = pd.Timestamp
NaT = pd.NaT


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R3", "R4"],
            "rep_name": ["Ann", "Bob", "Cy", "Di"],
            "manager": ["M1", "M1", "M2", "M2"],
            "region": ["DACH", "DACH", "Nordics", "Nordics"],
            "segment": ["KMU", "KMU", "Konzern", "KMU"],
            "hire_date": [T("2022-01-01"), T("2022-05-01"), T("2023-09-01"), T("2025-06-01")],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "segment": ["KMU", "Konzern", "KMU", "Konzern"],
            "region": ["DACH", "DACH", "Nordics", "Nordics"],
            "owner_rep_id": ["R1", "R1", "R3", "R3"],
        }
    )
    close = [
        "2024-03-05", "2024-03-20", "2024-07-01", "2024-11-30", "2025-01-10",
        "2025-02-14", "2025-04-01", "2025-05-01", "2025-05-20", "2025-08-15",
    ]  # fmt: skip
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"O{i}" for i in range(1, 11)],
            "close_date": pd.to_datetime(close),
            "amount": [100.0, 40.0, 250.0, 60.0, 75.0, 300.0, 20.0, 90.0, 500.0, 130.0],
            "stage": ["won", "lost", "won", "won", "won", "won", "lost", "won", "open", "open"],
            "account_id": ["A1", "A1", "A2", "A3", "A4", "A2", "A3", "A1", "A4", "A2"],
            "rep_id": ["R1", "R1", "R1", "R3", "R3", "R2", "R3", None, "R3", "R2"],
        }
    )
    subs = pd.DataFrame(
        {
            "subscription_id": ["S1", "S2", "S3"],
            "account_id": ["A1", "A2", "A4"],
            "start_date": [T("2024-03-05"), T("2024-07-01"), T("2025-01-10")],
            "end_date": [T("2025-03-05"), NaT, NaT],
            "arr": [1200.0, 3000.0, 900.0],
        }
    )
    return {"reps": reps, "accounts": accounts, "opportunities": opps, "subscriptions": subs}


def build(tables, layout):
    return build_cube(tables, fiscal_year_start=2, as_of="2025-05", currency="EUR", layout=layout)


@pytest.fixture
def dense(tables) -> xr.Dataset:
    return build(tables, "dense")


@pytest.fixture
def cells(tables) -> xr.Dataset:
    return build(tables, "cells")


def test_cells_are_the_series_a_deal_or_a_subscribed_account_falls_in(tables, dense, cells):
    # Worked out from the tables: a deal's cell is its account's segment and region
    # (the deals have no labels of their own) and its rep; a subscription's is its
    # account's segment, region and owner. The deal without a rep is in the placeholder rep.
    acc = tables["accounts"].set_index("account_id")
    opps = tables["opportunities"]
    deal_cells = {
        (acc.loc[a, "segment"], acc.loc[a, "region"], r if isinstance(r, str) else "(none)")
        for a, r in zip(opps["account_id"], opps["rep_id"], strict=True)
    }
    sub_cells = {
        (acc.loc[a, "segment"], acc.loc[a, "region"], acc.loc[a, "owner_rep_id"])
        for a in tables["subscriptions"]["account_id"]
    }
    stored = set(
        zip(
            cells["cell_segment"].values,
            cells["cell_region"].values,
            cells["cell_rep"].values,
            strict=True,
        )
    )
    placeholder = dense["rep"].values[-1]  # the rep member of the deal without a rep
    expected = {(s, g, placeholder if r == "(none)" else r) for s, g, r in deal_cells | sub_cells}
    assert stored == expected
    assert cells.sizes["cell"] == 6
    # 2 segments x 2 regions x 5 reps dense: 20 series, of which 6 hold data.
    assert dense.sizes["segment"] * dense.sizes["region"] * dense.sizes["rep"] == 20
    assert cells["bookings"].nbytes * 20 == dense["bookings"].nbytes * 6
    # Every member stays, with its coordinates: Di has no deal yet and is still a rep.
    assert "R4" in cells["rep"].values
    assert cells["manager"].sel(rep="R4").item() == "M2"


def test_cells_hold_the_figures_worked_out_by_hand(cells):
    def at(var, seg, reg, rep, month):
        pick = (
            (cells["cell_segment"] == seg)
            & (cells["cell_region"] == reg)
            & (cells["cell_rep"] == rep)
        )
        return float(cells[var].sel(month=np.datetime64(T(month), "ns"))[pick.values].item())

    assert at("bookings", "Konzern", "DACH", "R1", "2024-07-01") == 250.0
    assert at("bookings", "Konzern", "DACH", "R2", "2025-02-01") == 300.0
    assert at("lost", "KMU", "DACH", "R1", "2024-03-01") == 1.0
    assert at("pipeline", "Konzern", "Nordics", "R3", "2025-05-01") == 500.0
    assert at("arr", "Konzern", "DACH", "R1", "2025-05-01") == 3000.0
    assert np.isnan(at("bookings", "Konzern", "DACH", "R2", "2025-08-01"))  # after as_of
    assert at("pipeline", "Konzern", "DACH", "R2", "2025-08-01") == 130.0
    assert cells["bookings"].attrs["units"] == "EUR/month"


def test_unstacking_the_cells_gives_the_dense_cube(dense, cells):
    xr.testing.assert_identical(unstack_cells(cells), dense)
    xr.testing.assert_identical(unstack_cells(stack_cells(dense)), dense)
    # stacking keeps a series only where some measure differs from an empty one
    assert stack_cells(dense).sizes["cell"] == 6
    cube.validate_cube(cells)


LEVELS = [
    (),
    "segment",
    "region",
    ("segment", "region"),
    "rep",
    ("region", "rep"),
    ("segment", "region", "rep"),
    "manager",
    "rep_region",
    ("segment", "rep_segment"),
]


@pytest.mark.parametrize("period", ["month", "fiscal_quarter", "fiscal_year"])
@pytest.mark.parametrize("levels", LEVELS)
def test_rollups_of_the_cells_are_those_of_the_dense_cube(dense, cells, levels, period):
    xr.testing.assert_identical(rollup(cells, levels, period), rollup(dense, levels, period))


def test_accessor_rolls_up_a_cells_cube(dense, cells):
    got = cells.rev.rollup("manager", period="fiscal_year")
    xr.testing.assert_identical(got, dense.rev.rollup("manager", period="fiscal_year"))
    # FY2025 (Feb 2024 - Jan 2025), manager M1: 100 + 250 won by Ann.
    assert float(got["bookings"].sel(manager="M1", fiscal_year="FY2025")) == 350.0


def test_a_measure_alone_of_a_cells_cube_is_refused_with_the_way_out(cells):
    with pytest.raises(ParameterError) as err:
        rollup(cells["bookings"], "region")
    assert str(err.value) == (
        "rollup: this measure is stored by populated cell (the cube's 'cells' layout); "
        "roll up the cube Dataset, or revmodel.cube.unstack_cells(ds) first."
    )


def test_unknown_layout_is_a_clear_error(tables):
    with pytest.raises(ParameterError, match="layout must be one of dense, cells, got 'sparse'"):
        build_cube(tables, layout="sparse")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cells_cube_saves_and_loads(cells, tmp_path, suffix):
    path = cube.save_cube(cells, tmp_path / f"cube{suffix}")
    xr.testing.assert_identical(unstack_cells(cube.load_cube(path)), unstack_cells(cells))


def test_dask_backed_cells_cube_gives_the_same_rollups(tables, dense):
    chunked = build_cube(
        tables, fiscal_year_start=2, as_of="2025-05", currency="EUR", layout="cells", chunks=3
    )
    assert chunked["bookings"].chunks is not None
    xr.testing.assert_identical(
        rollup(chunked, "region", "fiscal_quarter"), rollup(dense, "region", "fiscal_quarter")
    )


def test_forecast_of_a_cells_cube_is_that_of_the_dense_cube(dense, cells, tmp_path):
    kwargs = {"horizon": 3, "progress": False, "method": "seasonal_naive"}
    xr.testing.assert_identical(
        forecast.forecast_cube(cells, cache_dir=tmp_path / "cells", **kwargs),
        forecast.forecast_cube(dense, cache_dir=tmp_path / "dense", **kwargs),
    )


def test_without_subscriptions_arr_stays_missing_in_both_layouts(tables):
    no_subs = {k: v for k, v in tables.items() if k != "subscriptions"}
    dense, cells = build(no_subs, "dense"), build(no_subs, "cells")
    assert not cube.arr_provided(cells)
    assert bool(cells["arr"].isnull().all())
    xr.testing.assert_identical(unstack_cells(cells), dense)
    xr.testing.assert_identical(unstack_cells(stack_cells(dense)), dense)
    for levels in ("region", "manager", ()):
        xr.testing.assert_identical(
            rollup(cells, levels, "fiscal_quarter"), rollup(dense, levels, "fiscal_quarter")
        )
    assert bool(rollup(cells, "region")["arr"].isnull().all())
