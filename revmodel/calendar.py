"""Fiscal calendar: months to fiscal months, quarters and years, and 4-4-5 week calendars.

Conventions
-----------
A fiscal year starts on the first day of month ``start_month`` (1-12, default
:data:`revmodel.config.FISCAL_YEAR_START`) and runs twelve calendar months.
Fiscal months are numbered 1-12 from the start month; fiscal quarters 1-4
hold fiscal months 1-3, 4-6, 7-9 and 10-12.

A fiscal year is named by the calendar year in which it **ends**
(``naming="end"``, the default) or in which it **starts** (``naming="start"``).
With ``start_month=1`` both namings give the calendar year.

Labels are ``FY2027-Q1`` for a quarter and ``FY2027`` for a year: ``FY``, a
four-digit year, and for quarters ``-Q`` and the quarter number. Sorting the
labels as strings sorts them in time.

Examples, ``start_month=2`` (February):

=============  ==================  ====================
month          ``naming="end"``    ``naming="start"``
=============  ==================  ====================
2026-01        FY2026-Q4           FY2025-Q4
2026-02        FY2027-Q1           FY2026-Q1
2026-04        FY2027-Q1           FY2026-Q1
2026-05        FY2027-Q2           FY2026-Q2
2027-01        FY2027-Q4           FY2026-Q4
=============  ==================  ====================

so under ``"end"`` FY2027 runs Feb 2026 .. Jan 2027. With ``start_month=4``
and ``"end"``, Mar 2026 is FY2026-Q4 and Apr 2026 is FY2027-Q1. With
``start_month=1``, Dec 2026 is FY2026-Q4 under either naming.

Week-based (4-4-5) calendars
----------------------------
:func:`weeks_calendar` and :func:`week_period` build retail-style calendars
of whole weeks, using the *last day* method: a fiscal year ends on the last
``week_end`` weekday (e.g. Saturday) of the month before ``start_month``, in
the calendar year where the matching monthly fiscal year ends, and starts the
day after the previous year's end. A year is therefore 52 weeks (364 days) or
53 weeks (371 days). Its twelve periods follow ``pattern`` (``(4, 4, 5)``,
``(4, 5, 4)`` or ``(5, 4, 4)`` weeks, repeated for each quarter); the 53rd
week, when there is one, goes to period 12. Example: ``start_month=2``,
``week_end="SAT"``, ``naming="end"``: FY2025 ends Sat 2025-01-25 and FY2026
ends Sat 2026-01-31, so FY2026 runs 2025-01-26 .. 2026-01-31 (53 weeks).

Every function is vectorised over numpy and accepts a
:class:`pandas.DatetimeIndex`, a ``datetime64`` array, a
:class:`xarray.DataArray` of months (any day of the month counts as that
month), or a single date.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import xarray as xr

from revmodel.config import FISCAL_YEAR_NAMING, FISCAL_YEAR_START
from revmodel.errors import ParameterError

__all__ = [
    "FiscalCalendar",
    "FiscalPeriod",
    "current_quarter",
    "fiscal_quarter",
    "fiscal_year",
    "next_quarter",
    "next_year",
    "parse_period",
    "period_months",
    "quarter_label",
    "quarter_months",
    "weeks_calendar",
    "year_label",
]

NAMINGS = ("end", "start")
PERIODS = ("month", "fiscal_quarter", "fiscal_year")
HOWS = ("sum", "mean", "min", "max", "first", "last")
PATTERNS = ((4, 4, 5), (4, 5, 4), (5, 4, 4))
WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

#: Absolute month number (year * 12 + month - 1) of 1970-01, the numpy datetime64 epoch.
_EPOCH_MONTH = 1970 * 12
_LABEL = re.compile(r"FY(\d{4})(?:-Q([1-4]))?")
#: Years a week calendar may span (pandas nanosecond timestamps end in 2262).
_WEEK_YEARS = (1700, 2200)

Obj = TypeVar("Obj", xr.Dataset, xr.DataArray)


class FiscalPeriod(NamedTuple):
    """A parsed period label: ``FiscalPeriod(2027, 1)`` is FY2027-Q1, ``FiscalPeriod(2027, None)`` FY2027.

    Parameters
    ----------
    year : int
        Fiscal year name [e.g. 2027].
    quarter : int or None
        Fiscal quarter [1-4]; None for the whole year.

    Examples
    --------
    >>> FiscalPeriod(2027, 1).label
    'FY2027-Q1'
    >>> parse_period("FY2027")
    FiscalPeriod(year=2027, quarter=None)
    """

    year: int
    quarter: int | None

    @property
    def label(self) -> str:
        """The label, ``FY2027-Q1`` or ``FY2027``."""
        return (
            f"FY{self.year:04d}" if self.quarter is None else f"FY{self.year:04d}-Q{self.quarter}"
        )


# ----------------------------------------------------------------------------- validation


def _check_start_month(start_month: Any) -> int:
    if isinstance(start_month, bool) or not isinstance(start_month, int | np.integer):
        raise ParameterError(
            f"start_month must be a whole month number 1-12 (1 = January): got {start_month!r}"
        )
    if not 1 <= start_month <= 12:
        raise ParameterError(
            f"start_month must be a whole month number 1-12 (1 = January): got {start_month!r}"
        )
    return int(start_month)


def _check_naming(naming: Any) -> str:
    if naming not in NAMINGS:
        raise ParameterError(
            f"naming must be 'end' or 'start' (name a fiscal year by the calendar year in which "
            f"it ends or starts): got {naming!r}"
        )
    return naming


def _year_offset(start_month: int, naming: str) -> int:
    """Fiscal year name minus the calendar year of its first month."""
    return 1 if naming == "end" and start_month != 1 else 0


def _datetimes(values: Any, name: str) -> np.ndarray:
    """``values`` as a datetime64 array of the same shape (time-zone aware: local wall time)."""
    if isinstance(values, xr.DataArray):
        values = values.values
    if isinstance(values, pd.Series | pd.Index):
        try:
            index = pd.DatetimeIndex(values)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"{name} must hold dates (a DatetimeIndex, datetime64 array or DataArray of "
                f"months): {exc}"
            ) from None
        if index.tz is not None:
            index = index.tz_localize(None)
        values = index.values
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        try:
            index = pd.DatetimeIndex(pd.to_datetime(arr.ravel()))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ParameterError(
                f"{name} must hold dates (a DatetimeIndex, datetime64 array or DataArray of "
                f"months): {exc}"
            ) from None
        if index.tz is not None:
            index = index.tz_localize(None)
        arr = index.values.reshape(arr.shape)
    missing = np.isnat(arr)
    if missing.any():
        position = int(np.flatnonzero(missing.ravel())[0])
        raise ParameterError(
            f"{name} holds a missing date (NaT) at position {position}: drop or fill it "
            f"before mapping to the fiscal calendar"
        )
    return arr


def _absolute_months(months: Any, name: str = "months") -> np.ndarray:
    """Absolute month numbers ``year * 12 + month - 1`` [int64], shaped like ``months``."""
    arr = _datetimes(months, name)
    return arr.astype("datetime64[M]").astype(np.int64) + _EPOCH_MONTH


def _month_dates(absolute: np.ndarray | int) -> np.ndarray:
    """First-of-month datetime64[ns] dates of absolute month numbers."""
    rel = np.asarray(absolute, dtype=np.int64) - _EPOCH_MONTH
    return rel.astype("datetime64[M]").astype("datetime64[ns]")


def _parts(months: Any, start_month: int, naming: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(absolute month, fiscal month 1-12, fiscal year name) arrays."""
    start_month = _check_start_month(start_month)
    naming = _check_naming(naming)
    absolute = _absolute_months(months)
    shifted = absolute - (start_month - 1)
    fmonth = shifted % 12 + 1
    fyear = shifted // 12 + _year_offset(start_month, naming)
    return absolute, fmonth, fyear


