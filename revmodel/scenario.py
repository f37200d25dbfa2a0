"""What-if scenarios: apply assumption sets to the cube and compare the plans.

A plan is a pure function of the cube and one :class:`~revmodel.assumptions.Assumptions`:
capacity (headcount, ramp, attrition, hires), quotas (top-down, with
over-assignment), the capacity gap and the hires that close it, retention (ARR
path, churn, the new ARR needed) and the plan KPIs, with their roll-ups by
region and fiscal quarter. Everything that depends only on the cube is read
once into a :class:`PlanContext`, so changing one assumption recomputes the
whole plan in milliseconds (``benchmarks/bench_whatif.py``).

Stacking several assumption sets gives a Dataset with a ``scenario`` dim;
:func:`compare` shows each scenario against the base by KPI and level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import capacity, quota, retention
from revmodel.assumptions import Assumptions, settle_plan_year
from revmodel.errors import ParameterError

__all__ = ["PLAN_KPIS", "PlanContext", "compare", "plan", "prepare", "stack", "summary"]

#: Plan KPIs: name -> (units, definition). Every one is a variable of :func:`plan` with a ``region`` dim
#: (and the company total as a scalar ``total_<name>``).
PLAN_KPIS: dict[str, tuple[str, str]] = {
    "target": ("USD/year", "Bookings target for the plan year (top-down)"),
    "capacity": (
        "USD/year",
        "Bookings the ramped sales team can deliver (headcount x ramp x productivity)",
    ),
    "gap": ("USD/year", "Target minus capacity (positive: capacity falls short)"),
    "capacity_to_target": ("ratio", "Capacity to target: capacity / target"),
    "hires_needed": ("reps", "Extra reps, starting by their start-by date, that close the gap"),
    "quota": ("USD/year", "Sum of rep quotas (target x over-assignment)"),
    "headcount_end": ("reps", "Expected quota-carrying headcount at the end of the plan year"),
    "reps_expected_to_attain": (
        "ratio",
        "Share of reps whose capacity reaches the attainment tolerance of their quota",
    ),
    "opening_arr": ("USD/year", "ARR at the start of the plan year"),
    "closing_arr": ("USD/year", "Planned ARR at the end of the plan year"),
    "expected_churn_arr": ("USD/year", "ARR expected to churn during the plan year"),
    "required_new_arr": (
        "USD/year",
        "New and expansion ARR needed to reach the ARR target despite churn",
    ),
    "churn_rate": (
        "ratio/year",
        "Annual gross revenue churn the plan applies (retention.plan_churn_rate)",
    ),
}


@dataclass(frozen=True)
class PlanContext:
    """What a plan reads from the cube, read once.

    Attributes
    ----------
    cube : xarray.Dataset
        The revenue cube.
    inputs : xarray.Dataset
        :func:`revmodel.capacity.plan_inputs` of the cube.
    arr_history : xarray.Dataset
        :func:`revmodel.retention.monthly_arr` by segment and region.
    churn_history : xarray.DataArray
        :func:`revmodel.retention.historical_churn_rate` by segment and region.
    company_churn : float
        :func:`revmodel.retention.plan_churn_rate` of the company from history.
    region_churn : xarray.DataArray or float
        The same by region: what a plan applies when its churn rate is not assumed.

    Examples
    --------
    >>> ctx = prepare(ds)
    >>> ctx.inputs.attrs["revmodel_kind"], ctx.churn_history.dims
    ('plan_inputs', ('segment', 'region'))
    """

    cube: xr.Dataset
    inputs: xr.Dataset
    arr_history: xr.Dataset
    churn_history: xr.DataArray
    company_churn: float
    region_churn: xr.DataArray | float


def prepare(cube: xr.Dataset) -> PlanContext:
    """Read the cube once for any number of what-ifs.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube.

    Returns
    -------
    PlanContext

    Examples
    --------
    A context makes each what-if cheap, and gives the same plan as the cube:

    >>> from revmodel.assumptions import Assumptions
    >>> ctx = prepare(ds)
    >>> xr.testing.assert_identical(plan(ctx, Assumptions()), plan(ds, Assumptions()))
    >>> float(plan(ctx, Assumptions(target_amount=40e6))["total_target"])
    40000000.0
    """
    dims = ("segment", "region")
    arr_history = retention.monthly_arr(cube, dims)
    from_history = Assumptions(churn_rate=None)
    return PlanContext(
        cube=cube,
        inputs=capacity.plan_inputs(cube),
        arr_history=arr_history,
        churn_history=retention.historical_churn_rate(cube, dims, history=arr_history),
        company_churn=float(retention.plan_churn_rate(cube, from_history, history=arr_history)),
        region_churn=retention.plan_churn_rate(
            cube, from_history, ("region",), history=arr_history
        ),
    )


def _context(source: xr.Dataset | PlanContext) -> PlanContext:
    return source if isinstance(source, PlanContext) else prepare(source)


def _effective(assumptions: Assumptions) -> Assumptions:
    """Win rates act on capacity through productivity: the same pipeline converts at a higher rate."""
    if assumptions.win_rate_change == 0:
        return assumptions
    combined = (1 + assumptions.productivity_change) * (1 + assumptions.win_rate_change) - 1
    return assumptions.with_changes(productivity_change=combined)


def _by_region(values: np.ndarray, regions: np.ndarray, members: np.ndarray) -> np.ndarray:
    idx = pd.Index(members).get_indexer(regions)
    out = np.zeros(len(members))
    ok = idx >= 0
    np.add.at(out, idx[ok], values[ok])
    return out


@dataclass(frozen=True)
class _PlanParts:
    """The domain plans one scenario is made of."""

    capacity: xr.Dataset  # capacity.capacity_plan
    top: xr.Dataset  # quota.top_down
    hires: pd.DataFrame  # capacity.hires_needed
    retention: xr.Dataset  # retention.retention_plan by segment and region


def _plan_parts(
    ctx: PlanContext,
    a: Assumptions,
    months: Sequence | pd.DatetimeIndex | None,
    potential: pd.Series | xr.DataArray | None,
) -> _PlanParts:
    cap = capacity.capacity_plan(ctx.inputs, _effective(a), months=months)
    top = quota.top_down(
        ctx.inputs, a, capacity=cap, months=cap["month"].values, potential=potential
    )
    # the target by segment and region (before over-assignment)
    hires = capacity.hires_needed(cap, capacity.capacity_gap(cap, top["segment_quota"]))
    ret = retention.retention_plan(
        ctx.cube,
        a,
        dims=("segment", "region"),
        history=ctx.arr_history,
        historical_churn=ctx.churn_history,
        company_churn=ctx.company_churn,
    )
    return _PlanParts(capacity=cap, top=top, hires=hires, retention=ret)


@dataclass(frozen=True)
class _RepFigures:
    """Per seat over the plan: capacity, quota (by month and in total), headcount at the end."""

    region: np.ndarray
    capacity_year: np.ndarray  # [USD/year]
    quota: np.ndarray  # (rep, month) [USD/month]
    quota_year: np.ndarray  # [USD/year]
    headcount_end: np.ndarray  # [reps]
    attains: np.ndarray  # bool: has a quota and is expected to attain it


def _rep_figures(parts: _PlanParts, tolerance: float) -> _RepFigures:
    cap = parts.capacity
    cap_rep_year = cap["capacity"].values.sum(axis=1)
    rep_quota = parts.top["quota"].reindex(rep=cap["rep"].values, fill_value=0.0).values
    quota_rep_year = rep_quota.sum(axis=1)
    # One definition of "expected to attain": quota.expected_attainment.
    by_rep = {"rep": cap["rep"].values}
    expected = quota.expected_attainment(
        xr.DataArray(quota_rep_year, dims="rep", coords=by_rep),
        xr.DataArray(cap_rep_year, dims="rep", coords=by_rep),
        tolerance=tolerance,
    )
    has_quota = quota_rep_year > 0
    return _RepFigures(
        region=np.asarray(cap["rep_region"].values).astype(str),
        capacity_year=cap_rep_year,
        quota=rep_quota,
        quota_year=quota_rep_year,
        headcount_end=cap["headcount"].isel(month=-1).values,
        attains=has_quota & (np.nan_to_num(expected["p_attain"].values) > 0),
    )


def _ratio(num, den) -> np.ndarray:
    """``num / den``, NaN where ``den`` is 0."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=den != 0)


