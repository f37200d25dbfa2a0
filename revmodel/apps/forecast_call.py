"""Forecast call: a manager sees the team's numbers and submits a call per rep and period.

The page shows, for the manager's team and a fiscal period, each rep's
statistical forecast (reconciled, with its 10-90% band), weighted pipeline,
quota and current calls; a form submits a ``commit`` or ``best_case`` call
with a note into the :class:`~revmodel.overrides.OverrideStore`. After every
change the team roll-up of the calls, the forecast reconciled with the commits
locked (:meth:`~revmodel.apps.context.AppContext.reconcile_with_calls`) and
the audit log (who changed what, old and new value) are shown again.

Who may write: the signed-in user (``JUPYTERHUB_USER`` under JupyterHub, or
``REVMODEL_USER`` for a configured deployment) with a grant in the team map
(``REVMODEL_TEAM_MAP`` or ``parameters/team.yaml``). Without an identity the
form is disabled and says so. Every value from the browser goes through
:func:`revmodel.overrides.validate_call` (type, range, open period, the
user's team); the store's message is shown as is.
"""

from __future__ import annotations

import html
from dataclasses import replace

import ipywidgets as w
import numpy as np
import pandas as pd
import xarray as xr

from revmodel.apps import explorer, layout
from revmodel.apps.context import AppContext, load_context, open_store
from revmodel.errors import RevmodelError
from revmodel.overrides import Identity, OverrideStore

__all__ = ["SIGN_IN", "audit_frame", "build", "reconciled_team", "team_frame"]

#: Shown, and the form disabled, when the server gave the kernel no user.
SIGN_IN = "Sign in to submit a forecast call: no authenticated user."
CALL_LABELS = {"commit": "Commit", "best_case": "Best case"}


def team_reps(ctx: AppContext, manager: str) -> list[str]:
    """Reps of a manager employed after ``as_of`` (those who can still close deals)."""
    cube = ctx.cube
    reps = np.asarray(cube["rep"].values).astype(str)
    mgr = np.asarray(cube["manager"].values).astype(str)
    ok = mgr == manager
    if "end_date" in cube.coords:
        end = pd.DatetimeIndex(cube["end_date"].values)
        ok &= np.asarray(end.isna() | (end > ctx.as_of))
    return sorted(reps[ok].tolist())


def _weighted_pipeline(ctx: AppContext, rep: str, months: np.ndarray) -> float:
    wp = ctx.weighted_pipeline
    if rep not in wp["rep"].values:
        return 0.0
    wp = wp.sel(rep=rep)
    return float(wp.isel(month=np.isin(wp["month"].values, months)).sum())


def team_frame(ctx: AppContext, store: OverrideStore, manager: str, period: str) -> pd.DataFrame:
    """One row per rep of the team for the period [USD].

    Columns ``rep``, ``forecast`` (reconciled statistical), ``p10``, ``p90``,
    ``pipeline`` (open), ``weighted_pipeline`` (expected bookings from open pipeline: conversion and slippage),
    ``quota``, ``commit`` and ``best_case`` (current calls, NaN if none),
    ``called_by``.
    """
    months = ctx.period_months(period).values.astype("datetime64[ns]")
    calls = store.current_calls(period)
    calls = calls[calls["level"] == "rep"]
    rows = []
    for rep in team_reps(ctx, manager):
        s = explorer.summarise(ctx, explorer.Selection(period, rep=rep))
        mine = calls[calls["key"] == rep]
        amount = dict(zip(mine["call_type"], mine["amount"], strict=True))
        who = mine.sort_values("audit_id")["user"].tolist()
        rows.append(
            {
                "rep": rep,
                "forecast": s["landing"],
                "p10": s["p10"],
                "p90": s["p90"],
                "pipeline": s["pipeline"],
                "weighted_pipeline": _weighted_pipeline(ctx, rep, months),
                "quota": s["quota"],
                "commit": amount.get("commit", np.nan),
                "best_case": amount.get("best_case", np.nan),
                "called_by": who[-1] if who else "",
            }
        )
    return pd.DataFrame(rows)


