"""Draft a mapping file from exports: ``revmodel map FILE... [--out mapping.yaml]``.

The draft says, for each export, which canonical table it holds (see
:mod:`revmodel.schema`), which of its columns feed which canonical column,
how each distinct stage and type value maps onto the canonical ones, and the
export's sheet, header row, date format and currency. Guesses come from the
column names (including the headers Salesforce, HubSpot, Pipedrive and
Dynamics 365 write) and from the values (dates, numbers, identifiers).
What could not be decided is written as a YAML comment in the draft and said
on the terminal, e.g. ``stage 'Verbal Yes': no guess``.

Example
-------
>>> from revmodel import mapdraft
>>> mapdraft.guess_stage("Closed Won"), mapdraft.guess_stage("appointmentscheduled")
('won', 'prospecting')
>>> draft = mapdraft.draft(["exports/deals.csv"])  # doctest: +SKIP
>>> print(mapdraft.to_yaml(draft))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from revmodel import readers, schema, sources
from revmodel.errors import DataError

# ---------------------------------------------------------------------------
# reference tables

#: Header names of each canonical column, best first, normalised (lower case,
#: punctuation as spaces, a Pipedrive ``Deal -`` prefix removed).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "opportunities": {
        "opportunity_id": (
            "opportunity id",
            "record id",
            "deal ref",
            "reference",
            "deal id",
            "id",
            "do not modify opportunity",
            "opportunity number",
            "deal number",
            "order id",
            "order number",
            "order no",
            "document no",
            "document number",
            "sales order",
        ),
        "close_date": (
            "close date",
            "closedate",
            "expected close date",
            "est close date",
            "estimated close date",
            "actual close date",
            "closed on",
            "deal closed on",
            "won time",
            "order date",
            "posting date",
            "booking date",
            "date",
        ),
        "amount": (
            "amount",
            "value",
            "est revenue",
            "estimated revenue",
            "deal value",
            "deal amount",
            "actual revenue",
            "net amount",
            "net sales",
            "order total",
            "total amount",
            "amount lcy",
            "sales amount",
            "total",
            "revenue",
            "sales",
        ),
        "stage": (
            "stage",
            "deal stage",
            "stage name",
            "opportunity stage",
            "sales stage",
            "pipeline stage",
            "status",
            "phase",
        ),
        "created_date": (
            "created date",
            "create date",
            "createdate",
            "deal created",
            "created on",
            "created",
            "created at",
            "creation date",
            "opened",
            "opened on",
            "date opened",
            "add time",
        ),
        "account_id": (
            "account name",
            "account",
            "account id",
            "associated company",
            "company",
            "company name",
            "potential customer",
            "organization",
            "organization name",
            "organisation",
            "customer",
            "customer name",
            "customer no",
            "sell to customer no",
            "client",
        ),
        "rep_id": (
            "opportunity owner",
            "deal owner",
            "owner",
            "owner name",
            "sales rep",
            "salesperson",
            "salesperson code",
            "sales person",
            "account executive",
            "rep",
            "assigned to",
        ),
        "product": ("product", "product name", "product line", "product family", "plan", "item"),
        "type": ("type", "deal type", "opportunity type", "business type", "order type"),
        "segment": ("segment", "market segment", "customer segment", "size segment"),
        "region": ("region", "sales region", "territory", "sales territory", "geo", "area"),
    },
    "accounts": {
        "account_id": (
            "account id",
            "id",
            "record id",
            "account number",
            "customer id",
            "customer no",
            "company id",
            "account",
        ),
        "account_name": ("account name", "name", "company name", "customer name"),
        "employees": ("employees", "number of employees", "employee count", "headcount"),
        "segment": ("segment", "market segment", "customer segment"),
        "region": ("region", "sales region", "territory"),
        "country": ("country", "billing country", "country region", "country code"),
        "industry": ("industry", "sector"),
        "annual_revenue": ("annual revenue", "revenue"),
        "owner_rep_id": ("account owner", "company owner", "owner"),
    },
    "reps": {
        "rep_id": ("rep id", "user id", "employee id", "owner id", "salesperson code", "id"),
        "rep_name": ("rep name", "full name", "name", "user", "salesperson"),
        "manager": ("manager", "reports to", "sales manager", "team lead"),
        "region": ("region", "sales region", "territory"),
        "segment": ("segment", "market segment"),
        "hire_date": ("hire date", "start date", "hired", "joined"),
        "end_date": ("end date", "termination date", "leave date", "left"),
        "ramp_months": ("ramp months", "ramp"),
    },
    "invoices": {
        "invoice_id": (
            "invoice id",
            "invoice number",
            "invoice no",
            "invoice",
            "document no",
            "number",
        ),
        "account_id": (
            "account id",
            "customer id",
            "customer no",
            "bill to customer no",
            "customer",
            "account",
        ),
        "invoice_date": ("invoice date", "posting date", "document date", "date", "issued"),
        "amount": ("amount", "invoice amount", "total", "gross amount", "net amount"),
        "due_date": ("due date",),
        "paid_date": ("paid date", "payment date", "paid on", "paid at", "closed at"),
    },
    "subscriptions": {
        "subscription_id": (
            "subscription id",
            "subscription number",
            "subscription",
            "id",
        ),
        "account_id": (
            "account id",
            "account number",
            "customer id",
            "customer",
            "account",
        ),
        "start_date": (
            "start date",
            "term start date",
            "subscription start date",
            "service start",
            "contract start",
            "started at",
        ),
        "arr": ("arr", "annual recurring revenue", "annual amount", "annual value", "arr amount"),
        "end_date": (
            "end date",
            "cancelled date",
            "canceled date",
            "cancellation date",
            "canceled at",
            "cancelled at",
            "ended at",
            "contract end",
        ),
        "product": ("product", "product name", "plan", "plan name"),
        "rep_id": ("sales rep", "owner", "rep"),
    },
    "opportunity_history": {
        "opportunity_id": ("opportunity id", "deal id", "record id", "opportunity", "id"),
        "changed_at": (
            "changed at",
            "edit date",
            "last modified date",
            "modified date",
            "changed on",
            "date changed",
            "snapshot date",
            "valid from",
            "as of",
        ),
        "stage": ("stage", "to stage", "new stage", "deal stage", "stage name"),
        "amount": ("amount", "value", "deal value"),
        "close_date": ("close date", "expected close date", "closedate"),
        "forecast_category": ("forecast category", "forecast category name", "forecast"),
    },
}

#: Canonical columns whose values are mapped value by value.
VALUE_COLUMNS: tuple[str, ...] = ("stage", "type", "forecast_category")
#: Beginnings of words in a file name that point at one table.
FILE_WORDS: dict[str, tuple[str, ...]] = {
    "opportunities": ("opportunit", "deal", "pipeline", "order", "booking"),
    "accounts": ("account", "compan", "customer"),
    "reps": ("reps", "users", "salespeople", "team", "staff"),
    "invoices": ("invoice", "receivable"),
    "subscriptions": ("subscription", "billing", "arr", "mrr"),
    "opportunity_history": ("history", "snapshot", "changes"),
}

#: Export formats recognised by their headers: name -> (headers that must all be there).
TOOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Salesforce opportunity report", ("Opportunity Name", "Stage", "Close Date")),
    ("Salesforce opportunity report", ("Opportunity Owner", "Stage", "Amount")),
    ("HubSpot deals export", ("Deal Name", "Deal Stage")),
    ("HubSpot deals export", ("Record ID", "Deal Stage")),
    ("Pipedrive deals export", ("Deal - Title", "Deal - Status")),
    ("Pipedrive deals export", ("Deal - ID", "Deal - Stage")),
    ("Dynamics 365 opportunities export", ("(Do Not Modify) Opportunity",)),
    ("Dynamics 365 opportunities export", ("Topic", "Potential Customer", "Est. Revenue")),
)

#: The column a recognised tool keeps the won/lost outcome in (its stage column
#: keeps the last open stage of a closed deal).
OUTCOME_COLUMNS: dict[str, tuple[str, ...]] = {
    "Pipedrive deals export": ("Deal - Status",),
    "Dynamics 365 opportunities export": ("Status",),
}

#: Stage values recognised whole (lower case, letters and digits only).
STAGE_VALUES: dict[str, str] = {
    # HubSpot internal ids of the default pipeline
    "appointmentscheduled": "prospecting",
    "qualifiedtobuy": "qualification",
    "presentationscheduled": "proposal",
    "decisionmakerboughtin": "negotiation",
    "contractsent": "negotiation",
    "closedwon": "won",
    "closedlost": "lost",
    # Salesforce defaults
    "needsanalysis": "qualification",
    "valueproposition": "proposal",
    "iddecisionmakers": "proposal",
    "perceptionanalysis": "proposal",
    "proposalpricequote": "proposal",
    "negotiationreview": "negotiation",
    # Pipedrive defaults and status
    "leadin": "prospecting",
    "contactmade": "prospecting",
    "qualified": "qualification",
    "demoscheduled": "qualification",
    "proposalmade": "proposal",
    "negotiationsstarted": "negotiation",
    # Dynamics 365 sales stages and status reasons
    "qualify": "qualification",
    "develop": "qualification",
    "propose": "proposal",
    "close": "negotiation",
    "outsold": "lost",
    "canceled": "lost",
    "cancelled": "lost",
    # closed deals in other words
    "won": "won",
    "win": "won",
    "signed": "won",
    "booked": "won",
    "orderreceived": "won",
    "purchased": "won",
    "lost": "lost",
    "dead": "lost",
    "disqualified": "lost",
    "nodecision": "lost",
}
#: Values meaning "still open" in a won/lost/open status column; their deals are
#: taken as being in this open stage.
OPEN_VALUES: frozenset[str] = frozenset({"open", "inprogress", "onhold", "active"})
OPEN_STAGE = "qualification"
#: Keyword rules for other stage values, first match wins.
STAGE_WORDS: tuple[tuple[str, str], ...] = (
    (r"\blost\b|\bdead\b|disqualif|cancel|no decision|rejected|declined|churn", "lost"),
    (r"\bwon\b|\bwin\b|signed|booked|closed won|order received|purchase", "won"),
    (r"negotiat|contract|commit|legal|procurement", "negotiation"),
    (r"propos|quote|pricing|demo|presentation|evaluation|trial", "proposal"),
    (r"qualif|discovery|needs|assessment", "qualification"),
    (r"prospect|lead|contact|appointment|new\b|initial|intro", "prospecting"),
)
#: Type values recognised whole (lower case, letters only).
TYPE_VALUES: dict[str, str] = {
    "new": "new",
    "newbusiness": "new",
    "newcustomer": "new",
    "newlogo": "new",
    "expansion": "expansion",
    "existingbusiness": "expansion",
    "upsell": "expansion",
    "upgrade": "expansion",
    "crosssell": "expansion",
    "addon": "expansion",
    "existingcustomerupgrade": "expansion",
    "renewal": "renewal",
    "existingcustomerrenewal": "renewal",
    "existingcustomerreplacement": "renewal",
}
#: Currency names and symbols -> ISO 4217.
CURRENCY_NAMES: dict[str, str] = {
    "us dollar": "USD",
    "dollar": "USD",
    "euro": "EUR",
    "pound sterling": "GBP",
    "british pound": "GBP",
    "canadian dollar": "CAD",
    "australian dollar": "AUD",
    "swiss franc": "CHF",
    "japanese yen": "JPY",
    "swedish krona": "SEK",
    "danish krone": "DKK",
    "norwegian krone": "NOK",
    "indian rupee": "INR",
}
CURRENCY_SYMBOLS: dict[str, str] = {"€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "$": "USD"}
#: Headers holding the currency of each row.
CURRENCY_HEADERS: tuple[str, ...] = (
    "currency",
    "currency code",
    "currency iso code",
    "amount currency",
    "transaction currency",
    "waehrung",
    "währung",
)
NO_CURRENCY = "not found in the exports — set currency: to an ISO 4217 code, e.g. USD"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$")
_NUMBERED_DATE = re.compile(r"^(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T][\d:]+)?$")
_NUMBER = re.compile(
    r"^\(?[-+]?\s*(?:[A-Z]{3}\s?)?[$€£¥₹]?\s?[-+]?\d[\d.,' \u00a0]*\s?(?:[$€£¥₹]|[A-Z]{3})?\)?$"
)
_ISO_CODE = re.compile(r"^[A-Z]{3}$")


# ---------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Export:
    """An export as read, before any mapping: its header and its data rows."""

    path: Path
    sheet: str | None
    #: Whether ``sheet`` is not the workbook's first sheet (the draft names it then).
    sheet_named: bool
    #: Row of the header as a spreadsheet numbers it (1 = the first line).
    header_row: int
    columns: tuple[str, ...]
    #: Data rows only, one column per header, cells as read (text, or typed from Excel).
    frame: pd.DataFrame
    encoding: str | None = None
    delimiter: str | None = None
    footer: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValueGuess:
    """One distinct value of a column with the canonical value guessed for it."""

    value: str
    count: int
    canonical: str | None
    note: str = ""


@dataclass(frozen=True)
class TableDraft:
    """The draft mapping of one export onto one canonical table."""

    file: str
    table: str
    tool: str | None
    export: Export
    columns: dict[str, str]
    #: Per canonical column holding stage or type: each distinct value's guess.
    values: dict[str, tuple[ValueGuess, ...]]
    constants: dict[str, str]
    date_format: str | None
    currency: str | None
    notes: tuple[str, ...] = ()
    undecided: tuple[str, ...] = ()

    @property
    def missing_required(self) -> tuple[str, ...]:
        have = set(self.columns) | set(self.constants)
        key = schema.TABLES[self.table].key
        generated = self.table in sources.GENERATED_KEY_TABLES
        return tuple(
            c
            for c in schema.TABLES[self.table].required_columns
            if c not in have and not (c == key and generated)
        )


@dataclass(frozen=True)
class Draft:
    """The draft mapping of several exports, one table each."""

    folder: Path
    tables: tuple[TableDraft, ...]
    currency: str | None
    notes: tuple[str, ...] = ()
    undecided: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every required column of every table was found."""
        return all(not t.missing_required for t in self.tables)


