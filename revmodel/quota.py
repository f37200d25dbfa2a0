"""Quotas: the company target allocated down the hierarchy, checked against capacity.

Top-down
    :func:`company_target` (last year's bookings grown by ``target_growth``, or
    ``target_amount``) is allocated region -> segment -> team (a manager within
    a region and segment) -> rep, each level in whole currency units that add
    up exactly to their parent (largest-remainder rounding, :func:`allocate`).
    Rep quotas of a team add up to ``over_assignment`` times the team's quota
    (rounded to a whole unit). Each rep's quota is then phased over the plan
    months by the historical seasonality of its segment, again exactly.

    The allocation weight of a rep is its **basis** (what a fully ramped year
    in the seat is worth) times its **ramp-years** in the plan, the sum over
    plan months of its ramp factor (0 when not employed) over 12. New hires,
    mid-year starters and leavers therefore get quota only for the months they
    are employed, scaled by their ramp; a month's quota is proportional to
    ``seasonality x ramp``. Bases:

    - ``history``: the rep's bookings per ramped rep-year in the last fiscal
      year; reps with too little history (and planned hires) take their
      segment's productivity.
    - ``potential``: a score per rep (e.g. :func:`revmodel.territory.rep_potential`);
      a seat without one takes the mean of its segment and region.
    - ``capacity``: the productivity of the rep's segment (so quotas follow ramped capacity).
    - ``blend``: the mean of the bases' shares (history, capacity and, when
      given, potential), or a weighted mean with ``blend_weights``.

Bottom-up
    A seat's expected capacity (:func:`revmodel.capacity.capacity_plan`):
    ramped rep equivalents times productivity. :func:`compare` shows the gap at
    every level.

Checks
    :func:`attainment` with a tolerance (at or above it counts as met),
    :func:`expected_attainment` and :func:`balance` (spread of quota to potential,
    reps out of line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import calendar as fcal
from revmodel import capacity as cap
from revmodel import config, formatting
from revmodel.allocation import largest_remainder_groups
from revmodel.assumptions import DEFAULT_ATTAINMENT_TOLERANCE, Assumptions, settle_plan_year
from revmodel.errors import DataError, InfeasibleError, ParameterError

__all__ = [
    "BASES",
    "allocate",
    "allocate_levels",
    "attainment",
    "balance",
    "bottom_up",
    "base_year_bookings",
    "company_target",
    "compare",
    "expected_attainment",
    "top_down",
]

BASES: tuple[str, ...] = ("history", "potential", "capacity", "blend")
#: Attainment at or above which a quota counts as met [ratio] (one definition).
DEFAULT_TOLERANCE: float = DEFAULT_ATTAINMENT_TOLERANCE
#: Quota-to-potential ratios outside this band around the median are out of line [ratio].
BALANCE_BAND: tuple[float, float] = (0.8, 1.25)
#: ... and so are ratios more than this many standard deviations from the mean.
BALANCE_Z: float = 2.0
#: The standard deviation behind ``z`` is at least this share of the median ratio.
BALANCE_SD_FLOOR: float = 0.05

_CUR = config.CURRENCY


def _currency(*objs: Any) -> str:
    """The ISO 4217 code the first of ``objs`` that names one carries (its ``currency`` attr)."""
    for obj in objs:
        code = getattr(obj, "attrs", {}).get("currency")
        if code:
            return str(code)
    return _CUR


# --------------------------------------------------------------------------- rounding


def _allocate_rows(totals: np.ndarray, weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Split each row total over the row's columns (months), exactly in whole units.

    Rows whose ``weights`` are all zero use ``fallback`` instead; ties go to the
    earlier month (:func:`revmodel.allocation.largest_remainder_groups`).
    """
    wsum = weights.sum(axis=1)
    w = np.where((wsum > 0)[:, None], weights, fallback)
    rows, cols = w.shape
    group = np.repeat(np.arange(rows), cols)
    out, _ = largest_remainder_groups(np.asarray(totals, dtype=float), group, w.ravel(), rows)
    return out.reshape(rows, cols)


def _whole(total: float, name: str = "total") -> float:
    total = float(total)
    if not np.isfinite(total) or total < 0:
        raise ParameterError(f"{name} must be a finite amount >= 0, got {total!r}.")
    return float(np.rint(total))


def _check_weights(w: np.ndarray, name: str = "weights") -> np.ndarray:
    w = np.asarray(w, dtype=float)
    if w.ndim != 1:
        raise ParameterError(f"{name} must be one-dimensional, got shape {w.shape}.")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad):
        raise ParameterError(
            f"{name} must be finite and >= 0: position {int(bad[0])} is {float(w[bad[0]])!r}."
        )
    return w


def allocate(total: float, weights: Sequence[float] | np.ndarray | xr.DataArray):
    """Split ``total`` in proportion to ``weights``, in whole currency units that add up exactly.

    Largest-remainder rounding: each share is rounded down, and the units left
    over go one each to the largest remainders (ties to the earlier position).

    Parameters
    ----------
    total : float
        Amount to split [currency]; rounded to the nearest whole unit first.
    weights : array-like or xarray.DataArray
        Non-negative weights, one per child (1-D).

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        Whole-unit allocations [currency], like ``weights``; they sum to ``round(total)``.

    Examples
    --------
    >>> allocate(100, [1, 1, 1]).tolist()
    [34.0, 33.0, 33.0]
    """
    t = _whole(total)
    as_da = isinstance(weights, xr.DataArray)
    w = _check_weights(weights.values if as_da else weights)
    if len(w) == 0:
        if t > 0:
            raise ParameterError(f"allocate: no children to split {t:,.0f} over.")
        return weights.copy(data=np.zeros(0)) if as_da else np.zeros(0)
    out, stuck = largest_remainder_groups(np.array([t]), np.zeros(len(w), dtype=np.int64), w, 1)
    if stuck[0]:
        raise ParameterError(
            f"allocate: every weight is zero, so there is nothing to split {t:,.0f} by: "
            "give at least one positive weight."
        )
    return weights.copy(data=out) if as_da else out


