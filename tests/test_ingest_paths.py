"""Ingestion's whole-column shortcuts give what reading value by value gives.

A clean column takes shortcuts (Arrow's cast for ISO dates and plain numbers, the
key checked by sorting 64-bit keys, padding told from the text's bytes); one bad
value sends the column the long way. Both must give the same tables, the same
messages and the same quarantine: checked on a CRM-shaped export of a few
thousand rows with bad rows in several columns, against figures computed here
from the records themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from revmodel import detect, sources

AS_OF = "2026-06-30"
N = 3000
MAPPING = """\
tables:
  opportunities:
    file: Opportunity Report.csv
    columns: {opportunity_id: Opportunity ID, close_date: Close Date, amount: Amount,
              stage: Stage, created_date: Created Date, rep_id: Opportunity Owner ID,
              account_id: Account ID}
    values: {stage: {Closed Won: won, Closed Lost: lost, Prospecting: prospecting,
                     Negotiation/Review: negotiation}}
  reps:
    file: Users.csv
    columns: {rep_id: User ID, rep_name: Full Name}
"""
STAGES = ("Closed Won", "Closed Lost", "Prospecting", "Negotiation/Review")


def _sf_id(prefix: str, i: int) -> str:
    """An 18-character Salesforce-like id (fixed width, more than 8 bytes)."""
    return f"{prefix}5g0000{i:06d}AAQ"


def _records(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, N), unit="D")
    created = close - pd.to_timedelta(rng.integers(5, 200, N), unit="D")
    stage = np.array(STAGES)[rng.integers(0, 4, N)]
    future = close > pd.Timestamp(AS_OF)
    stage = np.where(future & (stage == "Closed Won"), "Prospecting", stage)
    return pd.DataFrame(
        {
            "Opportunity ID": [_sf_id("006", i) for i in range(N)],
            "Opportunity Name": [f"Deal {i}" for i in range(N)],
            "Close Date": close.strftime("%Y-%m-%d"),
            "Amount": [f"{a:.2f}" for a in rng.integers(100, 90_000, N) * 1.25],
            "Stage": stage,
            "Created Date": created.strftime("%Y-%m-%d"),
            "Opportunity Owner ID": [_sf_id("005", i % 40) for i in range(N)],
            "Account ID": [_sf_id("001", i % 700) for i in range(N)],
        }
    )


def _write(folder: Path, records: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records.to_csv(folder / "Opportunity Report.csv", index=False)
    users = pd.DataFrame(
        {"User ID": [_sf_id("005", i) for i in range(40)], "Full Name": "Avery Quinn"}
    )
    users.to_csv(folder / "Users.csv", index=False)
    (folder / "mapping.yaml").write_text(MAPPING)
    return folder


def _spoil(records: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Bad values in several columns; returns the records and the spreadsheet row of each."""
    bad = records.copy()
    rows = {"repeat": 101, "date": 202, "amount": 303, "stage": 404, "owner": 505}
    at = {k: v - 2 for k, v in rows.items()}  # data row 2 is record 0
    bad.loc[at["repeat"], "Opportunity ID"] = bad.loc[7, "Opportunity ID"]
    bad.loc[at["date"], "Close Date"] = "2025-02-30"
    bad.loc[at["amount"], "Amount"] = "12,5O0.00"
    bad.loc[at["stage"], "Stage"] = "Closed Wonn"
    bad.loc[at["owner"], "Opportunity Owner ID"] = _sf_id("005", 999)
    # padding on an optional column and a key: trimmed, not a problem
    bad.loc[600, "Created Date"] = " " + bad.loc[600, "Created Date"]
    bad.loc[601, "Account ID"] = bad.loc[601, "Account ID"] + " "
    return bad, rows


def test_clean_export_takes_the_shortcuts_and_reads_every_value(tmp_path):
    records = _records()
    result = sources.load(_write(tmp_path / "d", records), as_of=AS_OF)
    opps = result.tables["opportunities"]
    rep = result.reports["opportunities"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_quarantined) == (N, N, 0)
    assert opps["close_date"].dtype == "datetime64[ns]"
    expected_close = pd.to_datetime(records["Close Date"], format="%Y-%m-%d")
    assert (opps["close_date"].to_numpy() == expected_close.to_numpy()).all()
    won = records["Stage"] == "Closed Won"
    assert opps.loc[opps["stage"] == "won", "amount"].sum() == pytest.approx(
        records.loc[won, "Amount"].astype(float).sum()
    )
    assert opps["opportunity_id"].tolist() == records["Opportunity ID"].tolist()


