"""Tests of the forecast-call store (revmodel.overrides)."""

from __future__ import annotations

import math
import multiprocessing
import re
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from revmodel import overrides as ov
from revmodel.errors import DataError, ParameterError, RevmodelError
from revmodel.overrides import (
    CallRejected,
    Identity,
    NotAllowed,
    OverrideStore,
    PeriodClosed,
    TeamMap,
    validate_call,
)

PERIOD = "FY2027-Q1"
USERS = {
    "alice": {"manager": "M01"},
    "bob": {"manager": "M02"},
    "erin": {"region": "EMEA"},
    "root": {"role": "admin"},
    "ops": "admin",
}
REP_MANAGER = {"R1": "M01", "R2": "M01", "R3": "M02", "R4": "M03"}
MANAGER_REGION = {"M01": "EMEA", "M02": "EMEA", "M03": "AMER"}

ALICE = Identity("alice")
BOB = Identity("bob")
ERIN = Identity("erin")
ROOT = Identity("root")


def exactly(message: str) -> str:
    """A ``match`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


@pytest.fixture
def team() -> TeamMap:
    return TeamMap.from_mapping(USERS, REP_MANAGER, MANAGER_REGION)


@pytest.fixture
def store(tmp_path: Path, team: TeamMap) -> OverrideStore:
    with OverrideStore(f"sqlite:///{tmp_path / 'calls.db'}", team) as s:
        s.open_period(PERIOD, ROOT)
        yield s


def tiny_cube() -> xr.Dataset:
    """2 segments x 2 regions x 4 reps x 36 months, with the hierarchy coords of the contract."""
    months = pd.date_range("2024-02-01", periods=36, freq="MS")
    shape = (2, 2, 4, 36)
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), np.ones(shape))},
        coords={
            "segment": ["SMB", "Enterprise"],
            "region": ["AMER", "EMEA"],
            "rep": ["R1", "R2", "R3", "R4"],
            "month": months,
            "manager": ("rep", ["M01", "M01", "M02", "M03"]),
            "rep_region": ("rep", ["EMEA", "EMEA", "EMEA", "AMER"]),
        },
        attrs={"fiscal_year_start": 2, "fiscal_year_naming": "end", "currency": "USD"},
    )


# ----------------------------------------------------------------------------- storage


def test_file_database_runs_in_wal_mode_with_busy_timeout(store: OverrideStore) -> None:
    assert store.journal_mode() == "wal"
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == ov.BUSY_TIMEOUT_MS


def test_writes_begin_immediate_and_reads_deferred(store: OverrideStore) -> None:
    statements: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements.append(statement)

    store.submit(ALICE, "R1", PERIOD, "commit", 100.0)
    assert statements[0] == "BEGIN IMMEDIATE"
    statements.clear()
    store.current_calls()
    assert statements[0] == "BEGIN"


def test_missing_folder_of_sqlite_file_is_created(tmp_path: Path, team: TeamMap) -> None:
    path = tmp_path / "deep" / "er" / "calls.db"
    with OverrideStore(f"sqlite:///{path}", team) as s:
        assert path.exists()
        assert s.open_periods() == []


def test_in_memory_database_works(team: TeamMap) -> None:
    with OverrideStore("sqlite://", team) as s:
        s.open_period(PERIOD, ROOT)
        s.submit(ALICE, "R1", PERIOD, "commit", 5)
        assert s.current_calls()["amount"].tolist() == [5.0]
        assert s.journal_mode() == "memory"


def test_second_store_on_same_file_sees_the_calls(store: OverrideStore, team: TeamMap) -> None:
    store.submit(ALICE, "R1", PERIOD, "commit", 10)
    with OverrideStore(store.url, team) as other:
        assert other.current_calls()["amount"].tolist() == [10.0]
        assert other.is_open(PERIOD)


def test_bad_url_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="is not a database URL"):
        OverrideStore("not a url")


def test_ddl_compiles_for_postgresql() -> None:
    dialect = postgresql.dialect()
    audit = str(CreateTable(ov.audit_table).compile(dialect=dialect))
    assert "CREATE TABLE audit" in audit
    assert "id SERIAL NOT NULL" in audit
    assert '"user" VARCHAR(200) NOT NULL' in audit  # a reserved word in PostgreSQL, quoted
    assert "old_value DOUBLE PRECISION" in audit
    assert "at TIMESTAMP WITHOUT TIME ZONE NOT NULL" in audit
    periods = str(CreateTable(ov.periods_table).compile(dialect=dialect))
    assert "is_open BOOLEAN NOT NULL" in periods
    assert "PRIMARY KEY (label)" in periods
    (index,) = ov.audit_table.indexes
    assert str(CreateIndex(index).compile(dialect=dialect)) == (
        "CREATE INDEX ix_audit_node ON audit (period, level, key, call_type, id)"
    )


def test_queries_compile_for_postgresql(store: OverrideStore) -> None:
    dialect = postgresql.dialect()
    current = str(store._current_query(PERIOD).compile(dialect=dialect))
    assert "max(audit.id)" in current
    assert "GROUP BY audit.period, audit.level, audit.key, audit.call_type" in current
    lock = (
        ov.select(ov.periods_table.c.is_open)
        .where(ov.periods_table.c.label == PERIOD)
        .with_for_update()
    )
    assert str(lock.compile(dialect=dialect)).endswith("FOR UPDATE")


# ----------------------------------------------------------------------------- audit log


def test_store_exposes_no_update_or_delete(store: OverrideStore) -> None:
    public = [name for name in dir(store) if not name.startswith("_")]
    assert not [n for n in public if re.search("update|delete|edit|remove|purge|erase", n)]


def test_second_submit_appends_a_row_with_the_old_value(store: OverrideStore) -> None:
    first = store.submit(ALICE, "R1", PERIOD, "commit", 100_000, "first look")
    before = store.audit(PERIOD, "R1")
    second = store.submit(ALICE, "R1", PERIOD, "commit", "120000", "deal pulled in")
    after = store.audit(PERIOD, "R1")

    assert (first.old_value, first.new_value) == (None, 100_000.0)
    assert (second.old_value, second.new_value) == (100_000.0, 120_000.0)
    assert second.id > first.id
    assert len(after) == len(before) + 1 == 2
    pd.testing.assert_frame_equal(after.iloc[:1], before)  # the first row is untouched
    row = after.iloc[1]
    assert row["user"] == "alice"
    assert row["action"] == "submit"
    assert row["note"] == "deal pulled in"
    assert row["source"] == "app:forecast-call"
    assert row["at"].tz is not None


def test_audit_records_period_changes_and_filters(store: OverrideStore) -> None:
    store.submit(ALICE, "R1", PERIOD, "commit", 1)
    store.open_period("FY2027-Q2", ROOT)
    store.submit(ALICE, "R2", "FY2027-Q2", "commit", 2)
    everything = store.audit()
    assert everything["action"].tolist() == ["open", "submit", "open", "submit"]
    assert everything["id"].is_monotonic_increasing
    assert list(everything.columns) == [
        "id", "at", "user", "action", "level", "key", "period", "call_type",
        "old_value", "new_value", "note", "source",
    ]  # fmt: skip
    assert store.audit(period="FY2027-Q2")["key"].tolist() == ["FY2027-Q2", "R2"]
    assert store.audit(key="R1")["new_value"].tolist() == [1.0]


def test_current_call_is_the_latest_row_and_withdraw_clears_it(store: OverrideStore) -> None:
    store.submit(ALICE, "R1", PERIOD, "commit", 100)
    store.submit(ALICE, "R1", PERIOD, "best_case", 150)
    store.submit(ALICE, "R1", PERIOD, "commit", 110)
    store.submit(ALICE, "R2", PERIOD, "commit", 50)
    store.submit(BOB, "R3", PERIOD, "commit", 70)
    calls = store.current_calls(PERIOD)
    got = {
        (k, t): a for k, t, a in zip(calls["key"], calls["call_type"], calls["amount"], strict=True)
    }
    assert got == {
        ("R1", "commit"): 110.0,
        ("R1", "best_case"): 150.0,
        ("R2", "commit"): 50.0,
        ("R3", "commit"): 70.0,
    }
    assert calls.loc[calls["key"] == "R3", ["manager", "region"]].values.tolist() == [
        ["M02", "EMEA"]
    ]

    row = store.withdraw(ALICE, "R1", PERIOD, "commit", "deal slipped")
    assert (row.action, row.old_value, row.new_value) == ("withdraw", 110.0, None)
    calls = store.current_calls(PERIOD)
    assert ("R1", "commit") not in set(zip(calls["key"], calls["call_type"], strict=True))
    again = store.submit(ALICE, "R1", PERIOD, "commit", 90)
    assert again.old_value is None  # the withdrawn call is no longer current
    assert store.current_calls(manager="M02")["key"].tolist() == ["R3"]


def test_withdraw_without_a_call_is_refused(store: OverrideStore) -> None:
    with pytest.raises(
        CallRejected,
        match=exactly("There is no commit call for rep R1 in FY2027-Q1 to withdraw."),
    ):
        store.withdraw(ALICE, "R1", PERIOD, "commit")


def test_current_calls_of_an_empty_store(store: OverrideStore) -> None:
    calls = store.current_calls()
    assert calls.empty
    assert "amount" in calls.columns and "manager" in calls.columns


def test_locked_nodes_and_rollup(store: OverrideStore) -> None:
    store.submit(ALICE, "R1", PERIOD, "commit", 100)
    store.submit(ALICE, "R1", PERIOD, "best_case", 180)
    store.submit(ALICE, "R2", PERIOD, "commit", 40)
    store.submit(ROOT, "R4", PERIOD, "commit", 60)
    store.submit(ALICE, "M01", PERIOD, "commit", 150, "team call", level="manager")
    store.submit(ERIN, "EMEA", PERIOD, "commit", 300, level="region")
    store.open_period("FY2027-Q2", ROOT)
    store.submit(ALICE, "R1", "FY2027-Q2", "commit", 999)

    assert store.locked_nodes(PERIOD) == {
        ("rep", "R1"): 100.0,
        ("rep", "R2"): 40.0,
        ("rep", "R4"): 60.0,
        ("manager", "M01"): 150.0,
        ("region", "EMEA"): 300.0,
    }
    assert store.locked_nodes(PERIOD, "best_case") == {("rep", "R1"): 180.0}
    with pytest.raises(ParameterError, match="call_type must be one of commit, best_case"):
        store.locked_nodes(PERIOD, "upside")

    for table in (store.rollup(PERIOD), store.rollup(PERIOD, tiny_cube())):
        rows = {
            (lv, k): r
            for lv, k, r in zip(table["level"], table["key"], table.to_dict("records"), strict=True)
        }
        assert list(rows) == [
            ("manager", "M01"),
            ("manager", "M02"),
            ("manager", "M03"),
            ("region", "AMER"),
            ("region", "EMEA"),
            ("total", "total"),
        ]
        m01 = rows[("manager", "M01")]
        assert (m01["region"], m01["commit"], m01["best_case"]) == ("EMEA", 140.0, 180.0)
        assert (m01["reps"], m01["reps_with_commit"], m01["reps_without_commit"]) == (2, 2, 0)
        assert m01["call_commit"] == 150.0 and math.isnan(m01["call_best_case"])
        m02 = rows[("manager", "M02")]  # no call in the team: its sums are missing, not 0
        assert math.isnan(m02["commit"]) and math.isnan(m02["best_case"])
        assert (m02["reps_with_commit"], m02["reps_without_commit"]) == (0, 1)
        emea = rows[("region", "EMEA")]
        assert (emea["commit"], emea["reps"], emea["reps_without_commit"]) == (140.0, 3, 1)
        assert emea["call_commit"] == 300.0
        total = rows[("total", "total")]
        assert (total["commit"], total["best_case"], total["reps"]) == (200.0, 180.0, 4)
        assert (total["reps_with_commit"], total["reps_with_best_case"]) == (3, 1)


# ----------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(
    ("user", "level", "key", "allowed"),
    [
        ("alice", "rep", "R1", True),
        ("alice", "rep", "R2", True),
        ("alice", "rep", "R3", False),
        ("alice", "manager", "M01", True),
        ("alice", "manager", "M02", False),
        ("alice", "region", "EMEA", False),
        ("erin", "rep", "R1", True),
        ("erin", "rep", "R3", True),
        ("erin", "rep", "R4", False),
        ("erin", "manager", "M02", True),
        ("erin", "region", "EMEA", True),
        ("erin", "region", "AMER", False),
        ("root", "rep", "R4", True),
        ("root", "region", "AMER", True),
        ("ops", "rep", "R4", True),
        ("M03", "rep", "R4", True),
        (" alice ", "rep", "R1", True),  # authenticated as the manager id itself
        ("M03", "rep", "R1", False),
        ("mallory", "rep", "R1", False),
        ("", "rep", "R1", False),
        ("  ", "rep", "R1", False),
    ],
)
def test_can_write(team: TeamMap, user: str, level: str, key: str, allowed: bool) -> None:
    assert team.can_write(Identity(user), level, key) is allowed


def test_can_write_without_identity(team: TeamMap) -> None:
    assert team.can_write(None, "rep", "R1") is False


def test_own_team_region_lead_and_admin_may_submit(store: OverrideStore) -> None:
    assert store.submit(ALICE, "R1", PERIOD, "commit", 1).user == "alice"
    assert store.submit(ERIN, "R3", PERIOD, "commit", 2).user == "erin"
    assert store.submit(ROOT, "R4", PERIOD, "commit", 3).user == "root"
    assert len(store.audit(PERIOD)) == 4  # the open row and three calls


@pytest.mark.parametrize("identity", [None, Identity(""), Identity("   ")])
def test_no_identity_is_refused(store: OverrideStore, identity: Identity | None) -> None:
    with pytest.raises(
        NotAllowed, match=exactly("Sign in to submit a forecast call: no authenticated user.")
    ) as info:
        store.submit(identity, "R1", PERIOD, "commit", 1)
    assert isinstance(info.value, PermissionError)
    assert isinstance(info.value, RevmodelError)
    with pytest.raises(NotAllowed, match="^Sign in"):
        store.withdraw(identity, "R1", PERIOD, "commit")
    assert store.current_calls().empty


def test_other_team_is_refused_naming_rep_and_team(store: OverrideStore) -> None:
    with pytest.raises(
        NotAllowed,
        match=exactly(
            "User 'alice' writes for team M01 only and cannot submit a call for rep R3 "
            "(team M02, region EMEA): ask that team's manager or an admin."
        ),
    ):
        store.submit(ALICE, "R3", PERIOD, "commit", 1)
    with pytest.raises(
        NotAllowed,
        match=exactly(
            "User 'erin' writes for region EMEA only and cannot submit a call for rep R4 "
            "(team M03, region AMER): ask that team's manager or an admin."
        ),
    ):
        store.submit(ERIN, "R4", PERIOD, "commit", 1)
    with pytest.raises(
        NotAllowed,
        match=exactly(
            "User 'alice' writes for team M01 only and cannot submit a call for region EMEA: "
            "ask that team's manager or an admin."
        ),
    ):
        store.submit(ALICE, "EMEA", PERIOD, "commit", 1, level="region")
    assert len(store.audit()) == 1  # only the period opening


def test_user_without_team_is_refused(store: OverrideStore) -> None:
    with pytest.raises(
        NotAllowed,
        match=exactly(
            "User 'mallory' has no team in the team map: ask an admin to add mallory to the "
            "team mapping file."
        ),
    ):
        store.submit(Identity("mallory"), "R1", PERIOD, "commit", 1)


def test_store_without_team_map_refuses_writes(tmp_path: Path) -> None:
    with OverrideStore(f"sqlite:///{tmp_path / 'x.db'}") as s:
        with pytest.raises(NotAllowed, match="^User 'root' cannot open periods"):
            s.open_period(PERIOD, ROOT)
        with pytest.raises(NotAllowed, match="^No team map is configured"):
            s.submit(ROOT, "R1", PERIOD, "commit", 1)


def test_only_admins_open_and_close_periods(store: OverrideStore) -> None:
    with pytest.raises(
        NotAllowed,
        match=exactly(
            "User 'alice' cannot open periods: only an admin opens and closes a period for calls."
        ),
    ):
        store.open_period("FY2027-Q2", ALICE)
    with pytest.raises(NotAllowed, match="^User 'erin' cannot close periods"):
        store.close_period(PERIOD, ERIN)
    with pytest.raises(NotAllowed, match="^Sign in"):
        store.open_period("FY2027-Q2", None)
    assert store.open_periods() == [PERIOD]


# ----------------------------------------------------------------------------- periods


def test_closed_period_is_refused(store: OverrideStore) -> None:
    store.submit(ALICE, "R1", PERIOD, "commit", 1)
    store.open_period("FY2027-Q2", ROOT)
    store.close_period(PERIOD, ROOT)
    assert not store.is_open(PERIOD)
    assert store.is_open("FY2027-Q2")
    with pytest.raises(
        PeriodClosed,
        match=exactly(
            "Period FY2027-Q1 is closed for forecast calls: pick an open period "
            "(open: FY2027-Q2) or ask an admin to open it."
        ),
    ):
        store.submit(ALICE, "R1", PERIOD, "commit", 2)
    with pytest.raises(PeriodClosed, match=r"^Period FY2027-Q1 is closed"):
        store.withdraw(ALICE, "R1", PERIOD, "commit")
    store.close_period("FY2027-Q2", ROOT)
    with pytest.raises(
        PeriodClosed,
        match=exactly(
            "Period FY2027-Q3 is closed for forecast calls: pick an open period "
            "(no period is open) or ask an admin to open it."
        ),
    ):
        store.submit(ALICE, "R1", "FY2027-Q3", "commit", 2)
    assert store.current_calls()["amount"].tolist() == [1.0]  # calls made stay

    store.open_period(PERIOD, ROOT)  # reopen
    assert store.submit(ALICE, "R1", PERIOD, "commit", 3).old_value == 1.0
    periods = store.periods()
    assert periods["label"].tolist() == [PERIOD, "FY2027-Q2"]
    assert periods["is_open"].tolist() == [True, False]
    assert periods["closed_by"].tolist() == ["root", "root"]
    actions = store.audit()["action"].tolist()
    assert actions == ["open", "submit", "open", "close", "close", "open", "submit"]


def test_open_and_close_are_idempotent(store: OverrideStore) -> None:
    store.open_period(PERIOD, ROOT)
    store.close_period("FY2030-Q1", ROOT)  # never opened: nothing to do
    assert store.audit()["action"].tolist() == ["open"]
    with pytest.raises(
        CallRejected,
        match=exactly("Period 'Q1' is not a fiscal period: use a label like FY2027-Q1."),
    ):
        store.open_period("Q1", ROOT)


def test_validate_uses_the_stores_open_periods(store: OverrideStore) -> None:
    raw = {"rep": "R1", "period": "FY2027-Q4", "call_type": "commit", "amount": "1"}
    with pytest.raises(
        PeriodClosed,
        match=exactly(
            "Period FY2027-Q4 is closed for forecast calls: pick an open period or ask an admin "
            "to open it."
        ),
    ):
        store.validate(raw)
    assert store.validate({**raw, "period": PERIOD}).amount == 1.0


# ----------------------------------------------------------------------------- validation

GOOD = {"rep": "R1", "period": PERIOD, "call_type": "commit", "amount": "125000", "note": "ok"}


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("125000", 125000.0),
        (" 125000.50 ", 125000.5),
        ("125,000", 125000.0),
        ("$1,250,000.25", 1250000.25),
        ("1.25e5", 125000.0),
        ("0", 0.0),
        (125000, 125000.0),
        (125000.5, 125000.5),
        (np.float64(7.5), 7.5),
        (np.int64(9), 9.0),
        (Decimal("10.10"), 10.1),
        (1e10, 1e10),
    ],
)
def test_amounts_accepted(amount: object, expected: float) -> None:
    assert validate_call({**GOOD, "amount": amount}).amount == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": "abc"}, "Amount 'abc' is not a number: enter the call in USD, e.g. 125000."),
        (
            {"amount": "12,34"},
            "Amount '12,34' is not a number: enter the call in USD, e.g. 125000.",
        ),
        ({"amount": ""}, "Amount is empty: enter the call in USD, e.g. 125000."),
        ({"amount": None}, "Amount is empty: enter the call in USD, e.g. 125000."),
        ({"amount": True}, "Amount True is not a number: enter the call in USD, e.g. 125000."),
        ({"amount": [1]}, "Amount [1] is not a number: enter the call in USD, e.g. 125000."),
        (
            {"amount": "nan"},
            "Amount 'nan' is not a finite number: enter the call in USD, e.g. 125000.",
        ),
        (
            {"amount": float("inf")},
            "Amount inf is not a finite number: enter the call in USD, e.g. 125000.",
        ),
        (
            {"amount": -5},
            "Amount -5 is negative: a forecast call is an amount of 0 USD or more.",
        ),
        (
            {"amount": "-0.5"},
            "Amount '-0.5' is negative: a forecast call is an amount of 0 USD or more.",
        ),
        (
            {"amount": 2.5e10},
            "Amount 25,000,000,000 is above the limit of 10,000,000,000 USD: check the number "
            "of zeros.",
        ),
        (
            {"period": "FY27Q1"},
            "Period 'FY27Q1' is not a fiscal period: use a label like FY2027-Q1.",
        ),
        ({"period": ""}, "Period is empty: pick a fiscal period like FY2027-Q1."),
        ({"period": 2027.5}, "Period 2027.5 is not text: pick a fiscal period like FY2027-Q1."),
        (
            {"call_type": "upside"},
            "Call type 'upside' is not one of commit, best_case: pick commit or best_case.",
        ),
        (
            {"call_type": None},
            "Call type None is not one of commit, best_case: pick commit or best_case.",
        ),
        ({"rep": ""}, "Rep is empty: pick a rep from the list."),
        ({"rep": "R9"}, "Rep 'R9' is not in the team map: pick a rep from the list."),
        (
            {"note": "x" * 1001},
            "Note is 1001 characters long: keep it to 1000 characters or fewer.",
        ),
        ({"note": 5}, "Note 5 is not text: write the note as text."),
        (
            {"level": "segment"},
            "Level 'segment' is not one of rep, manager, region, total: calls are made for a "
            "rep, a manager, a region or the company (total).",
        ),
        (
            {"level": "manager", "rep": None, "manager": "M09"},
            "Manager 'M09' is not in the team map: pick a manager from the list.",
        ),
    ],
)
def test_validation_messages(team: TeamMap, changes: dict, message: str) -> None:
    with pytest.raises(CallRejected, match=exactly(message)):
        validate_call({**GOOD, **changes}, team, {PERIOD})


def test_validation_message_for_a_non_mapping() -> None:
    with pytest.raises(
        CallRejected, match=exactly("A forecast call must be a mapping of field values: got 5.")
    ):
        validate_call(5)  # type: ignore[arg-type]


def test_validated_call_is_normalised(team: TeamMap) -> None:
    call = validate_call(
        {**GOOD, "rep": " R1 ", "note": "  pulled in  ", "amount": "$125,000"},
        team,
        lambda p: p == PERIOD,
    )
    assert call == ov.Call("rep", "R1", PERIOD, "commit", 125000.0, "pulled in")
    assert validate_call({**GOOD, "note": None}).note == ""
    assert validate_call({**GOOD, "note": "y" * 1000}).note == "y" * 1000


def test_submit_validates_browser_values(store: OverrideStore) -> None:
    with pytest.raises(
        CallRejected,
        match=exactly("Amount 'abc' is not a number: enter the call in USD, e.g. 125000."),
    ):
        store.submit(ALICE, "R1", PERIOD, "commit", "abc")
    with pytest.raises(
        CallRejected, match=exactly("Rep 'R9' is not in the team map: pick a rep from the list.")
    ):
        store.submit(ROOT, "R9", PERIOD, "commit", 1)
    assert store.submit(ALICE, "R1", PERIOD, "commit", "$125,000").new_value == 125000.0
    assert len(store.audit()) == 2


def test_store_cap_is_configurable(tmp_path: Path, team: TeamMap) -> None:
    with OverrideStore(f"sqlite:///{tmp_path / 'c.db'}", team, max_amount=1e6) as s:
        s.open_period(PERIOD, ROOT)
        with pytest.raises(CallRejected, match=r"above the limit of 1,000,000 USD"):
            s.submit(ALICE, "R1", PERIOD, "commit", 2e6)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=ov.MAX_AMOUNT, allow_nan=False))
def test_any_amount_in_range_round_trips_through_text(amount: float) -> None:
    assert ov.parse_amount(repr(amount)) == amount
    assert ov.parse_amount(amount) == amount


@settings(max_examples=100, deadline=None)
@given(st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False))
def test_negative_amounts_are_refused(amount: float) -> None:
    with pytest.raises(CallRejected, match=r"is negative"):
        ov.parse_amount(amount)


# ----------------------------------------------------------------------------- team map


def test_team_map_from_cube(tmp_path: Path) -> None:
    tm = TeamMap.from_cube(tiny_cube(), {"root": {"role": "admin"}})
    assert dict(tm.rep_manager) == REP_MANAGER
    assert dict(tm.manager_region) == MANAGER_REGION
    assert tm.managers == ["M01", "M02", "M03"]
    assert tm.regions == ["AMER", "EMEA"]
    assert tm.grant("root") == ov.Grant("admin")
    assert tm.grant("M02") == ov.Grant("manager", "M02")
    assert tm.grant("(unassigned)") is None
    with pytest.raises(DataError, match="no manager\\(rep\\) coordinate"):
        TeamMap.from_cube(tiny_cube().drop_vars("manager"))


def test_team_map_from_yaml(tmp_path: Path) -> None:
    full = tmp_path / "team.yaml"
    full.write_text(
        "users:\n  alice: {manager: M01}\n  root: {role: admin}\n"
        "reps: {R1: M01, R2: M02}\nmanagers: {M01: EMEA, M02: AMER}\n",
        encoding="utf-8",
    )
    tm = TeamMap.from_yaml(full)
    assert dict(tm.rep_manager) == {"R1": "M01", "R2": "M02"}
    assert tm.can_write(ALICE, "rep", "R1") and not tm.can_write(ALICE, "rep", "R2")

    users_only = tmp_path / "users.yaml"
    users_only.write_text("alice: {manager: M01}\nerin: {region: EMEA}\n", encoding="utf-8")
    tm = TeamMap.from_yaml(users_only, cube=tiny_cube())
    assert tm.can_write(ERIN, "rep", "R3") and not tm.can_write(ERIN, "rep", "R4")

    bad = tmp_path / "bad.yaml"
    bad.write_text("alice: {team: M01}\n", encoding="utf-8")
    with pytest.raises(
        DataError,
        match=exactly(
            f"{bad}: user 'alice' must map to one of {{manager: M03}}, {{region: EMEA}} or "
            "{role: admin}; got {'team': 'M01'}"
        ),
    ):
        TeamMap.from_yaml(bad)
    with pytest.raises(DataError, match="does not exist: create it"):
        TeamMap.from_yaml(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("users: [\n", encoding="utf-8")
    with pytest.raises(DataError, match="is not valid YAML"):
        TeamMap.from_yaml(broken)


def test_identity_from_environment() -> None:
    assert Identity.from_environment({"JUPYTERHUB_USER": "alice"}) == ALICE
    assert Identity.from_environment({"REVMODEL_USER": "bob "}) == BOB
    assert Identity.from_environment({"USER": "root", "JUPYTERHUB_USER": ""}) is None


# ----------------------------------------------------------------------------- concurrency

WORKERS = 4
CALLS_PER_WORKER = 50
WORKER_USERS = ("alice", "erin", "root", "ops")  # all may write R1 and R2
KEYS = [(rep, ct) for rep in ("R1", "R2") for ct in ("commit", "best_case")]


def worker_amount(worker: int, i: int) -> float:
    """The amount worker ``worker`` submits as its ``i``-th call: best cases sit far above every
    commit, so the store's commit <= best case rule never refuses one of them."""
    call_type = KEYS[(i + worker) % len(KEYS)][1]
    return worker * 1000 + i + (1_000_000 if call_type == "best_case" else 0)


