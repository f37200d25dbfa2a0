"""Names, not ids: reps and accounts by name in the cube and in every pack table, chart and sheet.

The exports here are CSV files as a CRM writes them, with two reps called
"Ann Lee" and two accounts called "Acme GmbH": where two share a name the id
stands beside it, elsewhere the name alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from revmodel import cube, forecast, plots, publish, sources


def _exports(folder: Path) -> Path:
    folder.mkdir()
    (folder / "reps.csv").write_text(
        "rep_id,rep_name,manager,region,segment,hire_date\n"
        "R1,Ann Lee,Mo Diaz,EMEA,SMB,2022-01-01\n"
        "R2,Bo Chen,Mo Diaz,EMEA,SMB,2022-01-01\n"
        "R3,Ann Lee,Mo Diaz,EMEA,SMB,2023-03-01\n"
        "R4, ,Mo Diaz,EMEA,SMB,2023-03-01\n",
        encoding="utf-8",
    )
    (folder / "accounts.csv").write_text(
        "account_id,account_name,employees,segment,region,owner_rep_id\n"
        "A1,Acme GmbH,50,SMB,EMEA,R1\nA2,Acme GmbH,60,SMB,EMEA,R2\n"
        'A3,Hooli,70,SMB,EMEA,R3\nA4,=HYPERLINK("x"),80,SMB,EMEA,R4\n',
        encoding="utf-8",
    )
    rows = ["opportunity_id,account_id,rep_id,amount,stage,close_date,created_date"]
    rng = np.random.default_rng(1)
    months = pd.date_range("2023-01-01", "2025-12-01", freq="MS")
    for i, m in enumerate(months):
        for j, (acct, rep) in enumerate((("A1", "R1"), ("A2", "R2"), ("A3", "R3"), ("A4", "R4"))):
            amount = round(float(rng.uniform(800, 1200)), 2)
            day = (m + pd.Timedelta(days=10)).date()
            rows.append(f"O{i}-{j},{acct},{rep},{amount},won,{day},{m.date()}")
    (folder / "opportunities.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> tuple:
    data = _exports(tmp_path_factory.mktemp("names") / "data")
    loaded = sources.load(data)
    return cube.build_cube(loaded.tables, fiscal_year_start=1, as_of="2025-12"), loaded.tables


@pytest.fixture(scope="module")
def forecasts(ds, tmp_path_factory) -> tuple:
    """The cube's seasonal-naive forecast, reconciled bottom-up, and its months."""
    c, _ = ds
    cache = tmp_path_factory.mktemp("fc")
    fc = forecast.forecast_cube(
        c, horizon=3, method="seasonal_naive", progress=False, cache_dir=cache
    )
    point, _ = forecast.reconcile_forecast(fc, c, method="bottom_up")
    return fc, point, pd.DatetimeIndex(point["month"].values)


def test_reps_and_accounts_are_coords_of_the_cube_by_name(ds):
    c, _ = ds
    assert dict(zip(c["rep"].values, c["rep_label"].values, strict=True)) == {
        "R1": "Ann Lee (R1)", "R2": "Bo Chen", "R3": "Ann Lee (R3)", "R4": "R4",
    }  # fmt: skip
    assert list(c["account"].values) == ["A1", "A2", "A3", "A4"]
    assert list(c["account_name"].values) == ["Acme GmbH", "Acme GmbH", "Hooli", '=HYPERLINK("x")']
    assert cube.labels(c, "account") == {
        "A1": "Acme GmbH (A1)", "A2": "Acme GmbH (A2)", "A3": "Hooli", "A4": '=HYPERLINK("x")',
    }  # fmt: skip
    # No measure runs over accounts: the cube's cells are unchanged.
    assert c["bookings"].dims == cube.DIMS
    assert float(c["bookings"].sum()) == pytest.approx(
        float(ds[1]["opportunities"]["amount"].sum())
    )


