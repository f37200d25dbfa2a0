"""Plan explorer: bookings, forecast with interval, quota, attainment, pipeline and KPIs for any slice.

Pick a fiscal period, region, manager, rep and segment; the KPI cards, the
monthly chart (actuals, reconciled forecast with its 10-90% band, quota) and
the breakdown table follow the selection. Numbers come from the cached
:class:`~revmodel.apps.context.AppContext`; a filter change only slices and sums.
"""

from __future__ import annotations

import html
import time
import warnings
from dataclasses import dataclass, field, replace

import ipywidgets as w
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import xarray as xr
from scipy.linalg import LinAlgWarning

from revmodel import calendar as fcal
from revmodel import forecast as rforecast
from revmodel import kpi, plots
from revmodel.apps import layout
from revmodel.apps.context import AppContext, app_context, node_calls, with_live_forecast
from revmodel.errors import RevmodelError
from revmodel.reconcile import BOTTOM_LEVEL

__all__ = [
    "ALL_MEMBERS",
    "KPI_NAMES",
    "Selection",
    "breakdown",
    "build",
    "figure",
    "kpis",
    "members",
    "summarise",
]

#: The dropdown entry that selects every member.
ALL_MEMBERS = "All"
#: The catalogue's KPIs the explorer shows (:data:`revmodel.kpi.KPIS`), computed by :func:`kpi.compute`.
KPI_NAMES = ("bookings", "win_rate", "average_deal_size", "quota_attainment", "pipeline_coverage")
#: Those of :data:`KPI_NAMES` that need a quota.
QUOTA_KPIS = ("quota_attainment", "pipeline_coverage")
#: Breakdown level -> the quota's coordinate naming it.
_QUOTA_LEVEL = {"region": "rep_region", "segment": "rep_segment", "manager": "manager"}


@dataclass(frozen=True)
class Selection:
    """A slice of the plan: a fiscal period and optional members (None = all)."""

    period: str
    region: str | None = None
    manager: str | None = None
    rep: str | None = None
    segment: str | None = None

    def describe(self, names: dict[str, str] | None = None) -> str:
        """The slice in words; ``names`` maps rep ids to the names shown."""
        rep = (names or {}).get(self.rep, self.rep) if self.rep else None
        parts = [p for p in (self.region, self.manager, rep, self.segment) if p]
        return ", ".join(parts) if parts else "Company"


# --------------------------------------------------------------------------- slicing


def _rep_table(ctx: AppContext) -> pd.DataFrame:
    """Each rep's manager, region and segment (made once per cube; callers only read it)."""
    cube = ctx.cube
    kept = ctx.extra.get(("rep_table",))
    if kept is not None and kept[0] is cube:
        return kept[1]
    table = pd.DataFrame(
        {
            "rep": np.asarray(cube["rep"].values).astype(str),
            "manager": np.asarray(cube["manager"].values).astype(str),
            "region": np.asarray(cube["rep_region"].values).astype(str),
            "segment": np.asarray(cube["rep_segment"].values).astype(str),
        }
    )
    ctx.extra[("rep_table",)] = (cube, table)
    return table


def members(ctx: AppContext, sel: Selection) -> dict[str, list[str]]:
    """Options of each filter given the others (managers of the region, reps of the manager)."""
    reps = _rep_table(ctx)
    regions = sorted(map(str, ctx.cube["region"].values))
    segments = [str(s) for s in ctx.cube["segment"].values]
    in_region = reps if sel.region is None else reps[reps["region"] == sel.region]
    managers = sorted(set(in_region["manager"]))
    in_team = in_region if sel.manager is None else in_region[in_region["manager"] == sel.manager]
    if sel.segment is not None:
        in_team = in_team[in_team["segment"] == sel.segment]
    return {
        "region": regions,
        "manager": managers,
        "rep": sorted(set(in_team["rep"])),
        "segment": segments,
    }


def _reps(ctx: AppContext, sel: Selection) -> list[str]:
    reps = _rep_table(ctx)
    mask = np.ones(len(reps), dtype=bool)
    if sel.manager is not None:
        mask &= (reps["manager"] == sel.manager).to_numpy()
    if sel.rep is not None:
        mask &= (reps["rep"] == sel.rep).to_numpy()
    return reps["rep"][mask].tolist()


def _slice(da: xr.DataArray, ctx: AppContext, sel: Selection) -> xr.DataArray:
    """The cells of the selection, summed over segment, region and rep."""
    if sel.segment is not None:
        da = da.sel(segment=[sel.segment])
    if sel.region is not None:
        da = da.sel(region=[sel.region])
    if sel.manager is not None or sel.rep is not None:
        da = da.sel(rep=_reps(ctx, sel))
    return da.sum([d for d in ("segment", "region", "rep") if d in da.dims], skipna=True)


