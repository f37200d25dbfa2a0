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
from dataclasses import dataclass, field

import ipywidgets as w
import numpy as np
import pandas as pd

from revmodel import plots, quota, territory
from revmodel.apps import layout
from revmodel.apps.context import AppContext, app_context
from revmodel.errors import DataError, RevmodelError

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
    if ctx.not_provided("quotas"):
        raise DataError(ctx.not_provided("quotas"))
    a = ctx.assumptions
    if {"quota", "capacity", "quota_balance"} <= set(ctx.results):
        # The published plan's quotas, capacity and balance, as the plan pack shows them.
        quotas = ctx.results["quota"]
        capacity = ctx.results["capacity"]["capacity"]
        capacity = capacity.reindex(rep=quotas["rep"].values, month=quotas["month"].values)
        capacity = capacity.fillna(0.0)
        bal = ctx.results["quota_balance"].reindex(rep=quotas["rep"].values)
        shown = ctx.published.sections if ctx.published is not None else ()
        basis = "territory potential" if "territories" in shown else "history"
        ctx.extra["quota_balance_basis"] = basis
    else:
        quotas = quota.top_down(ctx.plan_context.inputs, a, months=ctx.plan["month"].values)
        capacity = ctx.plan["rep_capacity"].reindex(rep=quotas["rep"].values, fill_value=0.0)
        # Balance against the territory's potential: against history it would be a tautology
        # for a history-based allocation.
        tplan = territory_plan(ctx)
        potential = territory.rep_potential(tplan) if tplan is not None else None
        bal = quota.balance(
            quotas, potential=potential, expected=capacity, tolerance=a.attainment_tolerance
        )
        basis = "territory potential" if potential is not None else "history"
        ctx.extra["quota_balance_basis"] = basis
    ea = quota.expected_attainment(
        quotas["quota"], capacity, tolerance=a.attainment_tolerance, cv=ATTAINMENT_CV
    )
    # The headline share is the one definition (capacity reaches the tolerance of quota).
    attains = quota.expected_attainment(quotas["quota"], capacity, tolerance=a.attainment_tolerance)
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
            "attains": attains["p_attain"].values,
            "ratio_to_median": bal["relative"].values,
            "out_of_line": bal["out_of_line"].fillna(False).values.astype(bool),
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


def cards(
    frame: pd.DataFrame, tolerance: float, currency: str | None = None
) -> list[dict[str, str]]:
    """Summary cards of the reps shown, amounts in ``currency`` (the cube's)."""
    n = len(frame)
    share = float(frame["attains"].mean()) if n else float("nan")
    cv = (
        float(frame["full_year_quota"].std(ddof=1) / frame["full_year_quota"].mean())
        if n > 1
        else float("nan")
    )
    return [
        {"name": "reps", "label": "Reps with quota", "value": f"{n}"},
        {"name": "quota", "label": "Sum of quotas", "value": layout.fmt_money(frame["full_year_quota"].sum(), currency)},
        {"name": "capacity", "label": "Capacity", "value": layout.fmt_money(frame["capacity_year"].sum(), currency)},
        {"name": "attain", "label": "Expected to attain", "value": layout.fmt_pct(share),
         "sub": f"capacity reaches {tolerance:.0%} of quota"},
        {"name": "out_of_line", "label": "Out of line", "value": f"{int(frame['out_of_line'].sum())}",
         "sub": "quota far from the median ratio to potential"},
        {"name": "spread", "label": "Quota spread", "value": layout.fmt_pct(cv), "sub": "coefficient of variation"},
    ]  # fmt: skip


