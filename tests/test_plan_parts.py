"""The parts of the capacity, quota and scenario arithmetic, each checked on its own against figures worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from revmodel import capacity as cap
from revmodel import config, quota, scenario
from revmodel.errors import InfeasibleError, ParameterError


def _facts(segment, window_bookings):
    n = len(segment)
    nat = np.full(n, np.datetime64("NaT", "ns"))
    return cap._RepFacts(
        rep=np.array([f"R{i}" for i in range(n)], dtype=object),
        segment=np.array(segment, dtype=object),
        region=np.full(n, "East", dtype=object),
        manager=np.full(n, "M", dtype=object),
        hire=nat,
        end=nat,
        own_ramp=np.full(n, np.nan),
        window_bookings=np.array(window_bookings, dtype=float),
    )


def test_segment_productivity_falls_back_from_full_year_reps_to_ramped_years_to_the_company():
    # SMB: two full-year reps booking 120k and 240k -> their mean, 180k, measured on 2 reps.
    # Mid: one rep, 6 ramped months, 60k -> 60k / 6 x 12 = 120k a year, measured on none.
    # Ent: no rep -> the company: (120 + 240 + 60)k over (12 + 12 + 6) months x 12 = 168k.
    facts = _facts(["SMB", "SMB", "Mid"], [120_000, 240_000, 60_000])
    productivity, reps = cap._segment_productivity(
        ["SMB", "Mid", "Ent"], facts, np.array([12.0, 12.0, 6.0]), np.array([True, True, False])
    )
    np.testing.assert_allclose(productivity, [180_000.0, 120_000.0, 168_000.0])
    assert reps.tolist() == [2.0, 0.0, 0.0]


def test_backfill_flows_start_a_backfill_lag_months_after_the_departure():
    # One seat; its rep leaves in month 1; nobody in the seat leaves again (hazard 0); lag 2.
    departures = np.array([[0.0, 1.0, 0.0, 0.0, 0.0]])
    after = np.ones(5, dtype=bool)
    leavers, starts, in_seat = cap._backfill_flows(departures, np.zeros(1), after, 2, True)
    assert leavers.tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0]]
    assert starts.tolist() == [[0.0, 0.0, 0.0, 1.0, 0.0]]
    assert in_seat.tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]
    _, no_starts, empty = cap._backfill_flows(departures, np.zeros(1), after, 2, False)
    assert no_starts.sum() == 0 and empty.sum() == 0


def test_backfill_flows_lose_backfills_at_the_seat_hazard_and_backfill_them_in_turn():
    # The rep leaves in month 1; the backfill starts a month later (lag 1) and leaves at 10 % a
    # month: 0.1 leaves in month 3 (0.9 remain), 0.09 in month 4 when the 0.1 is backfilled.
    departures = np.array([[0.0, 1.0, 0.0, 0.0, 0.0]])
    leavers, starts, in_seat = cap._backfill_flows(
        departures, np.array([0.1]), np.ones(5, dtype=bool), 1, True
    )
    np.testing.assert_allclose(leavers[0], [0.0, 1.0, 0.0, 0.1, 0.09])
    np.testing.assert_allclose(starts[0], [0.0, 0.0, 1.0, 0.0, 0.1])
    np.testing.assert_allclose(in_seat[0], [0.0, 0.0, 1.0, 0.9, 0.91])


def test_ramped_backfills_discount_the_first_months_of_a_linear_ramp():
    # A backfill starting in month 0 with a 4-month linear ramp and no attrition: 1/4, 2/4, 3/4, 1.
    rates = cap._SeatRates(
        segment_ramp=np.array([4.0]), ramp_months=np.array([4.0]), survival=np.array([1.0])
    )
    starts = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])
    in_seat = np.ones((1, 5))
    ramped = cap._ramped_backfills(in_seat, starts, rates, "linear", True)
    np.testing.assert_allclose(ramped[0], [0.25, 0.5, 0.75, 1.0, 1.0])
    assert cap._ramped_backfills(in_seat, starts, rates, "linear", False).tolist() == [[1.0] * 5]


def test_reps_without_a_segment_take_the_one_holding_most_of_their_bookings():
    labels = np.array(["SMB", config.PLACEHOLDER, config.PLACEHOLDER], dtype=object)
    # bookings by (segment, rep): rep 1 books mostly in Ent; rep 2 books nothing.
    by_segment = np.array([[5.0, 1.0, 0.0], [0.0, 9.0, 0.0]])
    filled = cap._fill_from_bookings(labels, ["SMB", "Ent"], by_segment)
    assert filled.tolist() == ["SMB", "Ent", config.PLACEHOLDER]


@pytest.mark.parametrize(("as_of", "start"), [("2025-12-01", 2025 * 12 + 11), ("2026-03-01", None)])
def test_timeline_starts_at_as_of_or_the_first_plan_month(as_of, start):
    from tests.test_capacity import assumptions, make_cube

    inp = cap.plan_inputs(make_cube())
    inp.attrs["as_of"] = as_of
    tl = cap._timeline(inp, assumptions(), None)
    jan = 2026 * 12 - 1970 * 12
    expected = (start - 1970 * 12) if start else jan
    assert tl.start == expected and tl.end == jan + 11
    assert tl.plan_positions.tolist() == list(range(jan - expected, jan - expected + 12))


# --------------------------------------------------------------------------- quota parts


def test_blend_normalises_each_basis_then_weights_them():
    # history [1, 3] and capacity [2, 2], seats ramped 1 and 0.5 years, equal weights:
    # history x ramp = [1, 1.5] -> [0.4, 0.6]; capacity x ramp = [2, 1] -> [2/3, 1/3];
    # the mean is [8/15, 7/15]. Basis values: [1/4, 3/4] and [1/2, 1/2] -> mean x 2 seats.
    values = {"history": np.array([1.0, 3.0]), "capacity": np.array([2.0, 2.0])}
    weight, basis_value = quota._blend(values, {"history": 1, "capacity": 1}, np.array([1.0, 0.5]))
    np.testing.assert_allclose(weight, [8 / 15, 7 / 15])
    np.testing.assert_allclose(basis_value, [0.75, 1.25])
    with pytest.raises(ParameterError, match="blend_weights must be >= 0 and not all zero"):
        quota._blend(values, {"history": -1, "capacity": 2}, np.array([1.0, 0.5]))


def test_hierarchy_splits_the_target_by_region_segment_and_team_then_over_assigns():
    # Weights 1, 1, 2: East and West get 50 each; the two East teams 25 each, West's 50;
    # reps carry round(1.1 x team): rint(27.5) = 28 and 55.
    plan = xr.Dataset(
        coords={
            "rep": ["R1", "R2", "R3"],
            "rep_region": ("rep", np.array(["East", "East", "West"], dtype=object)),
            "rep_segment": ("rep", np.array(["SMB", "SMB", "SMB"], dtype=object)),
            "manager": ("rep", np.array(["M1", "M2", "M3"], dtype=object)),
            "region": np.array(["West", "East", "North"], dtype=object),
            "segment": np.array(["SMB", "Ent"], dtype=object),
        }
    )
    h = quota._allocate_hierarchy(plan, 100.0, np.array([1.0, 1.0, 2.0]), 1.1)
    assert h.team_total.tolist() == [25.0, 25.0, 50.0]
    assert h.rep_total.tolist() == [28.0, 28.0, 55.0]
    assert quota._region_quota(plan, h).tolist() == [50.0, 50.0, 0.0]
    assert quota._segment_quota(plan, h).tolist() == [[50.0, 50.0, 0.0], [0.0, 0.0, 0.0]]
    labels, *_ = quota._teams(h)
    assert labels.tolist() == ["East/SMB/M1", "East/SMB/M2", "West/SMB/M3"]
    with pytest.raises(InfeasibleError) as err:
        quota._allocate_hierarchy(plan, 100.0, np.zeros(3), 1.0)
    assert str(err.value).startswith("no seat has any weight to carry the target of $100: ")


# --------------------------------------------------------------------------- scenario parts


def test_quarterly_rollup_sums_rep_months_by_region_and_quarter():
    # Three reps (East, West, and one in a region the plan does not list) over four months.
    monthly = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0], [100.0] * 4])
    out = scenario._by_quarter(
        monthly,
        np.array(["East", "West", "Nowhere"]),
        np.array(["West", "East"]),
        np.array([0, 0, 1, 1]),
        2,
    )
    assert out.tolist() == [[30.0, 70.0], [3.0, 7.0]]


def test_company_ratios_are_recomputed_from_the_totals_not_summed():
    kpis = {
        "target": np.array([2.0, 2.0]),
        "capacity": np.array([1.0, 3.0]),
        "capacity_to_target": np.array([0.5, 1.5]),
        "opening_arr": np.array([5.0, np.nan]),
        "reps_expected_to_attain": np.array([1.0, 0.0]),
        "churn_rate": np.array([0.1, 0.3]),
    }
    totals = scenario._company_kpis(kpis, 0.25, xr.Dataset({"company_churn_rate": 0.2}))
    assert totals == {
        "target": 4.0,
        "capacity": 4.0,
        "capacity_to_target": 1.0,
        "opening_arr": 5.0,
        "reps_expected_to_attain": 0.25,
        "churn_rate": 0.2,
    }
    assert np.isnan(scenario._ratio(1.0, 0.0)) and scenario._ratio(
        [1.0, 3.0], [2.0, 4.0]
    ).tolist() == [0.5, 0.75]
