"""Quotas and territories: quota by rep with balance and attainment expectations; territory balance.

Quotas are the top-down allocation of the base plan
(:func:`revmodel.quota.top_down`), checked with :func:`revmodel.quota.balance`
(quota per ramped year against the rep's history, reps out of line) and
:func:`revmodel.quota.expected_attainment` (capacity against quota, with a
spread of outcomes). Territory balance is the proposed assignment of
:func:`revmodel.territory.assign_territories` (local search, seconds at most)
against today's book, when the exports include accounts and reps.
"""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
import pandas as pd
import xarray as xr

from revmodel import plots, quota, territory
from revmodel.apps import layout
from revmodel.apps.context import AppContext, load_context
from revmodel.errors import RevmodelError

__all__ = ["ATTAINMENT_CV", "build", "quota_frame", "territory_plan"]

#: Spread of a rep's bookings around capacity behind the chance of attaining [ratio].
ATTAINMENT_CV = 0.3
ALL_MEMBERS = "All"


def quota_frame(ctx: AppContext) -> pd.DataFrame:
    """One row per rep with a quota in the plan year [USD, ratios].

    Columns ``rep``, ``manager``, ``region``, ``segment``, ``full_year_quota``
    (quota over the plan months), ``cycle_quota`` (the cycle's quarter),
    ``capacity_year``, ``expected_attainment`` (capacity / quota),
    ``p_attain`` (chance of reaching the attainment tolerance), ``ratio_to_median``
    (quota per ramped year over territory potential, relative to the median; over
    history when there is no territory plan) and ``out_of_line``.
    """
    if "quota_frame" in ctx.extra:
        return ctx.extra["quota_frame"]
    a = ctx.assumptions
    inputs = ctx.plan_context.inputs
    quotas = quota.top_down(inputs, a, months=ctx.plan["month"].values)
    capacity = ctx.plan["rep_capacity"].reindex(rep=quotas["rep"].values, fill_value=0.0)
    # Balance against the territory's potential: against history it would be a tautology
    # for a history-based allocation.
    tplan = territory_plan(ctx)
    potential = territory.rep_potential(tplan) if tplan is not None else None
    bal = quota.balance(
        quotas, potential=potential, expected=capacity, tolerance=a.attainment_tolerance
    )
    ctx.extra["quota_balance_basis"] = "territory potential" if potential is not None else "history"
    ea = quota.expected_attainment(
        quotas["quota"], capacity, tolerance=a.attainment_tolerance, cv=ATTAINMENT_CV
    )
    months = ctx.period_months(ctx.cycle).values.astype("datetime64[ns]")
    qm = quotas["quota"]
    cycle = qm.isel(month=np.isin(qm["month"].values, months)).sum("month")
    frame = pd.DataFrame(
        {
            "rep": np.asarray(quotas["rep"].values).astype(str),
            "manager": np.asarray(quotas["manager"].values).astype(str),
            "region": np.asarray(quotas["rep_region"].values).astype(str),
            "segment": np.asarray(quotas["rep_segment"].values).astype(str),
            "full_year_quota": quotas["rep_quota"].values,
            "cycle_quota": cycle.values,
            "capacity_year": capacity.sum("month").values,
            "expected_attainment": ea["expected_attainment"].values,
            "p_attain": ea["p_attain"].values,
            "ratio_to_median": bal["relative"].values,
            "out_of_line": bal["out_of_line"].values.astype(bool),
        }
    )
    frame = frame[frame["full_year_quota"] > 0].sort_values(["region", "manager", "rep"])
    frame = frame.reset_index(drop=True)
    ctx.extra["quota_frame"] = frame
    ctx.extra["quota_balance"] = bal
    return frame


def territory_plan(ctx: AppContext) -> territory.TerritoryPlan | None:
    """The balanced territory proposal of the exports (None without accounts and reps)."""
    if "territory_plan" in ctx.extra:
        return ctx.extra["territory_plan"]
    plan = None
    tables = ctx.tables or {}
    if tables.get("accounts") is not None and tables.get("reps") is not None:
        try:
            accounts = territory.segment_accounts(tables["accounts"])
            potential = territory.account_potential(accounts, tables.get("opportunities"))
            start = ctx.period_months(ctx.assumptions.plan_year)[0]
            plan = territory.assign_territories(
                accounts, tables["reps"], potential, method="heuristic", as_of=start
            )
        except RevmodelError as exc:
            ctx.extra["territory_error"] = str(exc)
    ctx.extra["territory_plan"] = plan
    return plan