# ----------------------------------------------------------------------------- month mapping


def fiscal_month(months: Any, start_month: int = FISCAL_YEAR_START) -> np.ndarray:
    """Fiscal month of each month.

    Parameters
    ----------
    months : DatetimeIndex, datetime64 array, DataArray or date
        Months [any day of the month].
    start_month : int
        First calendar month of the fiscal year [1-12].

    Returns
    -------
    np.ndarray
        Fiscal month [1-12, int64], shaped like ``months``.
    """
    return _parts(months, start_month, "end")[1]


def fiscal_quarter(months: Any, start_month: int = FISCAL_YEAR_START) -> np.ndarray:
    """Fiscal quarter of each month.

    Parameters
    ----------
    months : DatetimeIndex, datetime64 array, DataArray or date
        Months [any day of the month].
    start_month : int
        First calendar month of the fiscal year [1-12].

    Returns
    -------
    np.ndarray
        Fiscal quarter [1-4, int64], shaped like ``months``.

    Examples
    --------
    >>> fiscal_quarter(pd.DatetimeIndex(["2026-10-01", "2026-11-01", "2027-02-01"]), start_month=11)
    array([4, 1, 2])
    """
    return (_parts(months, start_month, "end")[1] - 1) // 3 + 1


def fiscal_year(
    months: Any, start_month: int = FISCAL_YEAR_START, naming: str = FISCAL_YEAR_NAMING
) -> np.ndarray:
    """Fiscal year of each month.

    Parameters
    ----------
    months : DatetimeIndex, datetime64 array, DataArray or date
        Months [any day of the month].
    start_month : int
        First calendar month of the fiscal year [1-12].
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Returns
    -------
    np.ndarray
        Fiscal year [int64, e.g. 2027], shaped like ``months``.

    Examples
    --------
    >>> fiscal_year(pd.DatetimeIndex(["2026-01-01", "2026-02-01"]), start_month=2).tolist()
    [2026, 2027]
    """
    return _parts(months, start_month, naming)[2]


