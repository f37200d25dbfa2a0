"""What-if scenarios: every assumption recomputes the plan, with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from revmodel import sample, scenario
from revmodel.assumptions import Assumptions, assumptions_from_dict
from revmodel.cube import build_cube
from revmodel.errors import ParameterError


@pytest.fixture(scope="module")
def cube() -> xr.Dataset:
    return build_cube(sample.generate(reps=16, months=36, seed=3), fiscal_year_start=11)


@pytest.fixture(scope="module")
def ctx(cube) -> scenario.PlanContext:
    return scenario.prepare(cube)


@pytest.fixture(scope="module")
def base() -> Assumptions:
    return Assumptions(plan_year="FY2028")


def total(p: xr.Dataset, name: str) -> float:
    return float(p[f"total_{name}"])


def test_plan_has_every_kpi_by_region_and_in_total(ctx, base):
    p = scenario.plan(ctx, base)
    assert p.attrs["scenario"] == "base"
    assert p.sizes["month"] == 12
    for name, (units, _) in scenario.PLAN_KPIS.items():
        assert p[name].dims == ("region",)
        assert p[name].attrs["units"] == units
        assert np.isfinite(total(p, name)), name
    for name in (
        "target",
        "capacity",
        "gap",
        "quota",
        "hires_needed",
        "opening_arr",
        "closing_arr",
        "expected_churn_arr",
    ):
        assert total(p, name) == pytest.approx(float(p[name].sum()), rel=1e-9), name
    assert total(p, "gap") == pytest.approx(total(p, "target") - total(p, "capacity"))
    assert total(p, "capacity_to_target") == pytest.approx(
        total(p, "capacity") / total(p, "target")
    )
    # The quarterly roll-ups add up to the rep-level plan.
    assert float(p["capacity_by_quarter"].sum()) == pytest.approx(float(p["rep_capacity"].sum()))
    assert float(p["quota_by_quarter"].sum()) == pytest.approx(float(p["rep_quota"].sum()))
    assert list(p["fiscal_quarter"].values) == ["FY2028-Q1", "FY2028-Q2", "FY2028-Q3", "FY2028-Q4"]


def test_target_growth_scales_the_target_exactly(ctx, base):
    flat = scenario.plan(ctx, base.with_changes(target_growth=0.0))
    grow = scenario.plan(ctx, base.with_changes(target_growth=0.1))
    assert total(grow, "target") == pytest.approx(1.1 * total(flat, "target"), abs=1.0)
    assert total(grow, "capacity") == total(flat, "capacity")


def test_win_rate_lifts_capacity_proportionally(ctx, base):
    p0 = scenario.plan(ctx, base)
    p1 = scenario.plan(ctx, base.with_changes(win_rate_change=0.1))
    assert total(p1, "capacity") == pytest.approx(1.1 * total(p0, "capacity"), rel=1e-9)
    assert total(p1, "target") == total(p0, "target")
    assert total(p1, "hires_needed") <= total(p0, "hires_needed")


def test_over_assignment_sets_the_quota_ratio(ctx, base):
    p = scenario.plan(ctx, base.with_changes(over_assignment=1.2))
    # Team quotas are rounded to whole currency units, so allow one unit per rep.
    assert total(p, "quota") == pytest.approx(1.2 * total(p, "target"), abs=p.sizes["rep"])


def test_zero_churn_needs_only_the_growth(ctx, base):
    p = scenario.plan(ctx, base.with_changes(churn_rate=0.0))
    assert total(p, "expected_churn_arr") == 0
    assert total(p, "required_new_arr") == pytest.approx(
        total(p, "closing_arr") - total(p, "opening_arr")
    )
    assert total(p, "churn_rate") == 0


def test_more_churn_needs_more_new_arr(ctx, base):
    low = scenario.plan(ctx, base.with_changes(churn_rate=0.05))
    high = scenario.plan(ctx, base.with_changes(churn_rate=0.10))
    extra = total(high, "expected_churn_arr") - total(low, "expected_churn_arr")
    assert extra > 0
    assert total(high, "required_new_arr") - total(low, "required_new_arr") == pytest.approx(extra)


def test_more_hires_add_capacity_and_headcount(ctx, base, cube):
    region = str(cube["region"].values[0])
    hired = assumptions_from_dict(
        {
            **base.to_dict(),
            "hires": [{"segment": "SMB", "region": region, "start_month": "2027-01", "count": 3}],
        }
    )
    p0, p1 = scenario.plan(ctx, base), scenario.plan(ctx, hired)
    assert p1.sizes["rep"] == p0.sizes["rep"] + 3
    assert total(p1, "capacity") > total(p0, "capacity")
    assert float(p1["headcount_end"].sel(region=region)) > float(
        p0["headcount_end"].sel(region=region)
    )


def test_stack_and_compare_against_base(ctx, base):
    sets = [
        base,
        base.with_changes(name="stretch", target_growth=0.35),
        base.with_changes(name="downside", win_rate_change=-0.1),
    ]
    st = scenario.stack(ctx, sets)
    assert list(st["scenario"].values) == ["base", "stretch", "downside"]
    assert st["total_target"].dims == ("scenario",)
    table = scenario.compare(st)
    assert list(table.columns) == [
        "base",
        "stretch",
        "downside",
        "stretch vs base",
        "downside vs base",
    ]
    assert table.loc["target", "stretch vs base"] == pytest.approx(
        table.loc["target", "stretch"] - table.loc["target", "base"]
    )
    assert table.loc["capacity", "stretch vs base"] == 0
    assert table.loc["capacity", "downside vs base"] < 0
    by_region = scenario.compare(st, by="region")
    assert by_region.loc["target"]["stretch"].sum() == pytest.approx(table.loc["target", "stretch"])
    # Each stacked slice is the plan of that scenario alone.
    alone = scenario.plan(ctx, sets[1])
    assert float(st["total_target"].sel(scenario="stretch")) == total(alone, "target")


def test_plan_from_cube_equals_plan_from_context(cube, ctx, base):
    a = scenario.plan(cube, base)
    b = scenario.plan(ctx, base)
    xr.testing.assert_allclose(a, b)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda ctx, b: scenario.stack(ctx, [b, b]),
            "stack: scenario names must be unique; 'base' appears more than once.",
        ),
        (lambda ctx, b: scenario.stack(ctx, []), "stack: give at least one assumption set."),
        (
            lambda ctx, b: scenario.compare(scenario.stack(ctx, [b]), base="nope"),
            "compare: base scenario 'nope' is not one of base.",
        ),
        (
            lambda ctx, b: scenario.compare(scenario.stack(ctx, [b]), by="rep"),
            "compare: by must be 'total' or 'region', got 'rep'.",
        ),
    ],
)
def test_errors_say_what_to_do(ctx, base, call, message):
    with pytest.raises(ParameterError) as err:
        call(ctx, base)
    assert str(err.value) == message


def test_the_cube_is_not_mutated(cube, base):
    before = cube.copy(deep=True)
    scenario.plan(cube, base)
    xr.testing.assert_identical(cube, before)


def test_without_subscriptions_the_arr_kpis_are_missing_not_zero(base):
    tables = sample.generate(reps=16, months=36, seed=3)
    no_subs = build_cube(
        {k: v for k, v in tables.items() if k != "subscriptions"}, fiscal_year_start=11
    )
    row = scenario.summary(scenario.stack(no_subs, [base])).iloc[0]
    for name in ("opening_arr", "closing_arr", "expected_churn_arr", "required_new_arr"):
        assert np.isnan(row[name]), name
    assert row["target"] > 0 and row["capacity"] > 0  # the rest of the plan is there


def test_the_context_keeps_the_churn_from_history_and_the_plan_is_the_cube_s(cube, ctx, base):
    """The churn rates a context measures once are the ones retention measures on the cube, and a
    plan from the context is identical to one from the cube, churn from history or assumed."""
    from revmodel import retention

    assert ctx.company_churn == pytest.approx(float(retention.churn_rate(cube)))
    by_region = retention.churn_rate(cube, ("region",))
    np.testing.assert_allclose(ctx.region_churn.values, by_region.values)
    for a in (base, Assumptions(plan_year="FY2028", churn_rate=0.08)):
        xr.testing.assert_identical(scenario.plan(ctx, a), scenario.plan(cube, a))
    assert total(scenario.plan(ctx, base), "churn_rate") == pytest.approx(ctx.company_churn)
