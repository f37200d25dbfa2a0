"""What-if: move the scenario assumptions and see the plan and its KPIs recomputed at once.

Sliders and fields set target growth (or an absolute target), the churn rate,
win-rate change, planned hires, ramp months by segment and over-assignment.
Every change runs :func:`revmodel.scenario.plan` on the kernel's prepared
context (tens of milliseconds) and redraws the KPI cards (with the change
against the base plan) and the chart. A scenario can be saved by name (a YAML
file of assumptions under ``data/scenarios/``) and compared with the base and
the other saved scenarios (:func:`revmodel.scenario.compare`).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import xarray as xr
import yaml

from revmodel import config, plots, scenario
from revmodel.apps import layout
from revmodel.apps.context import AppContext, app_context
from revmodel.assumptions import Assumptions, Hire, load_assumptions
from revmodel.errors import ParameterError, RevmodelError
from revmodel.overrides import CallRejected, parse_amount

__all__ = [
    "KPI_CARDS",
    "assumptions_from_controls",
    "build",
    "figure",
    "parse_target",
    "save_scenario",
    "scenario_dir",
    "validate_name",
]

#: Cards shown, in order: plan KPI -> (label, kind).
KPI_CARDS: dict[str, tuple[str, str]] = {
    "target": ("Bookings target", "money"),
    "capacity": ("Capacity", "money"),
    "gap": ("Gap (target - capacity)", "money"),
    "capacity_to_target": ("Capacity to target", "pct"),
    "hires_needed": ("Hires to close gap", "int"),
    "quota": ("Sum of quotas", "money"),
    "reps_expected_to_attain": ("Reps expected to attain", "pct"),
    "closing_arr": ("Closing ARR", "money"),
    "expected_churn_arr": ("Expected churn", "money"),
    "required_new_arr": ("New ARR needed", "money"),
}
#: Saved scenario names: letters, digits, dash and underscore.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def scenario_dir() -> Path:
    """Where saved scenarios live (``data/scenarios`` under ``REVMODEL_HOME``)."""
    return config.SCENARIOS_DIR


def parse_target(raw: str) -> float | None:
    """The optional company target typed in the app [USD/year]; None when empty.

    Raises
    ------
    ParameterError
        With the message the app shows.
    """
    if raw is None or not str(raw).strip():
        return None
    try:
        value = parse_amount(str(raw), max_amount=1e12)
    except CallRejected:
        raise ParameterError(
            f"Target {raw!r} is not an amount: enter the company bookings target in USD, e.g. "
            "200000000, or leave it empty to grow last year's bookings."
        ) from None
    if value <= 0:
        raise ParameterError(
            f"Target {raw!r} must be more than 0 USD: leave it empty to grow last year's bookings."
        )
    return value


def validate_name(raw: str, base: str = "base") -> str:
    """A scenario name typed in the app.

    Raises
    ------
    ParameterError
        With the message the app shows.
    """
    name = str(raw or "").strip()
    if not name:
        raise ParameterError("Scenario name is empty: type a name such as stretch-hiring.")
    if not NAME_PATTERN.fullmatch(name):
        raise ParameterError(
            f"Scenario name {name!r} may hold only letters, digits, - and _ (at most 40 "
            "characters): e.g. stretch-hiring."
        )
    if name == base:
        raise ParameterError(f"{base!r} is the plan's own scenario: pick another name.")
    return name


def assumptions_from_controls(base: Assumptions, values: dict) -> Assumptions:
    """The assumption set of the controls' values.

    Parameters
    ----------
    base : Assumptions
        The plan's base set (what the controls do not set).
    values : dict
        ``target_growth``, ``target_amount`` (None: from growth), ``churn_rate``
        (None: from history), ``win_rate_change``, ``over_assignment`` [ratios];
        ``ramp_months`` {segment: months}; ``hires`` [reps], ``hire_segment``,
        ``hire_region``, ``hire_start`` ("YYYY-MM").
    """
    hires = tuple(base.hires)
    if int(values.get("hires", 0)) > 0:
        hires = (
            *hires,
            Hire(
                str(values["hire_segment"]),
                str(values["hire_region"]),
                str(values["hire_start"]),
                int(values["hires"]),
            ),
        )
    return base.with_changes(
        name=str(values.get("name", "what-if")),
        target_growth=float(values["target_growth"]),
        target_amount=values.get("target_amount"),
        churn_rate=values.get("churn_rate"),
        win_rate_change=float(values["win_rate_change"]),
        over_assignment=float(values["over_assignment"]),
        ramp_months={**base.ramp_months, **{k: int(v) for k, v in values["ramp_months"].items()}},
        hires=hires,
    )


def figure(plan: xr.Dataset, base: xr.Dataset, currency: str | None = None) -> go.Figure:
    """Target, capacity (scenario and base) and quota by region [USD/year].

    Traces: ``Target``, ``Capacity``, ``Capacity (base)``, ``Quota``.
    """
    regions = [str(r) for r in plan["region"].values]
    fig = go.Figure()
    fig.update_layout(template="revmodel", title="Plan year by region: target against capacity")
    fig.add_trace(
        go.Bar(
            x=regions, y=plan["target"].values, name="Target", marker_color=plots.COLORS["target"]
        )
    )
    fig.add_trace(
        go.Bar(
            x=regions,
            y=plan["capacity"].values,
            name="Capacity",
            marker_color=plots.COLORS["capacity"],
        )
    )
    fig.add_trace(go.Bar(x=regions, y=base["capacity"].reindex(region=plan["region"].values).values,
                         name="Capacity (base)", marker_color=plots.COLORS["before"]))  # fmt: skip
    fig.add_trace(go.Scatter(x=regions, y=plan["quota"].values, name="Quota", mode="markers",
                             marker={"symbol": "line-ew-open", "size": 40, "line": {"width": 3},
                                     "color": plots.COLORS["actual"]}))  # fmt: skip
    fig.update_layout(barmode="group", height=360)
    code = plots.currency_code(currency)
    fig.update_yaxes(title_text=f"{code} per year")
    plots.money_axis(fig, currency=code)
    return fig


def cards(plan: xr.Dataset, base: xr.Dataset, currency: str | None = None) -> list[dict[str, str]]:
    """KPI cards of a plan with the change against the base plan, amounts in ``currency``."""
    out = []
    for name, (label, kind) in KPI_CARDS.items():
        v = float(plan[f"total_{name}"])
        b = float(base[f"total_{name}"])
        if kind == "money":
            text, d = layout.fmt_money(v, currency), layout.fmt_money(v - b, currency)
        elif kind == "pct":
            text, d = layout.fmt_pct(v), f"{(v - b) * 100:+.0f} pts"
        else:
            text, d = layout.fmt_number(v), f"{v - b:+,.0f}"
        changed = math.isfinite(v - b) and abs(v - b) > 1e-9 * max(1.0, abs(b))
        if kind == "money" and changed and not d.startswith("-"):
            d = "+" + d
        out.append(
            {
                "name": name,
                "label": label,
                "value": text,
                "delta": f"{d} vs base" if changed else "as base",
                "tone": ("delta-up" if v > b else "delta-down") if changed else "",
            }
        )
    return out


def save_scenario(a: Assumptions, folder: Path | None = None) -> Path:
    """Write an assumption set as ``<name>.yaml`` (readable by :func:`load_assumptions`)."""
    folder = Path(folder) if folder is not None else scenario_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{a.name}.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(a.to_dict(), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The saved scenario files with their size and time: what :func:`_saved` would read."""
    if not folder.exists():
        return ()
    return tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.yaml"))
    )


