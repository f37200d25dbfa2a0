"""The weekly forecast call: what changed in the pipeline, and whose calls to trust.

Two tabs, for any node of the sales hierarchy (the company, a region, a manager):

What changed
    The pipeline waterfall of the plan cycle's deals, as in the plan pack
    (:func:`revmodel.history.changes_section`), since last week or since the
    quarter's start: opening, new, pulled in, pushed out, re-priced, won, lost,
    closing; the rows of the level; the deals behind each bar of the node.
Whose calls to trust
    Every past weekly commit call scored against what was booked, beside the
    in-quarter forecast made the same week for the same node
    (:mod:`revmodel.valueadd`, one definition in
    :func:`revmodel.overrides.value_add`): per node over all past quarters, and
    the node's errors by week of quarter.

Calls come from the data folder's ``forecast_calls.csv`` and the app's call
store; the history from the ``opportunity_history`` export or the snapshots.

What the page computes from the data is kept on disk beside the shared context
(:func:`revmodel.apps.cache.weekly_cache_path`): the prepared history and the
waterfalls, and the scored calls (:class:`revmodel.valueadd.ScorerState`: each
quarter's model forecasts and each node's scores with the digest of its calls).
The next kernel reads them instead of computing them again; a call that changed
since (in the CSV or the store) has only its node and period scored again, and
the file is written again for the kernels after it.
"""

from __future__ import annotations

import html
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import ipywidgets as w
import pandas as pd

from revmodel import config, formatting, history, plots, valueadd
from revmodel.apps import layout
from revmodel.apps.cache import weekly_cache_path
from revmodel.apps.context import AppContext, app_context
from revmodel.errors import DataError

__all__ = ["WINDOWS", "build", "changes", "value_add"]

#: Waterfall windows offered, label -> attribute of :class:`revmodel.history.ChangesSection`.
WINDOWS: dict[str, str] = {
    "Since last week": "since_last_week",
    "Since the quarter's start": "since_quarter_start",
}
LEVELS: tuple[str, ...] = ("total", "region", "manager")
_BAR_TITLES = {
    "new": "New", "pulled_in": "Pulled in", "pushed_out": "Pushed out", "increased": "Increased",
    "decreased": "Decreased", "won": "Won", "lost": "Lost",
}  # fmt: skip
#: Amounts of the deals list.
_DEAL_KINDS = {"amount": "money", "amount_before": "money", "amount_after": "money"}
#: Dates of the deals list, shown as days (not midnight timestamps).
_DATES: tuple[str, ...] = ("close_date_before", "close_date_after")

logger = logging.getLogger(__name__)


def _calendar(ctx: AppContext) -> tuple[int, str]:
    attrs = ctx.cube.attrs
    return (
        int(attrs.get("fiscal_year_start", config.FISCAL_YEAR_START)),
        str(attrs.get("fiscal_year_naming", config.FISCAL_YEAR_NAMING)),
    )


def _history(ctx: AppContext) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The prepared history and the deals' labels, None without a history."""
    if "weekly_history" not in ctx.extra:
        found = None
        tables = ctx.tables or {}
        data_dir = ctx.extra.get("data_dir")
        has = tables.get("opportunity_history") is not None or data_dir is not None
        if tables.get("opportunities") is not None and has:
            try:
                hist, _ = history.load_history(data_dir, tables=tables)
                found = (history.prepare(hist), history.deal_labels(tables))
            except DataError:
                found = None
        ctx.extra["weekly_history"] = found
    return ctx.extra["weekly_history"]


def changes(ctx: AppContext) -> history.ChangesSection | None:
    """The waterfalls of the plan cycle's deals, by region and manager, as in the pack."""
    if "weekly_changes" not in ctx.extra:
        found = _history(ctx)
        section = None
        if found is not None:
            hist, labels = found
            fys, naming = _calendar(ctx)
            as_of = hist["changed_at"].max()
            # the deals closing in the plan's cycle, as the pack shows them (the quarter
            # holding the last change has usually just ended when a plan is made)
            section = history.changes_section(
                hist, as_of, labels, ("region", "manager"), fys, naming, period=ctx.cycle
            )
        ctx.extra["weekly_changes"] = section
    return ctx.extra["weekly_changes"]