def submit_many(url: str, worker: int, barrier: object) -> list[tuple]:
    """Submit CALLS_PER_WORKER calls from one process; return what each write recorded."""
    team = TeamMap.from_mapping(USERS, REP_MANAGER, MANAGER_REGION)
    out = []
    with OverrideStore(url, team) as store:
        barrier.wait()  # type: ignore[attr-defined]
        for i in range(CALLS_PER_WORKER):
            rep, call_type = KEYS[(i + worker) % len(KEYS)]
            amount = worker_amount(worker, i)
            row = store.submit(Identity(WORKER_USERS[worker]), rep, PERIOD, call_type, amount)
            out.append((row.id, rep, call_type, row.old_value, row.new_value))
            time.sleep(0.002)  # let the other processes take the write lock in between
    return out


@pytest.mark.slow
def test_concurrent_processes_lose_nothing(tmp_path: Path, team: TeamMap) -> None:
    assert_concurrent_submissions_lose_nothing(f"sqlite:///{tmp_path / 'shared.db'}", team)


def assert_concurrent_submissions_lose_nothing(url: str, team: TeamMap) -> None:
    """4 processes x 50 interleaved calls on shared keys: every row kept, no lost update."""
    with OverrideStore(url, team) as store:
        store.open_period(PERIOD, ROOT)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            results = pool.starmap(submit_many, [(url, w, barrier) for w in range(WORKERS)])

    with OverrideStore(url, team) as store:
        audit = store.audit(PERIOD)
        calls = store.current_calls(PERIOD)
    audit = audit[audit["action"] == "submit"]
    assert len(audit) == WORKERS * CALLS_PER_WORKER == 200
    # Every submission is there exactly once, from the right user.
    expected = {
        (WORKER_USERS[w], float(worker_amount(w, i))) for w in range(WORKERS) for i in range(50)
    }
    assert set(zip(audit["user"], audit["new_value"], strict=True)) == expected
    # What each process was told it wrote is what the log holds.
    written = sorted(row for rows in results for row in rows)
    assert [r[0] for r in written] == audit["id"].tolist()
    logged = audit[["key", "call_type", "old_value", "new_value"]].to_numpy(na_value=None)
    assert [tuple(r[1:]) for r in written] == [tuple(r) for r in logged.tolist()]
    # No lost update: each row replaced the value of the previous row of its key.
    for (_, _), group in audit.groupby(["key", "call_type"]):
        old = group["old_value"].to_numpy()
        new = group["new_value"].to_numpy()
        assert np.isnan(old[0])
        np.testing.assert_array_equal(old[1:], new[:-1])
    # The current call is the last value submitted per key.
    last = audit.sort_values("id").groupby(["key", "call_type"])["new_value"].last().to_dict()
    current = dict(
        zip(zip(calls["key"], calls["call_type"], strict=True), calls["amount"], strict=True)
    )
    assert current == last
    assert len(current) == len(KEYS)