# ---------------------------------------------------------------------------
# reading


def read_export(path: str | Path) -> Export:
    """Read an export's header and data rows with :func:`revmodel.readers.read_export`.

    The reader finds the encoding, delimiter, sheet, title rows above the header
    and footer rows below the data, as the loader does.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.xlsx`` or ``.parquet`` export.

    Returns
    -------
    Export
        The header found and the data rows below it, footer lines set apart.
    """
    path = Path(path)
    try:
        raw = readers.read_export(path)
    except readers.Unusable as exc:
        raise DataError(str(exc)) from None
    frame = raw.frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return Export(
        path=path,
        sheet=raw.sheet,
        sheet_named=raw.sheet is not None and raw.sheet != _first_sheet(path),
        header_row=raw.header_row,
        columns=tuple(frame.columns),
        frame=frame,
        encoding=raw.encoding,
        delimiter=raw.delimiter,
        footer=tuple(text for _, text in raw.footers),
    )


def _first_sheet(path: Path) -> str:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return book.sheetnames[0]
    finally:
        book.close()


# ---------------------------------------------------------------------------
# profiling a column


#: Rows whose values are looked at to tell numbers and dates apart (counts use every row).
SAMPLE_ROWS = 50_000


@dataclass(frozen=True)
class Profile:
    """What a column's values look like."""

    name: str
    filled: int
    unique: int
    numeric: float  # share of filled values that are numbers
    dates: float  # share of filled values that are dates
    date_format: str | None  # None: ISO, native or month names (the loader reads them)
    examples: tuple[str, ...]  # the first filled values, as text


