"""The canonical schema of the input tables.

This is plain data, so that the loader (:mod:`revmodel.sources`, which turns it
into pandera schemas), the sample generator, the documentation and the tests
all read the same definition. A user's own exports are mapped onto these
names with a mapping file (see :mod:`revmodel.sources`).

Types: ``str`` (identifier or label), ``float`` (a number, currency for
amounts), ``int`` (a whole number), ``date`` (a calendar date, ISO
``YYYY-MM-DD`` preferred; other unambiguous formats are parsed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from revmodel.errors import ParameterError, RevmodelError


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "str" | "float" | "int" | "date"
    required: bool
    description: str
    #: Allowed values (matched ignoring case after the mapping's ``values``); empty: any.
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    key: str
    required: bool
    columns: tuple[Column, ...]
    description: str
    #: Columns that identify a row together; default ``(key,)``.
    unique: tuple[str, ...] = ()

    @property
    def unique_columns(self) -> tuple[str, ...]:
        return self.unique or (self.key,)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


#: Open stages in funnel order, then the two closed stages.
OPEN_STAGES: tuple[str, ...] = ("prospecting", "qualification", "proposal", "negotiation")
CLOSED_STAGES: tuple[str, ...] = ("won", "lost")
STAGES: tuple[str, ...] = OPEN_STAGES + CLOSED_STAGES
OPPORTUNITY_TYPES: tuple[str, ...] = ("new", "expansion", "renewal")
#: Forecast categories of a deal, as CRMs name them (``closed`` for won and lost deals).
FORECAST_CATEGORIES: tuple[str, ...] = ("pipeline", "best_case", "commit", "omitted", "closed")

ACCOUNTS = Table(
    name="accounts",
    key="account_id",
    required=False,
    description="Customers and prospects; segment follows from employee headcount bands.",
    columns=(
        Column("account_id", "str", True, "Unique account identifier."),
        Column("account_name", "str", False, "Display name."),
        Column(
            "employees",
            "int",
            False,
            "Employee headcount; defines the segment when `segment` is absent.",
        ),
        Column(
            "segment",
            "str",
            False,
            "Segment label; derived from `employees` and the segment bands when absent.",
        ),
        Column("region", "str", False, "Sales region of the account."),
        Column("country", "str", False, "Country (ISO 3166 alpha-2 or name)."),
        Column("industry", "str", False, "Industry label."),
        Column(
            "annual_revenue",
            "float",
            False,
            "Account's own annual revenue [currency], used for potential.",
        ),
        Column("owner_rep_id", "str", False, "Current account owner (a `reps.rep_id`)."),
    ),
)

REPS = Table(
    name="reps",
    key="rep_id",
    required=False,
    description="Quota-carrying sales reps with their place in the hierarchy.",
    columns=(
        Column("rep_id", "str", True, "Unique rep identifier."),
        Column("rep_name", "str", False, "Display name."),
        Column("manager", "str", False, "The rep's first-line manager."),
        Column("region", "str", False, "The rep's region."),
        Column("segment", "str", False, "The segment the rep sells to."),
        Column("hire_date", "date", False, "First day of employment."),
        Column("end_date", "date", False, "Last day of employment (empty while employed)."),
        Column("ramp_months", "int", False, "Months to full productivity."),
    ),
)

OPPORTUNITIES = Table(
    name="opportunities",
    key="opportunity_id",
    required=True,
    description="Deals, open and closed. The only required table.",
    columns=(
        Column("opportunity_id", "str", True, "Unique opportunity identifier."),
        Column("close_date", "date", True, "Close date (expected close date while open)."),
        Column("amount", "float", True, "Deal amount [currency]; required and >= 0 on won deals."),
        Column(
            "stage",
            "str",
            True,
            "One of " + ", ".join(STAGES) + " (map your own values).",
            STAGES,
        ),
        Column("created_date", "date", False, "Date the opportunity was created."),
        Column("account_id", "str", False, "An `accounts.account_id`."),
        Column("rep_id", "str", False, "The owner, a `reps.rep_id`."),
        Column("product", "str", False, "Product line."),
        Column(
            "type",
            "str",
            False,
            "One of " + ", ".join(OPPORTUNITY_TYPES) + ".",
            OPPORTUNITY_TYPES,
        ),
        Column(
            "segment",
            "str",
            False,
            "Segment carried by the order itself (overrides the account's).",
        ),
        Column(
            "region",
            "str",
            False,
            "Region carried by the order itself (overrides the account's and rep's).",
        ),
    ),
)

INVOICES = Table(
    name="invoices",
    key="invoice_id",
    required=False,
    description="Invoices with due and paid dates, for DSO and collections.",
    columns=(
        Column("invoice_id", "str", True, "Unique invoice identifier."),
        Column("account_id", "str", True, "An `accounts.account_id`."),
        Column("invoice_date", "date", True, "Date issued."),
        Column("amount", "float", True, "Invoiced amount [currency] (negative for credit notes)."),
        Column("due_date", "date", False, "Payment due date."),
        Column("paid_date", "date", False, "Date paid (empty while outstanding)."),
    ),
)

SUBSCRIPTIONS = Table(
    name="subscriptions",
    key="subscription_id",
    required=False,
    description=(
        "Subscription terms. A term is active from `start_date` (inclusive) to `end_date` "
        "(exclusive; empty while active); a renewal is a new term starting where the last ended. "
        "Account-level monthly ARR changes give new, expansion, contraction and churned ARR."
    ),
    columns=(
        Column("subscription_id", "str", True, "Unique subscription (term) identifier."),
        Column("account_id", "str", True, "An `accounts.account_id`."),
        Column("start_date", "date", True, "First day of the term."),
        Column("arr", "float", True, "Annual recurring revenue of the term [currency/year]."),
        Column("end_date", "date", False, "First day no longer active (empty while active)."),
        Column("product", "str", False, "Product line."),
        Column(
            "rep_id", "str", False, "Rep credited with the ARR (defaults to the account owner)."
        ),
    ),
)

OPPORTUNITY_HISTORY = Table(
    name="opportunity_history",
    key="opportunity_id",
    required=False,
    unique=("opportunity_id", "changed_at"),
    description=(
        "Pipeline history, as CRM field-history exports give it: one row per state of a deal, "
        "each row the deal's state from `changed_at` on (until its next row). Without it, "
        "history is derived from the snapshots `revmodel snapshot` stores."
    ),
    columns=(
        Column("opportunity_id", "str", True, "The deal, an `opportunities.opportunity_id`."),
        Column("changed_at", "date", True, "First day the deal was in this state."),
        Column(
            "stage",
            "str",
            True,
            "Stage in this state, one of " + ", ".join(STAGES) + ".",
            STAGES,
        ),
        Column("amount", "float", True, "Amount in this state [currency]; may be empty."),
        Column(
            "close_date",
            "date",
            True,
            "Expected close date in this state (close date once closed).",
        ),
        Column(
            "forecast_category",
            "str",
            False,
            "One of " + ", ".join(FORECAST_CATEGORIES) + ".",
            FORECAST_CATEGORIES,
        ),
    ),
)

#: ISO 4217 codes of the currencies in use (for ``currency:`` in a mapping and parameters).
CURRENCIES: frozenset[str] = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG""".split()
)

