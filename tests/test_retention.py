"""Retention on a tiny company whose every number is worked out by hand.

The company (fiscal year = calendar year, actuals to 2025-03):

=======  =====  ====  =====================================================
account  where  rep   subscription terms (end exclusive)
=======  =====  ====  =====================================================
A1       East   R1    120 2024-01..2025-01, renewed at 150 2025-01..2026-01
A2       East   R1    60 2024-01..2025-01, not renewed (churn 60 in 2025-01)
A3       West   R2    100 2024-01..2025-01, renewed at 80 (contraction 20)
A4       West   R2    40 from 2024-07, no end date (new in FY2024-Q3)
=======  =====  ====  =====================================================

ARR: 280 in Jan-Jun 2024, 320 in Jul-Dec 2024, 270 in Jan-Mar 2025.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import retention
from revmodel.assumptions import Assumptions
from revmodel.cube import build_cube
from revmodel.errors import DataError, ParameterError

T = pd.Timestamp
NaT = pd.NaT


def company() -> dict[str, pd.DataFrame]:
    """The tiny company of the module docstring (also used by the KPI tests)."""
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2"],
            "manager": ["M1", "M2"],
            "region": ["East", "West"],
            "segment": ["SMB", "SMB"],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "segment": ["SMB"] * 4,
            "region": ["East", "East", "West", "West"],
            "owner_rep_id": ["R1", "R1", "R2", "R2"],
        }
    )
    subs = pd.DataFrame(
        {
            "subscription_id": ["S1", "S2", "S3", "S4", "S5", "S6"],
            "account_id": ["A1", "A1", "A2", "A3", "A3", "A4"],
            "start_date": [
                T("2024-01-01"),
                T("2025-01-01"),
                T("2024-01-01"),
                T("2024-01-01"),
                T("2025-01-01"),
                T("2024-07-01"),
            ],
            "end_date": [
                T("2025-01-01"),
                T("2026-01-01"),
                T("2025-01-01"),
                T("2025-01-01"),
                T("2026-01-01"),
                NaT,
            ],
            "arr": [120.0, 150.0, 60.0, 100.0, 80.0, 40.0],
            "product": ["Core"] * 6,
        }
    )
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"O{i}" for i in range(1, 11)],
            "close_date": [
                T("2024-01-10"),
                T("2024-01-20"),
                T("2024-01-25"),
                T("2024-06-28"),
                T("2024-12-15"),
                T("2025-01-05"),
                T("2025-02-10"),
                T("2025-05-15"),
                T("2025-04-20"),
                T("2025-08-10"),
            ],
            "created_date": [
                T("2023-12-01"),
                T("2024-01-01"),
                T("2023-11-26"),
                T("2024-05-29"),
                T("2024-10-01"),
                T("2024-11-26"),
                T("2025-01-01"),
                T("2025-02-01"),
                T("2025-02-01"),
                T("2025-03-01"),
            ],
            "amount": [120.0, 60.0, 100.0, 40.0, 50.0, 30.0, 70.0, 300.0, 100.0, 90.0],
            "stage": ["won"] * 4 + ["lost", "won", "lost", "proposal", "proposal", "qualification"],
            "account_id": ["A1", "A2", "A3", "A4", "A2", "A1", "A3", "A2", "A4", "A3"],
            "rep_id": ["R1", "R1", "R2", "R2", "R1", "R1", "R2", "R1", "R2", "R2"],
        }
    )
    invoices = pd.DataFrame(
        {
            "invoice_id": ["I1", "I2", "I3", "I4"],
            "account_id": ["A1", "A3", "A4", "A1"],
            "invoice_date": [T("2025-01-01"), T("2025-02-01"), T("2025-03-01"), T("2024-01-01")],
            "amount": [150.0, 80.0, 40.0, 120.0],
            "paid_date": [T("2025-02-15"), NaT, T("2025-04-10"), T("2024-01-20")],
        }
    )
    return {
        "reps": reps,
        "accounts": accounts,
        "subscriptions": subs,
        "opportunities": opps,
        "invoices": invoices,
    }


def company_cube(tables: dict[str, pd.DataFrame], **kwargs) -> xr.Dataset:
    return build_cube(tables, fiscal_year_start=1, as_of="2025-03", **kwargs)


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return company()


@pytest.fixture
def cube(tables) -> xr.Dataset:
    return company_cube(tables)


def _assert_bridge_closes(b: xr.Dataset) -> None:
    net = b["new"] + b["expansion"] - b["contraction"] - b["churn"]
    np.testing.assert_allclose((b["closing"] - b["opening"]).values, net.values, atol=1e-9)


# --------------------------------------------------------------------------- bridge


def test_bridge_by_quarter_matches_the_hand_computed_numbers(cube):
    b = retention.arr_bridge(cube, period="fiscal_quarter")
    assert list(b["fiscal_quarter"].values) == [
        "FY2024-Q1",
        "FY2024-Q2",
        "FY2024-Q3",
        "FY2024-Q4",
        "FY2025-Q1",
    ]
    np.testing.assert_allclose(b["opening"], [0, 280, 280, 320, 320])
    np.testing.assert_allclose(b["new"], [280, 0, 40, 0, 0])
    np.testing.assert_allclose(b["expansion"], [0, 0, 0, 0, 30])
    np.testing.assert_allclose(b["contraction"], [0, 0, 0, 0, 20])
    np.testing.assert_allclose(b["churn"], [0, 0, 0, 0, 60])
    np.testing.assert_allclose(b["closing"], [280, 280, 320, 320, 270])
    assert list(b["months"].values) == [3, 3, 3, 3, 3]
    assert b["closing"].attrs["units"] == "USD/year"
    _assert_bridge_closes(b)


@pytest.mark.parametrize("period", ["month", "fiscal_quarter", "fiscal_year"])
@pytest.mark.parametrize("dims", [(), ("region",), ("manager",), ("segment", "rep")])
def test_bridge_closes_at_every_level_and_period(cube, dims, period):
    b = retention.arr_bridge(cube, dims=dims, period=period)
    _assert_bridge_closes(b)
    # Each period opens where the previous one closed.
    time = period
    np.testing.assert_allclose(
        b["opening"].isel({time: slice(1, None)}).values,
        b["closing"].isel({time: slice(None, -1)}).values,
    )
    assert float(b["closing"].isel({time: -1}).sum()) == pytest.approx(270)


def test_bridge_by_region_and_year(cube):
    b = retention.arr_bridge(cube, dims=("region",), period="fiscal_year")
    east = b.sel(region="East", fiscal_year="FY2025")
    assert float(east["opening"]) == 180
    assert float(east["expansion"]) == 30
    assert float(east["churn"]) == 60
    assert float(east["closing"]) == 150
    west = b.sel(region="West", fiscal_year="FY2024")
    assert float(west["new"]) == 140
    assert float(west["closing"]) == 140


def test_the_sample_like_cube_bridge_closes(tables):
    from tests.test_cube import tables as cube_tables

    t = cube_tables.__wrapped__()
    ds = build_cube(t, fiscal_year_start=2)
    b = retention.arr_bridge(ds, period="month")
    # The account A2 was a customer before the cube starts: the first month opens at 100.
    np.testing.assert_allclose(b["opening"], [100, 250, 290])
    np.testing.assert_allclose(b["closing"], [250, 290, 260])
    _assert_bridge_closes(b)


def test_dask_backed_cube_gives_the_same_bridge(tables, cube):
    lazy = company_cube(tables, chunks=1)
    xr.testing.assert_allclose(
        retention.arr_bridge(lazy, dims=("region",)).compute(),
        retention.arr_bridge(cube, dims=("region",)),
    )


def test_bridge_rejects_unknown_period_and_level(cube):
    with pytest.raises(ParameterError, match=r"unknown period 'week'; use one of month"):
        retention.arr_bridge(cube, period="week")
    with pytest.raises(ParameterError, match=r"rollup: unknown level 'country'"):
        retention.arr_bridge(cube, dims=("country",))


def test_cube_without_arr_measures_is_a_clear_error(cube):
    with pytest.raises(DataError, match=r"no 'churned_arr' measure: build it with a subscriptions"):
        retention.arr_bridge(cube.drop_vars("churned_arr"))


# --------------------------------------------------------------------------- rates


def test_revenue_churn_grr_and_nrr(cube):
    churn = retention.revenue_churn(cube, period="fiscal_quarter")
    assert float(churn.sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(60 / 320)
    assert float(churn.sel(fiscal_quarter="FY2024-Q2")) == 0
    assert np.isnan(float(churn.sel(fiscal_quarter="FY2024-Q1")))  # no opening ARR
    gross = retention.revenue_churn(cube, period="fiscal_quarter", gross=True)
    assert float(gross.sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(80 / 320)

    t = retention.trailing_retention(cube, period="fiscal_quarter")
    # Trailing Apr 2024 - Mar 2025 on the ARR of Mar 2024 (280); A4's new ARR does not count.
    assert float(t["grr"].sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(200 / 280)
    assert float(t["nrr"].sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(230 / 280)
    assert float(retention.grr(cube, period="month").isel(month=-1)) == pytest.approx(200 / 280)
    assert float(retention.nrr(cube).isel(month=-1)) == pytest.approx(230 / 280)
    # Less than twelve months of history with ARR: undefined.
    assert np.isnan(float(t["nrr"].sel(fiscal_quarter="FY2024-Q4")))


def test_nrr_by_region(cube):
    t = retention.trailing_retention(cube, dims=("region",), period="fiscal_year")
    assert float(t["nrr"].sel(region="East", fiscal_year="FY2025")) == pytest.approx(150 / 180)
    assert float(t["grr"].sel(region="West", fiscal_year="FY2025")) == pytest.approx(80 / 100)


def test_historical_churn_rate_is_one_minus_grr(cube):
    assert float(retention.historical_churn_rate(cube)) == pytest.approx(1 - 200 / 280)
    by_region = retention.historical_churn_rate(cube, dims=("region",))
    assert float(by_region.sel(region="East")) == pytest.approx(60 / 180)
    assert float(by_region.sel(region="West")) == pytest.approx(20 / 100)


# --------------------------------------------------------------------------- plan


def test_growth_to_offset_churn_hand_computed(cube):
    a = Assumptions(plan_year="FY2026", churn_rate=0.10)
    g = retention.growth_to_offset_churn(cube, a, target=297.0)
    # The plan year opens on the last actual month (2025-03): ARR 270, target 297 = +10%.
    assert float(g["starting_arr"]) == 270
    assert float(g["net_growth"]) == pytest.approx(27)
    # ARR path 270 * 1.1 ** (k/12); churn at r = 1 - 0.9 ** (1/12) a month on the path.
    r = 1 - 0.9 ** (1 / 12)
    path = 270 * 1.1 ** (np.arange(13) / 12)
    churn = r * path[:-1].sum()
    assert float(g["total_expected_churn_arr"]) == pytest.approx(churn)
    assert float(g["total_required_new_arr"]) == pytest.approx(27 + churn)
    assert float(g["growth_needed"]) == pytest.approx((27 + churn) / 270)
    # Without churn, new business only has to deliver the net growth.
    none = retention.growth_to_offset_churn(cube, a.with_changes(churn_rate=0.0), target=297.0)
    assert float(none["total_required_new_arr"]) == pytest.approx(27)


def test_retention_plan_bridge_closes_every_month_and_uses_history(cube):
    a = Assumptions(plan_year="FY2025", target_growth=0.2)
    plan = retention.retention_plan(cube, a, dims=("region",))
    assert plan.attrs["churn_source"] == "history"
    assert plan.attrs["opening_month"] == "2024-12-01"
    assert plan.sizes["month"] == 12
    assert list(plan["fiscal_quarter"].values[:3]) == ["FY2025-Q1"] * 3
    np.testing.assert_allclose(plan["starting_arr"].sel(region=["East", "West"]), [180, 140])
    np.testing.assert_allclose(plan["target_arr"], plan["starting_arr"] * 1.2)
    np.testing.assert_allclose(
        (plan["closing_arr"] - plan["opening_arr"]).values,
        (plan["required_new_arr"] - plan["expected_churn_arr"]).values,
        atol=1e-9,
    )
    np.testing.assert_allclose(plan["closing_arr"].isel(month=-1), plan["target_arr"])
    np.testing.assert_allclose(plan["churn_rate"].sel(region="East"), 60 / 180)


def test_company_target_is_spread_by_opening_arr(cube):
    a = Assumptions(plan_year="FY2026", churn_rate=0.05)
    g = retention.growth_to_offset_churn(cube, a, target=540.0, dims=("region",))
    np.testing.assert_allclose(g["target_arr"].sel(region=["East", "West"]), [300, 240])


def test_plan_parameter_errors(cube):
    with pytest.raises(ParameterError, match=r"plan_year must be a fiscal year like FY2027"):
        retention.retention_plan(cube, Assumptions(plan_year="FY2026-Q1"))
    with pytest.raises(ParameterError, match=r"starts before the cube's first month 2024-01"):
        retention.retention_plan(cube, Assumptions(plan_year="FY2024"))
    with pytest.raises(ParameterError, match=r"target must be a positive ARR amount, got -5"):
        retention.growth_to_offset_churn(cube, Assumptions(plan_year="FY2026"), target=-5)


# --------------------------------------------------------------------------- accounts


def test_customer_counts_logo_churn_and_renewals(cube, tables):
    logos = retention.logo_churn(cube, tables, period="fiscal_quarter")
    np.testing.assert_allclose(logos["opening"], [0, 3, 3, 4, 4])
    np.testing.assert_allclose(logos["new"], [3, 0, 1, 0, 0])
    np.testing.assert_allclose(logos["lost"], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(logos["closing"], [3, 3, 4, 4, 3])
    assert float(logos["logo_churn_rate"].sel(fiscal_quarter="FY2025-Q1")) == pytest.approx(0.25)

    ren = retention.renewal_rate(cube, tables, dims=("region",), period="fiscal_quarter")
    q = ren.sel(fiscal_quarter="FY2025-Q1")
    np.testing.assert_allclose(q["due"].sel(region=["East", "West"]), [2, 1])
    np.testing.assert_allclose(q["renewal_rate"].sel(region=["East", "West"]), [0.5, 1.0])
    total = retention.renewal_rate(cube, tables, period="fiscal_year").sel(fiscal_year="FY2025")
    assert float(total["renewal_rate"]) == pytest.approx(2 / 3)
    assert float(total["arr_renewal_rate"]) == pytest.approx(220 / 280)


def test_a_renewal_a_few_days_late_counts_but_a_product_switch_does_not(tables, cube):
    subs = tables["subscriptions"].copy()
    subs.loc[subs["subscription_id"] == "S2", "start_date"] = T("2025-01-10")
    subs.loc[subs["subscription_id"] == "S5", "product"] = "Other"
    t = {**tables, "subscriptions": subs}
    ren = retention.renewal_rate(company_cube(t), t, period="fiscal_year")
    assert float(ren["renewed"].sel(fiscal_year="FY2025")) == 1  # only A1's late renewal


def test_customer_measures_land_in_the_cubes_cells(cube, tables):
    m = retention.customer_measures(cube, tables)
    assert m["customers"].dims == ("segment", "region", "rep", "month")
    assert m.attrs["unattributed_accounts"] == 0
    by_rep = m["customers"].sel(month="2025-03-01").sum(["segment", "region"])
    assert by_rep.sel(rep="R1").item() == 1
    assert by_rep.sel(rep="R2").item() == 2
    assert bool(m["customers"].sel(month="2025-04-01").isnull().all())
    # Customers sit where the cube keeps their ARR.
    has_arr = cube["arr"].sel(month="2025-03-01") > 0
    assert bool((m["customers"].sel(month="2025-03-01") > 0).equals(has_arr))


def test_customer_table_and_cohorts(cube, tables):
    ct = retention.customer_table(cube, tables)
    assert list(ct.index) == ["A1", "A2", "A3", "A4"]
    assert list(ct["cohort"]) == ["FY2024-Q1", "FY2024-Q1", "FY2024-Q1", "FY2024-Q3"]
    assert list(ct["active"]) == [True, False, True, True]
    assert list(ct["arr"]) == [150, 0, 80, 40]
    assert ct.loc["A2", "last_month"] == T("2024-12-01")

    c = retention.cohorts(cube, tables)
    q1 = c.sel(cohort="FY2024-Q1")
    assert float(q1["arr"].sel(months_since_start=0)) == 280
    assert float(q1["arr"].sel(months_since_start=12)) == 230
    assert float(q1["arr_retention"].sel(months_since_start=12)) == pytest.approx(230 / 280)
    assert float(q1["logo_retention"].sel(months_since_start=12)) == pytest.approx(2 / 3)
    assert float(q1["arr"].sel(months_since_start=14)) == 230
    assert c.sizes["months_since_start"] == 15  # 2024-01 to as_of 2025-03
    q3 = c.sel(cohort="FY2024-Q3")
    assert float(q3["arr_retention"].sel(months_since_start=8)) == 1.0
    assert np.isnan(float(q3["arr"].sel(months_since_start=9)))

    by_region = retention.cohorts(cube, tables, dims=("region",), max_months=12)
    assert by_region.sizes["months_since_start"] == 13
    east = by_region.sel(region="East", cohort="FY2024-Q1")
    assert float(east["arr_retention"].sel(months_since_start=12)) == pytest.approx(150 / 180)


def test_customer_functions_need_subscriptions(cube, tables):
    t = {k: v for k, v in tables.items() if k != "subscriptions"}
    with pytest.raises(DataError, match=r"No subscriptions table: customer counts, logo churn"):
        retention.customer_measures(cube, t)
    with pytest.raises(ParameterError, match=r"cohorts: unknown level 'manager'"):
        retention.cohorts(cube, tables, dims=("manager",))


def test_inputs_are_not_mutated(tables):
    before = {k: v.copy() for k, v in tables.items()}
    ds = company_cube(tables)
    ds_before = ds.copy(deep=True)
    retention.customer_measures(ds, tables)
    retention.cohorts(ds, tables)
    retention.retention_plan(ds, Assumptions(plan_year="FY2026"))
    for k in tables:
        pd.testing.assert_frame_equal(tables[k], before[k])
    xr.testing.assert_identical(ds, ds_before)


# --------------------------------------------------------------------------- properties

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@st.composite
def subscription_tables(draw):
    n = draw(st.integers(1, 12))
    starts = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    lengths = draw(st.lists(st.one_of(st.none(), st.integers(1, 24)), min_size=n, max_size=n))
    arrs = draw(st.lists(st.floats(1, 1e6, allow_nan=False), min_size=n, max_size=n))
    accts = draw(st.lists(st.sampled_from(["A1", "A2", "A3", "A4"]), min_size=n, max_size=n))
    base = pd.Timestamp("2023-01-01")
    start = [base + pd.DateOffset(months=s, days=d % 27) for d, s in enumerate(starts)]
    end = [
        NaT if ln is None else st_ + pd.DateOffset(months=ln)
        for st_, ln in zip(start, lengths, strict=True)
    ]
    subs = pd.DataFrame(
        {
            "subscription_id": [f"S{i}" for i in range(n)],
            "account_id": accts,
            "start_date": pd.to_datetime(start),
            "end_date": pd.to_datetime(end),
            "arr": arrs,
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "region": ["East", "East", "West", "West"],
            "segment": ["SMB", "Enterprise", "SMB", "Enterprise"],
            "owner_rep_id": ["R1", "R2", "R3", "R3"],
        }
    )
    opps = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2"],
            "close_date": [T("2023-06-10"), T("2025-06-10")],
            "amount": [10.0, 10.0],
            "stage": ["won", "won"],
            "rep_id": ["R1", "R3"],
        }
    )
    return {"subscriptions": subs, "accounts": accounts, "opportunities": opps}


@pytest.mark.slow
@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    tables=subscription_tables(), period=st.sampled_from(["month", "fiscal_quarter", "fiscal_year"])
)
def test_property_bridge_closes_on_random_subscriptions(tables, period):
    ds = build_cube(tables, fiscal_year_start=2)
    for dims in [(), ("region",), ("segment", "rep")]:
        b = retention.arr_bridge(ds, dims=dims, period=period)
        net = b["new"] + b["expansion"] - b["contraction"] - b["churn"]
        np.testing.assert_allclose(
            (b["closing"] - b["opening"]).values,
            net.values,
            atol=1e-9 * max(1.0, float(np.abs(b["closing"]).max())),
        )
        np.testing.assert_allclose(
            b["opening"].isel({period: slice(1, None)}).values,
            b["closing"].isel({period: slice(None, -1)}).values,
            atol=1e-6,
        )
    logos = retention.logo_churn(ds, tables, period=period)
    np.testing.assert_allclose(logos["closing"] - logos["opening"], logos["new"] - logos["lost"])


@pytest.mark.slow
def test_sample_company_customers_sit_in_the_cubes_arr_cells():
    from revmodel import sample

    t = sample.generate(reps=12, months=24)
    ds = build_cube(t)
    m = retention.customer_measures(ds, t)
    assert m.attrs["unattributed_accounts"] == 0
    hist = ds["arr"].sel(month=slice(None, ds.attrs["as_of"]))
    cust = m["customers"].sel(month=slice(None, ds.attrs["as_of"]))
    # A cell has customers exactly where it has ARR.
    assert bool(((cust > 0) == (hist > 0)).all())
    b = retention.arr_bridge(ds, dims=("manager",), period="fiscal_quarter")
    net = b["new"] + b["expansion"] - b["contraction"] - b["churn"]
    np.testing.assert_allclose((b["closing"] - b["opening"]).values, net.values, atol=1e-6)


def test_a_precomputed_history_gives_the_same_plan(cube):
    a = Assumptions(plan_year="FY2026", target_growth=0.1)
    hist = retention.monthly_arr(cube, ("manager",))
    xr.testing.assert_identical(
        retention.retention_plan(cube, a, dims=("manager",), history=hist),
        retention.retention_plan(cube, a, dims=("manager",)),
    )
    churn = retention.historical_churn_rate(cube, ("manager",), history=hist)
    np.testing.assert_allclose(churn.sel(manager=["M1", "M2"]), [60 / 180, 20 / 100])
