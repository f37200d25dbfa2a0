"""The parts of territory assignment, each checked on its own against figures worked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revmodel import territory
from revmodel.errors import InfeasibleError, ParameterError


def _frames():
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5"],
            "region": "EU",
            "segment": "SMB",
            "potential": [10.0, 20.0, 30.0, 40.0, 50.0],
            "owner_rep_id": pd.Series(["R1", "R9", None, "R1", "R3"], dtype=object),
        }
    )
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R9", "R3"],
            "region": ["EU", "EU", "EU", "US"],
            "segment": "SMB",
            "end_date": pd.Series([None, None, "2020-01-31", None], dtype=object),
        }
    )
    return accounts, reps


def test_settings_round_trip_through_the_run_record():
    s = territory.AssignmentSettings(max_moves=2, locked={"A1": "R2"}, weights={"move": 0.5})
    assert territory.AssignmentSettings.from_record(s.to_record()) == s
    listed = territory.AssignmentSettings(locked=("A2", "A1"))
    assert listed.to_record()["locked"] == ["A2", "A1"]
    assert territory.AssignmentSettings.from_record(listed.to_record()).locked == ("A2", "A1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_moves": -1}, "max_moves: expected a whole number >= 0, got -1."),
        ({"balance_tolerance": float("nan")}, "balance_tolerance: expected a fraction >= 0"),
        ({"time_limit": 0}, "time_limit: expected seconds > 0, got 0."),
        ({"max_accounts_per_rep": 0}, "max_accounts_per_rep: expected a whole number >= 1, got 0."),
    ],
)
def test_settings_refuse_bad_values_on_construction(kwargs, message):
    with pytest.raises(ParameterError) as err:
        territory.AssignmentSettings(**kwargs)
    assert str(err.value).startswith(message)


def test_group_problem_fixes_locks_and_counts_forced_moves():
    acc, reps = _frames()
    grouping = territory._grouping(acc, reps, as_of=None)
    # R9 has an end date (left); R3 sells to the US: A2 and A5 must move, A4 is pinned away from R1.
    assert grouping.status == {"R1": "active", "R2": "active", "R9": "left", "R3": "active"}
    out = territory._Outcome.empty(len(acc))
    lock_map = territory._resolve_locks(acc, {"A4": "R2"}, grouping)
    g = territory._group(
        acc, np.arange(5), ("EU", "SMB"), ["R1", "R2"], lock_map, grouping.status, out
    )
    assert g.free_pos.tolist() == [0, 1, 2, 4]
    assert g.owner.tolist() == [0, -1, -1, -1]
    assert g.forced == 3  # A2 (owner left), A5 (owner elsewhere), A4 (locked to a new rep)
    assert g.locked_potential.tolist() == [0.0, 40.0]
    assert g.locked_count.tolist() == [0.0, 1.0]
    assert g.mean_potential == pytest.approx((10 + 20 + 30 + 40 + 50) / 2)
    assert out.reason.tolist() == [
        territory.REASON_KEPT,
        territory.REASON_OWNER_LEFT,
        territory.REASON_NO_OWNER,
        territory.REASON_LOCKED,
        territory.REASON_OWNER_ELSEWHERE,
    ]
    assert out.new_rep.tolist() == [None, None, None, "R2", None]


def test_lock_to_a_rep_of_another_group_names_both_groups():
    acc, reps = _frames()
    grouping = territory._grouping(acc, reps, as_of=None)
    with pytest.raises(InfeasibleError, match="who sells to region 'US', segment 'SMB'"):
        territory._resolve_locks(acc, {"A1": "R3"}, grouping)


def test_greedy_placement_balances_a_book_without_owners():
    # Potentials 4, 3, 2, 1 over two reps: largest first to the lighter rep gives {4, 1} and {3, 2}.
    g = territory._Group(
        region="EU",
        segment="SMB",
        rep_ids=["R1", "R2"],
        free_pos=np.arange(4),
        potential=np.array([4.0, 3.0, 2.0, 1.0]),
        owner=np.full(4, -1),
        forced=4,
        locked_potential=np.zeros(2),
        locked_count=np.zeros(2),
    )
    weights = territory.ObjectiveWeights(max_count_deviation=0.0)
    search = territory._LocalSearch(g, weights, budget=None, capacity=None)
    search.place_unowned()
    loads = np.bincount(search.assign, weights=g.potential, minlength=2)
    assert loads.tolist() == [5.0, 5.0]
    np.testing.assert_allclose(search.dp, [0.0, 0.0], atol=1e-12)  # both at the group mean of 5
    assert search.moves == 0


def test_milp_layout_counts_columns_and_rows():
    # 3 accounts x 2 reps: 6 binaries, t, u, d[0], d[1]; rows: 3 (once) + 2 + 2 (|dev|) + 2 (d<=t) + 2 + 2 (count).
    g = territory._Group(
        region="EU",
        segment="SMB",
        rep_ids=["R1", "R2"],
        free_pos=np.arange(3),
        potential=np.array([1.0, 1.0, 2.0]),
        owner=np.array([0, 0, 1]),
        forced=0,
        locked_potential=np.zeros(2),
        locked_count=np.zeros(2),
    )
    assign, info = territory._solve_milp(
        g, territory.ObjectiveWeights(), None, 0.05, False, None, 5.0
    )
    assert info["variables"] == 10 and info["constraints"] == 13
    assert info["status"] == "optimal"
    assert assign.tolist() == [0, 0, 1]  # already balanced: nobody moves


def test_objective_weights_keep_the_defaults_for_terms_not_named():
    w = territory.ObjectiveWeights.from_mapping({"move": 0.25})
    assert w == territory.ObjectiveWeights(move=0.25)
    assert w.to_dict() == dict(territory.DEFAULT_OBJECTIVE_WEIGHTS, move=0.25)
    assert territory.AssignmentSettings(weights={"move": 0.25}).weights == w
    with pytest.raises(ParameterError, match="'move' must be a number >= 0, got -1.0"):
        territory.ObjectiveWeights.from_mapping({"move": -1})
    with pytest.raises(ParameterError, match="one of the potential deviation weights must be > 0"):
        territory.ObjectiveWeights.from_mapping(
            {"max_potential_deviation": 0, "mean_potential_deviation": 0}
        )
