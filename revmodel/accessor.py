"""The ``ds.rev`` accessor: the cube's verbs, each a thin call into a module function.

Importing :mod:`revmodel` registers it. It holds no logic of its own: every
method hands the cube to the function named in its docstring, so the data
layer (:mod:`revmodel.cube`) imports nothing above it.

Examples
--------
>>> import revmodel  # registers ds.rev
>>> ds.rev.rollup("region", period="fiscal_quarter")["bookings"]  # doctest: +SKIP
>>> ds.rev.kpis(["arr", "churn_rate"], dims="segment", period="fiscal_year")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import capacity, kpi, quota, retention
from revmodel import cube as rcube
from revmodel.assumptions import Assumptions

__all__ = ["RevAccessor"]


@xr.register_dataset_accessor("rev")
class RevAccessor:
    """``ds.rev``: roll up, validate, summarise and plan the revenue cube ``ds``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def rollup(self, dims: Iterable[str] | str = (), period: str = "month") -> xr.Dataset:
        """Roll the cube up to levels and a fiscal period (:func:`revmodel.cube.rollup`).

        Parameters
        ----------
        dims : str or iterable of str
            Levels to keep (``segment``, ``region``, ``rep``, ``manager``,
            ``rep_region``, ``rep_segment``); a string is one level.
        period : {"month", "fiscal_quarter", "fiscal_year"}
            Calendar level; flows add up, ARR is the period-end value.

        Returns
        -------
        xarray.Dataset

        Examples
        --------
        >>> ds.rev.rollup("manager", period="fiscal_year")["arr"]  # doctest: +SKIP
        """
        return rcube.rollup(self._ds, dims=dims, period=period)

    def validate(self) -> xr.Dataset:
        """Check the cube contract and return the cube (:func:`revmodel.cube.validate_cube`).

        Returns
        -------
        xarray.Dataset
            The cube, unchanged.

        Examples
        --------
        >>> ds.rev.validate()  # doctest: +SKIP
        """
        return rcube.validate_cube(self._ds)

    def summary(self) -> str:
        """A readable summary of the cube (:func:`revmodel.kpi.cube_summary`).

        Returns
        -------
        str

        Examples
        --------
        >>> print(ds.rev.summary())  # doctest: +SKIP
        """
        return kpi.cube_summary(self._ds)

    def save(self, path: str | Path) -> Path:
        """Write the cube as NetCDF (``.nc``) or Zarr (``.zarr``) (:func:`revmodel.cube.save_cube`).

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        pathlib.Path

        Examples
        --------
        >>> ds.rev.save("cube.nc")  # doctest: +SKIP
        """
        return rcube.save_cube(self._ds, path)

    def actuals(self) -> xr.Dataset:
        """The months up to ``as_of`` (the last month with actuals).

        Returns
        -------
        xarray.Dataset

        Examples
        --------
        >>> ds.rev.actuals()["bookings"].sum()  # doctest: +SKIP
        """
        as_of = np.datetime64(pd.Timestamp(self._ds.attrs["as_of"]), "ns")
        return self._ds.sel(month=slice(None, as_of))

    def arr_bridge(
        self, dims: Iterable[str] | str = (), period: str = "fiscal_quarter"
    ) -> xr.Dataset:
        """Opening + new + expansion - contraction - churn = closing ARR (:func:`revmodel.retention.arr_bridge`).

        Examples
        --------
        >>> ds.rev.arr_bridge("region", period="fiscal_year")  # doctest: +SKIP
        """
        return retention.arr_bridge(self._ds, _tuple(dims), period)

    def churn_rate(self, dims: Iterable[str] | str = (), months: int = 12) -> xr.DataArray:
        """Annual gross revenue churn (:func:`revmodel.retention.churn_rate`).

        Examples
        --------
        >>> float(ds.rev.churn_rate())  # doctest: +SKIP
        0.131
        """
        return retention.churn_rate(self._ds, _tuple(dims), months=months)

    def kpis(
        self,
        names: Iterable[str] | str | None = None,
        dims: Iterable[str] | str = (),
        period: str = "fiscal_quarter",
        **inputs,
    ) -> xr.Dataset:
        """KPIs of the catalogue at a level and period (:func:`revmodel.kpi.compute`).

        Examples
        --------
        >>> ds.rev.kpis(["arr", "win_rate"], dims="region", period="fiscal_year")  # doctest: +SKIP
        """
        wanted = [names] if isinstance(names, str) else names
        return kpi.compute(self._ds, wanted, dims=_tuple(dims), period=period, **inputs)

    def capacity(self, assumptions: Assumptions, months=None) -> xr.Dataset:
        """Capacity plan (:func:`revmodel.capacity.capacity_plan`).

        Examples
        --------
        >>> ds.rev.capacity(Assumptions(plan_year="FY2027"))  # doctest: +SKIP
        """
        return capacity.capacity_plan(self._ds, assumptions, months=months)

    def quotas(self, assumptions: Assumptions, **kwargs) -> xr.Dataset:
        """Top-down quotas (:func:`revmodel.quota.top_down`).

        Examples
        --------
        >>> ds.rev.quotas(Assumptions(plan_year="FY2027"))["quota"]  # doctest: +SKIP
        """
        return quota.top_down(self._ds, assumptions, **kwargs)

    def attainment(
        self, quota_da: xr.DataArray, tolerance: float = quota.DEFAULT_TOLERANCE
    ) -> xr.Dataset:
        """Attainment of actual bookings against ``quota_da`` (:func:`revmodel.quota.attainment`).

        Examples
        --------
        >>> ds.rev.attainment(quotas["quota"], tolerance=0.9)["met"]  # doctest: +SKIP
        """
        bookings = rcube.rollup(self._ds["bookings"], dims=("rep",))
        return quota.attainment(bookings, quota_da, tolerance=tolerance)


def _tuple(dims: Iterable[str] | str) -> tuple[str, ...]:
    return (dims,) if isinstance(dims, str) else tuple(dims)
