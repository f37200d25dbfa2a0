"""Write the exports corpus: files in the shapes real CRM, ERP and billing tools produce.

Run ``python tests/exports/generate.py`` to rewrite the committed files. Each
case is built from records drawn with its own seed (:func:`records`), so a
test can compute each file's true figures (won bookings, rows, ARR) from the
records themselves, without reading the files back through revmodel.

Cases (folder: files):

- ``salesforce``: an opportunity report saved as .xlsx: a criteria sheet
  first, the data on the second sheet under title rows, "Grand Totals" and
  copyright lines below, two won deals without an amount.
- ``hubspot``: deals with epoch-millisecond dates, internal stage and type
  ids, one unreadable create date, no currency column.
- ``pipedrive``: deals with ``Deal - `` headers, won/lost/open status beside
  the stage, GBP.
- ``dynamics``: Dynamics 365 opportunities (.xlsx) with the three
  ``(Do Not Modify)`` columns, Status/Status Reason/Sales Stage, Canadian dollars.
- ``erp``: a European ERP sales-order export: semicolons, cp1252 with a euro
  sign, decimal commas (``51.127,31 €``), dotted day-first dates.
- ``orders``: an orders-only file with no reps: pound amounts, day-first dates.
- ``billing``: a billing system's subscriptions (month-first US dates, ARR)
  with the same company's deals.
- ``custom``: a tab-delimited UTF-8 (BOM) CRM export (.csv) with its own stage names
  ("Verbal Yes", "On Ice" have no obvious canonical stage).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
#: Last day of the corpus's history: every won deal closes on or before it.
END = pd.Timestamp("2026-09-30")
START = pd.Timestamp("2024-01-01")
FIRST = ("Avery", "Blake", "Casey", "Dana", "Emery", "Finley", "Harper", "Jordan", "Kai", "Logan")
LAST = ("Nguyen", "Okafor", "Patel", "Quinn", "Rossi", "Schmidt", "Tanaka", "Varga", "Weber")
COMPANIES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Wonka",
    "Oscorp",
    "Aperture",
    "Gringotts",
)
SUFFIX = ("Ltd", "GmbH", "Inc.", "S.A.", "AG", "LLC", "BV", "plc")


@dataclass(frozen=True)
class Case:
    """One case of the corpus: its folder, its files and how its records are drawn."""

    name: str
    seed: int
    rows: int
    files: tuple[str, ...]


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("salesforce", 1, 800, ("opportunity_report.xlsx",)),
        Case("hubspot", 2, 1500, ("hubspot-crm-exports-all-deals.csv",)),
        Case("pipedrive", 3, 1000, ("deals-export.csv",)),
        Case("dynamics", 4, 600, ("All Opportunities.xlsx",)),
        Case("erp", 5, 900, ("sales_orders_2024-2026.csv",)),
        Case("orders", 6, 700, ("orders.csv",)),
        Case("billing", 7, 700, ("billing_subscriptions.csv", "deals.csv")),
        Case("custom", 8, 1200, ("pipeline_export.csv",)),
    )
}


def _names(rng: np.random.Generator, n: int) -> list[str]:
    pairs = {(f, last) for f in FIRST for last in LAST}
    chosen = rng.choice(len(pairs), size=n, replace=False)
    ordered = sorted(pairs)
    return [f"{ordered[i][0]} {ordered[i][1]}" for i in chosen]


def _companies(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        name = f"{rng.choice(COMPANIES)} {rng.choice(COMPANIES)} {rng.choice(SUFFIX)}"
        if name not in out:
            out.append(name)
    return out


def records(case: str) -> pd.DataFrame:
    """The deals of a case: one row per deal, with its true outcome and amount.

    Columns: ``id``, ``created``, ``close`` (Timestamp), ``outcome`` (won, lost,
    open), ``step`` (0-3: the open stage reached, funnel order), ``amount``
    (float, NaN where the export leaves it empty), ``rep``, ``account``,
    ``kind`` (0 new, 1 expansion, 2 renewal, 3 a fourth value of the tool's),
    ``segment``, ``region``. Open deals close after :data:`END`.
    """
    c = CASES[case]
    rng = np.random.default_rng(c.seed)
    n = c.rows
    days = (END - START).days
    created = START + pd.to_timedelta(rng.integers(0, days - 30, n), unit="D")
    cycle = pd.to_timedelta(rng.integers(7, 150, n), unit="D")
    close = created + cycle
    is_open = (close > END) | (rng.random(n) < 0.08)
    close = close.where(~is_open, END + pd.to_timedelta(rng.integers(5, 200, n), unit="D"))
    won = rng.random(n) < 0.42
    outcome = np.where(is_open, "open", np.where(won, "won", "lost"))
    amount = np.round(np.exp(rng.normal(np.log(18000), 0.9, n)), 2)
    reps = _names(rng, 12)
    accounts = _companies(rng, 150)
    frame = pd.DataFrame(
        {
            "id": [f"{case[:2].upper()}{100000 + i}" for i in range(n)],
            "created": created,
            "close": close,
            "outcome": outcome,
            "step": rng.integers(0, 4, n),
            "amount": amount,
            "rep": rng.choice(reps, n),
            "account": rng.choice(accounts, n),
            "kind": rng.choice(4, n, p=[0.55, 0.25, 0.15, 0.05]),
            "segment": rng.choice(["SMB", "Mid-Market", "Enterprise"], n, p=[0.5, 0.35, 0.15]),
            "region": rng.choice(["North", "South", "East", "West"], n),
        }
    )
    # the export was taken after the last day of END's month: that month is complete
    last_won = frame.loc[frame["outcome"].eq("won"), "close"].idxmax()
    frame.loc[last_won, "close"] = END
    if case == "salesforce":  # two won deals left without an amount
        frame.loc[frame.index[frame["outcome"].eq("won")][:2], "amount"] = np.nan
    return frame


def won_total(case: str) -> float:
    """True won bookings of a case [its currency]: won deals with an amount."""
    r = records(case)
    return float(r.loc[r["outcome"].eq("won"), "amount"].sum())


# ---------------------------------------------------------------------------
# writers


def _pick(r: pd.DataFrame, open_names: tuple[str, ...], won: str, lost: str) -> pd.Series:
    names = np.asarray(open_names)[r["step"].to_numpy() % len(open_names)]
    return pd.Series(
        np.where(r["outcome"].eq("won"), won, np.where(r["outcome"].eq("lost"), lost, names)),
        index=r.index,
    )


def _kind(r: pd.DataFrame, names: tuple[str, str, str, str]) -> pd.Series:
    return pd.Series(np.asarray(names)[r["kind"].to_numpy()], index=r.index)


def _naive(ts: pd.Series) -> list[dt.datetime]:
    return [t.to_pydatetime() for t in ts]


def write_salesforce(folder: Path) -> None:
    import openpyxl

    r = records("salesforce")
    stages = ("Prospecting", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review")
    header = [
        "Opportunity Owner",
        "Account Name",
        "Opportunity Name",
        "Stage",
        "Fiscal Period",
        "Amount",
        "Probability (%)",
        "Age",
        "Close Date",
        "Created Date",
        "Lead Source",
        "Type",
    ]
    stage = _pick(r, stages, "Closed Won", "Closed Lost")
    kind = _kind(
        r,
        (
            "New Customer",
            "Existing Customer - Upgrade",
            "Existing Customer - Replacement",
            "Existing Customer - Downgrade",
        ),
    )
    prob = stage.map({"Closed Won": 100, "Closed Lost": 0}).fillna(40)
    book = openpyxl.Workbook()
    info = book.active
    info.title = "Report Criteria"
    for line in (["Report: Opportunity Pipeline"], ["Filtered By:", "Close Date: All Time"]):
        info.append(line)
    ws = book.create_sheet("Opportunities")
    ws.append(["Opportunity Pipeline"])
    ws.append(["Northwind Analytics Inc."])
    ws.append(["As of 30/09/2026 17:04"])
    ws.append([])
    ws.append(header)
    for i in r.index:
        q = (r.at[i, "close"].month - 1) // 3 + 1
        ws.append(
            [
                r.at[i, "rep"],
                r.at[i, "account"],
                f"{r.at[i, 'account']} - {r.at[i, 'id']}",
                stage[i],
                f"Q{q}-{r.at[i, 'close'].year}",
                None if np.isnan(r.at[i, "amount"]) else float(r.at[i, "amount"]),
                int(prob[i]),
                int((END - r.at[i, "created"]).days),
                r.at[i, "close"].to_pydatetime(),
                r.at[i, "created"].to_pydatetime(),
                "Web" if i % 3 else "Partner Referral",
                kind[i],
            ]
        )
    ws.append([])
    ws.append(
        [f"Grand Totals ({len(r):,} records)", None, None, None, None, float(r["amount"].sum())]
    )
    ws.append([])
    ws.append(["Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."])
    ws.append(["Confidential Information - Do Not Distribute"])
    ws.append(["Generated By: Dana Whitfield 30/09/2026 17:04"])
    _save(book, folder / CASES["salesforce"].files[0])


def _save(book, path: Path) -> None:
    fixed = dt.datetime(2026, 9, 30, 17, 4)
    book.properties.created = fixed
    book.properties.modified = fixed
    book.save(path)


def _epoch_ms(ts: pd.Series) -> pd.Series:
    # HubSpot writes midnight UTC of the day, in milliseconds
    return (ts.astype("datetime64[ms]").astype("int64")).astype(str)


def write_hubspot(folder: Path) -> None:
    r = records("hubspot")
    stages = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "contractsent")
    created = _epoch_ms(r["created"])
    created.iloc[7] = "(No value)"  # an unreadable value in an optional column
    frame = pd.DataFrame(
        {
            "Record ID": (r.index + 9_100_000_000).astype(str),
            "Deal Name": r["account"] + " - " + r["id"],
            "Deal Stage": _pick(r, stages, "closedwon", "closedlost"),
            "Close Date": _epoch_ms(r["close"]),
            "Amount": r["amount"].map(lambda v: f"{v:.2f}"),
            "Deal owner": r["rep"],
            "Create Date": created,
            "Pipeline": "default",
            "Deal Type": _kind(
                r, ("newbusiness", "existingbusiness", "existingbusiness", "newbusiness")
            ),
            "Associated Company": r["account"],
        }
    )
    frame.to_csv(folder / CASES["hubspot"].files[0], index=False, lineterminator="\n")


def write_pipedrive(folder: Path) -> None:
    r = records("pipedrive")
    stages = ("Qualified", "Contact Made", "Demo Scheduled", "Proposal Made")
    status = r["outcome"]
    stamp = r["close"].dt.strftime("%Y-%m-%d") + " 14:32:05"
    frame = pd.DataFrame(
        {
            "Deal - ID": (r.index + 1).astype(str),
            "Deal - Title": r["account"] + " deal",
            "Deal - Owner": r["rep"],
            "Deal - Value": r["amount"].map(lambda v: f"{v:.2f}"),
            "Deal - Currency": "GBP",
            "Deal - Organization": r["account"],
            "Deal - Pipeline": "Pipeline",
            "Deal - Stage": _pick(r, stages, "Negotiations Started", "Proposal Made"),
            "Deal - Status": status,
            "Deal - Deal created": r["created"].dt.strftime("%Y-%m-%d") + " 09:15:00",
            "Deal - Expected close date": r["close"].dt.strftime("%Y-%m-%d"),
            "Deal - Won time": stamp.where(status.eq("won"), ""),
            "Deal - Lost time": stamp.where(status.eq("lost"), ""),
        }
    )
    frame.to_csv(folder / CASES["pipedrive"].files[0], index=False, lineterminator="\n")


def write_dynamics(folder: Path) -> None:
    import openpyxl

    r = records("dynamics")
    status = r["outcome"].map({"won": "Won", "lost": "Lost", "open": "Open"})
    reason = np.where(
        r["outcome"].eq("won"),
        "Won",
        np.where(
            r["outcome"].eq("lost"), np.where(r["step"] % 2, "Out-Sold", "Canceled"), "In Progress"
        ),
    )
    sales_stage = _pick(r, ("Qualify", "Develop", "Propose", "Close"), "Close", "Propose")
    header = [
        "(Do Not Modify) Opportunity",
        "(Do Not Modify) Row Checksum",
        "(Do Not Modify) Modified On",
        "Topic",
        "Potential Customer",
        "Est. Close Date",
        "Est. Revenue",
        "Currency",
        "Status",
        "Status Reason",
        "Sales Stage",
        "Probability",
        "Owner",
        "Created On",
    ]
    rng = np.random.default_rng(40)
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "All Opportunities"
    ws.append(header)
    for i in r.index:
        guid = "-".join(
            f"{x:0{w}x}" for x, w in zip(rng.integers(0, 16**4, 5), (8, 4, 4, 4, 12), strict=True)
        )
        ws.append(
            [
                guid,
                f"{rng.integers(10**9, 10**10)}",
                (r.at[i, "close"] + pd.Timedelta(days=1)).to_pydatetime(),
                f"{r.at[i, 'account']} renewal"
                if r.at[i, "kind"] == 2
                else f"{r.at[i, 'account']} new",
                r.at[i, "account"],
                r.at[i, "close"].to_pydatetime(),
                float(r.at[i, "amount"]),
                "Canadian Dollar",
                status[i],
                reason[i],
                sales_stage[i],
                int(r.at[i, "step"]) * 20 + 10,
                r.at[i, "rep"],
                r.at[i, "created"].to_pydatetime(),
            ]
        )
    for col in "ABC":
        ws.column_dimensions[col].hidden = True
    hidden = book.create_sheet("hiddenSheet")
    hidden.append(["All Opportunities", "opportunity", "ce9f0a02"])
    hidden.sheet_state = "hidden"
    _save(book, folder / CASES["dynamics"].files[0])


def _euro(v: float) -> str:
    whole, cents = f"{v:,.2f}".split(".")
    return whole.replace(",", ".") + "," + cents + " €"


def write_erp(folder: Path) -> None:
    r = records("erp").query("outcome == 'won'").reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "Document No.": "SO-" + (r.index + 20000).astype(str),
            "Posting Date": r["close"].dt.strftime("%d.%m.%Y"),
            "Sell-to Customer No.": "C"
            + pd.Series(pd.factorize(r["account"])[0] + 1000).astype(str),
            "Sell-to Customer Name": r["account"],
            "Salesperson Code": r["rep"].str.split().str[0].str.upper().str[:3]
            + r["rep"].str.split().str[1].str[:1],
            "Region": r["region"],
            "Amount": r["amount"].map(_euro),
            "Currency Code": "EUR",
        }
    )
    text = frame.to_csv(index=False, sep=";", lineterminator="\r\n")
    (folder / CASES["erp"].files[0]).write_bytes(text.encode("cp1252"))


def write_orders(folder: Path) -> None:
    r = records("orders").query("outcome == 'won'").reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "Order ID": "#" + (r.index + 5001).astype(str),
            "Order Date": r["close"].dt.strftime("%d/%m/%Y"),
            "Customer": r["account"],
            "Segment": r["segment"],
            "Region": r["region"],
            "Country": "United Kingdom",
            "Product": np.where(r["kind"] % 2, "Platform", "Services"),
            "Net Sales": r["amount"].map(lambda v: f"£{v:,.2f}"),
        }
    )
    frame.to_csv(folder / CASES["orders"].files[0], index=False, lineterminator="\n")


def subscriptions(case: str = "billing") -> pd.DataFrame:
    """The subscription terms of the billing case: one per won deal, a quarter cancelled."""
    r = records(case).query("outcome == 'won'").reset_index(drop=True)
    rng = np.random.default_rng(70)
    cancel = rng.random(len(r)) < 0.25
    end = r["close"] + pd.to_timedelta(rng.integers(90, 700, len(r)), unit="D")
    end = end.where(cancel & (end <= END), pd.NaT)
    return pd.DataFrame(
        {
            "id": "SUB-" + (r.index + 1).astype(str).str.zfill(5),
            "account": "A" + pd.Series(pd.factorize(r["account"])[0] + 100).astype(str),
            "name": r["account"],
            "start": r["close"] + pd.Timedelta(days=1),
            "end": end,
            "arr": r["amount"],
        }
    )


def write_billing(folder: Path) -> None:
    s = subscriptions()
    subs = pd.DataFrame(
        {
            "Subscription Number": s["id"],
            "Account Number": s["account"],
            "Account Name": s["name"],
            "Product Name": "Platform",
            "Status": np.where(s["end"].isna(), "Active", "Cancelled"),
            "Term Start Date": s["start"].dt.strftime("%m/%d/%Y"),
            "Cancelled Date": s["end"].dt.strftime("%m/%d/%Y").fillna(""),
            "ARR": s["arr"].map(lambda v: f"{v:.2f}"),
            "Currency": "USD",
        }
    )
    subs.to_csv(folder / CASES["billing"].files[0], index=False, lineterminator="\n")
    r = records("billing")
    deals = pd.DataFrame(
        {
            "Deal ID": r["id"],
            "Account": r["account"],
            "Owner": r["rep"],
            "Stage": _pick(r, ("Discovery", "Discovery", "Proposal", "Negotiation"), "Won", "Lost"),
            "Amount": r["amount"].map(lambda v: f"{v:.2f}"),
            "Close Date": r["close"].dt.strftime("%Y-%m-%d"),
            "Created": r["created"].dt.strftime("%Y-%m-%d"),
        }
    )
    deals.to_csv(folder / CASES["billing"].files[1], index=False, lineterminator="\n")


def write_custom(folder: Path) -> None:
    r = records("custom")
    phases = ("Discovery", "Demo Done", "On Ice", "Verbal Yes")
    won = np.where(r["step"] % 2, "Signed", "Order received")
    lost = np.where(r["step"] % 2, "Dead", "No Decision")
    phase = _pick(r, phases, "WON", "LOST")
    phase = phase.where(phase.ne("WON"), won).where(phase.ne("LOST"), lost)
    frame = pd.DataFrame(
        {
            "Deal Ref": r["id"],
            "Client": r["account"],
            "Sales Rep": r["rep"],
            "Phase": phase,
            "Deal Value (EUR)": r["amount"].map(lambda v: f"{v:.2f}"),
            "Close Date": r["close"].dt.strftime("%Y-%m-%d"),
            "Opened": r["created"].dt.strftime("%Y-%m-%d"),
            "Segment": r["segment"],
            "Region": r["region"],
        }
    )
    text = frame.to_csv(index=False, sep="\t", lineterminator="\n")
    (folder / CASES["custom"].files[0]).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))


WRITERS: dict[str, Callable[[Path], None]] = {
    "salesforce": write_salesforce,
    "hubspot": write_hubspot,
    "pipedrive": write_pipedrive,
    "dynamics": write_dynamics,
    "erp": write_erp,
    "orders": write_orders,
    "billing": write_billing,
    "custom": write_custom,
}


def write(root: Path = HERE, cases: tuple[str, ...] = tuple(CASES)) -> list[Path]:
    """Write the files of the given cases under ``root/<case>/``; return their paths."""
    written: list[Path] = []
    for name in cases:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        WRITERS[name](folder)
        written += [folder / f for f in CASES[name].files]
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