def _labels(codes: np.ndarray, fmt: str) -> np.ndarray:
    """Format integer codes once per distinct value (months repeat across a cube)."""
    unique, inverse = np.unique(codes.ravel(), return_inverse=True)
    text = np.array([fmt.format(code // 4, code % 4 + 1) for code in unique.tolist()], dtype=str)
    return text[inverse].reshape(codes.shape)


def quarter_label(
    months: Any, start_month: int = FISCAL_YEAR_START, naming: str = FISCAL_YEAR_NAMING
) -> np.ndarray:
    """Fiscal quarter label of each month, e.g. ``"FY2027-Q1"``.

    Parameters
    ----------
    months : DatetimeIndex, datetime64 array, DataArray or date
        Months [any day of the month].
    start_month : int
        First calendar month of the fiscal year [1-12].
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Returns
    -------
    np.ndarray
        Labels [str], shaped like ``months``.

    Examples
    --------
    >>> quarter_label(pd.DatetimeIndex(["2026-10-01", "2026-11-01"]), start_month=11).tolist()
    ['FY2026-Q4', 'FY2027-Q1']
    >>> quarter_label(pd.Timestamp("2026-11-15"), start_month=11, naming="start").tolist()
    'FY2026-Q1'
    """
    _, fmonth, fyear = _parts(months, start_month, naming)
    return _labels(fyear * 4 + (fmonth - 1) // 3, "FY{0:04d}-Q{1}")


def year_label(
    months: Any, start_month: int = FISCAL_YEAR_START, naming: str = FISCAL_YEAR_NAMING
) -> np.ndarray:
    """Fiscal year label of each month, e.g. ``"FY2027"``.

    Parameters
    ----------
    months : DatetimeIndex, datetime64 array, DataArray or date
        Months [any day of the month].
    start_month : int
        First calendar month of the fiscal year [1-12].
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Returns
    -------
    np.ndarray
        Labels [str], shaped like ``months``.

    Examples
    --------
    >>> year_label(pd.DatetimeIndex(["2026-10-01", "2026-11-01"]), start_month=11).tolist()
    ['FY2026', 'FY2027']
    """
    _, _, fyear = _parts(months, start_month, naming)
    return _labels(fyear * 4, "FY{0:04d}")


def month_coords(
    months: Any, start_month: int = FISCAL_YEAR_START, naming: str = FISCAL_YEAR_NAMING
) -> dict[str, np.ndarray]:
    """Fiscal labels to attach as coordinates on a cube's ``month`` dimension.

    Returns
    -------
    dict
        ``{"fiscal_quarter": labels, "fiscal_year": labels}`` [str arrays shaped like ``months``].
    """
    _, fmonth, fyear = _parts(months, start_month, naming)
    return {
        "fiscal_quarter": _labels(fyear * 4 + (fmonth - 1) // 3, "FY{0:04d}-Q{1}"),
        "fiscal_year": _labels(fyear * 4, "FY{0:04d}"),
    }


def assign_fiscal_coords(
    obj: Obj,
    start_month: int = FISCAL_YEAR_START,
    naming: str = FISCAL_YEAR_NAMING,
    dim: str = "month",
) -> Obj:
    """A copy of ``obj`` with ``fiscal_quarter(month)`` and ``fiscal_year(month)`` coordinates.

    The attrs ``fiscal_year_start`` and ``fiscal_year_naming`` record the calendar used.
    """
    if dim not in obj.dims:
        raise ParameterError(
            f"dim {dim!r} is not a dimension of the object: it has {list(obj.dims)}"
        )
    coords = month_coords(obj[dim].values, start_month, naming)
    out = obj.assign_coords({name: (dim, labels) for name, labels in coords.items()})
    return out.assign_attrs(fiscal_year_start=int(start_month), fiscal_year_naming=naming)


def quarter_start(months: Any, start_month: int = FISCAL_YEAR_START) -> np.ndarray:
    """First month of the fiscal quarter holding each month [datetime64[ns], first of month]."""
    absolute, fmonth, _ = _parts(months, start_month, "end")
    return _month_dates(absolute - (fmonth - 1) % 3)


def year_start(months: Any, start_month: int = FISCAL_YEAR_START) -> np.ndarray:
    """First month of the fiscal year holding each month [datetime64[ns], first of month]."""
    absolute, fmonth, _ = _parts(months, start_month, "end")
    return _month_dates(absolute - (fmonth - 1))


def current_quarter(
    as_of: Any, start_month: int = FISCAL_YEAR_START, naming: str = FISCAL_YEAR_NAMING
) -> str:
    """Label of the fiscal quarter holding the month ``as_of`` (one date), e.g. ``"FY2027-Q1"``.

    Parameters
    ----------
    as_of : date
        One date (a string, Timestamp or datetime64).
    start_month : int
        First calendar month of the fiscal year [1-12].
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Returns
    -------
    str

    Examples
    --------
    >>> current_quarter(ds.attrs["as_of"], start_month=ds.attrs["fiscal_year_start"])
    'FY2026-Q4'
    """
    labels = quarter_label(as_of, start_month, naming)
    if labels.size != 1:
        raise ParameterError(f"as_of must be one date: got {labels.size} dates")
    return str(labels.ravel()[0])


# ----------------------------------------------------------------------------- labels


def parse_period(label: Any) -> FiscalPeriod:
    """Parse ``"FY2027-Q1"`` into ``FiscalPeriod(2027, 1)`` and ``"FY2027"`` into ``FiscalPeriod(2027, None)``.

    Parameters
    ----------
    label : str
        A quarter (``FY2027-Q1``) or year (``FY2027``) label.

    Returns
    -------
    FiscalPeriod

    Raises
    ------
    ParameterError
        When ``label`` is not such a label.

    Examples
    --------
    >>> parse_period("FY2027-Q1")
    FiscalPeriod(year=2027, quarter=1)
    >>> parse_period("2027 Q1")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: '2027 Q1' is not a fiscal period label: use FY2027-Q1 or FY2027
    """
    match = _LABEL.fullmatch(label) if isinstance(label, str) else None
    if match is None:
        raise ParameterError(f"{label!r} is not a fiscal period label: use FY2027-Q1 or FY2027")
    quarter = match.group(2)
    return FiscalPeriod(int(match.group(1)), None if quarter is None else int(quarter))


def quarter_months(
    label: str, start_month: int = FISCAL_YEAR_START, naming: str = FISCAL_YEAR_NAMING
) -> pd.DatetimeIndex:
    """The months of a fiscal period.

    Parameters
    ----------
    label : str
        ``"FY2027-Q1"`` (a quarter: 3 months) or ``"FY2027"`` (a year: 12 months).
    start_month : int
        First calendar month of the fiscal year [1-12].
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Returns
    -------
    pd.DatetimeIndex
        First-of-month dates [datetime64[ns]], named ``month``.

    Examples
    --------
    >>> quarter_months("FY2027-Q1", start_month=2).strftime("%Y-%m").tolist()
    ['2026-02', '2026-03', '2026-04']
    """
    period = parse_period(label)
    start_month = _check_start_month(start_month)
    naming = _check_naming(naming)
    first = (period.year - _year_offset(start_month, naming)) * 12 + start_month - 1
    if period.quarter is None:
        absolute = first + np.arange(12)
    else:
        absolute = first + 3 * (period.quarter - 1) + np.arange(3)
    return pd.DatetimeIndex(_month_dates(absolute), name="month")


def period_months(label: str, attrs: Any) -> pd.DatetimeIndex:
    """Months of a fiscal period (``FY2027-Q1`` or ``FY2027``) in the calendar of a cube's attrs.

    Parameters
    ----------
    label : str
        A quarter (``FY2027-Q1``) or year (``FY2027``) label.
    attrs : mapping
        A cube's ``attrs`` (``fiscal_year_start``, ``fiscal_year_naming``; the
        configured calendar where they are missing).

    Returns
    -------
    pd.DatetimeIndex
        First-of-month dates, named ``month``.

    Examples
    --------
    >>> period_months("FY2027-Q1", ds.attrs).strftime("%Y-%m").tolist()
    ['2026-11', '2026-12', '2027-01']
    """
    return quarter_months(
        label,
        start_month=int(attrs.get("fiscal_year_start", FISCAL_YEAR_START)),
        naming=str(attrs.get("fiscal_year_naming", FISCAL_YEAR_NAMING)),
    )


def _check_steps(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ParameterError(f"n must be a whole number of periods: got {n!r}")
    return int(n)


def next_quarter(label: str, n: int = 1) -> str:
    """The quarter ``n`` quarters after ``label`` (``n < 0``: before).

    Parameters
    ----------
    label : str
        A quarter label, ``FY2027-Q4``.
    n : int
        Quarters to move.

    Returns
    -------
    str

    Examples
    --------
    >>> next_quarter("FY2027-Q4")
    'FY2028-Q1'
    >>> next_quarter("FY2027-Q1", n=-2)
    'FY2026-Q3'
    """
    period = parse_period(label)
    if period.quarter is None:
        raise ParameterError(f"next_quarter needs a quarter label like FY2027-Q1: got {label!r}")
    code = period.year * 4 + period.quarter - 1 + _check_steps(n)
    return FiscalPeriod(code // 4, code % 4 + 1).label


def next_year(label: str, n: int = 1) -> str:
    """The fiscal year label ``n`` years after the year of ``label``.

    Parameters
    ----------
    label : str
        A quarter or year label.
    n : int
        Years to move.

    Returns
    -------
    str

    Examples
    --------
    >>> next_year("FY2027-Q3")
    'FY2028'
    """
    period = parse_period(label)
    return FiscalPeriod(period.year + _check_steps(n), None).label


# ----------------------------------------------------------------------------- roll-up


def rollup(obj: Obj, period: str = "fiscal_quarter", how: str = "sum", dim: str = "month") -> Obj:
    """Aggregate months into the fiscal periods named by the coordinate ``obj`` carries.

    Parameters
    ----------
    obj : xr.Dataset or xr.DataArray
        Numpy- or dask-backed, with a ``month`` dimension and (for quarters and
        years) a ``fiscal_quarter(month)`` / ``fiscal_year(month)`` label
        coordinate, as set by :func:`assign_fiscal_coords`.
    period : {"fiscal_quarter", "fiscal_year", "month"}
        The period to roll up to; ``"month"`` returns the months unchanged.
    how : {"sum", "mean", "min", "max", "first", "last"}
        ``"sum"`` for flows (bookings); ``"last"`` for stocks (ARR at the
        end of the period). NaN is skipped; with ``"sum"`` a period whose
        months are all NaN is NaN (``min_count=1``), so a partial period sums
        the months that have values.
    dim : str
        The month dimension.

    Returns
    -------
    xr.Dataset or xr.DataArray
        A new object whose ``dim`` is replaced, in place, by a dimension named
        ``period`` holding the labels in chronological order. Variables
        without ``dim`` are kept unchanged. Rolled up to quarters, the result
        carries ``fiscal_year(fiscal_quarter)``. With ``"sum"``, a ``units``
        attribute ending in ``/month`` becomes ``/quarter`` or ``/year``.
    """
    if period not in PERIODS:
        raise ParameterError(f"period must be one of {', '.join(PERIODS)}: got {period!r}")
    if how not in HOWS:
        raise ParameterError(f"how must be one of {', '.join(HOWS)}: got {how!r}")
    if dim not in obj.dims:
        raise ParameterError(
            f"dim {dim!r} is not a dimension of the object: it has {list(obj.dims)}"
        )
    if period == "month":
        return obj.copy(deep=False)
    if period not in obj.coords or obj.coords[period].dims != (dim,):
        raise ParameterError(
            f"rollup to {period} needs a {period}({dim}) coordinate of labels: add it with "
            f"revmodel.calendar.assign_fiscal_coords(obj, start_month, naming)"
        )
    labels = np.asarray(obj.coords[period].values).astype(str)
    for label in np.unique(labels).tolist():
        found = parse_period(label)
        if (found.quarter is None) != (period == "fiscal_year"):
            raise ParameterError(
                f"coordinate {period} holds {label!r}, which is not a "
                f"{'year' if period == 'fiscal_year' else 'quarter'} label"
            )
    # A numpy coordinate: grouping by a dask-backed one needs its labels up front.
    obj = obj.assign_coords({period: (dim, labels)})

    kept: xr.Dataset | None = None
    target: xr.Dataset | xr.DataArray = obj
    if isinstance(obj, xr.Dataset):
        without = [name for name, var in obj.data_vars.items() if dim not in var.dims]
        kept = obj[without]
        target = obj.drop_vars(without)

    kwargs: dict[str, Any] = {"skipna": True, "keep_attrs": True}
    if how == "sum":
        kwargs["min_count"] = 1
    result = getattr(target.groupby(period), how)(**kwargs)

    # groupby puts the period dimension first: put it back where the months were.
    if isinstance(result, xr.DataArray):
        result = result.transpose(*[period if d == dim else d for d in obj.dims])
    else:
        result = result.assign(
            {
                name: var.transpose(*[period if d == dim else d for d in target[name].dims])
                for name, var in result.data_vars.items()
            }
        )
    if period == "fiscal_quarter":
        years = [label[:6] for label in result[period].values.tolist()]
        result = result.assign_coords(fiscal_year=(period, np.array(years, dtype=str)))
    if how == "sum":
        unit = "/quarter" if period == "fiscal_quarter" else "/year"
        arrays = [result] if isinstance(result, xr.DataArray) else list(result.data_vars.values())
        for array in arrays:
            units = array.attrs.get("units")
            if isinstance(units, str) and units.endswith("/month"):
                array.attrs["units"] = units[: -len("/month")] + unit
    if kept is not None:
        result = result.assign(kept.data_vars)
    return result


# ----------------------------------------------------------------------------- 4-4-5 weeks


def _check_week_end(week_end: Any) -> int:
    name = week_end.upper() if isinstance(week_end, str) else week_end
    if name not in WEEKDAYS:
        raise ParameterError(f"week_end must be one of {', '.join(WEEKDAYS)}: got {week_end!r}")
    return WEEKDAYS.index(name)


def _check_pattern(pattern: Any) -> tuple[int, int, int]:
    try:
        found = None if isinstance(pattern, str) else tuple(int(w) for w in pattern)
    except (TypeError, ValueError):
        found = None
    if found not in PATTERNS:
        raise ParameterError(
            f"pattern must be the weeks in each period of a quarter, one of (4, 4, 5), "
            f"(4, 5, 4) or (5, 4, 4): got {pattern!r}"
        )
    return found  # type: ignore[return-value]


def _year_end(fyear: np.ndarray, start_month: int, naming: str, weekday: int) -> np.ndarray:
    """Last day [datetime64[D]] of week-based fiscal years: the last ``weekday`` of their end month."""
    end_month = (fyear - _year_offset(start_month, naming)) * 12 + start_month - 1 + 11
    next_first = (end_month + 1 - _EPOCH_MONTH).astype("datetime64[M]").astype("datetime64[D]")
    last_day = next_first - np.timedelta64(1, "D")
    # 1970-01-01 was a Thursday (MON = 0 ... THU = 3).
    last_weekday = (last_day.astype(np.int64) + 3) % 7
    return last_day - ((last_weekday - weekday) % 7).astype("timedelta64[D]")


def weeks_calendar(
    fiscal_year: int,
    start_month: int = FISCAL_YEAR_START,
    pattern: Sequence[int] = (4, 4, 5),
    week_end: str = "SAT",
    naming: str = FISCAL_YEAR_NAMING,
) -> pd.DataFrame:
    """The twelve periods of a week-based (4-4-5) fiscal year.

    Parameters
    ----------
    fiscal_year : int
        Fiscal year name [e.g. 2027], per ``naming``.
    start_month : int
        First calendar month of the fiscal year [1-12]; the year ends on the
        last ``week_end`` of the month before it (the "last day" method).
    pattern : (4, 4, 5), (4, 5, 4) or (5, 4, 4)
        Weeks in each period of a quarter; a 53rd week goes to period 12.
    week_end : {"MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"}
        Weekday on which every week ends.
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Returns
    -------
    pd.DataFrame
        One row per period: ``fiscal_year``, ``quarter`` [1-4], ``period``
        [1-12], ``start`` and ``end`` [dates, both inclusive], ``weeks``.

    Examples
    --------
    >>> weeks = weeks_calendar(2026, start_month=2, week_end="SAT")
    >>> weeks.loc[[0, 1, 2, 11], ["period", "start", "end", "weeks"]]
        period      start        end  weeks
    0        1 2025-01-26 2025-02-22      4
    1        2 2025-02-23 2025-03-22      4
    2        3 2025-03-23 2025-04-26      5
    11      12 2025-12-21 2026-01-31      6
    >>> int(weeks["weeks"].sum())
    53
    """
    if (
        isinstance(fiscal_year, bool)
        or not isinstance(fiscal_year, int | np.integer)
        or not _WEEK_YEARS[0] <= fiscal_year <= _WEEK_YEARS[1]
    ):
        raise ParameterError(
            f"fiscal_year must be a whole year between {_WEEK_YEARS[0]} and {_WEEK_YEARS[1]}: "
            f"got {fiscal_year!r}"
        )
    start_month = _check_start_month(start_month)
    naming = _check_naming(naming)
    weeks = np.tile(np.array(_check_pattern(pattern)), 4)
    weekday = _check_week_end(week_end)

    ends = _year_end(np.array([fiscal_year - 1, fiscal_year]), start_month, naming, weekday)
    if (ends[1] - ends[0]) // np.timedelta64(7, "D") == 53:
        weeks[-1] += 1
    first_day = ends[0] + np.timedelta64(1, "D")
    stops = first_day + (7 * np.cumsum(weeks)).astype("timedelta64[D]")
    starts = np.concatenate([[first_day], stops[:-1]])
    periods = np.arange(1, 13)
    return pd.DataFrame(
        {
            "fiscal_year": np.full(12, int(fiscal_year)),
            "quarter": (periods - 1) // 3 + 1,
            "period": periods,
            "start": pd.DatetimeIndex(starts.astype("datetime64[ns]")),
            "end": pd.DatetimeIndex((stops - np.timedelta64(1, "D")).astype("datetime64[ns]")),
            "weeks": weeks,
        }
    )


def week_period(
    dates: Any,
    start_month: int = FISCAL_YEAR_START,
    pattern: Sequence[int] = (4, 4, 5),
    week_end: str = "SAT",
    naming: str = FISCAL_YEAR_NAMING,
) -> pd.DataFrame:
    """Week-based fiscal year, quarter, period and week of each date (see :func:`weeks_calendar`).

    Returns
    -------
    pd.DataFrame
        Indexed by the dates (named ``date``, flattened), with columns
        ``fiscal_year``, ``quarter`` [1-4], ``period`` [1-12] and ``week`` [1-53].
    """
    start_month = _check_start_month(start_month)
    naming = _check_naming(naming)
    bounds = np.cumsum(np.tile(np.array(_check_pattern(pattern)), 4))
    weekday = _check_week_end(week_end)
    days = _datetimes(dates, "dates").ravel().astype("datetime64[D]")

    # A week year ends in the last week of the monthly fiscal year's end month, so a date
    # belongs to its monthly fiscal year unless it falls after that year's last week end.
    monthly = _parts(days, start_month, naming)[2]
    fyear = monthly + (days > _year_end(monthly, start_month, naming, weekday))
    first = _year_end(fyear - 1, start_month, naming, weekday) + np.timedelta64(1, "D")
    week = (days - first) // np.timedelta64(7, "D") + 1
    period = np.searchsorted(bounds, np.minimum(week, 52), side="left") + 1
    return pd.DataFrame(
        {"fiscal_year": fyear, "quarter": (period - 1) // 3 + 1, "period": period, "week": week},
        index=pd.DatetimeIndex(days.astype("datetime64[ns]"), name="date"),
    )


# ----------------------------------------------------------------------------- wrapper


@dataclass(frozen=True)
class FiscalCalendar:
    """A fiscal calendar: the functions of this module with ``start_month`` and ``naming`` bound.

    Parameters
    ----------
    start_month : int
        First calendar month of the fiscal year [1-12].
    naming : {"end", "start"}
        Name a fiscal year by the calendar year in which it ends or starts.

    Examples
    --------
    >>> cal = FiscalCalendar(start_month=2, naming="end")
    >>> cal.quarter_months("FY2027-Q4").strftime("%Y-%m").tolist()
    ['2026-11', '2026-12', '2027-01']
    >>> FiscalCalendar.from_attrs(ds)
    FiscalCalendar(start_month=11, naming='end')
    """

    start_month: int = FISCAL_YEAR_START
    naming: str = FISCAL_YEAR_NAMING

    def __post_init__(self) -> None:
        _check_start_month(self.start_month)
        _check_naming(self.naming)

    @classmethod
    def from_attrs(cls, obj: xr.Dataset | xr.DataArray) -> FiscalCalendar:
        """The calendar recorded in a cube's ``fiscal_year_start`` / ``fiscal_year_naming`` attrs."""
        if "fiscal_year_start" not in obj.attrs:
            raise ParameterError(
                "the cube has no attrs['fiscal_year_start']: build it with revmodel.cube.build_cube "
                "or add the fiscal calendar with revmodel.calendar.assign_fiscal_coords"
            )
        naming = obj.attrs.get("fiscal_year_naming", FISCAL_YEAR_NAMING)
        return cls(int(obj.attrs["fiscal_year_start"]), naming)

    def fiscal_month(self, months: Any) -> np.ndarray:
        return fiscal_month(months, self.start_month)

    def fiscal_quarter(self, months: Any) -> np.ndarray:
        return fiscal_quarter(months, self.start_month)

    def fiscal_year(self, months: Any) -> np.ndarray:
        return fiscal_year(months, self.start_month, self.naming)

    def quarter_label(self, months: Any) -> np.ndarray:
        return quarter_label(months, self.start_month, self.naming)

    def year_label(self, months: Any) -> np.ndarray:
        return year_label(months, self.start_month, self.naming)

    def month_coords(self, months: Any) -> dict[str, np.ndarray]:
        return month_coords(months, self.start_month, self.naming)

    def assign_coords(self, obj: Obj, dim: str = "month") -> Obj:
        return assign_fiscal_coords(obj, self.start_month, self.naming, dim)

    def quarter_months(self, label: str) -> pd.DatetimeIndex:
        return quarter_months(label, self.start_month, self.naming)

    def quarter_start(self, months: Any) -> np.ndarray:
        return quarter_start(months, self.start_month)

    def year_start(self, months: Any) -> np.ndarray:
        return year_start(months, self.start_month)

    def current_quarter(self, as_of: Any) -> str:
        return current_quarter(as_of, self.start_month, self.naming)

    def weeks(
        self, fiscal_year: int, pattern: Sequence[int] = (4, 4, 5), week_end: str = "SAT"
    ) -> pd.DataFrame:
        return weeks_calendar(fiscal_year, self.start_month, pattern, week_end, self.naming)

    def week_period(
        self, dates: Any, pattern: Sequence[int] = (4, 4, 5), week_end: str = "SAT"
    ) -> pd.DataFrame:
        return week_period(dates, self.start_month, pattern, week_end, self.naming)