def _saved(folder: Path, plan_year: str) -> dict[str, Assumptions]:
    out: dict[str, Assumptions] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.exists() else []:
        try:
            a = load_assumptions(path)
        except RevmodelError:
            continue
        if a.plan_year == plan_year and a.name != "base":
            out[a.name] = a
    return out


def _slider(
    description: str, value: float, lo: float, hi: float, step: float, fmt: str, css: str
) -> w.FloatSlider:
    s = w.FloatSlider(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        readout_format=fmt,
        continuous_update=False,
        style={"description_width": "170px"},
        layout=w.Layout(width="440px"),
    )
    s.add_class(css)
    return s


@dataclass
class WhatIfPage:
    """The what-if page's widgets (``app.app``) and its state."""

    growth: w.FloatSlider
    target: w.Text
    churn: w.FloatSlider
    churn_history: w.Checkbox
    win_rate: w.FloatSlider
    over_assignment: w.FloatSlider
    ramp: dict[str, w.IntSlider]
    hires: w.IntSlider
    hire_segment: w.Dropdown
    hire_region: w.Dropdown
    hire_start: w.Dropdown
    kpis: layout.KpiCards
    chart: layout.FigurePane
    message: layout.Message
    timing: w.HTML
    name: w.Text
    save: w.Button
    reset: w.Button
    comparison: w.HTML
    comparison_chart: layout.FigurePane
    context: AppContext
    folder: Path
    saved: dict[str, Assumptions] = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    excel: layout.ExcelDownload | None = None

    def plan(self) -> xr.Dataset:
        """The plan of the current controls."""
        return self.state["plan"]

    def assumptions(self) -> Assumptions:
        """The assumption set of the current controls."""
        return self.state["assumptions"]

    #: The page reads saved scenarios, not calls: refreshed whenever it is opened.
    reads_calls = False

    def refresh(self, _change: object = None) -> None:
        """Read the saved scenarios again (another page may have saved one); same files: nothing."""
        listing = _listing(self.folder)
        if listing == self.state.get("listing"):
            return
        self.state["listing"] = listing
        self.saved.clear()
        self.saved.update(_saved(self.folder, self.context.assumptions.plan_year))
        _show_comparison(self)

    def controls(self) -> list[w.Widget]:
        return [
            self.growth, self.target, self.churn, self.churn_history, self.win_rate,
            self.over_assignment, self.hires, self.hire_segment, self.hire_region,
            self.hire_start, *self.ramp.values(),
        ]  # fmt: skip

    def values(self) -> dict:
        """The controls' values for :func:`assumptions_from_controls`."""
        return {
            "target_growth": self.growth.value,
            "target_amount": parse_target(self.target.value),
            "churn_rate": None if self.churn_history.value else float(self.churn.value),
            "win_rate_change": self.win_rate.value,
            "over_assignment": self.over_assignment.value,
            "ramp_months": {seg: s.value for seg, s in self.ramp.items()},
            "hires": self.hires.value,
            "hire_segment": self.hire_segment.value,
            "hire_region": self.hire_region.value,
            "hire_start": self.hire_start.value,
        }


