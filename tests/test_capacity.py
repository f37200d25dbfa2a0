"""Capacity: ramp, attrition, backfill and hiring arithmetic on a company worked out by hand.

The company (calendar fiscal years, actuals 2024-01 .. 2025-12, plan FY2026):

=====  ==========  ======  =======  ===========  ==========  ==========  =============
rep    segment     region  manager  hire         end         ramp        bookings/month
=====  ==========  ======  =======  ===========  ==========  ==========  =============
R1     SMB         East    M1       2020-01-01               3           10,000
R2     SMB         East    M1       2020-01-01               3           20,000
R3     Enterprise  West    M2       2021-06-01               7           30,000
R4     SMB         West    M2       2026-01-10               3           0 (starts in the plan)
R5     Enterprise  West    M2       2019-03-01   2026-06-30  7           30,000
=====  ==========  ======  =======  ===========  ==========  ==========  =============

so FY2025 bookings are 1,080,000 and a fully ramped rep books 180,000 a year in
SMB (mean of R1, R2) and 360,000 in Enterprise (mean of R3, R5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import calendar as fcal
from revmodel import capacity as cap
from revmodel import config
from revmodel.assumptions import Assumptions, Hire
from revmodel.errors import DataError, InfeasibleError, ParameterError

NAT = np.datetime64("NaT", "ns")
PLAN = pd.date_range("2026-01-01", periods=12, freq="MS")
NO_ATTRITION = {"SMB": 0.0, "Enterprise": 0.0}
RAMP = {"SMB": 3, "Enterprise": 3}


def make_cube(monthly=(10_000.0, 20_000.0, 30_000.0, 0.0, 30_000.0)) -> xr.Dataset:
    months = pd.date_range("2024-01-01", "2025-12-01", freq="MS")
    segs = ["SMB", "Enterprise"]
    regs = ["East", "West"]
    reps = ["R1", "R2", "R3", "R4", "R5"]
    rep_seg = ["SMB", "SMB", "Enterprise", "SMB", "Enterprise"]
    rep_reg = ["East", "East", "West", "West", "West"]
    book = np.zeros((2, 2, 5, len(months)))
    for i, amount in enumerate(monthly):
        book[segs.index(rep_seg[i]), regs.index(rep_reg[i]), i, :] = amount
    mc = fcal.month_coords(months, start_month=1, naming="end")
    obj = lambda v: np.array(v, dtype=object)  # noqa: E731
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), book, {"units": "USD/month"})},
        coords={
            "segment": obj(segs),
            "region": obj(regs),
            "rep": obj(reps),
            "month": months.values,
            "manager": ("rep", obj(["M1", "M1", "M2", "M2", "M2"])),
            "rep_region": ("rep", obj(rep_reg)),
            "rep_segment": ("rep", obj(rep_seg)),
            "hire_date": (
                "rep",
                pd.to_datetime(
                    ["2020-01-01", "2020-01-01", "2021-06-01", "2026-01-10", "2019-03-01"]
                ).values,
            ),
            "end_date": (
                "rep",
                np.array([NAT, NAT, NAT, NAT, np.datetime64("2026-06-30", "ns")]),
            ),
            "ramp_months": ("rep", np.array([3.0, 3.0, 7.0, 3.0, 7.0])),
            "fiscal_quarter": ("month", obj(mc["fiscal_quarter"])),
            "fiscal_year": ("month", obj(mc["fiscal_year"])),
        },
        attrs={
            "fiscal_year_start": 1,
            "fiscal_year_naming": "end",
            "currency": "USD",
            "as_of": "2025-12-01",
        },
    )


@pytest.fixture
def cube() -> xr.Dataset:
    return make_cube()


def assumptions(**changes) -> Assumptions:
    base = {
        "plan_year": "FY2026",
        "rep_attrition": dict(NO_ATTRITION),
        "ramp_months": dict(RAMP),
        "backfill": False,
    }
    base.update(changes)
    return Assumptions(**base)


def series(ds: xr.Dataset, var: str, rep: str) -> np.ndarray:
    return ds[var].sel(rep=rep).values


# --------------------------------------------------------------------------- ramp


@pytest.mark.parametrize(
    ("n", "shape", "expected"),
    [
        (3, "linear", [1 / 3, 2 / 3, 1.0]),
        (4, "linear", [0.25, 0.5, 0.75, 1.0]),
        (1, "linear", [1.0]),
        (0, "linear", [1.0]),
        (2, "s-curve", [0.5, 1.0]),
        (3, "step", [0.0, 0.0, 1.0]),
    ],
)
def test_ramp_curve_by_hand(n, shape, expected):
    np.testing.assert_allclose(cap.ramp_curve(n, shape), expected)


def test_default_ramp_curves_follow_the_default_months():
    assert set(cap.DEFAULT_RAMP_CURVES) == {"SMB", "Mid-Market", "Enterprise"}
    assert len(cap.DEFAULT_RAMP_CURVES["Enterprise"]) == 7
    np.testing.assert_allclose(cap.DEFAULT_RAMP_CURVES["SMB"], [1 / 3, 2 / 3, 1.0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (3, "exponential"),
            "ramp shape 'exponential' is unknown: use one of linear, s-curve, step.",
        ),
        ((40,), "months_to_full must be a whole number of months 0-36, got 40."),
        ((2.5,), "months_to_full must be a whole number of months 0-36, got 2.5."),
    ],
)
def test_ramp_curve_rejects_bad_input(args, message):
    with pytest.raises(ParameterError) as err:
        cap.ramp_curve(*args)
    assert str(err.value) == message


def test_new_hire_ramps_from_its_hire_month(cube):
    plan = cap.capacity_plan(cube, assumptions())
    # R4 starts 2026-01-10: a third in January, two thirds in February, full from March.
    np.testing.assert_allclose(series(plan, "ramp", "R4")[:4], [1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(series(plan, "ramped_fte", "R4")[:4], [1 / 3, 2 / 3, 1, 1])
    # Capacity = ramped FTE x 180,000 / 12.
    np.testing.assert_allclose(series(plan, "capacity", "R4")[:3], [5_000, 10_000, 15_000])
    assert plan["capacity"].attrs["units"] == "USD/month"
    assert plan["headcount"].attrs["units"] == "reps"


def test_own_ramp_months_win_for_named_reps_and_assumptions_for_planned_hires(cube):
    plan = cap.capacity_plan(
        cube,
        assumptions(
            ramp_months={"SMB": 2, "Enterprise": 3},
            hires=(Hire("SMB", "East", "2026-03", 1),),
        ),
    )
    assert plan["ramp_months"].sel(rep="R4").item() == 3  # the reps table says 3
    tbh = "TBH-SMB-East-2026-03-1"
    assert plan["ramp_months"].sel(rep=tbh).item() == 2
    np.testing.assert_allclose(series(plan, "ramp", tbh)[:5], [0, 0, 0.5, 1, 1])


def test_planned_hires_are_named_seats_with_their_team(cube):
    a = assumptions(hires=(Hire("SMB", "East", "2026-03", 2), Hire("SMB", "East", "2026-03", 1)))
    plan = cap.capacity_plan(cube, a)
    tbh = [r for r in plan["rep"].values if r.startswith("TBH")]
    assert tbh == [
        "TBH-SMB-East-2026-03-1",
        "TBH-SMB-East-2026-03-2",
        "TBH-SMB-East-2026-03-3",
    ]
    head = plan.sel(rep=tbh[0])
    assert head["planned"].item()
    assert head["manager"].item() == "M1"  # the manager of most SMB East reps
    assert head["rep_region"].item() == "East"
    np.testing.assert_allclose(head["ramp"].values[:6], [0, 0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(head["capacity"].values[:6], [0, 0, 5_000, 10_000, 15_000, 15_000])
    assert not plan["planned"].sel(rep="R1").item()


def test_hire_in_unknown_region_or_segment_names_it(cube):
    with pytest.raises(ParameterError) as err:
        cap.capacity_plan(cube, assumptions(hires=(Hire("SMB", "Mars", "2026-03", 1),)))
    assert str(err.value) == (
        "hires[0]: region 'Mars' is not in the cube (known: East, West); fix the hire's region."
    )
    with pytest.raises(
        ParameterError, match=r"hires\[1\]: segment 'Mid-Market' is not in the cube"
    ):
        cap.capacity_plan(
            cube,
            assumptions(
                hires=(Hire("SMB", "East", "2026-03"), Hire("Mid-Market", "East", "2026-03"))
            ),
        )


# --------------------------------------------------------------------------- attrition, leavers


def test_attrition_is_a_constant_monthly_hazard_after_as_of(cube):
    plan = cap.capacity_plan(cube, assumptions(rep_attrition={"SMB": 0.12, "Enterprise": 0.0}))
    survival = 0.88 ** (np.arange(1, 13) / 12)  # January 2026 is one month after as_of
    np.testing.assert_allclose(series(plan, "headcount", "R1"), survival)
    assert series(plan, "headcount", "R1")[-1] == pytest.approx(0.88)
    # Monthly hazard 1 - 0.88 ** (1/12): the expected leavers of a month.
    hazard = 1 - 0.88 ** (1 / 12)
    assert series(plan, "leavers", "R1")[0] == pytest.approx(hazard)
    np.testing.assert_allclose(series(plan, "leavers", "R1")[1:], survival[:-1] * hazard)
    # A planned hire survives from its own start.
    a = assumptions(
        rep_attrition={"SMB": 0.12, "Enterprise": 0.0}, hires=(Hire("SMB", "East", "2026-07", 1),)
    )
    head = cap.capacity_plan(cube, a).sel(rep="TBH-SMB-East-2026-07-1")["headcount"].values
    np.testing.assert_allclose(head[6:], 0.88 ** (np.arange(6) / 12))
    np.testing.assert_allclose(head[:6], 0)


def test_known_leaver_leaves_after_the_end_month(cube):
    plan = cap.capacity_plan(cube, assumptions())
    np.testing.assert_allclose(series(plan, "headcount", "R5"), [1] * 6 + [0] * 6)
    np.testing.assert_allclose(series(plan, "leavers", "R5"), [0] * 6 + [1] + [0] * 5)
    np.testing.assert_allclose(series(plan, "backfills", "R5"), 0)


@pytest.mark.parametrize(
    ("lag", "headcount", "ramped"),
    [
        (2, [1] * 6 + [0, 0, 1, 1, 1, 1], [1] * 6 + [0, 0, 1 / 3, 2 / 3, 1, 1]),
        (0, [1] * 12, [1] * 6 + [1 / 3, 2 / 3, 1, 1, 1, 1]),
    ],
)
def test_backfill_starts_after_the_lag_and_ramps(cube, lag, headcount, ramped):
    plan = cap.capacity_plan(cube, assumptions(backfill=True, backfill_lag_months=lag))
    np.testing.assert_allclose(series(plan, "headcount", "R5"), headcount)
    np.testing.assert_allclose(series(plan, "ramped_fte", "R5"), ramped)
    starts = np.zeros(12)
    starts[6 + lag] = 1
    np.testing.assert_allclose(series(plan, "backfills", "R5"), starts)
    # Capacity of the seat: 360,000 / 12 = 30,000 a month at full ramp.
    np.testing.assert_allclose(series(plan, "capacity", "R5"), np.array(ramped) * 30_000)


def test_instant_backfill_keeps_expected_headcount_whole(cube):
    a = assumptions(
        backfill=True, backfill_lag_months=0, rep_attrition={"SMB": 0.3, "Enterprise": 0.2}
    )
    plan = cap.capacity_plan(cube, a)
    named = ["R1", "R2", "R3", "R5"]
    np.testing.assert_allclose(plan["headcount"].sel(rep=named).values, 1.0, atol=1e-12)
    # ... but ramp-weighted it dips, since every backfill ramps from zero.
    assert (plan["ramped_fte"].sel(rep="R1").values[1:] < 1).all()


def test_backfills_are_expected_leavers_lagged(cube):
    a = assumptions(
        backfill=True, backfill_lag_months=2, rep_attrition={"SMB": 0.2, "Enterprise": 0.2}
    )
    plan = cap.capacity_plan(cube, a)
    lv = series(plan, "leavers", "R1")
    np.testing.assert_allclose(series(plan, "backfills", "R1")[2:], lv[:-2])
    # People in the seat: survivors of the named rep plus surviving backfills.
    q = 0.8 ** (1 / 12)
    named = q ** np.arange(1, 13)
    assert series(plan, "headcount", "R1")[2] == pytest.approx(named[2] + lv[0] * q**0)
    assert series(plan, "headcount", "R1")[3] == pytest.approx(named[3] + lv[0] * q + lv[1])


def test_seats_are_reps_working_in_the_plan(cube):
    plan = cap.capacity_plan(
        cube, assumptions(), months=pd.date_range("2026-08-01", periods=12, freq="MS")
    )
    # R5 left in June 2026, before the plan starts, but after as_of: kept (its backfill may land).
    assert list(plan["rep"].values) == ["R1", "R2", "R3", "R4", "R5"]
    np.testing.assert_allclose(series(plan, "headcount", "R5"), 0)


# --------------------------------------------------------------------------- productivity


def test_productivity_from_history_uses_fully_ramped_full_year_reps(cube):
    prod = cap.productivity_from_history(cube)
    assert prod.sel(segment="SMB").item() == pytest.approx(180_000)
    assert prod.sel(segment="Enterprise").item() == pytest.approx(360_000)
    assert prod["productivity_reps"].sel(segment="SMB").item() == 2
    assert prod.attrs["units"] == "USD/year"
    inp = cap.plan_inputs(cube)
    assert inp.attrs["history_window"] == "FY2025"
    assert inp.attrs["last_year_bookings"] == 1_080_000
    assert not inp["full_year"].sel(rep="R4").item()


def test_ramping_rep_is_left_out_of_productivity():
    # R2 hired in 2025-11 with a 3-month ramp: not fully ramped for FY2025.
    cube = make_cube().assign_coords(
        hire_date=(
            "rep",
            pd.to_datetime(
                ["2020-01-01", "2025-11-01", "2021-06-01", "2026-01-10", "2019-03-01"]
            ).values,
        )
    )
    prod = cap.productivity_from_history(cube)
    assert prod.sel(segment="SMB").item() == pytest.approx(120_000)  # R1 alone
    assert prod["productivity_reps"].sel(segment="SMB").item() == 1
    # R2 sold 20,000 a month in November and December while ramping 1/3 and 2/3: a run rate
    # of 240,000 per ramped year would be right, but 2 months of history are too few.
    inp = cap.plan_inputs(cube)
    assert inp["ramped_months_last_year"].sel(rep="R2").item() == pytest.approx(1.0)
    assert np.isnan(inp["run_rate"].sel(rep="R2").item())


def test_productivity_and_its_change_come_from_the_assumptions(cube):
    a = assumptions(productivity={"SMB": 240_000.0}, productivity_change=0.5)
    plan = cap.capacity_plan(cube, a)
    assert plan["productivity"].sel(segment="SMB").item() == pytest.approx(360_000)
    assert plan["productivity"].sel(segment="Enterprise").item() == pytest.approx(540_000)
    assert series(plan, "capacity", "R1")[0] == pytest.approx(30_000)


# --------------------------------------------------------------------------- gap and hires


def _target(cube_plan: xr.Dataset, extra: dict[tuple[str, str], float]) -> xr.DataArray:
    cap_sr = cap.capacity_gap(cube_plan, 0.0)["capacity"]
    out = cap_sr.copy()
    for (s, r), v in extra.items():
        out.loc[{"segment": s, "region": r}] = out.sel(segment=s, region=r) + v
    return out


def test_capacity_gap_against_a_target_by_cell(cube):
    plan = cap.capacity_plan(cube, assumptions())
    target = _target(plan, {("SMB", "East"): 200_000.0})
    gap = cap.capacity_gap(plan, target)
    assert gap["gap"].sel(segment="SMB", region="East").item() == pytest.approx(200_000)
    assert gap["gap"].sel(segment="Enterprise", region="West").item() == pytest.approx(0)
    # SMB East: R1 and R2, 12 months each at 15,000.
    assert gap["capacity"].sel(segment="SMB", region="East").item() == pytest.approx(360_000)
    assert gap["capacity_to_target"].sel(segment="SMB", region="East").item() == pytest.approx(
        360 / 560
    )


def test_a_number_target_is_spread_by_capacity(cube):
    plan = cap.capacity_plan(cube, assumptions())
    gap = cap.capacity_gap(plan, 2.0 * float(plan["capacity"].sum()))
    np.testing.assert_allclose(gap["capacity_to_target"].values[gap["capacity"].values > 0], 0.5)


def test_hires_needed_when_the_ramp_reaches_into_the_plan(cube):
    plan = cap.capacity_plan(cube, assumptions())
    gap = cap.capacity_gap(plan, _target(plan, {("SMB", "East"): 200_000.0}))
    table = cap.hires_needed(plan, gap)
    assert list(table.columns) == [
        "segment",
        "region",
        "gap",
        "hires",
        "start_by",
        "yield_per_hire",
    ]
    row = table.iloc[0]
    assert (row.segment, row.region) == ("SMB", "East")
    # Three months before January is before as_of, so the hire starts in January 2026 and
    # books 15,000 x (1/3 + 2/3 + 10 full months) = 165,000; 200,000 needs 2 hires.
    assert row.start_by == pd.Timestamp("2026-01-01")
    assert row.yield_per_hire == pytest.approx(165_000)
    assert row.hires == 2
    assert len(table) == 1


def test_hires_start_ramp_months_before_the_plan(cube):
    later = pd.date_range("2026-07-01", periods=12, freq="MS")
    plan = cap.capacity_plan(cube, assumptions(), months=later)
    gap = cap.capacity_gap(plan, _target(plan, {("SMB", "West"): 360_000.0}))
    row = cap.hires_needed(plan, gap).iloc[0]
    assert row.start_by == pd.Timestamp("2026-04-01")  # fully ramped by July
    assert row.yield_per_hire == pytest.approx(180_000)
    assert row.hires == 2  # exactly two, not three


def test_hires_needed_close_the_gap(cube):
    a = assumptions(rep_attrition={"SMB": 0.2, "Enterprise": 0.1}, backfill=True)
    plan = cap.capacity_plan(cube, a)
    target = _target(plan, {("SMB", "East"): 500_000.0, ("Enterprise", "West"): 700_000.0})
    table = cap.hires_needed(plan, cap.capacity_gap(plan, target))
    assert set(zip(table.segment, table.region, strict=True)) == {
        ("SMB", "East"),
        ("Enterprise", "West"),
    }
    hires = cap.as_hires(table)
    assert sum(h.count for h in hires) == int(table.hires.sum())
    replanned = cap.capacity_plan(cube, a.with_changes(hires=hires))
    assert (cap.capacity_gap(replanned, target)["gap"].values <= 1e-6).all()


def test_no_hire_closes_a_gap_without_productivity(cube):
    a = assumptions(productivity={"SMB": 0.0, "Enterprise": 360_000.0})
    plan = cap.capacity_plan(cube, a)
    gap = cap.capacity_gap(plan, _target(plan, {("SMB", "East"): 1_000.0}))
    with pytest.raises(
        InfeasibleError, match=r"segment 'SMB', region 'East': a shortfall of 1,000 USD"
    ):
        cap.hires_needed(plan, gap)


# --------------------------------------------------------------------------- contract


def test_inputs_are_not_mutated_and_inputs_shortcut_is_identical(cube):
    before = cube.copy(deep=True)
    a = assumptions(backfill=True, rep_attrition={"SMB": 0.2, "Enterprise": 0.1})
    from_cube = cap.capacity_plan(cube, a)
    from_inputs = cap.capacity_plan(cap.plan_inputs(cube), a)
    xr.testing.assert_identical(cube, before)
    xr.testing.assert_identical(from_cube, from_inputs)


def test_dask_backed_cube_gives_the_same_plan(cube):
    pytest.importorskip("dask")
    a = assumptions(backfill=True)
    lazy = cube.chunk({"rep": 2})
    xr.testing.assert_allclose(cap.capacity_plan(lazy, a), cap.capacity_plan(cube, a))


def test_plan_months_default_to_the_plan_year_and_are_checked(cube):
    plan = cap.capacity_plan(cube, assumptions())
    assert list(pd.DatetimeIndex(plan["month"].values)) == list(PLAN)
    assert set(plan["fiscal_year"].values) == {"FY2026"}
    with pytest.raises(ParameterError, match=r"^months must be consecutive and increasing"):
        cap.capacity_plan(cube, assumptions(), months=["2026-01-01", "2026-03-01"])


def test_not_a_cube_is_a_clear_error():
    with pytest.raises(DataError, match=r"the cube lacks 'bookings', 'as_of'"):
        cap.plan_inputs(
            xr.Dataset(
                coords={d: [0] for d in ("segment", "region", "rep", "month")},
                attrs={"fiscal_year_start": 1},
            )
        )


def test_built_cube_placeholder_rep_is_not_a_seat():
    from revmodel.cube import build_cube

    T = pd.Timestamp
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2"],
            "manager": ["M1", "M1"],
            "region": ["East", "East"],
            "segment": ["SMB", "SMB"],
            "hire_date": [T("2020-01-01"), T("2020-01-01")],
            "end_date": [pd.NaT, pd.NaT],
            "ramp_months": [3.0, 3.0],
        }
    )
    closes = pd.date_range("2024-01-15", periods=24, freq="MS") + pd.Timedelta(days=14)
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"O{i}" for i in range(48)],
            "close_date": list(closes) * 2,
            "amount": [1000.0] * 24 + [500.0] * 24,
            "stage": ["won"] * 48,
            "rep_id": ["R1"] * 24 + [None] * 24,
            "segment": ["SMB"] * 48,
            "region": ["East"] * 48,
        }
    )
    ds = build_cube({"reps": reps, "opportunities": opps}, fiscal_year_start=1)
    assert config.PLACEHOLDER in ds["rep"].values
    plan = cap.capacity_plan(ds, Assumptions(plan_year="FY2026"))
    assert list(plan["rep"].values) == ["R1", "R2"]
    assert plan["productivity"].sel(segment="SMB").item() == pytest.approx(6_000)  # (12k + 0) / 2
    # Company bookings of FY2025 count the deals without a rep.
    assert cap.plan_inputs(ds).attrs["last_year_bookings"] == pytest.approx(18_000)
