"""Parse whole columns of exported text into numbers and dates, deciding the format per column.

Numbers (:func:`parse_numbers`): currency symbols and codes (``$12,500.00``,
``€ 1.234,56``, ``USD 1,200``, ``1.200 EUR``), accounting negatives
``(1,200.00)``, trailing minus ``1200-``, spaces and apostrophes as thousands
separators. Whether ``,`` or ``.`` is the decimal separator is decided per
column from its values: ``51.127,31`` and ``1.234.567`` can only be European,
``1,234.56`` only English; a column holding only values like ``1.234`` follows
the file (European in a ``;``-delimited export). A value against the
column's convention is reported, never read the other way.

Dates (:func:`parse_dates`): ISO dates and timestamps (a time zone is
ignored: the date is the one written), ``DD/MM/YYYY`` or ``MM/DD/YYYY``
decided from the column's values (a first number above 12 means day first;
dotted ``20.10.2016`` is day first), month names, compact ``20260131``, epoch
seconds and milliseconds, and Excel serial day numbers; or exactly the
mapping's ``date_format`` (strftime, ``epoch_s``, ``epoch_ms``, ``excel``).

Every function works on whole columns with vectorised operations and returns
the parsed values and a list of :class:`Issue` (rows that failed and why).

Example
-------
>>> import pandas as pd
>>> values, issues = parse_numbers(pd.Series(["1.234", "51.127,31", "(1.200,00)"]))
>>> values.tolist(), issues
([1234.0, 51127.31, -1200.0], [])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Date formats a mapping may name besides strftime patterns.
SPECIAL_DATE_FORMATS: tuple[str, ...] = ("epoch_s", "epoch_ms", "excel")
#: Day 0 of Excel's serial dates (1900 system, with its leap-year quirk).
EXCEL_EPOCH = pd.Timestamp("1899-12-30")


@dataclass(frozen=True)
class Issue:
    """Rows of a column that failed one rule; ``reason`` is per row in the quarantine."""

    rule: str
    rows: pd.Index
    singular: str
    plural: str
    reason: str


class AmbiguousDates(ValueError):
    """Every slashed date of a column reads both day-first and month-first."""

    def __init__(self, value: str, row: int):
        super().__init__(value)
        self.value, self.row = value, row


# ---------------------------------------------------------------------------
# whole-column text operations, in Arrow (RE2 regular expressions)


def _arrow(text: pd.Series) -> pa.Array:
    return pa.array(text, type=pa.large_string(), from_pandas=True)


def matches(text: pd.Series, pattern: str) -> pd.Series:
    """Boolean Series: ``pattern`` (RE2) found in the value; False where missing."""
    found = pc.match_substring_regex(_arrow(text), pattern)
    return pd.Series(
        pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=text.index, dtype=bool
    )


def replace(text: pd.Series, pattern: str, replacement: str) -> pd.Series:
    """Text with every match of ``pattern`` (RE2) replaced; missing stays missing."""
    out = pc.replace_substring_regex(_arrow(text), pattern, replacement)
    return pd.Series(out.to_pandas().array, index=text.index, dtype="str")


def _cast_floats(text: pd.Series) -> pd.Series | None:
    """Plain numbers, or None when any present value is not one (Arrow's cast)."""
    try:
        values = pc.cast(_arrow(text), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pd.Series(values.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")


# ---------------------------------------------------------------------------
# numbers

_CURRENCY = r"[$€£¥₹]|\b[A-Z]{3}\b|\bkr\b|\bFr\.?"
_SEPARATORS = "[\\s\u00a0\u202f']"  # spaces, no-break spaces, apostrophes
_EU_CERTAIN = (
    r"^[-+]?\d{1,3}(?:\.\d{3})+,\d+$|^[-+]?\d+,(?:\d{1,2}|\d{4,})$|^[-+]?\d{1,3}(?:\.\d{3}){2,}$"
    r"|^[-+]?0,\d+$"
)
_US_CERTAIN = (
    r"^[-+]?\d{1,3}(?:,\d{3})+\.\d+$|^[-+]?\d+\.(?:\d{1,2}|\d{4,})$|^[-+]?\d{1,3}(?:,\d{3}){2,}$"
    r"|^[-+]?0\.\d+$"
)
_NON_FINITE = r"(?i)^[-+]?(?:inf|infinity|nan)$"


def number_convention(cleaned: pd.Series, european_hint: bool = False) -> str:
    """``"eu"`` (decimal comma) or ``"us"`` (decimal point) for a column of cleaned numbers.

    Example
    -------
    >>> number_convention(pd.Series(["1.234", "51.127,31"]))
    'eu'
    >>> number_convention(pd.Series(["1.234"]), european_hint=True)
    'eu'
    """
    eu = int(matches(cleaned, _EU_CERTAIN).sum())
    us = int(matches(cleaned, _US_CERTAIN).sum())
    if eu > us:
        return "eu"
    if us:
        return "us"
    return "eu" if european_hint else "us"


def _clean(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Text without currency and grouping spaces; and which values are negative by notation."""
    s = replace(replace(text, _CURRENCY, ""), _SEPARATORS, "")
    paren = matches(s, r"^-?\(.*\)$")
    trailing = matches(s, r"^[\d.,]+-$")
    s = replace(replace(s, r"^-?\((.*)\)$", r"\1"), r"-$", "")
    return s, paren | trailing


def parse_numbers(
    text: pd.Series,
    *,
    whole: bool = False,
    european_hint: bool = False,
    max_abs: float = float("inf"),
) -> tuple[pd.Series, list[Issue]]:
    """Numbers from a column of text (missing = ``NA``); see the module docstring.

    Parameters
    ----------
    text : Series of str
        Stripped text, missing values ``NA``.
    whole : bool
        Values must be whole numbers (counts).
    european_hint : bool
        The file is European (``;``-delimited): a column whose values read
        either way (``1.234``) uses the decimal comma.
    max_abs : float
        Largest plausible absolute value; larger ones are reported.

    Returns
    -------
    (Series of float64, list of Issue)
        Values (``NaN`` where missing or failed) and the failures.
    """
    present = text.notna()
    cast = _cast_floats(text)
    if cast is None:
        values = pd.to_numeric(text, errors="coerce").astype("float64")
    else:
        values = cast
    plain_ok = cast is not None or not (present & values.isna()).any()
    needs_detection = not plain_ok or (european_hint and bool(matches(text, r"[.,]").any()))
    issues: list[Issue] = []
    against = pd.Series(False, index=text.index)
    if needs_detection:
        cleaned, negative = _clean(text)
        conv = number_convention(cleaned.dropna(), european_hint)
        if conv == "eu":
            against = matches(cleaned, _US_CERTAIN)
            norm = replace(replace(cleaned, r"\.", ""), ",", ".")
        else:
            against = matches(cleaned, _EU_CERTAIN)
            norm = replace(cleaned, ",", "")
        norm = norm.where(matches(norm, r"(?i)^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$"))
        values = pd.to_numeric(norm, errors="coerce").astype("float64")
        values = values.where(~negative, -values.abs())
        values[against] = np.nan
        if against.any():
            kept = "decimal comma" if conv == "eu" else "decimal point"
            other = "decimal point" if conv == "eu" else "decimal comma"
            issues.append(
                Issue(
                    "number_format",
                    text.index[against],
                    f"row with a number written with a {other} while the column uses a {kept}",
                    f"rows with numbers written with a {other} while the column uses a {kept}",
                    f"number format ({other}) differs from the column's ({kept}); ambiguous",
                )
            )
    suspect = present & ~np.isfinite(values.to_numpy())
    non_finite = suspect & matches(text.where(suspect), _NON_FINITE) if suspect.any() else suspect
    values[non_finite] = np.nan
    finite = np.isfinite(values.to_numpy())
    failed = present & ~pd.Series(finite, index=text.index) & ~against & ~non_finite
    if non_finite.any() or (~finite & values.notna()).any():
        bad = non_finite | (values.notna() & ~pd.Series(finite, index=text.index))
        issues.append(
            Issue(
                "non_finite",
                text.index[bad],
                "row with a value that is not a finite number",
                "rows with values that are not finite numbers",
                "not a finite number",
            )
        )
        values[bad] = np.nan
        failed &= ~bad
    if failed.any():
        issues.append(
            Issue(
                "number",
                text.index[failed],
                "row with a value that is not a number",
                "rows with values that are not numbers",
                "not a number",
            )
        )
    issues.extend(_range_issues(values, whole, max_abs))
    return values, issues


def check_numbers(values: pd.Series, *, whole: bool = False, max_abs: float = float("inf")):
    """Issues of numbers already typed (Parquet, Excel): non-finite, too large, not whole."""
    values = values.astype("float64")
    issues: list[Issue] = []
    bad = values.notna() & ~np.isfinite(values)
    if bad.any():
        issues.append(
            Issue(
                "non_finite",
                values.index[bad],
                "row with a value that is not a finite number",
                "rows with values that are not finite numbers",
                "not a finite number",
            )
        )
        values = values.mask(bad)
    issues.extend(_range_issues(values, whole, max_abs))
    return values, issues


def _range_issues(values: pd.Series, whole: bool, max_abs: float) -> list[Issue]:
    issues: list[Issue] = []
    huge = values.abs() > max_abs
    if huge.any():
        limit = f"{max_abs:,.0f}"
        issues.append(
            Issue(
                "too_large",
                values.index[huge],
                f"row with a value beyond ±{limit}",
                f"rows with values beyond ±{limit}",
                f"beyond the plausible limit of ±{limit}",
            )
        )
        values[huge] = np.nan
    if whole:
        fraction = values.notna() & (np.mod(values.fillna(0), 1) != 0)
        if fraction.any():
            issues.append(
                Issue(
                    "whole",
                    values.index[fraction],
                    "row with a value that is not a whole number",
                    "rows with values that are not whole numbers",
                    "not a whole number",
                )
            )
            values[fraction] = np.nan
    return issues


# ---------------------------------------------------------------------------
# dates

_ISO = r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?$"
_SLASHED = r"^(\d{1,2})([-/.])(\d{1,2})[-/.](\d{2}|\d{4})(?:[T ,]+\d{1,2}:\d{2}.*)?$"
_NUMERIC = r"^\d+(?:\.\d+)?$"


def _empty_dates(index: pd.Index) -> pd.Series:
    return pd.Series(pd.NaT, index=index, dtype="datetime64[us]")


def compose_dates(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    """Dates from text year (2 or 4 digits), month and day; invalid ones ``NaT``."""
    century = pd.Series(np.where(year.astype("float64") < 69, "20", "19"), index=year.index)
    year = year.where(year.str.len() == 4, century + year)
    text = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[us]")


def numeric_dates(values: pd.Series, unit: str | None = None) -> pd.Series:
    """Dates from numbers: epoch seconds, milliseconds, Excel serial days or ``YYYYMMDD``.

    Without ``unit`` each value's magnitude decides: 10,000-99,999 Excel
    days; 8 digits 19000101-21001231 ``YYYYMMDD``; 1e8-1e11 epoch seconds;
    1e11-1e14 epoch milliseconds. Other values are ``NaT``.

    Example
    -------
    >>> numeric_dates(pd.Series([1767225600000.0, 1767225600.0, 46023.0, 20260101.0])).dt.strftime("%Y-%m-%d").tolist()
    ['2026-01-01', '2026-01-01', '2026-01-01', '2026-01-01']
    """
    v = values.astype("float64")
    out = _empty_dates(v.index)
    if unit is None:
        excel = (v >= 1e4) & (v < 1e5)
        compact = (v >= 19000101) & (v <= 21001231) & (np.mod(v, 1) == 0)
        secs = (v >= 1e8) & (v < 1e11)
        ms = (v >= 1e11) & (v < 1e14)
    else:
        false = pd.Series(False, index=v.index)
        excel = v.notna() & (v >= 0) & (v < 2_958_466) if unit == "excel" else false
        secs = v.notna() & (v.abs() < 1e11) if unit == "epoch_s" else false
        ms = v.notna() & (v.abs() < 1e14) if unit == "epoch_ms" else false
        compact = false
    if excel.any():
        days = np.floor(v[excel]).astype("int64")
        out[excel] = EXCEL_EPOCH + pd.to_timedelta(days, unit="D")
    if compact.any():
        text = v[compact].astype("int64").astype("str")
        out[compact] = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    if secs.any():
        out[secs] = pd.to_datetime(np.floor(v[secs]).astype("int64"), unit="s").dt.floor("D")
    if ms.any():
        out[ms] = pd.to_datetime(np.floor(v[ms]).astype("int64"), unit="ms").dt.floor("D")
    return out


def _slash_name(order: str | None) -> str:
    return {"dmy": "DD/MM/YYYY", "mdy": "MM/DD/YYYY"}.get(order or "", "DD/MM/YYYY or MM/DD/YYYY")


def _with_format(
    text: pd.Series, rest: pd.Series, date_format: str, parsed: pd.Series
) -> tuple[pd.Series, list[Issue]]:
    if date_format in SPECIAL_DATE_FORMATS:
        sub = text[rest]
        nums = pd.to_numeric(sub.where(matches(sub, r"^-?\d+(\.\d+)?$")), errors="coerce")
        parsed[rest] = numeric_dates(nums, date_format)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed[rest] = pd.to_datetime(text[rest], format=date_format, errors="coerce")
    bad = rest & parsed.isna()
    issues = []
    if bad.any():
        issues.append(
            Issue(
                "date_format",
                text.index[bad],
                f"row with a date not in date_format '{date_format}'",
                f"rows with dates not in date_format '{date_format}'",
                f"not a date in date_format '{date_format}'",
            )
        )
    return parsed, issues


def parse_dates(
    text: pd.Series,
    date_format: str | None = None,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> tuple[pd.Series, list[Issue]]:
    """Dates (``datetime64[ns]``, midnight) from a column of text; see the module docstring.

    Parameters
    ----------
    text : Series of str
        Stripped text, missing ``NA``.
    date_format : str, optional
        strftime pattern, ``epoch_s``, ``epoch_ms`` or ``excel``; ISO dates are
        always accepted too.
    window : (Timestamp, Timestamp), optional
        Plausible dates, both inclusive; dates outside are reported and ``NaT``.

    Raises
    ------
    AmbiguousDates
        Without ``date_format``, when every slashed date of the column reads
        both ways (``03/04/2025``).
    """
    parsed = _plain_iso_dates(text)
    if parsed is not None:
        return _finish(parsed, [], window)
    present = text.notna()
    parsed = _empty_dates(text.index)
    issues: list[Issue] = []
    if present.any():
        parsed, issues, skip = _parse_present(text, present, parsed, date_format)
        issues.extend(_unparseable(text, parsed, skip))
    return _finish(parsed, issues, window)


def _plain_iso_dates(text: pd.Series) -> pd.Series | None:
    """Every present value a valid ``YYYY-MM-DD`` date: the dates (Arrow's cast, which
    refuses 2025-02-30); else None, and the column is read value by value below."""
    try:
        days = pc.cast(_arrow(text), pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    values = days.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    return pd.Series(values, index=text.index)


def _iso_dates(text: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` values parsed (Arrow's strptime); others ``NaT``."""
    arr = _arrow(text)
    iso = pc.strptime(arr, format="%Y-%m-%d", unit="us", error_is_null=True)
    values = iso.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    # strptime rolls a day past the month's end over (2025-02-30 -> 2025-03-02): refuse it.
    # A rolled date lands on day 1-3, so only those rows are read again for the day written.
    early = pc.fill_null(pc.less_equal(pc.day(iso), 3), False)
    maybe = np.flatnonzero(early.to_numpy(zero_copy_only=False))
    if len(maybe):
        written = pc.struct_field(pc.extract_regex(arr.take(maybe), r"-(?P<day>\d+)\s*$"), "day")
        rolled = pc.not_equal(pc.day(iso.take(maybe)), pc.cast(written, pa.int64()))
        values[maybe[pc.fill_null(rolled, False).to_numpy(zero_copy_only=False)]] = np.datetime64(
            "NaT"
        )
    return pd.Series(values, index=text.index)


def _parse_present(text, present, parsed, date_format):
    parsed = _iso_dates(text)
    lengths = pc.binary_length(_arrow(text)).to_numpy(zero_copy_only=False)
    strict = parsed.notna() & pd.Series(lengths == 10, index=text.index)
    parsed = parsed.where(strict)
    skip = pd.Series(False, index=text.index)
    if strict.sum() == present.sum():
        return parsed, [], skip
    # regex extraction is slow: only on rows that are not plain YYYY-MM-DD
    loose = text[present & ~strict].str.extract(_ISO).dropna()
    parsed[loose.index] = compose_dates(loose[0], loose[1], loose[2])
    iso = strict | text.index.isin(loose.index)
    rest = present & ~iso
    if date_format is not None:
        parsed, issues = _with_format(text, rest, date_format, parsed)
        skip = rest & parsed.isna()
        return parsed, issues, skip
    issues: list[Issue] = []
    sl = text[rest].str.extract(_SLASHED)
    sl = sl[sl[0].notna()]
    if len(sl):
        skip = _slashed(text, iso, sl, parsed, issues)
    rest = rest & ~text.index.isin(sl.index)
    numeric = rest & matches(text, _NUMERIC)
    if numeric.any():
        parsed[numeric] = numeric_dates(pd.to_numeric(text[numeric], errors="coerce"))
    # month names ("5 Jan 2026", "January 5, 2026"); not bare numbers
    named = rest & ~numeric & matches(text, r"[A-Za-z]")
    if named.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guess = pd.to_datetime(text[named], format="mixed", errors="coerce", utc=True)
        parsed[named] = guess.dt.tz_localize(None).dt.normalize().astype("datetime64[us]")
    return parsed, issues, skip


def _slashed(text, iso, sl, parsed, issues) -> pd.Series:
    """Parse DD/MM/YYYY or MM/DD/YYYY rows (order from the column); returns rows set aside."""
    first, second = sl[0].astype(int), sl[2].astype(int)
    day_first, month_first = (first > 12) & (second <= 12), (second > 12) & (first <= 12)
    n_dmy, n_mdy = int(day_first.sum()), int(month_first.sum())
    order = "dmy" if n_dmy >= n_mdy and n_dmy else "mdy" if n_mdy else None
    if order is None and ((first == second).all() or (sl[1] == ".").all()):
        order = "dmy"  # 05/05/2026 reads the same either way; dotted dates are day first
    minority = pd.Series(False, index=text.index)
    n_iso, n_slashed = int(iso.sum()), len(sl)

    def mixed(rows: pd.Index, other: str, kept: str) -> None:
        minority[rows] = True
        issues.append(
            Issue(
                "mixed",
                rows,
                f"row with a date in {other} while the column is mostly {kept}",
                f"rows with dates in {other} while the column is mostly {kept}",
                f"date format {other} differs from the column's {kept} (ambiguous)",
            )
        )

    if n_iso and n_iso >= n_slashed:
        mixed(sl.index, _slash_name(order), "YYYY-MM-DD")
        parsed[minority] = pd.NaT
        return minority
    if order is None:
        raise AmbiguousDates(str(text[sl.index[0]]), int(sl.index[0]))
    if n_iso:
        mixed(iso[iso].index, "YYYY-MM-DD", _slash_name(order))
    against = month_first if order == "dmy" else day_first
    if against.any():
        mixed(
            against[against].index,
            _slash_name("mdy" if order == "dmy" else "dmy"),
            _slash_name(order),
        )
    use = ~against
    d, m = (sl[0], sl[2]) if order == "dmy" else (sl[2], sl[0])
    parsed[sl.index[use]] = compose_dates(sl[3][use], m[use], d[use])
    parsed[minority] = pd.NaT
    return minority


def _unparseable(text, parsed, skip) -> list[Issue]:
    bad = text.notna() & parsed.isna() & ~skip
    if not bad.any():
        return []
    return [
        Issue(
            "date",
            text.index[bad],
            "row with an unparseable date",
            "rows with unparseable dates",
            "unparseable date",
        )
    ]


def check_dates(values: pd.Series, window=None) -> tuple[pd.Series, list[Issue]]:
    """Dates already typed (Parquet, Excel): time zone dropped, midnight, window checked."""
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    return _finish(values.astype("datetime64[us]").dt.normalize(), [], window)


def _in_unit(when: pd.Timestamp, values: np.ndarray) -> np.datetime64:
    return np.datetime64(when.to_datetime64(), np.datetime_data(values.dtype)[0])


def _finish(parsed: pd.Series, issues: list[Issue], window) -> tuple[pd.Series, list[Issue]]:
    if window is not None:
        lo, hi = window
        v = parsed.to_numpy()
        # in the values' own unit (a finer one could overflow); NaT compares False
        outside = (v < _in_unit(lo, v)) | (v > _in_unit(hi, v))
        if outside.any():
            outside = pd.Series(outside, index=parsed.index)
            span = f"{lo:%Y-%m-%d} to {hi:%Y-%m-%d}"
            issues.append(
                Issue(
                    "date_window",
                    parsed.index[outside],
                    f"row with a date outside {span}",
                    f"rows with dates outside {span}",
                    f"date outside the plausible window {span}",
                )
            )
            parsed = parsed.mask(outside)
    v = parsed.to_numpy()
    fits = (v >= _in_unit(pd.Timestamp.min, v)) & (v <= _in_unit(pd.Timestamp.max, v))
    if not (fits | np.isnat(v)).all():
        parsed = parsed.where(pd.Series(fits, index=parsed.index) | parsed.isna())
    return parsed.astype("datetime64[ns]"), issues


__all__ = [
    "AmbiguousDates",
    "Issue",
    "SPECIAL_DATE_FORMATS",
    "check_dates",
    "check_numbers",
    "compose_dates",
    "number_convention",
    "numeric_dates",
    "parse_dates",
    "parse_numbers",
]