def _int_slider(description: str, value: int, hi: int, css: str) -> w.IntSlider:
    s = w.IntSlider(
        value=value, min=0, max=hi, description=description, continuous_update=False,
        style={"description_width": "170px"}, layout=w.Layout(width="440px"),
    )  # fmt: skip
    s.add_class(css)
    return s


def _potential(ctx: AppContext) -> xr.DataArray | None:
    """The rep potential the published plan's quotas were set on (None: quotas not by potential)."""
    return ctx.extra.get("potential")


def _measured_churn(ctx: AppContext) -> float:
    return float(ctx.plan["total_churn_rate"])


def _widgets(ctx: AppContext) -> WhatIfPage:
    """Every widget of the page, set to the base plan, unwired."""
    a = ctx.assumptions
    churn0 = a.churn_rate if a.churn_rate is not None else round(_measured_churn(ctx), 3)
    regions = [str(r) for r in ctx.plan["region"].values]
    segments = list(a.ramp_months) or [str(s) for s in ctx.cube["segment"].values]
    months = [f"{pd.Timestamp(m):%Y-%m}" for m in ctx.plan["month"].values]
    folder = ctx.scenarios_dir if ctx.scenarios_dir is not None else scenario_dir()
    page = WhatIfPage(
        growth=_slider("Target growth", a.target_growth, -0.2, 1.0, 0.01, ".0%", "revmodel-whatif-growth"),
        target=w.Text(
            value="" if a.target_amount is None else f"{a.target_amount:.0f}",
            description="or target (USD)", placeholder="empty: grow last year",
            continuous_update=False, style={"description_width": "170px"},
            layout=w.Layout(width="440px"),
        ),
        churn=_slider("Churn rate / year", churn0, 0.0, 0.3, 0.005, ".1%", "revmodel-whatif-churn"),
        churn_history=w.Checkbox(value=a.churn_rate is None, description="churn from history", indent=False),
        win_rate=_slider("Win-rate change", a.win_rate_change, -0.5, 0.5, 0.01, "+.0%", "revmodel-whatif-winrate"),
        over_assignment=_slider("Over-assignment", a.over_assignment, 1.0, 1.5, 0.01, ".0%", "revmodel-whatif-over"),
        ramp={
            seg: _int_slider(f"{seg} ramp (mo.)", int(m), 12, f"revmodel-whatif-ramp-{re.sub('[^a-z]', '', seg.lower())}")
            for seg, m in a.ramp_months.items()
        },
        hires=_int_slider("Extra hires", 0, 40, "revmodel-whatif-hires"),
        hire_segment=layout.dropdown("Hires: segment", segments, segments[0], "440px"),
        hire_region=layout.dropdown("Hires: region", regions, regions[0], "440px"),
        hire_start=layout.dropdown("Hires: first month", months, months[0], "440px"),
        kpis=layout.KpiCards("revmodel-whatif-kpis"),
        chart=layout.FigurePane("revmodel-whatif-chart"),
        message=layout.Message(),
        timing=w.HTML(),
        name=w.Text(description="Scenario name", placeholder="e.g. stretch-hiring",
                    style={"description_width": "initial"}, layout=w.Layout(width="300px")),
        save=w.Button(description="Save scenario", icon="save", button_style="primary"),
        reset=w.Button(description="Back to base", icon="refresh"),
        comparison=w.HTML(),
        comparison_chart=layout.FigurePane("revmodel-whatif-compare-chart"),
        context=ctx,
        folder=Path(folder),
        saved=_saved(Path(folder), a.plan_year),
        state={"plan": ctx.plan, "assumptions": a, "quiet": False, "listing": _listing(Path(folder))},
    )  # fmt: skip
    for dd in (page.hire_segment, page.hire_region, page.hire_start):
        dd.style.description_width = "170px"
    for widget, css in (
        (page.target, "target"), (page.churn_history, "churn-history"), (page.message, "message"),
        (page.timing, "timing"), (page.name, "name"), (page.save, "save"),
        (page.comparison, "comparison"),
    ):  # fmt: skip
        widget.add_class(f"revmodel-whatif-{css}")
    return page