def profile(name: str, values: pd.Series) -> Profile:
    """Profile one column of an export.

    Counts (filled, distinct) read every row; the shares of numbers and dates
    read the first :data:`SAMPLE_ROWS` filled values, so a draft of a
    million-row export stays quick.
    """
    filled = _filled(values)
    sample = filled.iloc[:SAMPLE_ROWS]
    n = len(sample)
    numeric = float(sample.map(_is_number).mean()) if n else 0.0
    fmt, dates = _date_profile(name, sample)
    examples = tuple(_text(v) for v in sample.iloc[:5])
    return Profile(name, len(filled), int(filled.nunique()), numeric, dates, fmt, examples)


def _filled(values: pd.Series) -> pd.Series:
    """The values that are not empty."""
    present = values.notna()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        present &= values.astype(str).str.strip().ne("")
    return values[present]


def value_counts(values: pd.Series) -> Counter[str]:
    """How many rows hold each distinct value (as text, stripped)."""
    text = _filled(values)
    text = text.map(_text) if text.dtype != object else text.astype(str).str.strip()
    return Counter({str(k): int(v) for k, v in text.value_counts().items()})


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | np.number):
        return True
    return bool(_NUMBER.match(str(value))) and any(ch.isdigit() for ch in str(value))


def _date_profile(name: str, values: pd.Series) -> tuple[str | None, float]:
    """(date_format the loader needs, share of values that are dates)."""
    if not len(values):
        return None, 0.0
    native = values.map(lambda v: isinstance(v, dt.datetime | dt.date)).mean()
    if native >= 0.8:
        return None, float(native)
    text = values.map(_text)
    iso = text.str.match(_ISO_DATE).mean()
    if iso >= 0.8:
        return None, float(iso)
    numbered = text.str.extract(_NUMBERED_DATE)
    share = numbered[0].notna().mean()
    if share >= 0.8:
        return _numbered_format(numbered.dropna()), float(share)
    if re.search(r"date|time|created|closed|on$|at$", name, re.IGNORECASE):
        return _serial_format(values)
    month_names = text.str.contains(
        r"^\d{1,2} [A-Za-z]{3,9},? \d{4}$|^[A-Za-z]{3,9} \d{1,2},? \d{4}$"
    )
    return None, float(month_names.mean())


