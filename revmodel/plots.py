"""The plan's charts, in one Plotly style used by the plan pack and the apps alike.

Every function takes Datasets or DataFrames produced by revmodel and returns a
``plotly.graph_objects.Figure``; nothing here computes a planning number.
:data:`TEMPLATE` (registered as ``"revmodel"``) fixes fonts, colours and
number formats; :func:`to_div` and :func:`plotly_js` embed figures in a page
that works offline (plotly.js inline once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import xarray as xr

from revmodel import config, formatting

__all__ = [
    "COLORS",
    "accuracy",
    "arr_bridge",
    "bookings_vs_target",
    "forecast_fan",
    "notebook_mode",
    "quota_balance",
    "scenario_comparison",
    "territory_balance",
]

#: Named colours of the plan's charts.
COLORS: dict[str, str] = {
    "actual": "#1f3a5f",
    "forecast": "#2f80ed",
    "band": "rgba(47,128,237,0.18)",
    "target": "#e8833a",
    "capacity": "#27ae60",
    "negative": "#d64545",
    "positive": "#27ae60",
    "total": "#1f3a5f",
    "neutral": "#9aa5b1",
    "before": "#b8c4d0",
    "after": "#2f80ed",
}
#: Colour cycle for categories (scenarios, levels).
PALETTE: tuple[str, ...] = (
    "#2f80ed",
    "#e8833a",
    "#27ae60",
    "#9b51e0",
    "#d64545",
    "#1f3a5f",
    "#f2c94c",
)
#: Money axes: 1.2M style, the currency's symbol before it (see :func:`money_axis`).
MONEY_FORMAT = "~s"

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": "DejaVu Sans, Segoe UI, Arial, sans-serif", "size": 12, "color": "#1f2933"},
        colorway=list(PALETTE),
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin={"l": 60, "r": 20, "t": 48, "b": 48},
        title={"font": {"size": 15}, "x": 0.0, "xanchor": "left"},
        legend={"orientation": "h", "y": -0.18, "x": 0.0},
        xaxis={"gridcolor": "#edf0f3", "linecolor": "#cbd2d9", "zeroline": False},
        yaxis={"gridcolor": "#edf0f3", "linecolor": "#cbd2d9", "zeroline": False},
        hoverlabel={"font": {"size": 12}},
        height=380,
    )
)
pio.templates["revmodel"] = TEMPLATE


def _figure(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template="revmodel", title=title)
    return fig


def currency_code(currency: str | None) -> str:
    """The ISO code charts label amounts with: the data's, else the configured default."""
    return str(currency or config.CURRENCY).strip().upper()


def money_ticks(currency: str | None = None) -> dict[str, str]:
    """An axis's tick settings for amounts shown as ``€1.2M`` (:func:`money_axis`)."""
    return {
        "tickformat": MONEY_FORMAT,
        "tickprefix": formatting.currency_symbol(currency_code(currency)),
    }


def money_axis(fig: go.Figure, axis: str = "yaxis", currency: str | None = None) -> None:
    """Amounts on ``axis`` as ``€1.2M``: the data's currency, never a hard-coded dollar."""
    fig.update_layout({axis: money_ticks(currency)})


def plotly_js() -> str:
    """The plotly.js library, to inline once in a self-contained page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def to_div(fig: go.Figure) -> str:
    """A figure as an HTML ``<div>`` that uses the page's plotly.js (no script fetched)."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True},
        default_width="100%",
    )


# --------------------------------------------------------------------------- forecast