def _layout(ctx: AppContext, page: WhatIfPage) -> w.VBox:
    """Arrange the widgets on the page."""
    controls = w.VBox(
        [
            page.growth,
            page.target,
            page.churn,
            w.HBox([w.HTML("<div style='width:174px'></div>"), page.churn_history]),
            page.win_rate,
            page.over_assignment,
            *page.ramp.values(),
            page.hires,
            page.hire_segment,
            page.hire_region,
            page.hire_start,
            w.HBox([page.reset, page.excel]),
        ],
        layout=w.Layout(min_width="450px", flex="0 0 450px"),
    )
    controls.add_class("revmodel-whatif-controls")
    results = w.VBox([page.message, page.kpis, page.timing], layout=w.Layout(width="100%"))
    app = layout.page(
        "What-if",
        f"Move an assumption and the {ctx.assumptions.plan_year} plan is recomputed: target, "
        "capacity, quotas, hires and ARR. Changes are shown against the base plan.",
        [
            w.HBox([controls, results]),
            page.chart,
            layout.section(
                "Save and compare",
                w.HBox([page.name, page.save]),
                page.comparison,
                page.comparison_chart,
            ),
        ],
        footer=f"Data: {ctx.source}. Saved scenarios: {page.folder}.",
    )
    app.add_class("revmodel-whatif")
    return app


