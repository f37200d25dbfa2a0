"""Planning assumptions: a small typed object, loadable from YAML.

An assumption set is everything a planner may change in a what-if: target
growth, churn rate, win rate, ramp, hires, rep attrition, over-assignment
and productivity. A field left ``None`` means "from history" (measured on the
cube). :mod:`revmodel.scenario` stacks several sets on a ``scenario`` dim.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from revmodel import config
from revmodel.errors import ParameterError

__all__ = [
    "DEFAULT_ATTAINMENT_TOLERANCE",
    "DEFAULT_OVER_ASSIGNMENT",
    "DEFAULT_RAMP_MONTHS",
    "DEFAULT_REP_ATTRITION",
    "Assumptions",
    "Hire",
    "assumptions_from_dict",
    "check_segments",
    "load_assumptions",
    "read_number",
    "settle_plan_year",
]

#: Default months to full productivity, by segment (pvlib-style parameter table).
DEFAULT_RAMP_MONTHS: dict[str, int] = {"SMB": 3, "Mid-Market": 5, "Enterprise": 7}
#: Default annual rep attrition (share of reps leaving a year), by segment.
DEFAULT_REP_ATTRITION: dict[str, float] = {"SMB": 0.20, "Mid-Market": 0.15, "Enterprise": 0.12}
#: Default sum of rep quotas over the team's target [ratio]: 10% over-assignment.
DEFAULT_OVER_ASSIGNMENT: float = 1.10
#: Default attainment at or above which a quota counts as met [ratio].
DEFAULT_ATTAINMENT_TOLERANCE: float = 0.9


#: Most reps one line of planned hires may add.
MAX_HIRES = 10_000


@dataclass(frozen=True)
class Hire:
    """Planned hires: ``count`` reps of ``segment`` in ``region`` starting in ``start_month``.

    Parameters
    ----------
    segment : str
        Segment of the new reps (one of the cube's).
    region : str
        Region of the new reps (one of the cube's).
    start_month : str
        First month of the new reps, ``"YYYY-MM"``.
    count : int
        Number of reps [0-10,000].
    role : str
        Role, ``"AE"`` by default.

    Examples
    --------
    >>> Hire("Enterprise", "North America East", "2027-02", count=2)
    Hire(segment='Enterprise', region='North America East', start_month='2027-02', count=2, role='AE')
    >>> Hire("SMB", "EMEA", "next spring")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: hires: start_month 'next spring' is not a month; use YYYY-MM.
    """

    segment: str
    region: str
    start_month: str  # "YYYY-MM"
    count: int = 1
    role: str = "AE"

    def __post_init__(self) -> None:
        if not 0 <= int(self.count) <= MAX_HIRES:
            raise ParameterError(
                f"hires: count must be between 0 and {MAX_HIRES:,}, got {self.count} "
                f"for {self.segment}/{self.region}."
            )
        try:
            pd.Timestamp(self.start_month)
        except (ValueError, TypeError) as exc:
            raise ParameterError(
                f"hires: start_month {self.start_month!r} is not a month; use YYYY-MM."
            ) from exc


@dataclass(frozen=True)
class Assumptions:
    """One assumption set.

    Attributes
    ----------
    name : str
        Scenario name ("base", "stretch", ...).
    plan_year : str, optional
        Fiscal year planned, e.g. ``"FY2027"``; when not given, the fiscal year of
        the quarter after the data's actuals, as ``revmodel plan`` settles its cycle
        (:func:`settle_plan_year`).
    target_growth : float
        Bookings target as growth over last fiscal year [ratio], e.g. 0.25.
    target_amount : float or None
        Absolute bookings target [currency/year]; overrides ``target_growth``.
    churn_rate : float or None
        The churn rate: annual gross revenue churn [ratio/year]
        (:func:`revmodel.retention.churn_rate`); None = measured from history.
    win_rate_change : float
        Relative change in win rates [ratio], e.g. 0.05 = win rates 5% higher.
    ramp_months : dict
        Months to full productivity by segment.
    rep_attrition : dict
        Annual rep attrition by segment [ratio/year].
    backfill_lag_months : int
        Months between a rep leaving and the backfill starting.
    backfill : bool
        Whether leavers are backfilled.
    hires : tuple of Hire
        Planned hires.
    over_assignment : float
        Sum of rep quotas over the manager's target [ratio], e.g. 1.10.
    productivity : dict or None
        Annual bookings of a fully ramped rep by segment [currency/year]; None = from history.
    productivity_change : float
        Relative change applied to productivity [ratio].
    attainment_tolerance : float
        Attainment at or above this counts as met [ratio], e.g. 0.9.
    allocation_basis : str
        Basis for top-down quota allocation: history, potential, capacity or blend.

    Raises
    ------
    ParameterError
        A misspelt field, a value of the wrong type or out of range, naming the field.

    Examples
    --------
    >>> base = Assumptions(plan_year="FY2027", target_growth=0.25, over_assignment=1.10)
    >>> base.ramp_months
    {'SMB': 3, 'Mid-Market': 5, 'Enterprise': 7}
    >>> Assumptions(target_growth="25%").target_growth
    0.25
    >>> Assumptions(target_growth="a lot")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: Assumptions: target_growth must be a number (e.g. 0.25 or '25%'), got 'a lot'.
    """

    name: str = "base"
    plan_year: str | None = None
    target_growth: float = 0.25
    target_amount: float | None = None
    churn_rate: float | None = None
    win_rate_change: float = 0.0
    ramp_months: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RAMP_MONTHS))
    rep_attrition: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REP_ATTRITION))
    backfill_lag_months: int = 2
    backfill: bool = True
    hires: tuple[Hire, ...] = ()
    over_assignment: float = DEFAULT_OVER_ASSIGNMENT
    productivity: dict[str, float] | None = None
    productivity_change: float = 0.0
    attainment_tolerance: float = DEFAULT_ATTAINMENT_TOLERANCE
    allocation_basis: str = "history"

    def __new__(cls, *args: Any, **kwargs: Any) -> Assumptions:
        # A misspelt keyword gets the known ones, not Python's bare TypeError.
        known = [f.name for f in fields(cls)]
        for key in kwargs:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ParameterError(
                    f"Assumptions: unknown assumption {key!r}; {hint}"
                    f"the assumptions are {', '.join(known)}."
                )
        return super().__new__(cls)

    def __post_init__(self) -> None:
        # Numbers typed as text ("25%", "0.25") are read; anything else is refused by name.
        for name in (*_FLOATS, *_OPT_FLOATS):
            value = getattr(self, name)
            if value is not None or name not in _OPT_FLOATS:
                object.__setattr__(self, name, _number(name, value))
        for name in _TYPED:
            object.__setattr__(self, name, _typed(name, getattr(self, name)))
        checks = [
            ("target_growth", -0.9 <= self.target_growth <= 5.0, "between -0.9 and 5"),
            ("win_rate_change", -0.9 <= self.win_rate_change <= 5.0, "between -0.9 and 5"),
            ("productivity_change", -0.9 <= self.productivity_change <= 5.0, "between -0.9 and 5"),
            ("over_assignment", 0.5 <= self.over_assignment <= 2.0, "between 0.5 and 2"),
            ("attainment_tolerance", 0.0 < self.attainment_tolerance <= 1.0, "in (0, 1]"),
            ("backfill_lag_months", 0 <= self.backfill_lag_months <= 24, "between 0 and 24"),
        ]
        if self.churn_rate is not None:
            checks.append(("churn_rate", 0.0 <= self.churn_rate < 1.0, "in [0, 1)"))
        if self.target_amount is not None:
            checks.append(("target_amount", self.target_amount > 0, "positive"))
        for name, ok, rule in checks:
            if not ok:
                value = getattr(self, name)
                hint = ""
                if name in _SHARES and 2.0 <= abs(value) <= 500.0:
                    hint = f" (a ratio: {value / 100:g} for {value:g}%)"
                raise ParameterError(f"{name} must be {rule}, got {value!r}{hint}.")
        for seg, months in self.ramp_months.items():
            if not 0 <= int(months) <= 36:
                raise ParameterError(f"ramp_months.{seg} must be between 0 and 36, got {months!r}.")
        for seg, rate in self.rep_attrition.items():
            if not 0.0 <= float(rate) < 1.0:
                raise ParameterError(f"rep_attrition.{seg} must be in [0, 1), got {rate!r}.")
        if self.allocation_basis not in ("history", "potential", "capacity", "blend"):
            raise ParameterError(
                f"allocation_basis must be one of history, potential, capacity, blend, got {self.allocation_basis!r}."
            )

    def with_changes(self, **changes: Any) -> Assumptions:
        """A copy with some assumptions changed (validated again).

        Parameters
        ----------
        **changes
            Fields of :class:`Assumptions` and their new values.

        Returns
        -------
        Assumptions

        Examples
        --------
        >>> stretch = Assumptions().with_changes(name="stretch", target_growth=0.35)
        >>> stretch.name, stretch.target_growth, stretch.over_assignment
        ('stretch', 0.35, 1.1)
        """
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The assumption set as plain values (hires as mappings), ready for JSON or YAML.

        Returns
        -------
        dict

        Examples
        --------
        >>> Assumptions(hires=(Hire("SMB", "EMEA", "2027-01"),)).to_dict()["hires"]
        [{'segment': 'SMB', 'region': 'EMEA', 'start_month': '2027-01', 'count': 1, 'role': 'AE'}]
        """
        d = dataclasses.asdict(self)
        d["hires"] = [dataclasses.asdict(h) for h in self.hires]
        return d


def assumptions_from_dict(data: dict[str, Any], where: str = "assumptions") -> Assumptions:
    """Build :class:`Assumptions` from a plain mapping, naming the key of any error.

    Parameters
    ----------
    data : dict
        Assumption names to values, as read from YAML or JSON (hires as mappings).
    where : str
        What the mapping came from (a file name), the prefix of every error.

    Returns
    -------
    Assumptions

    Raises
    ------
    ParameterError
        An unknown key (listing the known ones) or a value of the wrong type or range.

    Examples
    --------
    >>> a = assumptions_from_dict({"plan_year": "FY2027", "target_growth": "30%",
    ...                            "hires": [{"segment": "SMB", "region": "EMEA",
    ...                                       "start_month": "2027-03", "count": 2}]})
    >>> a.target_growth, a.hires[0].count
    (0.3, 2)
    >>> assumptions_from_dict({"growth": 0.3}, where="plan.yaml")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: plan.yaml: unknown key 'growth'; known keys are allocation_basis, ...
    """
    if not isinstance(data, dict):
        raise ParameterError(f"{where}: expected a mapping of assumption names to values.")
    known = {f.name: f for f in fields(Assumptions)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ParameterError(
            f"{where}: unknown key {unknown[0]!r}; known keys are {', '.join(sorted(known))}."
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        kwargs[key] = _coerce(key, value, where)
    try:
        return Assumptions(**kwargs)
    except ParameterError as exc:  # a range check of Assumptions: name the file too
        raise ParameterError(f"{where}: {exc}") from None
    except TypeError as exc:  # pragma: no cover - guarded by _coerce
        raise ParameterError(f"{where}: {exc}") from exc


_FLOATS = {
    "target_growth",
    "win_rate_change",
    "over_assignment",
    "productivity_change",
    "attainment_tolerance",
}
_OPT_FLOATS = {"target_amount", "churn_rate"}
#: Ratios a planner may write as a percentage by mistake (25 for 0.25).
_SHARES = {"target_growth", "win_rate_change", "productivity_change", "churn_rate"}
#: Fields checked (and normalised) by :func:`_typed` when an :class:`Assumptions` is made.
_TYPED = (
    "name",
    "plan_year",
    "allocation_basis",
    "backfill_lag_months",
    "backfill",
    "ramp_months",
    "rep_attrition",
    "productivity",
    "hires",
)


_FISCAL_YEAR = re.compile(r"FY\d{4}")


def _typed(key: str, value: Any) -> Any:
    """``value`` of field ``key`` in its type; a :class:`ParameterError` naming both otherwise."""
    if key == "plan_year" and value is None:
        return None  # settled from the data when planned (settle_plan_year)
    if key == "plan_year" and not (isinstance(value, str) and _FISCAL_YEAR.fullmatch(value)):
        whole = isinstance(value, Integral) and not isinstance(value, bool)
        hint = f" (write 'FY{value}')" if whole else ""
        raise ParameterError(
            f"Assumptions: plan_year must be a fiscal year like FY2027, got {value!r}{hint}."
        )
    if key == "hires":
        if isinstance(value, list | tuple) and all(isinstance(h, Hire) for h in value):
            return tuple(value)
        if isinstance(value, tuple):
            value = list(value)
    return _coerce(key, value, "Assumptions")


def read_number(key: str, value: Any, where: str = "Assumptions") -> float:
    """A number, or text such as ``"25%"`` (0.25) or ``"0.25"``; a readable error otherwise.

    The one rule for numbers an analyst types, whether to :class:`Assumptions`
    or in a plan file (:func:`revmodel.parameters.check`): the same text gives
    the same number, and the same refusal.

    Parameters
    ----------
    key : str
        The setting, named in the error.
    value : float or str
        A number, or its text; ``%`` divides by 100 and thousands commas are dropped.
    where : str
        Named first in the error (``Assumptions``, the plan file).

    Returns
    -------
    float

    Raises
    ------
    ParameterError
        Text that is not a number, or another type.

    Examples
    --------
    >>> read_number("target_growth", "25%"), read_number("target_growth", " 0.25 ")
    (0.25, 0.25)
    >>> read_number("target_growth", "high", where="plan.yaml")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: plan.yaml: target_growth must be a number (e.g. 0.25 or '25%'), got 'high'.
    """
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            pass
    elif isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    example = _NUMBER_EXAMPLES.get(key, "0.25 or '25%'")
    raise ParameterError(f"{where}: {key} must be a number (e.g. {example}), got {value!r}.")


#: How a number is written in the message refusing text that is not one (default a ratio).
_NUMBER_EXAMPLES = {
    "over_assignment": "1.10",
    "target_amount": "1200000",
    "company_target": "1200000",
    "horizon": "15",
}
_number = read_number


#: Per-segment mappings of an assumption set, checked against the cube's segments.
PER_SEGMENT: tuple[str, ...] = ("ramp_months", "rep_attrition", "productivity")
_DEFAULT_TABLES = {"ramp_months": DEFAULT_RAMP_MONTHS, "rep_attrition": DEFAULT_REP_ATTRITION}


def check_segments(assumptions: Assumptions, segments: Iterable[str]) -> Assumptions:
    """Refuse a per-segment setting that names a segment the data does not have.

    (Planned hires are checked with their region by :mod:`revmodel.capacity`.)

    The package defaults (:data:`DEFAULT_RAMP_MONTHS`, :data:`DEFAULT_REP_ATTRITION`)
    are fallbacks and are not checked: with segments of other names their mean applies.

    Parameters
    ----------
    assumptions : Assumptions
    segments : iterable of str
        The cube's segments.

    Returns
    -------
    Assumptions
        Unchanged.

    Raises
    ------
    ParameterError
        Naming the setting, the unknown segment and the valid ones.

    Examples
    --------
    >>> check_segments(Assumptions(ramp_months={"Enterprize": 7}), ["SMB", "Enterprise"])
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: ramp_months: unknown segment 'Enterprize'; the segments are SMB, Enterprise.
    """
    valid = [str(s) for s in segments]
    for name in PER_SEGMENT:
        table = getattr(assumptions, name)
        if not table or table == _DEFAULT_TABLES.get(name):
            continue
        for key in table:
            if key not in valid:
                raise ParameterError(
                    f"{name}: unknown segment {key!r}; the segments are {', '.join(valid)}."
                )
    return assumptions


def _coerce(key: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> ParameterError:
        return ParameterError(f"{where}: {key} must be {expected}, got {value!r}.")

    if key == "plan_year" and value is None:
        return None  # settled from the data (settle_plan_year)
    if key in ("name", "plan_year", "allocation_basis"):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if key in _FLOATS or (key in _OPT_FLOATS and value is not None):
        return _number(key, value, where)
    if key in _OPT_FLOATS:
        return None
    if key == "backfill_lag_months":
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise bad("a whole number of months")
        return int(value)
    if key == "backfill":
        if not isinstance(value, bool | np.bool_):
            raise bad("true or false")
        return bool(value)
    if key in ("ramp_months", "rep_attrition", "productivity"):
        if value is None and key == "productivity":
            return None
        if not isinstance(value, dict) or not all(
            isinstance(v, Real) and not isinstance(v, bool) for v in value.values()
        ):
            raise bad("a mapping of segment to number")
        return {str(k): (int(v) if key == "ramp_months" else float(v)) for k, v in value.items()}
    if key == "hires":
        if not isinstance(value, list):
            raise bad("a list of {segment, region, start_month, count}")
        out = []
        for i, h in enumerate(value):
            if not isinstance(h, dict):
                raise ParameterError(f"{where}: hires[{i}] must be a mapping, got {h!r}.")
            extra = set(h) - {"segment", "region", "start_month", "count", "role"}
            missing = {"segment", "region", "start_month"} - set(h)
            if extra:
                raise ParameterError(f"{where}: hires[{i}] has unknown key {sorted(extra)[0]!r}.")
            if missing:
                raise ParameterError(f"{where}: hires[{i}] is missing {sorted(missing)[0]!r}.")
            count = h.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, Integral):
                raise ParameterError(
                    f"{where}: hires[{i}]: count must be a whole number, got {count!r}."
                )
            try:
                hire = Hire(
                    str(h["segment"]),
                    str(h["region"]),
                    str(h["start_month"]),
                    count,
                    str(h.get("role", "AE")),
                )
            except ParameterError as exc:
                raise ParameterError(
                    f"{where}: hires[{i}]: {str(exc).removeprefix('hires: ')}"
                ) from None
            out.append(hire)
        return tuple(out)
    raise bad("a known value")  # pragma: no cover


def load_assumptions(path: str | Path) -> Assumptions:
    """Read an assumption set from a YAML file.

    Parameters
    ----------
    path : str or Path
        A YAML mapping of assumption names to values.

    Returns
    -------
    Assumptions

    Raises
    ------
    ParameterError
        A missing file, invalid YAML, or a bad key or value (naming the file).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "base.yaml"
    ...     _ = path.write_text("target_growth: 0.2", encoding="utf-8")
    ...     load_assumptions(path).target_growth
    0.2
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ParameterError(f"{path}: no such assumptions file.") from exc
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({exc}).") from exc
    return assumptions_from_dict(data or {}, where=str(path))


def settle_plan_year(assumptions: Assumptions, source: Any) -> Assumptions:
    """``assumptions`` with a plan year: its own, else the fiscal year of the quarter after
    the data's last month of actuals (never a year the sample company plans).

    Parameters
    ----------
    assumptions : Assumptions
    source : xarray.Dataset
        The cube or its plan inputs (attrs ``as_of``, ``fiscal_year_start``,
        ``fiscal_year_naming``).

    Returns
    -------
    Assumptions

    Examples
    --------
    >>> import xarray as xr
    >>> cube = xr.Dataset(attrs={"as_of": "2024-12-01", "fiscal_year_start": 4})
    >>> settle_plan_year(Assumptions(), cube).plan_year  # Jan-Mar 2025 is FY2025-Q4
    'FY2025'
    >>> settle_plan_year(Assumptions(plan_year="FY2026"), cube).plan_year
    'FY2026'
    """
    if assumptions.plan_year is not None:
        return assumptions
    from revmodel import calendar as fcal

    attrs = getattr(source, "attrs", {})
    if not attrs.get("as_of"):
        raise ParameterError(
            "Assumptions: plan_year not given and the data has no as_of to settle it from; "
            "set plan_year, e.g. Assumptions(plan_year='FY2027')."
        )
    start = int(attrs.get("fiscal_year_start", config.FISCAL_YEAR_START))
    naming = str(attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING))
    quarter = fcal.next_quarter(fcal.current_quarter(pd.Timestamp(attrs["as_of"]), start, naming))
    return dataclasses.replace(assumptions, plan_year=fcal.next_year(quarter, 0))