def reconciled_team(
    ctx: AppContext, store: OverrideStore, manager: str, period: str
) -> tuple[pd.DataFrame, list[str]]:
    """The team's forecast reconciled with the period's commits locked [USD].

    Returns
    -------
    (pandas.DataFrame, list of str)
        Rows per rep then ``Team <manager>``, region and ``Company`` totals:
        ``name``, ``statistical`` (no call locked), ``commit`` (the call),
        ``reconciled`` (commits locked, the rest adjusted so every level adds up);
        and notes on calls that could not be locked.
    """
    locked = store.locked_nodes(period, "commit")
    rec, notes = ctx.reconcile_with_calls(locked, period)
    months = ctx.period_months(period).values.astype("datetime64[ns]")

    def period_total(da: xr.DataArray, sel: explorer.Selection) -> float:
        da = da.isel(month=np.isin(da["month"].values, months))
        return float(explorer._slice(da, ctx, sel).sum())

    region = store.team_map.manager_region.get(manager) if store.team_map else None
    rows = []
    base = explorer.Selection(period)
    for rep in team_reps(ctx, manager):
        sel = replace(base, rep=rep)
        rows.append(
            {
                "name": rep,
                "statistical": period_total(ctx.reconciled, sel),
                "commit": locked.get(("rep", rep), np.nan),
                "reconciled": period_total(rec, sel),
            }
        )
    team_sel = replace(base, manager=manager)
    reps_commit = [locked[("rep", r)] for r in team_reps(ctx, manager) if ("rep", r) in locked]
    rows.append(
        {
            "name": f"Team {manager}",
            "statistical": period_total(ctx.reconciled, team_sel),
            "commit": locked.get(
                ("manager", manager), float(np.sum(reps_commit)) if reps_commit else np.nan
            ),
            "reconciled": period_total(rec, team_sel),
        }
    )
    if region:
        reg_sel = replace(base, region=region)
        rows.append(
            {
                "name": f"Region {region}",
                "statistical": period_total(ctx.reconciled, reg_sel),
                "commit": locked.get(("region", region), np.nan),
                "reconciled": period_total(rec, reg_sel),
            }
        )
    rows.append(
        {
            "name": "Company",
            "statistical": period_total(ctx.reconciled, base),
            "commit": np.nan,
            "reconciled": period_total(rec, base),
        }
    )
    return pd.DataFrame(rows), notes