def forecast_fan(
    cube: xr.Dataset,
    fc: xr.Dataset,
    reconciled: xr.DataArray | None = None,
    quota: xr.Dataset | None = None,
    cycle_months: Sequence | pd.DatetimeIndex | None = None,
    history_months: int = 24,
    measure: str = "bookings",
    currency: str | None = None,
) -> go.Figure:
    """Company bookings: history, forecast median (reconciled) and its 10-90% band, and the target.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube (actuals).
    fc : xarray.Dataset
        :func:`revmodel.forecast.forecast_cube` (the ``total`` node gives the band).
    reconciled : xarray.DataArray, optional
        Coherent forecast (segment, region, rep, month); default the total node's mean.
    quota : xarray.Dataset, optional
        :func:`revmodel.quota.top_down`; its monthly total is drawn as the target.
    cycle_months : dates, optional
        Months of the cycle, shaded.
    history_months : int
        Months of history shown [months].
    measure : str
        The cube measure drawn.
    currency : str, optional
        ISO 4217 code of the amounts (a cube's ``attrs["currency"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces, in order: ``Actual``, ``10-90% band`` (two traces: ``P90``
        then ``P10`` filled to it), ``Forecast``, and ``Target`` when given.

    Examples
    --------
    >>> from revmodel import forecast
    >>> fc = forecast.forecast_cube(ds, horizon=3, method="seasonal_naive", progress=False)
    >>> fig = forecast_fan(ds, fc, cycle_months=pd.date_range("2026-11-01", periods=3, freq="MS"))
    >>> [trace.name for trace in fig.data]
    ['Actual', 'P90', '10-90% band', 'Forecast']
    >>> fig.layout.yaxis.title.text, fig.layout.yaxis.tickprefix
    ('USD per month', '$')
    """
    as_of = np.datetime64(pd.Timestamp(cube.attrs["as_of"]), "ns")
    hist = cube[measure].sel(month=cube["month"] <= as_of).sum(("segment", "region", "rep"))
    hist = hist.isel(month=slice(-history_months, None))
    total = int(np.flatnonzero(fc["level"].values == "total")[0])
    q = [float(v) for v in fc["quantile"].values]
    band = fc["node_forecast"].isel(node=total)
    months = pd.DatetimeIndex(fc["month"].values)
    if reconciled is not None:
        mid = reconciled.sum(("segment", "region", "rep")).reindex(month=fc["month"].values).values
    else:
        mid = fc["node_mean"].isel(node=total).values
    fig = _figure("Company bookings: actuals, forecast and target")
    fig.add_trace(go.Scatter(x=pd.DatetimeIndex(hist["month"].values), y=hist.values, name="Actual",
                             mode="lines+markers", line={"color": COLORS["actual"], "width": 2}, marker={"size": 4}))  # fmt: skip
    fig.add_trace(go.Scatter(x=months, y=band.isel(quantile=q.index(max(q))).values, name="P90",
                             mode="lines", line={"width": 0}, showlegend=False, hoverinfo="x+y"))  # fmt: skip
    fig.add_trace(go.Scatter(x=months, y=band.isel(quantile=q.index(min(q))).values, name="10-90% band",
                             mode="lines", line={"width": 0}, fill="tonexty", fillcolor=COLORS["band"]))  # fmt: skip
    fig.add_trace(go.Scatter(x=months, y=mid, name="Forecast", mode="lines",
                             line={"color": COLORS["forecast"], "width": 2.5, "dash": "dot"}))  # fmt: skip
    if quota is not None:
        tq = quota["quota"].sum("rep")
        fig.add_trace(go.Scatter(x=pd.DatetimeIndex(tq["month"].values), y=tq.values, name="Target",
                                 mode="lines", line={"color": COLORS["target"], "width": 2, "shape": "hv"}))  # fmt: skip
    if cycle_months is not None and len(cycle_months):
        cm = pd.DatetimeIndex(cycle_months)
        fig.add_vrect(x0=cm[0] - pd.Timedelta(days=15), x1=cm[-1] + pd.Timedelta(days=15),
                      fillcolor="#f2c94c", opacity=0.15, line_width=0, annotation_text="cycle",
                      annotation_position="top left")  # fmt: skip
    code = currency_code(currency or cube.attrs.get("currency"))
    money_axis(fig, currency=code)
    fig.update_yaxes(title_text=f"{code} per month", rangemode="tozero")
    return fig