def _region_churn_rate(ctx: PlanContext, a: Assumptions, regions: np.ndarray) -> np.ndarray:
    """The churn rate the plan applies, by region (one definition: retention.plan_churn_rate)."""
    churn_r = float(a.churn_rate) if a.churn_rate is not None else ctx.region_churn
    if isinstance(churn_r, float):
        return np.full(len(regions), churn_r)
    return churn_r.reindex(region=regions).values


def _region_kpis(
    ctx: PlanContext, a: Assumptions, parts: _PlanParts, reps: _RepFigures, regions: np.ndarray
) -> tuple[dict[str, np.ndarray], float]:
    """The plan KPIs by region, and the share of all quota-carrying reps expected to attain."""
    target_r = (parts.top["segment_quota"].sum("segment")).reindex(region=regions).values
    capacity_r = _by_region(reps.capacity_year, reps.region, regions)
    hires = parts.hires
    hires_r = (
        hires.groupby("region")["hires"].sum().reindex(regions, fill_value=0).to_numpy(dtype=float)
        if len(hires)
        else np.zeros(len(regions))
    )
    ret_r = parts.retention.sum("segment", min_count=1).reindex(
        region=regions
    )  # missing stays missing
    n_quota_r = _by_region((reps.quota_year > 0).astype(float), reps.region, regions)
    n_attain_r = _by_region(reps.attains.astype(float), reps.region, regions)
    kpis = {
        "target": target_r,
        "capacity": capacity_r,
        "gap": target_r - capacity_r,
        "capacity_to_target": _ratio(capacity_r, target_r),
        "hires_needed": hires_r,
        "quota": _by_region(reps.quota_year, reps.region, regions),
        "headcount_end": _by_region(reps.headcount_end, reps.region, regions),
        "reps_expected_to_attain": _ratio(n_attain_r, n_quota_r),
        "opening_arr": ret_r["starting_arr"].values,
        "closing_arr": ret_r["target_arr"].values,
        "expected_churn_arr": ret_r["total_expected_churn_arr"].values,
        "required_new_arr": ret_r["total_required_new_arr"].values,
        "churn_rate": _region_churn_rate(ctx, a, regions),
    }
    return kpis, float(_ratio(n_attain_r.sum(), n_quota_r.sum()))


