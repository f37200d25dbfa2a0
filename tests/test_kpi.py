"""Every KPI of the catalogue against a value worked out by hand on the tiny company.

The company is described in tests/test_retention.py (fiscal year = calendar
year, actuals to 2025-03). Besides its subscriptions it has:

- deals won: 120 (R1, created 40 days before close, Jan 2024), 60 (R1, 19 days,
  Jan 2024), 100 (R2, 60 days, Jan 2024), 40 (R2, 30 days, Jun 2024), 30 (R1,
  40 days, Jan 2025); lost: R1 Dec 2024, R2 Feb 2025; open: R1 300 in May 2025,
  R2 100 in Apr 2025 and 90 in Aug 2025;
- invoices: A1 120 on 2024-01-01 paid 2024-01-20; A1 150 on 2025-01-01 paid
  2025-02-15; A3 80 on 2025-02-01 unpaid; A4 40 on 2025-03-01 paid 2025-04-10.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import kpi
from revmodel.errors import ParameterError
from tests.test_retention import company, company_cube

Q = "fiscal_quarter"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return company()


@pytest.fixture(scope="module")
def cube(tables) -> xr.Dataset:
    return company_cube(tables)


@pytest.fixture(scope="module")
def costs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month": pd.to_datetime(["2024-01-01", "2024-07-01", "2024-08-15"]),
            "region": ["East", "West", "West"],
            "cost": [300.0, 100.0, 100.0],
        }
    )


@pytest.fixture(scope="module")
def quota() -> xr.DataArray:
    return xr.DataArray(
        [[100.0, 200.0], [50.0, 100.0]],
        dims=("rep", Q),
        coords={"rep": ["R1", "R2"], Q: ["FY2025-Q1", "FY2025-Q2"]},
        name="quota",
    )


@pytest.fixture(scope="module")
def by_quarter(cube, tables, costs, quota) -> xr.Dataset:
    return kpi.compute(cube, tables=tables, costs=costs, quota=quota)


def at(ds: xr.Dataset, name: str, **where) -> float:
    return float(ds[name].sel(**where))


# Company total by fiscal quarter: (kpi, quarter, hand-computed value).
HAND = [
    ("arr", "FY2025-Q1", 270.0),  # 150 + 80 + 40
    ("arr", "FY2024-Q3", 320.0),
    ("bookings", "FY2024-Q1", 280.0),  # 120 + 60 + 100
    # A2's churned 60 and A3's contraction 20 over the 12 months to 2025-03, of the 280 at 2024-04.
    ("churn_rate", "FY2025-Q1", (60 + 20) / 280),
    ("logo_churn_rate", "FY2025-Q1", 1 / 4),  # A2 of A1..A4
    ("renewal_rate", "FY2025-Q1", 2 / 3),  # S1, S3, S4 due in Jan 2025; S3 not renewed
    ("nrr", "FY2025-Q1", (280 + 30 - 20 - 60) / 280),
    ("grr", "FY2025-Q1", (280 - 20 - 60) / 280),
    ("customers", "FY2024-Q3", 4.0),
    ("arpu", "FY2025-Q1", 270 / 3),
    ("arpu", "FY2024-Q1", 280 / 3),
    ("ltv", "FY2025-Q1", 90 * 0.75 / (1 / 3)),  # 1 of the 3 customers of Mar 2024 lost
    ("cac", "FY2024-Q1", 300 / 3),  # 3 new customers in Jan 2024
    ("cac", "FY2024-Q3", 200 / 1),  # A4
    ("dso", "FY2025-Q1", (80 + 40) / (150 + 80 + 40) * 90),  # receivables / billed x days
    ("dso", "FY2024-Q1", 0.0),  # the one invoice was paid in January
    ("backlog", "FY2024-Q1", 280 * 275 / 365.25),  # 275 days from 2024-04-01 to 2025-01-01
    ("win_rate", "FY2025-Q1", 1 / 2),
    ("win_rate", "FY2024-Q4", 0.0),
    ("average_deal_size", "FY2024-Q1", 280 / 3),
    ("sales_cycle", "FY2024-Q1", (40 + 19 + 60) / 3),
    ("sales_cycle", "FY2025-Q1", 40.0),
    ("pipeline_coverage", "FY2025-Q2", (300 + 100) / (200 + 100)),
    ("quota_attainment", "FY2025-Q1", 30 / 150),
]


@pytest.mark.parametrize(("name", "quarter", "expected"), HAND)
def test_kpi_matches_hand_computed_value(by_quarter, name, quarter, expected):
    assert at(by_quarter, name, fiscal_quarter=quarter) == pytest.approx(expected, rel=1e-12)


def test_every_kpi_of_the_catalogue_is_checked_by_hand(by_quarter):
    assert {h[0] for h in HAND} == set(kpi.KPIS)
    assert set(by_quarter.data_vars) == set(kpi.KPIS)
    assert by_quarter.attrs["skipped"] == ""


def test_backlog_is_missing_where_a_term_has_no_end_date(cube, tables):
    """A4 (West, from 2024-07) has no end date: its remaining value, hence West's, is unknown."""
    k = kpi.compute(cube, ["backlog"], tables=tables)["backlog"]
    by_region = kpi.compute(cube, ["backlog"], dims="region", tables=tables)["backlog"]
    assert float(k.sel(fiscal_quarter="FY2024-Q1")) == pytest.approx(280 * 275 / 365.25)
    for q in ("FY2024-Q3", "FY2024-Q4", "FY2025-Q1"):  # A4 active: the company total is unknown
        assert np.isnan(float(k.sel(fiscal_quarter=q))), q
        assert np.isnan(float(by_region.sel(region="West", fiscal_quarter=q))), q
    east = by_region.sel(region="East")
    assert float(east.sel(fiscal_quarter="FY2024-Q4")) == 0.0  # the terms end on 2025-01-01
    # A1's renewal at 150 ends 2026-01-01: 275 days after 2025-03-31's end.
    assert float(east.sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(150 * 275 / 365.25)


def test_backlog_without_any_end_date_is_missing_never_zero(cube, tables):
    """A subscriptions export whose end dates are all blank: backlog is missing in every period."""
    blank = {**tables, "subscriptions": tables["subscriptions"].assign(end_date=pd.NaT)}
    k = kpi.compute(cube, ["backlog"], tables=blank)["backlog"]
    active = cube["arr"].sum(["segment", "region", "rep"]) > 0  # terms active at the month end
    assert bool(active.any())
    assert bool(k.isnull().all()), k.values
    from revmodel import formatting

    assert formatting.cell("money", float(k.isel(fiscal_quarter=-1))) == formatting.MISSING


def test_undefined_values_are_nan_not_zero(by_quarter):
    assert np.isnan(at(by_quarter, "churn_rate", fiscal_quarter="FY2024-Q1"))  # no opening ARR
    assert np.isnan(at(by_quarter, "churn_rate", fiscal_quarter="FY2024-Q2"))  # no ARR before 2024
    assert np.isnan(at(by_quarter, "nrr", fiscal_quarter="FY2024-Q4"))  # < 12 months of ARR
    assert np.isnan(at(by_quarter, "win_rate", fiscal_quarter="FY2024-Q3"))  # no closed deal
    assert np.isnan(at(by_quarter, "pipeline_coverage", fiscal_quarter="FY2025-Q3"))  # no quota
    assert np.isnan(at(by_quarter, "pipeline_coverage", fiscal_quarter="FY2025-Q1"))  # not ahead


def test_units_and_definitions_are_attached(by_quarter):
    assert by_quarter["arr"].attrs["units"] == "USD/year"
    assert by_quarter["churn_rate"].attrs["units"] == "ratio/year"
    assert by_quarter["logo_churn_rate"].attrs["units"] == "ratio/fiscal_quarter"
    assert by_quarter["dso"].attrs["units"] == "days"
    assert by_quarter["dso"].attrs["long_name"].startswith("Days sales outstanding")


def test_kpis_by_rep_and_fiscal_year(cube, tables, quota):
    ds = kpi.compute(cube, dims=("rep",), period="fiscal_year", tables=tables, quota=quota)
    r1 = ds.sel(rep="R1", fiscal_year="FY2025")
    r2 = ds.sel(rep="R2", fiscal_year="FY2025")
    assert float(r1["arpu"]) == 150  # A1 alone
    assert float(r1["ltv"]) == pytest.approx(150 * 0.75 / (1 / 2))
    assert np.isnan(float(r2["ltv"]))  # R2 lost no customer
    assert float(r2["dso"]) == pytest.approx(120 / 120 * 90)
    assert float(r1["win_rate"]) == 1.0
    assert float(ds["win_rate"].sel(rep="R1", fiscal_year="FY2024")) == pytest.approx(2 / 3)
    # The quarter quota adds up to the year; coverage uses the quota left after bookings won.
    assert float(r1["quota_attainment"]) == pytest.approx(30 / 300)
    assert float(r1["pipeline_coverage"]) == pytest.approx(300 / (300 - 30))
    assert float(r2["pipeline_coverage"]) == pytest.approx((100 + 90) / 150)
    assert "cac" not in ds  # no costs given: skipped
    assert ds.attrs["skipped"] == "cac"


def test_a_quota_by_rep_rolls_up_to_segment_and_region_at_once(cube, tables, quota):
    """Each rep's quota goes to the rep's own segment x region (R1: SMB/East, R2: SMB/West)."""
    ds = kpi.compute(cube, ["quota_attainment"], dims=("segment", "region"), tables=tables,
                     quota=quota)  # fmt: skip
    reps = pd.DataFrame(
        {"rep": ["R1", "R2"], "segment": ["SMB", "SMB"], "region": ["East", "West"]}
    )
    q1 = quota.sel({Q: "FY2025-Q1"}).to_series().rename("quota").reset_index()
    expected = q1.merge(reps).groupby(["segment", "region"])["quota"].sum()
    won = {"East": 30.0, "West": 0.0}  # FY2025-Q1 bookings: R1's 30 in Jan 2025
    for (seg, reg), q in expected.items():
        got = float(ds["quota_attainment"].sel(segment=seg, region=reg, fiscal_quarter="FY2025-Q1"))
        assert got == pytest.approx(won[reg] / q)


def test_ratios_are_rolled_up_not_averaged(cube, tables):
    by_rep = kpi.compute(
        cube, ["win_rate", "arpu"], dims=("rep",), period="fiscal_year", tables=tables
    )
    total = kpi.compute(cube, ["win_rate", "arpu"], period="fiscal_year", tables=tables)
    # FY2024: R1 won 2 of 3, R2 2 of 2; the company 4 of 5, not the mean of 2/3 and 1.
    assert float(total["win_rate"].sel(fiscal_year="FY2024")) == pytest.approx(4 / 5)
    assert float(by_rep["win_rate"].sel(fiscal_year="FY2024").mean()) == pytest.approx(5 / 6)
    assert float(total["arpu"].sel(fiscal_year="FY2025")) == pytest.approx(270 / 3)


def test_manager_level_and_months(cube, tables):
    ds = kpi.compute(
        cube, ["arr", "customers", "dso"], dims=("manager",), period="month", tables=tables
    )
    assert ds["arr"].dims == ("manager", "month")
    assert float(ds["arr"].sel(manager="M1", month="2025-03-01")) == 150
    assert float(ds["customers"].sel(manager="M2", month="2024-07-01")) == 2
    # January 2025: A1's invoice of 150 is unpaid at the month end: 150 / 150 x 31 days.
    assert float(ds["dso"].sel(manager="M1", month="2025-01-01")) == pytest.approx(31)


def test_cac_by_region_from_costs_by_region(cube, tables, costs):
    ds = kpi.compute(
        cube, ["cac"], dims=("region",), period="fiscal_year", tables=tables, costs=costs
    )
    assert float(ds["cac"].sel(region="East", fiscal_year="FY2024")) == pytest.approx(300 / 2)
    assert float(ds["cac"].sel(region="West", fiscal_year="FY2024")) == pytest.approx(200 / 2)


def test_gross_margin_scales_ltv(cube, tables):
    a = kpi.compute(cube, ["ltv"], tables=tables, gross_margin=0.5)
    assert float(a["ltv"].sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(90 * 0.5 * 3)


def test_dask_backed_cube_gives_the_same_kpis(tables, cube, quota):
    lazy = company_cube(tables, chunks=1)
    names = ["arr", "nrr", "win_rate", "arpu", "backlog", "pipeline_coverage"]
    a = kpi.compute(lazy, names, dims=("region",), tables=tables, quota=quota).compute()
    b = kpi.compute(cube, names, dims=("region",), tables=tables, quota=quota)
    xr.testing.assert_allclose(a, b)


def test_describe_lists_the_catalogue():
    table = kpi.describe()
    assert list(table.columns) == ["name", "definition", "units", "needs"]
    assert list(table["name"]) == list(kpi.KPIS)
    row = table.set_index("name").loc["cac"]
    assert row["units"] == "USD per customer"
    assert row["needs"] == "tables, costs"
    assert all(table["definition"].str.len() > 20)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": ["mrr"]}, r"unknown KPI 'mrr'; known KPIs are arr, bookings"),
        ({"names": ["cac"]}, r"KPI 'cac' needs tables=\{'subscriptions'"),
        (
            {"names": ["quota_attainment"]},
            r"KPI 'quota_attainment' needs quota= \(a quota DataArray\)",
        ),
        ({"names": ["arr"], "dims": ("country",)}, r"rollup: unknown level 'country'"),
        ({"names": ["arr"], "period": "week"}, r"unknown period 'week'"),
        ({"names": ["ltv"], "gross_margin": 1.5}, r"gross_margin must be in \(0, 1\], got 1.5"),
    ],
)
def test_parameter_errors(cube, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        kpi.compute(cube, **kwargs)


def test_input_without_the_level_asked_for(cube, tables, costs, quota):
    with pytest.raises(
        ParameterError, match=r"costs has no 'segment' level \(it has \['region', 'month'\]\)"
    ):
        kpi.compute(cube, ["cac"], dims=("segment",), tables=tables, costs=costs)
    with pytest.raises(ParameterError, match=r"quota has no 'month' or 'month' dimension"):
        kpi.compute(cube, ["quota_attainment"], period="month", quota=quota)
    bad = pd.DataFrame({"region": ["East"], "cost": [1.0]})
    with pytest.raises(ParameterError, match=r"costs: no 'month' or 'fiscal_quarter' column"):
        kpi.compute(cube, ["cac"], tables=tables, costs=bad)


def test_without_tables_only_cube_kpis_are_computed(cube):
    ds = kpi.compute(cube)
    assert set(ds.data_vars) == {
        "arr",
        "bookings",
        "churn_rate",
        "nrr",
        "grr",
        "win_rate",
        "average_deal_size",
    }
    assert "arpu" in ds.attrs["skipped"]


def test_quota_by_rep_rolls_up_to_the_reps_region(cube, quota):
    ds = kpi.compute(cube, ["pipeline_coverage", "quota_attainment"], dims=("region",), quota=quota)
    assert float(ds["pipeline_coverage"].sel(region="East", fiscal_quarter="FY2025-Q2")) == 1.5
    assert float(ds["pipeline_coverage"].sel(region="West", fiscal_quarter="FY2025-Q2")) == 1.0
    assert float(ds["quota_attainment"].sel(region="East", fiscal_quarter="FY2025-Q1")) == 0.3