def _filter(
    frame: pd.DataFrame, region: str | None, manager: str | None, segment: str | None
) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for col, value in (("region", region), ("manager", manager), ("segment", segment)):
        if value is not None and col in frame.columns:
            mask &= (frame[col] == value).to_numpy()
    return frame[mask]


def cards(frame: pd.DataFrame, tolerance: float) -> list[dict[str, str]]:
    """Summary cards of the reps shown."""
    n = len(frame)
    share = float(frame["p_attain"].mean()) if n else float("nan")
    cv = (
        float(frame["full_year_quota"].std(ddof=1) / frame["full_year_quota"].mean())
        if n > 1
        else float("nan")
    )
    return [
        {"name": "reps", "label": "Reps with quota", "value": f"{n}"},
        {"name": "quota", "label": "Sum of quotas", "value": layout.fmt_money(frame["full_year_quota"].sum())},
        {"name": "capacity", "label": "Capacity", "value": layout.fmt_money(frame["capacity_year"].sum())},
        {"name": "attain", "label": "Expected to attain", "value": layout.fmt_pct(share),
         "sub": f"chance of reaching {tolerance:.0%} of quota"},
        {"name": "out_of_line", "label": "Out of line", "value": f"{int(frame['out_of_line'].sum())}",
         "sub": "quota far from the median ratio to potential"},
        {"name": "spread", "label": "Quota spread", "value": layout.fmt_pct(cv), "sub": "coefficient of variation"},
    ]  # fmt: skip