# ----------------------------------------------------------------------------- commit <= best case


def test_best_case_below_commit_is_refused_by_the_store(store: OverrideStore) -> None:
    store.submit(ALICE, "R1", PERIOD, "commit", 100_000)
    with pytest.raises(CallRejected, match=exactly(
        f"Best case 90,000 USD is below the commit of 100,000 USD for rep R1 in {PERIOD}: the "
        "best case is at least the commit; lower the commit first."
    )):  # fmt: skip
        store.submit(ALICE, "R1", PERIOD, "best_case", "90,000")
    store.submit(ALICE, "R1", PERIOD, "best_case", 100_000)  # equal is fine
    with pytest.raises(CallRejected, match=exactly(
        f"Commit 120,000 USD is above the best case of 100,000 USD for rep R1 in {PERIOD}: a "
        "commit is at most the best case; raise the best case first."
    )):  # fmt: skip
        store.submit(ALICE, "R1", PERIOD, "commit", 120_000)
    # Nothing refused reached the log; the other node and a withdrawn best case are free.
    assert store.audit(PERIOD)["new_value"].dropna().tolist() == [100_000.0, 100_000.0]
    store.submit(ALICE, "R2", PERIOD, "best_case", 10)
    store.withdraw(ALICE, "R1", PERIOD, "best_case")
    store.submit(ALICE, "R1", PERIOD, "commit", 120_000)
    calls = store.current_calls(PERIOD)
    assert calls[["key", "call_type", "amount"]].values.tolist() == [
        ["R1", "commit", 120_000.0],
        ["R2", "best_case", 10.0],
    ]