def bookings_vs_target(
    table: pd.DataFrame, title: str = "Forecast vs target", currency: str | None = None
) -> go.Figure:
    """Forecast (with its 10-90% band) and target by member of one level, as grouped bars.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`revmodel.publish.tables.forecast_table`: ``name``, ``forecast``,
        ``p10``, ``p90``, ``target``.
    title : str
        The chart's title.
    currency : str, optional
        ISO 4217 code of the amounts (a cube's ``attrs["currency"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        Two bar traces: ``Forecast`` (error bars to p10 / p90) and ``Target``.

    Examples
    --------
    >>> table = pd.DataFrame({"name": ["East", "West"], "forecast": [4.1e6, 5.2e6],
    ...                       "p10": [3.5e6, 4.6e6], "p90": [4.8e6, 5.9e6], "target": [4.5e6, 5.0e6]})
    >>> fig = bookings_vs_target(table, currency="EUR")
    >>> [trace.name for trace in fig.data], fig.layout.yaxis.tickprefix
    (['Forecast', 'Target'], '€')
    >>> [float(v) for v in fig.data[0].error_y.arrayminus]
    [600000.0, 600000.0]
    """
    t = table.reset_index(drop=True)
    fig = _figure(title)
    err_hi = (t["p90"] - t["forecast"]).clip(lower=0).fillna(0)
    err_lo = (t["forecast"] - t["p10"]).clip(lower=0).fillna(0)
    fig.add_trace(go.Bar(x=t["name"], y=t["forecast"], name="Forecast", marker_color=COLORS["forecast"],
                         error_y={"type": "data", "symmetric": False, "array": err_hi, "arrayminus": err_lo,
                                  "color": "#52606d", "thickness": 1}))  # fmt: skip
    fig.add_trace(go.Bar(x=t["name"], y=t["target"], name="Target", marker_color=COLORS["target"]))
    fig.update_layout(barmode="group", height=340)
    money_axis(fig, currency=currency)
    return fig


# --------------------------------------------------------------------------- ARR


def waterfall(
    x: list[str],
    y: list[float],
    measure: list[str],
    currency: str | None = None,
    name: str = "pipeline",
) -> go.Bar:
    """A waterfall as one bar trace, each bar from the level the bars before it reached.

    ``measure`` per bar, as plotly's ``Waterfall`` takes it: ``absolute`` and ``total``
    bars stand on zero (total colour), ``relative`` ones on the running level (green up,
    red down). A bar trace with a ``base`` is drawn by plotly.js's basic bundle, the one
    the apps load before Voila starts; a ``Waterfall`` trace needs the full bundle, four
    times the size, whose run held the weekly page back by about a second.

    >>> w = waterfall(["Opening", "New", "Lost", "Closing"], [10.0, 4.0, -3.0, 11.0],
    ...               ["absolute", "relative", "relative", "total"], "USD")
    >>> list(w.base), list(w.y), list(w.text)
    ([0.0, 10.0, 14.0, 0.0], [10.0, 4.0, -3.0, 11.0], ['$10', '$4', '-$3', '$11'])
    """
    base, level, colors = [], 0.0, []
    for value, kind in zip(y, measure, strict=True):
        if kind == "relative":
            base.append(level)
            level += value
            colors.append(COLORS["positive"] if value >= 0 else COLORS["negative"])
        else:
            base.append(0.0)
            level = value
            colors.append(COLORS["total"])
    return go.Bar(
        x=x,
        y=y,
        base=base,
        text=[formatting.money(v, currency_code(currency)) for v in y],
        textposition="outside",
        marker={"color": colors},
        customdata=measure,
        hovertemplate="%{x}: %{text}<extra></extra>",
        name=name,
    )


