"""What-if: move the scenario assumptions and see the plan and its KPIs recomputed at once.

Sliders and fields set target growth (or an absolute target), customer churn,
win-rate change, planned hires, ramp months by segment and over-assignment.
Every change runs :func:`revmodel.scenario.plan` on the kernel's prepared
context (tens of milliseconds) and redraws the KPI cards (with the change
against the base plan) and the chart. A scenario can be saved by name (a YAML
file of assumptions under ``data/scenarios/``) and compared with the base and
the other saved scenarios (:func:`revmodel.scenario.compare`).
"""

from __future__ import annotations

import html
import math
import re
import time
from pathlib import Path

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import xarray as xr
import yaml

from revmodel import config, plots, scenario
from revmodel.apps import layout
from revmodel.apps.context import AppContext, load_context
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
    "coverage": ("Capacity / target", "pct"),
    "hires_needed": ("Hires to close gap", "int"),
    "quota": ("Sum of quotas", "money"),
    "reps_expected_to_attain": ("Reps expected to attain", "pct"),
    "closing_arr": ("Closing ARR", "money"),
    "expected_churn_arr": ("Churned ARR", "money"),
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


def figure(plan: xr.Dataset, base: xr.Dataset) -> go.Figure:
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
    fig.update_yaxes(tickformat=plots.MONEY_FORMAT, title_text="USD per year")
    return fig


def cards(plan: xr.Dataset, base: xr.Dataset) -> list[dict[str, str]]:
    """KPI cards of a plan with the change against the base plan."""
    out = []
    for name, (label, kind) in KPI_CARDS.items():
        v = float(plan[f"total_{name}"])
        b = float(base[f"total_{name}"])
        if kind == "money":
            text, d = layout.fmt_money(v), layout.fmt_money(v - b)
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