def _scorer(ctx: AppContext, found: tuple[pd.DataFrame, pd.DataFrame]) -> valueadd.Scorer:
    """The page's scorer: each quarter's model forecasts and the scores of unchanged calls kept
    (from the previous kernel's, :func:`read_kept`)."""
    if "weekly_scorer" not in ctx.extra:
        fys, naming = _calendar(ctx)
        state = ctx.extra.get("weekly_scorer_state")
        ctx.extra["weekly_scorer"] = valueadd.Scorer(found[0], found[1], fys, naming, state=state)
    return ctx.extra["weekly_scorer"]


def _kept_files(ctx: AppContext) -> tuple[Path, Path] | None:
    """(history and waterfalls, scored calls) files of the context; None for a context made
    in memory (tests, a cube given)."""
    made = ctx.extra.get("context_file")
    if made is None:
        return None
    data = weekly_cache_path(Path(made), ctx.extra.get("data_dir"))
    return data, data.with_suffix(".scores.pickle")


def _load(path: Path) -> object | None:
    try:
        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this module into its own cache
    except FileNotFoundError:
        return None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        logger.warning("weekly cache %s unreadable: computing again", path)
        return None


def _dump(path: Path, obj: object) -> None:
    """Written whole or not at all: another kernel may be reading it."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def read_kept(ctx: AppContext) -> None:
    """What an earlier kernel computed for this context and data folder, into ``ctx.extra``."""
    files = _kept_files(ctx)
    if files is None or "weekly_history" in ctx.extra:
        return
    data = _load(files[0])
    if isinstance(data, tuple) and len(data) == 2:
        ctx.extra["weekly_history"], ctx.extra["weekly_changes"] = data
        state = _load(files[1])
        if isinstance(state, valueadd.ScorerState):
            ctx.extra["weekly_scorer_state"] = state


def keep(ctx: AppContext) -> None:
    """Write what this page computed for the next kernels: the history and waterfalls once,
    the scored calls whenever some were scored here."""
    files = _kept_files(ctx)
    if files is None or "weekly_changes" not in ctx.extra:
        return
    files[0].parent.mkdir(parents=True, exist_ok=True)
    if not files[0].exists():
        _dump(files[0], (ctx.extra["weekly_history"], ctx.extra["weekly_changes"]))
    scorer = ctx.extra.get("weekly_scorer")
    if scorer is not None and scorer.computed != ctx.extra.get("weekly_kept", 0):
        _dump(files[1], scorer.state)
        ctx.extra["weekly_kept"] = scorer.computed


def value_add(ctx: AppContext) -> valueadd.ValueAddSection | None:
    """The scored calls of the data folder's call log and the app's store (None: no calls).

    After a call changed, only its node and period are scored again (:class:`valueadd.Scorer`).
    """
    if "weekly_value_add" not in ctx.extra:
        found = _history(ctx)
        section = None
        fys, naming = _calendar(ctx)
        log = valueadd.call_log(ctx.extra.get("data_dir"), ctx.store, fys, naming)
        if found is not None and log is not None:
            section = _scorer(ctx, found).section(log)
        ctx.extra["weekly_value_add"] = section
    return ctx.extra["weekly_value_add"]


@dataclass
class WeeklyPage:
    """The page's widgets (``app.app``)."""

    window: w.Dropdown
    level: w.Dropdown
    node: w.Dropdown
    waterfall: layout.FigurePane
    rows: w.HTML
    deals: w.HTML
    scores: w.HTML
    weekly: w.HTML
    chart: layout.FigurePane
    message: layout.Message
    tabs: w.Tab
    context: AppContext
    busy: bool = False
    #: The tables on the page, as the Excel download writes them: sheet -> (table, kinds).
    shown: dict[str, layout.Sheet] = field(default_factory=dict)
    excel: layout.ExcelDownload | None = None

    def refresh(self, _change: object = None) -> None:
        """Redraw for the current choices; called without a change (a page opened after it
        was built), score the calls again so the latest ones count."""
        if _change is None:
            self.context.extra.pop("weekly_value_add", None)
        _refresh(self)


def _keys(ctx: AppContext, level: str) -> list[str]:
    section = changes(ctx)
    if level == "total":
        return ["total"]
    keys: set[str] = set()
    if section is not None:
        table = section.since_quarter_start.table
        keys |= set(table.loc[table["level"] == level, "key"].astype(str))
    va = value_add(ctx)
    if va is not None:
        keys |= set(va.summary.loc[va.summary["level"] == level, "key"].astype(str))
    return sorted(keys)


