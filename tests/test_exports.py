"""``revmodel map`` on exports in the shapes real tools produce, then validate and plan.

The corpus (``tests/exports/<case>/``) is written by ``tests/exports/generate.py``
from records drawn per case; the true figures (rows, won bookings) come from
those records, never from revmodel. Fast tests check the guessing with exact
expected outputs; the slow ones take each export through ``revmodel map`` ->
the draft completed where a person would have to -> ``revmodel validate`` ->
``revmodel plan`` from a temporary project folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml

from revmodel import mapdraft, sources
from revmodel.cli import main
from tests.conftest import assert_plan_ran_cleanly, run_revmodel, without_band_calibration
from tests.exports import generate

CORPUS = Path(__file__).parent / "exports"
CASES = tuple(generate.CASES)
STAGES = "prospecting, qualification, proposal, negotiation, won, lost"


def _files(case: str, root: Path = CORPUS) -> list[Path]:
    return [root / case / f for f in generate.CASES[case].files]


def _draft(case: str) -> mapdraft.Draft:
    return mapdraft.draft(_files(case))


# ---------------------------------------------------------------------------
# the corpus


def test_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    generate.write(tmp_path)
    for case in CASES:
        for new, committed in zip(_files(case, tmp_path), _files(case), strict=True):
            if new.suffix == ".xlsx":
                a, b = openpyxl.load_workbook(new), openpyxl.load_workbook(committed)
                assert a.sheetnames == b.sheetnames
                for ws in a.worksheets:
                    assert list(ws.values) == list(b[ws.title].values), (case, ws.title)
            else:
                assert new.read_bytes() == committed.read_bytes(), (case, new.name)


@pytest.mark.parametrize("case", CASES)
def test_corpus_sizes(case: str) -> None:
    d = _draft(case)
    for t in d.tables:
        assert 200 <= len(t.export.frame) <= 2000, (case, t.file)


def test_corpus_shapes_are_the_tools_own() -> None:
    erp = _files("erp")[0].read_bytes()
    assert b"\x80" in erp  # the euro sign in cp1252
    assert erp.splitlines()[1].decode("cp1252").split(";")[1:2] == ["19.05.2025"]
    assert _files("custom")[0].read_bytes().startswith(b"\xef\xbb\xbfDeal Ref\tClient")
    book = openpyxl.load_workbook(_files("salesforce")[0])
    assert book.sheetnames == ["Report Criteria", "Opportunities"]
    rows = list(book["Opportunities"].values)
    assert rows[0][0] == "Opportunity Pipeline" and rows[4][0] == "Opportunity Owner"
    assert rows[-5][0] == "Grand Totals (800 records)"
    assert rows[-3][0].startswith("Copyright (c)")


# ---------------------------------------------------------------------------
# guessing: stages, types, headers


@pytest.mark.parametrize(
    ("value", "stage"),
    [
        ("Closed Won", "won"),
        ("closedwon", "won"),
        ("Won", "won"),
        ("won", "won"),
        ("Signed", "won"),
        ("Order received", "won"),
        ("Closed Lost", "lost"),
        ("closedlost", "lost"),
        ("Lost", "lost"),
        ("Out-Sold", "lost"),
        ("Canceled", "lost"),
        ("No Decision", "lost"),
        ("Dead", "lost"),
        ("appointmentscheduled", "prospecting"),
        ("qualifiedtobuy", "qualification"),
        ("presentationscheduled", "proposal"),
        ("decisionmakerboughtin", "negotiation"),
        ("contractsent", "negotiation"),
        ("Prospecting", "prospecting"),
        ("Needs Analysis", "qualification"),
        ("Value Proposition", "proposal"),
        ("Id. Decision Makers", "proposal"),
        ("Proposal/Price Quote", "proposal"),
        ("Negotiation/Review", "negotiation"),
        ("Lead In", "prospecting"),
        ("Contact Made", "prospecting"),
        ("Demo Scheduled", "qualification"),
        ("Proposal Made", "proposal"),
        ("Negotiations Started", "negotiation"),
        ("Qualify", "qualification"),
        ("Develop", "qualification"),
        ("Propose", "proposal"),
        ("Close", "negotiation"),
        ("Verbal Yes", None),
        ("On Ice", None),
        ("Stage 3", None),
    ],
)
def test_guess_stage(value: str, stage: str | None) -> None:
    assert mapdraft.guess_stage(value) == stage


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("New Business", "new"),
        ("newbusiness", "new"),
        ("New Customer", "new"),
        ("existingbusiness", "expansion"),
        ("Existing Customer - Upgrade", "expansion"),
        ("Upsell", "expansion"),
        ("Renewal", "renewal"),
        ("Existing Customer - Replacement", "renewal"),
        ("Existing Customer - Downgrade", None),
        ("Pilot", None),
    ],
)
def test_guess_type(value: str, kind: str | None) -> None:
    assert mapdraft.guess_type(value) == kind


def test_status_column_values_open_deals_as_one_open_stage() -> None:
    from collections import Counter

    guesses = mapdraft.guess_values("stage", Counter({"won": 3, "lost": 2, "open": 5}), "Status")
    assert [(g.value, g.count, g.canonical) for g in guesses] == [
        ("open", 5, "qualification"),
        ("won", 3, "won"),
        ("lost", 2, "lost"),
    ]
    assert guesses[0].note == "open deals: the status column does not say which open stage"


@pytest.mark.parametrize(
    ("headers", "tool"),
    [
        (
            [
                "Opportunity Name",
                "Account Name",
                "Amount",
                "Close Date",
                "Stage",
                "Opportunity Owner",
                "Created Date",
                "Type",
                "Lead Source",
                "Probability (%)",
            ],
            "Salesforce opportunity report",
        ),
        (
            [
                "Record ID",
                "Deal Name",
                "Deal Stage",
                "Close Date",
                "Amount",
                "Deal owner",
                "Create Date",
                "Pipeline",
                "Deal Type",
            ],
            "HubSpot deals export",
        ),
        (
            [
                "Deal - ID",
                "Deal - Title",
                "Deal - Value",
                "Deal - Currency",
                "Deal - Status",
                "Deal - Stage",
                "Deal - Owner",
                "Deal - Expected close date",
                "Deal - Won time",
            ],
            "Pipedrive deals export",
        ),
        (
            [
                "(Do Not Modify) Opportunity",
                "(Do Not Modify) Row Checksum",
                "(Do Not Modify) Modified On",
                "Topic",
                "Potential Customer",
                "Est. Revenue",
                "Est. Close Date",
                "Status",
                "Status Reason",
                "Owner",
                "Sales Stage",
            ],
            "Dynamics 365 opportunities export",
        ),
        (["Order ID", "Order Date", "Net Sales"], None),
    ],
)
def test_recognise_tool(headers: list[str], tool: str | None) -> None:
    assert mapdraft.recognise_tool(headers) == tool


@pytest.mark.parametrize(
    ("name", "headers", "table"),
    [
        (
            "accounts.csv",
            [
                "Account ID",
                "Account Name",
                "Industry",
                "Employees",
                "Billing Country",
                "Account Owner",
            ],
            "accounts",
        ),
        ("users.csv", ["User ID", "Full Name", "Manager", "Region", "Hire Date"], "reps"),
        (
            "ar_export.csv",
            ["Invoice Number", "Customer ID", "Invoice Date", "Due Date", "Amount", "Paid Date"],
            "invoices",
        ),
        ("export.csv", ["Opportunity Name", "Stage", "Amount", "Close Date"], "opportunities"),
        (
            "export.csv",
            ["Subscription ID", "Customer", "Start Date", "End Date", "ARR"],
            "subscriptions",
        ),
        (
            "sales_orders.csv",
            ["Document No.", "Posting Date", "Salesperson Code", "Region", "Amount"],
            "opportunities",
        ),
    ],
)
def test_guess_table(name: str, headers: list[str], table: str) -> None:
    tool = mapdraft.recognise_tool(headers)
    assert mapdraft.guess_table(Path(name), headers, tool) == table


def _profiles(frame: pd.DataFrame) -> list[mapdraft.Profile]:
    return [mapdraft.profile(c, frame[c]) for c in frame.columns]


def test_guess_columns_by_name_checked_against_values() -> None:
    frame = pd.DataFrame(
        {
            "Deal - ID": ["1", "2", "3"],
            "Deal - Title": ["A deal", "B deal", "C deal"],
            "Deal - Value": ["100.00", "250.50", "80.00"],
            "Deal - Status": ["won", "lost", "open"],
            "Deal - Stage": ["Proposal Made", "Qualified", "Contact Made"],
            "Deal - Owner": ["Ana", "Ben", "Ana"],
            "Deal - Expected close date": ["2025-01-31", "2025-02-28", "2026-12-31"],
            "Deal - Won time": ["2025-01-31 10:00:00", "", ""],
        }
    )
    tool = mapdraft.recognise_tool(frame.columns)
    assert mapdraft.guess_columns("opportunities", _profiles(frame), 3, tool) == {
        "opportunity_id": "Deal - ID",
        "close_date": "Deal - Expected close date",
        "amount": "Deal - Value",
        "stage": "Deal - Status",
        "rep_id": "Deal - Owner",
    }


def test_a_named_column_whose_values_do_not_fit_is_not_guessed() -> None:
    frame = pd.DataFrame(
        {
            "Amount": ["n/a", "tbd", "ask Ana"],
            "Close Date": ["soon", "Q3", "later"],
            "Stage": ["Won", "Lost", "Won"],
        }
    )
    assert mapdraft.guess_columns("opportunities", _profiles(frame), 3) == {"stage": "Stage"}


@pytest.mark.parametrize(
    ("values", "fmt"),
    [
        (["20.10.2016", "01.02.2017", "31.12.2016"], "%d.%m.%Y"),
        (["10/20/2016", "02/01/2017", "12/31/2016"], "%m/%d/%Y"),
        (["31/01/24", "01/02/24"], "%d/%m/%y"),
        (["2016-10-20", "2017-02-01T10:00:00Z"], None),
        (["1777939200000", "1726012800000"], "epoch_ms"),
        (["1777939200", "1726012800"], "epoch_s"),
        (["45291", "45322"], "excel"),
        (["05/06/2025", "01/02/2025"], "?/%Y"),
    ],
)
def test_date_formats_from_values(values: list[str], fmt: str | None) -> None:
    prof = mapdraft.profile("Close Date", pd.Series(values, dtype=object))
    assert prof.date_format == fmt
    assert prof.dates == 1.0


def test_day_or_month_undecided_is_said() -> None:
    frame = pd.DataFrame(
        {"Stage": ["Won", "Lost"], "Amount": ["1", "2"], "Close Date": ["05/06/2025", "01/02/2025"]}
    )
    fmt, undecided = mapdraft._choose_date_format(
        "opportunities",
        {"stage": "Stage", "amount": "Amount", "close_date": "Close Date"},
        {p.name: p for p in _profiles(frame)},
    )
    assert fmt is None
    assert undecided == [
        "dates like '05/06/2025' in 'Close Date' could be day/month or month/day: "
        "set date_format to '%d/%m/%Y' or '%m/%d/%Y'"
    ]


# ---------------------------------------------------------------------------
# reading: title rows, footers, encodings, delimiters


def test_title_rows_and_footer_of_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text(
        '"Opportunity Pipeline"\n"As of 2026-09-30"\n\n'
        "Stage,Amount,Close Date\nWon,100,2025-01-31\nLost,50,2025-02-28\n\n"
        '"Grand Totals (2 records)",150,\n"Copyright (c) 2000-2026 salesforce.com, inc."\n',
        encoding="utf-8",
    )
    export = mapdraft.read_export(path)
    assert export.header_row == 4
    assert export.columns == ("Stage", "Amount", "Close Date")
    assert export.frame.values.tolist() == [
        ["Won", "100", "2025-01-31"],
        ["Lost", "50", "2025-02-28"],
    ]
    assert export.footer == (
        "Grand Totals (2 records) 150",
        "Copyright (c) 2000-2026 salesforce.com, inc.",
    )


def test_cp1252_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes("Beleg;Datum;Betrag\nA1;20.10.2016;51.127,31 €\n".encode("cp1252"))
    export = mapdraft.read_export(path)
    assert (export.encoding, export.delimiter) == ("cp1252", ";")
    assert export.frame.values.tolist() == [["A1", "20.10.2016", "51.127,31 €"]]


def test_an_unreadable_export_is_a_clear_error(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "deals.csv", "")
    assert main(["map", str(path)]) == 2
    assert capsys.readouterr().err == "error: deals.csv is empty (0 bytes); export it again\n"


# ---------------------------------------------------------------------------
# drafts of the corpus


EXPECTED: dict[str, dict] = {
    "salesforce": {
        "table": "opportunities",
        "tool": "Salesforce opportunity report",
        "sheet": ("Opportunities", True),
        "header_row": 5,
        "columns": {
            "close_date": "Close Date",
            "amount": "Amount",
            "stage": "Stage",
            "created_date": "Created Date",
            "account_id": "Account Name",
            "rep_id": "Opportunity Owner",
            "type": "Type",
        },
        "date_format": None,
        "currency": None,
        "footer": 4,
        "undecided": (
            "type 'Existing Customer - Downgrade': no guess — map it to one of new, expansion, renewal",
        ),
    },
    "hubspot": {
        "table": "opportunities",
        "tool": "HubSpot deals export",
        "sheet": (None, False),
        "header_row": 1,
        "columns": {
            "opportunity_id": "Record ID",
            "close_date": "Close Date",
            "amount": "Amount",
            "stage": "Deal Stage",
            "created_date": "Create Date",
            "account_id": "Associated Company",
            "rep_id": "Deal owner",
            "type": "Deal Type",
        },
        "date_format": "epoch_ms",
        "currency": None,
        "footer": 0,
        "undecided": (),
    },
    "pipedrive": {
        "table": "opportunities",
        "tool": "Pipedrive deals export",
        "sheet": (None, False),
        "header_row": 1,
        "columns": {
            "opportunity_id": "Deal - ID",
            "close_date": "Deal - Expected close date",
            "amount": "Deal - Value",
            "stage": "Deal - Status",
            "created_date": "Deal - Deal created",
            "account_id": "Deal - Organization",
            "rep_id": "Deal - Owner",
        },
        "date_format": None,
        "currency": "GBP",
        "footer": 0,
        "undecided": (),
    },
    "dynamics": {
        "table": "opportunities",
        "tool": "Dynamics 365 opportunities export",
        "sheet": ("All Opportunities", False),
        "header_row": 1,
        "columns": {
            "opportunity_id": "(Do Not Modify) Opportunity",
            "close_date": "Est. Close Date",
            "amount": "Est. Revenue",
            "stage": "Status",
            "created_date": "Created On",
            "account_id": "Potential Customer",
            "rep_id": "Owner",
        },
        "date_format": None,
        "currency": "CAD",
        "footer": 0,
        "undecided": (),
    },
    "erp": {
        "table": "opportunities",
        "tool": None,
        "sheet": (None, False),
        "header_row": 1,
        "columns": {
            "opportunity_id": "Document No.",
            "close_date": "Posting Date",
            "amount": "Amount",
            "account_id": "Sell-to Customer No.",
            "rep_id": "Salesperson Code",
            "region": "Region",
        },
        "date_format": "%d.%m.%Y",
        "currency": "EUR",
        "footer": 0,
        "undecided": (),
    },
    "orders": {
        "table": "opportunities",
        "tool": None,
        "sheet": (None, False),
        "header_row": 1,
        "columns": {
            "opportunity_id": "Order ID",
            "close_date": "Order Date",
            "amount": "Net Sales",
            "account_id": "Customer",
            "product": "Product",
            "segment": "Segment",
            "region": "Region",
        },
        "date_format": "%d/%m/%Y",
        "currency": "GBP",
        "footer": 0,
        "undecided": (),
    },
    "custom": {
        "table": "opportunities",
        "tool": None,
        "sheet": (None, False),
        "header_row": 1,
        "columns": {
            "opportunity_id": "Deal Ref",
            "close_date": "Close Date",
            "amount": "Deal Value (EUR)",
            "stage": "Phase",
            "created_date": "Opened",
            "account_id": "Client",
            "rep_id": "Sales Rep",
            "segment": "Segment",
            "region": "Region",
        },
        "date_format": None,
        "currency": "EUR",
        "footer": 0,
        "undecided": (
            f"stage 'On Ice': no guess — map it to one of {STAGES}",
            f"stage 'Verbal Yes': no guess — map it to one of {STAGES}",
        ),
    },
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_draft_of_each_export(case: str) -> None:
    want = EXPECTED[case]
    (t,) = _draft(case).tables
    assert (t.table, t.tool) == (want["table"], want["tool"])
    assert (t.export.sheet, t.export.sheet_named) == want["sheet"]
    assert t.export.header_row == want["header_row"]
    assert t.columns == want["columns"]
    assert (t.date_format, t.currency) == (want["date_format"], want["currency"])
    assert len(t.export.footer) == want["footer"]
    assert t.undecided == want["undecided"]
    assert len(t.export.frame) == _rows(case)[t.file]


def _rows(case: str) -> dict[str, int]:
    """Data rows of each file of a case, from the generator's records."""
    r = generate.records(case)
    won = int(r["outcome"].eq("won").sum())
    if case in ("erp", "orders"):
        return {generate.CASES[case].files[0]: won}
    if case == "billing":
        return {"billing_subscriptions.csv": won, "deals.csv": len(r)}
    return {generate.CASES[case].files[0]: len(r)}


