"""``plan.html``: the pack as one self-contained page, from jinja2 templates.

The page and its prose live in ``templates/plan.html.j2``; this module only
turns tables into rows of formatted cells (:func:`table`) and charts into
``<div>`` s. Autoescaping is on: every name from the data (reps, managers,
regions, accounts) is escaped; only plotly.js and the charts Plotly writes
are inserted as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import markupsafe
import pandas as pd

import revmodel
from revmodel import config, formatting, kpi

__all__ = ["Table", "html_table", "render_html", "table"]


@dataclass(frozen=True)
class Table:
    """A table ready for the template: header and rows of (text, numeric) cells."""

    columns: tuple[tuple[str, bool], ...]
    rows: tuple[tuple[tuple[str, bool], ...], ...]
    total_rows: int
    cls: str = ""


def table(
    frame: pd.DataFrame,
    max_rows: int | None = None,
    cls: str = "",
    currency: str | None = None,
) -> Table:
    """A DataFrame as a :class:`Table`, each column formatted by :data:`formatting.COLUMN_KINDS`."""
    kinds = [formatting.COLUMN_KINDS.get(str(c), "text") for c in frame.columns]
    shown = frame if max_rows is None else frame.head(max_rows)
    columns = tuple(
        (str(c).replace("_", " "), k != "text") for c, k in zip(frame.columns, kinds, strict=True)
    )
    rows = tuple(
        tuple(
            (formatting.cell(k, v, currency), k != "text") for k, v in zip(kinds, rec, strict=True)
        )
        for rec in shown.itertuples(index=False, name=None)
    )
    return Table(columns=columns, rows=rows, total_rows=len(frame), cls=cls)


def kpi_table(kpis: pd.DataFrame, currency: str | None = None) -> Table:
    """KPIs as rows (by their labels) and quarters as columns, each value formatted by its units."""
    t = kpis.set_index("fiscal_quarter").T
    rows = tuple(
        (
            (kpi.label(str(name)), False),
            *(
                (formatting.cell(formatting.COLUMN_KINDS.get(str(name), "text"), v, currency), True)
                for v in values
            ),
        )
        for name, values in t.iterrows()
    )
    columns = (("kpi", False), *((str(c), True) for c in t.columns))
    return Table(columns=columns, rows=rows, total_rows=len(rows))


@functools.cache
def environment() -> jinja2.Environment:
    """The templates of the pack, autoescaped, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("revmodel.publish", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = formatting.money
    env.filters["pct"] = formatting.pct
    return env


def html_table(
    frame: pd.DataFrame, max_rows: int | None = None, cls: str = "", currency: str | None = None
) -> str:
    """A DataFrame as an HTML table with the pack's number formats."""
    macros = environment().get_template("table.html.j2").module
    return str(macros.table(table(frame, max_rows, cls, currency)))


def render_html(
    summ: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, Any],
    params: Mapping[str, Any],
    plotly_js: str,
) -> str:
    """The self-contained ``plan.html``: no code, plotly.js inline once, charts as divs."""
    from revmodel import plots

    currency = summ.get("currency") or config.CURRENCY
    shown = {
        "territories": _active(tables.get("territories")),
        "arr_bridge": tables["arr_bridge"].tail(8) if "arr_bridge" in tables else None,
    }
    t = {
        name: table(frame, cls="", currency=currency)
        for name, frame in {**tables, **shown}.items()
        if frame is not None
    }
    f = tables.get("forecast_by_level")
    by_level = (
        {lv: table(f[f["level"] == lv].drop(columns="level"), currency=currency)
         for lv in ("region", "segment", "manager", "rep")}
        if f is not None
        else {}
    )  # fmt: skip
    if "kpis" in tables:
        t["kpis"] = kpi_table(tables["kpis"], currency)
    figs = {
        name: markupsafe.Markup(plots.to_div(fig))
        for name, fig in figures.items()
        if fig is not None
    }
    return (
        environment()
        .get_template("plan.html.j2")
        .render(
            s=dict(summ),
            p=dict(params),
            t=t,
            by_level=by_level,
            figs=figs,
            currency=currency,
            version=revmodel.__version__,
            plotly_js=markupsafe.Markup(plotly_js),
        )
    )


def _active(territories: pd.DataFrame | None) -> pd.DataFrame | None:
    if territories is None or "status" not in territories.columns:
        return territories
    return territories[territories["status"] == "active"]