def _rep_quota(ctx: AppContext, sel: Selection) -> xr.DataArray:
    """Plan quota of the selection's reps by rep and month [USD/month] (the published plan's)."""
    q = ctx.rep_quota()
    mask = np.ones(q.sizes["rep"], dtype=bool)
    for coord, value in (
        ("rep_region", sel.region),
        ("rep_segment", sel.segment),
        ("manager", sel.manager),
    ):
        if value is not None:
            mask &= np.asarray(q[coord].values).astype(str) == value
    if sel.rep is not None:
        mask &= np.asarray(q["rep"].values).astype(str) == sel.rep
    return q.isel(rep=mask)


def _quota(ctx: AppContext, sel: Selection) -> xr.DataArray:
    """Plan quota of the selection by month [USD/month] (the plan year's months only)."""
    return _rep_quota(ctx, sel).sum("rep")


def period_kind(label: str) -> str:
    """``fiscal_quarter`` for a label like ``FY2027-Q1``, ``fiscal_year`` for ``FY2027``."""
    return "fiscal_quarter" if "-Q" in label else "fiscal_year"


def kpis(ctx: AppContext, sel: Selection, level: str | None = None) -> xr.Dataset:
    """:data:`KPI_NAMES` of the selection by :func:`revmodel.kpi.compute`, by ``level`` if given.

    The cube is cut to the selection's cells and the quota to its reps (grouped to
    ``level`` by the quota's own coordinates, so planned hires count); the catalogue
    does the rest, so every figure here is the plan pack's definition. Cached per
    selection: actuals and the published quota do not change in a kernel.
    """
    key = _kpi_key(sel, level)
    if key in ctx.extra:
        return ctx.extra[key]
    cube = ctx.cube[["bookings", "won", "lost", "pipeline"]]
    if sel.segment is not None:
        cube = cube.sel(segment=[sel.segment])
    if sel.region is not None:
        cube = cube.sel(region=[sel.region])
    if sel.manager is not None or sel.rep is not None:
        cube = cube.sel(rep=_reps(ctx, sel))
    q: xr.DataArray | None = _rep_quota(ctx, sel)
    names = KPI_NAMES
    if q.sizes["rep"] == 0:  # nobody in the slice has a quota: no coverage, no attainment
        q, names = None, tuple(n for n in KPI_NAMES if n not in QUOTA_KPIS)
    elif level is None:
        q = q.sum("rep")
    elif level in _QUOTA_LEVEL:
        coord = _QUOTA_LEVEL[level]
        q = q.groupby(coord).sum().rename({coord: level})
    dims = () if level is None else (level,)
    ctx.extra[key] = kpi.compute(cube, names, dims=dims, period=period_kind(sel.period), quota=q)
    return ctx.extra[key]


def default_period(ctx: AppContext) -> str:
    """The period a page opens on: the cycle planned, else the latest period offered."""
    periods = ctx.periods()
    return ctx.cycle if ctx.cycle in periods else periods[-1]


def precompute(ctx: AppContext) -> None:
    """The forecast's band paths (:func:`band_paths`), the KPIs of the page as it opens
    (the company, by region) and of each region by manager (the region filter's and the
    first drill-down's breakdown), kept with the shared context: a kernel then computes
    none of them while someone waits."""
    band_paths(ctx)
    sel = Selection(default_period(ctx))
    for period in dict.fromkeys((sel.period, rates_period(ctx, sel))):
        kpis(ctx, Selection(period))
    _share_kpis(ctx, sel, "region")
    for region in members(ctx, sel)["region"]:
        _share_kpis(ctx, replace(sel, region=region), "manager")


def _kpi_key(sel: Selection, level: str | None) -> tuple:
    return ("explorer_kpis", *_members_of(sel), period_kind(sel.period), level)


def _share_kpis(ctx: AppContext, sel: Selection, level: str) -> None:
    """Compute the members' KPIs in one call by ``level`` and keep each member's part.

    Summing a member's cells is what :func:`kpi.compute` does by level, so each
    member's part is what :func:`kpis` of the member alone gives.
    """
    for period in dict.fromkeys((sel.period, rates_period(ctx, sel))):
        by_level = kpis(ctx, replace(sel, period=period), level)
        for member in map(str, by_level[level].values):
            one = replace(sel, period=period, **{level: member})
            ctx.extra.setdefault(_kpi_key(one, None), by_level.sel({level: member}))


