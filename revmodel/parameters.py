"""The parameters file of a planning cycle: its schema, and validation before anything runs.

One YAML file per planning cycle (``parameters/FY2027-Q1.yaml``) says where
the data is, how the fiscal calendar runs, and the assumptions of the plan::

    cycle: FY2027-Q1            # the quarter planned; the pack goes to reports/FY2027-Q1/
    data_dir: ../data/sample    # relative paths start at this file's folder
    fiscal_year_start: 11
    horizon: 15
    company_target: null        # null: last fiscal year's bookings x (1 + target_growth)
    target_growth: 0.25
    scenarios: [scenarios/downside.yaml, scenarios/stretch.yaml]

A scenario is a file of assumption changes (any key of
:class:`revmodel.assumptions.Assumptions`, plus ``name``), relative to the
parameters file, or the same mapping written inline.

:func:`load` reads and checks a file: an unknown key, a value of the wrong
type or out of range, or a data folder that does not exist raises
:class:`revmodel.errors.ParameterError` with a message naming the file and the
key. :data:`SCHEMA` is the single description of every key: its type, its
default and a help line; the notebooks' ``parameters`` cells declare the same
names with the same types, and a test keeps them in step.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from revmodel import calendar as fcal
from revmodel import config, reconcile
from revmodel.assumptions import (
    DEFAULT_ATTAINMENT_TOLERANCE,
    DEFAULT_OVER_ASSIGNMENT,
    DEFAULT_RAMP_MONTHS,
    DEFAULT_REP_ATTRITION,
    Assumptions,
    assumptions_from_dict,
    read_number,
)
from revmodel.errors import ParameterError, RevmodelError
from revmodel.limits import Limits
from revmodel.yamlio import load_yaml

__all__ = [
    "SCHEMA",
    "Param",
    "assumptions",
    "check",
    "check_cycle",
    "load",
    "next_cycle",
    "scenario_assumptions",
    "with_scenario",
]


@dataclass(frozen=True)
class Param:
    """One key of the parameters file.

    Attributes
    ----------
    type : str
        ``str``, ``int``, ``float``, ``bool``, ``dict`` or ``list``.
    default : object
        Value when the key is absent (``REQUIRED`` for a key that must be given).
    help : str
        One line for the analyst, with units in brackets.
    optional : bool
        ``null`` is allowed.

    Examples
    --------
    >>> SCHEMA["horizon"]
    Param(type='int', default=15, help='months forecast after as_of [months]', optional=False)
    """

    type: str
    default: Any
    help: str
    optional: bool = False


REQUIRED = object()
_CYCLE = re.compile(r"^FY\d{4}-Q[1-4]$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")

#: Every key a parameters file may hold.
SCHEMA: dict[str, Param] = {
    "cycle": Param("str", REQUIRED, "planning cycle: the fiscal quarter planned, e.g. FY2027-Q1 (default: the quarter after the actuals)", True),
    "data_dir": Param("str", REQUIRED, "folder with the CRM/ERP exports"),
    "mapping": Param("str", None, "mapping YAML from export columns to the schema", True),
    "fiscal_year_start": Param("int", config.FISCAL_YEAR_START, "first month of the fiscal year, 1-12"),
    "fiscal_year_naming": Param("str", config.FISCAL_YEAR_NAMING, "fiscal years named by the year they 'end' or 'start' in"),
    "as_of": Param("str", None, "last month of actuals, YYYY-MM (default: the data's last complete month)", True),
    "horizon": Param("int", 15, "months forecast after as_of [months]"),
    "plan_year": Param("str", None, "fiscal year of quotas and capacity, e.g. FY2027 (default: the cycle's)", True),
    "company_target": Param("float", None, "bookings target of the plan year [USD/year] (default: grown from last year)", True),
    "target_growth": Param("float", 0.25, "target growth over last fiscal year's bookings [ratio]"),
    "churn_rate": Param("float", None, "churn rate: annual gross revenue churn [ratio/year] (default: measured)", True),
    "rep_attrition": Param("dict", dict(DEFAULT_REP_ATTRITION), "annual rep attrition by segment [ratio/year]"),
    "backfill": Param("bool", True, "replace reps who leave"),
    "backfill_lag_months": Param("int", 2, "months from a leaver to the backfill's start [months]"),
    "hires": Param("list", [], "planned hires: [{segment, region, start_month: YYYY-MM, count}]"),
    "ramp_months": Param("dict", dict(DEFAULT_RAMP_MONTHS), "months to full productivity by segment [months]"),
    "ramp_shape": Param("str", "linear", "ramp curve: linear, s-curve or step"),
    "over_assignment": Param("float", DEFAULT_OVER_ASSIGNMENT, "sum of rep quotas over the team's target [ratio]"),
    "attainment_tolerance": Param("float", DEFAULT_ATTAINMENT_TOLERANCE, "attainment at or above this counts as met [ratio]"),
    "allocation_basis": Param("str", "history", "quota basis: history, potential, capacity or blend"),
    "reconcile_method": Param("str", "mint_shrink", "forecast reconciliation: bottom_up, top_down, ols, wls_struct, wls_var, mint_shrink"),
    "band_calibration_folds": Param("int", config.BAND_CALIBRATION_FOLDS, "past origins the 10-90% bands are calibrated on, as revmodel forecast --calibrate-bands (0: the models' own bands; fewer when the history is short)"),
    "max_moves": Param("int", None, "most accounts that may change rep in the territory plan [accounts]", True),
    "balance_tolerance": Param("float", 0.10, "allowed deviation of a rep's potential from the mean [ratio]"),
    "scenarios": Param("list", [], "scenarios to compare: scenario YAML files (relative to this file) or inline mappings"),
    "currency": Param("str", None, "ISO 4217 code of the amounts, e.g. EUR (default: USD, said in the pack)", True),
    "segment_bands": Param("list", None, "employee bands of segments: [[name, lower, upper], ...] (default: SMB, Mid-Market, Enterprise at 200 and 2000)", True),
    "territories": Param("bool", True, "plan territories (false skips the section)"),
}  # fmt: skip

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
}


def _shown(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_error(where: str, key: str, p: Param, value: Any) -> ParameterError:
    article = "an" if p.type[0] in "aeiou" else "a"
    null = " or null" if p.optional else ""
    return ParameterError(
        f"{where}: {key} must be {article} {p.type}{null}, got {_shown(value)} "
        f"({type(value).__name__}). {key}: {p.help}."
    )


def _check_type(where: str, key: str, value: Any) -> Any:
    p = SCHEMA[key]
    if value is None:
        if p.optional or p.default is None:
            return None
        raise _type_error(where, key, p, value)
    if p.type == "float" and isinstance(value, str):
        # "25%" (YAML keeps it as text) is 0.25, as for Assumptions: one rule, read_number's.
        value = read_number(key, value, where)
    ok = isinstance(value, _TYPES[p.type]) and not (
        p.type in ("int", "float") and isinstance(value, bool)
    )
    if not ok:
        raise _type_error(where, key, p, value)
    if p.type == "float" and not math.isfinite(value):
        raise ParameterError(
            f"{where}: {key} must be a finite number, got {value!r}. {key}: {p.help}."
        )
    return float(value) if p.type == "float" else value


def _range(where: str, key: str, ok: bool, rule: str, value: Any) -> None:
    if not ok:
        raise ParameterError(f"{where}: {key} must be {rule}, got {_shown(value)}.")


def _year(label: str) -> int:
    return int(label[2:6])


def _plausible_years() -> tuple[int, int]:
    """Years a cycle, a plan year or ``as_of`` may name: the reader's window of plausible dates."""
    first, last = Limits().date_window(pd.Timestamp.today())
    return first.year, last.year