def _numbered_format(parts: pd.DataFrame) -> str:
    first, second = parts[0].astype(int), parts[2].astype(int)
    sep = parts[1].mode().iloc[0]
    year = "%Y" if parts[3].str.len().max() == 4 else "%y"
    if (first > 12).any() and not (second > 12).any():
        return f"%d{sep}%m{sep}{year}"
    if (second > 12).any() and not (first > 12).any():
        return f"%m{sep}%d{sep}{year}"
    return f"?{sep}{year}"  # day and month cannot be told apart


def _serial_format(values: pd.Series) -> tuple[str | None, float]:
    """Epoch seconds, epoch milliseconds or Excel serial days in a date-named column."""
    numbers = pd.to_numeric(values.map(_text), errors="coerce")
    if numbers.notna().mean() < 0.8:
        return None, 0.0
    n = numbers.dropna()
    for fmt, lo, hi in (
        ("epoch_ms", 6.3e11, 4.1e12),  # 1990 .. 2100
        ("epoch_s", 6.3e8, 4.1e9),
        ("excel", 32874, 73051),
    ):
        if n.between(lo, hi).all():
            return fmt, float(numbers.notna().mean())
    return None, 0.0


# ---------------------------------------------------------------------------
# guessing


def normalise(header: str) -> str:
    """A header as compared with :data:`SYNONYMS`: lower case words, Pipedrive prefix removed.

    >>> normalise("Deal - Expected close date"), normalise("(Do Not Modify) Opportunity")
    ('expected close date', 'do not modify opportunity')
    """
    text = re.sub(r"^\s*deal\s+-\s+", "", str(header), flags=re.IGNORECASE)
    return re.sub(r"[^0-9a-zäöüß]+", " ", text.lower()).strip()


def recognise_tool(columns: Iterable[str]) -> str | None:
    """The tool whose export has these headers, e.g. ``"HubSpot deals export"``."""
    have = {c.strip().lower() for c in columns}
    for tool, needed in TOOLS:
        if all(h.lower() in have for h in needed):
            return tool
    return None


def guess_stage(value: str) -> str | None:
    """The canonical stage a stage value most likely means; None when there is no guess.

    >>> [guess_stage(v) for v in ("Closed Won", "closedlost", "Signed", "Verbal Yes")]
    ['won', 'lost', 'won', None]
    """
    compact = re.sub(r"[^a-z0-9]+", "", str(value).lower())
    if compact in schema.STAGES:
        return compact
    if compact in STAGE_VALUES:
        return STAGE_VALUES[compact]
    low = str(value).lower()
    for pattern, stage in STAGE_WORDS:
        if re.search(pattern, low):
            return stage
    return None


