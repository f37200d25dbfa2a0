"""``revmodel validate`` over a corpus of malformed exports: exit codes and exact messages.

Each folder of ``tests/malformed/`` is a data folder (some with a
``mapping.yaml``). Excel and Parquet cases are written by :data:`GENERATED`
with pandas, so the corpus holds no binary files. Each case is copied to a
temporary ``data/`` folder and validated from its parent, so messages name
``data/...`` paths and the quarantine lands in ``data/quarantine/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from revmodel.cli import main

CORPUS = Path(__file__).parent / "malformed"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())
TODAY = pd.Timestamp.today().strftime("%Y-%m-%d")


def _xlsx_input(data: Path) -> None:
    frame = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3"],
            "stage": ["won", "lost", "won"],
            "amount": [1200.0, 800.0, "n/a"],
            "close_date": pd.to_datetime(["2025-01-31", "2025-02-28", "2025-03-31"]),
            "rep_id": [101, 102, 101],
        }
    )
    frame.to_excel(data / "opportunities.xlsx", index=False)
    pd.DataFrame({"rep_id": [101, 102], "rep_name": ["Ana", "Ben"]}).to_excel(
        data / "reps.xlsx", index=False
    )


def _xlsx_sheet(data: Path) -> None:
    with pd.ExcelWriter(data / "export.xlsx") as book:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(book, sheet_name="Cover", index=False)
        pd.DataFrame(
            {
                "Deal": ["D1", "D2"],
                "Phase": ["Won", "Open"],
                "Value": [5000, 7000],
                "Closing": ["2025-01-31", "2025-09-30"],
            }
        ).to_excel(book, sheet_name="Pipeline", index=False)
    (data / "mapping.yaml").write_text(
        "tables:\n"
        "  opportunities:\n"
        "    file: export.xlsx\n"
        "    sheet: Pipeline\n"
        "    columns: {opportunity_id: Deal, stage: Phase, amount: Value, close_date: Closing}\n"
        "    values: {stage: {Open: proposal}}\n"
    )


def _parquet_input(data: Path) -> None:
    pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3", "O4"],
            "rep_id": [7, 8, 7, 9],
            "stage": ["won", "won", "lost", "won"],
            "amount": [1000.0, -50.0, 300.0, 400.0],
            "close_date": pd.to_datetime(["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"]),
        }
    ).to_parquet(data / "opportunities.parquet")
    pd.DataFrame(
        {"rep_id": [7, 8], "hire_date": pd.to_datetime(["2023-01-01", "2024-02-01"])}
    ).to_parquet(data / "reps.parquet")


def _xlsx_missing_sheet(data: Path) -> None:
    _xlsx_sheet(data)
    text = (data / "mapping.yaml").read_text().replace("sheet: Pipeline", "sheet: Deals")
    (data / "mapping.yaml").write_text(text)


#: Cases written by code (binary formats).
GENERATED: dict[str, Callable[[Path], None]] = {
    "xlsx_input": _xlsx_input,
    "xlsx_sheet_from_mapping": _xlsx_sheet,
    "xlsx_missing_sheet": _xlsx_missing_sheet,
    "parquet_input": _parquet_input,
}


def prepare_case(name: str, tmp: Path) -> Path:
    """Copy or generate case ``name`` into ``tmp/data``."""
    data = tmp / "data"
    if name in GENERATED:
        data.mkdir()
        GENERATED[name](data)
    else:
        shutil.copytree(CORPUS / name, data)
    return data


#: case -> (exit code, stdout lines, stderr lines)
EXPECTED: dict[str, tuple[int, list[str], list[str]]] = {
    "all_stages_unmapped": (
        2,
        [
            "opportunities.csv: 2 rows read, 0 accepted, 2 quarantined (data/quarantine/opportunities.csv)",
            "  - stage: 2 rows with a stage not in the schema (e.g. row 2: 'Closed Won')",
            "  values not in the schema: 'Closed Won' (1), 'Closed Lost' (1); add to a mapping file (mapping.yaml in the data folder, or --mapping FILE), choosing from prospecting, qualification, proposal, negotiation, won, lost:",
            "      tables:",
            "        opportunities:",
            "          values:",
            "            stage:",
            "              Closed Won: won",
            "              Closed Lost: lost",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: unusable, none of the 2 opportunity rows in opportunities.csv was accepted; fix the problems above and run again",
        ],
        [],
    ),
    "ambiguous_dates": (
        2,
        [],
        [
            "error: opportunities.csv column close_date: dates like '03/04/2025' (row 2) could be day/month or month/day; set date_format: '%d/%m/%Y' or '%m/%d/%Y' in a mapping file",
        ],
    ),
    "blank_lines": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 3 rows read, 2 accepted, 1 quarantined (data/quarantine/opportunities.csv)",
            "  - amount: 1 row with a value that is not a number (e.g. row 5: 'abc')",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 1 of 3 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "clean": (
        0,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "accounts.csv: 2 rows read, 2 accepted",
            "  note: segment derived from employees for 2 accounts (SMB 0-200, Mid-Market 200-2000, Enterprise 2000+)",
            "reps.csv: 2 rows read, 2 accepted",
            "opportunities.csv: 3 rows read, 3 accepted",
            "invoices.csv: 1 row read, 1 accepted",
            "subscriptions.csv: 1 row read, 1 accepted",
            "result: clean, all 9 rows accepted",
        ],
        [],
    ),
    "corrupt_parquet": (
        2,
        [],
        [
            "error: opportunities.parquet cannot be read as Parquet (Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.); export it again",
        ],
    ),
    "corrupt_xlsx": (
        2,
        [],
        [
            "error: opportunities.xlsx cannot be read as an Excel .xlsx workbook (File is not a zip file); export it again",
        ],
    ),
    "duplicate_ids": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 5 rows read, 3 accepted, 2 quarantined (data/quarantine/opportunities.csv)",
            "  - opportunity_id: 2 rows repeating an earlier opportunity_id (e.g. row 5: 'O2', as on row 3); the first is kept",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 2 of 5 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "empty_file": (
        2,
        [],
        [
            "error: opportunities.csv is empty (0 bytes); export it again",
        ],
    ),
    "future_won_deal": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 5 rows read, 4 accepted, 1 quarantined (data/quarantine/opportunities.csv)",
            f"  - close_date: 1 won deal with a close date after today, {TODAY} (e.g. row 5: '2030-12-31')",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 1 of 5 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "header_only": (
        2,
        [],
        [
            "error: opportunities.csv has a header but no rows; export it again with data",
        ],
    ),
    "invalid_yaml": (
        2,
        [],
        [
            "error: data/mapping.yaml is not valid YAML at line 4 (expected ',' or ']', but got '<stream end>'); fix its syntax",
        ],
    ),
    "latin1_encoding": (
        0,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 2 rows read, 2 accepted",
            "  note: read as latin-1",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 2 rows accepted",
        ],
        [],
    ),
    "mapping_source_missing": (
        2,
        [],
        [
            "error: data/mapping.yaml: tables.opportunities.columns.amount names 'Amt', which is not a column of pipeline.csv (its columns: Id, Stage, Amount, CloseDate); fix the name in the mapping",
        ],
    ),
    "missing_amount_won": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 5 rows read, 4 accepted, 1 quarantined (data/quarantine/opportunities.csv)",
            "  - amount: 1 won deal with no amount (e.g. row 5)",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 1 of 5 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "missing_opportunities": (
        2,
        [],
        [
            "error: no opportunities file in data/: add opportunities.csv (or .parquet, .xlsx), or name your export in a mapping file (tables: opportunities: file: ...)",
        ],
    ),
    "missing_required_column": (
        2,
        [],
        [
            "error: opportunities.csv has no column close_date (required); its columns are opportunity_id, stage, amount; rename the column in the export or map it in a mapping file (tables: opportunities: columns: {close_date: YourColumn})",
        ],
    ),
    "missing_required_values": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 6 rows read, 3 accepted, 3 quarantined (data/quarantine/opportunities.csv)",
            "  - opportunity_id: 1 row with no opportunity_id (e.g. row 5)",
            "  - close_date: 1 row with no close_date (e.g. row 7)",
            "  - stage: 1 row with no stage (e.g. row 6)",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 3 of 6 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "mixed_date_formats": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 4 rows read, 3 accepted, 1 quarantined (data/quarantine/opportunities.csv)",
            "  - close_date: 1 row with a date in DD/MM/YYYY while the column is mostly YYYY-MM-DD (e.g. row 5: '14/02/2025'); mixed formats are ambiguous: set date_format in a mapping file",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 1 of 4 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "mixed_dates_with_date_format": (
        0,
        [
            "mapping: data/mapping.yaml",
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 4 rows read, 4 accepted",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 4 rows accepted",
        ],
        [],
    ),
    "negative_amount_won": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 5 rows read, 4 accepted, 1 quarantined (data/quarantine/opportunities.csv)",
            "  - amount: 1 won deal with a negative amount (e.g. row 5: '-5000')",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 1 of 5 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "negative_counts": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "accounts.csv: 4 rows read, 4 accepted, 2 values blanked (data/quarantine/accounts.blanked.csv)",
            "  - employees: 1 row with a value that is not a whole number, blanked (e.g. row 5: '12.5')",
            "  - employees: 1 row with a negative value, blanked (e.g. row 4: '-4')",
            "  note: segment derived from employees for 2 accounts (SMB 0-200, Mid-Market 200-2000, Enterprise 2000+)",
            "opportunities.csv: 3 rows read, 3 accepted",
            "not provided (optional): reps, invoices, subscriptions",
            "result: usable, all 7 rows accepted, 2 values of optional columns blanked; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "non_numeric_amount": (
        1,
        [
            "currency: USD (as the amounts show)",
            "opportunities.csv: 6 rows read, 4 accepted, 2 quarantined (data/quarantine/opportunities.csv)",
            "  - amount: 2 rows with values that are not numbers (e.g. row 6: 'twelve')",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 2 of 6 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "old_excel": (
        2,
        [],
        [
            "error: opportunities.xls is in the old Excel format; save it as .xlsx or .csv",
        ],
    ),
    "orders_only": (
        0,
        [
            "mapping: data/mapping.yaml",
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "orders.csv: 3 rows read, 3 accepted",
            "  note: opportunity_id is not in the export; generated as 'orders.csv:<row>'",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 3 rows accepted",
        ],
        [],
    ),
    "parquet_input": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "reps.parquet: 2 rows read, 2 accepted",
            "opportunities.parquet: 4 rows read, 3 accepted, 1 quarantined (data/quarantine/opportunities.csv), 1 value blanked (data/quarantine/opportunities.blanked.csv)",
            "  - amount: 1 won deal with a negative amount (e.g. row 3: '-50')",
            "  - rep_id: 1 row whose rep_id is not in reps.parquet, blanked (e.g. row 5: '9')",
            "not provided (optional): accounts, invoices, subscriptions",
            "result: usable, 1 of 6 rows quarantined in 1 table, 1 value of optional columns blanked; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "ragged_row": (
        2,
        [],
        [
            "error: opportunities.csv row 3 has 5 fields but the header has 4; quote values that contain ',' and export it again",
        ],
    ),
    "reps_header_only": (
        2,
        [],
        [
            "error: reps.csv has a header but no rows; export it again with data, or remove it if you have no reps",
        ],
    ),
    "salesforce_mapping": (
        0,
        [
            "mapping: data/mapping.yaml",
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "pipeline_export.csv: 3 rows read, 3 accepted",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 3 rows accepted",
        ],
        [],
    ),
    "segment_bands": (
        0,
        [
            "mapping: data/mapping.yaml",
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "accounts.csv: 2 rows read, 2 accepted",
            "  note: segment derived from employees for 2 accounts (Small 0-1000, Large 1000+)",
            "opportunities.csv: 3 rows read, 3 accepted",
            "not provided (optional): reps, invoices, subscriptions",
            "result: clean, all 5 rows accepted",
        ],
        [],
    ),
    "semicolon_export": (
        0,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 2 rows read, 2 accepted",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 2 rows accepted",
        ],
        [],
    ),
    "several_unusable": (
        2,
        [],
        [
            "error: 2 problems make the data unusable:",
            "  - reps.csv has no column rep_id (required); its columns are name, manager; rename the column in the export or map it in a mapping file (tables: reps: columns: {rep_id: YourColumn})",
            "  - opportunities.csv has no column close_date (required); its columns are opportunity_id, stage, amount; rename the column in the export or map it in a mapping file (tables: opportunities: columns: {close_date: YourColumn})",
        ],
    ),
    "two_files_one_table": (
        2,
        [],
        [
            "error: both opportunities.csv and Opportunities.xlsx are in data/; keep one, or name the one to use in a mapping file (tables: opportunities: file: ...)",
        ],
    ),
    "unknown_account": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "accounts.csv: 2 rows read, 2 accepted",
            "  note: segment derived from employees for 2 accounts (SMB 0-200, Mid-Market 200-2000, Enterprise 2000+)",
            "opportunities.csv: 5 rows read, 5 accepted, 1 value blanked (data/quarantine/opportunities.blanked.csv)",
            "  - account_id: 1 row whose account_id is not in accounts.csv, blanked (e.g. row 5: 'A7')",
            "not provided (optional): reps, invoices, subscriptions",
            "result: usable, all 7 rows accepted, 1 value of optional columns blanked; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "unknown_mapping_column": (
        2,
        [],
        [
            "error: data/mapping.yaml: tables.opportunities.columns.amout is not a column of opportunities; use one of opportunity_id, close_date, amount, stage, created_date, account_id, rep_id, product, type, segment, region",
        ],
    ),
    "unknown_mapping_table": (
        2,
        [],
        [
            "error: data/mapping.yaml: tables.deals is not a table; use one of accounts, reps, opportunities, invoices, subscriptions, opportunity_history",
        ],
    ),
    "unknown_rep": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "reps.csv: 2 rows read, 2 accepted",
            "opportunities.csv: 4 rows read, 4 accepted, 1 value blanked (data/quarantine/opportunities.blanked.csv)",
            "  - rep_id: 1 row whose rep_id is not in reps.csv, blanked (e.g. row 5: 'R9')",
            "not provided (optional): accounts, invoices, subscriptions",
            "result: usable, all 6 rows accepted, 1 value of optional columns blanked; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "unknown_type": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 4 rows read, 4 accepted, 1 value blanked (data/quarantine/opportunities.blanked.csv)",
            "  - type: 1 row with a type not in the schema, blanked (e.g. row 5: 'upsell')",
            "  values not in the schema: 'upsell' (1); add to a mapping file (mapping.yaml in the data folder, or --mapping FILE), choosing from new, expansion, renewal:",
            "      tables:",
            "        opportunities:",
            "          values:",
            "            type:",
            "              upsell: ?",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, all 4 rows accepted, 1 value of optional columns blanked; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "unmapped_stage": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 6 rows read, 3 accepted, 3 quarantined (data/quarantine/opportunities.csv)",
            "  - stage: 3 rows with a stage not in the schema (e.g. row 5: 'Closed Won')",
            "  values not in the schema: 'Closed Won' (2), 'Negotiation/Review' (1); add to a mapping file (mapping.yaml in the data folder, or --mapping FILE), choosing from prospecting, qualification, proposal, negotiation, won, lost:",
            "      tables:",
            "        opportunities:",
            "          values:",
            "            stage:",
            "              Closed Won: won",
            "              Negotiation/Review: negotiation",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 3 of 6 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "unparseable_dates": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 4 rows read, 2 accepted, 2 quarantined (data/quarantine/opportunities.csv)",
            "  - close_date: 2 rows with unparseable dates (e.g. row 3: '31/02/2026')",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: usable, 2 of 4 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "utf8_bom": (
        0,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "opportunities.csv: 3 rows read, 3 accepted",
            "  note: read as utf-8 with BOM",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 3 rows accepted",
        ],
        [],
    ),
    "xlsx_input": (
        1,
        [
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "reps.xlsx: 2 rows read, 2 accepted",
            "opportunities.xlsx: 3 rows read, 2 accepted, 1 quarantined (data/quarantine/opportunities.csv)",
            "  - amount: 1 row with a value that is not a number (e.g. row 4: 'n/a')",
            "not provided (optional): accounts, invoices, subscriptions",
            "result: usable, 1 of 5 rows quarantined in 1 table; fix them in the export (see data/quarantine) and run again to include them",
        ],
        [],
    ),
    "xlsx_missing_sheet": (
        2,
        [],
        [
            "error: export.xlsx has no sheet 'Deals' (its sheets: Cover, Pipeline); fix tables: opportunities: sheet: in the mapping file",
        ],
    ),
    "xlsx_sheet_from_mapping": (
        0,
        [
            "mapping: data/mapping.yaml",
            "currency: USD, assumed (the amounts show no currency and no mapping sets one); if they are in another, set currency: in a mapping file",
            "export.xlsx: 2 rows read, 2 accepted",
            "not provided (optional): accounts, reps, invoices, subscriptions",
            "result: clean, all 2 rows accepted",
        ],
        [],
    ),
}


def test_corpus_is_large_enough():
    assert len(CASES) >= 25
    assert set(EXPECTED) == {p.name for p in CASES} | set(GENERATED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_messages(name, tmp_path, capsys, monkeypatch):
    data = prepare_case(name, tmp_path)
    monkeypatch.chdir(tmp_path)
    code = main(["validate", "data"])
    captured = capsys.readouterr()
    expected_code, expected_out, expected_err = EXPECTED[name]
    assert captured.out.splitlines() == expected_out
    assert captured.err.splitlines() == expected_err
    assert code == expected_code
    # quarantine files are written exactly when rows were quarantined or values blanked
    assert (data / "quarantine").is_dir() == any(
        "quarantined (" in line or "blanked (" in line for line in expected_out
    )