def audit_frame(store: OverrideStore, manager: str, period: str, reps: list[str]) -> pd.DataFrame:
    """The audit log of the team's calls in the period, newest first."""
    log = store.audit(period)
    log = log[log["key"].isin([*reps, manager])]
    log = log.sort_values("id", ascending=False)
    out = pd.DataFrame(
        {
            "when (UTC)": log["at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "user": log["user"],
            "action": log["action"],
            "rep": log["key"],
            "call": log["call_type"].map(CALL_LABELS).fillna(log["call_type"]),
            "old": log["old_value"],
            "new": log["new_value"],
            "note": log["note"],
        }
    )
    return out.reset_index(drop=True)


def _writable_managers(store: OverrideStore, identity: Identity | None) -> list[str]:
    tm = store.team_map
    managers = [m for m in tm.managers if m != "(unassigned)"]
    if identity is None:
        return managers
    grant = tm.grant(identity.user)
    if grant is None:
        return managers
    if grant.role == "manager":
        return [grant.scope] if grant.scope in managers else managers
    if grant.role == "region":
        return [m for m in managers if tm.manager_region.get(m) == grant.scope] or managers
    return managers


def build(
    data_dir: str | None = None,
    cube: xr.Dataset | None = None,
    store_url: str | None = None,
    user: str | None = None,
    context: AppContext | None = None,
) -> w.Widget:
    """The forecast-call app.

    Parameters
    ----------
    data_dir, cube
        Data of the apps (see :func:`revmodel.apps.context.load_context`).
    store_url : str, optional
        The call store's SQLAlchemy URL; default ``REVMODEL_OVERRIDES_URL`` or the SQLite file.
    user : str, optional
        The signed-in user; default :meth:`Identity.from_environment`.
    context : AppContext, optional
        A context already built (tests).

    Returns
    -------
    ipywidgets.Widget
        The page; ``.app`` holds ``manager``, ``period``, ``rep``, ``call_type``,
        ``amount``, ``note``, ``submit``, ``withdraw``, ``message``, ``team``,
        ``rollup``, ``audit``, ``store`` and ``refresh()``.
    """
    ctx = context or load_context(data_dir=data_dir, cube=cube)
    store = open_store(ctx, store_url)
    identity = Identity(user.strip()) if user and user.strip() else Identity.from_environment()
    tm = store.team_map
    grant = tm.grant(identity.user) if identity is not None else None

    managers = _writable_managers(store, identity)
    open_now = store.open_periods()
    period_options = sorted(set(open_now) | {ctx.cycle})
    default_period = open_now[0] if open_now else ctx.cycle
    manager = layout.dropdown("Team of", managers, managers[0] if managers else None, "260px")
    manager.disabled = len(managers) <= 1
    period = layout.dropdown("Fiscal period", period_options, default_period, "200px")
    manager.add_class("revmodel-call-manager")
    period.add_class("revmodel-call-period")

    who = w.HTML()
    who.add_class("revmodel-identity")
    if identity is None:
        who.value = f"<div class='revmodel-message info'>{html.escape(SIGN_IN)}</div>"
    elif grant is None:
        who.value = (
            f"<div class='revmodel-message error'>Signed in as {html.escape(identity.user)}, who has "
            "no team in the team map: ask an admin to add you. You can look, not submit.</div>"
        )
    else:
        who.value = (
            f"<div class='revmodel-message info'>Signed in as <b>{html.escape(identity.user)}</b>: "
            f"writes for {html.escape(grant.describe())}.</div>"
        )

    rep = layout.dropdown("Rep", [], None, "170px")
    rep.add_class("revmodel-call-rep")
    call_type = w.ToggleButtons(
        options=[("Commit", "commit"), ("Best case", "best_case")],
        value="commit",
        style={"button_width": "90px"},
    )
    call_type.add_class("revmodel-call-type")
    amount = w.Text(
        description="Amount (USD)",
        placeholder="e.g. 125000",
        style={"description_width": "initial"},
        layout=w.Layout(width="240px"),
    )
    amount.add_class("revmodel-call-amount")
    note = w.Textarea(
        description="Note",
        placeholder="Why: deals, risks, timing",
        style={"description_width": "initial"},
        layout=w.Layout(width="420px", height="60px"),
    )
    note.add_class("revmodel-call-note")
    submit = w.Button(description="Submit call", button_style="primary", icon="check")
    submit.add_class("revmodel-call-submit")
    withdraw = w.Button(description="Withdraw call", icon="undo")
    withdraw.add_class("revmodel-call-withdraw")
    message = layout.Message()
    message.add_class("revmodel-call-message")
    can_write = identity is not None and grant is not None
    for item in (rep, call_type, amount, note, submit, withdraw):
        item.disabled = not can_write
    if identity is None:
        message.show(SIGN_IN, "info")

    admin_box = w.HBox([])
    if grant is not None and grant.role == "admin":
        open_btn = w.Button(description="Open period for calls", icon="unlock")
        close_btn = w.Button(description="Close period", icon="lock")
        open_btn.add_class("revmodel-period-open")
        close_btn.add_class("revmodel-period-close")

        def set_period(is_open: bool) -> None:
            try:
                if is_open:
                    store.open_period(str(period.value), identity)
                else:
                    store.close_period(str(period.value), identity)
            except RevmodelError as exc:
                message.show(str(exc), "error")
                return
            state = "open" if is_open else "closed"
            message.show(f"{period.value} is {state} for forecast calls.", "ok")
            refresh()

        open_btn.on_click(lambda _b: set_period(True))
        close_btn.on_click(lambda _b: set_period(False))
        admin_box.children = [open_btn, close_btn]

    team = w.HTML()
    team.add_class("revmodel-team")
    rollup = w.HTML()
    rollup.add_class("revmodel-rollup")
    audit = w.HTML()
    audit.add_class("revmodel-audit")
    period_state = w.HTML()
    period_state.add_class("revmodel-period-state")

    def refresh(_change: object = None) -> None:
        mgr, per = str(manager.value), str(period.value)
        reps = team_reps(ctx, mgr)
        current_rep = rep.value
        rep.options = reps
        if reps:
            rep.value = current_rep if current_rep in reps else reps[0]
        is_open = store.is_open(per)
        period_state.value = (
            f"<div class='revmodel-message {'ok' if is_open else 'error'}'>{html.escape(per)} is "
            f"{'open' if is_open else 'closed'} for forecast calls"
            f"{'' if is_open else ': ask an admin to open it'}.</div>"
        )
        frame = team_frame(ctx, store, mgr, per)
        if len(frame):
            total = {"rep": "Team", **{c: frame[c].sum(min_count=1) for c in frame.columns if c not in ("rep", "called_by")}, "called_by": ""}  # fmt: skip
            total["p10"] = total["p90"] = np.nan  # bands do not add up
            frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
        shown = frame.rename(
            columns={
                "forecast": "statistical forecast",
                "weighted_pipeline": "weighted pipeline",
                "best_case": "best case",
                "called_by": "last call by",
            }
        )
        team.value = layout.table_html(
            shown,
            kinds={
                k: "money"
                for k in (
                    "statistical forecast",
                    "p10",
                    "p90",
                    "pipeline",
                    "weighted pipeline",
                    "quota",
                    "commit",
                    "best case",
                )
            },  # fmt: skip
            css="revmodel-team-table",
            total_rows=[len(shown) - 1] if len(frame) else [],
        )
        rec, notes = reconciled_team(ctx, store, mgr, per)
        roll = store.rollup(per)
        region = tm.manager_region.get(mgr)
        roll = roll[
            ((roll["level"] == "manager") & (roll["key"] == mgr))
            | ((roll["level"] == "region") & (roll["key"] == region))
            | (roll["level"] == "total")
        ][
            [
                "level",
                "key",
                "commit",
                "best_case",
                "reps",
                "reps_with_commit",
                "reps_without_commit",
            ]
        ]
        roll = roll.rename(
            columns={
                "key": "node",
                "commit": "sum of commits",
                "best_case": "sum of best cases",
                "reps_with_commit": "reps with commit",
                "reps_without_commit": "reps without commit",
            }
        )
        note_html = "".join(
            f"<div class='revmodel-message info'>{html.escape(n)}</div>" for n in notes
        )
        rollup.value = (
            layout.table_html(
                roll,
                kinds={
                    "sum of commits": "usd",
                    "sum of best cases": "usd",
                    "reps": "int",
                    "reps with commit": "int",
                    "reps without commit": "int",
                },  # fmt: skip
                css="revmodel-rollup-table",
            )
            + "<div class='revmodel-subtitle'>Forecast reconciled with the commits locked "
            f"({html.escape(ctx.reconcile_method)}): the calls are kept exactly, the rest of the "
            "hierarchy adjusts so every level adds up.</div>"
            + layout.table_html(
                rec,
                kinds={"statistical": "usd", "commit": "usd", "reconciled": "usd"},
                css="revmodel-reconciled-table",
                total_rows=list(range(len(rec) - (3 if region else 2), len(rec))),
            )
            + note_html
        )
        log = audit_frame(store, mgr, per, reps)
        audit.value = (
            layout.table_html(
                log, kinds={"old": "usd", "new": "usd"}, css="revmodel-audit-table", max_rows=50
            )
            if len(log)
            else "<div class='revmodel-subtitle'>No calls yet for this team and period.</div>"
        )

    def on_submit(_button: object) -> None:
        try:
            row = store.submit(
                identity, rep.value, period.value, call_type.value, amount.value, note.value
            )
        except RevmodelError as exc:
            message.show(str(exc), "error")
            return
        old = "none" if row.old_value is None else f"{row.old_value:,.0f} USD"
        message.show(
            f"Saved: {CALL_LABELS[row.call_type].lower()} of {row.new_value:,.0f} USD for "
            f"{row.key} in {row.period} (was {old}).",
            "ok",
        )
        amount.value = ""
        note.value = ""
        refresh()

    def on_withdraw(_button: object) -> None:
        try:
            row = store.withdraw(identity, rep.value, period.value, call_type.value, note.value)
        except RevmodelError as exc:
            message.show(str(exc), "error")
            return
        message.show(
            f"Withdrawn: the {CALL_LABELS[row.call_type].lower()} call for {row.key} in "
            f"{row.period} (was {row.old_value:,.0f} USD).",
            "ok",
        )
        refresh()

    submit.on_click(on_submit)
    withdraw.on_click(on_withdraw)
    manager.observe(refresh, names="value")
    period.observe(refresh, names="value")
    refresh()

    form = w.VBox(
        [
            w.HBox([rep, call_type, amount]),
            note,
            w.HBox([submit, withdraw]),
            message,
        ]
    )
    form.add_class("revmodel-call-form")
    app = layout.page(
        "Forecast call",
        f"Submit commit and best-case calls per rep. Actuals to {ctx.as_of:%B %Y}; the statistical "
        "forecast is reconciled across the hierarchy; weighted pipeline = the open deals' expected "
        "bookings, by conversion rates for their segment and age and their likely slippage.",
        [
            who,
            w.HBox([manager, period, admin_box]),
            period_state,
            layout.section("Team", team),
            layout.section("Submit a call", form),
            layout.section("Roll-up", rollup),
            layout.section("History of calls", audit),
        ],
        footer=f"Data: {ctx.source}. Calls: {store!r}.",
    )
    app.add_class("revmodel-forecast-call")
    app.app = layout.Controls(
        manager=manager,
        period=period,
        rep=rep,
        call_type=call_type,
        amount=amount,
        note=note,
        submit=submit,
        withdraw=withdraw,
        message=message,
        team=team,
        rollup=rollup,
        audit=audit,
        identity=identity,
        store=store,
        refresh=refresh,
        context=ctx,
    )
    return app