def _draw_changes(page: WeeklyPage, level: str, key: str) -> None:
    section = changes(page.context)
    if section is None:
        page.rows.value = (
            "<div class='revmodel-subtitle'>No pipeline history: add an opportunity_history "
            "export or store a snapshot every week (revmodel snapshot).</div>"
        )
        page.deals.value = ""
        return
    wf = getattr(section, WINDOWS[page.window.value])
    table = wf.table
    row = table[(table["level"] == level) & (table["key"] == key)]
    if row.empty:
        row = table.iloc[[0]].assign(**dict.fromkeys(history.WATERFALL_COLUMNS[2:], 0))
    who = "Company" if level == "total" else key
    title = f"{section.quarter} pipeline, {who}: {page.window.value.lower()}"
    page.waterfall.show(plots.pipeline_waterfall(row.iloc[0], title, _currency(page.context)))
    shown = _headed_sheet(table[table["level"].isin(["total", level])])
    page.rows.value = layout.table_html(shown[0], kinds=shown[1], css="revmodel-changes")
    page.shown["Pipeline changes"] = shown
    deals = _deal_moves(
        page.context, wf.deals if level == "total" else wf.deals[wf.deals[level] == key]
    )
    page.shown["Deal moves"] = deals
    page.deals.value = (
        f"<div class='revmodel-subtitle'>{len(deals[0])} deal moves behind the bars of "
        f"{html.escape(who)}</div>"
        + layout.table_html(deals[0], kinds=deals[1], css="revmodel-changes-deals")
    )


def _deal_moves(ctx: AppContext, deals: pd.DataFrame) -> layout.Sheet:
    """The deals behind the bars as a reader sees them: the bar's title, reps by name,
    dates as days, the plan pack's headings and number formats."""
    names = ctx.rep_names()
    shown = deals.assign(
        bar=deals["bar"].map(_BAR_TITLES),
        **{c: pd.to_datetime(deals[c]).dt.strftime("%Y-%m-%d") for c in _DATES if c in deals},
    )
    if "rep" in shown:
        reps = shown["rep"].astype(str)
        shown["rep"] = reps.map(names).fillna(reps)
    kinds = {formatting.heading(c): k for c, k in _DEAL_KINDS.items()}
    return formatting.headed(shown), kinds


def _draw_value_add(page: WeeklyPage, level: str, key: str) -> None:
    section = value_add(page.context)
    if section is None or section.scored.empty:
        page.scores.value = (
            "<div class='revmodel-subtitle'>No past calls to score: calls made in the forecast "
            "call app, or a forecast_calls.csv in the data folder, are scored once their quarter "
            "is over.</div>"
        )
        page.weekly.value = ""
        return
    summary = section.summary[section.summary["call_type"] == "commit"]
    page.shown["Whose calls to trust"] = _headed_sheet(summary.drop(columns="call_type"))
    page.scores.value = _scores_html(
        summary.drop(columns="call_type"),
        "revmodel-value-add",
        total_rows=[i for i, (lv, k) in enumerate(zip(summary["level"], summary["key"],
                                                     strict=True)) if (lv, k) == (level, key)],
    )  # fmt: skip
    node = section.scored[(section.scored["level"] == level) & (section.scored["key"] == key)]
    weekly = valueadd.by_week(node)
    if weekly.empty:
        page.weekly.value = (
            f"<div class='revmodel-subtitle'>No scored calls of {html.escape(key)}.</div>"
        )
        return
    page.chart.show(
        plots.value_add_by_week(
            weekly, f"{'Company' if level == 'total' else key}: error of the commit calls and of "
            "the model, by week of quarter"
        )
    )  # fmt: skip
    page.weekly.value = _scores_html(weekly.drop(columns="level"), "revmodel-value-add-weeks")
    page.shown["Calls by week"] = _headed_sheet(weekly.drop(columns="level"))


def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    """The pack's number format of each column, by its heading."""
    return {
        formatting.heading(c): formatting.COLUMN_KINDS.get(str(c), "text") for c in frame.columns
    }