def test_every_pack_table_chart_and_sheet_shows_reps_by_name(ds, forecasts, tmp_path):
    c, _ = ds
    fc, point, months = forecasts
    by_rep = publish.forecast_table(c, fc, point, None, months, "rep")
    assert sorted(by_rep["name"]) == ["Ann Lee (R1)", "Ann Lee (R3)", "Bo Chen", "R4"]

    balance = pd.DataFrame(
        {"rep_id": ["R1", "R2", "R3", "R4"], "status": ["active"] * 4,
         "deviation_before": [0.1, -0.1, 0.2, -0.2], "deviation_after": [0.0] * 4}
    )  # fmt: skip
    named = publish.with_names(balance, c)
    assert list(named.columns[:2]) == ["name", "rep_id"]
    assert list(named["name"]) == ["Ann Lee (R1)", "Bo Chen", "Ann Lee (R3)", "R4"]
    fig = plots.territory_balance(named)
    assert set(fig.data[0].x) == {"Ann Lee (R1)", "Bo Chen", "Ann Lee (R3)", "R4"}
    accounts = publish.with_names(pd.DataFrame({"account_id": ["A2", "A4", "A9"]}), c, "account_id")
    assert list(accounts["name"]) == ["Acme GmbH (A2)", '=HYPERLINK("x")', "A9"]

    book = tmp_path / "plan.xlsx"
    publish.write_excel(
        book, {"cycle": "FY2026-Q1"}, {"forecast_by_level": by_rep, "territories": named}
    )
    wb = openpyxl.load_workbook(book)
    cells = [r[0] for r in wb["Forecast by level"].iter_rows(min_row=2, values_only=True)]
    assert sorted(cells) == ["Ann Lee (R1)", "Ann Lee (R3)", "Bo Chen", "R4"]
    assert [r[0] for r in wb["Territories"].iter_rows(min_row=2, values_only=True)] == list(
        named["name"]
    )


def test_forecast_table_leaves_out_reps_who_left_before_the_period(ds, forecasts):
    c, _ = ds
    fc, point, months = forecasts
    gone = months[0] - pd.Timedelta(days=1)
    ends = np.array(
        [np.datetime64("NaT"), np.datetime64("NaT"), np.datetime64("NaT"), gone], "M8[ns]"
    )
    left = c.assign_coords(end_date=("rep", ends))
    by_rep = publish.forecast_table(left, fc, point, None, months, "rep")
    assert sorted(by_rep["name"]) == ["Ann Lee (R1)", "Ann Lee (R3)", "Bo Chen"]
    total = publish.forecast_table(left, fc, point, None, months, "total")
    assert total["forecast"].iloc[0] == pytest.approx(float(point.sum()))


def test_a_period_partly_booked_lands_at_its_bookings_plus_the_forecast(ds, forecasts):
    """The gap of a period already under way is target - (booked + forecast of the rest),
    as the explorer's expected landing; never target - forecast of the months ahead."""
    import xarray as xr

    c, tables = ds
    fc, point, ahead = forecasts
    months = pd.DatetimeIndex(["2025-11-01", "2025-12-01", *ahead])  # two months booked
    quota = xr.Dataset(
        {"quota": (("rep", "month"), np.full((4, len(months)), 2_000.0))},
        coords={"rep": ["R1", "R2", "R3", "R4"], "month": months.values},
    )
    total = publish.forecast_table(c, fc, point, quota, months, "total").iloc[0]
    opps = tables["opportunities"]
    closed = pd.to_datetime(opps["close_date"])
    booked = float(opps.loc[(closed >= "2025-11-01") & (closed < "2026-01-01"), "amount"].sum())
    assert booked > 0
    target = 2_000.0 * 4 * len(months)
    assert total["forecast"] == pytest.approx(float(point.sum()))
    assert total["booked"] == pytest.approx(booked)
    assert total["gap"] == pytest.approx(target - (booked + float(point.sum())))
    assert total["forecast_to_target"] == pytest.approx((booked + float(point.sum())) / target)