def guess_type(value: str) -> str | None:
    """The canonical deal type a type value most likely means; None when there is no guess.

    >>> [guess_type(v) for v in ("New Business", "existingbusiness", "Renewal", "Pilot")]
    ['new', 'expansion', 'renewal', None]
    """
    compact = re.sub(r"[^a-z]+", "", str(value).lower())
    return TYPE_VALUES.get(compact)


def guess_forecast_category(value: str) -> str | None:
    """The canonical forecast category of a CRM's (``Best Case`` -> ``best_case``).

    >>> guess_forecast_category("Best Case"), guess_forecast_category("Upside")
    ('best_case', None)
    """
    snake = re.sub(r"[^a-z]+", "_", str(value).lower()).strip("_")
    return snake if snake in getattr(schema, "FORECAST_CATEGORIES", ()) else None


def allowed_values(table: str, column: str) -> tuple[str, ...]:
    """The canonical values a stage, type or category column takes."""
    col = schema.TABLES[table].column(column)
    declared = getattr(col, "values", ())
    if declared:
        return tuple(declared)
    return schema.STAGES if column == "stage" else schema.OPPORTUNITY_TYPES


def _known_synonyms() -> dict[str, dict[str, tuple[str, ...]]]:
    """The synonyms of the tables this version's schema has."""
    return {t: syns for t, syns in SYNONYMS.items() if t in schema.TABLES}


def _name_score(header: str, synonyms: Sequence[str]) -> float:
    norm = normalise(header)
    if norm in synonyms:
        return 3.0 - 0.01 * synonyms.index(norm)
    words = set(norm.split())
    for i, syn in enumerate(synonyms):
        syn_words = syn.split()
        if len(syn_words) > 1 and set(syn_words) <= words:
            return 1.5 - 0.01 * i
    return 0.0


def _fits(table: str, column: str, prof: Profile, rows: int) -> bool:
    """Whether a column's values can feed a canonical column."""
    dtype = schema.TABLES[table].column(column).dtype
    if prof.filled == 0:
        return not schema.TABLES[table].column(column).required
    if dtype == "date":
        return prof.dates >= 0.8
    if dtype in ("float", "int"):
        return prof.numeric >= 0.9 and prof.dates < 0.5
    t = schema.TABLES[table]
    if column == t.key and getattr(t, "unique_columns", (t.key,)) == (t.key,):
        return prof.unique >= 0.98 * prof.filled and prof.filled >= 0.9 * rows
    return True


def guess_columns(
    table: str, profiles: Sequence[Profile], rows: int, tool: str | None = None
) -> dict[str, str]:
    """Canonical column -> export column, by name first, checked against the values.

    Each export column feeds at most one canonical column; the best-named pairs
    are taken first. A recognised tool's outcome column (Pipedrive's
    ``Deal - Status``) feeds ``stage``.
    """
    synonyms = _known_synonyms().get(table, {})
    pairs: list[tuple[float, str, str]] = []
    outcome = OUTCOME_COLUMNS.get(tool or "", ())
    for prof in profiles:
        for col, syns in synonyms.items():
            score = _name_score(prof.name, syns)
            if col == "stage" and prof.name in outcome:
                score = 4.0
            if score and _fits(table, col, prof, rows):
                pairs.append((score, col, prof.name))
    pairs.sort(key=lambda p: -p[0])
    found: dict[str, str] = {}
    used: set[str] = set()
    for _, col, src in pairs:
        if col not in found and src not in used:
            found[col] = src
            used.add(src)
    return {c: found[c] for c in schema.TABLES[table].column_names if c in found}


def guess_table(path: Path, columns: Sequence[str], tool: str | None) -> str:
    """The canonical table an export most likely holds.

    A table whose required columns are all named in the headers (and three
    columns at least) comes first,
    then one named by a word of the file name (``deals``, ``orders``,
    ``invoices``, ``billing`` ...), then the one with more required columns
    named; then each canonical column named counts (required ones double), and
    a recognised CRM's deal export counts for opportunities.
    """
    words = re.findall(r"[a-z]+", path.stem.lower())
    best, best_score = "opportunities", (False, False, 0, 0.0)
    for table, syns in _known_synonyms().items():
        t = schema.TABLES[table]
        named = {
            c for c, names in syns.items() if any(_name_score(h, names) >= 2.5 for h in columns)
        }
        required = set(t.required_columns)
        if table in sources.GENERATED_KEY_TABLES:
            required.discard(t.key)
        score = sum(2.0 if t.column(c).required else 1.0 for c in named)
        if tool is not None and table == "opportunities":
            score += 4.0
        in_name = any(w.startswith(FILE_WORDS[table]) for w in words)
        complete = required <= named and len(named) >= 3
        key = (complete, in_name, len(required & named), score)
        if key > best_score:
            best, best_score = table, key
    return best