def build(
    data_dir: str | None = None,
    cube: xr.Dataset | None = None,
    store_url: str | None = None,
    user: str | None = None,
    context: AppContext | None = None,
    scenarios_dir: str | Path | None = None,
) -> w.Widget:
    """The what-if app.

    Parameters
    ----------
    data_dir, cube
        Data of the apps (see :func:`revmodel.apps.context.load_context`).
    store_url, user
        Unused; accepted so every builder takes the same arguments.
    context : AppContext, optional
        A context already built (tests).
    scenarios_dir : str or Path, optional
        Folder of saved scenarios; default :func:`scenario_dir`.

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` holds the controls (``growth``, ``churn``, ``churn_history``,
        ``win_rate``, ``over_assignment``, ``ramp`` {segment: slider}, ``hires``,
        ``hire_segment``, ``hire_region``, ``hire_start``, ``target``), ``kpis``,
        ``chart``, ``message``, ``name``, ``save``, ``comparison``, ``plan()`` (the
        current plan) and ``saved`` (name -> Assumptions).
    """
    ctx = context or load_context(data_dir=data_dir, cube=cube)
    folder = Path(scenarios_dir) if scenarios_dir is not None else scenario_dir()
    base_a = ctx.assumptions
    base_plan = ctx.plan
    measured_churn = float(base_plan["total_churn_rate"])
    growth = _slider(
        "Target growth", base_a.target_growth, -0.2, 1.0, 0.01, ".0%", "revmodel-whatif-growth"
    )
    target = w.Text(
        value="" if base_a.target_amount is None else f"{base_a.target_amount:.0f}",
        description="or target (USD)",
        placeholder="empty: grow last year",
        continuous_update=False,
        style={"description_width": "170px"},
        layout=w.Layout(width="440px"),
    )
    target.add_class("revmodel-whatif-target")
    churn = _slider(
        "Customer churn / year",
        base_a.churn_rate if base_a.churn_rate is not None else round(measured_churn, 3),
        0.0, 0.3, 0.005, ".1%", "revmodel-whatif-churn",
    )  # fmt: skip
    churn_history = w.Checkbox(
        value=base_a.churn_rate is None, description="churn from history", indent=False
    )
    churn_history.add_class("revmodel-whatif-churn-history")
    win_rate = _slider(
        "Win-rate change",
        base_a.win_rate_change,
        -0.5,
        0.5,
        0.01,
        "+.0%",
        "revmodel-whatif-winrate",
    )
    over = _slider(
        "Over-assignment", base_a.over_assignment, 1.0, 1.5, 0.01, ".0%", "revmodel-whatif-over"
    )
    ramp = {}
    for seg, months in base_a.ramp_months.items():
        s = w.IntSlider(
            value=int(months), min=0, max=12, description=f"{seg} ramp (mo.)",
            continuous_update=False, style={"description_width": "170px"}, layout=w.Layout(width="440px"),
        )  # fmt: skip
        s.add_class(f"revmodel-whatif-ramp-{re.sub('[^a-z]', '', seg.lower())}")
        ramp[seg] = s
    regions = [str(r) for r in base_plan["region"].values]
    segments = list(base_a.ramp_months) or [str(s) for s in ctx.cube["segment"].values]
    plan_months = [f"{pd.Timestamp(m):%Y-%m}" for m in base_plan["month"].values]
    hires = w.IntSlider(
        value=0, min=0, max=40, description="Extra hires", continuous_update=False,
        style={"description_width": "170px"}, layout=w.Layout(width="440px"),
    )  # fmt: skip
    hires.add_class("revmodel-whatif-hires")
    hire_segment = layout.dropdown("Hires: segment", segments, segments[0], "440px")
    hire_region = layout.dropdown("Hires: region", regions, regions[0], "440px")
    hire_start = layout.dropdown("Hires: first month", plan_months, plan_months[0], "440px")
    for dd in (hire_segment, hire_region, hire_start):
        dd.style.description_width = "170px"
    kpis = layout.KpiCards("revmodel-whatif-kpis")
    chart = layout.FigurePane("revmodel-whatif-chart")
    message = layout.Message()
    message.add_class("revmodel-whatif-message")
    timing = w.HTML()
    timing.add_class("revmodel-whatif-timing")
    name = w.Text(description="Scenario name", placeholder="e.g. stretch-hiring",
                  style={"description_width": "initial"}, layout=w.Layout(width="300px"))  # fmt: skip
    name.add_class("revmodel-whatif-name")
    save = w.Button(description="Save scenario", icon="save", button_style="primary")
    save.add_class("revmodel-whatif-save")
    reset = w.Button(description="Back to base", icon="refresh")
    comparison = w.HTML()
    comparison.add_class("revmodel-whatif-comparison")
    comparison_chart = layout.FigurePane("revmodel-whatif-compare-chart")
    saved = _saved(folder, base_a.plan_year)
    state: dict = {"plan": base_plan, "assumptions": base_a, "quiet": False}

    def values() -> dict:
        return {
            "target_growth": growth.value,
            "target_amount": parse_target(target.value),
            "churn_rate": None if churn_history.value else float(churn.value),
            "win_rate_change": win_rate.value,
            "over_assignment": over.value,
            "ramp_months": {seg: s.value for seg, s in ramp.items()},
            "hires": hires.value,
            "hire_segment": hire_segment.value,
            "hire_region": hire_region.value,
            "hire_start": hire_start.value,
        }

    def recompute(change: dict | None = None) -> None:
        if state["quiet"]:
            return
        if change is not None and change.get("owner") is churn:
            state["quiet"] = True
            churn_history.value = False
            state["quiet"] = False
        t0 = time.perf_counter()
        try:
            a = assumptions_from_controls(base_a, values())
            plan = scenario.plan(ctx.plan_context, a)
        except RevmodelError as exc:
            message.show(str(exc), "error")
            return
        ms = (time.perf_counter() - t0) * 1000
        state["plan"], state["assumptions"] = plan, a
        message.clear()
        kpis.show(cards(plan, base_plan))
        chart.show(figure(plan, base_plan))
        timing.value = (
            f"<span class='revmodel-footer' data-ms='{ms:.0f}'>Plan {html.escape(a.plan_year)} "
            f"recomputed in {ms:.0f} ms.</span>"
        )

    def show_comparison() -> None:
        if not saved:
            comparison.value = (
                "<div class='revmodel-subtitle'>No saved scenario yet: set the assumptions, name "
                "the scenario and save it to compare it here.</div>"
            )
            comparison_chart.outputs = ()
            return
        stacked = scenario.stack(ctx.plan_context, [base_a, *saved.values()])
        table = scenario.compare(stacked)
        names = [str(s) for s in stacked["scenario"].values]
        fmt = {"money": layout.fmt_money, "pct": layout.fmt_pct, "int": layout.fmt_number}
        text = pd.DataFrame(
            [
                {"KPI": label, **{n: fmt[kind](float(table.loc[k, n])) for n in names}}
                for k, (label, kind) in KPI_CARDS.items()
            ]
        )
        comparison.value = layout.table_html(text, css="revmodel-compare-table")
        per_scenario = pd.DataFrame(
            [{"scenario": n, **{k: float(stacked[f"total_{k}"].sel(scenario=n)) for k in ("target", "capacity", "gap", "required_new_arr")}} for n in names]
        )  # fmt: skip
        comparison_chart.show(plots.scenario_comparison(per_scenario))

    def on_save(_button: object) -> None:
        try:
            label = validate_name(name.value, base_a.name)
            a = assumptions_from_controls(base_a, {**values(), "name": label})
        except RevmodelError as exc:
            message.show(str(exc), "error")
            return
        path = save_scenario(a, folder)
        saved[label] = a
        message.show(f"Saved scenario {label} ({path.name}); it is compared below.", "ok")
        show_comparison()

    def on_reset(_button: object) -> None:
        state["quiet"] = True
        growth.value = base_a.target_growth
        target.value = "" if base_a.target_amount is None else f"{base_a.target_amount:.0f}"
        churn_history.value = base_a.churn_rate is None
        churn.value = (
            base_a.churn_rate if base_a.churn_rate is not None else round(measured_churn, 3)
        )
        win_rate.value = base_a.win_rate_change
        over.value = base_a.over_assignment
        for seg, s in ramp.items():
            s.value = int(base_a.ramp_months[seg])
        hires.value = 0
        state["quiet"] = False
        recompute()

    for control in (growth, target, churn, churn_history, win_rate, over, hires, hire_segment, hire_region, hire_start, *ramp.values()):  # fmt: skip
        control.observe(recompute, names="value")
    save.on_click(on_save)
    reset.on_click(on_reset)
    recompute()
    show_comparison()

    controls = w.VBox(
        [
            growth,
            target,
            churn,
            w.HBox([w.HTML("<div style='width:174px'></div>"), churn_history]),
            win_rate,
            over,
            *ramp.values(),
            hires,
            hire_segment,
            hire_region,
            hire_start,
            w.HBox([reset]),
        ]
    )
    controls.layout = w.Layout(min_width="450px", flex="0 0 450px")
    controls.add_class("revmodel-whatif-controls")
    app = layout.page(
        "What-if",
        f"Move an assumption and the {base_a.plan_year} plan is recomputed: target, capacity, "
        "quotas, hires and ARR. Changes are shown against the base plan.",
        [
            w.HBox([controls, w.VBox([message, kpis, timing], layout=w.Layout(width="100%"))]),
            chart,
            layout.section("Save and compare", w.HBox([name, save]), comparison, comparison_chart),
        ],
        footer=f"Data: {ctx.source}. Saved scenarios: {folder}.",
    )
    app.add_class("revmodel-whatif")
    app.app = layout.Controls(
        growth=growth,
        target=target,
        churn=churn,
        churn_history=churn_history,
        win_rate=win_rate,
        over_assignment=over,
        ramp=ramp,
        hires=hires,
        hire_segment=hire_segment,
        hire_region=hire_region,
        hire_start=hire_start,
        kpis=kpis,
        chart=chart,
        message=message,
        timing=timing,
        name=name,
        save=save,
        reset=reset,
        comparison=comparison,
        plan=lambda: state["plan"],
        assumptions=lambda: state["assumptions"],
        saved=saved,
        context=ctx,
    )
    return app