def test_billing_export_is_subscriptions_beside_deals() -> None:
    d = _draft("billing")
    subs, deals = d.tables
    assert (subs.table, deals.table) == ("subscriptions", "opportunities")
    assert subs.columns == {
        "subscription_id": "Subscription Number",
        "account_id": "Account Number",
        "start_date": "Term Start Date",
        "arr": "ARR",
        "end_date": "Cancelled Date",
        "product": "Product Name",
    }
    assert subs.date_format == "%m/%d/%Y"
    assert d.currency == "USD"
    assert [len(t.export.frame) for t in d.tables] == list(_rows("billing").values())


def test_stage_values_of_the_custom_crm() -> None:
    (t,) = _draft("custom").tables
    r = generate.records("custom")
    counts = {g.value: (g.count, g.canonical) for g in t.values["stage"]}
    won = r["outcome"].eq("won")
    assert counts["Signed"][0] + counts["Order received"][0] == won.sum()
    assert {v: c for v, (_, c) in counts.items()} == {
        "Dead": "lost",
        "No Decision": "lost",
        "Order received": "won",
        "Signed": "won",
        "Discovery": "qualification",
        "Demo Done": "proposal",
        "On Ice": None,
        "Verbal Yes": None,
    }


def test_orders_without_stage_are_closed_sales() -> None:
    (t,) = _draft("orders").tables
    assert t.constants == {"stage": "won"}
    assert t.notes[0] == (
        "no stage column: every row is taken as a closed sale (constants: stage: won); "
        "remove it if the file holds open or lost deals"
    )


