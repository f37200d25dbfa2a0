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


@pytest.mark.slow
def test_value_add_from_salesforce_exports_is_the_canonical_one(tmp_path: Path) -> None:
    canonical, org = tmp_path / "canonical", tmp_path / "org"
    org.mkdir()
    sample.write_sample(canonical, reps=10, months=24, seed=11)
    salesforce_org(canonical, org)
    fys = sample.FISCAL_YEAR_START
    want = valueadd.section_from_data(canonical, fiscal_year_start=fys)
    got = valueadd.section_from_data(org, mapping=org / "mapping.yaml", fiscal_year_start=fys)
    assert want is not None and got is not None
    assert len(want.scored) > 0
    pd.testing.assert_frame_equal(got.summary, want.summary)
    pd.testing.assert_frame_equal(got.by_week, want.by_week)
    # a manager's median commit bias, by hand from the call log and the Salesforce files
    calls = pd.read_csv(org / sample_calls.FILE, parse_dates=["at"])
    opps = pd.read_csv(org / "Opportunity.csv", parse_dates=["CloseDate"])
    users = pd.read_csv(org / "User.csv")
    won = opps[opps["StageName"] == "Closed Won"].merge(users, left_on="OwnerId", right_on="Id")
    manager = sorted(users["Manager.Name"].unique())[0]
    ratios = []
    for period, rows in calls[(calls["key"] == manager) & (calls["call_type"] == "commit")].groupby(
        "period"
    ):
        year, q = int(period[2:6]), int(period[-1])
        first = pd.Timestamp(year=year - 1, month=11, day=1) + pd.DateOffset(months=3 * (q - 1))
        last = first + pd.DateOffset(months=3) - pd.Timedelta(days=1)
        mine = won[(won["Manager.Name"] == manager) & won["CloseDate"].between(first, last)]
        ratios += list(rows["new_value"] / mine["Amount"].sum() - 1)
    row = got.summary[(got.summary["key"] == manager) & (got.summary["call_type"] == "commit")]
    assert row["bias"].iloc[0] == pytest.approx(pd.Series(ratios).median())
