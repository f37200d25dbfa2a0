"""Forecast value add on Salesforce-shaped exports: Opportunity, User and OpportunityHistory.

The sample company is rewritten as a Salesforce org exports it (API field names,
stage and forecast-category picklist labels, datetimes with a UTC offset, the
history's ``Id``/``PrevAmount``/``PrevCloseDate``/``IsDeleted`` columns), mapped
onto the schema by a mapping file; the scored calls must be those of the
canonical files, and a manager's bias must be what the call log and the
opportunities give by hand.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from revmodel import sample, sample_calls, valueadd

STAGES = {
    "prospecting": "Prospecting",
    "qualification": "Qualification",
    "proposal": "Proposal/Price Quote",
    "negotiation": "Negotiation/Review",
    "won": "Closed Won",
    "lost": "Closed Lost",
}
CATEGORIES = {
    "pipeline": "Pipeline",
    "best_case": "BestCase",
    "commit": "Forecast",
    "omitted": "Omitted",
    "closed": "Closed",
}
MAPPING = """\
tables:
  opportunities:
    file: Opportunity.csv
    columns: {opportunity_id: Id, close_date: CloseDate, amount: Amount, stage: StageName,
              created_date: CreatedDate, rep_id: OwnerId, segment: Segment__c,
              region: Region__c}
    values:
      stage: {Prospecting: prospecting, Qualification: qualification,
              Proposal/Price Quote: proposal, Negotiation/Review: negotiation,
              Closed Won: won, Closed Lost: lost}
  reps:
    file: User.csv
    columns: {rep_id: Id, rep_name: Name, manager: Manager.Name, region: Region__c,
              segment: Segment__c}
  opportunity_history:
    file: OpportunityHistory.csv
    columns: {opportunity_id: OpportunityId, changed_at: CreatedDate, stage: StageName,
              amount: Amount, close_date: CloseDate, forecast_category: ForecastCategory}
    values:
      stage: {Prospecting: prospecting, Qualification: qualification,
              Proposal/Price Quote: proposal, Negotiation/Review: negotiation,
              Closed Won: won, Closed Lost: lost}
      forecast_category: {Pipeline: pipeline, BestCase: best_case, Forecast: commit,
                          Omitted: omitted, Closed: closed}
"""


def _stamp(dates: pd.Series, hour: int) -> pd.Series:
    return pd.to_datetime(dates).dt.strftime(f"%Y-%m-%dT{hour:02d}:15:00.000+0000")


def salesforce_org(canonical: Path, out: Path) -> None:
    """The canonical sample files as Salesforce exports them."""
    opps = pd.read_csv(canonical / "opportunities.csv")
    pd.DataFrame(
        {
            "Id": "006" + opps["opportunity_id"],
            "Name": "Deal " + opps["opportunity_id"],
            "StageName": opps["stage"].map(STAGES),
            "Amount": opps["amount"],
            "CloseDate": opps["close_date"],
            "CreatedDate": _stamp(opps["created_date"], 9),
            "OwnerId": "005" + opps["rep_id"],
            "Segment__c": opps["segment"],
            "Region__c": opps["region"],
        }
    ).to_csv(out / "Opportunity.csv", index=False)
    reps = pd.read_csv(canonical / "reps.csv")
    pd.DataFrame(
        {
            "Id": "005" + reps["rep_id"],
            "Name": reps["rep_name"],
            "Manager.Name": reps["manager"],
            "Region__c": reps["region"],
            "Segment__c": reps["segment"],
            "IsActive": reps["end_date"].isna(),
        }
    ).to_csv(out / "User.csv", index=False)
    hist = pd.read_csv(canonical / "opportunity_history.csv")
    prev = hist.groupby("opportunity_id")[["amount", "close_date"]].shift()
    pd.DataFrame(
        {
            "Id": [f"008{i:09d}" for i in range(len(hist))],
            "OpportunityId": "006" + hist["opportunity_id"],
            "CreatedDate": _stamp(hist["changed_at"], 14),
            "StageName": hist["stage"].map(STAGES),
            "Amount": hist["amount"],
            "CloseDate": hist["close_date"],
            "ForecastCategory": hist["forecast_category"].map(CATEGORIES),
            "PrevAmount": prev["amount"],
            "PrevCloseDate": prev["close_date"],
            "IsDeleted": "false",
            "CurrencyIsoCode": "USD",
        }
    ).to_csv(out / "OpportunityHistory.csv", index=False)
    (out / sample_calls.FILE).write_bytes((canonical / sample_calls.FILE).read_bytes())
    (out / "mapping.yaml").write_text(MAPPING)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the canonical sample folder, the same company as a Salesforce org exports it)."""
    root = tmp_path_factory.mktemp("salesforce")
    canonical, org = root / "canonical", root / "org"
    org.mkdir()
    sample.write_sample(canonical, reps=10, months=24, seed=11)
    salesforce_org(canonical, org)
    return canonical, org


def _won_by_manager(org: Path, manager: str, period: str) -> float:
    """A manager's bookings of a fiscal quarter, by hand from the Salesforce files."""
    opps = pd.read_csv(org / "Opportunity.csv", parse_dates=["CloseDate"])
    users = pd.read_csv(org / "User.csv")
    won = opps[opps["StageName"] == "Closed Won"].merge(users, left_on="OwnerId", right_on="Id")
    year, q = int(period[2:6]), int(period[-1])
    first = pd.Timestamp(year=year - 1, month=11, day=1) + pd.DateOffset(months=3 * (q - 1))
    last = first + pd.DateOffset(months=3) - pd.Timedelta(days=1)
    mine = won[(won["Manager.Name"] == manager) & won["CloseDate"].between(first, last)]
    return float(mine["Amount"].sum())