def test_two_files_of_one_table_are_reported(tmp_path: Path) -> None:
    for name in ("deals_a.csv", "deals_b.csv"):
        (tmp_path / name).write_text(
            "Stage,Amount,Close Date\nWon,1,2025-01-31\n", encoding="utf-8"
        )
    d = mapdraft.draft([tmp_path / "deals_a.csv", tmp_path / "deals_b.csv"])
    assert [t.file for t in d.tables] == ["deals_a.csv"]
    assert d.undecided == (
        "deals_b.csv and deals_a.csv both look like opportunities; deals_b.csv is left out: "
        "keep one file per table",
    )


def test_several_currencies_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_text(
        "Stage,Amount,Close Date,Currency\nWon,1,2025-01-31,USD\nWon,2,2025-01-31,USD\n"
        "Lost,3,2025-01-31,Euro\n",
        encoding="utf-8",
    )
    (t,) = mapdraft.draft([path]).tables
    assert t.currency == "USD"
    assert t.undecided == (
        "column 'Currency' holds several currencies (USD 2, EUR 1 rows); amounts are added "
        "as they are: convert them to one currency first",
    )


# ---------------------------------------------------------------------------
# the draft file


def test_draft_yaml_keeps_hostile_values_as_text(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    values = ["Won: yes # really", "yes", '=HYPERLINK("x")', "Lost\nLine", "Open"]
    frame = pd.DataFrame(
        {
            "Opportunity ID": [f"O{i}" for i in range(5)],
            "Stage": values,
            "Amount": ["1"] * 5,
            "Close Date": ["2025-01-31"] * 5,
        }
    )
    frame.to_csv(path, index=False)
    text = mapdraft.to_yaml(mapdraft.draft([path]))
    doc = yaml.load(text, Loader=sources._TextLoader)
    stage = doc["tables"]["opportunities"]["values"]["stage"]
    assert stage == {"Won: yes # really": "won", "Lost\nLine": "lost", "Open": "qualification"}
    assert '# "yes": ___' in text and '# "=HYPERLINK(\\"x\\")": ___' in text
    assert sources.read_mapping(_write(tmp_path / "m.yaml", text)).tables["opportunities"].values[
        "stage"
    ] == {"Won: yes # really": "won", "Lost\nLine": "lost", "Open": "qualification"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


#: Rows the loader must quarantine, from the generator's records: won deals without an amount.
QUARANTINED: dict[str, int] = {"salesforce": 2}
#: Exit status of validate: 1 where rows are quarantined or values blanked
#: (an unreadable HubSpot create date, an unmapped Salesforce deal type).
STATUS: dict[str, int] = {"salesforce": 1, "hubspot": 1, "custom": 1}


@pytest.mark.parametrize("case", CASES)
def test_unchanged_draft_loads_with_every_row_counted(case: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(CORPUS / case, data)
    d = mapdraft.draft(sorted(p for p in data.iterdir()))
    mapping = _write(tmp_path / "mapping.yaml", mapdraft.to_yaml(d))
    result = sources.load(data, mapping=mapping, as_of="2026-11-29")
    for name, report in result.reports.items():
        t = next(t for t in d.tables if t.table == name)
        assert report.rows_read == _rows(case)[t.file]
        assert report.rows_read == report.rows_accepted + report.rows_quarantined
        undecided_rows = sum(g.count for g in t.values.get("stage", ()) if g.canonical is None)
        expected = undecided_rows + QUARANTINED.get(case, 0)
        assert report.rows_quarantined == expected, report.problems
    assert result.status == STATUS.get(case, 0)


# ---------------------------------------------------------------------------
# the command


def test_map_command_prints_what_it_could_not_decide(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mapping.yaml"
    code = main(["map", str(_files("custom")[0]), "--out", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert f"  stage 'Verbal Yes': no guess — map it to one of {STAGES}" in err
    assert f"  stage 'On Ice': no guess — map it to one of {STAGES}" in err
    assert err[-1] == (
        f"wrote {out}; check it, then run: revmodel validate {CORPUS / 'custom'} --mapping {out}"
    )
    assert "# Verbal Yes: ___   # 26 rows, NO GUESS" in out.read_text(encoding="utf-8")


def test_map_command_keeps_an_existing_mapping(tmp_path: Path, capsys) -> None:
    out = _write(tmp_path / "mapping.yaml", "tables: {}\n")
    assert main(["map", str(_files("orders")[0]), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: {out} exists; pass --force to replace it, or choose another --out\n"
    )
    assert out.read_text(encoding="utf-8") == "tables: {}\n"
    assert main(["map", str(_files("orders")[0]), "--out", str(out), "--force"]) == 0
    assert "constants:\n      stage: won\n" in out.read_text(encoding="utf-8")


def test_map_command_prints_the_draft_without_out(capsys) -> None:
    assert main(["map", str(_files("pipedrive")[0])]) == 0
    captured = capsys.readouterr()
    doc = yaml.safe_load(captured.out)
    assert doc["tables"]["opportunities"]["columns"]["stage"] == "Deal - Status"
    assert captured.err.splitlines()[0] == (
        "deals-export.csv: Pipedrive deals export -> opportunities (1,000 rows; header on row 1)"
    )


def test_map_command_missing_required_column(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "notes.csv", "Subject,Body\nHi,there\nBye,now\n")
    assert main(["map", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "  required column close_date not found: map it under columns (close_date: YourColumn); "
        "the export's columns are 'Subject', 'Body'"
    ) in err.splitlines()


# ---------------------------------------------------------------------------
# end to end: map -> completed draft -> validate -> plan, from a new project folder

#: What a person adds to each draft: what the exports cannot tell.
COMPLETIONS: dict[str, dict] = {
    "salesforce": {
        "currency": "USD",
        "values": {"type": {"Existing Customer - Downgrade": "renewal"}},
    },
    "hubspot": {"currency": "USD"},
    "custom": {"values": {"stage": {"On Ice": "qualification", "Verbal Yes": "negotiation"}}},
}
#: Exit status of validate once the draft is completed: the stages are all mapped then.
COMPLETED_STATUS: dict[str, int] = {"salesforce": 1, "hubspot": 1}
#: How the pack writes amounts in each currency.
SYMBOL = {"USD": "$", "GBP": "£", "CAD": "CA$", "EUR": "€"}
#: Sections each pack must skip: no export holds accounts or reps; only the billing case
#: holds subscriptions; the orders file names no rep, so no capacity, quota or scenario either.
SKIPPED: dict[str, set[str]] = {
    **{c: {"arr", "territories"} for c in CASES},
    "billing": {"territories"},
    "orders": {"arr", "territories", "capacity", "quotas", "scenarios"},
}
#: What a pack says where no rep is known.
NO_REP = (
    "no rep is known — add the reps table, or map the owner column (rep_id) of the opportunities"
)
#: Currency each pack must show.
CURRENCY = {
    "salesforce": "USD",
    "hubspot": "USD",
    "pipedrive": "GBP",
    "dynamics": "CAD",
    "erp": "EUR",
    "orders": "GBP",
    "billing": "USD",
    "custom": "EUR",
}


def complete(text: str, case: str) -> str:
    """The draft with what a person decides added, as YAML."""
    doc = yaml.load(text, Loader=sources._TextLoader)
    extra = COMPLETIONS.get(case, {})
    if "currency" in extra:
        doc["currency"] = extra["currency"]
    for col, pairs in extra.get("values", {}).items():
        doc["tables"]["opportunities"]["values"][col].update(pairs)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _project(case: str, root: Path, capsys) -> tuple[Path, Path]:
    """A new project folder with the case's exports in data/ and the completed draft."""
    project = root / "acme"
    assert main(["init", str(project)]) == 0
    data = project / "data"
    for f in _files(case):
        shutil.copy(f, data / f.name)
    mapping = data / "mapping.yaml"
    code = main(["map", *(str(data / f.name) for f in _files(case)), "--out", str(mapping)])
    assert code == (1 if case in COMPLETIONS else 0)
    mapping.write_text(complete(mapping.read_text(encoding="utf-8"), case), encoding="utf-8")
    capsys.readouterr()
    return project, data


def _check_rows(case: str, data: Path, capsys) -> None:
    code = main(["validate", str(data)])
    out = capsys.readouterr().out
    result = sources.load(data)
    assert code == result.status == COMPLETED_STATUS.get(case, 0), out
    files = {t.file: t for t in result.reports.values()}
    assert {f: r.rows_read for f, r in files.items()} == _rows(case)
    for r in files.values():
        assert r.rows_read == r.rows_accepted + r.rows_quarantined
    assert sum(r.rows_quarantined for r in files.values()) == QUARANTINED.get(case, 0)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_export_to_published_pack(case: str, tmp_path: Path, capsys) -> None:
    import json

    import xarray as xr

    project, data = _project(case, tmp_path, capsys)
    _check_rows(case, data, capsys)
    without_band_calibration(
        project / "parameters" / "plan.yaml"
    )  # the pack's reading, not its bands
    run = run_revmodel(["plan", "--data", "data"], cwd=project)
    assert_plan_ran_cleanly(run)
    html_path = project / Path(run.stdout.strip().splitlines()[-1])
    pack = html_path.parent
    assert pack.parent == project / "reports"
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["as_of"][:7] == f"{generate.END:%Y-%m}"  # the last month is complete
    with xr.open_dataset(pack / "plan.nc", group="cube") as cube:
        booked = float(cube["bookings"].sum())
        assert cube.attrs["currency"] == CURRENCY[case]
        last = pd.Timestamp(manifest["as_of"] + "-01")
        arr_now = float(cube["arr"].sel(month=last).sum()) if "arr" in cube else None
    assert booked == pytest.approx(generate.won_total(case), abs=0.01)
    page = html_path.read_text(encoding="utf-8")
    text = re.sub(r"<script.*?</script>", "", page, flags=re.DOTALL)  # plotly.js code aside
    currency = CURRENCY[case]
    assert re.search(re.escape(SYMBOL[currency]) + r"\d", text)  # e.g. £2.5M
    if currency != "USD":
        assert "USD" not in page
        assert not re.search(r"(?<![A-Z])\$\d", text)  # no dollar amounts
    skipped = {sk["id"]: sk["reason"] for sk in manifest["sections"]["skipped"]}
    assert set(skipped) == SKIPPED[case]
    for reason in skipped.values():
        assert reason in page
    if case == "billing":
        subs = generate.subscriptions()
        active = subs["end"].isna() & (subs["start"] <= generate.END)  # at the last month's end
        assert arr_now == pytest.approx(subs.loc[active, "arr"].sum(), abs=0.01)
    else:
        assert skipped["arr"] == (
            "Churn and the ARR bridge: not provided — add the subscriptions table."
        )
        _check_arr_missing(pack)
    if case == "orders":
        assert manifest["sections"]["shown"] == ["forecast", "kpis", "accuracy"]
        assert skipped["capacity"] == f"Capacity and hiring: not provided — {NO_REP}."
        assert skipped["quotas"] == f"Quotas, attainment and balance: not provided — {NO_REP}."
        assert skipped["scenarios"] == f"Scenario comparison: not provided — {NO_REP}."
        shown = json.loads((pack / "tables.json").read_text(encoding="utf-8"))
        assert not {"quotas_by_rep", "capacity", "hires_needed", "scenarios"} & set(shown)
        assert shown["summary"]["company_target"] is None
        assert set(openpyxl.load_workbook(pack / "plan.xlsx").sheetnames).isdisjoint(
            {"quotas_by_rep", "capacity", "hires_needed", "scenarios"}
        )


def _check_arr_missing(pack: Path) -> None:
    """Without subscriptions, ARR is missing (never 0) in the cube, summary, tables and Excel."""
    import json

    import xarray as xr

    from revmodel.cube import ARR_MEASURES

    with xr.open_dataset(pack / "plan.nc", group="cube") as cube:
        for name in ARR_MEASURES:
            assert bool(cube[name].isnull().all()), name
    shown = json.loads((pack / "tables.json").read_text(encoding="utf-8"))
    for name in ("starting_arr", "expected_churn_arr", "churn_rate", "required_new_arr"):
        assert shown["summary"][name] is None, name
    kpis = shown["kpis"]
    assert kpis and all(row[k] is None for row in kpis for k in ("arr", "churn_rate", "nrr"))
    book = openpyxl.load_workbook(pack / "plan.xlsx")
    rows = list(book["KPIs"].values)
    for k in ("arr", "churn_rate", "nrr"):
        col = rows[0].index(k)
        assert [r[col] for r in rows[1:]] == [None] * (len(rows) - 1), k
    summary = dict(list(book["Summary"].values)[1:])
    assert summary["starting_arr"] is None and summary["expected_churn_arr"] is None


def test_opportunity_history_report(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "opportunity_history.csv",
        "Opportunity ID,Opportunity Name,Edit Date,Stage,Amount,Probability (%),Close Date,"
        "Forecast Category\n"
        "006A,Acme,2025-01-02,Prospecting,1000,10,2025-03-31,Pipeline\n"
        "006A,Acme,2025-02-10,Negotiation/Review,1200,90,2025-03-31,Commit\n"
        "006A,Acme,2025-03-20,Closed Won,1200,100,2025-03-20,Closed\n"
        "006B,Hooli,2025-01-05,Needs Analysis,500,20,2025-04-30,Best Case\n",
    )
    (t,) = mapdraft.draft([path]).tables
    assert t.table == "opportunity_history"
    assert t.columns == {
        "opportunity_id": "Opportunity ID",
        "changed_at": "Edit Date",
        "stage": "Stage",
        "amount": "Amount",
        "close_date": "Close Date",
        "forecast_category": "Forecast Category",
    }
    assert {g.value: g.canonical for g in t.values["forecast_category"]} == {
        "Pipeline": "pipeline",
        "Commit": "commit",
        "Closed": "closed",
        "Best Case": "best_case",
    }
    assert {g.value: g.canonical for g in t.values["stage"]} == {
        "Prospecting": "prospecting",
        "Negotiation/Review": "negotiation",
        "Closed Won": "won",
        "Needs Analysis": "qualification",
    }