def guess_values(
    column: str, counts: Counter[str], outcome_column: str | None = None
) -> tuple[ValueGuess, ...]:
    """Each distinct stage or type value with its guess, most frequent first.

    In a won/lost/open status column (``outcome_column`` names it), open
    values become :data:`OPEN_STAGE`: the loader reads one column per field,
    so the open stage kept in another column is not used.
    """
    guesses: list[ValueGuess] = []
    for value, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        compact = re.sub(r"[^a-z]+", "", value.lower())
        note = ""
        if column == "type":
            canonical = guess_type(value)
        elif column == "forecast_category":
            canonical = guess_forecast_category(value)
        elif compact in OPEN_VALUES:
            canonical = OPEN_STAGE
            note = "open deals: the status column does not say which open stage"
        else:
            canonical = guess_stage(value)
        guesses.append(ValueGuess(value, n, canonical, note))
    return tuple(guesses)


def _currency_of(value: str) -> str | None:
    text = value.strip()
    if _ISO_CODE.match(text.upper()) and text.isalpha():
        return text.upper()
    return CURRENCY_NAMES.get(text.lower())


def guess_currency(export: Export, columns: dict[str, str]) -> tuple[str | None, str]:
    """(ISO 4217 code, where it was found) from a currency column or the amounts' symbols."""
    for name in export.columns:
        if normalise(name) in CURRENCY_HEADERS or normalise(name).endswith(" currency"):
            counts = Counter(
                c for c in (_currency_of(_text(v)) for v in export.frame[name] if v != "") if c
            )
            if counts:
                code, n = counts.most_common(1)[0]
                if len(counts) > 1:
                    shares = ", ".join(f"{c} {k:,}" for c, k in counts.most_common())
                    return code, (
                        f"column '{name}' holds several currencies ({shares} rows); amounts are "
                        "added as they are: convert them to one currency first"
                    )
                return code, f"column '{name}'"
    amount = columns.get("amount") or columns.get("arr")
    if amount is None:
        return None, ""
    found = re.search(r"\b([A-Z]{3})\b", amount)
    if found and found.group(1) in set(CURRENCY_NAMES.values()):
        return found.group(1), f"header '{amount}'"
    symbols: Counter[str] = Counter()
    for v in export.frame[amount]:
        if isinstance(v, str):
            for sym, code in CURRENCY_SYMBOLS.items():
                if sym in v:
                    symbols[code] += 1
            code = re.search(r"\b([A-Z]{3})\b", v)
            if code and code.group(1) in set(CURRENCY_NAMES.values()):
                symbols[code.group(1)] += 1
    if symbols:
        code = symbols.most_common(1)[0][0]
        why = f"symbols in '{amount}'"
        if code == "USD":
            why += " ('$' is also CAD, AUD ...: check)"
        return code, why
    return None, ""


def _choose_date_format(
    table: str, columns: dict[str, str], profiles: dict[str, Profile]
) -> tuple[str | None, list[str]]:
    """The table's date_format and what could not be decided about dates."""
    undecided: list[str] = []
    formats: dict[str, str] = {}
    for col, src in columns.items():
        if schema.TABLES[table].column(col).dtype != "date":
            continue
        fmt = profiles[src].date_format
        if fmt is None:
            continue
        if fmt.startswith("?"):
            example = next(iter(profiles[src].examples), "")
            sep, year = fmt[1], fmt[2:]
            undecided.append(
                f"dates like '{example}' in '{src}' could be day/month or month/day: "
                f"set date_format to '%d{sep}%m{sep}{year}' or '%m{sep}%d{sep}{year}'"
            )
            continue
        formats[src] = fmt
    kinds = set(formats.values())
    if len(kinds) > 1:
        shown = ", ".join(f"'{s}' {f}" for s, f in formats.items())
        undecided.append(f"date columns differ ({shown}); date_format applies to all of them")
    main = columns.get("close_date") or columns.get("start_date") or columns.get("invoice_date")
    chosen = formats.get(main or "") or (next(iter(formats.values())) if formats else None)
    return chosen, undecided


@dataclass(frozen=True)
class _Guess:
    """Everything guessed about one export, before it becomes a :class:`TableDraft`."""

    table: str
    tool: str | None
    columns: dict[str, str]
    profiles: dict[str, Profile]


def _guess(export: Export) -> _Guess:
    tool = recognise_tool(export.columns)
    table = guess_table(export.path, export.columns, tool)
    profiles = {c: profile(c, export.frame[c]) for c in export.columns}
    columns = guess_columns(table, list(profiles.values()), len(export.frame), tool)
    return _Guess(table, tool, columns, profiles)


