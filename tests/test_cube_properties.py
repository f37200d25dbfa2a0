"""Hypothesis properties of the cube: roll-ups never create or lose revenue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revmodel.cube import REP_LEVELS, SERIES_DIMS, build_cube, rollup

pytestmark = pytest.mark.slow

REPS = ["R1", "R2", "R3", "R4", "R5"]


@st.composite
def deal_tables(draw):
    n = draw(st.integers(min_value=1, max_value=40))
    days = draw(st.lists(st.integers(0, 900), min_size=n, max_size=n))
    amounts = draw(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=n, max_size=n))
    stages = draw(st.lists(st.sampled_from(["won", "lost", "proposal"]), min_size=n, max_size=n))
    stages[0] = "won"  # a cube needs at least one closed deal
    reps = draw(st.lists(st.sampled_from(REPS), min_size=n, max_size=n))
    segments = draw(
        st.lists(st.sampled_from(["SMB", "Mid-Market", "Enterprise"]), min_size=n, max_size=n)
    )
    regions = draw(st.lists(st.sampled_from(["EMEA", "APAC", "AMER"]), min_size=n, max_size=n))
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"O{i}" for i in range(n)],
            "close_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D"),
            "amount": amounts,
            "stage": stages,
            "rep_id": reps,
            "segment": segments,
            "region": regions,
        }
    )
    managers = draw(st.lists(st.sampled_from(["M1", "M2"]), min_size=len(REPS), max_size=len(REPS)))
    reps_table = pd.DataFrame({"rep_id": REPS, "manager": managers, "region": "EMEA"})
    start = draw(st.integers(1, 12))
    return {"opportunities": opps, "reps": reps_table}, start


levels = st.lists(st.sampled_from(SERIES_DIMS), unique=True).flatmap(
    lambda dims: st.one_of(
        st.just(tuple(dims)),
        st.sampled_from(REP_LEVELS).map(lambda lvl: tuple(d for d in dims if d != "rep") + (lvl,)),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=deal_tables(),
    dims=levels,
    period=st.sampled_from(["month", "fiscal_quarter", "fiscal_year"]),
)
def test_any_rollup_sums_to_the_grand_total(data, dims, period):
    tables, start = data
    ds = build_cube(tables, fiscal_year_start=start)
    won = tables["opportunities"]["stage"] == "won"
    as_of = pd.Timestamp(ds.attrs["as_of"])
    grand = (
        tables["opportunities"]
        .loc[
            won & (tables["opportunities"]["close_date"] < as_of + pd.DateOffset(months=1)),
            "amount",
        ]
        .sum()
    )
    out = rollup(ds["bookings"], dims=dims, period=period)
    assert float(out.sum()) == pytest.approx(grand, rel=1e-9, abs=1e-6)
    assert float(ds["bookings"].sum()) == pytest.approx(grand, rel=1e-9, abs=1e-6)
    # Open pipeline is all kept too (none of these deals is more than 24 months out).
    open_amount = (
        tables["opportunities"].loc[tables["opportunities"]["stage"] == "proposal", "amount"].sum()
    )
    assert float(rollup(ds["pipeline"], dims=dims, period=period).sum()) == pytest.approx(
        open_amount, rel=1e-9, abs=1e-6
    )
    # Every cell of the roll-up is a sum of cube cells: nothing negative appears.
    assert bool((np.nan_to_num(out.values) >= 0).all())