def _company_kpis(
    kpis: dict[str, np.ndarray], attain_share: float, retention_plan: xr.Dataset
) -> dict[str, float]:
    """Company totals: sums of the regions, except the ratios, recomputed from their totals."""
    # A KPI missing in every region (ARR without subscriptions) is missing in total, never 0.
    totals = {
        k: float(np.nansum(v)) if np.isfinite(np.asarray(v, dtype=float)).any() else np.nan
        for k, v in kpis.items()
    }
    totals["capacity_to_target"] = float(_ratio(totals["capacity"], totals["target"]))
    totals["reps_expected_to_attain"] = attain_share
    totals["churn_rate"] = float(retention_plan["company_churn_rate"])
    return totals


def _by_quarter(
    monthly: np.ndarray, rep_region: np.ndarray, regions: np.ndarray, q_code: np.ndarray, n_q: int
) -> np.ndarray:
    """Sum (rep, month) values into (region, fiscal quarter)."""
    r_code = pd.Index(regions).get_indexer(rep_region)
    ok = r_code >= 0
    out = np.zeros((len(regions), n_q))
    np.add.at(out, (r_code[ok, None], q_code[None, :]), monthly[ok])
    return out


def plan(
    source: xr.Dataset | PlanContext,
    assumptions: Assumptions,
    months: Sequence | pd.DatetimeIndex | None = None,
    potential: pd.Series | xr.DataArray | None = None,
) -> xr.Dataset:
    """The whole plan for one assumption set.

    Parameters
    ----------
    source : xarray.Dataset or PlanContext
        The cube, or a context from :func:`prepare` (fast path for what-ifs).
    assumptions : Assumptions
        The assumption set.
    months : sequence of dates, optional
        Months planned; default the 12 months of ``assumptions.plan_year``.
    potential : pandas.Series or xarray.DataArray, optional
        Potential per rep (e.g. :func:`revmodel.territory.rep_potential`), for the
        ``potential`` and ``blend`` quota bases.

    Returns
    -------
    xarray.Dataset
        ``rep_capacity`` and ``rep_quota`` by (rep, month) [USD/month]; the plan KPIs
        of :data:`PLAN_KPIS` by ``region`` and as company totals
        (``total_<kpi>``); ``capacity_by_quarter`` and ``quota_by_quarter`` by
        (region, fiscal_quarter); attrs ``scenario`` and the assumptions.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> p = plan(ds, Assumptions(target_amount=40e6))
    >>> float(p["total_target"]), float(p["target"].sum())
    (40000000.0, 40000000.0)
    >>> bool(np.isclose(p["total_capacity_to_target"], p["total_capacity"] / p["total_target"]))
    True
    >>> p["quota_by_quarter"].dims
    ('region', 'fiscal_quarter')
    """
    ctx = _context(source)
    a = settle_plan_year(assumptions, ctx.cube)
    parts = _plan_parts(ctx, a, months, potential)
    cap = parts.capacity
    reps = _rep_figures(parts, a.attainment_tolerance)
    regions = np.asarray(parts.top["region"].values).astype(str)
    kpis, attain_share = _region_kpis(ctx, a, parts, reps, regions)
    totals = _company_kpis(kpis, attain_share, parts.retention)
    data: dict[str, tuple] = {
        "rep_capacity": (("rep", "month"), cap["capacity"].values, {"units": "USD/month"}),
        "rep_quota": (("rep", "month"), reps.quota, {"units": "USD/month"}),
    }
    for name, (units, definition) in PLAN_KPIS.items():
        data[name] = (
            "region",
            np.asarray(kpis[name], dtype=float),
            {"units": units, "long_name": definition},
        )
        data[f"total_{name}"] = ((), totals[name], {"units": units, "long_name": definition})
    # Roll-ups by region and fiscal quarter, recomputed with the plan.
    quarter_labels = np.asarray(cap["fiscal_quarter"].values).astype(str)
    quarters, q_code = np.unique(quarter_labels, return_inverse=True)  # labels sort chronologically
    for name, monthly in (("capacity", cap["capacity"].values), ("quota", reps.quota)):
        by_rq = _by_quarter(monthly, reps.region, regions, q_code, len(quarters))
        data[f"{name}_by_quarter"] = (("region", "fiscal_quarter"), by_rq, {"units": "USD/quarter"})
    return xr.Dataset(
        data,
        coords={
            "rep": cap["rep"].values,
            "month": cap["month"].values,
            "region": regions,
            "fiscal_quarter": quarters,
            "rep_region": ("rep", reps.region),
            "manager": ("rep", np.asarray(cap["manager"].values).astype(str)),
            "rep_segment": ("rep", np.asarray(cap["rep_segment"].values).astype(str)),
            "month_quarter": ("month", quarter_labels),
        },
        attrs={"scenario": a.name, "plan_year": a.plan_year, **_flat_attrs(a)},
    )