def build(
    data_dir: str | None = None,
    cube: xr.Dataset | None = None,
    store_url: str | None = None,
    user: str | None = None,
    context: AppContext | None = None,
) -> w.Widget:
    """The quotas and territories app.

    Parameters
    ----------
    data_dir, cube
        Data of the apps (see :func:`revmodel.apps.context.load_context`).
    store_url, user
        Unused; accepted so every builder takes the same arguments.
    context : AppContext, optional
        A context already built (tests).

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` holds ``region``, ``manager``, ``segment``, ``kpis``,
        ``table``, ``chart``, ``territory_chart``, ``territory_table`` and ``frame()``.
    """
    ctx = context or load_context(data_dir=data_dir, cube=cube)
    frame = quota_frame(ctx)
    tplan = territory_plan(ctx)
    tol = ctx.assumptions.attainment_tolerance
    region = layout.dropdown("Region", [ALL_MEMBERS, *sorted(set(frame["region"]))], ALL_MEMBERS)
    manager = layout.dropdown("Manager", [ALL_MEMBERS, *sorted(set(frame["manager"]))], ALL_MEMBERS)
    segment = layout.dropdown("Segment", [ALL_MEMBERS, *sorted(set(frame["segment"]))], ALL_MEMBERS)
    region.add_class("revmodel-quota-region")
    manager.add_class("revmodel-quota-manager")
    segment.add_class("revmodel-quota-segment")
    kpis = layout.KpiCards("revmodel-quota-kpis")
    table = w.HTML()
    table.add_class("revmodel-quota-table")
    chart = layout.FigurePane("revmodel-quota-chart")
    territory_chart = layout.FigurePane("revmodel-territory-chart")
    territory_table = w.HTML()
    territory_table.add_class("revmodel-territory")
    state = {"frame": frame, "busy": False}

    def value(dd: w.Dropdown) -> str | None:
        return None if dd.value in (None, ALL_MEMBERS) else str(dd.value)

    def refresh(_change: object = None) -> None:
        if state["busy"]:
            return
        state["busy"] = True
        try:
            reg = value(region)
            in_region = frame if reg is None else frame[frame["region"] == reg]
            mgrs = sorted(set(in_region["manager"]))
            current = manager.value
            manager.options = [ALL_MEMBERS, *mgrs]
            manager.value = current if current in mgrs else ALL_MEMBERS
            shown = _filter(frame, reg, value(manager), value(segment))
            state["frame"] = shown
            kpis.show(cards(shown, tol))
            chart.show(plots.quota_balance(shown))
            cols = {
                "rep": "Rep", "manager": "Manager", "region": "Region", "segment": "Segment",
                "full_year_quota": "Quota (year)", "cycle_quota": f"Quota {ctx.cycle}",
                "capacity_year": "Capacity (year)", "expected_attainment": "Expected attainment",
                "p_attain": "Chance to attain", "ratio_to_median": "Quota/potential vs median",
                "out_of_line": "Balance",
            }  # fmt: skip
            table.value = layout.table_html(
                shown.rename(columns=cols),
                kinds={
                    "Quota (year)": "money",
                    f"Quota {ctx.cycle}": "money",
                    "Capacity (year)": "money",
                    "Expected attainment": "pct",
                    "Chance to attain": "pct",
                    "Quota/potential vs median": "pct",
                },  # fmt: skip
                flag_column="Balance",
                css="revmodel-quota-grid",
            )
            if tplan is not None:
                b = tplan.balance
                b = b if reg is None else b[b["region"] == reg]
                seg = value(segment)
                b = b if seg is None else b[b["segment"] == seg]
                territory_chart.show(plots.territory_balance(b))
                active = b[b["status"] == "active"]
                t = active[["rep_id", "region", "segment", "accounts_before", "accounts_after",
                            "deviation_before", "deviation_after", "within_tolerance"]]  # fmt: skip
                t = t.rename(columns={"rep_id": "rep", "accounts_before": "accounts now",
                                      "accounts_after": "accounts proposed", "deviation_before": "potential vs mean now",
                                      "deviation_after": "potential vs mean proposed", "within_tolerance": "balanced"})  # fmt: skip
                t = t.assign(balanced=t["balanced"].map({True: "yes", False: "no"}))
                s = tplan.summary
                territory_table.value = (
                    f"<div class='revmodel-subtitle'>Proposal for {html.escape(ctx.assumptions.plan_year)}: "
                    f"{s['accounts_moved']} of {s['accounts']} accounts move; the richest territory goes from "
                    f"{s['spread_before_max_over_mean']:.0%} to {s['spread_after_max_over_mean']:.0%} of its group's "
                    f"mean potential, the poorest from {s['spread_before_min_over_mean']:.0%} to "
                    f"{s['spread_after_min_over_mean']:.0%}.</div>"
                    + layout.table_html(
                        t,
                        kinds={
                            "accounts now": "int",
                            "accounts proposed": "int",
                            "potential vs mean now": "pct",
                            "potential vs mean proposed": "pct",
                        },  # fmt: skip
                        css="revmodel-territory-grid",
                    )
                )
            else:
                why = ctx.extra.get(
                    "territory_error",
                    "Territory balance needs the accounts and reps exports (the apps read a cube "
                    "file without them).",
                )
                territory_table.value = f"<div class='revmodel-subtitle'>{html.escape(why)}</div>"
        finally:
            state["busy"] = False

    for dd in (region, manager, segment):
        dd.observe(refresh, names="value")
    refresh()
    tabs = w.Tab(
        children=[
            w.VBox([kpis, table, chart]),
            w.VBox([territory_table, territory_chart]),
        ]
    )
    tabs.set_title(0, "Quotas")
    tabs.set_title(1, "Territories")
    tabs.add_class("revmodel-quota-tabs")

    def redraw(change: dict) -> None:
        # A chart drawn in a hidden tab has no width: draw it again once the tab shows.
        pane = chart if change["new"] == 0 else territory_chart
        if pane.figure is not None:
            pane.show(pane.figure)

    tabs.observe(redraw, names="selected_index")
    a = ctx.assumptions
    app = layout.page(
        "Quotas and territories",
        f"{a.plan_year} quotas allocated top-down ({a.allocation_basis} basis, over-assignment "
        f"{a.over_assignment:.0%}); attainment expected from ramped capacity; {tol:.0%} of quota "
        "counts as met.",
        [w.HBox([region, manager, segment]), tabs],
        footer=f"Data: {ctx.source}. Balance: a rep is out of line when quota per ramped year over "
        f"{ctx.extra.get('quota_balance_basis', 'territory potential')} is outside "
        f"{quota.BALANCE_BAND[0]:.0%}-{quota.BALANCE_BAND[1]:.0%} of the median.",
    )
    app.add_class("revmodel-quotas")
    app.app = layout.Controls(
        region=region,
        manager=manager,
        segment=segment,
        kpis=kpis,
        table=table,
        chart=chart,
        territory_chart=territory_chart,
        territory_table=territory_table,
        tabs=tabs,
        frame=lambda: state["frame"],
        refresh=refresh,
        context=ctx,
    )
    return app
