"""How numbers are shown: money, percentages and counts, one definition for the pack and the apps.

Money is written in the currency of the data (a cube's ``attrs["currency"]``,
an ISO 4217 code; :data:`revmodel.config.CURRENCY` when it is not known),
compact above a thousand: ``$12K``, ``$2.5M``, ``$1.50B`` (0, 1 and 2 decimals
for thousands, millions and billions, so every figure shows two or three
significant digits). A missing or non-finite value is :data:`MISSING`, never 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from revmodel import config

__all__ = [
    "MISSING",
    "count",
    "currency_symbol",
    "heading",
    "headed",
    "inert_frame",
    "inert_text",
    "is_missing",
    "money",
    "number",
    "pct",
    "write_csv",
]

#: What a missing value is shown as.
MISSING = "–"

#: Symbols of common currencies; any other ISO code is written before the amount ("CHF 12K").
CURRENCY_SYMBOLS: dict[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "INR": "₹",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "CNY": "CN¥",
    "KRW": "₩",
    "BRL": "R$",
    "MXN": "MX$",
}

#: Compact steps: size, suffix, decimals.
_STEPS: tuple[tuple[float, str, int], ...] = ((1e9, "B", 2), (1e6, "M", 1), (1e3, "K", 0))


def is_missing(value: Any) -> bool:
    """True for None, NaN, infinities and anything that is not a number.

    Parameters
    ----------
    value : object
        A value to show.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_missing(None), is_missing(float("nan")), is_missing(0), is_missing("12")
    (True, True, False, True)
    """
    if value is None or isinstance(value, str):
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def currency_symbol(currency: str | None = None) -> str:
    """The prefix of an amount in ``currency`` (an ISO 4217 code): ``$``, ``€``, ``CHF ``...

    Parameters
    ----------
    currency : str, optional
        ISO 4217 code; :data:`revmodel.config.CURRENCY` by default.

    Returns
    -------
    str

    Examples
    --------
    >>> currency_symbol("EUR"), currency_symbol("CHF"), currency_symbol()
    ('€', 'CHF ', '$')
    """
    code = str(currency or config.CURRENCY).strip().upper()
    return CURRENCY_SYMBOLS.get(code, f"{code} ")


def money(value: Any, currency: str | None = None, compact: bool = True) -> str:
    """An amount: ``$2.5M`` (compact) or ``$2,500,000``; :data:`MISSING` when missing.

    Parameters
    ----------
    value : float
        The amount [currency].
    currency : str, optional
        ISO 4217 code; a cube's ``attrs["currency"]``.
    compact : bool
        ``K``/``M``/``B`` with two or three significant digits, else every unit.

    Returns
    -------
    str

    Examples
    --------
    >>> money(2_500_000), money(12_345, "EUR"), money(1_500_000_000, "CHF")
    ('$2.5M', '€12K', 'CHF 1.50B')
    >>> money(2_500_000, compact=False), money(float("nan")), money(-1200)
    ('$2,500,000', '–', '-$1K')
    """
    if is_missing(value):
        return MISSING
    v = float(value)
    sign, a, sym = ("-" if v < 0 else ""), abs(v), currency_symbol(currency)
    if compact:
        for size, suffix, digits in _STEPS:
            if a >= size:
                return f"{sign}{sym}{a / size:,.{digits}f}{suffix}"
    return f"{sign}{sym}{a:,.0f}"


def pct(value: Any, digits: int = 0) -> str:
    """A ratio as a percentage (0.912 -> ``91%``); never ``-0%``.

    Parameters
    ----------
    value : float
        A ratio.
    digits : int
        Decimals of the percentage.

    Returns
    -------
    str

    Examples
    --------
    >>> pct(0.912), pct(-0.0001), pct(0.12345, digits=1), pct(None)
    ('91%', '0%', '12.3%', '–')
    """
    if is_missing(value):
        return MISSING
    v = float(value)
    if abs(v) < 0.5 * 10 ** (-digits - 2):
        v = 0.0
    return f"{v:.{digits}%}"


def count(value: Any) -> str:
    """A whole number with thousands separators.

    Parameters
    ----------
    value : float
        A count.

    Returns
    -------
    str

    Examples
    --------
    >>> count(1234567), count(12.0), count(None)
    ('1,234,567', '12', '–')
    """
    return MISSING if is_missing(value) else f"{float(value):,.0f}"


def number(value: Any, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals and thousands separators.

    Parameters
    ----------
    value : float
        A number.
    digits : int
        Decimals shown.

    Returns
    -------
    str

    Examples
    --------
    >>> number(1234.5678), number(1234.5678, digits=0), number(None)
    ('1,234.57', '1,235', '–')
    """
    return MISSING if is_missing(value) else f"{float(value):,.{digits}f}"


