"""The ``ds.rev`` accessor: the cube's verbs, each a thin call into a module function.

Importing :mod:`revmodel` registers it. It holds no logic of its own: every
method hands the cube to the function named in its docstring, so the data
layer (:mod:`revmodel.cube`) imports nothing above it.

The examples use a small sample company: 16 reps in two regions over 24 months,
with a fiscal year starting in November.

Examples
--------
>>> import revmodel  # registers ds.rev
>>> from revmodel import cube, sample
>>> ds = cube.build_cube(sample.generate(reps=16, months=24), fiscal_year_start=11)
>>> ds.rev.rollup("region", period="fiscal_year")["bookings"].sel(fiscal_year="FY2026").values
array([16281961., 19824826.])
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from revmodel.assumptions import Assumptions
from revmodel.errors import ParameterError

# The modules behind the verbs are imported when a verb is first called, so that
# `import revmodel` (a command line starting a server, say) stays light.

__all__ = ["RevAccessor"]


@xr.register_dataset_accessor("rev")
class RevAccessor:
    """``ds.rev``: roll up, validate, summarise and plan the revenue cube ``ds``.

    The examples of its methods use the small sample company
    ``tables = sample.generate(reps=16, months=24)`` and its cube
    ``ds = cube.build_cube(tables, fiscal_year_start=11)``.

    Parameters
    ----------
    ds : xarray.Dataset
        A revenue cube (:func:`revmodel.cube.build_cube`).

    Examples
    --------
    >>> ds.rev.rollup("segment")["bookings"].dims
    ('segment', 'month')
    """

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def rollup(self, dims: Iterable[str] | str = (), period: str = "month") -> xr.Dataset:
        """Roll the cube up to levels and a fiscal period (:func:`revmodel.cube.rollup`).

        Parameters
        ----------
        dims : str or iterable of str
            Levels to keep (``segment``, ``region``, ``rep``, ``manager``,
            ``rep_region``, ``rep_segment``); a string is one level; none is the company.
        period : {"month", "fiscal_quarter", "fiscal_year"}
            Calendar level; flows add up, ARR is the period-end value.

        Returns
        -------
        xarray.Dataset
            Every measure at those levels by period, units per period.

        Raises
        ------
        ParameterError
            An unknown level or period, naming the valid ones.

        Examples
        --------
        >>> by_region = ds.rev.rollup("region", period="fiscal_quarter")
        >>> by_region["bookings"].sel(fiscal_quarter="FY2026-Q4").to_series()
        region
        North America East    5104312.0
        North America West    5356420.0
        Name: bookings, dtype: float64
        >>> by_region["bookings"].attrs["units"]
        'USD/quarter'
        >>> yearly = ds.rev.rollup(("manager",), period="fiscal_year")["arr"]
        >>> (yearly.sel(fiscal_year="FY2026") / 1e6).round(2).to_series()
        manager
        Laura Chen       19.82
        Samuel Moreau    16.28
        Name: arr, dtype: float64
        >>> ds.rev.rollup("regoin")
        Traceback (most recent call last):
        ...
        revmodel.errors.ParameterError: rollup: unknown level 'regoin'; use any of segment, region, rep, manager, rep_region, rep_segment.
        """
        from revmodel import cube as rcube

        return rcube.rollup(self._ds, dims=dims, period=period)

    def validate(self) -> xr.Dataset:
        """Check the cube contract and return the cube (:func:`revmodel.cube.validate_cube`).

        Returns
        -------
        xarray.Dataset
            The cube, unchanged.

        Raises
        ------
        DataError
            What breaks the contract (a missing dim, coord or attr, a measure without units).

        Examples
        --------
        >>> ds.rev.validate() is ds
        True
        """
        from revmodel import cube as rcube

        return rcube.validate_cube(self._ds)

    def summary(self) -> str:
        """A readable summary of the cube (:func:`revmodel.kpi.cube_summary`).

        Returns
        -------
        str
            Sizes, bookings by fiscal year and region, ARR, open pipeline and churn.

        Examples
        --------
        >>> print(ds.rev.summary())
        Revenue cube: 3 segments x 2 regions x 16 reps x 33 months (2024-11 to 2027-07; ...)
        Bookings by fiscal year [USD]:
          FY2025        29,403,944
          FY2026        36,106,787
        ...
        """
        from revmodel import kpi

        return kpi.cube_summary(self._ds)

    def save(self, path: str | Path) -> Path:
        """Write the cube as NetCDF (``.nc``) or Zarr (``.zarr``) (:func:`revmodel.cube.save_cube`).

        Parameters
        ----------
        path : str or Path
            File (``.nc``) or folder (``.zarr``) to write.

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> import tempfile
        >>> from revmodel import cube
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = ds.rev.save(Path(folder) / "cube.nc")
        ...     back = cube.load_cube(path)
        ...     (path.name, float(back["bookings"].sum()) == float(ds["bookings"].sum()))
        ('cube.nc', True)
        """
        from revmodel import cube as rcube

        return rcube.save_cube(self._ds, path)

    def actuals(self) -> xr.Dataset:
        """The months up to ``as_of`` (the last month with actuals).

        Returns
        -------
        xarray.Dataset
            The cube cut at ``ds.attrs["as_of"]``.

        Examples
        --------
        >>> ds.attrs["as_of"]
        '2026-10-01'
        >>> months = ds.rev.actuals()["month"]
        >>> months.dt.strftime("%Y-%m").values[[0, -1]]
        array(['2024-11', '2026-10'], dtype=object)
        """
        as_of = np.datetime64(pd.Timestamp(self._ds.attrs["as_of"]), "ns")
        return self._ds.sel(month=slice(None, as_of))

    def arr_bridge(
        self, dims: Iterable[str] | str = (), period: str = "fiscal_quarter"
    ) -> xr.Dataset:
        """Opening + new + expansion - contraction - churn = closing ARR (:func:`revmodel.retention.arr_bridge`).

        Parameters
        ----------
        dims : str or iterable of str
            Levels to keep; none is the company.
        period : {"month", "fiscal_quarter", "fiscal_year"}
            Period of each bridge step.

        Returns
        -------
        xarray.Dataset
            ``opening``, ``new``, ``expansion``, ``contraction``, ``churn``, ``closing``
            [currency/year] by level and period.

        Examples
        --------
        >>> bridge = ds.rev.arr_bridge(period="fiscal_year").sel(fiscal_year="FY2026")
        >>> {k: round(float(v) / 1e6, 2) for k, v in bridge.data_vars.items()}
        {'opening': 29.4, 'new': 7.01, 'expansion': 2.91, 'contraction': 1.86, 'churn': 1.36, 'closing': 36.11}
        """
        from revmodel import retention

        return retention.arr_bridge(self._ds, _tuple(dims), period)

    def churn_rate(self, dims: Iterable[str] | str = (), months: int = 12) -> xr.DataArray:
        """Annual gross revenue churn (:func:`revmodel.retention.churn_rate`).

        Parameters
        ----------
        dims : str or iterable of str
            Levels to keep; none is the company.
        months : int
            Trailing window [months] ending at ``as_of``.

        Returns
        -------
        xarray.DataArray
            (contraction + churned ARR) / ARR at the window's start [ratio/year].

        Examples
        --------
        >>> round(float(ds.rev.churn_rate()), 3)
        0.11
        >>> ds.rev.churn_rate("segment").round(3).to_series()
        segment
        SMB           0.159
        Mid-Market    0.124
        Enterprise    0.057
        dtype: float64
        """
        from revmodel import retention

        return retention.churn_rate(self._ds, _tuple(dims), months=months)

    def kpis(
        self,
        names: Iterable[str] | str | None = None,
        dims: Iterable[str] | str = (),
        period: str = "fiscal_quarter",
        **inputs,
    ) -> xr.Dataset:
        """KPIs of the catalogue at a level and period (:func:`revmodel.kpi.compute`).

        Parameters
        ----------
        names : str or iterable of str, optional
            KPIs of :data:`revmodel.kpi.KPIS`; all that the inputs allow by default.
        dims : str or iterable of str
            Levels to keep; none is the company.
        period : {"month", "fiscal_quarter", "fiscal_year"}
            Calendar level.
        **inputs
            Extra inputs some KPIs need (``tables``, ``quota``, ...), see :func:`revmodel.kpi.compute`.

        Returns
        -------
        xarray.Dataset
            One variable per KPI, with ``units`` and ``long_name``.

        Examples
        --------
        >>> k = ds.rev.kpis(["arr", "win_rate"], dims="region", period="fiscal_year")
        >>> k.sel(fiscal_year="FY2026").to_dataframe()[["arr", "win_rate"]].round(3)
                                   arr  win_rate
        region
        North America East  16281961.0     0.554
        North America West  19824826.0     0.528
        """
        from revmodel import kpi

        wanted = [names] if isinstance(names, str) else names
        return kpi.compute(self._ds, wanted, dims=_tuple(dims), period=period, **inputs)

    def capacity(self, assumptions: Assumptions, months=None) -> xr.Dataset:
        """Capacity plan (:func:`revmodel.capacity.capacity_plan`).

        Parameters
        ----------
        assumptions : Assumptions
            The plan year, ramp, attrition, hires and productivity.
        months : sequence of dates, optional
            Months to plan; the plan year's by default.

        Returns
        -------
        xarray.Dataset
            ``headcount``, ``ramped_fte`` and ``capacity`` [currency/month] by rep and month.

        Examples
        --------
        >>> plan = ds.rev.capacity(Assumptions(plan_year="FY2027"))
        >>> round(float(plan["capacity"].sum()) / 1e6, 1)
        38.3
        >>> plan["headcount"].sum("rep").round(1).values[:3]
        array([10.8, 10.7, 10.7])
        """
        from revmodel import capacity

        return capacity.capacity_plan(self._ds, _assumptions(assumptions), months=months)

    def quotas(self, assumptions: Assumptions, **kwargs) -> xr.Dataset:
        """Top-down quotas (:func:`revmodel.quota.top_down`).

        Parameters
        ----------
        assumptions : Assumptions
            The plan year, target and over-assignment.
        **kwargs
            Options of :func:`revmodel.quota.top_down` (``potential``, ``capacity``, ...).

        Returns
        -------
        xarray.Dataset
            ``quota`` by rep and month, with team, segment and region quotas and the ``target``.

        Examples
        --------
        >>> quotas = ds.rev.quotas(Assumptions(plan_year="FY2027", target_growth=0.25))
        >>> f"{float(quotas['target']):,.0f}"
        '45,133,484'
        >>> round(float(quotas["quota"].sum()) / float(quotas["target"]), 2)
        1.1
        """
        from revmodel import quota

        return quota.top_down(self._ds, _assumptions(assumptions), **kwargs)

    def attainment(self, quota_da: xr.DataArray, tolerance: float | None = None) -> xr.Dataset:
        """Attainment of actual bookings against ``quota_da`` (:func:`revmodel.quota.attainment`).

        Parameters
        ----------
        quota_da : xarray.DataArray
            Quota by rep (and month) [currency].
        tolerance : float, optional
            Attainment at or above which a quota counts as met [ratio]; default
            :data:`revmodel.quota.DEFAULT_TOLERANCE`.

        Returns
        -------
        xarray.Dataset
            ``bookings``, ``quota``, ``attainment`` [ratio] and ``met`` by rep.

        Examples
        --------
        >>> quotas = ds.rev.quotas(Assumptions(plan_year="FY2026"))
        >>> att = ds.rev.attainment(quotas["quota"], tolerance=0.7)
        >>> att["attainment"].round(2).values[:6]
        array([0.9, 0.9, 0.9, 0.9, 0.9, 0. ])
        >>> int(att["met"].sum()), att.sizes["rep"]
        (13, 14)
        """
        from revmodel import cube as rcube
        from revmodel import quota

        bookings = rcube.rollup(self._ds["bookings"], dims=("rep",))
        if tolerance is None:
            tolerance = quota.DEFAULT_TOLERANCE
        return quota.attainment(bookings, quota_da, tolerance=tolerance)


def _tuple(dims: Iterable[str] | str) -> tuple[str, ...]:
    """Levels as a tuple, a string being one level (:func:`revmodel.cube.levels`)."""
    from revmodel import cube as rcube

    return rcube.levels(dims)


def _assumptions(value: object) -> Assumptions:
    """``value`` if it is an assumption set; a readable error otherwise."""
    if isinstance(value, Assumptions):
        return value
    hint = " (Assumptions(**mapping) builds one from a mapping)" if isinstance(value, dict) else ""
    raise ParameterError(
        f"assumptions must be an Assumptions, got {type(value).__name__}{hint}; "
        'e.g. Assumptions(plan_year="FY2027").'
    )