def arr_bridge(bridge: xr.Dataset, periods: int = 4, currency: str | None = None) -> go.Figure:
    """The ARR bridge of the last ``periods`` periods as a waterfall.

    Parameters
    ----------
    bridge : xarray.Dataset
        :func:`revmodel.retention.arr_bridge` at company level (``opening``,
        ``new``, ``expansion``, ``contraction``, ``churn``, ``closing`` by period).
    periods : int
        Periods summed into the bridge (4 quarters = a year).
    currency : str, optional
        ISO 4217 code of the amounts (a cube's ``attrs["currency"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        One waterfall (:func:`waterfall`): opening (absolute), new, expansion,
        -contraction, -churn (relative) and closing (total).

    Examples
    --------
    >>> from revmodel import retention
    >>> fig = arr_bridge(retention.arr_bridge(ds, period="fiscal_quarter"), periods=4, currency="USD")
    >>> fig.layout.title.text
    'ARR bridge, FY2026-Q1 to FY2026-Q4'
    >>> list(fig.data[0].x), list(fig.data[0].text)
    (['Opening FY2026-Q1', 'New', 'Expansion', 'Contraction', 'Churn', 'Closing FY2026-Q4'], ['$29.4M', '$7.0M', '$2.9M', '-$1.9M', '-$1.4M', '$36.1M'])
    """
    period = bridge.attrs.get("period", [d for d in bridge.dims][0])
    b = bridge.isel({period: slice(-periods, None)})
    labels = [str(v) for v in b[period].values]
    opening = float(b["opening"].isel({period: 0}))
    flows = {
        "New": float(b["new"].sum()),
        "Expansion": float(b["expansion"].sum()),
        "Contraction": -float(b["contraction"].sum()),
        "Churn": -float(b["churn"].sum()),
    }
    closing = float(b["closing"].isel({period: -1}))
    x = [f"Opening {labels[0]}", *flows, f"Closing {labels[-1]}"]
    y = [opening, *flows.values(), closing]
    currency = currency or bridge.attrs.get("currency")
    fig = _figure(f"ARR bridge, {labels[0]} to {labels[-1]}")
    measure = ["absolute", "relative", "relative", "relative", "relative", "total"]
    bars = waterfall(x, y, measure, currency, "ARR")
    fig.add_trace(bars)
    tops = np.add(bars.base, bars.y)  # where every bar ends
    lo, hi = float(tops.min()), float(tops.max())
    fig.update_yaxes(range=[lo * 0.8, hi * 1.08])  # room above the highest bar for its label
    money_axis(fig, currency=currency)
    fig.update_layout(showlegend=False)
    return fig


def pipeline_waterfall(row: pd.Series, title: str, currency: str | None = None) -> go.Figure:
    """What changed in the pipeline of a period: one row of :func:`revmodel.history.waterfall`.

    Parameters
    ----------
    row : pandas.Series
        ``opening``, ``new``, ``pulled_in``, ``pushed_out``, ``increased``,
        ``decreased``, ``won``, ``lost``, ``closing`` [currency].
    title : str
        Chart title.

    Returns
    -------
    plotly.graph_objects.Figure
        One waterfall (:func:`waterfall`): opening (absolute), the bars (relative,
        outflows negative) and closing (total).
    """
    bars = {
        "New": float(row["new"]),
        "Pulled in": float(row["pulled_in"]),
        "Pushed out": -float(row["pushed_out"]),
        "Increased": float(row["increased"]),
        "Decreased": -float(row["decreased"]),
        "Won": -float(row["won"]),
        "Lost": -float(row["lost"]),
    }
    x = ["Opening", *bars, "Closing"]
    y = [float(row["opening"]), *bars.values(), float(row["closing"])]
    fig = _figure(title)
    fig.add_trace(waterfall(x, y, ["absolute", *["relative"] * len(bars), "total"], currency))
    money_axis(fig, currency=currency)
    fig.update_layout(showlegend=False)
    return fig