def draft_table(export: Export, file: str) -> TableDraft:
    """Draft the mapping of one export (see :func:`draft`)."""
    g = _guess(export)
    notes: list[str] = []
    undecided: list[str] = []
    constants: dict[str, str] = {}
    table = schema.TABLES[g.table]
    if g.table == "opportunities" and "stage" not in g.columns:
        words = " ".join([export.path.stem.lower(), *(normalise(c) for c in export.columns)])
        if re.search(r"order|sales|booking|revenue|invoice", words):
            constants["stage"] = "won"
            notes.append(
                "no stage column: every row is taken as a closed sale (constants: stage: won); "
                "remove it if the file holds open or lost deals"
            )
    values: dict[str, tuple[ValueGuess, ...]] = {}
    outcome = (
        g.columns.get("stage")
        if g.columns.get("stage") in OUTCOME_COLUMNS.get(g.tool or "", ())
        else None
    )
    for col in VALUE_COLUMNS:
        src = g.columns.get(col)
        if src is None:
            continue
        counts = value_counts(export.frame[src])
        values[col] = guess_values(col, counts, outcome)
        allowed = allowed_values(g.table, col)
        for v in values[col]:
            if v.canonical is None:
                undecided.append(
                    f"{col} '{v.value}': no guess — map it to one of {', '.join(allowed)}"
                )
    if outcome:
        stage_col = next(
            (c for c in export.columns if normalise(c) in ("stage", "sales stage")), None
        )
        if stage_col:
            notes.append(
                f"stage comes from '{outcome}' (won, lost, open); open deals are taken as "
                f"'{OPEN_STAGE}' because a mapping reads one column per field and '{stage_col}' "
                "keeps the last open stage of closed deals too"
            )
    date_format, date_undecided = _choose_date_format(g.table, g.columns, g.profiles)
    undecided.extend(date_undecided)
    currency, where = guess_currency(export, g.columns)
    if currency is not None and "convert" in where:
        undecided.append(where)
    for col in table.required_columns:
        if col not in g.columns and col not in constants:
            if col == table.key and g.table in sources.GENERATED_KEY_TABLES:
                notes.append(f"no {col} column: the loader numbers the rows as '{file}:<row>'")
            else:
                undecided.append(
                    f"required column {col} not found: map it under columns ({col}: YourColumn); "
                    f"the export's columns are {_names(export.columns)}"
                )
    currency_note = (
        f"currency {currency} from {where}" if currency and "convert" not in where else ""
    )
    if currency_note:
        notes.append(currency_note)
    return TableDraft(
        file=file,
        table=g.table,
        tool=g.tool,
        export=export,
        columns=g.columns,
        values=values,
        constants=constants,
        date_format=date_format,
        currency=currency,
        notes=tuple(notes),
        undecided=tuple(undecided),
    )


def draft(paths: Sequence[str | Path]) -> Draft:
    """Draft the mapping of several exports, each onto the canonical table it most likely holds.

    Parameters
    ----------
    paths : sequence of str or Path
        Export files (``.csv``, ``.xlsx``, ``.parquet``), normally in one data folder;
        the draft names them relative to their common folder.

    Returns
    -------
    Draft
        One :class:`TableDraft` per export, the company currency, and what could
        not be decided.
    """
    if not paths:
        raise DataError("no export given; pass the files to map, e.g. revmodel map data/*.csv")
    files = [Path(p) for p in paths]
    folder = Path(_common_folder(files))
    tables: list[TableDraft] = []
    undecided: list[str] = []
    for path in files:
        td = draft_table(read_export(path), path.resolve().relative_to(folder.resolve()).as_posix())
        taken = next((t for t in tables if t.table == td.table), None)
        if taken is not None:
            undecided.append(
                f"{td.file} and {taken.file} both look like {td.table}; {td.file} is left out: "
                "keep one file per table"
            )
            continue
        tables.append(td)
    currencies = Counter(t.currency for t in tables if t.currency)
    currency = currencies.most_common(1)[0][0] if currencies else None
    if len(currencies) > 1:
        undecided.append(
            f"the exports are in different currencies ({', '.join(currencies)}); "
            "convert them to one and set currency"
        )
    return Draft(folder, tuple(tables), currency, (), tuple(undecided))


def _common_folder(files: Sequence[Path]) -> str:
    """The folder holding all files, as the user named it when that is possible."""
    import os

    if len({f.is_absolute() for f in files}) == 1:
        return os.path.commonpath([str(f.parent) for f in files]) or "."
    return os.path.commonpath([str(f.resolve().parent) for f in files])