def _flat_attrs(a: Assumptions) -> dict[str, float | int | str]:
    """Scalar assumptions as attrs (NetCDF stores only flat values)."""
    out: dict[str, float | int | str] = {}
    for k, v in a.to_dict().items():
        if isinstance(v, bool):
            out[f"assumption_{k}"] = int(v)
        elif isinstance(v, int | float | str):
            out[f"assumption_{k}"] = v
    return out


def stack(
    source: xr.Dataset | PlanContext,
    scenarios: Iterable[Assumptions],
    months: Sequence | pd.DatetimeIndex | None = None,
    potential: pd.Series | xr.DataArray | None = None,
) -> xr.Dataset:
    """Plans for several assumption sets on a ``scenario`` dim.

    Rep-level variables are outer-joined over ``rep`` (scenarios may plan
    different hires), missing reps filled with 0.

    Parameters
    ----------
    source : xarray.Dataset or PlanContext
        The cube, or a context from :func:`prepare`.
    scenarios : iterable of Assumptions
        The assumption sets, with unique names; the first is the base.
    months : sequence of dates, optional
        Months planned; default the plan year of each set.
    potential : pandas.Series or xarray.DataArray, optional
        Potential per rep, for the ``potential`` and ``blend`` quota bases.

    Returns
    -------
    xarray.Dataset
        :func:`plan`'s variables with a ``scenario`` dim; attr ``base``.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> base = Assumptions(name="base", target_amount=40e6)
    >>> both = stack(ds, [base, base.with_changes(name="stretch", target_amount=48e6)])
    >>> both["scenario"].values.tolist(), both["total_target"].values.tolist()
    (['base', 'stretch'], [40000000.0, 48000000.0])
    """
    ctx = _context(source)
    sets = list(scenarios)
    if not sets:
        raise ParameterError("stack: give at least one assumption set.")
    names = [s.name for s in sets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ParameterError(
            f"stack: scenario names must be unique; {dupes[0]!r} appears more than once."
        )
    plans = [plan(ctx, s, months=months, potential=potential) for s in sets]
    for p in plans:
        p.attrs = {}
    out = xr.concat(
        plans,
        dim=pd.Index(names, name="scenario"),
        join="outer",
        fill_value=0.0,
        coords="minimal",
        compat="override",
    )
    out.attrs = {"base": names[0]}
    return out


def compare(stacked: xr.Dataset, base: str | None = None, by: str = "total") -> pd.DataFrame:
    """Each scenario against the base, by KPI.

    Parameters
    ----------
    stacked : xarray.Dataset
        Output of :func:`stack`.
    base : str, optional
        Base scenario; default the first.
    by : {"total", "region"}
        Company totals, or one row per KPI and region.

    Returns
    -------
    pandas.DataFrame
        Index (kpi[, region]); columns: one per scenario, then ``<scenario> vs base``
        differences for every other scenario.

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> base = Assumptions(name="base", target_amount=40e6)
    >>> both = stack(ds, [base, base.with_changes(name="stretch", target_amount=48e6)])
    >>> float(compare(both).loc["target", "stretch vs base"])
    8000000.0
    """
    base = base or stacked.attrs.get("base") or str(stacked["scenario"].values[0])
    scenarios = [str(s) for s in stacked["scenario"].values]
    if base not in scenarios:
        raise ParameterError(
            f"compare: base scenario {base!r} is not one of {', '.join(scenarios)}."
        )
    if by not in ("total", "region"):
        raise ParameterError(f"compare: by must be 'total' or 'region', got {by!r}.")
    frames = []
    for name in PLAN_KPIS:
        if by == "total":
            s = stacked[f"total_{name}"].to_series().to_frame().T
            s.index = pd.Index([name], name="kpi")
        else:
            s = stacked[name].to_series().unstack("scenario")
            s.index = pd.MultiIndex.from_product([[name], s.index], names=["kpi", "region"])
        frames.append(s)
    table = pd.concat(frames)[scenarios]
    for s in scenarios:
        if s != base:
            table[f"{s} vs {base}"] = table[s] - table[base]
    table.columns.name = None
    return table


def summary(stacked: xr.Dataset) -> pd.DataFrame:
    """One row per scenario: ``scenario`` and the company total of every plan KPI.

    Parameters
    ----------
    stacked : xarray.Dataset
        Output of :func:`stack`.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> from revmodel.assumptions import Assumptions
    >>> base = Assumptions(name="base", target_amount=40e6)
    >>> table = summary(stack(ds, [base, base.with_changes(name="stretch", target_amount=48e6)]))
    >>> table[["scenario", "target"]].to_dict("list")
    {'scenario': ['base', 'stretch'], 'target': [40000000.0, 48000000.0]}
    """
    table = pd.DataFrame(
        {name: stacked[f"total_{name}"].values for name in PLAN_KPIS},
        index=pd.Index([str(s) for s in stacked["scenario"].values], name="scenario"),
    )
    return table.reset_index()