def _recompute(page: WhatIfPage, change: dict | None = None) -> None:
    if page.state["quiet"]:
        return
    if change is not None and change.get("owner") is page.churn:
        page.state["quiet"] = True
        page.churn_history.value = False
        page.state["quiet"] = False
    base = page.context.plan
    t0 = time.perf_counter()
    try:
        a = assumptions_from_controls(page.context.assumptions, page.values())
        # The base assumptions: the base plan as it is (the published one), nothing recomputed.
        same = (
            dataclasses.replace(a, name=page.context.assumptions.name) == page.context.assumptions
        )
        plan = (
            base
            if same
            else scenario.plan(page.context.plan_context, a, potential=_potential(page.context))
        )
    except RevmodelError as exc:
        page.message.show(str(exc), "error")
        return
    ms = (time.perf_counter() - t0) * 1000
    page.state["plan"], page.state["assumptions"] = plan, a
    if page.excel is not None:
        page.excel.clear()
    page.message.clear()
    page.kpis.show(cards(plan, base, page.context.cube.attrs.get("currency")))
    page.chart.show(figure(plan, base, page.context.cube.attrs.get("currency")))
    page.timing.value = (
        f"<span class='revmodel-footer'>The base plan {html.escape(a.plan_year)}.</span>"
        if same
        else f"<span class='revmodel-footer' data-ms='{ms:.0f}'>Plan {html.escape(a.plan_year)} "
        f"recomputed in {ms:.0f} ms.</span>"
    )


def _show_comparison(page: WhatIfPage) -> None:
    ctx = page.context
    if not page.saved:
        page.comparison.value = (
            "<div class='revmodel-subtitle'>No saved scenario yet: set the assumptions, name "
            "the scenario and save it to compare it here.</div>"
        )
        page.comparison_chart.clear()
        return
    stacked = scenario.stack(
        ctx.plan_context, [ctx.assumptions, *page.saved.values()], potential=_potential(ctx)
    )
    table = scenario.compare(stacked)
    names = [str(s) for s in stacked["scenario"].values]
    currency = ctx.cube.attrs.get("currency")
    fmt = {
        "money": lambda v: layout.fmt_money(v, currency),
        "pct": layout.fmt_pct,
        "int": layout.fmt_number,
    }
    text = pd.DataFrame(
        [
            {"KPI": label, **{n: fmt[kind](float(table.loc[k, n])) for n in names}}
            for k, (label, kind) in KPI_CARDS.items()
        ]
    )
    page.comparison.value = layout.table_html(text, css="revmodel-compare-table")
    totals = ("target", "capacity", "gap", "required_new_arr")
    per_scenario = pd.DataFrame(
        [
            {"scenario": n, **{k: float(stacked[f"total_{k}"].sel(scenario=n)) for k in totals}}
            for n in names
        ]
    )
    page.comparison_chart.show(plots.scenario_comparison(per_scenario))