@pytest.mark.slow
def test_value_add_from_salesforce_exports_is_the_canonical_one(exports) -> None:
    canonical, org = exports
    fys = sample.FISCAL_YEAR_START
    want = valueadd.section_from_data(canonical, fiscal_year_start=fys)
    got = valueadd.section_from_data(org, mapping=org / "mapping.yaml", fiscal_year_start=fys)
    assert want is not None and got is not None
    assert len(want.scored) > 0
    pd.testing.assert_frame_equal(got.summary, want.summary)
    pd.testing.assert_frame_equal(got.by_week, want.by_week)
    # a manager's median commit bias, by hand from the call log and the Salesforce files
    calls = pd.read_csv(org / sample_calls.FILE, parse_dates=["at"])
    manager = sorted(pd.read_csv(org / "User.csv")["Manager.Name"].unique())[0]
    ratios = []
    for period, rows in calls[(calls["key"] == manager) & (calls["call_type"] == "commit")].groupby(
        "period"
    ):
        ratios += list(rows["new_value"] / _won_by_manager(org, manager, period) - 1)
    row = got.summary[(got.summary["key"] == manager) & (got.summary["call_type"] == "commit")]
    assert row["bias"].iloc[0] == pytest.approx(pd.Series(ratios).median())


@pytest.mark.slow
def test_rescoring_after_calls_change_is_the_full_scoring(exports, tmp_path, monkeypatch) -> None:
    """Calls change in the call store (a manager's call in week 4 of a past quarter, the
    company's call in week 6, then withdrawn): a scorer that keeps what it scored before
    gives exactly the full scoring's numbers, scoring only the nodes whose calls changed."""
    from datetime import datetime

    from revmodel import calendar, history, overrides, sources

    _, org = exports
    fys = sample.FISCAL_YEAR_START
    tables = sources.load(org, mapping=org / "mapping.yaml").tables
    hist, _ = history.load_history(org, tables=tables)
    labels = history.deal_labels(tables)
    scorer = valueadd.Scorer(hist, labels, fys, "end")
    users = pd.read_csv(org / "User.csv")
    team = overrides.TeamMap.from_mapping(
        users={"ops": "admin"},
        rep_manager=dict(zip(users["Id"], users["Manager.Name"], strict=True)),
    )
    store = overrides.OverrideStore(f"sqlite:///{tmp_path / 'calls.db'}", team_map=team)
    first = scorer.score(valueadd.call_log(org, store, fys, "end"))
    period = sorted(first["period"].unique())[-1]  # a quarter the history has closed
    manager = sorted(users["Manager.Name"].unique())[0]
    start = calendar.quarter_months(period, fys, "end")[0]
    store.open_period(period, overrides.Identity("ops"))

    computed, weekly_nodes = [], []
    forecasts, by_week = valueadd.node_forecasts, overrides.calls_by_week
    monkeypatch.setattr(
        valueadd, "node_forecasts", lambda *a, **k: computed.append(1) or forecasts(*a, **k)
    )
    monkeypatch.setattr(
        overrides,
        "calls_by_week",
        lambda audit, *a, **k: (
            weekly_nodes.append(set(zip(audit["level"], audit["key"], strict=True)))
            or by_week(audit, *a, **k)
        ),
    )

    def change(day: int, level: str, key: str, amount: float | None) -> tuple[pd.DataFrame, list]:
        """Change a call on the quarter's ``day``; rescore; check against the full scoring."""
        at = datetime.combine((start + pd.Timedelta(days=day)).date(), datetime.min.time())
        monkeypatch.setattr(overrides, "_now", lambda: at.replace(hour=10))
        if amount is None:
            store.withdraw(overrides.Identity("ops"), key, period, "commit", level=level)
        else:
            store.submit(overrides.Identity("ops"), key, period, "commit", amount, level=level)
        log = valueadd.call_log(org, store, fys, "end")
        weekly_nodes.clear()
        got = scorer.score(log)
        assert computed == []  # the quarters' model forecasts are not computed again
        scored_again = list(weekly_nodes)
        pd.testing.assert_frame_equal(got, valueadd.scores(hist, log, labels, fys, "end"))
        computed.clear()
        return got, scored_again

    got, again = change(22, "manager", manager, 555_000.0)  # day 23: week 4
    assert again == [{("manager", manager)}]  # one node of one period scored again
    row = got[(got["period"] == period) & (got["key"] == manager) & (got["call_type"] == "commit")]
    row = row.set_index("week")
    actual = _won_by_manager(org, manager, period)
    assert row.loc[4, "call"] == 555_000.0 and row.loc[4, "actual"] == pytest.approx(actual)
    assert row.loc[4, "bias"] == pytest.approx(555_000.0 / actual - 1)
    unchanged = first[(first["period"] != period) | (first["key"] != manager)]
    pd.testing.assert_frame_equal(
        got[(got["period"] != period) | (got["key"] != manager)].reset_index(drop=True),
        unchanged.reset_index(drop=True),
    )
    _, again = change(36, "total", overrides.COMPANY, 9_900_000.0)  # week 6
    assert again == [{("total", "total")}]
    got, again = change(43, "total", overrides.COMPANY, None)  # withdrawn in week 7
    company = got[
        (got["period"] == period) & (got["level"] == "total") & (got["call_type"] == "commit")
    ]
    assert company.set_index("week").loc[6, "call"] == 9_900_000.0
    # week 7 ends on the withdrawal: no call stands; week 8 is the CSV's call again
    assert 7 not in company["week"].tolist() and 8 in company["week"].tolist()
    assert again == [{("total", "total")}]
    store.close()
