"""The pack's numbers: forecast against target by level, the executive summary, every table and chart.

Every figure comes from a revmodel function over the run folder's results
(:class:`revmodel.publish.runfolder.Results`); this module only gathers them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import backtest, config, reconcile
from revmodel import cube as rcube
from revmodel import parameters as rparams
from revmodel import pipeline as rpipeline
from revmodel.publish.runfolder import (
    INPUT_RESULT,
    Results,
    load_result,
    load_tables,
    period_months,
    work_folder,
)

__all__ = [
    "band_statement",
    "forecast_table",
    "pack_figures",
    "pack_tables",
    "shown_names",
    "summary",
    "with_names",
]


log = logging.getLogger(__name__)


def reconciled_paths(fc: xr.Dataset, method: str) -> reconcile.ReconciledSamples | None:
    """Coherent sample paths of every node of the forecast (:func:`revmodel.forecast.coherent_paths`).

    The paths ``revmodel forecast`` reads its quantiles off: drawn from every node's own
    base quantiles, scaled by the band calibration the forecast states (the plan's
    ``band_calibration_folds``, :func:`revmodel.backtest.with_calibrated_bands`) and
    reconciled with ``method`` like the mean, so every path adds up the hierarchy; None
    for ``"none"`` (no reconciliation).
    """
    from revmodel import forecast as rforecast

    if method == "none":
        return None
    return rforecast.coherent_paths(fc, method)


def band_statement(fc: xr.Dataset, paths: reconcile.ReconciledSamples | None = None) -> str:
    """What the pack's 10-90% bands are: the calibration's factors and backtest, or why none.

    With a warning when some of the band's non-negative solves stopped at their iteration
    cap: those of ``paths`` (the pack's own, :func:`reconciled_paths`) when given, else
    the forecast's (``attrs["reconcile_converged"]``).
    """
    from revmodel import forecast as rforecast

    cal = reconcile.BandCalibration.from_attrs(fc.attrs)
    note = fc.attrs.get("band_calibration_note")
    if cal is None:
        text = str(note or "bands not calibrated: the 10-90% bands are the models' own")
    else:
        text = f"10-90% {cal.describe()}" + (f" ({note})" if note else "")
    if paths is None:
        converged = int(fc.attrs.get("reconcile_converged", 1)) != 0
    else:
        converged = bool(paths.info.get("nonnegative_converged", True))
    return text if converged else f"{text}; warning: {rforecast.CAPPED_SOLVES}"


#: The run's reconciled paths, drawn once for the summary and every table (one entry).
_RUN_PATHS: dict[tuple, reconcile.ReconciledSamples | None] = {}


def run_paths(
    work_dir: str | Path, fc: xr.Dataset, params: Mapping[str, Any]
) -> reconcile.ReconciledSamples | None:
    """:func:`reconciled_paths` of a run folder's forecast with the plan's method, drawn once."""
    stored = work_folder(work_dir) / "forecast.nc"
    method = str(params.get("reconcile_method") or "mint_shrink")
    key = (str(stored.resolve()), stored.stat().st_mtime_ns if stored.exists() else None, method)
    if key not in _RUN_PATHS:
        _RUN_PATHS.clear()
        _RUN_PATHS[key] = reconciled_paths(fc, method)
    return _RUN_PATHS[key]


def level_band(
    fc: xr.Dataset,
    months: list,
    level: str,
    paths: reconcile.ReconciledSamples | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Quantiles of each node's total over ``months`` at one level, and the nodes' names.

    With ``paths`` (:func:`reconciled_paths`): the quantiles of the reconciled paths'
    totals, each aggregate's band its own (never added quantiles or floored monthly
    bounds). Without: each node's own base model (:func:`revmodel.reconcile.period_quantiles`).

    Returns
    -------
    (np.ndarray, list of str)
        (names x quantile levels of ``fc``) [currency], and the names (``Company`` for
        the total; nodes sharing a name, a rep over several cells, are added path by path).
    """
    q = [float(v) for v in fc["quantile"].values]
    fc_level = {"total": "total", "region": "region", "segment": "segment", "manager": "manager", "rep": reconcile.BOTTOM_LEVEL}[level]  # fmt: skip
    mask = fc["level"].values == fc_level
    key = "rep" if level == "rep" else level
    names = ["Company"] if level == "total" else [str(v) for v in fc[f"node_{key}"].values[mask]]
    if paths is None:
        node = fc["node_forecast"].sel(month=months).transpose("node", "month", "quantile")
        return reconcile.period_quantiles(
            node.values[mask], q, groups=names, nonnegative=backtest.nonnegative(fc)
        )
    steps = np.isin(fc["month"].values, np.asarray(months, dtype="datetime64[ns]"))
    per_node = paths.samples[mask][:, steps, :].sum(axis=1)  # nodes x draws
    order = list(dict.fromkeys(names))
    totals = np.zeros((len(order), per_node.shape[1]))
    np.add.at(totals, np.array([order.index(n) for n in names], dtype=np.intp), per_node)
    return np.quantile(totals, q, axis=-1).T, order


def forecast_table(
    cube: xr.Dataset,
    fc: xr.Dataset,
    reconciled: xr.DataArray,
    quota: xr.Dataset | None,
    months: pd.DatetimeIndex,
    level: str,
    paths: reconcile.ReconciledSamples | None = None,
) -> pd.DataFrame:
    """Forecast against target over ``months`` at one level of the hierarchy.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube (for open pipeline and the rep hierarchy).
    fc : xarray.Dataset
        :func:`revmodel.forecast.forecast_cube` (for the 10-90% band).
    reconciled : xarray.DataArray
        Coherent mean forecast from :func:`revmodel.forecast.reconcile_forecast` [currency/month].
    quota : xarray.Dataset, optional
        :func:`revmodel.quota.top_down` (``quota(rep, month)``), the target.
    months : pandas.DatetimeIndex
        Months summed (the cycle's quarter or the plan year).
    level : {"total", "region", "segment", "manager", "rep"}
    paths : revmodel.reconcile.ReconciledSamples, optional
        :func:`reconciled_paths` of ``fc``: the band of the coherent forecast.

    Returns
    -------
    pandas.DataFrame
        ``name``, ``booked`` (won in the months up to as_of), ``forecast`` (reconciled, of
        the months after as_of), ``p10``, ``p90`` (quantiles of the node's
        total over the months: of the reconciled ``paths`` when given, else of its own
        base model, months drawn independently; :func:`level_band`),
        ``target``, ``gap`` (target - landing, where the landing is what the months
        already booked plus the forecast of the rest, as the explorer's expected landing),
        ``forecast_to_target`` (landing / target), ``coverage`` (pipeline coverage, the one definition:
        :func:`revmodel.pipeline.coverage_ratio` of the pipeline over the target
        less what the months already booked), ``pipeline`` (open pipeline closing
        in the months) [currency].
    """

    m = months.values.astype("datetime64[ns]")
    fm = [t for t in m if t in set(reconciled["month"].values)]
    keep = {"total": (), "region": ("region",), "segment": ("segment",), "manager": ("manager",), "rep": ("rep",)}[level]  # fmt: skip
    rec = rcube.rollup(
        reconciled.sel(month=fm).assign_coords(manager=("rep", cube["manager"].values)), keep
    ).sum("month")
    cm = [t for t in m if t in set(cube["month"].values)]
    pipe = rcube.rollup(cube["pipeline"].sel(month=cm), keep).sum("month")
    booked = rcube.rollup(cube["bookings"].sel(month=cm).fillna(0.0), keep).sum("month")
    q = [float(v) for v in fc["quantile"].values]
    totals, labels = level_band(fc, fm, level, paths)
    band = pd.DataFrame(
        totals[:, [q.index(min(q)), q.index(max(q))]],
        columns=["p10", "p90"],
        index=pd.Index(labels, name="name"),
    )
    if level == "total":
        frame = pd.DataFrame(
            {"forecast": [float(rec)], "pipeline": [float(pipe)], "booked": [float(booked)]},
            index=["Company"],
        )
    else:
        frame = pd.DataFrame(
            {
                "forecast": rec.to_series(),
                "pipeline": pipe.to_series(),
                "booked": booked.to_series(),
            }
        )
        frame.index = frame.index.astype(str)
    frame = frame.join(band, how="left")
    if quota is not None:
        qm = [t for t in m if t in set(quota["month"].values)]
        qd = quota["quota"].sel(month=qm).sum("month")
        by = {"region": "rep_region", "segment": "rep_segment", "manager": "manager", "rep": "rep"}
        if level == "total":
            tgt = pd.Series([float(qd.sum())], index=["Company"])
        elif level == "rep":
            tgt = qd.to_series()
        else:
            tgt = qd.groupby(quota[by[level]]).sum().to_series()
        tgt.index = tgt.index.astype(str)
        frame = frame.join(tgt.rename("target"), how="outer")
    else:
        frame["target"] = np.nan
    frame = frame.fillna({"forecast": 0.0, "pipeline": 0.0, "booked": 0.0})
    # A period partly in the past lands at what it booked plus the forecast of the rest.
    landing = frame["booked"] + frame["forecast"]
    frame["gap"] = frame["target"] - landing
    frame["forecast_to_target"] = landing / frame["target"].where(frame["target"] > 0)
    frame["coverage"] = [
        rpipeline.coverage_ratio(p, t, b)
        for p, t, b in zip(frame["pipeline"], frame["target"], frame["booked"], strict=True)
    ]
    frame = frame[frame[["forecast", "target", "pipeline"]].abs().sum(axis=1) > 0]
    if level == "rep" and "end_date" in cube.coords:  # reps who left before the period
        left = cube["end_date"].to_series() < pd.Timestamp(m[0])
        frame = frame[~frame.index.isin(left.index[left.to_numpy()].astype(str))]
    frame = frame.rename_axis("name").reset_index()
    if level == "rep":  # reps by name, the id beside a shared name
        frame["name"] = shown_names(frame["name"], cube)
    cols = ["name", "booked", "forecast", "p10", "p90", "target", "gap", "forecast_to_target", "coverage", "pipeline"]  # fmt: skip
    return frame[cols].sort_values("name", kind="stable").reset_index(drop=True)


def shown_names(ids: pd.Series, cube: xr.Dataset | None, level: str = "rep") -> pd.Series:
    """Ids as the pack shows them: by name, the id beside a name two share.

    One display rule (:func:`revmodel.cube.display_labels`, read from the cube's
    ``rep_label`` / ``account_label``); an id the cube does not know shows as it is.
    """
    if cube is None:
        return ids
    return ids.map(rcube.labels(cube, level)).fillna(ids)


def with_names(
    frame: pd.DataFrame, cube: xr.Dataset | None, column: str = "rep_id"
) -> pd.DataFrame:
    """``frame`` with a ``name`` column (reps or accounts by name) before its id ``column``."""
    if cube is None or column not in frame.columns or "name" in frame.columns:
        return frame
    level = "account" if column.startswith("account") else "rep"
    out = frame.copy()
    out.insert(
        out.columns.get_loc(column), "name", shown_names(out[column].astype(str), cube, level)
    )
    return out


def summary(work_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The executive summary of a run: target, forecast with interval, gap, capacity, hires.

    Parameters
    ----------
    work_dir : str or Path
        The run folder the notebooks filled.
    params : mapping
        The checked parameters.

    Returns
    -------
    dict
        Figures for the cycle's quarter (``quarter_*``) and the plan year
        (``year_*``) [currency], ``hires_needed`` [reps], ``share_expected_to_attain``
        [ratio] and labels (``cycle``, ``plan_year``, ``as_of``).
    """
    r = Results(work_dir)
    cube = r.get("cube")
    fc, rec, quotas = r.get("forecast"), r.get("reconciled"), r.get("quotas")
    qmonths = period_months(params["cycle"], cube.attrs)
    ymonths = period_months(rparams.plan_year(params), cube.attrs)
    out: dict[str, Any] = {
        "cycle": params["cycle"],
        "plan_year": rparams.plan_year(params),
        "as_of": str(cube.attrs["as_of"])[:7],
        "currency": str(cube.attrs.get("currency", config.CURRENCY)),
        "quarter_months": f"{qmonths[0]:%b %Y} - {qmonths[-1]:%b %Y}",
    }
    paths = run_paths(work_dir, fc, params) if fc is not None and rec is not None else None
    if fc is not None:
        out["band_calibration"] = band_statement(fc, paths)
    for tag, months in (("quarter", qmonths), ("year", ymonths)):
        if fc is not None and rec is not None:
            t = forecast_table(cube, fc, rec["forecast"], quotas, months, "total", paths).iloc[0]
            out[f"{tag}_booked"] = float(t["booked"])
            out[f"{tag}_forecast"] = float(t["forecast"])
            out[f"{tag}_p10"] = float(t["p10"])
            out[f"{tag}_p90"] = float(t["p90"])
            out[f"{tag}_pipeline"] = float(t["pipeline"])
            out[f"{tag}_target"] = float(t["target"]) if quotas is not None else None
            out[f"{tag}_gap"] = float(t["gap"]) if quotas is not None else None
            out[f"{tag}_forecast_months"] = int(np.isin(months.values, rec["month"].values).sum())
    capacity = r.get("capacity")
    if capacity is not None:
        cap = capacity["capacity"]
        out["quarter_capacity"] = float(cap.sel(month=cap["month"].isin(qmonths.values)).sum())
        out["year_capacity"] = float(cap.sum())
        out["headcount_start"] = float(capacity["headcount"].isel(month=0).sum())
        out["ramped_fte_start"] = float(capacity["ramped_fte"].isel(month=0).sum())
    if quotas is not None:
        out["company_target"] = float(quotas.attrs.get("target", quotas["target"].values))
    hires = r.get("hires")
    if hires is not None:
        out["hires_needed"] = int(hires["hires"].sum()) if len(hires) else 0
    bal = r.get("balance")
    if bal is not None and "share_expected_to_attain" in bal:
        out["share_expected_to_attain"] = float(bal["share_expected_to_attain"])
        out["reps_out_of_line"] = int(bal["n_out_of_line"])
    ret = r.get("retention_plan")
    if ret is not None:
        out["starting_arr"] = float(ret["starting_arr"].sum(min_count=1))
        out["expected_churn_arr"] = float(ret["total_expected_churn_arr"].sum(min_count=1))
        out["churn_rate"] = float(ret["company_churn_rate"])
        out["required_new_arr"] = float(ret["total_required_new_arr"].sum(min_count=1))
    acc = r.get("accuracy")
    if acc is not None and len(acc):
        total = acc[acc["level"] == "total"]
        if len(total):
            out["last_quarter_forecast"] = float(total["forecast"].iloc[0])
            out["last_quarter_actual"] = float(total["actual"].iloc[0])
            out["last_quarter_error"] = float(total["error"].iloc[0] / total["actual"].iloc[0])
    info = r.get("accuracy_info")
    if info:
        out["last_quarter"] = info.get("quarter")
        out["last_quarter_source"] = info.get("source")
        out["last_quarter_origin"] = info.get("origin")
    return out


def pack_tables(work_dir: str | Path, params: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Every table of the pack, from the run folder's results (tables whose results are missing are left out)."""
    r = Results(work_dir)
    cube = r.get("cube")
    fc, rec, quotas = r.get("forecast"), r.get("reconciled"), r.get("quotas")
    out: dict[str, pd.DataFrame] = {}
    qmonths = period_months(params["cycle"], cube.attrs)
    if fc is not None and rec is not None:
        frames = []
        paths = run_paths(work_dir, fc, params)
        for level in ("total", "region", "segment", "manager", "rep"):
            t = forecast_table(cube, fc, rec["forecast"], quotas, qmonths, level, paths)
            frames.append(t.assign(level=level))
        f = pd.concat(frames, ignore_index=True)
        if not f["booked"].any():  # the cycle's quarter is all ahead: nothing booked to show
            f = f.drop(columns="booked")
        out["forecast_by_level"] = f[["level", *[c for c in f.columns if c != "level"]]]
    quotas_by_rep = _quota_table(r, qmonths)
    if quotas_by_rep is not None:
        out["quotas_by_rep"] = quotas_by_rep
    cap = _capacity_table(r)
    if cap is not None:
        out["capacity"] = cap
    hires = r.get("hires")
    if hires is not None:
        out["hires_needed"] = hires.assign(
            start_by=pd.to_datetime(hires["start_by"]).dt.strftime("%Y-%m")
        )
    bridge = r.get("arr_bridge")
    if bridge is not None:
        b = bridge.to_dataframe().reset_index()
        out["arr_bridge"] = b[[c for c in ("fiscal_quarter", "opening", "new", "expansion", "contraction", "churn", "closing", "months") if c in b.columns]]  # fmt: skip
    ret = r.get("retention_plan")
    if ret is not None:
        out["retention_plan"] = (
            ret[["opening_arr", "required_new_arr", "expected_churn_arr", "closing_arr"]]
            .to_dataframe()
            .reset_index()
            .assign(month=lambda d: pd.to_datetime(d["month"]).dt.strftime("%Y-%m"))
            [["month", "fiscal_quarter", "opening_arr", "required_new_arr", "expected_churn_arr", "closing_arr"]]
        )  # fmt: skip
    kpis = r.get("kpis")
    if kpis is not None:
        k = kpis.to_dataframe().reset_index()
        k = k.drop(columns=[c for c in ("fiscal_year",) if c in k.columns])
        out["kpis"] = k.tail(8).reset_index(drop=True)
    tb = r.get("territory_balance")
    if tb is not None:
        out["territories"] = with_names(tb, cube)
    sc = r.get("scenarios")
    if sc is not None:
        out["scenarios"] = sc
    acc = r.get("accuracy")
    if acc is not None:
        out["accuracy_by_level"] = backtest.accuracy_table(acc)
        acc = acc.copy()
        reps = acc["level"] == reconcile.BOTTOM_LEVEL if "level" in acc else []
        if len(acc) and "name" in acc and reps.any():
            acc.loc[reps, "name"] = shown_names(acc.loc[reps, "name"].astype(str), cube)
        out["accuracy"] = acc
    if params.get("data_dir"):
        loaded = _tables_for_changes(work_dir, params)
        out.update(_pipeline_changes(params, cube, loaded))
        out.update(_value_add(params, cube, loaded))
    return out


def _tables_for_changes(
    work_dir: str | Path, params: Mapping[str, Any]
) -> Mapping[str, pd.DataFrame]:
    """The tables "what changed" and whose calls to trust are made of: the exports the run
    read and validated once (kept in the run folder by ``revmodel plan``); with a table given
    as Parquet parts, the tables the plan read (the run folder's), whose deals were labelled
    where their parts were read (:func:`revmodel.partitions.load`); else the data folder read."""
    from revmodel import partitions, sources

    kept = load_result(work_dir, INPUT_RESULT, default=None) is not None
    if kept or partitions.partitioned_tables(params["data_dir"]):
        return load_tables(work_dir)
    return sources.load(params["data_dir"], mapping=params.get("mapping")).tables


def _pipeline_changes(
    params: Mapping[str, Any], cube, loaded: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, pd.DataFrame]:
    """The waterfalls since last week and since the quarter's start, when there is history."""
    from revmodel import history

    section = history.section_from_data(
        params["data_dir"],
        mapping=params.get("mapping"),
        fiscal_year_start=int(cube.attrs["fiscal_year_start"]),
        naming=str(cube.attrs["fiscal_year_naming"]),
        period=params.get("cycle"),
        tables=loaded,
    )
    if section is None:
        return {}
    week = section.since_last_week.table
    quarter = section.since_quarter_start.table
    week.attrs["title"] = f"{section.quarter} pipeline: the week to {section.as_of:%Y-%m-%d}"
    quarter.attrs["title"] = f"{section.quarter} pipeline: since {section.period_start:%Y-%m-%d}"
    return {"changes_week": week, "changes_quarter": quarter}


def _value_add(
    params: Mapping[str, Any], cube, loaded: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, pd.DataFrame]:
    """Whose calls to trust: every past weekly call (the call store's and the data folder's
    call history, :func:`revmodel.valueadd.call_log`) scored beside the in-quarter model."""
    from revmodel import valueadd

    store = valueadd.open_call_store()
    try:
        section = valueadd.section_from_data(
            params["data_dir"],
            mapping=params.get("mapping"),
            fiscal_year_start=int(cube.attrs["fiscal_year_start"]),
            naming=str(cube.attrs["fiscal_year_naming"]),
            store=store,
            tables=loaded,
        )
    finally:
        if store is not None:
            store.close()
    if section is None or section.summary.empty:
        return {}
    summary = section.summary[section.summary["call_type"] == "commit"].drop(columns="call_type")
    weekly = section.by_week
    summary.attrs["rejected"] = section.rejected
    return {"value_add": summary.reset_index(drop=True), "value_add_by_week": weekly}


def _quota_table(r: Results, qmonths: pd.DatetimeIndex) -> pd.DataFrame | None:
    quotas, capacity, bal = r.get("quotas"), r.get("capacity"), r.get("balance")
    if quotas is None:
        return None
    q = quotas["quota"]
    qq = q.sel(month=q["month"].isin(qmonths.values)).sum("month")
    frame = pd.DataFrame(
        {
            "rep": quotas["rep"].values.astype(str),
            "manager": quotas["manager"].values.astype(str),
            "region": quotas["rep_region"].values.astype(str),
            "segment": quotas["rep_segment"].values.astype(str),
            "planned_hire": quotas["planned"].values.astype(bool) if "planned" in quotas.coords else False,
            "quota_year": quotas["rep_quota"].values,
            "quota_quarter": qq.values,
            "full_year_quota": quotas["full_quota"].values,
        }
    )  # fmt: skip
    if capacity is not None:
        cap = capacity["capacity"].sum("month").reindex(rep=quotas["rep"].values)
        frame["capacity_year"] = cap.values
        frame["expected_attainment"] = frame["capacity_year"] / frame["quota_year"].where(
            frame["quota_year"] > 0
        )
    pot = r.get("rep_potential")
    if pot is not None:
        frame["potential"] = frame["rep"].map(pot.iloc[:, 0])
    if bal is not None:
        b = bal.reindex(rep=quotas["rep"].values)
        frame["quota_to_potential"] = b["relative"].values
        frame["out_of_line"] = b["out_of_line"].fillna(0).values.astype(bool)
    cube = r.get("cube")
    if cube is not None:
        # Reps by name, the id beside a shared name (one display label: revmodel.cube.labels).
        frame.insert(0, "name", frame["rep"].map(rcube.labels(cube)).fillna(frame["rep"]))
    return frame


def _capacity_table(r: Results) -> pd.DataFrame | None:
    gap = r.get("gap")
    if gap is None:
        return None
    g = gap[["capacity", "target", "gap", "capacity_to_target"]].to_dataframe().reset_index()
    hires = r.get("hires")
    if hires is not None and len(hires):
        h = hires[["segment", "region", "hires", "start_by"]].copy()
        h["start_by"] = pd.to_datetime(h["start_by"]).dt.strftime("%Y-%m")
        g = g.merge(h, on=["segment", "region"], how="left")
        g["hires"] = g["hires"].fillna(0).astype(int)
    else:
        g["hires"] = 0
        g["start_by"] = None
    capacity = r.get("capacity")
    if capacity is not None:
        hc = capacity["headcount"].isel(month=0)
        seats = pd.DataFrame(
            {"segment": capacity["rep_segment"].values, "region": capacity["rep_region"].values, "headcount": hc.values}
        ).groupby(["segment", "region"], as_index=False)["headcount"].sum()  # fmt: skip
        g = g.merge(seats, on=["segment", "region"], how="left")
    return g


def pack_figures(
    work_dir: str | Path, params: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> dict[str, Any]:
    """The pack's charts (Plotly figures), by section."""
    from revmodel import plots

    r = Results(work_dir)
    figs: dict[str, Any] = {}
    cube, fc, rec = r.get("cube"), r.get("forecast"), r.get("reconciled")
    quotas = r.get("quotas")
    # Every chart is labelled in the data's currency (the cube's), never a hard-coded one.
    cur = cube.attrs.get("currency") if cube is not None else None
    if fc is not None and rec is not None:
        figs["fan"] = plots.forecast_fan(
            cube,
            fc,
            rec["forecast"],
            quota=quotas,
            cycle_months=period_months(params["cycle"], cube.attrs),
            currency=cur,
        )
    f = tables.get("forecast_by_level")
    if f is not None:
        for level in ("region", "segment", "manager"):
            figs[f"vs_target_{level}"] = plots.bookings_vs_target(
                f[f["level"] == level],
                title=f"Forecast vs target by {level}, {params['cycle']}",
                currency=cur,
            )
    bridge = r.get("arr_bridge")
    if bridge is not None:
        figs["bridge"] = plots.arr_bridge(bridge, currency=cur)
    qt = tables.get("quotas_by_rep")
    if qt is not None and "capacity_year" in qt:
        figs["quota_balance"] = plots.quota_balance(qt, currency=cur)
    tb = tables.get("territories")
    if tb is not None:
        figs["territory"] = plots.territory_balance(tb)
    sc = r.get("scenarios")
    if sc is not None and len(sc):
        figs["scenarios"] = plots.scenario_comparison(sc, currency=cur)
    acc = r.get("accuracy")
    if acc is not None and len(acc):
        figs["accuracy"] = plots.accuracy(acc, currency=cur)
    if "value_add_by_week" in tables:
        figs["value_add"] = plots.value_add_by_week(tables["value_add_by_week"])
    for name in ("changes_week", "changes_quarter"):
        if name in tables:
            figs[name] = plots.pipeline_waterfall(
                tables[name].iloc[0], tables[name].attrs["title"], currency=cur
            )
    return figs  # fmt: skip