def kpi_frame(plan: xr.Dataset, base: xr.Dataset) -> pd.DataFrame:
    """The KPI cards as numbers: KPI, unit, this scenario, the base plan and the change."""
    units = {"money": "USD/year", "pct": "ratio", "int": "count"}
    rows = []
    for name, (label, kind) in KPI_CARDS.items():
        v, b = float(plan[f"total_{name}"]), float(base[f"total_{name}"])
        rows.append({"KPI": label, "unit": units[kind], "scenario": v, "base": b, "change": v - b})
    return pd.DataFrame(rows)


def region_frame(plan: xr.Dataset, base: xr.Dataset) -> pd.DataFrame:
    """The chart as a table: target, capacity (scenario and base) and quota by region [USD/year]."""
    regions = plan["region"].values
    return pd.DataFrame(
        {
            "Region": [str(r) for r in regions],
            "Target": plan["target"].values,
            "Capacity": plan["capacity"].values,
            "Capacity (base)": base["capacity"].reindex(region=regions).values,
            "Quota": plan["quota"].values,
        }
    )


def _excel_sheets(page: WhatIfPage) -> dict[str, layout.Sheet]:
    """The scenario's KPIs and regions against the base plan, and the assumptions behind them."""
    plan, base = page.plan(), page.context.plan
    assumptions = pd.DataFrame(
        [{"assumption": k, "value": v if isinstance(v, str) else json.dumps(v)}
         for k, v in page.assumptions().to_dict().items()]
    )  # fmt: skip
    money = dict.fromkeys(("Target", "Capacity", "Capacity (base)", "Quota"), "money")
    return {
        "KPIs": (kpi_frame(plan, base), {}),
        "By region": (region_frame(plan, base), money),
        "Assumptions": (assumptions, {}),
    }


def _on_save(page: WhatIfPage) -> None:
    base = page.context.assumptions
    try:
        label = validate_name(page.name.value, base.name)
        a = assumptions_from_controls(base, {**page.values(), "name": label})
    except RevmodelError as exc:
        page.message.show(str(exc), "error")
        return
    path = save_scenario(a, page.folder)
    page.saved[label] = a
    page.message.show(f"Saved scenario {label} ({path.name}); it is compared below.", "ok")
    _show_comparison(page)


def _on_reset(page: WhatIfPage) -> None:
    a = page.context.assumptions
    page.state["quiet"] = True
    page.growth.value = a.target_growth
    page.target.value = "" if a.target_amount is None else f"{a.target_amount:.0f}"
    page.churn_history.value = a.churn_rate is None
    page.churn.value = (
        a.churn_rate if a.churn_rate is not None else round(_measured_churn(page.context), 3)
    )
    page.win_rate.value = a.win_rate_change
    page.over_assignment.value = a.over_assignment
    for seg, s in page.ramp.items():
        s.value = int(a.ramp_months[seg])
    page.hires.value = 0
    page.state["quiet"] = False
    _recompute(page)


def build(ctx: AppContext | None = None) -> w.Widget:
    """The what-if app.

    Parameters
    ----------
    ctx : AppContext, optional
        Data, plan and the scenarios folder (:func:`revmodel.apps.context.app_context`);
        default the server's.

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` is its :class:`WhatIfPage` (controls, ``kpis``, ``chart``,
        ``message``, ``name``, ``save``, ``comparison``, ``plan()``, ``assumptions()``
        and ``saved``).
    """
    ctx = ctx if ctx is not None and ctx.store is not None else app_context(context=ctx)
    if ctx.not_provided("scenarios"):
        return layout.not_provided("What-if", ctx.not_provided("scenarios"), ctx.source)
    page = _widgets(ctx)
    page.excel = layout.ExcelDownload(
        lambda: f"whatif-{page.assumptions().plan_year}", lambda: _excel_sheets(page)
    )
    for control in page.controls():
        control.observe(lambda change: _recompute(page, change), names="value")
    page.save.on_click(lambda _b: _on_save(page))
    page.reset.on_click(lambda _b: _on_reset(page))
    _recompute(page)
    _show_comparison(page)
    app = _layout(ctx, page)
    app.app = page
    return app
