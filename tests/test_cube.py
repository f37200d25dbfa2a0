"""The cube contract on a tiny company whose every number is worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import config
from revmodel.cube import DIMS, MEASURES, build_cube, load_cube, rollup, save_cube, validate_cube
from revmodel.errors import DataError, ParameterError

T = pd.Timestamp
NaT = pd.NaT


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R3", "R4"],
            "rep_name": ["Ann", "Bob", "Cy", "Di"],
            "manager": ["M1", "M1", "M2", "M2"],
            "region": ["East", "East", "West", "West"],
            "segment": ["SMB", "Enterprise", "SMB", "SMB"],
            "hire_date": [T("2020-01-01"), T("2021-05-01"), T("2024-09-01"), T("2025-02-01")],
            "end_date": [NaT, NaT, NaT, T("2025-04-30")],
            "ramp_months": [3.0, 7.0, 3.0, 3.0],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3"],
            "employees": [50, 5000, 80],
            "segment": ["SMB", "Enterprise", "SMB"],
            "region": ["East", "East", "West"],
            "owner_rep_id": ["R1", "R2", "R3"],
        }
    )
    opps = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3", "O4", "O5", "O6"],
            "close_date": [
                T("2025-01-15"),
                T("2025-02-10"),
                T("2025-02-20"),
                T("2025-03-31"),
                T("2025-05-10"),
                T("2024-06-01"),
            ],
            "amount": [100.0, 50.0, 70.0, 30.0, 200.0, 20.0],
            "stage": ["won", "won", "lost", "won", "proposal", "prospecting"],
            "account_id": ["A1", "A1", "A2", "A3", "A2", "A3"],
            "rep_id": ["R1", "R1", "R2", "R3", "R2", "R3"],
            "type": ["new", "expansion", "new", "Renewal", "new", "new"],
            "product": ["Core", "Add-on", "Core", "Core", "Core", None],
        }
    )
    subs = pd.DataFrame(
        {
            "subscription_id": ["S1", "S2", "S3", "S4", "S5"],
            "account_id": ["A1", "A1", "A3", "A2", "A2"],
            "start_date": [
                T("2025-01-15"),
                T("2025-02-10"),
                T("2025-01-01"),
                T("2024-11-01"),
                T("2025-02-01"),
            ],
            "end_date": [T("2026-01-15"), NaT, T("2025-03-01"), T("2025-02-01"), NaT],
            "arr": [120.0, 60.0, 30.0, 100.0, 80.0],
        }
    )
    return {"reps": reps, "accounts": accounts, "opportunities": opps, "subscriptions": subs}


@pytest.fixture
def cube(tables) -> xr.Dataset:
    return build_cube(tables, fiscal_year_start=2)


def cell(ds, var, seg, reg, rep, month):
    return float(ds[var].sel(segment=seg, region=reg, rep=rep, month=np.datetime64(month, "ns")))


def test_dims_coords_and_attrs(cube):
    assert tuple(cube["bookings"].dims) == DIMS
    assert list(cube["segment"].values) == ["SMB", "Enterprise"]  # band order, not alphabetical
    assert list(cube["region"].values) == ["East", "West"]
    assert list(cube["rep"].values) == [
        "R1",
        "R2",
        "R3",
        "R4",
    ]  # R4 has no deals and is still a member
    assert list(pd.DatetimeIndex(cube["month"].values).strftime("%Y-%m")) == [
        "2025-01",
        "2025-02",
        "2025-03",
        "2025-04",
        "2025-05",
    ]
    assert list(cube["manager"].values) == ["M1", "M1", "M2", "M2"]
    assert list(cube["rep_region"].values) == ["East", "East", "West", "West"]
    assert list(cube["fiscal_quarter"].values) == [
        "FY2025-Q4",
        "FY2026-Q1",
        "FY2026-Q1",
        "FY2026-Q1",
        "FY2026-Q2",
    ]
    assert list(cube["fiscal_year"].values) == ["FY2025", "FY2026", "FY2026", "FY2026", "FY2026"]
    assert cube.attrs["as_of"] == "2025-03-01"
    assert cube.attrs["fiscal_year_start"] == 2
    for name, m in MEASURES.items():
        assert cube[name].attrs["units"] == m.units
        assert cube[name].dtype == np.float64
    assert validate_cube(cube) is cube


def test_bookings_counts_and_pipeline_land_in_their_cells(cube):
    assert cell(cube, "bookings", "SMB", "East", "R1", "2025-01-01") == 100
    assert cell(cube, "bookings", "SMB", "East", "R1", "2025-02-01") == 50
    assert cell(cube, "bookings", "SMB", "West", "R3", "2025-03-01") == 30
    assert float(cube["bookings"].sum()) == 180
    assert cell(cube, "won", "SMB", "East", "R1", "2025-02-01") == 1
    assert cell(cube, "lost", "Enterprise", "East", "R2", "2025-02-01") == 1
    assert float(cube["lost"].sum()) == 1
    # Open deal after as_of sits in its expected close month; an overdue one older than the cube in the first month.
    assert cell(cube, "pipeline", "Enterprise", "East", "R2", "2025-05-01") == 200
    assert cell(cube, "pipeline", "SMB", "West", "R3", "2025-01-01") == 20
    assert float(cube["pipeline"].sum()) == 220


def test_actuals_are_nan_after_as_of_and_zero_before(cube):
    future = cube["bookings"].sel(month=slice("2025-04-01", None))
    assert bool(future.isnull().all())
    assert bool(cube["arr"].sel(month="2025-04-01").isnull().all())
    hist = cube["bookings"].sel(month=slice(None, "2025-03-01"))
    assert int(hist.isnull().sum()) == 0
    assert cell(cube, "bookings", "SMB", "West", "R4", "2025-02-01") == 0


def test_arr_and_its_movements(cube):
    arr = cube["arr"].sum(["segment", "region", "rep"]).values[:3]
    np.testing.assert_allclose(arr, [250, 290, 260])
    tot = {
        v: cube[v].sum(["segment", "region", "rep"]).values[:3]
        for v in MEASURES
        if v.endswith("_arr")
    }
    np.testing.assert_allclose(
        tot["new_arr"], [150, 0, 0]
    )  # A2 was a customer before the cube starts
    np.testing.assert_allclose(tot["expansion_arr"], [0, 60, 0])
    np.testing.assert_allclose(tot["contraction_arr"], [0, 20, 0])
    np.testing.assert_allclose(tot["churned_arr"], [0, 0, 30])
    # The bridge closes: opening + new + expansion - contraction - churn = closing.
    closing = arr[0] + sum(
        tot["new_arr"][1:]
        + tot["expansion_arr"][1:]
        - tot["contraction_arr"][1:]
        - tot["churned_arr"][1:]
    )
    assert closing == pytest.approx(arr[2])
    assert cell(cube, "arr", "Enterprise", "East", "R2", "2025-02-01") == 80


def test_rollups_by_dims_manager_and_fiscal_period(cube):
    by_region_q = rollup(cube["bookings"], dims=("region",), period="fiscal_quarter")
    assert by_region_q.dims == ("region", "fiscal_quarter")
    assert by_region_q.sel(region="East", fiscal_quarter="FY2025-Q4").item() == 100
    assert by_region_q.sel(region="East", fiscal_quarter="FY2026-Q1").item() == 50
    assert by_region_q.sel(region="West", fiscal_quarter="FY2026-Q1").item() == 30
    by_mgr = rollup(cube["bookings"], dims=("manager",), period="fiscal_year")
    assert by_mgr.sel(manager="M1", fiscal_year="FY2026").item() == 50
    assert by_mgr.sel(manager="M2", fiscal_year="FY2026").item() == 30
    total = rollup(cube, period="month")
    assert total["bookings"].dims == ("month",)
    assert float(total["bookings"].sum()) == 180
    # The future months stay NaN after a roll-up (not a misleading zero).
    assert np.isnan(total["bookings"].sel(month="2025-05-01").item())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"dims": ("country",)},
            "rollup: unknown level 'country'; use any of segment, region, rep, manager, rep_region, rep_segment.",
        ),
        (
            {"period": "week"},
            "rollup: unknown period 'week'; use one of month, fiscal_quarter, fiscal_year.",
        ),
        (
            {"dims": ("manager", "rep")},
            "rollup: 'manager' and 'rep' cannot both be kept; manager groups reps.",
        ),
    ],
)
def test_rollup_rejects_unknown_levels(cube, kwargs, message):
    with pytest.raises(ParameterError) as err:
        rollup(cube, **kwargs)
    assert str(err.value) == message


def test_orders_export_without_reps_gets_placeholder_members():
    orders = pd.DataFrame(
        {
            "opportunity_id": ["1", "2", "3"],
            "close_date": [T("2025-01-03"), T("2025-01-20"), T("2025-02-02")],
            "amount": [10.0, 20.0, 5.0],
            "stage": ["won"] * 3,
            "segment": ["SMB", "Enterprise", "SMB"],
            "region": ["EU", "EU", "US"],
        }
    )
    ds = build_cube({"opportunities": orders}, fiscal_year_start=1)
    assert list(ds["rep"].values) == [config.PLACEHOLDER]
    assert list(ds["manager"].values) == [config.PLACEHOLDER]
    assert list(ds["region"].values) == ["EU", "US"]
    assert float(ds["bookings"].sum()) == 35
    assert bool(ds["arr"].isnull().all())  # no subscriptions: ARR unknown, not 0
    assert list(ds["fiscal_quarter"].values) == ["FY2025-Q1", "FY2025-Q1"]
    validate_cube(ds)


def test_without_subscriptions_arr_is_missing_never_zero(tables):
    from revmodel import kpi
    from revmodel.cube import ARR_MEASURES, arr_provided, summary

    ds = build_cube({k: v for k, v in tables.items() if k != "subscriptions"}, fiscal_year_start=2)
    validate_cube(ds)  # missing as a whole is not a breach
    assert not arr_provided(ds) and arr_provided(build_cube(tables, fiscal_year_start=2))
    for name in ARR_MEASURES:
        assert bool(ds[name].isnull().all()), name
    for kw in ({"dims": ("manager",), "period": "fiscal_year"}, {"period": "fiscal_quarter"}):
        rolled = rollup(ds, **kw)
        for name in ARR_MEASURES:
            assert bool(rolled[name].isnull().all()), (kw, name)
    assert float(rollup(ds, period="fiscal_year")["bookings"].sum()) == 180.0
    text = summary(ds)
    assert "ARR: not provided (add the subscriptions table)" in text.splitlines()
    assert "ARR at" not in text
    assert kpi.cube_summary(ds).endswith("Churn rate: not provided (add the subscriptions table)")
    k = kpi.compute(ds, period="fiscal_quarter", tables=tables)
    for name in ("arr", "churn_rate", "nrr", "grr"):
        assert bool(k[name].isnull().all()), name
    assert float(k["bookings"].sum()) == 180.0


def test_a_cube_with_nan_arr_in_a_month_of_actuals_is_a_breach(cube):
    broken = cube.copy(deep=True)
    broken["arr"][0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="measure 'arr' has 1 missing cells"):
        validate_cube(broken)


def test_fiscal_year_start_is_checked(tables):
    with pytest.raises(
        ParameterError, match=r"fiscal_year_start must be a month number 1-12, got 13\."
    ):
        build_cube(tables, fiscal_year_start=13)


def test_no_closed_deal_is_a_clear_error(tables):
    opps = tables["opportunities"].assign(stage="proposal")
    with pytest.raises(DataError) as err:
        build_cube({"opportunities": opps})
    assert "no won or lost deal" in str(err.value)
    assert "check the stage mapping" in str(err.value)


def test_validate_cube_lists_breaches(cube):
    broken = cube.drop_vars("fiscal_quarter")
    broken["bookings"] = broken["bookings"].copy()
    broken["bookings"].attrs = {}
    with pytest.raises(DataError) as err:
        validate_cube(broken)
    assert str(err.value) == (
        "The cube breaks its contract: missing coordinate 'fiscal_quarter'; "
        "measure 'bookings' has no units attribute."
    )


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_save_and_load_round_trip(cube, tmp_path, suffix):
    path = save_cube(cube, tmp_path / f"cube{suffix}")
    back = load_cube(path)
    xr.testing.assert_identical(back.drop_attrs(deep=False), cube.drop_attrs(deep=False))
    assert back.attrs["as_of"] == cube.attrs["as_of"]
    assert list(back["manager"].values) == list(cube["manager"].values)


def test_dask_backed_cube_gives_the_same_rollups(tables):
    eager = build_cube(tables)
    lazy = build_cube(tables, chunks=2)
    assert lazy["bookings"].chunks is not None
    xr.testing.assert_allclose(
        rollup(lazy["bookings"], dims=("region",), period="fiscal_quarter").compute(),
        rollup(eager["bookings"], dims=("region",), period="fiscal_quarter"),
    )


def test_accessor_is_a_thin_wrapper(cube):
    xr.testing.assert_identical(cube.rev.rollup(("region",)), rollup(cube, ("region",)))
    assert cube.rev.actuals().sizes["month"] == 3
    assert "Revenue cube: 2 segments x 2 regions x 4 reps x 5 months" in cube.rev.summary()


def test_input_tables_are_not_mutated(tables):
    before = {k: v.copy() for k, v in tables.items()}
    build_cube(tables)
    for k in tables:
        pd.testing.assert_frame_equal(tables[k], before[k])


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cube_command_builds_validates_and_summarises(tmp_path, capsys, suffix):
    from revmodel import cli, sample

    sample.write(sample.generate(reps=8, months=24, seed=2), tmp_path / "data")
    out = tmp_path / f"cube{suffix}"
    assert (
        cli.main(["cube", str(tmp_path / "data"), "--fiscal-year-start", "2", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "result: clean" in printed
    assert "fiscal year starts in month 2)" in printed
    assert printed.rstrip().endswith(f"Wrote {out}")
    ds = load_cube(out)
    validate_cube(ds)
    assert ds.attrs["fiscal_year_start"] == 2
    assert ds.sizes["rep"] == 8


def test_cube_command_reports_bad_input_without_a_traceback(tmp_path, capsys):
    from revmodel import cli

    assert cli.main(["cube", str(tmp_path / "missing"), "--out", str(tmp_path / "c.nc")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: data folder {tmp_path / 'missing'} not found; pass the folder holding your exports"
    )
    assert cli.main(["cube", str(tmp_path), "--out", str(tmp_path / "c.csv")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --out {tmp_path / 'c.csv'}: cube files end in .nc (NetCDF) or .zarr (Zarr)."
    )


# --------------------------------------------------------------------------- names, types, products


def test_reps_carry_their_names_and_one_display_label(tables):
    reps = tables["reps"].copy()
    reps.loc[reps["rep_id"] == "R3", "rep_name"] = "Ann"  # two reps called Ann
    reps.loc[reps["rep_id"] == "R4", "rep_name"] = None
    ds = build_cube({**tables, "reps": reps}, fiscal_year_start=2)
    assert list(ds["rep_name"].values) == ["Ann", "Bob", "Ann", "R4"]
    assert list(ds["rep_label"].values) == ["Ann (R1)", "Bob", "Ann (R3)", "R4"]
    from revmodel.cube import display_labels, labels

    assert labels(ds)["R3"] == "Ann (R3)"
    assert labels(ds, "region") == {"East": "East", "West": "West"}
    assert display_labels(["X1"], [config.PLACEHOLDER]).tolist() == ["X1"]


def test_bookings_split_by_deal_type(cube):
    total = {
        v: float(cube[v].sum()) for v in ("new_bookings", "expansion_bookings", "renewal_bookings")
    }
    # O1 new 100, O2 expansion 50, O4 "Renewal" 30 (case-insensitive); O3 is lost.
    assert total == {"new_bookings": 100.0, "expansion_bookings": 50.0, "renewal_bookings": 30.0}
    assert cell(cube, "renewal_bookings", "SMB", "West", "R3", "2025-03-01") == 30
    assert cube["renewal_bookings"].attrs["aggregation"] == "sum"
    q = rollup(cube, ("region",), period="fiscal_quarter")
    np.testing.assert_allclose(
        (q["new_bookings"] + q["expansion_bookings"] + q["renewal_bookings"]).values,
        q["bookings"].values,
    )


def test_without_a_type_column_there_is_no_split(tables):
    opps = tables["opportunities"].drop(columns=["type"])
    ds = build_cube({**tables, "opportunities": opps}, fiscal_year_start=2)
    assert "new_bookings" not in ds and "bookings" in ds


def test_bookings_by_product_roll_up_to_managers_and_years(tables, cube):
    from revmodel.cube import product_bookings

    by = product_bookings(tables, cube)
    assert by.dims == ("product", "rep", "month")
    assert list(by["product"].values) == ["Add-on", "Core"]
    assert by.attrs["units"] == "USD/month"
    assert float(by.sel(product="Core").sum()) == 130.0  # O1 100 + O4 30
    assert float(by.sel(product="Add-on", rep="R1", month="2025-02-01")) == 50.0
    by_mgr = rollup(by, "manager", period="fiscal_year")
    assert float(by_mgr.sel(product="Core", manager="M2", fiscal_year="FY2026")) == 30.0
    assert bool(by.sel(month="2025-04-01").isnull().all())
    assert float(product_bookings(tables, cube, kind="type").sel(type="new").sum()) == 100.0
    with pytest.raises(ParameterError, match="kind must be 'product' or 'type', got 'colour'"):
        product_bookings(tables, cube, kind="colour")


def test_currency_of_the_data_labels_every_money_measure(tables):
    ds = build_cube(tables, fiscal_year_start=2, currency="EUR")
    assert ds.attrs["currency"] == "EUR"
    assert ds["bookings"].attrs["units"] == "EUR/month"
    assert ds["arr"].attrs["units"] == "EUR/year"
    assert rollup(ds, period="fiscal_year")["bookings"].attrs["units"] == "EUR/year"