#: How each table column is shown: money, pct, int or num (anything else is text).
COLUMN_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ["forecast", "p10", "p90", "target", "gap", "pipeline", "actual", "error", "quota_year",
         "quota_quarter", "full_year_quota", "capacity_year", "capacity", "yield_per_hire",
         "opening", "new", "expansion", "contraction", "churn", "closing", "opening_arr",
         "required_new_arr", "expected_churn_arr", "closing_arr", "arr", "bookings", "arpu",
         "ltv", "backlog", "average_deal_size", "company_target", "year_capacity",
         "capacity_gap", "year_forecast", "starting_arr", "quota", "pulled_in", "pushed_out",
         "increased", "decreased", "won", "lost", "call", "model", "booked"],
        "money",
    ),
    **dict.fromkeys(
        ["coverage", "capacity_to_target", "forecast_to_target", "expected_attainment", "p_attain", "abs_pct_error", "wape", "share_in_band",
         "churn_rate", "logo_churn_rate", "renewal_rate", "nrr", "grr", "win_rate",
         "deviation_before", "deviation_after", "share_expected_to_attain", "pipeline_coverage",
         "quota_attainment", "target_growth", "reps_expected_to_attain", "bias", "call_error",
         "model_error", "value_add", "beat_model"],
        "pct",
    ),
    **dict.fromkeys(
        ["hires", "headcount", "nodes", "customers", "accounts_before", "accounts_after",
         "accounts_gained", "accounts_lost", "months", "hires_needed", "headcount_end",
         "quarters", "calls", "week", "dso", "sales_cycle"],
        "int",
    ),
    **dict.fromkeys(["quota_to_potential", "potential", "potential_before",
                     "potential_after", "mean_potential"], "num"),
}  # fmt: skip


#: Column headings a reader sees in place of a table's column name (pack and apps); any
#: other column is shown as its name with spaces (:func:`heading`).
HEADINGS: dict[str, str] = {
    "level": "Level",
    "key": "Name",
    "call_type": "Call",
    "week": "Week of quarter",
    "quarters": "Quarters",
    "calls": "Calls",
    "bias": "Bias of the calls",
    "call_error": "Error of the calls",
    "model_error": "Error of the model",
    "value_add": "Value added",
    "beat_model": "Calls beating the model",
    "bar": "Change",
    "opportunity_id": "Deal",
}


def heading(column: Any) -> str:
    """The heading of a table column as a reader sees it.

    Parameters
    ----------
    column : object
        A column name of a table of the pack or the apps.

    Returns
    -------
    str

    Examples
    --------
    >>> heading("call_error"), heading("quota_year")
    ('Error of the calls', 'quota year')
    """
    return HEADINGS.get(str(column), str(column).replace("_", " "))


def headed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its columns renamed to their :func:`heading`.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table; its values are kept as they are.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> list(headed(pd.DataFrame(columns=["key", "beat_model"])).columns)
    ['Name', 'Calls beating the model']
    """
    return frame.rename(columns={c: heading(c) for c in frame.columns})


def cell(kind: str, value: Any, currency: str | None = None) -> str:
    """One table cell as text, by kind (``money``, ``pct``, ``int``, ``num`` or text)."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if kind == "money":
        return money(value, currency)
    if kind == "pct":
        return pct(value)
    if kind == "int":
        return count(value)
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return MISSING
    if kind == "num" or isinstance(value, float | np.floating):
        return number(value)
    return str(value)


# --------------------------------------------------------------------------- spreadsheet text

#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-\d+(\.\d+)?")