def allocate_levels(
    total: float,
    weights: Sequence[float] | np.ndarray,
    levels: Sequence[Sequence],
    over_assignment: float = 1.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Allocate ``total`` down a hierarchy whose leaves carry ``weights``.

    Parameters
    ----------
    total : float
        Amount at the top [currency]; rounded to a whole unit.
    weights : array-like
        Weight of each leaf (N,).
    levels : sequence of array-like
        Labels of each leaf at each level below the top, coarse to fine (each
        of length N); a node is the path of labels down to it.
    over_assignment : float
        Leaves of a bottom-level node add up to ``round(over_assignment x node)``.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        Per level, then for the leaves: (node of each leaf [int codes], node
        totals [currency]). Every node's children add up exactly to it.

    Examples
    --------
    100 over two regions (weights 1 + 1 and 2), then over-assigned by 10 %:

    >>> levels = allocate_levels(100, [1, 1, 2], [["East", "East", "West"]], over_assignment=1.1)
    >>> [totals.tolist() for _, totals in levels]
    [[50.0, 50.0], [28.0, 27.0, 55.0]]
    """
    w = _check_weights(weights)
    t = _whole(total)
    n = len(w)
    parent = np.zeros(n, dtype=np.int64)
    totals = np.array([t])
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for depth, labels in enumerate(levels):
        codes, _ = pd.factorize(np.asarray(labels, dtype=object))
        if len(codes) != n:
            raise ParameterError(f"levels[{depth}] has {len(codes)} labels for {n} weights.")
        width = codes.max(initial=0) + 1
        uniq, node = np.unique(parent * width + codes, return_inverse=True)
        node_parent = uniq // width
        node_w = np.bincount(node, weights=w, minlength=len(uniq))
        node_tot, stuck = largest_remainder_groups(totals, node_parent, node_w, len(totals))
        if stuck.any():
            raise InfeasibleError(
                f"allocate_levels: {totals[stuck].sum():,.0f} cannot be split at level "
                f"{depth}: every weight below it is zero."
            )
        parent, totals = node, node_tot
        out.append((node, node_tot))
    leaf_tot = np.rint(totals * float(over_assignment))
    leaves, stuck = largest_remainder_groups(leaf_tot, parent, w, len(totals))
    if stuck.any():
        raise InfeasibleError(
            f"allocate_levels: {leaf_tot[stuck].sum():,.0f} cannot be split over leaves: "
            "every weight below it is zero."
        )
    out.append((np.arange(n), leaves))
    return out


# --------------------------------------------------------------------------- target


def company_target(source: xr.Dataset, assumptions: Assumptions) -> float:
    """The company bookings target for the plan year [currency/year].

    ``assumptions.target_amount`` when set, else the bookings of the last
    complete fiscal year of actuals (see :func:`revmodel.capacity.plan_inputs`)
    times ``1 + target_growth``.

    Parameters
    ----------
    source : xarray.Dataset
        The revenue cube, or :func:`revmodel.capacity.plan_inputs` of it.
    assumptions : Assumptions
        Uses ``target_amount``, else ``target_growth``.

    Returns
    -------
    float
        The target [currency/year].

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> last_year = cap.plan_inputs(ds).attrs["last_year_bookings"]
    >>> company_target(ds, Assumptions(target_growth=0.25)) == last_year * 1.25
    True
    >>> company_target(ds, Assumptions(target_amount=30e6))
    30000000.0
    """
    if assumptions.target_amount is not None:
        return float(assumptions.target_amount)
    last, window = base_year_bookings(source, settle_plan_year(assumptions, source).plan_year)
    if not last > 0:
        raise DataError(
            f"no bookings in {window} to grow a target from: set assumptions.target_amount."
        )
    return last * (1.0 + assumptions.target_growth)


def base_year_bookings(source: xr.Dataset, plan_year: str) -> tuple[float, str]:
    """The bookings a plan year's target grows from, and the period they cover.

    The fiscal year before ``plan_year`` when its actuals are complete (planning FY2027
    grows FY2026, even when FY2027's actuals are in already); while that year is still
    running (a last-quarter cycle planning the next year), the last twelve months of
    actuals; without a complete fiscal year, the last twelve months of actuals or fewer,
    annualised (:func:`revmodel.capacity.plan_inputs`).

    Parameters
    ----------
    source : xarray.Dataset
        The revenue cube, or :func:`revmodel.capacity.plan_inputs` of it.
    plan_year : str
        The fiscal year planned, e.g. ``"FY2027"``.

    Returns
    -------
    (float, str)
        Company bookings [currency/year] and the fiscal year (or months) they cover.

    Raises
    ------
    DataError
        Every complete fiscal year of actuals is the plan year or later: there is no
        year before it to grow from.

    Examples
    --------
    ``ds`` has actuals to October 2026, the end of its fiscal year FY2026:

    >>> base_year_bookings(ds, "FY2027")[1], base_year_bookings(ds, "FY2026")[1]
    ('FY2026', 'FY2025')
    >>> base_year_bookings(ds, "FY2027")[0] == cap.plan_inputs(ds).attrs["last_year_bookings"]
    True
    """
    inp = cap.plan_inputs(source)
    years = list(inp.attrs.get("complete_years", ()))
    if not years:
        return float(inp.attrs["last_year_bookings"]), str(inp.attrs["history_window"])
    plan = fcal.parse_period(plan_year).year
    before = [i for i, y in enumerate(years) if fcal.parse_period(y).year < plan]
    if not before:
        raise DataError(
            f"the plan year {plan_year} has no complete fiscal year of actuals before it to grow "
            f"a target from (the first is {years[0]}): plan a later year or set the company target."
        )
    last = before[-1]
    if fcal.parse_period(years[last]).year < plan - 1 and "trailing_year" in inp.attrs:
        return float(inp.attrs["trailing_year_bookings"]), str(inp.attrs["trailing_year"])
    return float(inp.attrs["complete_year_bookings"][last]), years[last]


# --------------------------------------------------------------------------- bases


def _potential_per_rep(potential, plan: xr.Dataset) -> np.ndarray:
    """Potential per seat; seats without one get the mean of their segment and region, then
    of their segment, then of everyone."""
    reps = plan["rep"].values
    if isinstance(potential, xr.DataArray):
        if potential.dims != ("rep",):
            raise ParameterError(
                f"potential must be over the single dimension 'rep', got {potential.dims}."
            )
        series = potential.to_series()
    elif isinstance(potential, pd.Series):
        series = potential
    elif isinstance(potential, Mapping):
        series = pd.Series(dict(potential), dtype=float)
    else:
        raise ParameterError(
            "potential must be a DataArray over rep, a pandas Series or a mapping indexed "
            f"by rep id, got {type(potential).__name__}."
        )
    series = pd.to_numeric(series, errors="coerce")
    series.index = series.index.astype(str)
    bad = series[(series < 0) | ~np.isfinite(series.fillna(0))]
    if len(bad):
        raise ParameterError(
            f"potential of rep {str(bad.index[0])!r} is {float(bad.iloc[0])!r}; potentials must be >= 0."
        )
    p = series.reindex(pd.Index(reps.astype(str))).to_numpy(dtype=float)
    if np.isnan(p).all():
        raise ParameterError(
            "potential names none of the plan's reps: index it by rep id (e.g. "
            "territory.rep_potential(plan))."
        )
    frame = pd.DataFrame({"p": p, "s": plan["rep_segment"].values, "r": plan["rep_region"].values})
    p = frame["p"].fillna(frame.groupby(["s", "r"])["p"].transform("mean"))
    p = p.fillna(frame.groupby("s")["p"].transform("mean")).fillna(frame["p"].mean())
    return p.to_numpy(dtype=float)


def _basis_weights(
    basis: str,
    plan: xr.Dataset,
    potential,
    blend_weights: Mapping[str, float] | None,
) -> dict[str, np.ndarray]:
    """Full-year worth of each seat under each basis used [currency/year or score]."""
    seg_idx = cap._lookup(plan["segment"].values, plan["rep_segment"].values)
    prod = plan["productivity"].values[seg_idx]
    out: dict[str, np.ndarray] = {}
    names = [basis] if basis != "blend" else list(blend_weights or ())
    if basis == "blend" and not names:
        names = ["history", "capacity"] + (["potential"] if potential is not None else [])
    for name in names:
        if name == "history":
            rr = plan["run_rate"].values
            out[name] = np.where(np.isfinite(rr), rr, prod)
        elif name == "capacity":
            out[name] = prod
        elif name == "potential":
            if potential is None:
                raise ParameterError(
                    "allocation basis 'potential' needs a potential per rep: pass potential= "
                    "(e.g. territory.rep_potential(plan)) or use basis 'history'."
                )
            out[name] = _potential_per_rep(potential, plan)
        else:
            raise ParameterError(
                f"blend_weights: {name!r} is not a basis; use history, potential or capacity."
            )
    return out


# --------------------------------------------------------------------------- top-down


def _first_member(node: np.ndarray) -> np.ndarray:
    """Position of the first leaf of each node (nodes numbered 0..k-1)."""
    return np.unique(node, return_index=True)[1]


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _blend(
    values: Mapping[str, np.ndarray],
    blend_weights: Mapping[str, float] | None,
    ramp_years: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Seat weights and basis values of a blend: each basis normalised, then weighted.

    The basis value is 1 for an average seat.
    """
    bw = dict(blend_weights) if blend_weights else dict.fromkeys(values, 1.0)
    wsum = sum(float(v) for v in bw.values())
    if not wsum > 0 or any(float(v) < 0 for v in bw.values()):
        raise ParameterError(f"blend_weights must be >= 0 and not all zero, got {bw!r}.")
    weight = np.zeros(len(ramp_years))
    basis_value = np.zeros(len(ramp_years))
    for name, v in values.items():
        eff = v * ramp_years
        s = eff.sum()
        weight += float(bw[name]) / wsum * (eff / s if s > 0 else eff)
        tot_v = v.sum()
        basis_value += float(bw[name]) / wsum * (v / tot_v if tot_v > 0 else v)
    return weight, basis_value * len(basis_value)


def _seat_weights(
    basis: str,
    plan: xr.Dataset,
    potential,
    blend_weights: Mapping[str, float] | None,
    ramp_years: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each seat's share of the target (its basis value times its ramped years) and basis value."""
    values = _basis_weights(basis, plan, potential, blend_weights)
    if basis == "blend":
        return _blend(values, blend_weights, ramp_years)
    return values[basis] * ramp_years, values[basis]


@dataclass(frozen=True)
class _Hierarchy:
    """The target allocated down region > segment > team (manager) > rep.

    ``*_node`` gives each seat's node at that level (codes 0..k-1 in order of
    first appearance), ``*_total`` each node's total [currency]; ``rep_total``
    is each seat's quota over the plan months.
    """

    reg_code: np.ndarray
    reg_names: np.ndarray
    seg_code: np.ndarray
    seg_names: np.ndarray
    manager: np.ndarray
    reg_node: np.ndarray
    reg_total: np.ndarray
    seg_node: np.ndarray
    seg_total: np.ndarray
    team_node: np.ndarray
    team_total: np.ndarray
    rep_total: np.ndarray


def _allocate_hierarchy(
    plan: xr.Dataset, total: float, weight: np.ndarray, over_assignment: float
) -> _Hierarchy:
    reg_code, reg_names = _codes(plan["rep_region"].values)
    seg_code, seg_names = _codes(plan["rep_segment"].values)
    mgr = plan["manager"].values
    if weight.sum() <= 0 and total > 0:
        raise InfeasibleError(
            f"no seat has any weight to carry the target of "
            f"{formatting.money(total, _currency(plan), compact=False)}: no rep is "
            "employed in the plan months (or every basis value is zero); add hires."
        )
    levels = allocate_levels(
        total, weight, [reg_code, seg_code, mgr], over_assignment=over_assignment
    )
    (reg_node, reg_tot), (seg_node, seg_tot), (team_node, team_tot), (_, rep_tot) = levels
    return _Hierarchy(
        reg_code=reg_code,
        reg_names=reg_names,
        seg_code=seg_code,
        seg_names=seg_names,
        manager=mgr,
        reg_node=reg_node,
        reg_total=reg_tot,
        seg_node=seg_node,
        seg_total=seg_tot,
        team_node=team_node,
        team_total=team_tot,
        rep_total=rep_tot,
    )


def _monthly_quota(plan: xr.Dataset, rep_total: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """Each seat's quota phased over the months by its segment's seasonality x its ramp, exactly."""
    cal = fcal.FiscalCalendar.from_attrs(plan)
    fm = cal.fiscal_month(plan["month"].values) - 1
    seasonality = plan["seasonality"].values
    s_idx = cap._lookup(plan["segment"].values, plan["rep_segment"].values)
    season = np.where(s_idx[:, None] >= 0, seasonality[np.maximum(s_idx, 0)][:, fm], 1.0 / 12)
    return _allocate_rows(rep_total, season * ramp, ramp)


def _region_quota(plan: xr.Dataset, h: _Hierarchy) -> np.ndarray:
    """Quota by region, over the plan's regions (0 where no seat sells)."""
    regions = plan["region"].values
    first = _first_member(h.reg_node)
    out = np.zeros(len(regions))
    out[cap._lookup(regions, h.reg_names[h.reg_code[first]])] = h.reg_total
    return out


def _segment_quota(plan: xr.Dataset, h: _Hierarchy) -> np.ndarray:
    """Quota by (segment, region) (0 where no seat sells)."""
    segments, regions = plan["segment"].values, plan["region"].values
    first = _first_member(h.seg_node)
    table = np.zeros((len(segments), len(regions)))
    np.add.at(
        table,
        (
            cap._lookup(segments, h.seg_names[h.seg_code[first]]),
            cap._lookup(regions, h.reg_names[h.reg_code[first]]),
        ),
        h.seg_total,
    )
    return table


def _teams(h: _Hierarchy) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each team's label ``region/segment/manager``, region, segment and manager."""
    first = _first_member(h.team_node)
    t_reg = h.reg_names[h.reg_code[first]].astype(str)
    t_seg = h.seg_names[h.seg_code[first]].astype(str)
    t_mgr = np.asarray(h.manager[first], dtype=str)
    labels = np.strings.add(
        np.strings.add(np.strings.add(t_reg, "/"), np.strings.add(t_seg, "/")), t_mgr
    )
    return labels, t_reg, t_seg, t_mgr


def _top_down_variables(
    plan: xr.Dataset,
    h: _Hierarchy,
    quota: np.ndarray,
    basis: str,
    basis_value: np.ndarray,
    ramp_years: np.ndarray,
    total: float,
) -> dict[str, tuple]:
    unit = _currency(plan)
    with np.errstate(divide="ignore", invalid="ignore"):
        full_quota = np.where(ramp_years > 0, h.rep_total / ramp_years, np.nan)
    s_idx = cap._lookup(plan["segment"].values, plan["rep_segment"].values)
    seg_prod = plan["productivity"].values[s_idx]
    rr = plan["run_rate"].values
    return {
        "quota": (
            ("rep", "month"),
            quota,
            {"units": f"{unit}/month", "long_name": "Quota (top-down)"},
        ),
        "rep_quota": (
            "rep",
            h.rep_total,
            {"units": unit, "long_name": "Quota over the plan months"},
        ),
        "full_quota": (
            "rep",
            full_quota,
            {"units": f"{unit}/year", "long_name": "Quota per ramped year"},
        ),
        "basis_value": (
            "rep",
            np.asarray(basis_value, dtype=float),
            {
                "units": f"{unit}/year" if basis in ("history", "capacity") else "score",
                "long_name": f"Allocation basis ({basis})",
            },
        ),
        "ramp_years": ("rep", ramp_years, {"units": "years", "long_name": "Ramped years"}),
        "history": (
            "rep",
            np.where(np.isfinite(rr), rr, seg_prod),
            {"units": f"{unit}/year", "long_name": "Run rate, else segment productivity"},
        ),
        "team_quota": (
            "team",
            h.team_total,
            {"units": unit, "long_name": "Team quota before over-assignment"},
        ),
        "segment_quota": (
            ("segment", "region"),
            _segment_quota(plan, h),
            {"units": unit, "long_name": "Quota by segment within region"},
        ),
        "region_quota": (
            "region",
            _region_quota(plan, h),
            {"units": unit, "long_name": "Quota by region"},
        ),
        "target": ((), total, {"units": unit, "long_name": "Company target"}),
    }


_PLAN_REP_COORDS = (
    "fiscal_quarter",
    "fiscal_year",
    "manager",
    "rep_region",
    "rep_segment",
    "hire_date",
    "end_date",
    "planned",
)


def _top_down_coords(plan: xr.Dataset, h: _Hierarchy) -> dict[str, Any]:
    labels, t_reg, t_seg, t_mgr = _teams(h)
    return {
        "rep": plan["rep"].values,
        "month": plan["month"].values,
        "segment": plan["segment"].values,
        "region": plan["region"].values,
        "team": labels,
        "team_region": ("team", t_reg),
        "team_segment": ("team", t_seg),
        "team_manager": ("team", t_mgr),
        "rep_team": ("rep", labels[h.team_node]),
        **{
            c: ("rep" if plan[c].dims == ("rep",) else "month", plan[c].values)
            for c in _PLAN_REP_COORDS
        },
    }


def top_down(
    source: xr.Dataset,
    assumptions: Assumptions,
    basis: str | None = None,
    potential: xr.DataArray | pd.Series | Mapping[str, float] | None = None,
    capacity: xr.Dataset | None = None,
    months: Sequence | pd.DatetimeIndex | None = None,
    target: float | None = None,
    blend_weights: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Quotas by rep and month, allocated top-down from the company target.

    Parameters
    ----------
    source : xarray.Dataset
        The revenue cube, or :func:`revmodel.capacity.plan_inputs` of it.
    assumptions : Assumptions
        Uses ``target_growth``/``target_amount``, ``over_assignment``,
        ``allocation_basis`` and (through the capacity plan) ramp, attrition and hires.
    basis : {"history", "potential", "capacity", "blend"}, optional
        Allocation basis; default ``assumptions.allocation_basis``.
    potential : DataArray over rep, Series or mapping, optional
        Potential per rep [score], for the ``potential`` and ``blend`` bases.
    capacity : xarray.Dataset, optional
        A :func:`revmodel.capacity.capacity_plan` to reuse (its seats and months).
    months : sequence of dates, optional
        Months to plan when ``capacity`` is not given; default the plan year.
    target : float, optional
        Company target over the plan months [currency]; default
        :func:`company_target` times (plan months / 12).
    blend_weights : mapping, optional
        Weights of the bases in a blend, e.g. ``{"history": 0.5, "potential": 0.5}``.

    Returns
    -------
    xarray.Dataset
        - ``quota(rep, month)`` [currency/month], whole units
        - ``rep_quota(rep)`` over the plan months [currency], the sum of ``quota``
        - ``full_quota(rep)`` ``rep_quota`` per ramp-year: the quota of a fully
          ramped year [currency/year]; NaN for a seat with no ramped month
        - ``basis_value(rep)`` the basis [currency/year or score], ``ramp_years(rep)`` [years]
        - ``history(rep)`` run rate, or segment productivity without one [currency/year]
        - ``team_quota(team)`` before over-assignment; ``segment_quota(segment, region)``;
          ``region_quota(region)``; ``target`` [currency]
        Coordinates: rep coords of the capacity plan plus ``rep_team(rep)``;
        ``team_region``, ``team_segment``, ``team_manager`` on ``team``.
        Every level adds up exactly to its parent; a team's reps add up to
        ``round(over_assignment x team_quota)``.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> q = top_down(ds, Assumptions(target_amount=40e6, over_assignment=1.1))
    >>> float(q["target"]), float(q["team_quota"].sum()), float(q["region_quota"].sum())
    (40000000.0, 40000000.0, 40000000.0)

    Each team's reps carry 1.1 times the team quota, and the months add up to each rep's quota:

    >>> by_team = q["rep_quota"].groupby("rep_team").sum()
    >>> bool((by_team == np.rint(1.1 * q["team_quota"].sel(team=by_team["rep_team"].values).values)).all())
    True
    >>> bool((q["quota"].sum("month") == q["rep_quota"]).all())
    True
    """
    basis = assumptions.allocation_basis if basis is None else basis
    if basis not in BASES:
        raise ParameterError(
            f"allocation basis {basis!r} is unknown: use one of {', '.join(BASES)}."
        )
    inp = cap.plan_inputs(source)
    plan = capacity if capacity is not None else cap.capacity_plan(inp, assumptions, months)
    n_months = plan.sizes["month"]
    total = (
        float(target) if target is not None else company_target(inp, assumptions) * n_months / 12.0
    )
    total = _whole(total, "target")
    ramp = plan["ramp"].values  # (rep, month)
    ramp_years = ramp.sum(axis=1) / 12.0
    weight, basis_value = _seat_weights(basis, plan, potential, blend_weights, ramp_years)
    h = _allocate_hierarchy(plan, total, weight, assumptions.over_assignment)
    quota = _monthly_quota(plan, h.rep_total, ramp)
    return xr.Dataset(
        _top_down_variables(plan, h, quota, basis, basis_value, ramp_years, total),
        coords=_top_down_coords(plan, h),
        attrs={
            **plan.attrs,
            "basis": basis,
            "over_assignment": float(assumptions.over_assignment),
            "target": total,
        },
    )


# --------------------------------------------------------------------------- bottom-up


def bottom_up(plan: xr.Dataset) -> xr.Dataset:
    """Quotas from capacity: each seat's expected ramped capacity times productivity.

    Parameters
    ----------
    plan : xarray.Dataset
        From :func:`revmodel.capacity.capacity_plan`.

    Returns
    -------
    xarray.Dataset
        ``quota(rep, month)`` [currency/month] (expected, with attrition and
        backfills: what the seat is expected to book) and ``rep_quota(rep)`` [currency].

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> plan = cap.capacity_plan(ds, Assumptions())
    >>> bu = bottom_up(plan)
    >>> bool(np.allclose(bu["quota"], plan["capacity"])), bu["rep_quota"].attrs["units"]
    (True, 'USD')
    """
    q = plan["capacity"]
    return xr.Dataset(
        {
            "quota": q.assign_attrs(
                units=f"{_currency(plan)}/month", long_name="Quota (bottom-up)"
            ),
            "rep_quota": q.sum("month").assign_attrs(
                units=_currency(plan), long_name="Quota over the plan months (bottom-up)"
            ),
        },
        attrs=dict(plan.attrs),
    )


def compare(top: xr.Dataset, bottom: xr.Dataset) -> xr.Dataset:
    """Top-down quota against bottom-up capacity at every level.

    Parameters
    ----------
    top : xarray.Dataset
        From :func:`top_down`.
    bottom : xarray.Dataset
        From :func:`bottom_up` (the same seats).

    Returns
    -------
    xarray.Dataset
        For each level ``total``, ``region``, ``segment`` (segment x region),
        ``team`` and ``rep``: ``top_down_<level>``, ``bottom_up_<level>`` and
        ``gap_<level>`` = top-down - bottom-up (positive: quota above capacity)
        [currency]. Above the rep, top-down is before over-assignment; at the
        rep it is the rep's (over-assigned) quota.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> plan = cap.capacity_plan(ds, Assumptions())
    >>> c = compare(top_down(ds, Assumptions(), capacity=plan), bottom_up(plan))
    >>> bool(np.isclose(c["gap_total"], c["top_down_total"] - c["bottom_up_total"]))
    True
    """
    b = bottom["rep_quota"].reindex(rep=top["rep"].values, fill_value=0.0)
    bv = b.values
    reg = cap._lookup(top["region"].values, top["rep_region"].values)
    seg = cap._lookup(top["segment"].values, top["rep_segment"].values)
    team = cap._lookup(top["team"].values, top["rep_team"].values)
    nr, ns = top.sizes["region"], top.sizes["segment"]
    b_region = np.bincount(reg, weights=bv, minlength=nr)
    b_seg = np.bincount(seg * nr + reg, weights=bv, minlength=ns * nr).reshape(ns, nr)
    b_team = np.bincount(team, weights=bv, minlength=top.sizes["team"])
    unit = {"units": _currency(top, bottom)}
    out = xr.Dataset(coords={k: top[k] for k in ("rep", "region", "segment", "team")})
    pairs = {
        "total": (top["target"].values, np.asarray(bv.sum()), ()),
        "region": (top["region_quota"].values, b_region, ("region",)),
        "segment": (top["segment_quota"].values, b_seg, ("segment", "region")),
        "team": (top["team_quota"].values, b_team, ("team",)),
        "rep": (top["rep_quota"].values, bv, ("rep",)),
    }
    for level, (t, bu, dims) in pairs.items():
        out[f"top_down_{level}"] = (dims, np.asarray(t, dtype=float), unit)
        out[f"bottom_up_{level}"] = (dims, np.asarray(bu, dtype=float), unit)
        out[f"gap_{level}"] = (dims, np.asarray(t, dtype=float) - bu, unit)
    out.attrs = {"over_assignment": top.attrs.get("over_assignment"), "currency": unit["units"]}
    return out


# --------------------------------------------------------------------------- attainment


def _check_tolerance(tolerance: float) -> float:
    t = float(tolerance)
    if not 0.0 < t <= 2.0:
        raise ParameterError(f"tolerance must be in (0, 2], got {tolerance!r}.")
    return t


def _as_rep_array(obj, name: str) -> xr.DataArray:
    if isinstance(obj, xr.Dataset):
        for var in ("bookings", "quota", "capacity", "forecast"):
            if var in obj:
                obj = obj[var]
                break
        else:
            raise ParameterError(
                f"{name}: the Dataset has none of bookings, quota, capacity, forecast."
            )
    if not isinstance(obj, xr.DataArray):
        raise ParameterError(f"{name} must be an xarray DataArray, got {type(obj).__name__}.")
    extra = [d for d in ("segment", "region") if d in obj.dims]
    return obj.sum(extra, skipna=True, min_count=1) if extra else obj


def attainment(
    bookings: xr.DataArray | xr.Dataset,
    quota: xr.DataArray | xr.Dataset,
    tolerance: float = DEFAULT_TOLERANCE,
    over: Sequence[str] = ("month",),
) -> xr.Dataset:
    """Attainment (bookings / quota) and whether it counts as met.

    Parameters
    ----------
    bookings : DataArray or Dataset
        Actual bookings [currency/month]; a cube's ``segment`` and ``region`` are summed away.
    quota : DataArray or Dataset
        Quota [currency/month] (``top_down(...)["quota"]`` or that Dataset).
    tolerance : float
        Attainment at or above this counts as met [ratio], e.g. 0.9.
    over : sequence of str
        Dims summed before the ratio (default the months: attainment over the period).

    Returns
    -------
    xarray.Dataset
        ``bookings``, ``quota`` [currency], ``attainment`` [ratio] (NaN where the
        quota is 0 or bookings are missing) and ``met`` [bool].

    Examples
    --------
    >>> quota = xr.DataArray([100.0, 100.0, 0.0], dims="rep", coords={"rep": ["R1", "R2", "R3"]})
    >>> bookings = xr.DataArray([120.0, 80.0, 50.0], dims="rep", coords={"rep": ["R1", "R2", "R3"]})
    >>> a = attainment(bookings, quota, tolerance=0.9, over=())
    >>> a["attainment"].values.tolist(), a["met"].values.tolist()
    ([1.2, 0.8, nan], [True, False, False])
    """
    tol = _check_tolerance(tolerance)
    code = _currency(bookings, quota)
    b = _as_rep_array(bookings, "bookings")
    q = _as_rep_array(quota, "quota")
    b, q = xr.align(b, q, join="inner")
    sum_dims = [d for d in over if d in b.dims]
    if sum_dims:
        b = b.sum(sum_dims, skipna=True, min_count=1)
        q = q.sum(sum_dims)
    ratio = (b / q).where(q > 0)
    met = ratio >= tol - 1e-12
    return xr.Dataset(
        {
            "bookings": b.assign_attrs(units=code, long_name="Bookings"),
            "quota": q.assign_attrs(units=code, long_name="Quota"),
            "attainment": ratio.assign_attrs(units="1", long_name="Bookings over quota"),
            "met": met.assign_attrs(units="1", long_name=f"Attainment >= {tol:g}"),
        },
        attrs={"tolerance": tol, "currency": code},
    )


def expected_attainment(
    quota: xr.DataArray | xr.Dataset,
    expected: xr.DataArray | xr.Dataset,
    tolerance: float = DEFAULT_TOLERANCE,
    cv: float | None = None,
) -> xr.Dataset:
    """The share of reps expected to attain their quota: one definition for every surface.

    A rep is expected to attain when the bookings its ramped capacity (or a
    forecast) predicts over the period reach ``tolerance`` x its quota; the share
    is over reps with a quota. This deterministic rule is the default because it
    rests only on numbers the plan sets (capacity, quota, tolerance); the
    probabilistic variant (``cv``) depends on a spread of rep outcomes that the
    data does not measure, so it is offered per rep as a chance, never as the
    headline share. The what-if, the quotas app, the plan pack and
    :func:`balance` all call this function.

    Parameters
    ----------
    quota : DataArray or Dataset
        Quota by rep (and month) [currency/month].
    expected : DataArray or Dataset
        Expected bookings by rep (and month): capacity or a forecast [currency/month].
    tolerance : float
        Attainment at or above this counts as met [ratio].
    cv : float, optional
        Coefficient of variation of a rep's bookings around the expectation.
        None: a rep attains when its expected ratio reaches the tolerance.
        Otherwise bookings are lognormal with that spread, and a rep attains
        with probability ``P(bookings >= tolerance x quota)``.

    Returns
    -------
    xarray.Dataset
        ``expected_attainment(rep)`` [ratio], ``p_attain(rep)`` [probability] and
        the scalar ``share_expected_to_attain`` over reps with a quota [ratio].

    Examples
    --------
    >>> import xarray as xr
    >>> q = xr.DataArray([100.0, 100.0], dims="rep", coords={"rep": ["R1", "R2"]})
    >>> e = xr.DataArray([95.0, 80.0], dims="rep", coords={"rep": ["R1", "R2"]})
    >>> float(expected_attainment(q, e, tolerance=0.9)["share_expected_to_attain"])
    0.5
    """
    tol = _check_tolerance(tolerance)
    q = _as_rep_array(quota, "quota")
    e = _as_rep_array(expected, "expected")
    q, e = xr.align(q, e, join="inner")
    if "month" in q.dims:
        q, e = q.sum("month"), e.sum("month", skipna=True)
    ratio = (e / q).where(q > 0)
    if cv is None:
        p = xr.where(ratio >= tol - 1e-12, 1.0, 0.0).where(q > 0)
    else:
        if not float(cv) > 0:
            raise ParameterError(f"cv must be > 0, got {cv!r}.")
        sigma = np.sqrt(np.log1p(float(cv) ** 2))
        with np.errstate(divide="ignore"):
            z = (np.log(tol / ratio) + sigma**2 / 2) / sigma
        from scipy import stats  # here: scipy.stats takes a second to import

        p = xr.apply_ufunc(stats.norm.sf, z).where(q > 0)
    share = p.mean(skipna=True)
    return xr.Dataset(
        {
            "expected_attainment": ratio.assign_attrs(units="1"),
            "p_attain": p.assign_attrs(units="1", long_name="Probability of attaining"),
            "share_expected_to_attain": share.assign_attrs(units="1"),
        },
        attrs={"tolerance": tol, "cv": "none" if cv is None else float(cv)},
    )


# --------------------------------------------------------------------------- balance


def balance(
    quotas: xr.Dataset,
    potential: xr.DataArray | pd.Series | Mapping[str, float] | None = None,
    expected: xr.DataArray | xr.Dataset | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    band: tuple[float, float] = BALANCE_BAND,
    z_limit: float = BALANCE_Z,
) -> xr.Dataset:
    """Is quota spread fairly? Quota-to-potential across reps, and the reps out of line.

    The ratio compared is a rep's quota per ramped year (``full_quota``) over its
    potential, so a new hire's ramp-reduced quota is not mistaken for a light one.
    A rep is **out of line** when its ratio is outside ``band`` times the median
    ratio, or more than ``z_limit`` standard deviations from the mean ratio (the
    standard deviation floored at :data:`BALANCE_SD_FLOOR` of the median, so that
    rounding noise among equal ratios is not flagged). Reps without a quota or a
    positive potential are left out (NaN).

    Parameters
    ----------
    quotas : xarray.Dataset
        From :func:`top_down`.
    potential : DataArray over rep, Series or mapping, optional
        Potential per rep; default the rep's history (run rate, else segment productivity).
    expected : DataArray or Dataset, optional
        Expected bookings by rep (and month), for the share expected to attain.
    tolerance : float
        Attainment tolerance for that share [ratio].
    band : (float, float)
        Acceptable ratio around the median [ratio of the median].
    z_limit : float
        Acceptable standard deviations from the mean.

    Returns
    -------
    xarray.Dataset
        ``ratio(rep)`` [ratio], ``relative(rep)`` (ratio / median), ``z(rep)``,
        ``out_of_line(rep)`` [bool], and scalars ``cv``, ``p10``, ``median``,
        ``p90``, ``n_reps``, ``n_out_of_line`` and (with ``expected``)
        ``share_expected_to_attain``.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> b = balance(top_down(ds, Assumptions()))
    >>> sorted(b.data_vars)[:4], int(b["n_reps"]) > 0
    (['cv', 'median', 'n_out_of_line', 'n_reps'], True)
    >>> bool(np.allclose(b["relative"], b["ratio"] / b["median"], equal_nan=True))
    True
    """
    lo, hi = float(band[0]), float(band[1])
    if not 0 < lo <= 1 <= hi:
        raise ParameterError(f"band must be (low, high) with 0 < low <= 1 <= high, got {band!r}.")
    if "full_quota" not in quotas:
        raise ParameterError("balance needs the Dataset returned by quota.top_down.")
    fq = quotas["full_quota"].values
    if potential is None:
        pot = quotas["history"].values
    else:
        pot = _potential_per_rep(potential, quotas)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((pot > 0) & np.isfinite(fq) & (fq > 0), fq / pot, np.nan)
    ok = np.isfinite(ratio)
    vals = ratio[ok]
    if len(vals) == 0:
        raise DataError("balance: no rep has both a quota and a positive potential.")
    med = float(np.median(vals))
    mean = float(vals.mean())
    sd = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    # Floored, so that rounding noise among otherwise equal ratios is not flagged.
    sd_z = max(sd, BALANCE_SD_FLOOR * med)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(ok, (ratio - mean) / sd_z if sd_z > 0 else 0.0, np.nan)
    rel = ratio / med if med > 0 else np.full_like(ratio, np.nan)
    out_of_line = ok & ((rel < lo) | (rel > hi) | (np.abs(np.nan_to_num(z)) > z_limit))
    rep = ("rep",)
    ds = xr.Dataset(
        {
            "ratio": (rep, ratio, {"units": "1", "long_name": "Quota per ramped year / potential"}),
            "relative": (rep, rel, {"units": "1", "long_name": "Ratio over the median ratio"}),
            "z": (rep, z, {"units": "1", "long_name": "Standard score of the ratio"}),
            "out_of_line": (rep, out_of_line, {"units": "1"}),
            "cv": ((), sd / mean if mean > 0 else np.nan, {"units": "1"}),
            "p10": ((), float(np.percentile(vals, 10)), {"units": "1"}),
            "median": ((), med, {"units": "1"}),
            "p90": ((), float(np.percentile(vals, 90)), {"units": "1"}),
            "n_reps": ((), int(ok.sum()), {"units": "reps"}),
            "n_out_of_line": ((), int(out_of_line.sum()), {"units": "reps"}),
        },
        coords={"rep": quotas["rep"].values},
        attrs={"band": [lo, hi], "z_limit": float(z_limit)},
    )
    if expected is not None:
        ea = expected_attainment(quotas["quota"], expected, tolerance=tolerance)
        ds["share_expected_to_attain"] = ea["share_expected_to_attain"]
    return ds