def test_best_case_rule_holds_at_the_manager_level(store: OverrideStore) -> None:
    store.submit(ALICE, "M01", PERIOD, "best_case", 500_000, level="manager")
    with pytest.raises(CallRejected, match="^Commit 600,000 USD is above the best case"):
        store.submit(ALICE, "M01", PERIOD, "commit", 600_000, level="manager")


# ----------------------------------------------------------------------------- reps who left


def test_reps_who_left_are_not_called_summed_or_counted(tmp_path: Path) -> None:
    cube = tiny_cube().assign_coords(
        end_date=("rep", pd.to_datetime([None, "2026-06-30", None, "2027-09-30"]))
    )
    cube.attrs["as_of"] = "2026-12-31"
    team = TeamMap.from_cube(cube, USERS)
    assert dict(team.left) == {"R2": "2026-06-30"}  # R4 leaves after as_of: still counted
    assert team.active_reps == ["R1", "R3", "R4"]
    with OverrideStore(f"sqlite:///{tmp_path / 'c.db'}", team) as store:
        store.open_period(PERIOD, ROOT)
        with pytest.raises(CallRejected, match=exactly(
            "Rep 'R2' left on 2026-06-30: calls are taken for reps still employed; call their "
            "deals at the team level."
        )):  # fmt: skip
            store.submit(ALICE, "R2", PERIOD, "commit", 5)
        store.submit(ALICE, "R1", PERIOD, "commit", 7)
        roll = store.rollup(PERIOD).set_index(["level", "key"])
        assert roll.loc[("manager", "M01"), "reps"] == 1
        assert roll.loc[("manager", "M01"), "reps_without_commit"] == 0
        assert roll.loc[("region", "EMEA"), "reps"] == 2
        assert roll.loc[("total", "total"), "reps"] == 3