def _headed_sheet(frame: pd.DataFrame) -> layout.Sheet:
    return formatting.headed(frame), _kinds(frame)


def _scores_html(frame: pd.DataFrame, css: str, total_rows: Sequence[int] = ()) -> str:
    """Scored calls as a table with the headings and number formats of the plan pack
    (:func:`revmodel.formatting.heading`, :data:`revmodel.formatting.COLUMN_KINDS`)."""
    return layout.table_html(
        formatting.headed(frame), kinds=_kinds(frame), css=css, total_rows=total_rows
    )


def _currency(ctx: AppContext) -> str | None:
    return ctx.cube.attrs.get("currency")


def _refresh(page: WeeklyPage) -> None:
    if page.busy:
        return
    page.busy = True
    try:
        level = page.level.value
        keys = _keys(page.context, level)
        current = page.node.value
        page.node.options = keys
        page.node.value = current if current in keys else (keys[0] if keys else None)
        key = page.node.value or "total"
        page.shown = {}
        if page.excel is not None:
            page.excel.clear()
        _draw_changes(page, level, key)
        _draw_value_add(page, level, key)
        keep(page.context)
    finally:
        page.busy = False


def _widgets(ctx: AppContext) -> WeeklyPage:
    page = WeeklyPage(
        window=layout.dropdown("Changes", list(WINDOWS), next(iter(WINDOWS))),
        level=layout.dropdown("Level", list(LEVELS), "total"),
        node=layout.dropdown("Node", ["total"], "total"),
        waterfall=layout.FigurePane("revmodel-weekly-waterfall"),
        rows=w.HTML(),
        deals=w.HTML(),
        scores=w.HTML(),
        weekly=w.HTML(),
        chart=layout.FigurePane("revmodel-weekly-value-add"),
        message=layout.Message(),
        tabs=w.Tab(),
        context=ctx,
    )
    for name in ("window", "level", "node"):
        getattr(page, name).add_class(f"revmodel-weekly-{name}")
    page.rows.add_class("revmodel-weekly-rows")
    page.deals.add_class("revmodel-weekly-deals")
    page.scores.add_class("revmodel-weekly-scores")
    page.weekly.add_class("revmodel-weekly-weeks")
    return page


def build(ctx: AppContext | None = None) -> w.Widget:
    """The weekly forecast app.

    Parameters
    ----------
    ctx : AppContext, optional
        Data and calls (:func:`revmodel.apps.context.app_context`); default the server's.

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` is its :class:`WeeklyPage` (``window``, ``level``, ``node``,
        ``waterfall``, ``rows``, ``deals``, ``scores``, ``weekly``, ``chart``, ``excel``: the
        tables of the view as an Excel workbook).
    """
    ctx = ctx if ctx is not None and ctx.store is not None else app_context(context=ctx)
    # the scored calls follow the store: start from the shared context's data only
    ctx = replace(ctx, extra={k: v for k, v in ctx.extra.items() if k != "weekly_value_add"})
    read_kept(ctx)
    page = _widgets(ctx)
    page.excel = layout.ExcelDownload(
        lambda: f"weekly-{page.level.value}-{page.node.value or 'total'}", lambda: page.shown
    )
    for dd in (page.window, page.level, page.node):
        dd.observe(page.refresh, names="value")
    page.tabs.children = [
        w.VBox([page.waterfall, page.rows, page.deals]),
        w.VBox([page.scores, page.chart, page.weekly]),
    ]
    page.tabs.set_title(0, "What changed")
    page.tabs.set_title(1, "Whose calls to trust")
    page.tabs.add_class("revmodel-weekly-tabs")

    def redraw(change: dict) -> None:
        pane = page.waterfall if change["new"] == 0 else page.chart
        if pane.figure is not None:
            pane.show(pane.figure)

    page.tabs.observe(redraw, names="selected_index")
    app = layout.page(
        "Weekly forecast",
        "What changed in the pipeline since last week and since the quarter's start, and "
        "whose calls to trust: every past weekly commit call against what was booked, beside "
        "the in-quarter forecast made the same week.",
        [w.HBox([page.window, page.level, page.node, page.excel]), page.message, page.tabs],
        footer=f"Data: {ctx.source}.",
    )
    app.add_class("revmodel-weekly")
    _refresh(page)
    app.app = page
    return app