def inert_text(value: Any) -> Any:
    """A string a spreadsheet shows as text, never runs: a leading formula trigger gets a ``'``.

    ``=1+1``, ``+1``, ``-1+1``, ``@SUM(1)``, a leading tab or carriage return
    are written ``'=1+1`` ... as OWASP recommends for CSV injection. A plain
    negative number (``-5``, ``-1.25``) stays as it is: a spreadsheet reads it
    as that number and nothing runs. A string already starting with ``'`` gets
    one more, so :func:`restore_text` gives back exactly what was written.
    Anything that is not a string is returned as it is (numbers stay numbers).

    Parameters
    ----------
    value : object
        A cell; anything but a string is returned as it is.

    Returns
    -------
    object

    Examples
    --------
    >>> inert_text("=SUM(A1:A9)"), inert_text("+44 20 7946"), inert_text("Acme"), inert_text(3)
    ("'=SUM(A1:A9)", "'+44 20 7946", 'Acme', 3)
    """
    if (
        isinstance(value, str)
        and value.startswith((*FORMULA_TRIGGERS, "'"))
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def restore_text(value: Any) -> Any:
    """The string :func:`inert_text` was given (for reading back a file revmodel wrote)."""
    if isinstance(value, str) and value.startswith("'"):
        return value[1:]
    return value


def inert_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`inert_text` applied to every text cell and column name.

    Parameters
    ----------
    frame : pd.DataFrame
        A table to write.

    Returns
    -------
    pd.DataFrame

    Examples
    --------
    >>> inert_frame(pd.DataFrame({"account": ["=cmd|calc", "Acme"], "arr": [1.0, 2.0]}))
          account  arr
    0  '=cmd|calc  1.0
    1        Acme  2.0
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(
            out[col].dtype, pd.StringDtype | pd.CategoricalDtype
        ):
            out[col] = out[col].map(inert_text)
    out.columns = [inert_text(str(c)) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, **kwargs: Any) -> Path:
    """Write ``frame`` as CSV with every text cell made inert (:func:`inert_frame`).

    Every CSV revmodel writes for a person to open goes through here.

    Parameters
    ----------
    frame : pd.DataFrame
        The table.
    path : str or Path
        The CSV file.
    **kwargs
        Other options of :meth:`pandas.DataFrame.to_csv` (the index is never written).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_csv(pd.DataFrame({"account": ["=cmd|calc"]}), Path(folder) / "a.csv")
    ...     print(path.read_text(encoding="utf-8"))
    account
    '=cmd|calc
    """
    path = Path(path)
    inert_frame(frame).to_csv(path, index=False, **kwargs)
    return path


# --------------------------------------------------------------------------- paths


def display_path(path: str | Path) -> str:
    """A path as shown to a user or written into a pack: never the machine's absolute path.

    Relative to the project root (:data:`revmodel.config.HOME`) when under it,
    else ``…/<name>`` (the folder's own name only).
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        return p.as_posix()
    for root in (config.HOME, config.ROOT):
        for a, b in ((p, Path(root)), (p.resolve(), Path(root).resolve())):
            try:
                rel = a.relative_to(b).as_posix()
            except ValueError:
                continue
            return rel or "."
    return f"…/{p.name}"


def scrub_paths(text: str, paths: Iterable[str | Path] = ()) -> str:
    """``text`` with every absolute path of this machine replaced by :func:`display_path`'s form.

    Replaced: ``paths`` (e.g. the run's data and reports folders), the project
    root, the Python installation, the user's home (``~``) and the temporary
    folder (``<tmp>``), each as given and resolved, longest first.
    """
    import sys
    import tempfile

    shown: dict[str, str] = {}
    for p in paths:
        for form in (Path(p), Path(p).resolve()):
            if form.is_absolute():
                shown[str(form)] = display_path(p)
    fixed = {
        str(config.HOME): ".",
        str(config.ROOT): ".",
        sys.prefix: "<python>",
        sys.base_prefix: "<python>",
        str(Path.home()): "~",
        tempfile.gettempdir(): "<tmp>",
    }
    for p, label in fixed.items():
        for form in (p, str(Path(p).resolve())):
            shown.setdefault(form, label)
    for p in sorted((k for k in shown if len(k) > 1), key=len, reverse=True):
        text = re.sub(re.escape(p) + r"(?![\w.-])", lambda _m, s=shown[p]: s, text)
    return text
