"""Forecast call: a manager sees the team's numbers and submits a call per rep, or for the team.

The page shows, for the manager's team and a fiscal period, each rep's
statistical forecast (reconciled, with its 10-90% band), weighted pipeline,
quota and current calls; a form submits a ``commit`` or ``best_case`` call
with a note into the call store. After every change the roll-up of the calls
(reps who have left are not counted, and the page says so), the forecast
reconciled with the latest commit of every node locked
(:func:`~revmodel.apps.context.live_forecast`: the same forecast every app
shows), why a node nobody called moved (which locked call moved it, by how
much), and the audit log are shown again. A node can be held at its
statistical forecast.

Who may write: the signed-in user (``JUPYTERHUB_USER`` under JupyterHub) with
a grant in the team map (``parameters/team.yaml``). Without an identity the
form is disabled and says so. Every value from the browser goes through the
store's validation (type, range, open period, the user's team, commit at most
the best case); the store's message is shown as is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as w
import numpy as np
import pandas as pd
import xarray as xr

from revmodel import sections
from revmodel.apps import explorer, layout
from revmodel.apps.context import (
    AppContext,
    LiveForecast,
    app_context,
    live_forecast,
    period_total,
    period_totals,
    with_live_forecast,
)
from revmodel.errors import RevmodelError
from revmodel.overrides import COMPANY

__all__ = [
    "SIGN_IN",
    "audit_frame",
    "build",
    "explain_moves",
    "reconciled_team",
    "team_band",
    "team_frame",
    "team_reps",
]

#: Shown, and the form disabled, when the server gave the kernel no user.
SIGN_IN = "Sign in to submit a forecast call: no authenticated user."
CALL_LABELS = {"commit": "Commit", "best_case": "Best case"}
#: A node moved by less than this share of its statistical forecast is not explained [ratio].
MOVE_TOLERANCE = 0.01
#: Locks whose separate effect is measured, largest deviations first (one reconciliation each).
MAX_EXPLAINED_LOCKS = 12


def _team(ctx: AppContext, manager: str) -> tuple[list[str], list[str]]:
    """A manager's reps still employed after ``as_of``, and those who have left (kept)."""
    key = ("team_members", manager)
    if key not in ctx.extra:
        reps = np.asarray(ctx.cube["rep"].values).astype(str)
        mgr = np.asarray(ctx.cube["manager"].values).astype(str)
        gone = set(ctx.leavers())
        mine = reps[mgr == manager].tolist()
        ctx.extra[key] = (
            sorted(r for r in mine if r not in gone),
            sorted(r for r in mine if r in gone),
        )
    return ctx.extra[key]


def team_reps(ctx: AppContext, manager: str) -> list[str]:
    """Reps of a manager employed after ``as_of`` (those who can still close deals)."""
    return list(_team(ctx, manager)[0])


def team_leavers(ctx: AppContext, manager: str) -> list[str]:
    """Reps of a manager who have left: not counted in the team's roll-up."""
    return list(_team(ctx, manager)[1])


def _weighted_pipeline(ctx: AppContext, rep: str, months: np.ndarray) -> float:
    wp = ctx.weighted_pipeline
    if rep not in wp["rep"].values:
        return 0.0
    wp = wp.sel(rep=rep)
    return float(wp.isel(month=np.isin(wp["month"].values, months)).sum())


def _team_statistical(ctx: AppContext, manager: str, period: str) -> list[dict]:
    """The team's rows that do not depend on the calls, computed once per team and period."""
    key = ("team_statistical", manager, period)
    if key not in ctx.extra:
        months = ctx.period_months(period).values.astype("datetime64[ns]")
        rows = []
        for rep in team_reps(ctx, manager):
            s = explorer.summarise(ctx, explorer.Selection(period, rep=rep))
            rows.append(
                {
                    "rep": rep,
                    "name": ctx.label("rep", rep),
                    "statistical": s["landing"],
                    "bookings": s["bookings"],
                    "p10": s["p10"],
                    "p90": s["p90"],
                    "pipeline": s["pipeline"],
                    "weighted_pipeline": _weighted_pipeline(ctx, rep, months),
                    "quota": s["quota"],
                }
            )
        ctx.extra[key] = rows
    return ctx.extra[key]


