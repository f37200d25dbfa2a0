"""A plan year's target grows from the fiscal year before it, never from its own actuals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from revmodel import cube as rcube
from revmodel import quota, scenario, sources
from revmodel.assumptions import Assumptions
from revmodel.errors import DataError, ParameterError


def _export(folder: Path) -> Path:
    """Two reps' won deals, one a month, January 2024 to December 2025 (fiscal year = calendar).

    A deal in calendar month m books base x (1 + m/10), x 1.5 in 2025: R1's base is
    1,000 and R2's 400, so FY2024 books (1,000 + 400) x (12 + 7.8) = 27,720 and FY2025
    1.5 x 27,720 = 41,580.
    """
    rows = []
    for month in pd.date_range("2024-01-01", "2025-12-01", freq="MS"):
        for rep, base in (("R1", 1000.0), ("R2", 400.0)):
            amount = base * (1 + month.month / 10) * (1.5 if month.year == 2025 else 1.0)
            rows.append(
                {
                    "opportunity_id": f"O{len(rows) + 1}",
                    "rep_id": rep,
                    "stage": "won",
                    "amount": round(amount, 2),
                    "close_date": f"{month + pd.offsets.MonthEnd(0):%Y-%m-%d}",
                    "created_date": f"{month:%Y-%m-%d}",
                }
            )
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "opportunities.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    data = _export(tmp_path_factory.mktemp("acme") / "data")
    loaded = sources.load(data)
    assert loaded.status == 0
    ds = rcube.build_cube(loaded.tables, fiscal_year_start=1)
    assert ds.attrs["as_of"] == "2025-12-01"  # FY2025 is complete: the year just ended
    return ds


@pytest.mark.parametrize(
    ("plan_year", "grown_from", "target"),
    [
        ("FY2025", "FY2024", 27_720 * 1.25),  # the year just ended: from the year before it
        ("FY2026", "FY2025", 41_580 * 1.25),  # the next year
    ],
)
def test_the_target_grows_from_the_year_before_the_plan_year(cube, plan_year, grown_from, target):
    a = Assumptions(plan_year=plan_year, target_growth=0.25)
    assert quota.base_year_bookings(cube, plan_year)[1] == grown_from
    assert quota.company_target(cube, a) == pytest.approx(target)
    assert float(scenario.plan(cube, a)["total_target"]) == pytest.approx(target)
    assert float(quota.top_down(cube, a)["target"]) == pytest.approx(target)


def test_a_plan_year_with_no_complete_year_before_it_says_so(cube):
    with pytest.raises(DataError) as err:
        quota.company_target(cube, Assumptions(plan_year="FY2024"))
    assert str(err.value) == (
        "the plan year FY2024 has no complete fiscal year of actuals before it to grow a target "
        "from (the first is FY2024): plan a later year or set the company target."
    )
    assert quota.company_target(cube, Assumptions(plan_year="FY2024", target_amount=5e4)) == 5e4


def test_without_a_plan_year_the_data_settles_it_never_the_sample_s(cube):
    # actuals to December 2025, calendar fiscal year: the quarter after is FY2026-Q1
    a = Assumptions(target_growth=0.25)
    assert a.plan_year is None
    plan = scenario.plan(cube, a)
    assert plan.attrs["plan_year"] == "FY2026"
    assert float(plan["total_target"]) == pytest.approx(41_580 * 1.25)
    assert quota.company_target(cube, a) == pytest.approx(41_580 * 1.25)
    from revmodel import capacity

    months = capacity.plan_months(cube, a)
    assert (f"{months[0]:%Y-%m}", f"{months[-1]:%Y-%m}") == ("2026-01", "2026-12")
    with pytest.raises(ParameterError) as err:
        capacity.plan_months(cube.assign_attrs(as_of=None), a)
    assert str(err.value) == (
        "Assumptions: plan_year not given and the data has no as_of to settle it from; "
        "set plan_year, e.g. Assumptions(plan_year='FY2027')."
    )


def test_planning_next_year_while_this_one_runs_grows_the_last_twelve_months(cube):
    # actuals to September 2025 (a last-quarter cycle) planning FY2026: FY2025 is still running,
    # so its target grows from October 2024 - September 2025, not from FY2024:
    # 1,400 x (2.0 + 2.1 + 2.2) + 1.5 x 1,400 x (9 + 4.5) = 8,820 + 28,350 = 37,170.
    running = cube.assign_attrs(as_of="2025-09-01")
    a = Assumptions(plan_year="FY2026", target_growth=0.25)
    assert quota.base_year_bookings(running, "FY2026") == (
        pytest.approx(37_170),
        "2024-10..2025-09",
    )
    assert quota.company_target(running, a) == pytest.approx(37_170 * 1.25)
    # the year under way is still grown from the complete one before it
    assert quota.base_year_bookings(running, "FY2025") == (pytest.approx(27_720), "FY2024")
