"""Quotas on the hand-made company of tests/test_capacity.py (FY2025 bookings 1,080,000)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from revmodel import capacity as cap
from revmodel import quota as Q
from revmodel.errors import DataError, ParameterError
from tests.test_capacity import assumptions, make_cube


@pytest.fixture
def cube() -> xr.Dataset:
    return make_cube()


@pytest.fixture
def td(cube) -> xr.Dataset:
    return Q.top_down(cube, assumptions())


# --------------------------------------------------------------------------- allocate


def test_allocate_by_hand():
    np.testing.assert_array_equal(Q.allocate(100, [1, 1, 1]), [34, 33, 33])
    np.testing.assert_array_equal(Q.allocate(10, [0.5, 0.3, 0.2]), [5, 3, 2])
    np.testing.assert_array_equal(Q.allocate(7, [1, 0, 1]), [4, 0, 3])
    np.testing.assert_array_equal(Q.allocate(1000.4, [2, 1]), [667, 333])
    da = xr.DataArray([3.0, 1.0], dims="rep", coords={"rep": ["a", "b"]})
    out = Q.allocate(9, da)
    assert out.sel(rep="a").item() == 7 and out.sel(rep="b").item() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (10, [0, 0]),
            "allocate: every weight is zero, so there is nothing to split 10 by: give at least one positive weight.",
        ),
        ((10, [1, -1]), "weights must be finite and >= 0: position 1 is -1.0."),
        ((-5, [1]), "total must be a finite amount >= 0, got -5.0."),
    ],
)
def test_allocate_rejects_bad_input(args, message):
    with pytest.raises(ParameterError) as err:
        Q.allocate(*args)
    assert str(err.value) == message


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 10**9),
    weights=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=40).filter(
        lambda w: sum(w) > 0
    ),
)
def test_allocate_sums_exactly_and_stays_within_a_unit(total, weights):
    out = Q.allocate(total, weights)
    assert out.sum() == total
    assert (out == np.round(out)).all() and (out >= 0).all()
    raw = total * np.array(weights) / np.sum(weights)
    assert (np.abs(out - raw) < 1 + 1e-6).all()
    assert (out[np.array(weights) == 0] == 0).all()


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(
    total=st.integers(0, 10**8),
    data=st.data(),
    over=st.sampled_from([1.0, 1.1, 1.25]),
)
def test_allocate_levels_every_level_adds_up(total, data, over):
    n = data.draw(st.integers(1, 60))
    w = np.array(data.draw(st.lists(st.floats(0.01, 1e5), min_size=n, max_size=n)))
    levels = [
        np.array(data.draw(st.lists(st.sampled_from("ABC"), min_size=n, max_size=n))),
        np.array(data.draw(st.lists(st.sampled_from("xy"), min_size=n, max_size=n))),
    ]
    out = Q.allocate_levels(total, w, levels, over_assignment=over)
    parent_node, parent_tot = np.zeros(n, dtype=int), np.array([total], dtype=float)
    for node, tot in out[:-1]:
        # Each child node's total adds up to its parent's.
        first = np.unique(node, return_index=True)[1]
        sums = np.bincount(parent_node[first], weights=tot, minlength=len(parent_tot))
        np.testing.assert_array_equal(sums, parent_tot)
        parent_node, parent_tot = node, tot
    leaves = out[-1][1]
    np.testing.assert_array_equal(
        np.bincount(parent_node, weights=leaves, minlength=len(parent_tot)),
        np.rint(parent_tot * over),
    )


# --------------------------------------------------------------------------- target, top-down


def test_company_target_grows_last_year_or_takes_the_amount(cube):
    assert Q.company_target(cube, assumptions()) == pytest.approx(1_350_000)
    assert Q.company_target(cube, assumptions(target_growth=0.1)) == pytest.approx(1_188_000)
    assert Q.company_target(cube, assumptions(target_amount=2e6)) == 2e6


def test_no_history_and_no_amount_is_a_clear_error():
    empty = make_cube(monthly=(0.0,) * 5)
    with pytest.raises(DataError) as err:
        Q.company_target(empty, assumptions())
    assert (
        str(err.value)
        == "no bookings in FY2025 to grow a target from: set assumptions.target_amount."
    )


def test_regions_by_history_by_hand(td):
    # Weights: run rate x ramped years. East: R1 120k + R2 240k = 360k. West: R3 360k,
    # R4 (new: SMB productivity 180k x 11/12) 165k, R5 (leaves after June) 360k x 6/12 = 180k.
    # 1,350,000 x 360 / 1065 = 456,338.03 and 893,661.97 -> largest remainder to West.
    assert td["target"].item() == 1_350_000
    assert td["region_quota"].sel(region="East").item() == 456_338
    assert td["region_quota"].sel(region="West").item() == 893_662
    assert td["quota"].attrs["units"] == "USD/month"


def test_every_level_adds_up_exactly(td):
    assert td["region_quota"].sum().item() == td["target"].item()
    np.testing.assert_array_equal(
        td["segment_quota"].sum("segment").values, td["region_quota"].values
    )
    for team in td["team"].values:
        t = td.sel(team=team)
        inside = td["segment_quota"].sel(
            segment=t["team_segment"].item(), region=t["team_region"].item()
        )
        same = (td["team_segment"] == t["team_segment"]) & (td["team_region"] == t["team_region"])
        assert td["team_quota"].where(same).sum().item() == inside.item()
        reps = td["rep_team"] == team
        # Over-assignment: the team's reps carry round(1.10 x the team's quota).
        assert td["rep_quota"].where(reps).sum().item() == np.rint(1.1 * t["team_quota"].item())
    np.testing.assert_array_equal(td["quota"].sum("month").values, td["rep_quota"].values)
    q = td["quota"].values
    assert (q == np.round(q)).all()


@pytest.mark.parametrize("over", [1.0, 1.1, 1.25])
def test_over_assignment_ratio_is_as_set(cube, over):
    td = Q.top_down(cube, assumptions(over_assignment=over))
    assert td["rep_quota"].sum().item() == pytest.approx(
        over * td["target"].item(), abs=len(td["team"])
    )
    assert td.attrs["over_assignment"] == over


def test_leaver_gets_no_quota_after_the_end_month(td):
    r5 = td["quota"].sel(rep="R5").values
    assert (r5[:6] > 0).all()
    np.testing.assert_array_equal(r5[6:], 0)
    assert td["ramp_years"].sel(rep="R5").item() == pytest.approx(0.5)


def test_new_hire_quota_is_ramp_adjusted(td):
    # Flat seasonality (the same bookings every month), so months follow the ramp 1/3, 2/3, 1.
    r4 = td["quota"].sel(rep="R4").values
    full = r4[2]
    assert r4[0] == pytest.approx(full / 3, abs=1)
    assert r4[1] == pytest.approx(2 * full / 3, abs=1)
    assert (np.abs(r4[2:] - full) <= 1).all()
    # Its quota per ramped year matches a full-year SMB rep's per unit of basis.
    fq = td["full_quota"] / td["basis_value"]
    assert fq.sel(rep="R4").item() == pytest.approx(fq.sel(rep="R1").item(), rel=1e-4)


def test_planned_hires_get_quota_from_their_start(cube):
    td = Q.top_down(cube, assumptions(hires=(cap.Hire("SMB", "East", "2026-04", 1),)))
    q = td["quota"].sel(rep="TBH-SMB-East-2026-04-1").values
    np.testing.assert_array_equal(q[:3], 0)
    assert q[3] > 0 and q[5] > q[3]


def test_seasonality_phases_months(cube):
    # Book everything of 2024 and 2025 in the last month of each quarter.
    c = cube.copy(deep=True)
    m = pd.DatetimeIndex(c["month"].values).month
    c["bookings"] = c["bookings"] * xr.DataArray(np.where(m % 3 == 0, 3.0, 0.0), dims="month")
    td = Q.top_down(c, assumptions())
    r1 = td["quota"].sel(rep="R1").values
    np.testing.assert_array_equal(r1[m[:12] % 3 != 0], 0)
    assert r1.sum() == td["rep_quota"].sel(rep="R1").item()


def test_bases_capacity_potential_and_blend(cube):
    a = assumptions()
    by_cap = Q.top_down(cube, a, basis="capacity")
    # Capacity basis: SMB East seats are equal, so R1 and R2 split evenly.
    assert (
        abs(by_cap["rep_quota"].sel(rep="R1").item() - by_cap["rep_quota"].sel(rep="R2").item())
        <= 1
    )
    pot = xr.DataArray(
        [1.0, 3.0, 2.0, 2.0, 2.0], dims="rep", coords={"rep": ["R1", "R2", "R3", "R4", "R5"]}
    )
    by_pot = Q.top_down(cube, a, basis="potential", potential=pot)
    assert by_pot["rep_quota"].sel(rep="R2").item() == pytest.approx(
        3 * by_pot["rep_quota"].sel(rep="R1").item(), abs=3
    )
    blend = Q.top_down(cube, a, basis="blend", potential=pot)
    assert blend["region_quota"].sum().item() == 1_350_000
    assert blend.attrs["basis"] == "blend"
    # A seat without a potential takes its segment and region's mean.
    partial = Q.top_down(cube, a, basis="potential", potential=pot.drop_sel(rep="R2"))
    assert partial["basis_value"].sel(rep="R2").item() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"basis": "gut"},
            "allocation basis 'gut' is unknown: use one of history, potential, capacity, blend.",
        ),
        (
            {"basis": "potential"},
            "allocation basis 'potential' needs a potential per rep: pass potential= "
            "(e.g. territory.rep_potential(plan)) or use basis 'history'.",
        ),
        (
            {"basis": "potential", "potential": pd.Series({"R1": -1.0})},
            "potential of rep 'R1' is -1.0; potentials must be >= 0.",
        ),
    ],
)
def test_top_down_rejects_bad_input(cube, kwargs, message):
    with pytest.raises(ParameterError) as err:
        Q.top_down(cube, assumptions(), **kwargs)
    assert str(err.value) == message


def test_longer_horizon_scales_the_annual_target(cube):
    months = pd.date_range("2026-01-01", periods=36, freq="MS")
    td = Q.top_down(cube, assumptions(), months=months)
    assert td["target"].item() == 3 * 1_350_000
    assert td.sizes["month"] == 36


# --------------------------------------------------------------------------- bottom-up, compare


def test_bottom_up_and_compare(cube, td):
    plan = cap.capacity_plan(cube, assumptions())
    bu = Q.bottom_up(plan)
    # R1: 12 months at 15,000.
    assert bu["rep_quota"].sel(rep="R1").item() == pytest.approx(180_000)
    cmp = Q.compare(td, bu)
    total_cap = float(plan["capacity"].sum())
    assert cmp["bottom_up_total"].item() == pytest.approx(total_cap)
    assert cmp["gap_total"].item() == pytest.approx(1_350_000 - total_cap)
    assert cmp["gap_region"].sel(region="East").item() == pytest.approx(456_338 - 360_000)
    np.testing.assert_allclose(cmp["bottom_up_segment"].sum().item(), total_cap)
    np.testing.assert_allclose(
        cmp["gap_rep"].values, td["rep_quota"].values - bu["rep_quota"].values
    )


# --------------------------------------------------------------------------- attainment


def test_attainment_with_tolerance_exact_values():
    reps = ["a", "b", "c", "d"]
    b = xr.DataArray([90.0, 89.99, 100.0, 5.0], dims="rep", coords={"rep": reps})
    q = xr.DataArray([100.0, 100.0, 80.0, 0.0], dims="rep", coords={"rep": reps})
    out = Q.attainment(b, q, tolerance=0.9)
    np.testing.assert_allclose(out["attainment"].values, [0.9, 0.8999, 1.25, np.nan])
    assert out["met"].values.tolist() == [True, False, True, False]
    strict = Q.attainment(b, q, tolerance=1.0)
    assert strict["met"].values.tolist() == [False, False, True, False]
    with pytest.raises(ParameterError, match=r"^tolerance must be in \(0, 2\], got 0\.$"):
        Q.attainment(b, q, tolerance=0)


def test_attainment_sums_the_period_and_the_cube_dims(cube, td):
    # Last year's bookings against this year's quota, month by month aligned by position.
    last = cube["bookings"].isel(month=slice(12, 24)).assign_coords(month=td["month"].values)
    out = Q.attainment(last, td)
    assert out["bookings"].sel(rep="R1").item() == 120_000
    assert out["attainment"].sel(rep="R1").item() == pytest.approx(
        120_000 / td["rep_quota"].sel(rep="R1").item()
    )
    assert out["met"].dims == ("rep",)


def test_expected_attainment_deterministic_and_lognormal():
    reps = ["a", "b", "c"]
    q = xr.DataArray([100.0, 100.0, 100.0], dims="rep", coords={"rep": reps})
    e = xr.DataArray([95.0, 85.0, 90.0], dims="rep", coords={"rep": reps})
    out = Q.expected_attainment(q, e, tolerance=0.9)
    assert out["p_attain"].values.tolist() == [1.0, 0.0, 1.0]
    assert out["share_expected_to_attain"].item() == pytest.approx(2 / 3)
    cv = 0.5
    sigma = np.sqrt(np.log1p(cv**2))
    prob = Q.expected_attainment(q, e, tolerance=0.9, cv=cv)["p_attain"].values
    want = [
        stats.lognorm(s=sigma, scale=x * np.exp(-(sigma**2) / 2)).sf(90.0) for x in (95, 85, 90)
    ]
    np.testing.assert_allclose(prob, want)


# --------------------------------------------------------------------------- balance


def test_balance_flags_a_planted_outlier(td):
    history = td["history"].copy()
    # R2's potential is a third of its history, so its quota is 3x heavier than the others'.
    planted = history.copy()
    planted.loc["R2"] = history.sel(rep="R2").item() / 3
    out = Q.balance(td, potential=planted)
    assert out["out_of_line"].values.tolist() == [False, True, False, False, False]
    assert out["n_out_of_line"].item() == 1
    assert out["relative"].sel(rep="R2").item() == pytest.approx(3.0, rel=1e-3)
    assert out["median"].item() == pytest.approx(1.1 * 1_350_000 / 1_065_000, rel=1e-3)
    # With the history itself as potential every rep is in line (ratios differ by rounding only).
    even = Q.balance(td)
    assert even["n_out_of_line"].item() == 0
    assert even["cv"].item() < 1e-4
    assert even["p10"].item() == pytest.approx(even["p90"].item(), rel=1e-4)


def test_balance_z_score_flags_within_the_band():
    n = 20
    reps = [f"r{i}" for i in range(n)]
    ratio = np.r_[np.linspace(0.97, 1.03, n - 1), 1.2]
    ds = xr.Dataset(
        {
            "full_quota": ("rep", ratio * 100.0),
            "history": ("rep", np.full(n, 100.0)),
            "quota": (("rep", "month"), np.ones((n, 1))),
        },
        coords={"rep": reps, "rep_segment": ("rep", ["S"] * n), "rep_region": ("rep", ["E"] * n)},
    )
    out = Q.balance(ds)
    assert out["relative"].sel(rep="r19").item() < 1.25  # inside the band ...
    assert out["z"].sel(rep="r19").item() > 2  # ... but far from the rest
    assert out["out_of_line"].values.tolist() == [False] * (n - 1) + [True]


def test_balance_reports_share_expected_to_attain(cube, td):
    plan = cap.capacity_plan(cube, assumptions())
    out = Q.balance(td, expected=plan["capacity"])
    share = Q.expected_attainment(td, plan["capacity"])["share_expected_to_attain"].item()
    assert out["share_expected_to_attain"].item() == share
    # Quotas are over-assigned 10% above a target 25% over last year: SMB East reps fall short.
    assert 0 <= share < 1


def test_one_largest_remainder_allocator_adds_up_exactly():
    from revmodel.allocation import largest_remainder, largest_remainder_groups

    assert largest_remainder(10, np.array([1.0, 1.0, 1.0])).tolist() == [4, 3, 3]
    # 3.5, 1.75, 1.75: floors 3, 1, 1; the two units left go to the larger remainders.
    assert largest_remainder(7, np.array([0.5, 0.25, 0.25])).tolist() == [3, 2, 2]
    out, stuck = largest_remainder_groups(
        np.array([10.0, 3.0, 5.0]),
        np.array([0, 0, 0, 1, 1, 2]),
        np.array([1.0, 1, 1, 2, 1, 0]),
        3,
    )
    assert out.tolist() == [4.0, 3.0, 3.0, 2.0, 1.0, 0.0]
    assert stuck.tolist() == [False, False, True]


# --------------------------------------------------------------------------- currency


@pytest.mark.parametrize(("code", "amount"), [("EUR", "€1,200,000"), ("GBP", "£1,200,000")])
def test_messages_and_units_speak_the_cube_currency(code, amount):
    """A company in EUR or GBP reads its own currency in quota messages and units, never USD."""
    from revmodel.errors import InfeasibleError

    cube = make_cube().assign_attrs(currency=code)
    td = Q.top_down(cube, assumptions())
    assert td["quota"].attrs["units"] == f"{code}/month"
    plan = cap.capacity_plan(cube, assumptions())
    bu = Q.bottom_up(plan)
    assert bu["rep_quota"].attrs["units"] == code
    assert Q.compare(td, bu).attrs["currency"] == code
    assert Q.compare(td, bu)["gap_total"].attrs["units"] == code
    got = Q.attainment(td["quota"].isel(month=slice(0, 3)), td, tolerance=0.9)
    assert got["bookings"].attrs["units"] == code and got.attrs["currency"] == code

    # Nobody employed in the plan year: the target that cannot be carried, in the company's money.
    gone = cube.assign_coords(end_date=("rep", np.full(5, np.datetime64("2025-12-31", "ns"))))
    with pytest.raises(InfeasibleError) as err:
        Q.top_down(gone, assumptions(target_amount=1_200_000))
    assert str(err.value) == (
        f"no seat has any weight to carry the target of {amount}: no rep is employed in the plan "
        "months (or every basis value is zero); add hires."
    )