def _month_ok(text: str) -> bool:
    first, last = _plausible_years()
    return bool(_MONTH.match(text)) and 1 <= int(text[5:7]) <= 12 and first <= int(text[:4]) <= last


#: Allowed values of each key beyond its type: key -> (test, the rule as a message says it).
_RULES: dict[str, tuple[Any, str]] = {
    "fiscal_year_start": (lambda v: 1 <= v <= 12, "a month number 1-12"),
    "fiscal_year_naming": (lambda v: v in ("end", "start"), "'end' or 'start'"),
    "horizon": (lambda v: 1 <= v <= 36, "between 1 and 36 months"),
    "plan_year": (lambda v: bool(re.match(r"^FY\d{4}$", v)), "a fiscal year like FY2027"),
    "company_target": (
        lambda v: 0 < v <= Limits().max_amount,
        f"a positive amount up to {Limits().max_amount:,.0f} [currency/year]",
    ),
    "ramp_shape": (lambda v: v in ("linear", "s-curve", "step"), "linear, s-curve or step"),
    "reconcile_method": (
        lambda v: v in reconcile.METHODS,
        "one of " + ", ".join(reconcile.METHODS),
    ),
    "currency": (
        lambda v: bool(re.match(r"^[A-Z]{3}$", v)),
        "a three-letter ISO 4217 code like EUR",
    ),
    "max_moves": (lambda v: v >= 0, "a whole number >= 0"),
    "band_calibration_folds": (lambda v: 0 <= v <= 12, "a whole number from 0 to 12"),
    "balance_tolerance": (lambda v: 0 < v < 1, "in (0, 1)"),
}