@dataclass
class QuotasPage:
    """The quotas page's widgets (``app.app``)."""

    region: w.Dropdown
    manager: w.Dropdown
    segment: w.Dropdown
    kpis: layout.KpiCards
    table: w.HTML
    chart: layout.FigurePane
    territory_chart: layout.FigurePane
    territory_table: w.HTML
    tabs: w.Tab
    context: AppContext
    shown: pd.DataFrame
    busy: bool = False
    #: Whether the territories tab shows the current filters (it is drawn when shown).
    territories_drawn: bool = False
    excel: layout.ExcelDownload | None = None
    table_shown: pd.DataFrame | None = None
    table_kinds: dict[str, str] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The reps shown."""
        return self.shown

    def value(self, name: str) -> str | None:
        v = getattr(self, name).value
        return None if v in (None, ALL_MEMBERS) else str(v)

    def refresh(self, _change: object = None) -> None:
        """Redraw for the current filters."""
        _refresh(self)


QUOTA_COLUMNS = {
    "name": "Rep", "manager": "Manager", "region": "Region", "segment": "Segment",
    "full_year_quota": "Quota (year)", "capacity_year": "Capacity (year)",
    "expected_attainment": "Expected attainment", "p_attain": "Chance to attain",
    "ratio_to_median": "Quota/potential vs median", "out_of_line": "Balance",
}  # fmt: skip


def _widgets(ctx: AppContext) -> QuotasPage:
    frame = quota_frame(ctx)

    def dd(name: str, column: str) -> w.Dropdown:
        d = layout.dropdown(name, [ALL_MEMBERS, *sorted(set(frame[column]))], ALL_MEMBERS)
        d.add_class(f"revmodel-quota-{column}")
        return d

    page = QuotasPage(
        region=dd("Region", "region"),
        manager=dd("Manager", "manager"),
        segment=dd("Segment", "segment"),
        kpis=layout.KpiCards("revmodel-quota-kpis"),
        table=w.HTML(),
        chart=layout.FigurePane("revmodel-quota-chart"),
        territory_chart=layout.FigurePane("revmodel-territory-chart"),
        territory_table=w.HTML(),
        tabs=w.Tab(),
        context=ctx,
        shown=frame,
    )
    page.table.add_class("revmodel-quota-table")
    page.territory_table.add_class("revmodel-territory")
    return page


def _layout(ctx: AppContext, page: QuotasPage) -> w.VBox:
    page.tabs.children = [
        w.VBox([page.kpis, page.table, page.excel, page.chart]),
        w.VBox([page.territory_table, page.territory_chart]),
    ]
    page.tabs.set_title(0, "Quotas")
    page.tabs.set_title(1, "Territories")
    page.tabs.add_class("revmodel-quota-tabs")
    a = ctx.assumptions
    tol = a.attainment_tolerance
    app = layout.page(
        "Quotas and territories",
        f"{a.plan_year} quotas allocated top-down ({a.allocation_basis} basis, over-assignment "
        f"{a.over_assignment:.0%}); attainment expected from ramped capacity; {tol:.0%} of quota "
        "counts as met.",
        [w.HBox([page.region, page.manager, page.segment]), page.tabs],
        footer=f"Data: {ctx.source}. Balance: a rep is out of line when quota per ramped year over "
        f"{ctx.extra.get('quota_balance_basis', 'territory potential')} is outside "
        f"{quota.BALANCE_BAND[0]:.0%}-{quota.BALANCE_BAND[1]:.0%} of the median.",
    )
    app.add_class("revmodel-quotas")
    return app


def _draw_quotas(page: QuotasPage, shown: pd.DataFrame) -> None:
    ctx = page.context
    page.kpis.show(
        cards(shown, ctx.assumptions.attainment_tolerance, ctx.cube.attrs.get("currency"))
    )
    page.chart.show(plots.quota_balance(shown))
    cols = {}
    for key, title in QUOTA_COLUMNS.items():
        cols[key] = title
        if key == "full_year_quota":
            cols["cycle_quota"] = f"Quota {ctx.cycle}"
    table = shown.assign(name=[ctx.label("rep", r) for r in shown["rep"]]).drop(columns="rep")
    table = table[[c for c in cols if c in table.columns]].rename(columns=cols)
    money = ("Quota (year)", f"Quota {ctx.cycle}", "Capacity (year)")
    pct = ("Expected attainment", "Chance to attain", "Quota/potential vs median")
    kinds = {**dict.fromkeys(money, "money"), **dict.fromkeys(pct, "pct")}
    page.table_shown = table.assign(Balance=np.where(table["Balance"], "out of line", "in line"))
    page.table_kinds = kinds
    if page.excel is not None:
        page.excel.clear()
    page.table.value = layout.table_html(
        table,
        kinds=kinds,
        flag_column="Balance",
        css="revmodel-quota-grid",
        max_rows=1000,
        scroll=False,
    )


def _draw_territories(page: QuotasPage, region: str | None, segment: str | None) -> None:
    ctx = page.context
    tplan = territory_plan(ctx)
    if tplan is None:
        why = ctx.extra.get(
            "territory_error",
            "Territory balance needs the accounts and reps exports (the apps read a cube "
            "file without them).",
        )
        page.territory_table.value = f"<div class='revmodel-subtitle'>{html.escape(why)}</div>"
        return
    b = tplan.balance
    b = b if region is None else b[b["region"] == region]
    b = b if segment is None else b[b["segment"] == segment]
    page.territory_chart.show(plots.territory_balance(b))
    active = b[b["status"] == "active"]
    t = active[["rep_id", "region", "segment", "accounts_before", "accounts_after",
                "deviation_before", "deviation_after", "within_tolerance"]]  # fmt: skip
    t = t.assign(rep_id=[ctx.label("rep", str(r)) for r in t["rep_id"]])
    t = t.rename(columns={"rep_id": "rep", "accounts_before": "accounts now",
                          "accounts_after": "accounts proposed", "deviation_before": "potential vs mean now",
                          "deviation_after": "potential vs mean proposed", "within_tolerance": "balanced"})  # fmt: skip
    t = t.assign(balanced=t["balanced"].map({True: "yes", False: "no"}))
    # Balance (in line / out of line) has one definition, quota.balance: the quotas tab's verdict.
    verdict = quota_frame(ctx).set_index("rep")["out_of_line"]
    line = active["rep_id"].astype(str).map(verdict)
    t = t.assign(balance=line.map({True: "out of line", False: "in line"}).fillna("no quota"))
    t = t.rename(columns={"balanced": "potential within tolerance"})
    s = tplan.summary
    page.territory_table.value = (
        f"<div class='revmodel-subtitle'>Proposal for {html.escape(ctx.assumptions.plan_year)}: "
        f"{s['accounts_moved']} of {s['accounts']} accounts move; the richest territory goes from "
        f"{s['spread_before_max_over_mean']:.0%} to {s['spread_after_max_over_mean']:.0%} of its "
        f"group's mean potential, the poorest from {s['spread_before_min_over_mean']:.0%} to "
        f"{s['spread_after_min_over_mean']:.0%}.</div>"
        + layout.table_html(
            t,
            kinds={
                "accounts now": "int",
                "accounts proposed": "int",
                "potential vs mean now": "pct",
                "potential vs mean proposed": "pct",
            },
            css="revmodel-territory-grid",
        )
    )


def _refresh(page: QuotasPage) -> None:
    if page.busy:
        return
    page.busy = True
    try:
        frame = quota_frame(page.context)
        reg = page.value("region")
        in_region = frame if reg is None else frame[frame["region"] == reg]
        mgrs = sorted(set(in_region["manager"]))
        current = page.manager.value
        page.manager.options = [ALL_MEMBERS, *mgrs]
        page.manager.value = current if current in mgrs else ALL_MEMBERS
        page.shown = _filter(frame, reg, page.value("manager"), page.value("segment"))
        _draw_quotas(page, page.shown)
        # The territories tab is drawn when it shows: a page opens without its table and
        # chart (a third of what the page would send), and a filter redraws one tab only.
        page.territories_drawn = False
        if page.tabs.selected_index == 1:
            _show_territories(page)
    finally:
        page.busy = False


def _show_territories(page: QuotasPage) -> None:
    if not page.territories_drawn:
        _draw_territories(page, page.value("region"), page.value("segment"))
        page.territories_drawn = True


def _redraw(page: QuotasPage, change: dict) -> None:
    if change["new"] == 1:
        _show_territories(page)


def build(ctx: AppContext | None = None) -> w.Widget:
    """The quotas and territories app.

    Parameters
    ----------
    ctx : AppContext, optional
        Data and plan (:func:`revmodel.apps.context.app_context`); default the server's.

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` is its :class:`QuotasPage` (``region``, ``manager``, ``segment``,
        ``kpis``, ``table``, ``chart``, ``territory_chart``, ``territory_table`` and ``frame()``).
    """
    ctx = ctx if ctx is not None and ctx.store is not None else app_context(context=ctx)
    if ctx.not_provided("quotas"):
        return layout.not_provided("Quotas and territories", ctx.not_provided("quotas"), ctx.source)
    page = _widgets(ctx)
    page.excel = layout.ExcelDownload(
        lambda: f"quotas-{ctx.assumptions.plan_year}",
        lambda: {"Quotas": (page.table_shown, page.table_kinds)},
    )
    for dd in (page.region, page.manager, page.segment):
        dd.observe(page.refresh, names="value")
    page.refresh()
    app = _layout(ctx, page)
    page.tabs.observe(lambda change: _redraw(page, change), names="selected_index")
    app.app = page
    return app
