"""Pipeline history: the waterfall of what changed, and the sample company's history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revmodel import history as H
from revmodel import sample, schema

COLS = list(H.WATERFALL_COLUMNS)


def _rows(*rows):
    return pd.DataFrame(
        rows, columns=["opportunity_id", "changed_at", "stage", "amount", "close_date"]
    ).assign(
        changed_at=lambda d: pd.to_datetime(d["changed_at"]),
        close_date=lambda d: pd.to_datetime(d["close_date"]),
    )


# ten deals, window 2027-01-10 .. 2027-01-16, period 2027-01-01 .. 2027-03-31
SMALL = _rows(
    # D1 stays in, re-priced up: opening 100, increased 50, closing 150
    ("D1", "2026-12-01", "proposal", 100.0, "2027-02-20"),
    ("D1", "2027-01-12", "proposal", 150.0, "2027-02-20"),
    # D2 pushed to May and re-priced in the same change: opening 200, pushed_out 200
    ("D2", "2026-12-01", "negotiation", 200.0, "2027-03-05"),
    ("D2", "2027-01-13", "negotiation", 250.0, "2027-05-15"),
    # D3 pulled in from June at a new amount: pulled_in 320, closing 320
    ("D3", "2026-12-01", "qualification", 300.0, "2027-06-01"),
    ("D3", "2027-01-11", "proposal", 320.0, "2027-03-01"),
    # D4 created in the window: new 80, closing 80
    ("D4", "2027-01-12", "prospecting", 80.0, "2027-03-10"),
    # D5 re-priced down, then won at another amount: opening 500, decreased 50, won 450
    ("D5", "2026-11-01", "negotiation", 500.0, "2027-01-31"),
    ("D5", "2027-01-11", "negotiation", 450.0, "2027-01-31"),
    ("D5", "2027-01-14", "won", 460.0, "2027-01-14"),
    # D6 lost: opening 120, lost 120
    ("D6", "2026-12-05", "proposal", 120.0, "2027-02-28"),
    ("D6", "2027-01-15", "lost", 120.0, "2027-01-15"),
    # D7 created and lost in the window: new 60, lost 60
    ("D7", "2027-01-11", "prospecting", 60.0, "2027-03-30"),
    ("D7", "2027-01-16", "lost", 60.0, "2027-01-16"),
    # D8 closes in July: not in the period at all
    ("D8", "2026-12-01", "proposal", 999.0, "2027-07-01"),
    # D9 changes the day after the window: opening 70, closing 70
    ("D9", "2026-12-01", "proposal", 70.0, "2027-02-01"),
    ("D9", "2027-01-17", "proposal", 700.0, "2027-02-01"),
    # D10 pushed out on the window's first day: opening 40, pushed_out 40
    ("D10", "2026-12-01", "qualification", 40.0, "2027-03-01"),
    ("D10", "2027-01-10", "qualification", 40.0, "2027-04-02"),
)
LABELS = pd.DataFrame(
    {
        "region": ["East"] * 3 + ["West"] * 7,
        "manager": ["Ann"] * 3 + ["Bob"] * 7,
        "rep": ["r1", "r1", "r2", "r3", "r3", "r4", "r4", "r4", "r5", "r5"],
        "segment": ["SMB"] * 10,
    },
    index=pd.Index([f"D{i}" for i in range(1, 11)], name="opportunity_id"),
)
WINDOW = H.Window("2027-01-10", "2027-01-16", "2027-01-01", "2027-03-31")


def _row(table, level, key):
    row = table[(table["level"] == level) & (table["key"] == key)]
    assert len(row) == 1
    return row.iloc[0][COLS[2:]].astype(float).to_dict()


def test_hand_computed_waterfall_every_bar():
    wf = H.waterfall(SMALL, WINDOW, LABELS, by="manager")
    assert list(wf.table.columns) == COLS
    assert wf.table["level"].tolist() == ["total", "manager", "manager"]
    assert _row(wf.table, "total", "total") == {
        "opening": 1030.0,
        "new": 140.0,
        "pulled_in": 320.0,
        "pushed_out": 240.0,
        "increased": 50.0,
        "decreased": 50.0,
        "won": 450.0,
        "lost": 180.0,
        "closing": 620.0,
    }
    assert _row(wf.table, "manager", "Ann") == {
        "opening": 300.0,
        "new": 0.0,
        "pulled_in": 320.0,
        "pushed_out": 200.0,
        "increased": 50.0,
        "decreased": 0.0,
        "won": 0.0,
        "lost": 0.0,
        "closing": 470.0,
    }
    assert _row(wf.table, "manager", "Bob")["won"] == 450.0
    assert (H.balance_errors(wf.table) == 0).all()


def test_deals_behind_each_bar():
    deals = H.waterfall(SMALL, WINDOW, LABELS).deals
    assert list(deals.columns) == list(H.DEAL_COLUMNS)
    got = {bar: sorted(g["opportunity_id"]) for bar, g in deals.groupby("bar")}
    assert got == {
        "new": ["D4", "D7"],
        "pulled_in": ["D3"],
        "pushed_out": ["D10", "D2"],
        "increased": ["D1"],
        "decreased": ["D5"],
        "won": ["D5"],
        "lost": ["D6", "D7"],
    }
    d2 = deals[deals["opportunity_id"] == "D2"].iloc[0]
    assert d2["amount"] == 200.0 and d2["amount_after"] == 250.0
    assert d2["close_date_after"] == pd.Timestamp("2027-05-15") and d2["manager"] == "Ann"


def test_opening_and_closing_are_the_states_before_from_and_at_end_of_to():
    # the whole window collapsed to one day: D10's change on the 10th is inside it
    wf = H.waterfall(SMALL, H.Window("2027-01-10", "2027-01-10", "2027-01-01", "2027-03-31"))
    total = _row(wf.table, "total", "total")
    assert total["opening"] == 1030.0 and total["pushed_out"] == 40.0
    assert total["closing"] == 990.0


def test_unlabelled_deals_and_an_empty_window():
    wf = H.waterfall(SMALL, WINDOW, LABELS.iloc[:3], by=["region", "rep"])
    region = wf.table[wf.table["level"] == "region"].set_index("key")
    assert region.index.tolist() == ["(unassigned)", "East"]
    early = H.waterfall(SMALL, H.Window("2020-01-01", "2020-01-31", "2020-01-01", "2020-03-31"))
    assert early.table[COLS[2:]].eq(0).all().all() and early.deals.empty


def test_bad_levels_and_dates_have_clear_messages():
    with pytest.raises(Exception, match=r"--by team is not a level; use one of total, region"):
        H.waterfall(SMALL, WINDOW, by="team")
    with pytest.raises(Exception, match=r"--to 2027-01-01 is before --from 2027-01-10"):
        H.Window("2027-01-10", "2027-01-01", "2027-01-01", "2027-03-31")
    with pytest.raises(Exception, match=r"missing column\(s\) close_date"):
        H.waterfall(SMALL.drop(columns="close_date"), WINDOW)


@pytest.fixture(scope="module")
def company():
    return sample.generate(reps=12, months=24, seed=3, end="2026-06")


@pytest.mark.parametrize(
    "window",
    [
        ("2026-06-01", "2026-06-07", "2026-05-01", "2026-07-31"),
        ("2026-05-01", "2026-06-30", "2026-05-01", "2026-07-31"),
        ("2026-01-01", "2026-03-31", "2026-02-01", "2026-04-30"),
    ],
)
def test_sample_waterfall_balances_adds_up_and_matches_states(company, window):
    w = H.Window(*window)
    hist = company["opportunity_history"]
    wf = H.waterfall(hist, w, H.deal_labels(company), by=["region", "manager", "rep", "segment"])
    table = wf.table
    assert (H.balance_errors(table).abs() < 1e-6).all()
    total = table[table["level"] == "total"][COLS[2:]].to_numpy()
    for level in ("region", "manager", "rep", "segment"):
        sums = table[table["level"] == level][COLS[2:]].sum().to_numpy()
        np.testing.assert_allclose(sums, total[0], atol=1e-6)
    # opening and closing recomputed independently from each deal's last row by then
    p0, p1 = w.period_start, w.period_end

    def open_in_period(rows):
        last = rows.sort_values("changed_at").groupby("opportunity_id").tail(1)
        keep = last["stage"].isin(schema.OPEN_STAGES) & last["close_date"].between(p0, p1)
        return last.loc[keep, "amount"].sum()

    opening = open_in_period(hist[hist["changed_at"] < w.start])
    closing = open_in_period(hist[hist["changed_at"] <= w.end])
    assert total[0][0] == pytest.approx(opening, abs=0.01)
    assert total[0][-1] == pytest.approx(closing, abs=0.01)
    # the deals behind each bar add up to the bar
    by_bar = wf.deals.groupby("bar")["amount"].sum()
    for bar in H.BARS:
        assert by_bar.get(bar, 0.0) == pytest.approx(float(table.iloc[0][bar]), abs=0.01)


# --------------------------------------------------------------------------- sample history


def test_sample_history_ends_in_each_deals_row(company):
    hist, opps = company["opportunity_history"], company["opportunities"]
    assert list(hist.columns) == list(schema.OPPORTUNITY_HISTORY.column_names)
    last = hist.groupby("opportunity_id").tail(1).set_index("opportunity_id")
    last = last.reindex(opps["opportunity_id"])
    for col in ("stage", "amount", "close_date"):
        assert (last[col].to_numpy() == opps[col].to_numpy()).all(), col
    first = hist.groupby("opportunity_id").head(1).set_index("opportunity_id")
    created = opps.set_index("opportunity_id")["created_date"]
    assert (first["changed_at"] >= created.reindex(first.index)).all()
    assert hist["changed_at"].max() <= pd.Timestamp("2026-06-30")
    assert not hist.duplicated(["opportunity_id", "changed_at"]).any()


def test_sample_history_moves_like_a_pipeline(company):
    hist = company["opportunity_history"].copy()
    g = hist.groupby("opportunity_id")
    moved = (hist["close_date"] - g["close_date"].shift()).dt.days
    opened = hist["stage"].isin(schema.OPEN_STAGES) & g["stage"].shift().isin(schema.OPEN_STAGES)
    pushes, pulls = (moved > 0) & opened, (moved < 0) & opened
    deals = hist["opportunity_id"].nunique()
    assert 0.15 < hist.loc[pushes, "opportunity_id"].nunique() / deals < 0.5
    assert 0.01 < hist.loc[pulls, "opportunity_id"].nunique() / deals < 0.1
    # stages only move up the funnel while open
    rank = hist["stage"].map({s: i for i, s in enumerate(schema.STAGES)})
    assert (rank.groupby(hist["opportunity_id"]).diff().dropna() >= 0).all()
    # changes happen on weekdays, except creations and closes carried from the deals
    changes = hist[g.cumcount() > 0]
    weekend = changes["changed_at"].dt.day_of_week >= 5
    assert weekend.mean() < 0.1
    repriced = (hist["amount"] != g["amount"].shift()) & g["amount"].shift().notna()
    assert hist.loc[repriced, "opportunity_id"].nunique() / deals > 0.1


def test_sample_history_is_deterministic():
    a = sample.generate(reps=6, months=12, seed=1, end="2025-01")["opportunity_history"]
    b = sample.generate(reps=6, months=12, seed=1, end="2025-01")["opportunity_history"]
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- loading


def test_history_export_loads_through_a_mapping_with_quarantine(tmp_path):
    (tmp_path / "opportunities.csv").write_text(
        "Id,StageName,Amount,CloseDate\nD1,Closed Won,150,2027-02-20\nD2,Proposal,90,2027-03-01\n"
    )
    (tmp_path / "history_export.csv").write_text(
        "OpportunityId;ValidFrom;StageName;Amount;CloseDate;ForecastCategoryName\n"
        "D1;05/12/2026;Proposal;100;20/02/2027;Best Case\n"
        "D1;12/01/2027;Closed Won;150;20/02/2027;Closed\n"
        "D1;12/01/2027;Closed Won;150;20/02/2027;Closed\n"
        "D2;13/12/2026;Proposal;;01/03/2027;Pipeline\n"
        "D2;14/12/2026;Discovery;90;01/03/2027;Upside\n"
    )
    (tmp_path / "mapping.yaml").write_text(
        "tables:\n"
        "  opportunities:\n"
        "    columns: {opportunity_id: Id, stage: StageName, amount: Amount,"
        " close_date: CloseDate}\n"
        "    values: {stage: {Closed Won: won}}\n"
        "  opportunity_history:\n"
        "    file: history_export.csv\n"
        "    date_format: '%d/%m/%Y'\n"
        "    columns: {opportunity_id: OpportunityId, changed_at: ValidFrom,"
        " stage: StageName, amount: Amount, close_date: CloseDate,"
        " forecast_category: ForecastCategoryName}\n"
        "    values:\n"
        "      stage: {Closed Won: won}\n"
        "      forecast_category: {Best Case: best_case}\n"
    )
    from revmodel import sources

    result = sources.load(tmp_path, quarantine_dir=tmp_path / "q", as_of="2027-06-30")
    rep = result.reports["opportunity_history"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_quarantined) == (5, 3, 2)
    reasons = sorted(p.reason for p in rep.problems)
    assert reasons == [
        "row repeating an earlier opportunity_id, changed_at",
        "row with a forecast_category not in the schema",
        "row with a stage not in the schema",
    ]
    assert "forecast_category not in the schema" in result.summary()
    hist = result.tables["opportunity_history"]
    assert hist["forecast_category"].tolist() == ["best_case", "closed", "pipeline"]
    assert pd.isna(hist["amount"].iloc[2])  # a missing amount is kept missing
    quarantine = pd.read_csv(tmp_path / "q" / "opportunity_history.csv")
    assert sorted(quarantine["row"].unique()) == [4, 6]
    assert "opportunity_history" not in result.missing_tables


def test_changes_section_for_the_monday_call():
    section = H.changes_section(
        SMALL, "2027-01-16", LABELS, by="manager", fiscal_year_start=1, naming="end"
    )
    assert section.quarter == "FY2027-Q1"
    # the week to the 16th is the hand-computed window
    week = H.waterfall(SMALL, WINDOW, LABELS, by="manager").table
    pd.testing.assert_frame_equal(section.since_last_week.table, week)
    qtd = section.since_quarter_start.table.iloc[0]
    # since January 1st nothing happened before the 10th: the same bars
    assert qtd[COLS[2:]].tolist() == week.iloc[0][COLS[2:]].tolist()
    from revmodel import plots

    fig = plots.changes_figures(section)["since_last_week"]
    trace = fig.data[0]
    assert list(trace.x) == [
        "Opening",
        "New",
        "Pulled in",
        "Pushed out",
        "Increased",
        "Decreased",
        "Won",
        "Lost",
        "Closing",
    ]
    assert list(trace.y) == [1030.0, 140.0, 320.0, -240.0, 50.0, -50.0, -450.0, -180.0, 620.0]
    assert "FY2027-Q1 pipeline: the week to 2027-01-16" in fig.layout.title.text


def test_plan_pack_shows_the_changes_when_there_is_history(tmp_path):
    import types

    from revmodel.publish import html, tables

    sample.write(sample.generate(reps=8, months=24, seed=2, end="2026-10"), tmp_path)
    cube = types.SimpleNamespace(attrs={"fiscal_year_start": 11, "fiscal_year_naming": "end"})
    params = {"data_dir": str(tmp_path), "cycle": "FY2027-Q1"}
    out = tables._pipeline_changes(params, cube)
    assert set(out) == {"changes_week", "changes_quarter"}
    week = out["changes_week"]
    assert list(week.columns) == COLS and week["level"].iloc[0] == "total"
    assert week.attrs["title"] == "FY2027-Q1 pipeline: the week to 2026-10-31"
    assert out["changes_quarter"].attrs["title"] == "FY2027-Q1 pipeline: since 2026-08-01"
    assert (H.balance_errors(out["changes_quarter"]).abs() < 1e-6).all()
    page = html.render_html(
        {"cycle": "FY2027-Q1", "quarter_months": "", "as_of": "2026-10", "plan_year": "FY2027"},
        out,
        {},
        params,
        "",
    )
    assert '<section id="changes"><h2>What changed in the pipeline</h2>' in page
    # without history (no export, no snapshots) the section is left out
    (tmp_path / "opportunity_history.csv").unlink()
    assert tables._pipeline_changes(params, cube) == {}