def test_bad_rows_in_several_columns_are_named_counted_and_kept(tmp_path):
    records, rows = _spoil(_records())
    qdir = tmp_path / "q"
    result = sources.load(_write(tmp_path / "d", records), quarantine_dir=qdir, as_of=AS_OF)
    rep = result.reports["opportunities"]
    assert (rep.rows_read, rep.rows_accepted, rep.rows_quarantined) == (N, N - 4, 4)
    assert rep.values_blanked == 1  # the owner is optional: blanked, the deal kept
    first = _sf_id("006", 7)
    lines = result.summary().splitlines()
    assert lines[1] == (
        "currency: USD, assumed (the amounts show no currency and no mapping sets one); "
        "if they are in another, set currency: in a mapping file"
    )
    assert lines[3:9] == [
        f"Opportunity Report.csv: 3,000 rows read, 2,996 accepted, 4 quarantined ({qdir}/"
        f"opportunities.csv), 1 value blanked ({qdir}/opportunities.blanked.csv)",
        "  - opportunity_id: 1 row repeating an earlier opportunity_id "
        f"(e.g. row {rows['repeat']}: '{first}', as on row 9); the first is kept",
        f"  - close_date: 1 row with an unparseable date (e.g. row {rows['date']}: '2025-02-30')",
        "  - amount: 1 row with a value that is not a number "
        f"(e.g. row {rows['amount']}: '12,5O0.00')",
        f"  - stage: 1 row with a stage not in the schema (e.g. row {rows['stage']}: "
        "'Closed Wonn')",
        f"  - rep_id: 1 row whose rep_id is not in Users.csv, blanked (e.g. row {rows['owner']}: "
        f"'{_sf_id('005', 999)}')",
    ]
    assert lines[-1] == (
        "result: usable, 4 of 3,040 rows quarantined in 1 table, 1 value of optional columns "
        f"blanked; fix them in the export (see {qdir}) and run again to include them"
    )
    written = pd.read_csv(qdir / "opportunities.csv", dtype=str, keep_default_na=False)
    assert written.values.tolist() == [
        ["Opportunity Report.csv", str(rows["repeat"]), "opportunity_id", first,
         "duplicate opportunity_id; the first, on row 9, is kept"],
        ["Opportunity Report.csv", str(rows["date"]), "close_date", "2025-02-30",
         "unparseable date"],
        ["Opportunity Report.csv", str(rows["amount"]), "amount", "12,5O0.00", "not a number"],
        ["Opportunity Report.csv", str(rows["stage"]), "stage", "Closed Wonn",
         "stage not one of prospecting, qualification, proposal, negotiation, won, lost; "
         "map it under values: stage: in the mapping file"],
    ]  # fmt: skip
    blanked = pd.read_csv(qdir / "opportunities.blanked.csv", dtype=str, keep_default_na=False)
    assert blanked.values.tolist() == [
        ["Opportunity Report.csv", str(rows["owner"]), "rep_id", _sf_id("005", 999),
         "rep_id not in Users.csv", "blanked"],
    ]  # fmt: skip
    opps = result.tables["opportunities"]
    kept = records.drop(index=[rows[k] - 2 for k in ("repeat", "date", "amount", "stage")])
    assert opps["opportunity_id"].tolist() == kept["Opportunity ID"].tolist()
    assert opps["rep_id"].isna().sum() == 1
    assert opps["created_date"].notna().all()  # the padded date was trimmed and read
    assert opps["account_id"].str.len().eq(18).all()
    won = kept["Stage"] == "Closed Won"
    assert opps.loc[opps["stage"] == "won", "amount"].sum() == pytest.approx(
        kept.loc[won, "Amount"].astype(float).sum()
    )


def test_shortcut_and_long_way_give_the_same_table(tmp_path):
    """One padded value in every column sends each the long way: the same values result."""
    records = _records(seed=8)
    padded = records.copy()
    for col in padded.columns:
        padded.loc[5, col] = f" {padded.loc[5, col]} "
    short = sources.load(_write(tmp_path / "a", records), as_of=AS_OF).tables["opportunities"]
    long = sources.load(_write(tmp_path / "b", padded), as_of=AS_OF).tables["opportunities"]
    pd.testing.assert_frame_equal(short, long)


@pytest.mark.parametrize(
    "ids",
    [
        ["A1", "B22", "A1", None, "B22", "C"],  # several lengths: the hash table
        ["AB12", "CD34", "AB12", None, "EF56"],  # one length, up to 8 bytes: the bytes
        [_sf_id("006", i % 5) for i in range(12)],  # 18 bytes: hashed, then exact
        [_sf_id("006", i) for i in range(12)],
        [None, None],
        [],
    ],
)
def test_repeated_keys_are_pandas_duplicated(ids):
    s = pd.Series(ids, dtype="str", index=pd.RangeIndex(2, 2 + len(ids)))
    expected = (s.notna() & s.duplicated(keep="first")).tolist()
    assert sources._repeated(s).tolist() == expected


def test_iso_dates_shortcut_refuses_what_it_cannot_read():
    window = (pd.Timestamp("1990-01-01"), pd.Timestamp("2036-06-30"))
    clean = pd.Series(["2024-02-29", "2025-12-31", None], dtype="str")
    values, issues = detect.parse_dates(clean, window=window)
    assert values.tolist()[:2] == [pd.Timestamp("2024-02-29"), pd.Timestamp("2025-12-31")]
    assert pd.isna(values.iloc[2]) and issues == []
    # a rolled-over day and a date outside the window: reported, never read as another day
    values, issues = detect.parse_dates(
        pd.Series(["2025-02-30", "1989-12-31", "2024-01-01"], dtype="str"), window=window
    )
    assert [(i.rule, i.rows.tolist()) for i in issues] == [("date", [0]), ("date_window", [1])]
    assert values.isna().tolist() == [True, True, False]