def _ahead(live: AppContext, period: str) -> xr.DataArray | None:
    """The live forecast of the period's months still ahead (None when none is)."""
    months = live.period_months(period).values.astype("datetime64[ns]")
    ahead = months[months > np.datetime64(live.as_of, "ns")]
    in_fc = np.isin(live.reconciled["month"].values, ahead)
    return live.reconciled.isel(month=in_fc) if in_fc.any() else None


def _landing(
    live: AppContext, ahead: xr.DataArray | None, rep: str, period: str, bookings: float
) -> float:
    """A rep's landing on the live forecast: :func:`explorer.summarise`'s, for the one figure
    that changes with the calls (bookings to date + the forecast of the remaining months,
    ``ahead`` = :func:`_ahead`, cut once for the team)."""
    if ahead is None:
        return bookings + 0.0
    sel = explorer.Selection(period, rep=rep)
    return bookings + float(explorer._slice(ahead, live, sel).sum())  # noqa: SLF001


def team_frame(ctx: AppContext, manager: str, period: str) -> pd.DataFrame:
    """One row per rep of the team still employed, for the period [USD].

    Columns ``rep`` (id), ``name``, ``statistical`` (the coherent forecast without
    calls), ``forecast`` (reconciled with the live calls), ``p10``, ``p90``,
    ``pipeline`` (open), ``weighted_pipeline`` (expected bookings from open
    pipeline: conversion and slippage), ``quota``, ``commit`` and ``best_case``
    (current calls, NaN if none), ``called_by``. What does not depend on the
    calls is computed once per team and period; a change of calls recomputes
    only the reconciled forecast and the calls.
    """
    live = with_live_forecast(ctx, period)
    calls = ctx.calls.current_calls(period)
    calls = calls[calls["level"] == "rep"].sort_values("audit_id")
    amounts: dict[str, dict[str, float]] = {}
    last_by: dict[str, str] = {}  # the user of each rep's latest call
    for key, call_type, amount, user in zip(
        calls["key"], calls["call_type"], calls["amount"], calls["user"], strict=True
    ):
        amounts.setdefault(key, {})[call_type] = amount
        last_by[key] = user
    ahead = _ahead(live, period)
    rows = []
    for base in _team_statistical(ctx, manager, period):
        rep = base["rep"]
        amount = amounts.get(rep, {})
        who = [last_by[rep]] if rep in last_by else []
        row = {k: v for k, v in base.items() if k != "bookings"}
        row["forecast"] = _landing(live, ahead, rep, period, base["bookings"])
        rows.append(
            {
                **row,
                "commit": amount.get("commit", np.nan),
                "best_case": amount.get("best_case", np.nan),
                "called_by": who[-1] if who else "",
            }
        )
    columns = ["rep", "name", "statistical", "forecast", "p10", "p90", "pipeline",
               "weighted_pipeline", "quota", "commit", "best_case", "called_by"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- why a node moved


def _statistical(ctx: AppContext, period: str, level: str, key: str) -> float:
    """A node's statistical forecast of the period (no call locked), computed once [USD]."""
    found = ctx.extra.get(("statistical_total", period, level, key))
    if found is None:
        found = period_total(ctx, ctx.reconciled, period, level, key)
        ctx.extra[("statistical_total", period, level, key)] = found
    return found


def _lock_effects(ctx: AppContext, live: LiveForecast) -> dict[tuple[str, str], object]:
    """Each lock's own effect on the reconciled forecast, cached by store version.

    With the set of locked nodes fixed the reconciliation is linear in the
    locked values, so a lock's effect is the forecast with every lock minus
    the forecast with that lock set back to its statistical value.
    """
    key = ("effects", live.period, live.version, live.held, ctx.calls.url)
    if key in ctx.extra:
        return ctx.extra[key]
    base = {node: _statistical(ctx, live.period, *node) for node in live.locked}
    ranked = sorted(live.locked, key=lambda n: -abs(live.locked[n] - base[n]))
    # The forecast without one lock depends on the other locks only: a call that changes
    # one node's amount leaves that node's own counterfactual as it was (kept from the
    # last redraw of the period, so the next call reconciles one forecast fewer).
    kept_key = ("effects_without", live.period, ctx.calls.url)
    kept = ctx.extra.get(kept_key, {})
    used, effects = {}, {}
    for node in ranked[:MAX_EXPLAINED_LOCKS]:
        if abs(live.locked[node] - base[node]) < 1e-6:
            continue
        without = tuple(sorted({**live.locked, node: base[node]}.items()))
        rec = kept.get(without)
        if rec is None:
            rec, _ = ctx.reconcile_with_calls(dict(without), live.period)
        used[without] = rec
        effects[node] = live.reconciled - rec
    ctx.extra[kept_key] = used
    for old in [k for k in ctx.extra if isinstance(k, tuple) and k[:2] == ("effects", live.period)]:
        del ctx.extra[old]  # of an earlier version of the calls
    ctx.extra[key] = effects
    return effects


def _node_name(ctx: AppContext, level: str, key: str) -> str:
    return {"manager": f"team {key}", "region": f"region {key}", "total": "the company"}.get(
        level, ctx.label(level, key)
    )


def explain_moves(
    ctx: AppContext, period: str, nodes: list[tuple[str, str]], hold: tuple = ()
) -> pd.DataFrame:
    """Why nodes without a call of their own moved from their statistical forecast.

    Returns
    -------
    pandas.DataFrame
        One row per node that moved by more than :data:`MOVE_TOLERANCE`:
        ``level``, ``key``, ``name``, ``statistical``, ``reconciled``, ``change``
        [USD], ``change_pct`` [ratio] and ``why`` (the locked calls that moved
        it, largest first, with their share of the change).
    """
    live = live_forecast(ctx, period, hold)
    free = [node for node in nodes if node not in live.locked]
    nows = dict(zip(free, period_totals(ctx, live.reconciled, period, free), strict=True))
    moved_nodes = []
    for node in free:
        stat = _statistical(ctx, period, *node)
        if abs(nows[node] - stat) > MOVE_TOLERANCE * max(abs(stat), 1.0):
            moved_nodes.append(node)
    effects = _lock_effects(ctx, live) if moved_nodes else {}
    by_lock = {
        lock: dict(zip(moved_nodes, period_totals(ctx, effect, period, moved_nodes), strict=True))
        for lock, effect in effects.items()
    }
    rows = []
    for level, key in moved_nodes:
        stat = _statistical(ctx, period, level, key)
        now = nows[(level, key)]
        change = now - stat
        parts = []
        for lock in effects:
            moved = by_lock[lock][(level, key)]
            if abs(moved) > 0.05 * abs(change):
                parts.append((moved, lock))
        parts.sort(key=lambda p: -abs(p[0]))
        why = "; ".join(
            f"the commit on {_node_name(ctx, lv, k)} ({m:+,.0f} USD)" for m, (lv, k) in parts
        )
        rows.append(
            {
                "level": level,
                "key": key,
                "name": ctx.label(level, key),
                "statistical": stat,
                "reconciled": now,
                "change": change,
                "change_pct": change / stat if stat else np.nan,
                "why": why or "the locked calls together",
            }
        )
    cols = ["level", "key", "name", "statistical", "reconciled", "change", "change_pct", "why"]
    return pd.DataFrame(rows, columns=cols)


def reconciled_team(
    ctx: AppContext, manager: str, period: str, hold: tuple = ()
) -> tuple[pd.DataFrame, list[str]]:
    """The team's forecast reconciled with the period's commits locked [USD].

    Returns
    -------
    (pandas.DataFrame, list of str)
        Rows per rep still employed then ``Team <manager>``, region and
        ``Company`` totals: ``name``, ``statistical`` (no call locked), ``commit``
        (the call), ``reconciled`` (commits locked, the rest adjusted so every
        level adds up); and notes on calls that could not be locked.
    """
    live = live_forecast(ctx, period, hold)
    region = ctx.calls.team_map.manager_region.get(manager) if ctx.calls.team_map else None
    nodes = [("rep", r) for r in team_reps(ctx, manager)] + [("manager", manager)]
    if region:
        nodes.append(("region", region))
    nodes.append(("total", COMPANY))
    reconciled = period_totals(ctx, live.reconciled, period, nodes)
    rows = []
    for (level, key), now in zip(nodes, reconciled, strict=True):
        name = {"manager": f"Team {key}", "region": f"Region {key}", "total": "Company"}.get(
            level, ctx.label(level, key)
        )
        rows.append(
            {
                "name": name,
                "statistical": _statistical(ctx, period, level, key),
                "commit": live.locked.get((level, key), np.nan),
                "reconciled": now,
            }
        )
    return pd.DataFrame(rows), live.notes


def audit_frame(ctx: AppContext, manager: str, period: str, reps: list[str]) -> pd.DataFrame:
    """The audit log of the team's calls in the period, newest first."""
    log = ctx.calls.audit(period)
    log = log[log["key"].isin([*reps, manager])]
    log = log.sort_values("id", ascending=False)
    out = pd.DataFrame(
        {
            "when (UTC)": log["at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "user": log["user"],
            "action": log["action"],
            "node": [ctx.label(lv, k) for lv, k in zip(log["level"], log["key"], strict=True)],
            "call": log["call_type"].map(CALL_LABELS).fillna(log["call_type"]),
            "old": log["old_value"],
            "new": log["new_value"],
            "note": log["note"],
        }
    )
    return out.reset_index(drop=True)


def writable_managers(ctx: AppContext) -> list[str]:
    """Teams the page offers: the signed-in manager's own, a region's, or all."""
    tm = ctx.calls.team_map
    managers = [m for m in tm.managers if m != "(unassigned)"]
    if ctx.identity is None:
        return managers
    grant = tm.grant(ctx.identity.user)
    if grant is None:
        return managers
    if grant.role == "manager":
        return [grant.scope] if grant.scope in managers else managers
    if grant.role == "region":
        return [m for m in managers if tm.manager_region.get(m) == grant.scope] or managers
    return managers


# --------------------------------------------------------------------------- widgets


@dataclass
class CallPage:
    """The forecast-call page's widgets (``app.app``), and its session state."""

    manager: w.Dropdown
    period: w.Dropdown
    who: w.HTML
    rep: w.Dropdown
    call_type: w.ToggleButtons
    amount: w.Text
    note: w.Textarea
    submit: w.Button
    withdraw: w.Button
    hold: w.Checkbox
    message: layout.Message
    admin: w.HBox
    period_state: w.HTML
    team: w.HTML
    rollup: w.HTML
    moves: w.HTML
    audit: w.HTML
    context: AppContext
    held: set = field(default_factory=set)
    excel: layout.ExcelDownload | None = None
    #: The tables shown (team, roll-up, reconciled, calls), as written to Excel.
    shown: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def identity(self):  # noqa: ANN201 - Identity | None
        return self.context.identity

    @property
    def store(self):  # noqa: ANN201 - OverrideStore
        return self.context.calls

    def refresh(self, _change: object = None) -> None:
        """Read the calls again and redraw every table."""
        _refresh(self)


def _identity_html(ctx: AppContext) -> str:
    grant = ctx.calls.team_map.grant(ctx.user) if ctx.user else None
    if ctx.identity is None:
        return f"<div class='revmodel-message info'>{html.escape(SIGN_IN)}</div>"
    if grant is None:
        return (
            f"<div class='revmodel-message error'>Signed in as {html.escape(ctx.user)}, who has "
            "no team in the team map: ask an admin to add you. You can look, not submit.</div>"
        )
    return (
        f"<div class='revmodel-message info'>Signed in as <b>{html.escape(ctx.user)}</b>: "
        f"writes for {html.escape(grant.describe())}.</div>"
    )


def _widgets(ctx: AppContext) -> CallPage:
    """Every widget of the page, unwired."""
    store = ctx.calls
    managers = writable_managers(ctx)
    open_now = store.open_periods()
    periods = sorted(set(open_now) | {ctx.cycle})
    default_period = open_now[0] if open_now else ctx.cycle

    def html_box(css: str, value: str = "") -> w.HTML:
        box = w.HTML(value)
        box.add_class(css)
        return box

    page = CallPage(
        manager=layout.dropdown("Team of", managers, managers[0] if managers else None, "260px"),
        period=layout.dropdown("Fiscal period", periods, default_period, "200px"),
        who=html_box("revmodel-identity", _identity_html(ctx)),
        rep=layout.dropdown("Call for", [], None, "280px"),
        call_type=w.ToggleButtons(
            options=[("Commit", "commit"), ("Best case", "best_case")],
            value="commit",
            style={"button_width": "90px"},
        ),
        amount=w.Text(
            description="Amount (USD)",
            placeholder="e.g. 125000",
            style={"description_width": "initial"},
            layout=w.Layout(width="240px"),
        ),
        note=w.Textarea(
            description="Note",
            placeholder="Why: deals, risks, timing",
            style={"description_width": "initial"},
            layout=w.Layout(width="420px", height="60px"),
        ),
        submit=w.Button(description="Submit call", button_style="primary", icon="check"),
        withdraw=w.Button(description="Withdraw call", icon="undo"),
        hold=w.Checkbox(description="Hold at its statistical forecast", indent=False),
        message=layout.Message(),
        admin=w.HBox([]),
        period_state=html_box("revmodel-period-state"),
        team=layout.SectionHTML("Team", "revmodel-team"),
        rollup=layout.SectionHTML("Roll-up", "revmodel-rollup"),
        moves=layout.SectionHTML("Moved by the calls", "revmodel-moves"),
        audit=layout.SectionHTML("History of calls", "revmodel-audit"),
        context=ctx,
    )
    page.manager.disabled = len(managers) <= 1
    for widget, css in (
        (page.manager, "manager"), (page.period, "period"), (page.rep, "rep"),
        (page.call_type, "type"), (page.amount, "amount"), (page.note, "note"),
        (page.submit, "submit"), (page.withdraw, "withdraw"), (page.hold, "hold"),
        (page.message, "message"),
    ):  # fmt: skip
        widget.add_class(f"revmodel-call-{css}")
    grant = store.team_map.grant(ctx.user) if ctx.user else None
    for item in (page.call_type, page.amount, page.note, page.submit, page.withdraw):
        item.disabled = grant is None
    if ctx.identity is None:
        page.message.show(SIGN_IN, "info")
    if grant is not None and grant.role == "admin":
        opener = w.Button(description="Open period for calls", icon="unlock")
        closer = w.Button(description="Close period", icon="lock")
        opener.add_class("revmodel-period-open")
        closer.add_class("revmodel-period-close")
        page.admin.children = [opener, closer]
    return page


def _layout(ctx: AppContext, page: CallPage) -> w.VBox:
    """Arrange the widgets on the page."""
    form = w.VBox(
        [
            w.HBox([page.rep, page.call_type, page.amount]),
            page.note,
            w.HBox([page.submit, page.withdraw, page.hold]),
            page.message,
        ]
    )
    form.add_class("revmodel-call-form")
    app = layout.page(
        "Forecast call",
        f"Submit commit and best-case calls per rep or for the team. Actuals to "
        f"{ctx.as_of:%B %Y}; the statistical forecast is reconciled across the hierarchy with the "
        "latest commit of every node kept exactly; weighted pipeline = the open deals' expected "
        "bookings, by conversion rates for their segment and age and their likely slippage.",
        [
            page.who,
            w.HBox([page.manager, page.period, page.admin]),
            page.period_state,
            page.team,
            layout.section("Submit a call", form),
            page.rollup,
            page.moves,
            page.audit,
            page.excel,
        ],
        footer=f"Data: {ctx.source}. Calls: {ctx.calls!r}.",
    )
    app.add_class("revmodel-forecast-call")
    return app


# --------------------------------------------------------------------------- drawing

TEAM_COLUMNS = {
    "name": "rep",
    "statistical": "statistical forecast",
    "forecast": "reconciled with calls",
    "p10": "p10",
    "p90": "p90",
    "pipeline": "pipeline",
    "weighted_pipeline": "weighted pipeline",
    "quota": "quota",
    "commit": "commit",
    "best_case": "best case",
    "called_by": "last call by",
}


TEAM_KINDS = {v: "money" for k, v in TEAM_COLUMNS.items() if k not in ("name", "called_by")}
ROLLUP_KINDS = {
    "own commit": "usd",
    "own best case": "usd",
    "sum of commits": "usd",
    "sum of best cases": "usd",
    "reps": "int",
    "reps with commit": "int",
    "reps without commit": "int",
}
RECONCILED_KINDS = {"statistical": "usd", "commit": "usd", "reconciled": "usd"}
AUDIT_KINDS = {"old": "usd", "new": "usd"}


def _draw_team(page: CallPage, mgr: str, per: str) -> None:
    ctx = page.context
    if not ctx.rep_known:  # no team to call for: the company's own call only
        why = f"Calls by rep and team: not provided — {sections.NO_REP}."
        page.team.show(f"<div class='revmodel-message info'>{html.escape(why)}</div>")
        return
    frame = team_frame(ctx, mgr, per).drop(columns="rep", errors="ignore")
    if len(frame):
        sums = {c: frame[c].sum(min_count=1) for c in frame.columns if c not in ("name", "called_by")}  # fmt: skip
        p10, p90 = team_band(ctx, mgr, per)
        total = {"name": "Team", **sums, "called_by": "", "p10": p10, "p90": p90}
        frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    shown = frame.rename(columns=TEAM_COLUMNS)
    page.shown["team"] = shown
    page.team.show(
        layout.table_html(
            shown,
            kinds=TEAM_KINDS,
            css="revmodel-team-table",
            total_rows=[len(shown) - 1] if len(frame) else [],
        )
    )


def team_band(ctx: AppContext, manager: str, period: str) -> tuple[float, float]:
    """The team's 10-90% band of the period [USD]: the explorer's for the manager (quantiles
    of the team's coherent paths added up, never the reps' bands added), computed once per
    team and period, as the reps' own."""
    key = ("team_band", manager, period)
    if key not in ctx.extra:
        s = explorer.summarise(ctx, explorer.Selection(period, manager=manager))
        ctx.extra[key] = (s["p10"], s["p90"])
    return ctx.extra[key]


def _draw_rollup(page: CallPage, mgr: str, per: str) -> None:
    ctx = page.context
    tm = ctx.calls.team_map
    region = tm.manager_region.get(mgr)
    roll = ctx.calls.rollup(per)
    grant = tm.grant(ctx.user) if ctx.user else None
    if grant is None or grant.role not in ("vp", "admin"):  # a VP sees every team side by side
        roll = roll[
            ((roll["level"] == "manager") & (roll["key"] == mgr))
            | ((roll["level"] == "region") & (roll["key"] == region))
            | (roll["level"] == "total")
        ]
    roll = roll[["level", "key", "call_commit", "call_best_case", "commit", "best_case", "reps", "reps_with_commit", "reps_without_commit"]]  # fmt: skip
    roll = roll.rename(
        columns={
            "key": "node",
            "call_commit": "own commit",
            "call_best_case": "own best case",
            "commit": "sum of commits",
            "best_case": "sum of best cases",
            "reps_with_commit": "reps with commit",
            "reps_without_commit": "reps without commit",
        }
    )
    gone = team_leavers(ctx, mgr)
    left = (
        f"<div class='revmodel-message info revmodel-leavers'>Not counted: {len(gone)} rep"
        f"{'s' if len(gone) != 1 else ''} of the team who left "
        f"({html.escape(', '.join(ctx.label('rep', r) for r in gone))}).</div>"
        if gone
        else ""
    )
    rec, notes = reconciled_team(ctx, mgr, per, tuple(sorted(page.held)))
    note_html = "".join(f"<div class='revmodel-message info'>{html.escape(n)}</div>" for n in notes)
    page.shown["rollup"], page.shown["reconciled"] = roll, rec
    page.rollup.show(
        layout.table_html(roll, kinds=ROLLUP_KINDS, css="revmodel-rollup-table")
        + left
        + "<div class='revmodel-subtitle'>Forecast reconciled with the commits locked "
        f"({html.escape(ctx.reconcile_method)}): the calls are kept exactly, the rest of the "
        "hierarchy adjusts so every level adds up.</div>"
        + layout.table_html(
            rec,
            kinds=RECONCILED_KINDS,
            css="revmodel-reconciled-table",
            total_rows=list(range(len(rec) - (3 if region else 2), len(rec))),
        )
        + note_html
    )


def _draw_moves(page: CallPage, mgr: str, per: str) -> None:
    ctx = page.context
    nodes = [("rep", r) for r in team_reps(ctx, mgr)] + [("manager", mgr)]
    moves = explain_moves(ctx, per, nodes, tuple(sorted(page.held)))
    if not len(moves):
        page.moves.show(
            "<div class='revmodel-subtitle'>No node of this team without a call of its own moved "
            f"by more than {MOVE_TOLERANCE:.0%} from its statistical forecast.</div>"
        )
        return
    lines = [
        f"<li class='revmodel-move' data-node='{html.escape(r.key)}'>{html.escape(r.name)} "
        f"moved {r.change:+,.0f} USD ({r.change_pct:+.0%}) from its statistical forecast of "
        f"{r.statistical:,.0f} USD, with no call of its own: {html.escape(r.why)}.</li>"
        for r in moves.itertuples()
    ]
    page.moves.show(
        f"<ul>{''.join(lines)}</ul><div class='revmodel-subtitle'>To keep a node at its "
        "statistical forecast, pick it under Submit a call and tick Hold.</div>"
    )


def _draw_audit(page: CallPage, mgr: str, per: str) -> None:
    log = audit_frame(page.context, mgr, per, team_reps(page.context, mgr))
    page.shown["audit"] = log
    page.audit.show(
        layout.table_html(log, kinds=AUDIT_KINDS, css="revmodel-audit-table", max_rows=50)
        if len(log)
        else "<div class='revmodel-subtitle'>No calls yet for this team and period.</div>"
    )


def _refresh(page: CallPage) -> None:
    ctx = page.context
    mgr, per = str(page.manager.value), str(page.period.value)
    reps = team_reps(ctx, mgr)
    options = [(f"Team {mgr} (the team's own call)", f"manager:{mgr}")] + [
        (ctx.label("rep", r), f"rep:{r}") for r in reps
    ]
    tm = ctx.calls.team_map
    region = tm.manager_region.get(mgr)
    if region and tm.can_write(ctx.identity, "region", region):
        options.insert(0, (f"Region {region} (the region's own call)", f"region:{region}"))
    if tm.can_write(ctx.identity, "total", COMPANY):
        options.insert(0, ("Company (the company's own call)", f"total:{COMPANY}"))
    current = page.rep.value
    if list(page.rep.options) != options:  # unchanged after a call: nothing sent again
        page.rep.options = options
    values = [v for _, v in options]
    first_rep = next((v for v in values if v.startswith("rep:")), values[0])
    page.rep.value = current if current in values else first_rep
    is_open = ctx.calls.is_open(per)
    page.period_state.value = (
        f"<div class='revmodel-message {'ok' if is_open else 'error'}'>{html.escape(per)} is "
        f"{'open' if is_open else 'closed'} for forecast calls"
        f"{'' if is_open else ': ask an admin to open it'}.</div>"
    )
    _draw_team(page, mgr, per)
    _draw_rollup(page, mgr, per)
    _draw_moves(page, mgr, per)
    _draw_audit(page, mgr, per)
    if page.excel is not None:
        page.excel.clear()


# --------------------------------------------------------------------------- callbacks


def _node(page: CallPage) -> tuple[str, str]:
    level, _, key = str(page.rep.value or "rep:").partition(":")
    return level, key


def _on_submit(page: CallPage) -> None:
    level, key = _node(page)
    try:
        row = page.store.submit(
            page.identity,
            key,
            page.period.value,
            page.call_type.value,
            page.amount.value,
            page.note.value,
            level=level,
        )
    except RevmodelError as exc:
        page.message.show(str(exc), "error")
        return
    old = "none" if row.old_value is None else f"{row.old_value:,.0f} USD"
    page.amount.value = ""
    page.note.value = ""
    page.refresh()  # the tables first, so the message appears with them
    page.message.show(
        f"Saved: {CALL_LABELS[row.call_type].lower()} of {row.new_value:,.0f} USD for "
        f"{page.context.label(level, key)} in {row.period} (was {old}).",
        "ok",
    )


def _on_withdraw(page: CallPage) -> None:
    level, key = _node(page)
    try:
        row = page.store.withdraw(
            page.identity,
            key,
            page.period.value,
            page.call_type.value,
            page.note.value,
            level=level,
        )
    except RevmodelError as exc:
        page.message.show(str(exc), "error")
        return
    page.refresh()
    page.message.show(
        f"Withdrawn: the {CALL_LABELS[row.call_type].lower()} call for "
        f"{page.context.label(level, key)} in {row.period} (was {row.old_value:,.0f} USD).",
        "ok",
    )


def _on_period_admin(page: CallPage, is_open: bool) -> None:
    per = str(page.period.value)
    try:
        if is_open:
            page.store.open_period(per, page.identity)
        else:
            page.store.close_period(per, page.identity)
    except RevmodelError as exc:
        page.message.show(str(exc), "error")
        return
    page.refresh()
    page.message.show(f"{per} is {'open' if is_open else 'closed'} for forecast calls.", "ok")


def _on_hold(page: CallPage, change: dict) -> None:
    node = _node(page)
    if change["new"]:
        page.held.add(node)
    else:
        page.held.discard(node)
    page.refresh()


def _on_node(page: CallPage) -> None:
    page.hold.unobserve_all()
    page.hold.value = _node(page) in page.held
    page.hold.observe(lambda change: _on_hold(page, change), names="value")


def _wire(page: CallPage) -> None:
    """Connect the callbacks."""
    page.submit.on_click(lambda _b: _on_submit(page))
    page.withdraw.on_click(lambda _b: _on_withdraw(page))
    if page.admin.children:
        opener, closer = page.admin.children
        opener.on_click(lambda _b: _on_period_admin(page, True))
        closer.on_click(lambda _b: _on_period_admin(page, False))
    page.manager.observe(page.refresh, names="value")
    page.period.observe(page.refresh, names="value")
    page.rep.observe(lambda _c: _on_node(page), names="value")
    page.hold.observe(lambda change: _on_hold(page, change), names="value")


def _excel_sheets(page: CallPage) -> dict[str, layout.Sheet]:
    """The page's tables as shown: team, roll-up, reconciled forecast and the calls' history."""
    return {
        "Team": (page.shown["team"], TEAM_KINDS),
        "Roll-up": (page.shown["rollup"], ROLLUP_KINDS),
        "Reconciled": (page.shown["reconciled"], RECONCILED_KINDS),
        "Calls": (page.shown["audit"], AUDIT_KINDS),
    }


def _excel_name(page: CallPage) -> str:
    return f"forecast-call-{page.manager.value}-{page.period.value}"


def build(ctx: AppContext | None = None) -> w.Widget:
    """The forecast-call app.

    Parameters
    ----------
    ctx : AppContext, optional
        Data, forecasts, plan, calls and the signed-in user
        (:func:`revmodel.apps.context.app_context`); default the server's.

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` is its :class:`CallPage`.
    """
    ctx = ctx if ctx is not None and ctx.store is not None else app_context(context=ctx)
    page = _widgets(ctx)
    page.excel = layout.ExcelDownload(lambda: _excel_name(page), lambda: _excel_sheets(page))
    _wire(page)
    page.refresh()
    app = _layout(ctx, page)
    app.app = page
    return app