def test_store_version_moves_with_every_change(store: OverrideStore) -> None:
    v0 = store.version()
    store.submit(ALICE, "R1", PERIOD, "commit", 1)
    v1 = store.version()
    store.close_period(PERIOD, ROOT)
    assert v0 < v1 < store.version()


# ----------------------------------------------------------------------------- the company's call


def test_vp_calls_the_company_and_nothing_else(tmp_path: Path) -> None:
    team = TeamMap.from_mapping({**USERS, "vera": {"role": "vp"}}, REP_MANAGER, MANAGER_REGION)
    vera = Identity("vera")
    assert team.grant("vera").describe() == "the company"
    assert team.can_write(vera, "total", "total")
    assert not team.can_write(vera, "manager", "M01") and not team.can_write(vera, "rep", "R1")
    assert not team.can_write(ERIN, "total", "total") and not team.can_write(
        ALICE, "total", "total"
    )
    assert team.can_write(ROOT, "total", "total")
    with OverrideStore(f"sqlite:///{tmp_path / 'c.db'}", team) as store:
        store.open_period(PERIOD, ROOT)
        store.submit(vera, "", PERIOD, "commit", 2_000_000, level="total")
        store.submit(ALICE, "R1", PERIOD, "commit", 50_000)
        with pytest.raises(NotAllowed, match="^User 'vera' writes for the company only"):
            store.submit(vera, "M01", PERIOD, "commit", 1, level="manager")
        with pytest.raises(NotAllowed, match="^User 'erin' writes for region EMEA only"):
            store.submit(ERIN, "total", PERIOD, "commit", 1, level="total")
        assert store.locked_nodes(PERIOD) == {
            ("total", "total"): 2_000_000.0,
            ("rep", "R1"): 50_000.0,
        }
        roll = store.rollup(PERIOD).set_index(["level", "key"])
        assert roll.loc[("total", "total"), "call_commit"] == 2_000_000.0
        assert roll.loc[("total", "total"), "commit"] == 50_000.0  # the sum of the calls below


