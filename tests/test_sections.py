"""Partial data is a smaller plan: which sections show, and what a skipped one says."""

from __future__ import annotations

import pandas as pd
import pytest

from revmodel import sections, territory


def _t(n: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


def test_opportunities_alone_skip_arr_and_territories_in_words():
    got = sections.status({"opportunities": _t()}, {})
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