def _names(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(f"'{n}'" for n in list(names)[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# ---------------------------------------------------------------------------
# writing

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9 _./()%-]*$")
_RESERVED = {"yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"}


def _scalar(value: str) -> str:
    """A YAML scalar for text from an export: plain when safe, else double-quoted."""
    text = str(value)
    if _PLAIN.match(text) and text == text.strip() and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    """Text safe inside a YAML comment: one line, control characters escaped."""
    return json.dumps(str(text), ensure_ascii=False)[1:-1]


def _setting(key: str, value: str, why: str, indent: str) -> list[str]:
    shown = value if value.isdigit() else _scalar(value)
    return [f"{indent}{key}: {shown}" + (f"   # {_comment(why)}" if why else "")]


def _table_yaml(t: TableDraft) -> list[str]:
    ind = "    "
    head = t.tool or t.table
    rows = len(t.export.frame)
    lines = [f"  {t.table}:", f"{ind}# {_comment(head)}: {_comment(t.file)}, {rows:,} rows"]
    lines.append(f"{ind}file: {_scalar(t.file)}")
    if t.export.sheet_named and t.export.sheet is not None:
        lines += _setting("sheet", t.export.sheet, "the sheet holding the data", ind)
    if t.export.header_row != 1:
        rows_above = t.export.header_row - 1
        lines += _setting(
            "header_row", str(t.export.header_row), f"{rows_above} title rows above", ind
        )
    if t.date_format is not None:
        lines += _setting("date_format", t.date_format, "read from the values", ind)
    lines.append(f"{ind}columns:")
    for col in schema.TABLES[t.table].column_names:
        if col in t.columns:
            lines.append(f"{ind}  {col}: {_scalar(t.columns[col])}")
        elif col in t.missing_required:
            lines.append(f"{ind}  # {col}: ___   # REQUIRED, not found: name the export's column")
    values = {c: v for c, v in t.values.items() if v}
    if values:
        lines.append(f"{ind}values:")
        for col, guesses in values.items():
            allowed = allowed_values(t.table, col)
            lines.append(f"{ind}  {col}:")
            for g in guesses:
                count = f"{g.count:,} row{'s' if g.count != 1 else ''}"
                if g.canonical is None:
                    lines.append(
                        f"{ind}    # {_scalar(g.value)}: ___   # {count}, NO GUESS: "
                        f"map it to one of {', '.join(allowed)}"
                    )
                else:
                    note = f"; {_comment(g.note)}" if g.note else ""
                    lines.append(f"{ind}    {_scalar(g.value)}: {g.canonical}   # {count}{note}")
    if t.constants:
        lines.append(f"{ind}constants:")
        lines += [f"{ind}  {c}: {_scalar(v)}" for c, v in t.constants.items()]
    lines += [f"{ind}# note: {_comment(n)}" for n in t.notes]
    lines += [f"{ind}# CHECK: {_comment(u)}" for u in t.undecided]
    return lines


def to_yaml(d: Draft) -> str:
    """The draft as a mapping file, with what was guessed and not decided as comments."""
    lines = [
        "# Mapping drafted by `revmodel map` from the exports' headers and values.",
        "# Check the guesses, settle every line marked CHECK or ___, then run",
        "#   revmodel validate DATA_FOLDER --mapping THIS_FILE",
    ]
    if d.currency is not None:
        lines += _setting("currency", d.currency, "ISO 4217 code of the amounts", "")
    else:
        lines.append(f"# currency: ___   # CHECK: {NO_CURRENCY}")
    lines += [f"# CHECK: {_comment(u)}" for u in d.undecided]
    lines.append("tables:")
    for t in d.tables:
        lines += _table_yaml(t)
    return "\n".join(lines) + "\n"


def report_lines(d: Draft) -> list[str]:
    """What the draft guessed and could not decide, as shown on the terminal."""
    lines: list[str] = []
    for t in d.tables:
        e = t.export
        where = f"sheet '{e.sheet}', " if e.sheet_named else ""
        lines.append(
            f"{t.file}: {t.tool + ' -> ' if t.tool else ''}{t.table} "
            f"({len(e.frame):,} rows; {where}header on row {e.header_row})"
        )
        order = schema.TABLES[t.table].column_names
        mapped = ", ".join(f"{c} <- '{t.columns[c]}'" for c in order if c in t.columns)
        lines.append(f"  columns: {mapped or 'none recognised'}")
        unused = [c for c in e.columns if c not in t.columns.values()]
        if unused:
            lines.append(f"  not used: {_names(unused)}")
        if t.date_format:
            lines.append(f"  dates: {t.date_format}")
        for col, guesses in t.values.items():
            shown = ", ".join(
                f"'{g.value}' -> {g.canonical}" for g in guesses if g.canonical is not None
            )
            if shown:
                lines.append(f"  {col}: {shown}")
        if e.footer:
            quoted = ", ".join(f"'{f[:60]}'" for f in e.footer[:3])
            lines.append(f"  footer: {len(e.footer)} line(s) below the data, not data: {quoted}")
        lines += [f"  note: {n}" for n in t.notes]
        lines += [f"  {u}" for u in t.undecided]
    lines.append(f"currency: {d.currency or NO_CURRENCY}")
    lines += list(d.undecided)
    return lines


def check_out(out: str | Path, force: bool = False) -> Path:
    """The path to write a draft to; an existing file is kept unless ``force``."""
    target = Path(out)
    if target.exists() and not force:
        raise DataError(f"{target} exists; pass --force to replace it, or choose another --out")
    if not target.parent.is_dir():
        raise DataError(f"folder {target.parent} not found; create it or choose another --out")
    return target


def write(text: str, out: str | Path, force: bool = False) -> Path:
    """Write a draft to ``out`` (see :func:`check_out`)."""
    target = check_out(out, force)
    target.write_text(text, encoding="utf-8")
    return target


def next_step(d: Draft, out: str | Path) -> str:
    """The command to run after checking the draft written to ``out``."""
    return f"wrote {out}; check it, then run: revmodel validate {_shell(d.folder)} --mapping {_shell(Path(out))}"


def exit_code(d: Draft) -> int:
    """0 when nothing is left to decide, 1 when the draft loads but lines are marked
    CHECK, 2 when a required column was not found (the draft does not load until it is mapped).
    """
    if not d.complete:
        return 2
    undecided = d.undecided or d.currency is None or any(t.undecided for t in d.tables)
    return 1 if undecided else 0


def _shell(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))