def _check_ranges(where: str, out: Mapping[str, Any]) -> None:
    """Every value within its plausible range; the cycle, plan year and ``as_of`` real periods."""
    first, last = _plausible_years()
    if out.get("cycle") is not None:
        cycle = out["cycle"]
        _range(where, "cycle", bool(_CYCLE.match(cycle)), "a fiscal quarter like FY2027-Q1", cycle)
        _range(where, "cycle", first <= _year(cycle) <= last,
               f"a fiscal quarter from FY{first} to ten years from today", cycle)  # fmt: skip
    if out.get("as_of") is not None:
        _range(where, "as_of", _month_ok(out["as_of"]),
               f"a month YYYY-MM (01-12) from {first} to ten years from today", out["as_of"])  # fmt: skip
    for key, (ok, rule) in _RULES.items():
        if out.get(key) is not None:
            _range(where, key, ok(out[key]), rule, out[key])
    if out.get("plan_year") is not None and out.get("cycle"):
        fy = _year(out["cycle"])
        _range(where, "plan_year", _year(out["plan_year"]) in (fy, fy + 1),
               f"the cycle's fiscal year FY{fy} or the next, FY{fy + 1}", out["plan_year"])  # fmt: skip


def _resolve_dir(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return (base or config.HOME) / path


def check(values: Mapping[str, Any], where: str = "parameters", base_dir: Path | None = None,
          require: bool = True) -> dict[str, Any]:  # fmt: skip
    """Check a mapping of parameters; return it complete (defaults filled) and typed.

    Parameters
    ----------
    values : mapping
        Keys of :data:`SCHEMA`.
    where : str
        Named in error messages (the file, or ``parameters``).
    base_dir : Path, optional
        Folder that relative scenario files are read from (the parameters file's).
    require : bool
        Require ``cycle`` and ``data_dir`` and fill defaults (a whole file);
        with False, check only the keys given (a notebook's subset).

    Returns
    -------
    dict
        The parameters; ``data_dir`` and ``mapping`` as absolute path strings,
        ``scenarios`` as a list of mappings (files read).

    Raises
    ------
    ParameterError
        Naming ``where`` and the key: unknown key, wrong type, out of range,
        missing data folder or scenario file.

    Examples
    --------
    A notebook checks the keys it was given (``require=False``):

    >>> check({"cycle": "FY2027-Q1", "target_growth": 0.3}, require=False)
    {'cycle': 'FY2027-Q1', 'target_growth': 0.3}
    >>> check({"cycle": "FY27Q1"}, require=False)
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: parameters: cycle must be a fiscal quarter like FY2027-Q1, got 'FY27Q1'.
    >>> check({"horizon": "long"}, where="plan.yaml", require=False)
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: plan.yaml: horizon must be an int, got 'long' (str). horizon: months forecast after as_of [months].
    """
    if not isinstance(values, Mapping):
        raise ParameterError(f"{where}: expected a mapping of parameter names to values.")
    unknown = sorted(str(k) for k in values if k not in SCHEMA)
    if unknown:
        raise ParameterError(
            f"{where}: unknown key {unknown[0]!r}; known keys are {', '.join(SCHEMA)}."
        )
    out: dict[str, Any] = {}
    for key, p in SCHEMA.items():
        if key in values:
            out[key] = _check_type(where, key, values[key])
            if require and out[key] is None and p.default is REQUIRED:
                raise ParameterError(f"{where}: missing key {key!r} ({p.help}).")
        elif require:
            if p.default is REQUIRED:
                raise ParameterError(f"{where}: missing key {key!r} ({p.help}).")
            out[key] = p.default
    _check_ranges(where, out)
    if out.get("segment_bands") is not None:
        from revmodel.sources import parse_segment_bands

        try:
            parse_segment_bands(out["segment_bands"], f"{where}: segment_bands")
        except RevmodelError as exc:
            raise ParameterError(str(exc)) from None
    if "data_dir" in out:
        data = _resolve_dir(out["data_dir"], None)
        if not data.is_dir():
            raise ParameterError(
                f"{where}: data_dir {out['data_dir']!r}: no such folder ({data}); "
                "give the folder holding your exports (e.g. `revmodel sample --out data/sample`)."
            )
        out["data_dir"] = str(data)
    if out.get("mapping") is not None:
        m = _resolve_dir(out["mapping"], None)
        if not m.is_file():
            raise ParameterError(f"{where}: mapping {out['mapping']!r}: no such file ({m}).")
        out["mapping"] = str(m)
    if "scenarios" in out:
        out["scenarios"] = _scenarios(out["scenarios"], where, base_dir)
    # The assumption keys are checked once more by the Assumptions object itself.
    if require:
        assumptions(out, where=where)
        for s in out["scenarios"]:
            scenario_assumptions(out, s, where=where)
    return out


def _scenarios(items: list, where: str, base_dir: Path | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        label = f"{where}: scenarios[{i}]"
        if isinstance(item, str):
            path = Path(item) if Path(item).is_absolute() else (base_dir or Path.cwd()) / item
            if not path.is_file():
                raise ParameterError(f"{label}: scenario file {item!r} not found ({path}).")
            data = load_yaml(path, error=ParameterError) or {}
            label = str(path)
        elif isinstance(item, dict):
            data = dict(item)
        else:
            raise ParameterError(f"{label}: expected a file name or a mapping, got {item!r}.")
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ParameterError(f"{label}: a scenario needs a 'name' (a string).")
        if data["name"] in names or data["name"] == "base":
            raise ParameterError(f"{label}: scenario name {data['name']!r} is used twice.")
        names.add(data["name"])
        # Checked against the assumption fields here so the message names the file.
        assumptions_from_dict(data, where=label)
        out.append(data)
    return out


def plan_year(params: Mapping[str, Any]) -> str:
    """The fiscal year planned: ``plan_year``, else the cycle's fiscal year."""
    if params.get("plan_year"):
        return str(params["plan_year"])
    return str(params["cycle"]).split("-")[0]


def assumptions(params: Mapping[str, Any], where: str = "parameters") -> Assumptions:
    """The base assumption set of the parameters (name ``base``).

    Parameters
    ----------
    params : mapping
        Checked parameters (:func:`check`, :func:`load`).
    where : str
        Named in error messages.

    Returns
    -------
    Assumptions

    Examples
    --------
    >>> base = assumptions({"cycle": "FY2027-Q1", "target_growth": 0.3})
    >>> base.name, base.plan_year, base.target_growth
    ('base', 'FY2027', 0.3)
    """
    data = {
        "name": "base",
        "plan_year": plan_year(params),
        "target_growth": params.get("target_growth", SCHEMA["target_growth"].default),
        "target_amount": params.get("company_target"),
        "churn_rate": params.get("churn_rate"),
        "rep_attrition": params.get("rep_attrition", SCHEMA["rep_attrition"].default),
        "backfill": params.get("backfill", True),
        "backfill_lag_months": params.get("backfill_lag_months", 2),
        "hires": params.get("hires", []),
        "ramp_months": params.get("ramp_months", SCHEMA["ramp_months"].default),
        "over_assignment": params.get("over_assignment", DEFAULT_OVER_ASSIGNMENT),
        "attainment_tolerance": params.get("attainment_tolerance", DEFAULT_ATTAINMENT_TOLERANCE),
        "allocation_basis": params.get("allocation_basis", "history"),
    }
    return assumptions_from_dict(data, where=where)


def scenario_assumptions(
    params: Mapping[str, Any], scenario: Mapping[str, Any], where: str = "parameters"
) -> Assumptions:
    """A scenario's assumption set: the base one with the scenario's changes.

    Parameters
    ----------
    params : mapping
        Checked parameters (:func:`check`, :func:`load`).
    scenario : mapping
        ``name`` and the assumption keys it changes.
    where : str
        Named in error messages.

    Returns
    -------
    Assumptions

    Examples
    --------
    >>> params = {"cycle": "FY2027-Q1", "target_growth": 0.3, "over_assignment": 1.2}
    >>> stretch = scenario_assumptions(params, {"name": "stretch", "target_growth": 0.4})
    >>> stretch.name, stretch.target_growth, stretch.over_assignment
    ('stretch', 0.4, 1.2)
    """
    return with_scenario(assumptions(params, where=where), scenario, where=where)


def with_scenario(
    base: Assumptions, scenario: Mapping[str, Any], where: str = "scenarios"
) -> Assumptions:
    """The base assumption set with a scenario's changes (its ``name`` and any assumption keys).

    Parameters
    ----------
    base : Assumptions
        The assumption set changed.
    scenario : mapping
        ``name`` and the assumption keys it changes (values as in YAML).
    where : str
        Named in error messages.

    Returns
    -------
    Assumptions

    Examples
    --------
    >>> base = Assumptions(plan_year="FY2027", target_growth=0.25)
    >>> downside = with_scenario(base, {"name": "downside", "target_growth": "10%"})
    >>> downside.name, downside.plan_year, downside.target_growth
    ('downside', 'FY2027', 0.1)
    """
    label = f"{where}: scenario {scenario.get('name')!r}"
    # Each value read and checked alone, then the changed set as a whole; both name the scenario.
    changed = assumptions_from_dict(dict(scenario), where=label)
    try:
        return base.with_changes(**{k: getattr(changed, k) for k in scenario})
    except ParameterError as exc:
        raise ParameterError(f"{label}: {exc}") from None


def next_cycle(as_of: Any, start_month: int, naming: str = config.FISCAL_YEAR_NAMING) -> str:
    """The cycle planned by default: the fiscal quarter after the last month of actuals.

    Parameters
    ----------
    as_of : date-like
        Last month of actuals.
    start_month : int
        First month of the fiscal year, 1-12.
    naming : str
        Fiscal years named by the year they ``"end"`` or ``"start"`` in.

    Returns
    -------
    str
        A fiscal quarter label, e.g. ``"FY2027-Q1"``.

    Examples
    --------
    >>> next_cycle("2026-10-01", 11), next_cycle("2025-12-01", 4), next_cycle("2025-12-01", 1)
    ('FY2027-Q1', 'FY2026-Q4', 'FY2026-Q1')
    """
    return fcal.next_quarter(fcal.current_quarter(pd.Timestamp(as_of), int(start_month), naming))


def check_cycle(params: Mapping[str, Any], cube: Any) -> str:
    """Check that the cycle comes after the cube's actuals; return the cycle.

    Without a cycle (``None``), the cycle is the fiscal quarter after the cube's
    actuals (:func:`next_cycle`), as ``revmodel plan`` settles it.

    Parameters
    ----------
    params : mapping
        Parameters with a ``cycle``.
    cube : xr.Dataset
        The cube (its ``as_of`` and fiscal calendar).

    Returns
    -------
    str
        The cycle.

    Raises
    ------
    ParameterError
        When the cycle's first month is not after ``as_of``, naming both.

    Examples
    --------
    >>> ds.attrs["as_of"]
    '2026-10-01'
    >>> check_cycle({"cycle": "FY2027-Q1"}, ds)
    'FY2027-Q1'
    >>> check_cycle({"cycle": None}, ds)
    'FY2027-Q1'
    >>> check_cycle({"cycle": "FY2026-Q4"}, ds)
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: cycle FY2026-Q4 starts 2026-08, but the data has actuals to 2026-10: plan a later quarter (the next one is FY2027-Q1) or set as_of earlier.
    """
    start = int(cube.attrs["fiscal_year_start"])
    naming = str(cube.attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING))
    as_of = pd.Timestamp(cube.attrs["as_of"])
    following = next_cycle(as_of, start, naming)
    if params.get("cycle") is None:
        return following
    months = fcal.quarter_months(params["cycle"], start_month=start, naming=naming)
    if months[0] <= as_of:
        raise ParameterError(
            f"cycle {params['cycle']} starts {months[0]:%Y-%m}, but the data has actuals to "
            f"{as_of:%Y-%m}: plan a later quarter (the next one is {following}) "
            "or set as_of earlier."
        )
    return str(params["cycle"])


def read_file(path: str | Path) -> dict[str, Any]:
    """The mapping a parameters file holds, read safely (:func:`revmodel.yamlio.load_yaml`).

    Raises
    ------
    ParameterError
        No such file, too large, not YAML, aliases or anchors, nested too
        deeply, or not a mapping; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: no such parameters file; see parameters/ for examples.")
    data = load_yaml(path, error=ParameterError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values.")
    return data


#: Keys holding a path: relative in a parameters file, they start at the file's folder.
PATH_KEYS: tuple[str, ...] = ("data_dir", "mapping")


def anchor_paths(values: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``values`` with the relative paths of :data:`PATH_KEYS` made to start at ``folder``.

    A parameters file says ``data_dir: ../data`` of its own folder, wherever
    ``revmodel`` runs from; absolute paths and ``~`` are kept as written.
    """
    out = dict(values)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            out[key] = os.path.normpath(Path(folder).resolve() / Path(value))
    return out


def load(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read and check a parameters file.

    Parameters
    ----------
    path : str or Path
        The YAML file; its relative ``data_dir`` and ``mapping`` start at its folder.
    overrides : mapping, optional
        Values that replace the file's (e.g. ``{"data_dir": ...}`` from ``--data``;
        relative paths there start at the project folder).

    Returns
    -------
    dict
        See :func:`check`.

    Raises
    ------
    ParameterError
        Any problem :func:`read_file` or :func:`check` finds, naming the file and the key.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "FY2027-Q1.yaml"
    ...     _ = path.write_text(
    ...         f"cycle: FY2027-Q1\\ndata_dir: {folder}\\ntarget_growth: 0.3\\n"
    ...         "scenarios: [{name: stretch, target_growth: 0.4}]\\n", encoding="utf-8")
    ...     params = load(path)
    >>> params["cycle"], params["horizon"], params["target_growth"], params["scenarios"]
    ('FY2027-Q1', 15, 0.3, [{'name': 'stretch', 'target_growth': 0.4}])
    """
    path = Path(path)
    data = anchor_paths(read_file(path), path.parent)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return check(data, where=str(path), base_dir=path.parent)


def notebook_parameters(params: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a notebook declares, taken from a checked parameters mapping."""
    return {k: params[k] for k in declared if k in params}


def quarter_months(params: Mapping[str, Any]):
    """The months of the cycle's quarter (first of month)."""
    return fcal.quarter_months(
        params["cycle"],
        start_month=int(params.get("fiscal_year_start", config.FISCAL_YEAR_START)),
        naming=params.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING),
    )