def changes_figures(section, currency: str | None = None) -> dict[str, go.Figure]:
    """The two waterfalls of a :class:`revmodel.history.ChangesSection` (total rows)."""
    return {
        "since_last_week": pipeline_waterfall(
            section.since_last_week.table.iloc[0],
            f"{section.quarter} pipeline: the week to {section.as_of:%Y-%m-%d}",
            currency,
        ),
        "since_quarter_start": pipeline_waterfall(
            section.since_quarter_start.table.iloc[0],
            f"{section.quarter} pipeline: since {section.period_start:%Y-%m-%d}",
            currency,
        ),
    }


def value_add_by_week(by_week: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Calls against the model by week of quarter: :func:`revmodel.valueadd.by_week`.

    Parameters
    ----------
    by_week : pandas.DataFrame
        ``level``, ``week``, ``call_error`` and ``model_error`` [share of the actual].
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        Per level, the calls' mean absolute error (solid) and the model's made the
        same week (dotted), in the level's colour; below the dotted line the calls
        beat the model.
    """
    fig = _figure(title or "Forecast value add: error of the calls and of the model, by week")
    for i, (level, g) in enumerate(by_week.groupby("level", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        for col, dash, what in (("call_error", "solid", "calls"), ("model_error", "dot", "model")):
            fig.add_trace(
                go.Scatter(
                    x=g["week"],
                    y=g[col],
                    mode="lines+markers",
                    line={"color": color, "dash": dash},
                    name=f"{level}: {what}",
                    hovertemplate=f"{level} {what}, week %{{x}}: %{{y:.1%}}<extra></extra>",
                )
            )
    fig.update_layout(
        xaxis={"title": "week of quarter", "dtick": 1},
        yaxis={"title": "mean absolute error, share of actual", "tickformat": ".0%"},
    )
    return fig


# --------------------------------------------------------------------------- quotas


def quota_balance(table: pd.DataFrame, currency: str | None = None) -> go.Figure:
    """Full-year quota against potential per rep; reps out of line stand out.

    Parameters
    ----------
    table : pandas.DataFrame
        Quotas by rep (``rep``, ``full_year_quota``, ``out_of_line`` and
        ``potential``; without ``potential``, ``capacity_year`` is the x axis).
    currency : str, optional
        ISO 4217 code of the amounts (a cube's ``attrs["currency"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        Scatter traces ``In line`` and ``Out of line`` (x potential, y quota),
        and a ``Median ratio`` line.

    Examples
    --------
    >>> table = pd.DataFrame({"rep": ["Ann", "Bo", "Cy", "Di"],
    ...                       "full_year_quota": [1.0e6, 1.1e6, 0.9e6, 2.4e6],
    ...                       "potential": [50.0, 55.0, 45.0, 60.0],
    ...                       "out_of_line": [False, False, False, True]})
    >>> fig = quota_balance(table, currency="GBP")
    >>> [(trace.name, None if trace.text is None else list(trace.text)) for trace in fig.data]
    [('In line', ['Ann', 'Bo', 'Cy']), ('Out of line', ['Di']), ('Median ratio', None)]
    >>> fig.layout.yaxis.title.text
    'Full-year quota [GBP]'
    """
    t = table.copy()
    xcol = (
        "potential"
        if "potential" in t.columns and t["potential"].notna().any()
        else "capacity_year"
    )
    t = t[t[xcol].notna() & t["full_year_quota"].notna()]
    out = (
        t["out_of_line"].astype(bool)
        if "out_of_line" in t.columns
        else pd.Series(False, index=t.index)
    )
    xtitle = (
        "Potential (territory score)"
        if xcol == "potential"
        else f"Capacity over the plan year [{currency_code(currency)}]"
    )
    # The title names what the x axis holds: potential when the territory plan gives it.
    against = "potential" if xcol == "potential" else "capacity"
    fig = _figure(f"Quota balance: full-year quota against {against}")
    for name, mask, color in (
        ("In line", ~out, COLORS["forecast"]),
        ("Out of line", out, COLORS["negative"]),
    ):
        sub = t[mask]
        fig.add_trace(go.Scatter(x=sub[xcol], y=sub["full_year_quota"], mode="markers", name=name,
                                 text=sub["name"] if "name" in sub else sub["rep"], marker={"color": color, "size": 8, "opacity": 0.85},
                                 hovertemplate="%{text}<br>quota " + formatting.currency_symbol(currency_code(currency)) + "%{y:,.0f}<br>x %{x:,.1f}<extra></extra>"))  # fmt: skip
    if len(t) and (t[xcol] > 0).any():
        ratio = float(np.median(t["full_year_quota"][t[xcol] > 0] / t[xcol][t[xcol] > 0]))
        xs = np.array([0.0, float(t[xcol].max()) * 1.05])
        fig.add_trace(go.Scatter(x=xs, y=xs * ratio, mode="lines", name="Median ratio",
                                 line={"color": COLORS["neutral"], "dash": "dash"}))  # fmt: skip
    fig.update_xaxes(title_text=xtitle)
    fig.update_yaxes(title_text=f"Full-year quota [{currency_code(currency)}]")
    money_axis(fig, currency=currency)
    return fig


# --------------------------------------------------------------------------- territories


def territory_balance(balance: pd.DataFrame) -> go.Figure:
    """Each active rep's potential before and after the territory plan, relative to the group mean.

    Parameters
    ----------
    balance : pandas.DataFrame
        ``TerritoryPlan.balance``: ``rep_id`` (and ``name``, shown when given),
        ``status``, ``deviation_before``, ``deviation_after`` [fraction of the mean].

    Returns
    -------
    plotly.graph_objects.Figure
        Two bar traces, ``Before`` and ``After`` (deviation in %, by rep).

    Examples
    --------
    >>> balance = pd.DataFrame({"rep_id": ["R1", "R2", "R3"], "status": ["active"] * 3,
    ...                         "deviation_before": [0.3, -0.2, -0.1],
    ...                         "deviation_after": [0.05, -0.03, -0.02]})
    >>> fig = territory_balance(balance)
    >>> [trace.name for trace in fig.data], list(fig.data[0].x)
    (['Before', 'After'], ['R2', 'R3', 'R1'])
    """
    b = balance[balance["status"] == "active"] if "status" in balance.columns else balance
    b = b.sort_values("deviation_before", kind="stable")
    who = b["name"] if "name" in b.columns else b["rep_id"]  # reps by name when known
    fig = _figure("Territory balance: potential vs group mean, before and after")
    fig.add_trace(
        go.Bar(x=who, y=b["deviation_before"], name="Before", marker_color=COLORS["before"])
    )
    fig.add_trace(go.Bar(x=who, y=b["deviation_after"], name="After", marker_color=COLORS["after"]))
    fig.update_layout(barmode="group", height=340)
    fig.update_yaxes(tickformat=".0%", title_text="deviation from group mean")
    return fig


# --------------------------------------------------------------------------- scenarios


def scenario_comparison(
    table: pd.DataFrame,
    metrics: Sequence[str] = ("target", "capacity", "gap", "required_new_arr"),
    currency: str | None = None,
) -> go.Figure:
    """Key figures of each scenario side by side (grouped bars, one group per figure).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per scenario: ``scenario`` and the metric columns [currency].
    metrics : sequence of str
        Columns shown (those absent are skipped).
    currency : str, optional
        ISO 4217 code of the amounts (a cube's ``attrs["currency"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per scenario, x = metric.

    Examples
    --------
    >>> table = pd.DataFrame({"scenario": ["base", "stretch"], "target": [45e6, 49e6],
    ...                       "capacity": [38e6, 38e6], "gap": [7e6, 11e6]})
    >>> fig = scenario_comparison(table)
    >>> [trace.name for trace in fig.data], list(fig.data[1].x), list(fig.data[1].y)
    (['base', 'stretch'], ['target', 'capacity', 'gap'], [49000000.0, 38000000.0, 11000000.0])
    """
    cols = [m for m in metrics if m in table.columns]
    fig = _figure("Scenarios compared")
    for i, row in enumerate(table.itertuples(index=False)):
        r = row._asdict()
        fig.add_trace(go.Bar(x=[c.replace("_", " ") for c in cols], y=[r[c] for c in cols],
                             name=str(r["scenario"]), marker_color=PALETTE[i % len(PALETTE)]))  # fmt: skip
    fig.update_layout(barmode="group", height=340)
    money_axis(fig, currency=currency)
    return fig


# --------------------------------------------------------------------------- accuracy


def accuracy(
    table: pd.DataFrame,
    levels: Sequence[str] = ("region", "segment", "manager"),
    currency: str | None = None,
) -> go.Figure:
    """Last quarter's forecast against actual, by member of each level.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`revmodel.backtest.last_cycle_accuracy` rows: ``level``, ``name``,
        ``forecast``, ``p10``, ``p90``, ``actual``.
    levels : sequence of str
        Levels drawn, one trace each.
    currency : str, optional
        ISO 4217 code of the amounts (a cube's ``attrs["currency"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        Per level a scatter trace (x actual, y forecast, error bars to the
        band) and a ``Perfect forecast`` diagonal.

    Examples
    --------
    >>> table = pd.DataFrame({"level": ["region", "region", "segment"],
    ...                       "name": ["East", "West", "SMB"],
    ...                       "forecast": [4.0e6, 5.0e6, 3.0e6], "p10": [3.0e6, 4.0e6, 2.0e6],
    ...                       "p90": [5.0e6, 6.0e6, 4.0e6], "actual": [4.4e6, 4.5e6, 3.1e6]})
    >>> fig = accuracy(table, levels=("region", "segment"))
    >>> [trace.name for trace in fig.data], list(fig.data[0].text)
    (['region', 'segment', 'Perfect forecast'], ['East', 'West'])
    """
    t = table[table["level"].isin(levels)]
    sym = formatting.currency_symbol(currency_code(currency))
    fig = _figure("Last quarter: forecast against actual")
    for i, level in enumerate(levels):
        sub = t[t["level"] == level]
        if not len(sub):
            continue
        fig.add_trace(go.Scatter(
            x=sub["actual"], y=sub["forecast"], mode="markers", name=level, text=sub["name"],
            marker={"size": 9, "color": PALETTE[i % len(PALETTE)]},
            error_y={"type": "data", "symmetric": False, "array": (sub["p90"] - sub["forecast"]).clip(lower=0),
                     "arrayminus": (sub["forecast"] - sub["p10"]).clip(lower=0), "thickness": 1, "width": 0},
            hovertemplate=f"%{{text}}<br>actual {sym}%{{x:,.0f}}<br>forecast {sym}%{{y:,.0f}}<extra></extra>",
        ))  # fmt: skip
    hi = float(max(t["actual"].max(), t["forecast"].max())) * 1.05 if len(t) else 1.0
    fig.add_trace(go.Scatter(x=[0, hi], y=[0, hi], mode="lines", name="Perfect forecast",
                             line={"color": COLORS["neutral"], "dash": "dash"}))  # fmt: skip
    fig.update_xaxes(title_text=f"Actual [{currency_code(currency)}]")
    fig.update_yaxes(title_text=f"Forecast [{currency_code(currency)}]")
    money_axis(fig, "xaxis", currency)
    money_axis(fig, "yaxis", currency)
    return fig


def notebook_mode() -> None:
    """Show figures in JupyterLab as Plotly JSON (small notebooks; plotly.js comes with JupyterLab).

    Examples
    --------
    >>> import plotly.io as pio
    >>> before = pio.renderers.default
    >>> notebook_mode()
    >>> pio.renderers.default
    'plotly_mimetype'
    >>> pio.renderers.default = before
    """
    pio.renderers.default = "plotly_mimetype"
