"""Partial data is a smaller plan: which sections show, and what a skipped one says."""

from __future__ import annotations

import pandas as pd
import pytest

from revmodel import sections, territory


def _t(n: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


def _opps(*reps: str | None) -> pd.DataFrame:
    return pd.DataFrame({"opportunity_id": [f"O{i}" for i in range(len(reps))], "rep_id": reps})


def test_opportunities_alone_skip_arr_and_territories_in_words():
    got = sections.status({"opportunities": _opps("R1", None)}, {})
    assert got["shown"] == ["forecast", "capacity", "quotas", "scenarios", "kpis", "accuracy"]
    assert got["skipped"] == [
        {
            "id": "arr",
            "title": "Churn and the ARR bridge",
            "reason": "Churn and the ARR bridge: not provided — add the subscriptions table.",
        },
        {
            "id": "territories",
            "title": "Territories",
            "reason": "Territories: not provided — add the accounts and reps tables.",
        },
    ]


NO_REP = (
    "no rep is known — add the reps table, or map the owner column (rep_id) of the opportunities"
)


@pytest.mark.parametrize(
    "tables",
    [
        {"opportunities": _opps(None, None)},
        {"opportunities": _t()},  # no owner column mapped
        {"opportunities": _opps(None), "reps": _t(0)},
    ],
)
def test_no_rep_known_skips_the_sections_that_plan_sellers(tables):
    got = sections.status(tables, {})
    assert got["shown"] == ["forecast", "kpis", "accuracy"]
    reasons = {sk["id"]: sk["reason"] for sk in got["skipped"]}
    assert reasons["capacity"] == f"Capacity and hiring: not provided — {NO_REP}."
    assert reasons["quotas"] == f"Quotas, attainment and balance: not provided — {NO_REP}."
    assert reasons["scenarios"] == f"Scenario comparison: not provided — {NO_REP}."
    assert sections.rep_known(tables) is False


def test_a_reps_table_or_one_owner_is_a_known_rep():
    assert sections.rep_known({"opportunities": _opps(None), "reps": _t()})
    assert sections.rep_known({"opportunities": _opps(None, "R7")})
    assert sections.note({"opportunities": _opps(None, "R7")}, "capacity") == ""


@pytest.mark.parametrize(
    ("tables", "params", "expected"),
    [
        ({"accounts": _t(), "reps": _t()}, {}, ""),
        ({"accounts": _t(), "reps": _t(0)}, {}, "Territories: not provided — add the reps table."),
        ({"accounts": _t(), "reps": _t()}, {"territories": False},
         "Territories: skipped (territories: false in the parameters)."),
        ({"accounts": _t(), "reps": _t()}, {"territories": True}, ""),
    ],
)  # fmt: skip
def test_territory_note(tables, params, expected):
    assert sections.note(tables, "territories", params) == expected


def test_the_territory_step_says_the_same_as_the_pack():
    tables = {"opportunities": _t()}
    plan, note = territory.cycle_territories(tables, "2027-01-01")
    assert plan is None
    assert note == sections.note(tables, "territories") != ""
    plan, note = territory.cycle_territories(tables, "2027-01-01", enabled=False)
    assert (plan, note) == (None, "Territories: skipped (territories: false in the parameters).")