def kpi_value(
    ds: xr.Dataset, name: str, period: str, member: tuple[str, str] | None = None
) -> float:
    """One figure of :func:`kpis`: ``name`` in ``period`` (for ``(level, member)``), else NaN."""
    if name not in ds:
        return float("nan")
    da = ds[name]
    if member is not None:
        level, key = member
        if key not in set(map(str, da[level].values)):
            return float("nan")
        da = da.sel({level: key})
    kind = period_kind(period)
    if period not in set(map(str, da[kind].values)):
        return float("nan")
    return float(da.sel({kind: period}))


def rates_period(ctx: AppContext, sel: Selection) -> str:
    """The period of the win rate and deal size shown: the one chosen, or the year to date.

    A period with no actuals yet has no win rate of its own; the fiscal year
    holding ``as_of`` (to date) is shown instead.
    """
    months = ctx.period_months(sel.period)
    if (months <= ctx.as_of).any():
        return sel.period
    start = int(ctx.cube.attrs.get("fiscal_year_start", 1))
    naming = str(ctx.cube.attrs.get("fiscal_year_naming", "end"))
    return fcal.current_quarter(ctx.as_of, start, naming).split("-")[0]


def band_paths(ctx: AppContext) -> tuple[np.ndarray, pd.DataFrame]:
    """The forecast's reconciled sample paths at its bottom nodes, and their members.

    The paths the plan pack reads its 10-90% bands off
    (:func:`revmodel.forecast.coherent_paths`: scaled by the band calibration the
    forecast states, reconciled with the plan's method, the same seed), drawn once
    with the shared context. A selection's band is the quantiles of its bottom nodes'
    paths added up, month by month or over a period, as the pack's
    (:func:`revmodel.publish.tables.level_band`), never widths added.

    With live calls (``ctx.live``, :func:`~revmodel.apps.context.with_live_forecast`) the
    paths are drawn alike with the calls locked (:meth:`AppContext.call_locks`, the locks
    of the forecast shown beside the band): every path holds each called node at its
    call, so the band is that of the forecast shown. Drawn once per set of calls.

    Returns
    -------
    (np.ndarray, pandas.DataFrame)
        (bottom nodes x forecast months x draws) [USD/month], and each bottom node's
        ``segment``, ``region`` and ``rep``.
    """
    fc = ctx.forecast
    if "band_paths" not in ctx.extra:
        paths = rforecast.coherent_paths(fc, ctx.reconcile_method)
        bottom = np.asarray(fc["level"].values) == BOTTOM_LEVEL
        members = {d: np.asarray(fc[f"node_{d}"].values)[bottom].astype(str) for d in _MEMBERS}
        ctx.extra["band_paths"] = (paths.samples[bottom], pd.DataFrame(members))
    live = ctx.live
    if live is None or not live.locked:
        return ctx.extra["band_paths"]
    locks, _ = ctx.call_locks(live.locked, live.period)
    if not locks:
        return ctx.extra["band_paths"]
    key = ("band_paths_live", live.period, tuple(sorted(live.locked.items())))
    if key not in ctx.extra:
        try:
            with warnings.catch_warnings():  # as the live forecast's own reconciliation
                warnings.simplefilter("ignore", LinAlgWarning)
                paths = rforecast.coherent_paths(fc, ctx.reconcile_method, locked=locks)
        except RevmodelError:  # the calls could not be kept: nor are they in the forecast
            return ctx.extra["band_paths"]
        bottom = np.asarray(fc["level"].values) == BOTTOM_LEVEL
        for old in [k for k in ctx.extra if isinstance(k, tuple) and k[:2] == key[:2]]:
            del ctx.extra[old]  # drawn with calls since changed
        ctx.extra[key] = (paths.samples[bottom], ctx.extra["band_paths"][1])
    return ctx.extra[key]


_MEMBERS = ("segment", "region", "rep")