# ----------------------------------------------------------------------------- value add


def test_calls_by_week_and_value_add_on_a_hand_made_quarter() -> None:
    start = pd.Timestamp("2026-11-01")

    def row(i, day, key, ct, old, new):
        return {"id": i, "at": start + pd.Timedelta(days=day, hours=9), "user": "u",
                "action": "submit" if new is not None else "withdraw", "level": "manager",
                "key": key, "period": PERIOD, "call_type": ct, "old_value": old,
                "new_value": new, "note": "", "source": "t"}  # fmt: skip

    audit = pd.DataFrame(
        [
            row(1, 0, "M01", "commit", None, 80.0),  # week 1
            row(2, 8, "M01", "commit", 80.0, 90.0),  # week 2
            row(3, 15, "M02", "commit", None, 130.0),  # week 3
            row(4, 16, "M02", "commit", 130.0, None),  # withdrawn in week 3
        ]
    )
    weekly = ov.calls_by_week(audit, PERIOD, start, weeks=3)
    assert weekly.values.tolist() == [
        ["manager", "M01", "commit", 1, 80.0],
        ["manager", "M01", "commit", 2, 90.0],
        ["manager", "M01", "commit", 3, 90.0],
    ]
    model = pd.DataFrame(
        {"level": "manager", "key": "M01", "week": [1, 2, 3], "forecast": [120.0, 110.0, 95.0]}
    )
    scored = ov.value_add(weekly, {("manager", "M01"): 100.0}, model)
    # Week 1: the call misses by 20%, the model by 20%: no value added; week 2: the call by 10%,
    # the model by 10%; week 3: the call by 10%, the model by 5%: the model was better.
    assert scored["call_error"].round(6).tolist() == [0.2, 0.1, 0.1]
    assert scored["model_error"].round(6).tolist() == [0.2, 0.1, 0.05]
    assert scored["value_add"].round(6).tolist() == [0.0, 0.0, -0.05]
    assert scored["bias"].round(6).tolist() == [-0.2, -0.1, -0.1]  # sandbagging
    assert ov.value_add(weekly, {("manager", "M01"): 0.0}, model).empty  # no actual, no score