TABLES: dict[str, Table] = {
    t.name: t for t in (ACCOUNTS, REPS, OPPORTUNITIES, INVOICES, SUBSCRIPTIONS, OPPORTUNITY_HISTORY)
}


def schema_markdown() -> str:
    """The schema as a Markdown reference (used by the README and ``revmodel validate --schema``)."""
    lines: list[str] = []
    for t in TABLES.values():
        req = "required" if t.required else "optional"
        key = ", ".join(f"`{c}`" for c in t.unique_columns)
        lines.append(f"### `{t.name}` ({req}; key {key})\n\n{t.description}\n")
        lines.append("| column | type | required | meaning |\n| --- | --- | --- | --- |")
        for c in t.columns:
            lines.append(
                f"| `{c.name}` | {c.dtype} | {'yes' if c.required else 'no'} | {c.description} |"
            )
        lines.append("")
    return "\n".join(lines)


def segment_bands(
    value: Any, where: str = "segment_bands", error: type[RevmodelError] = ParameterError
) -> tuple[tuple[str, float, float], ...]:
    """The one validator of segment bands: ``[[name, lower, upper], ...]`` [employees].

    Accepts a list of ``[name, lower, upper]`` (an empty, null or ``inf`` upper
    bound means no upper bound) or a ``"SMB:0:200,Mid-Market:200:2000,..."``
    string. Names must be unique, every band must have ``lower < upper`` and
    bands must not overlap. Used by the mapping reader, the parameters file,
    the command line and territory segmentation.

    Parameters
    ----------
    value : list or str
        The bands.
    where : str
        Where they come from, to start every message with.
    error : type
        The error raised (:class:`~revmodel.errors.DataError` for a mapping file).

    Returns
    -------
    tuple of (str, float, float)

    Examples
    --------
    >>> segment_bands("SMB:0:200,Enterprise:200:")
    (('SMB', 0.0, 200.0), ('Enterprise', 200.0, inf))
    >>> segment_bands([["A", 0, 100], ["B", 50, 200]], "bands")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: bands: segments 'A' and 'B' overlap; make each upper bound the next lower bound.
    """
    items = value
    if isinstance(value, str):
        items = [part.split(":") for part in value.split(",") if part.strip()]
    hint = (
        f"{where}: expected a list of [name, lower, upper], "
        "e.g. [[SMB, 0, 200], [Enterprise, 200, null]]"
    )
    if not isinstance(items, list | tuple) or not items:
        raise error(hint)
    bands: list[tuple[str, float, float]] = []
    for item in items:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise error(hint)
        name, lower, upper = item
        try:
            lo = float(lower)
            hi = float("inf") if upper in (None, "", "inf", ".inf", "null") else float(upper)
        except (TypeError, ValueError):
            raise error(f"{where}: bounds of band '{name}' must be numbers") from None
        if not hi > lo:
            raise error(f"{where}: band '{name}' has upper bound {hi:g} <= lower bound {lo:g}")
        bands.append((str(name).strip(), lo, hi))
    names = [b[0] for b in bands]
    if len(set(names)) != len(names):
        raise error(f"{where}: segment names must be unique, got {names}.")
    ordered = sorted(bands, key=lambda b: b[1])
    for (n1, _, hi1), (n2, lo2, _) in zip(ordered, ordered[1:], strict=False):
        if lo2 < hi1:
            raise error(
                f"{where}: segments '{n1}' and '{n2}' overlap; make each upper bound the next "
                "lower bound."
            )
    return tuple(bands)