def _band(ctx: AppContext, sel: Selection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The selection's forecast paths added up (forecast months x draws) [USD/month], the
    months they are of, and the band's two probability levels (e.g. 0.1 and 0.9)."""
    samples, members = band_paths(ctx)
    mask = np.ones(len(members), dtype=bool)
    for d, value in (("segment", sel.segment), ("region", sel.region)):
        if value is not None:
            mask &= (members[d] == value).to_numpy()
    if sel.manager is not None or sel.rep is not None:
        mask &= members["rep"].isin(_reps(ctx, sel)).to_numpy()
    q = [float(v) for v in ctx.forecast["quantile"].values]
    months = ctx.forecast["month"].values.astype("datetime64[ns]")
    return samples[mask].sum(axis=0), months, np.array([min(q), max(q)])


def monthly(ctx: AppContext, sel: Selection, history_months: int = 24) -> pd.DataFrame:
    """Monthly series of the selection [USD/month].

    Columns ``actual`` (to ``as_of``), ``forecast`` (reconciled, after ``as_of``),
    ``p10``, ``p90``, ``quota`` and ``pipeline`` (open, by expected close month),
    indexed by month.
    """
    cube = ctx.cube
    as_of = np.datetime64(ctx.as_of, "ns")
    actual = _slice(cube["bookings"], ctx, sel).to_series()
    actual = actual[actual.index <= as_of].iloc[-history_months:]
    rec = _slice(ctx.reconciled, ctx, sel).to_series()
    paths, months, levels = _band(ctx, sel)
    band = pd.DataFrame(np.quantile(paths, levels, axis=-1).T, index=months, columns=["p10", "p90"])
    fc = pd.concat([rec.rename("forecast"), band], axis=1)
    out = pd.concat([actual.rename("actual"), fc], axis=1)
    quota = _quota(ctx, sel).to_series()
    out = out.join(quota.rename("quota"), how="outer")
    pipe = _slice(cube["pipeline"], ctx, sel).to_series()
    out["pipeline"] = pipe.reindex(out.index).where(out.index > as_of)
    out.index = pd.DatetimeIndex(out.index, name="month")
    return out.sort_index()


def summarise(ctx: AppContext, sel: Selection) -> dict[str, float]:
    """The period's figures for the selection.

    Returns
    -------
    dict
        ``bookings`` (actual, to date), ``forecast`` (reconciled, the period's
        remaining months), ``p10`` / ``p90`` (band of the forecast, months summed),
        ``landing`` (bookings + forecast), ``quota``, ``attainment`` (bookings / quota),
        ``expected_attainment`` (landing / quota), ``pipeline`` (open, closing in the
        period's remaining months), ``coverage`` (pipeline / quota still to book),
        ``win_rate`` and ``deal_size`` (the period, else the fiscal year to date: :func:`rates_period`)
        [USD, ratios]; ``months_actual`` and ``months_forecast`` [months].
    """
    cube = ctx.cube
    months = ctx.period_months(sel.period).values.astype("datetime64[ns]")
    as_of = np.datetime64(ctx.as_of, "ns")
    cm = cube["month"].values
    done = months[months <= as_of]
    ahead = months[months > as_of]
    fm = ctx.reconciled["month"].values
    in_fc = np.isin(fm, ahead)
    forecast = (
        float(_slice(ctx.reconciled.isel(month=in_fc), ctx, sel).sum()) if in_fc.any() else 0.0
    )
    paths, path_months, levels = _band(ctx, sel)
    ahead_paths = np.isin(path_months, ahead)
    # The band of the period's forecast: quantiles of the paths' totals over its months.
    p10, p90 = (
        np.quantile(paths[ahead_paths].sum(axis=0), levels) if ahead_paths.any() else (0.0, 0.0)
    )
    qda = _quota(ctx, sel)
    qm = np.isin(qda["month"].values, months)
    quota = float(qda.isel(month=qm).sum()) if qm.any() else float("nan")
    pipe_months = np.isin(cm, ahead)
    pipeline = (
        float(_slice(cube["pipeline"].isel(month=pipe_months), ctx, sel).sum())
        if pipe_months.any()
        else 0.0
    )
    # The KPIs: revmodel.kpi's definitions, on the selection's cells.
    own = kpis(ctx, sel)
    bookings = kpi_value(own, "bookings", sel.period) if len(done) else 0.0
    rates = rates_period(ctx, sel)
    rated = own if rates == sel.period else kpis(ctx, Selection(rates, *_members_of(sel)))
    landing = bookings + forecast
    return {
        "bookings": bookings,
        "forecast": forecast,
        "p10": bookings + float(p10),
        "p90": bookings + float(p90),
        "landing": landing,
        "quota": quota,
        "attainment": kpi_value(own, "quota_attainment", sel.period)
        if len(done)
        else float(kpi.attainment(0.0, quota)),
        "expected_attainment": float(kpi.attainment(landing, quota)),
        "pipeline": pipeline,
        "coverage": kpi_value(own, "pipeline_coverage", sel.period),
        "win_rate": kpi_value(rated, "win_rate", rates),
        "deal_size": kpi_value(rated, "average_deal_size", rates),
        "months_actual": float(len(done)),
        "months_forecast": float(in_fc.sum()),
    }  # fmt: skip


def _members_of(sel: Selection) -> tuple[str | None, ...]:
    """The selection's members, in :class:`Selection` order after the period."""
    return (sel.region, sel.manager, sel.rep, sel.segment)


def breakdown(
    ctx: AppContext, sel: Selection, total: dict[str, float] | None = None
) -> tuple[str, pd.DataFrame]:
    """The selection split one level down: regions, a region's managers, a team's reps.

    ``total`` is the selection's :func:`summarise` when the caller has it (the page has,
    for its KPI cards): the ``Total`` row, not computed twice.

    Returns
    -------
    (str, pandas.DataFrame)
        The level name and one row per member plus a ``Total`` row:
        ``name`` (reps by name), ``bookings``, ``forecast``, ``landing``, ``quota``,
        ``expected_attainment``, ``pipeline``, ``win_rate``, ``commit`` and
        ``best_case`` (:func:`calls_of`), and ``key`` (the member's id, None on ``Total``).
    """
    opts = members(ctx, sel)
    if sel.rep is not None:
        level, names = "segment", opts["segment"]
    elif sel.manager is not None:
        level, names = "rep", opts["rep"]
    elif sel.region is not None:
        level, names = "manager", opts["manager"]
    else:
        level, names = "region", opts["region"]
    _share_kpis(ctx, sel, level)
    rows = []
    cols = [
        "bookings",
        "forecast",
        "landing",
        "quota",
        "expected_attainment",
        "pipeline",
        "win_rate",
    ]
    for name in names:
        s = summarise(ctx, replace(sel, **{level: name}))
        if s["landing"] == 0 and s["pipeline"] == 0 and not (s["quota"] > 0):
            continue
        commit, best = calls_of(ctx, replace(sel, **{level: name}))
        label = ctx.label(level, name)
        rows.append(
            {
                "name": label,
                **{c: s[c] for c in cols},
                "commit": commit,
                "best_case": best,
                "key": name,
            }
        )
    total = summarise(ctx, sel) if total is None else total
    commit, best = calls_of(ctx, sel)
    rows.append(
        {
            "name": "Total",
            **{c: total[c] for c in cols},
            "commit": commit,
            "best_case": best,
            "key": None,
        }
    )
    return level, pd.DataFrame(rows, columns=["name", *cols, "commit", "best_case", "key"])


def _points(series: pd.Series) -> dict[str, list]:
    """A series as a trace's ``x`` (days) and ``y`` (a missing value as a gap, never 0)."""
    y = [None if not np.isfinite(v) else float(v) for v in series.to_numpy(dtype=float)]
    return {"x": list(pd.DatetimeIndex(series.index).strftime("%Y-%m-%d")), "y": y}


def figure_spec(ctx: AppContext, sel: Selection) -> dict:
    """:func:`figure` as the plain dict the page is sent (:class:`layout.FigurePane`)."""
    m = monthly(ctx, sel)
    act = m["actual"].dropna()
    fc = m.dropna(subset=["forecast"])
    q = m["quota"].dropna()
    data = [
        {"type": "scatter", **_points(act), "name": "Actual", "mode": "lines+markers",
         "line": {"color": plots.COLORS["actual"], "width": 2}, "marker": {"size": 4}},
        {"type": "scatter", **_points(fc["p90"]), "name": "P90", "mode": "lines",
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "x+y"},
        {"type": "scatter", **_points(fc["p10"]), "name": "10-90% band", "mode": "lines",
         "line": {"width": 0}, "fill": "tonexty", "fillcolor": plots.COLORS["band"]},
        {"type": "scatter", **_points(fc["forecast"]), "name": "Forecast", "mode": "lines",
         "line": {"color": plots.COLORS["forecast"], "width": 2.5, "dash": "dot"}},
        {"type": "scatter", **_points(q), "name": "Quota", "mode": "lines+markers",
         "line": {"color": plots.COLORS["target"], "width": 2, "dash": "dash"},
         "marker": {"size": 5}},
    ]  # fmt: skip
    months = ctx.period_months(sel.period)
    x0 = f"{months[0] - pd.Timedelta(days=15):%Y-%m-%d}"
    x1 = f"{months[-1] + pd.Timedelta(days=15):%Y-%m-%d}"
    code = plots.currency_code(ctx.cube.attrs.get("currency"))
    layout_ = {
        "template": "revmodel",
        "title": {"text": f"Bookings: {sel.describe(ctx.rep_names())} ({sel.period})"},
        "shapes": [{"type": "rect", "xref": "x", "yref": "y domain", "x0": x0, "x1": x1,
                    "y0": 0, "y1": 1, "fillcolor": "#f2c94c", "opacity": 0.15,
                    "line": {"width": 0}}],
        "annotations": [{"text": sel.period, "showarrow": False, "x": x0, "xref": "x",
                         "xanchor": "left", "y": 1, "yref": "y domain", "yanchor": "top"}],
        "yaxis": {"title": {"text": f"{code} per month"}, "rangemode": "tozero",
                  **plots.money_ticks(code)},
        "height": 360, "margin": {"t": 48, "b": 40}, "legend": {"traceorder": "normal"},
    }  # fmt: skip
    return {"data": data, "layout": layout_}


def figure(ctx: AppContext, sel: Selection) -> go.Figure:
    """Monthly bookings of the selection: actuals, forecast with its 10-90% band, quota.

    Traces, in order: ``Actual``, ``P90`` (hidden edge), ``10-90% band``,
    ``Forecast`` and ``Quota``; the selected period is shaded.
    """
    return go.Figure(figure_spec(ctx, sel))


def _commit_note(s: dict[str, float], currency: str | None = None) -> str:
    if np.isfinite(s.get("best_case", np.nan)):
        return f"best case {layout.fmt_money(s['best_case'], currency)}"
    if np.isfinite(s.get("commit", np.nan)):
        return "no best case called"
    return "no call for this slice"


def cards(
    s: dict[str, float], sel: Selection, rates: str | None = None, currency: str | None = None
) -> list[dict[str, str]]:
    """KPI cards of :func:`summarise`; ``rates`` is the period of the win rate (:func:`rates_period`),
    amounts in ``currency`` (the cube's)."""
    pct = layout.fmt_pct

    def fmt(value: float | None) -> str:
        return layout.fmt_money(value, currency)

    rated = f"; {rates} to date" if rates and rates != sel.period else ""
    quota_sub = "plan quota" if np.isfinite(s["quota"]) else "no quota set for this period"
    return [
        {"name": "bookings", "label": "Bookings", "value": fmt(s["bookings"]),
         "sub": f"{int(s['months_actual'])} months of actuals"},
        {"name": "forecast", "label": "Forecast", "value": fmt(s["forecast"]),
         "sub": f"{int(s['months_forecast'])} months still to close"},
        {"name": "landing", "label": "Expected landing", "value": fmt(s["landing"]),
         "sub": f"P10-P90 {fmt(s['p10'])} - {fmt(s['p90'])}"},
        {"name": "quota", "label": "Quota", "value": fmt(s["quota"]), "sub": quota_sub},
        {"name": "commit", "label": "Commit", "value": fmt(s.get("commit")),
         "sub": _commit_note(s, currency)},
        {"name": "attainment", "label": "Attainment", "value": pct(s["expected_attainment"]),
         "sub": f"expected; {pct(s['attainment'])} booked to date"},
        {"name": "pipeline", "label": "Open pipeline", "value": fmt(s["pipeline"]),
         "sub": f"coverage {s['coverage']:.1f}x of quota to book" if np.isfinite(s["coverage"]) else "closing in the period"},
        {"name": "win_rate", "label": "Win rate", "value": pct(s["win_rate"]),
         "sub": f"average deal {fmt(s['deal_size'])}{rated}"},
    ]  # fmt: skip


def calls_of(ctx: AppContext, sel: Selection) -> tuple[float, float]:
    """Commit and best case of the selection's node: its own call, else the sum below [USD].

    NaN without a call store, for a segment slice (calls are not split by
    segment) and for a node nobody called.
    """
    if ctx.store is None or sel.segment is not None:
        return float("nan"), float("nan")
    if sel.rep is not None:
        node = ("rep", sel.rep)
    elif sel.manager is not None:
        node = ("manager", sel.manager)
    elif sel.region is not None:
        node = ("region", sel.region)
    else:
        node = ("total", "total")
    calls = node_calls(ctx, sel.period)
    if node not in calls.index:
        return float("nan"), float("nan")
    row = calls.loc[node]
    return float(row["commit"]), float(row["best_case"])


# --------------------------------------------------------------------------- app


@dataclass
class ExplorerPage:
    """The explorer's widgets (``app.app``)."""

    period: w.Dropdown
    region: w.Dropdown
    manager: w.Dropdown
    rep: w.Dropdown
    segment: w.Dropdown
    kpis: layout.KpiCards
    chart: layout.FigurePane
    table: w.HTML
    status: w.HTML
    context: AppContext
    drill: w.HBox = field(default_factory=w.HBox)
    excel: layout.ExcelDownload | None = None
    reload: w.Button | None = None
    shown: dict[str, pd.DataFrame] = field(default_factory=dict)
    busy: bool = False

    def drill_into(self, level: str, key: str) -> None:
        """Show one member of the breakdown (a click on its button): region, manager, rep, segment."""
        getattr(self, level).value = key

    def drill_up(self) -> None:
        """Back one level: the rep's team, the manager's region, the company."""
        for name in ("rep", "manager", "region", "segment"):
            if getattr(self, name).value not in (None, ALL_MEMBERS):
                getattr(self, name).value = ALL_MEMBERS
                return

    def selection(self) -> Selection:
        def value(dd: w.Dropdown) -> str | None:
            return None if dd.value in (None, ALL_MEMBERS) else str(dd.value)

        return Selection(
            str(self.period.value),
            value(self.region),
            value(self.manager),
            value(self.rep),
            value(self.segment),
        )

    def refresh(self, _change: object = None) -> None:
        """Redraw for the current filters, with the live calls."""
        _refresh(self)


def _widgets(ctx: AppContext) -> ExplorerPage:
    periods = ctx.periods()
    opened = default_period(ctx)
    opts = members(ctx, Selection(opened))
    page = ExplorerPage(
        period=layout.dropdown("Fiscal period", periods, opened, width="200px"),
        region=layout.dropdown("Region", [ALL_MEMBERS, *opts["region"]], ALL_MEMBERS),
        manager=layout.dropdown("Manager", [ALL_MEMBERS, *opts["manager"]], ALL_MEMBERS),
        rep=layout.dropdown("Rep", _rep_options(ctx, opts["rep"]), ALL_MEMBERS, width="220px"),
        segment=layout.dropdown(
            "Segment", [ALL_MEMBERS, *opts["segment"]], ALL_MEMBERS, width="200px"
        ),
        kpis=layout.KpiCards("revmodel-kpis"),
        chart=layout.FigurePane("revmodel-chart"),
        table=w.HTML(),
        status=w.HTML(),
        context=ctx,
    )
    for name in ("period", "region", "manager", "rep", "segment"):
        getattr(page, name).add_class(f"revmodel-filter-{name}")
    page.table.add_class("revmodel-table")
    page.status.add_class("revmodel-status")
    return page


def _rep_options(ctx: AppContext, reps: list[str]) -> list:
    named = sorted(((ctx.label("rep", r), r) for r in reps), key=lambda o: o[0])
    return [(ALL_MEMBERS, ALL_MEMBERS), *named]


def _layout(ctx: AppContext, page: ExplorerPage) -> w.VBox:
    filters = w.HBox(
        [page.period, page.region, page.manager, page.rep, page.segment, page.reload],
        layout=w.Layout(flex_flow="row wrap"),
    )
    filters.add_class("revmodel-filters")
    app = layout.page(
        "Plan explorer",
        f"Actuals to {ctx.as_of:%B %Y}; forecast and quotas of the {ctx.assumptions.plan_year} plan "
        f"(cycle {ctx.cycle}); the forecast keeps the latest commit calls. Pick a period and a "
        "slice of the sales team.",
        [
            filters,
            page.kpis,
            *_not_provided(ctx),
            page.chart,
            layout.section("Breakdown", page.drill, page.table, page.excel),
            page.status,
        ],
        footer=f"Data: {ctx.source}. Forecast: statistical, reconciled ({ctx.reconcile_method}) "
        "with the commit calls locked; band from the 10% and 90% quantiles; commit and best case: "
        "the node's own call, else the sum of the calls below it.",
    )
    app.add_class("revmodel-explorer")
    return app


def _not_provided(ctx: AppContext) -> list[w.Widget]:
    """The note where no rep is known: quotas, attainment and coverage are not provided."""
    why = ctx.not_provided("quotas")
    if not why:
        return []
    message = layout.Message()
    message.show(why, "info")
    return [message]


BREAKDOWN_KINDS = {
    "bookings": "money",
    "forecast": "money",
    "expected landing": "money",
    "quota": "money",
    "commit": "money",
    "best case": "money",
    "attainment (expected)": "pct",
    "pipeline": "money",
    "win rate": "pct",
}


def _set_options(dd: w.Dropdown, options: list) -> None:
    values = [o[1] if isinstance(o, tuple) else o for o in options]  # (label, value) or value
    current = dd.value
    dd.options = options
    dd.value = current if current in values else ALL_MEMBERS


def _refresh(page: ExplorerPage) -> None:
    if page.busy:
        return
    page.busy = True
    t0 = time.perf_counter()
    try:
        base = page.context
        _set_options(page.manager, [ALL_MEMBERS, *members(base, page.selection())["manager"]])
        _set_options(page.rep, _rep_options(base, members(base, page.selection())["rep"]))
        sel = page.selection()
        ctx = with_live_forecast(base, sel.period)
        s = summarise(ctx, sel)
        s["commit"], s["best_case"] = calls_of(ctx, sel)
        page.kpis.show(cards(s, sel, rates_period(ctx, sel), ctx.cube.attrs.get("currency")))
        page.chart.show(figure_spec(ctx, sel))
        level, frame = breakdown(ctx, sel, s)
        _drill_buttons(page, level, frame)
        frame = frame.drop(columns="key").rename(
            columns={
                "name": level.capitalize(),
                "landing": "expected landing",
                "expected_attainment": "attainment (expected)",
                "win_rate": "win rate",
                "best_case": "best case",
            }
        )
        page.table.value = layout.table_html(
            frame, kinds=BREAKDOWN_KINDS, css="revmodel-breakdown", total_rows=[len(frame) - 1]
        )
        page.shown = {"summary": _summary_frame(s, sel, ctx), "breakdown": frame}
        if page.excel is not None:
            page.excel.clear()
        where = html.escape(sel.describe(ctx.rep_names()))
        page.status.value = (
            f"<span class='revmodel-footer' data-selection='{where}'>{where} in "
            f"{html.escape(sel.period)}; updated in {(time.perf_counter() - t0) * 1000:.0f} ms"
            "</span>"
        )
    finally:
        page.busy = False


def _drill_buttons(page: ExplorerPage, level: str, frame: pd.DataFrame) -> None:
    """One button per member of the breakdown (click: show that member), and one back up."""
    buttons = []
    sel = page.selection()
    if any(v is not None for v in (sel.region, sel.manager, sel.rep, sel.segment)):
        up = w.Button(description="Up one level", icon="arrow-up")
        up.add_class("revmodel-drill-up")
        up.on_click(lambda _b: page.drill_up())
        buttons.append(up)
    if level != "segment" or sel.segment is None:
        for name, key in zip(frame["name"], frame["key"], strict=True):
            if key is None or pd.isna(key):  # the Total row
                continue
            b = w.Button(description=str(name), tooltip=f"Show {name}")
            b.add_class("revmodel-drill-member")
            b.on_click(lambda _b, k=str(key): page.drill_into(level, k))
            buttons.append(b)
    page.drill.children = buttons


def _summary_frame(s: dict[str, float], sel: Selection, ctx: AppContext) -> pd.DataFrame:
    """The KPI cards as a table (figure, value) for the Excel download."""
    names = {"bookings": "Bookings", "forecast": "Forecast", "landing": "Expected landing",
             "p10": "Landing P10", "p90": "Landing P90", "quota": "Quota",
             "commit": "Commit", "best_case": "Best case", "attainment": "Attainment to date",
             "expected_attainment": "Attainment (expected)", "pipeline": "Open pipeline",
             "coverage": "Pipeline coverage", "win_rate": "Win rate", "deal_size": "Average deal"}  # fmt: skip
    rows = [("Slice", sel.describe(ctx.rep_names())), ("Period", sel.period),
            ("Plan", ctx.source)]  # fmt: skip
    rows += [(label, s.get(key, float("nan"))) for key, label in names.items()]
    return pd.DataFrame(rows, columns=["figure", "value"])


def _excel_sheets(page: ExplorerPage) -> dict[str, layout.Sheet]:
    return {
        "Summary": (page.shown["summary"], {}),
        "Breakdown": (page.shown["breakdown"], BREAKDOWN_KINDS),
    }


def build(ctx: AppContext | None = None) -> w.Widget:
    """The plan explorer app.

    Parameters
    ----------
    ctx : AppContext, optional
        Data, forecasts, plan, calls and user (:func:`revmodel.apps.context.app_context`);
        default the server's.

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` is its :class:`ExplorerPage` (filters, ``kpis``, ``chart``,
        ``table`` and ``refresh()``).
    """
    ctx = ctx if ctx is not None and ctx.store is not None else app_context(context=ctx)
    page = _widgets(ctx)
    page.drill.add_class("revmodel-drill")
    page.reload = w.Button(
        description="Refresh", icon="refresh", tooltip="Read the latest forecast calls again"
    )
    page.reload.add_class("revmodel-refresh")
    page.reload.on_click(lambda _b: page.refresh())
    page.excel = layout.ExcelDownload(
        lambda: f"explorer-{page.selection().period}", lambda: _excel_sheets(page)
    )
    for dd in (page.period, page.region, page.manager, page.rep, page.segment):
        dd.observe(page.refresh, names="value")
    page.refresh()
    app = _layout(ctx, page)
    app.app = page
    return app
