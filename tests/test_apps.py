"""The app builders in-process: change widget values in Python and check what the page shows."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import xarray as xr
import yaml

from revmodel import config, scenario
from revmodel.apps import context as app_context_module
from revmodel.apps import explorer, forecast_call, quotas, serve, whatif
from revmodel.errors import ParameterError
from revmodel.overrides import CallRejected, Identity, OverrideStore
from tests.conftest import assert_plan_ran_cleanly, run_revmodel, without_band_calibration

ADMIN = "ops.lead"
MANAGER_USER = "team.lead"


def text(html_value: str) -> str:
    """Visible text of an HTML widget value."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html_value)).strip()


def session(ctx, store_url=None, user=None, scenarios=None):
    """The builders' one context: the cached data with a call store and a user."""
    return app_context_module.app_context(
        context=ctx, store_url=store_url or "sqlite://", user=user, scenarios_dir=scenarios
    )


@pytest.fixture
def manager_name(app_context) -> str:
    """The manager with the most reps still employed."""
    counts = {}
    for m in set(map(str, app_context.cube["manager"].values)):
        counts[m] = len(forecast_call.team_reps(app_context, m))
    return max(sorted(counts), key=counts.get)


@pytest.fixture
def store_url(tmp_path, app_context, manager_name, monkeypatch) -> str:
    """A fresh call store with the cycle open and a team map naming an admin and a manager."""
    team = tmp_path / "team.yaml"
    team.write_text(
        yaml.safe_dump(
            {"users": {ADMIN: {"role": "admin"}, MANAGER_USER: {"manager": manager_name}}}
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv(app_context_module.ENV_TEAM_MAP, str(team))
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = app_context_module.open_store(app_context, url)
    store.open_period(app_context.cycle, Identity(ADMIN))
    return url


# --------------------------------------------------------------------------- explorer


def test_explorer_region_filter_updates_kpis_chart_and_table(app_context):
    app = explorer.build(session(app_context)).app
    assert app.period.value == app_context.cycle
    company = dict(app.kpis.values)
    region = app.region.options[1]
    app.region.value = region
    assert app.kpis.values["forecast"] != company["forecast"]
    s = explorer.summarise(app_context, explorer.Selection(app_context.cycle, region=region))
    assert app.kpis.values["forecast"] == explorer.layout.fmt_money(s["forecast"])
    names = [t.name for t in app.chart.figure.data]
    assert names == ["Actual", "P90", "10-90% band", "Forecast", "Quota"]
    assert region in app.chart.figure.layout.title.text
    months = app_context.period_months(app_context.cycle)
    fc = app.chart.figure.data[3]
    in_period = np.isin(np.asarray(fc.x, dtype="datetime64[ns]"), months.values)
    assert float(np.sum(np.asarray(fc.y)[in_period])) == pytest.approx(s["forecast"])
    # Managers follow the region; the table goes one level down.
    reps = explorer._rep_table(app_context)
    assert set(app.manager.options[1:]) == set(reps[reps["region"] == region]["manager"])
    assert "Manager" in text(app.table.value)
    # Reps are picked by name; the value is the id.
    names = app_context.rep_names()
    rep = next(r for r in app.rep.options if r[1] != "All")
    assert rep == (names[rep[1]], rep[1]) and rep[0] != rep[1]
    app.rep.value = rep[1]
    assert app.selection().rep == rep[1]
    assert app.kpis.values["forecast"] == explorer.layout.fmt_money(
        explorer.summarise(app_context, app.selection())["forecast"]
    )


def test_an_app_s_kernel_draws_no_progress_bar(app_context, monkeypatch):
    """In a Voila page a tqdm.auto bar is a widget among the app's: the apps turn bars off."""
    from revmodel import progress

    monkeypatch.setattr(progress, "_shown", None)
    monkeypatch.delenv(progress.RECORDS_ENV, raising=False)
    assert progress._disable(True) is None  # before: tqdm decides (a widget in a kernel)
    session(app_context)
    assert progress._disable(True) is True
    assert progress.bar(total=3, desc="read", unit="table").disable is True


def test_explorer_band_is_the_plan_pack_s_band(app_context):
    """The explorer's 10-90% band is read off the same reconciled paths as the pack's
    (pack_tables.level_band), calibrated as the forecast states: over the quarter for the
    company and a region, and month by month."""
    from dataclasses import replace

    from revmodel import reconcile
    from revmodel.publish import tables as pack_tables

    drawn = {}  # the pack's paths of each forecast, drawn once

    def pack_band(ctx, months, level, name):
        key = id(ctx.forecast)
        if key not in drawn:
            drawn[key] = pack_tables.reconciled_paths(ctx.forecast, ctx.reconcile_method)
        band, names = pack_tables.level_band(ctx.forecast, list(months), level, drawn[key])
        return band[names.index(name)][[0, -1]]

    levels = tuple(dict.fromkeys(app_context.forecast["level"].values.tolist()))
    scale = reconcile.BandScale(levels, (2.0,) * len(levels), (40,) * len(levels))
    cal = reconcile.BandCalibration(scale, app_context.reconcile_method, 2, ("2024-09",))
    wide = replace(
        app_context, forecast=app_context.forecast.assign_attrs(cal.to_attrs()), extra={}
    )
    fm = app_context.forecast["month"].values
    months = app_context.period_months(app_context.cycle).values
    ahead = fm[np.isin(fm, months)]
    region = explorer.members(app_context, explorer.Selection(app_context.cycle))["region"][0]
    widths = []
    for ctx in (app_context, wide):
        for sel, level, name in (
            (explorer.Selection(app_context.cycle), "total", "Company"),
            (explorer.Selection(app_context.cycle, region=region), "region", region),
        ):
            s = explorer.summarise(ctx, sel)
            band = (s["p10"] - s["bookings"], s["p90"] - s["bookings"])
            assert band == pytest.approx(tuple(pack_band(ctx, ahead, level, name)), rel=1e-9)
            widths.append(band[1] - band[0])
        shown = explorer.monthly(ctx, explorer.Selection(app_context.cycle))
        for t in ahead[:2]:
            expected = pack_band(ctx, [t], "total", "Company")
            assert tuple(shown.loc[t, ["p10", "p90"]]) == pytest.approx(tuple(expected), rel=1e-9)
    # calibrated: wider (less than twice: the paths keep their reconciled mean, and the
    # reps near 0 cannot widen downwards)
    assert widths[2] > 1.15 * widths[0] and widths[3] > 1.15 * widths[1]


def test_explorer_band_holds_the_live_calls(app_context, store_url, manager_name):
    """With a rep's commit locked, every path of the explorer's band holds the rep at the
    call, the rep's band is the call, and each slice's band is the quantiles of paths drawn
    independently with the call locked (its month values read off the live forecast) and
    holds the forecast shown beside it."""
    from revmodel import forecast as rforecast

    cycle = app_context.cycle
    ctx = session(app_context, store_url, MANAGER_USER)
    rep = forecast_call.team_reps(ctx, manager_name)[0]
    ctx.calls.submit(Identity(MANAGER_USER), rep, cycle, "commit", "125000", "signed")
    live = app_context_module.with_live_forecast(ctx, cycle)
    fm = app_context.forecast["month"].values
    in_cycle = np.isin(fm, app_context.period_months(cycle).values)
    assert in_cycle.any() and not (fm[in_cycle] <= np.datetime64(app_context.as_of)).any()
    # Every path holds the rep at the call, month by month as the live forecast has it.
    paths, members = explorer.band_paths(live)
    mine = (members["rep"] == rep).to_numpy()
    call = live.reconciled.sel(rep=rep).sum(["segment", "region"]).values
    assert call[in_cycle].sum() == pytest.approx(125000.0, rel=1e-9)
    np.testing.assert_allclose(
        paths[mine].sum(axis=0)[in_cycle], np.repeat(call[in_cycle, None], paths.shape[-1], 1),
        rtol=1e-9,
    )  # fmt: skip
    s = explorer.summarise(live, explorer.Selection(cycle, rep=rep))
    assert (s["p10"], s["landing"], s["p90"]) == pytest.approx((125000.0,) * 3, rel=1e-9)
    unlocked = explorer.summarise(app_context, explorer.Selection(cycle, rep=rep))
    assert unlocked["p90"] - unlocked["p10"] > 1000.0  # without the call: a band of its own
    # Independently: the pack's paths drawn with the rep locked at the live forecast's months.
    locks = {("rep", rep): np.where(in_cycle, call, np.nan)}
    drawn = rforecast.coherent_paths(app_context.forecast, app_context.reconcile_method, locks)
    fc = app_context.forecast
    bottom = np.asarray(fc["level"].values) == "rep/segment"  # the (segment, region, rep) cells
    node_rep = np.asarray(fc["node_rep"].values)[bottom].astype(str)
    node_region = np.asarray(fc["node_region"].values)[bottom].astype(str)
    team = set(forecast_call.team_reps(ctx, manager_name)) | set(
        forecast_call.team_leavers(ctx, manager_name)
    )
    region = ctx.calls.team_map.manager_region[manager_name]
    for sel, rows in (
        (explorer.Selection(cycle, manager=manager_name), np.isin(node_rep, list(team))),
        (explorer.Selection(cycle, region=region), node_region == region),
        (explorer.Selection(cycle), np.ones(len(node_rep), dtype=bool)),
    ):
        s = explorer.summarise(live, sel)
        totals = drawn.samples[bottom][rows][:, in_cycle].sum(axis=(0, 1))
        p10, p90 = np.quantile(totals, [0.1, 0.9])
        assert (s["p10"], s["p90"]) == pytest.approx((p10, p90), rel=1e-6), sel
        assert s["p10"] <= s["landing"] <= s["p90"], sel


def test_explorer_breakdown_adds_up(app_context):
    sel = explorer.Selection(app_context.periods()[0])
    level, frame = explorer.breakdown(app_context, sel)
    assert level == "region"
    body, total = frame.iloc[:-1], frame.iloc[-1]
    assert total["name"] == "Total"
    assert body["bookings"].sum() == pytest.approx(total["bookings"])
    assert body["landing"].sum() == pytest.approx(total["landing"])
    # the page passes the selection's summary it already has: the same table
    given = explorer.breakdown(app_context, sel, explorer.summarise(app_context, sel))
    pd.testing.assert_frame_equal(given[1], frame)


def test_explorer_period_with_actuals_has_bookings_and_no_forecast(app_context):
    past = [p for p in app_context.periods() if "-Q" in p and p < app_context.cycle][-1]
    s = explorer.summarise(app_context, explorer.Selection(past))
    assert s["months_actual"] == 3 and s["months_forecast"] == 0
    assert s["bookings"] > 0 and s["forecast"] == 0
    assert s["landing"] == s["bookings"]
    assert np.isnan(s["quota"])  # quotas exist for the plan year only


# --------------------------------------------------------------------------- forecast call


def test_forecast_call_without_identity_disables_submit(app_context, store_url, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    monkeypatch.delenv("REVMODEL_USER", raising=False)
    app = forecast_call.build(session(app_context, store_url)).app
    assert app.identity is None
    assert app.submit.disabled and app.amount.disabled
    assert app.message.text == forecast_call.SIGN_IN
    assert "Sign in to submit a forecast call" in app.message.value


def test_forecast_call_bad_amount_shows_message(app_context, store_url):
    app = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    app.amount.value = "abc"
    app.submit.click()
    assert app.message.kind == "error"
    assert app.message.text == "Amount 'abc' is not a number: enter the call in USD, e.g. 125000."
    app.amount.value = "-5"
    app.submit.click()
    assert app.message.text == (
        "Amount '-5' is negative: a forecast call is an amount of 0 USD or more."
    )
    assert len(app.store.audit()) == 1  # only the period opening


def test_forecast_call_submit_rolls_up_reconciles_and_audits(app_context, store_url, manager_name):
    app = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    assert list(app.manager.options) == [manager_name]  # a manager sees only their own team
    level, rep = app.rep.value.split(":")
    assert level == "rep"
    name = app_context.rep_names()[rep]
    assert name != rep and app.rep.label == name  # reps by name, not id
    app.amount.value = "$125,000"
    app.note.value = "two renewals signed early"
    app.submit.click()
    assert app.message.kind == "ok"
    assert app.message.text == (
        f"Saved: commit of 125,000 USD for {name} in {app_context.cycle} (was none)."
    )
    calls = app.store.current_calls(app_context.cycle)
    assert calls[["key", "call_type", "amount", "user"]].values.tolist() == [
        [rep, "commit", 125000.0, MANAGER_USER]
    ]
    rollup = text(app.rollup.value)
    assert f"manager {manager_name} – – 125,000" in rollup  # no own team call; the sum of reps
    rec, notes = forecast_call.reconciled_team(app.context, manager_name, app_context.cycle)
    assert notes == []
    row = rec[rec["name"] == name].iloc[0]
    assert row["commit"] == 125000.0
    assert row["reconciled"] == pytest.approx(125000.0, rel=1e-6)
    # The team row is the sum of every rep of the manager (leavers' last months included).
    locked = app.store.locked_nodes(app_context.cycle)
    da, _ = app_context.reconcile_with_calls(locked, app_context.cycle)
    months = app_context.period_months(app_context.cycle).values.astype("datetime64[ns]")
    mine = np.asarray(app_context.cube["manager"].values).astype(str) == manager_name
    team_total = float(da.isel(rep=mine, month=np.isin(da["month"].values, months)).sum())
    team = rec[rec["name"] == f"Team {manager_name}"].iloc[0]
    assert team["reconciled"] == pytest.approx(team_total, rel=1e-9)
    assert team["statistical"] != pytest.approx(team["reconciled"])  # the call moved the team
    audit = text(app.audit.value)
    assert f"{MANAGER_USER} submit {name} Commit – 125,000 two renewals signed early" in audit
    # A second call records the value it replaces.
    app.amount.value = "150000"
    app.submit.click()
    assert app.message.text.endswith("(was 125,000 USD).")
    assert "125,000 150,000" in text(app.audit.value)


def test_best_case_below_commit_is_refused_on_the_page(app_context, store_url, manager_name):
    app = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    name = app.rep.label
    app.amount.value = "200000"
    app.submit.click()
    app.call_type.value = "best_case"
    app.amount.value = "150000"
    app.note.value = "<script>alert(1)</script>"
    app.submit.click()
    assert app.message.kind == "error"
    _, rep = app.rep.value.split(":")
    assert app.message.text == (
        f"Best case 150,000 USD is below the commit of 200,000 USD for rep {rep} in "
        f"{app_context.cycle}: the best case is at least the commit; lower the commit first."
    )
    app.amount.value = "260000"
    app.submit.click()
    assert app.message.text.startswith(f"Saved: best case of 260,000 USD for {name}")
    # The note is shown escaped in the history.
    assert "<script>" not in app.audit.value and "&lt;script&gt;" in app.audit.value


def test_a_call_shows_in_the_explorer_of_another_session(app_context, store_url, manager_name):
    cycle = app_context.cycle
    explorer_page = explorer.build(session(app_context, store_url)).app
    explorer_page.manager.value = manager_name
    before = float(explorer.summarise(
        explorer.with_live_forecast(explorer_page.context, cycle),
        explorer.Selection(cycle, manager=manager_name),
    )["landing"])  # fmt: skip
    assert explorer_page.kpis.values["commit"] == "–"  # formatting.MISSING
    assert "no call for this slice" in explorer_page.kpis.value
    # Another kernel (its own store object on the same database) submits a team call.
    calls = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    calls.rep.value = f"manager:{manager_name}"
    calls.amount.value = str(round(before * 1.2))
    calls.submit.click()
    assert calls.message.kind == "ok", calls.message.text
    calls.call_type.value = "best_case"
    calls.amount.value = str(round(before * 1.5))
    calls.submit.click()
    explorer_page.reload.click()  # the page's Refresh button
    assert explorer_page.kpis.values["commit"] == explorer.layout.fmt_money(round(before * 1.2))
    assert explorer_page.kpis.values["landing"] == explorer.layout.fmt_money(round(before * 1.2))
    assert f"best case {explorer.layout.fmt_money(round(before * 1.5))}" in explorer_page.kpis.value
    table = text(explorer_page.table.value)
    assert explorer.layout.fmt_money(round(before * 1.5)) in table  # best case on the Total row
    # The reps nobody called moved with the team's call, and the page says which call did it.
    moves = forecast_call.explain_moves(
        calls.context,
        cycle,
        [("rep", r) for r in forecast_call.team_reps(app_context, manager_name)],
    )
    assert len(moves) > 0
    assert (moves["change"] > 0).all()
    assert moves["why"].str.startswith(f"the commit on team {manager_name} (+").all()
    shown = text(calls.moves.value)
    first = moves.iloc[0]
    assert f"{first['name']} moved {first['change']:+,.0f} USD" in shown
    # Held at its statistical forecast, a rep keeps it; the team's call is still kept.
    calls.rep.value = f"rep:{first['key']}"
    calls.hold.value = True
    rec, _ = forecast_call.reconciled_team(
        calls.context, manager_name, cycle, tuple(sorted(calls.held))
    )
    held = rec[rec["name"] == first["name"]].iloc[0]
    assert held["reconciled"] == pytest.approx(held["statistical"], rel=1e-6)
    team = rec[rec["name"] == f"Team {manager_name}"].iloc[0]
    assert team["reconciled"] == pytest.approx(round(before * 1.2), rel=1e-6)
    assert first["name"] not in text(calls.moves.value).split(" moved")[0]


def test_leavers_are_not_counted_and_the_page_says_so(app_context, store_url):
    gone = app_context.leavers()
    assert gone, "the sample company has reps who left"
    cube = app_context.cube
    pairs = zip(cube["manager"].values, cube["rep"].values, strict=True)
    managers = {str(m) for m, r in pairs if str(r) in gone}
    manager = sorted(managers)[0]
    app = forecast_call.build(session(app_context, store_url, ADMIN)).app
    app.manager.value = manager
    left = forecast_call.team_leavers(app_context, manager)
    active = forecast_call.team_reps(app_context, manager)
    assert left and not set(left) & set(active)
    shown = text(app.rollup.value)
    count = len(left)
    assert f"Not counted: {count} rep{'s' if count != 1 else ''} of the team who left" in shown
    roll = app.store.rollup(app_context.cycle)
    row = roll[(roll["level"] == "manager") & (roll["key"] == manager)].iloc[0]
    assert row["reps"] == len(active)
    with pytest.raises(CallRejected, match=f"^Rep '{left[0]}' left on "):
        app.store.submit(Identity(ADMIN), left[0], app_context.cycle, "commit", 1000)


def test_forecast_call_closed_period_is_refused(app_context, store_url):
    store = OverrideStore(store_url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE periods SET is_open = 0")
    finally:
        store.close()
    app = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    app.amount.value = "1000"
    app.submit.click()
    assert app.message.text == (
        f"Period {app_context.cycle} is closed for forecast calls: pick an open period "
        "(no period is open) or ask an admin to open it."
    )


# --------------------------------------------------------------------------- what-if


def test_whatif_growth_slider_recomputes_target(app_context, tmp_path):
    app = whatif.build(session(app_context, scenarios=tmp_path)).app
    base_target = float(app_context.plan["total_target"])
    assert app.kpis.values["target"] == whatif.layout.fmt_money(base_target)
    app.growth.value = app_context.assumptions.target_growth + 0.2
    plan = app.plan()
    assert float(plan["total_target"]) > base_target
    assert app.kpis.values["target"] == whatif.layout.fmt_money(float(plan["total_target"]))
    assert "ms" in text(app.timing.value)
    assert [t.name for t in app.chart.figure.data] == [
        "Target",
        "Capacity",
        "Capacity (base)",
        "Quota",
    ]
    assert float(np.sum(app.chart.figure.data[0].y)) == pytest.approx(float(plan["total_target"]))


def test_whatif_churn_hires_and_ramp(app_context, tmp_path):
    app = whatif.build(session(app_context, scenarios=tmp_path)).app
    app.churn.value = 0.2
    assert app.churn_history.value is False
    assert app.assumptions().churn_rate == pytest.approx(0.2)
    before = float(app.plan()["total_capacity"])
    app.hires.value = 5
    assert sum(h.count for h in app.assumptions().hires) == 5
    assert float(app.plan()["total_capacity"]) > before
    seg = next(iter(app.ramp))
    app.ramp[seg].value = 12
    assert app.assumptions().ramp_months[seg] == 12


def test_whatif_bad_target_shows_message_and_keeps_plan(app_context, tmp_path):
    app = whatif.build(session(app_context, scenarios=tmp_path)).app
    shown = dict(app.kpis.values)
    app.target.value = "abc"
    assert app.message.kind == "error"
    assert app.message.text == (
        "Target 'abc' is not an amount: enter the company bookings target in USD, e.g. "
        "200000000, or leave it empty to grow last year's bookings."
    )
    assert app.kpis.values == shown
    app.target.value = "250000000"
    assert app.message.text == ""
    assert app.kpis.values["target"] == "$250.0M"


def test_whatif_save_and_compare(app_context, tmp_path):
    app = whatif.build(session(app_context, scenarios=tmp_path)).app
    app.name.value = "bad name!"
    app.save.click()
    assert app.message.text.startswith("Scenario name 'bad name!' may hold only letters")
    app.growth.value = 0.4
    app.name.value = "stretch"
    app.save.click()
    assert app.message.text == "Saved scenario stretch (stretch.yaml); it is compared below."
    saved = whatif.load_assumptions(tmp_path / "stretch.yaml")
    assert saved.target_growth == pytest.approx(0.4) and saved.name == "stretch"
    assert "stretch" in text(app.comparison.value)
    # A new page finds the saved scenario.
    again = whatif.build(session(app_context, scenarios=tmp_path)).app
    assert list(again.saved) == ["stretch"]
    stacked = scenario.stack(app_context.plan_context, [app_context.assumptions, saved])
    assert float(stacked["total_target"].sel(scenario="stretch")) > float(
        stacked["total_target"].sel(scenario="base")
    )


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "Scenario name is empty: type a name such as stretch-hiring."),
        ("base", "'base' is the plan's own scenario: pick another name."),
    ],
)
def test_whatif_name_validation(raw, message):
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        whatif.validate_name(raw)


# --------------------------------------------------------------------------- quotas


def test_quotas_table_balance_and_filter(app_context):
    app = quotas.build(session(app_context)).app
    frame = app.frame()
    assert len(frame) > 0 and (frame["full_year_quota"] > 0).all()
    shown = text(app.table.value)
    assert "Quota (year)" in shown
    assert shown.count("in line") + shown.count("out of line") == len(frame)
    assert app.kpis.values["out_of_line"] == str(int(frame["out_of_line"].sum()))
    region = app.region.options[1]
    app.region.value = region
    assert set(app.frame()["region"]) == {region}
    assert app.kpis.values["reps"] == str(len(app.frame()))
    assert [t.name for t in app.chart.figure.data][:2] == ["In line", "Out of line"]
    assert not app.territory_table.value  # drawn when its tab shows
    app.tabs.selected_index = 1
    drawn = app.territory_table.value
    assert text(drawn)  # a proposal, or why there is none
    app.region.value = quotas.ALL_MEMBERS  # redrawn at once while it shows
    assert app.territory_table.value != drawn or "accounts move" not in text(drawn)
    app.region.value = region
    # Excel of what the table shows: the region's reps, quotas as numbers.
    import io

    import openpyxl

    app.excel.button.click()
    assert "download='quotas-" in app.excel.link.value
    ws = openpyxl.load_workbook(io.BytesIO(app.excel.data))["Quotas"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    header = [c.value for c in ws[1]]
    assert len(rows) == len(app.frame())
    assert sum(r[header.index("Quota (year)")] for r in rows) == pytest.approx(
        app.frame()["full_year_quota"].sum()
    )
    assert {r[header.index("Region")] for r in rows} == {region}
    assert ws.cell(row=2, column=header.index("Quota (year)") + 1).number_format == "#,##0"


@pytest.mark.slow
def test_quota_balance_is_judged_against_territory_potential(tmp_path, monkeypatch):
    # With a history-based allocation, quota over history is the same for every rep; the
    # balance check must use the territory plan's potential to say anything.
    from revmodel import sample

    sample.write(sample.generate(reps=60, months=36, seed=5), tmp_path / "data")
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    ctx = app_context_module.load_context(
        data_dir=tmp_path / "data", forecast_method="seasonal_naive"
    )
    frame = quotas.quota_frame(ctx)
    assert ctx.extra["quota_balance_basis"] == "territory potential"
    assert frame["ratio_to_median"].std() > 0.05
    assert 0 < int(frame["out_of_line"].sum()) < len(frame)
    page = quotas.build(session(ctx))
    assert "over territory potential is outside 80%-125% of the median" in text(
        page.children[-1].value
    )


# --------------------------------------------------------------------------- serving


def test_voila_command_is_local_stripped_culled_and_tokened():
    cmd = serve.voila_command(8870, "tok")
    assert cmd[1:5] == [
        "-c",
        serve.VOILA_MAIN,
        json.dumps(serve.voila_config()),
        str(config.APPS_DIR),
    ]
    # a list and a dict, which a command line gives only in a deprecated form: Voila's config
    assert json.loads(cmd[3]) == {
        "VoilaConfiguration": {"extension_denylist": ["jupyterlab-plotly", "jupyterlab_pygments"]},
        "VoilaKernelManager": {"kernel_pools_config": serve.pool_config(serve.POOL_SIZE)},
    }
    assert not [f for f in cmd[4:] if "extension_denylist" in f or "pools" in f]
    for flag in (
        "--Voila.ip=127.0.0.1",
        "--port=8870",
        "--strip_sources=True",
        "--show_tracebacks=False",
        "--token=tok",
        f"--MappingKernelManager.cull_idle_timeout={serve.CULL_IDLE_SECONDS}",
        f"--MappingKernelManager.cull_interval={serve.CULL_INTERVAL_SECONDS}",
        "--no-browser",
        "--preheat_kernel=True",
        f"--pool_size={serve.POOL_SIZE}",
        "--template=revmodel",
        "--MappingKernelManager.kernel_manager_class=revmodel.kernels.AppKernelManager",
    ):
        assert flag in cmd
    assert not [f for f in serve.voila_command(8870, "tok", pool_size=0) if "preheat" in f]


def test_serve_command_prints_the_token_url(monkeypatch, capsys):
    started = {}

    class FakeProcess:
        def __init__(self, cmd, env):
            started["cmd"], started["env"] = cmd, env

        def wait(self):
            return 0

    monkeypatch.setenv("REVMODEL_TOKEN", "s3cret")
    monkeypatch.setattr(serve, "warm", lambda: 0.5)
    monkeypatch.setattr(serve.subprocess, "Popen", FakeProcess)
    assert serve.serve(8871) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8871/?token=s3cret" in out
    assert "http://127.0.0.1:8871/voila/render/forecast_call.ipynb?token=s3cret" in out
    assert "--token=s3cret" in started["cmd"]


@pytest.mark.parametrize("name", ["explorer", "forecast_call", "whatif", "quotas", "weekly"])
def test_app_notebook_is_layout_only(name):
    nb = json.loads((config.APPS_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert ["".join(c["source"]) for c in code] == [
        f"from revmodel.apps import {name}, layout\n\nlayout.end_on_interrupt()\n"
        f"page = {name}.build()\npage",
        "layout.when_opened(page)",
    ]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert not any(c["outputs"] for c in code)


def test_when_opened_outside_a_preheated_kernel_does_nothing(app_context, monkeypatch):
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    calls = []
    page = quotas.build(session(app_context))
    monkeypatch.setattr(page.app, "refresh", lambda: calls.append(1), raising=False)
    quotas.layout.when_opened(page)
    assert calls == []


def test_shared_context_is_written_once_and_read_by_the_next_kernel(
    small_company, tmp_path, monkeypatch
):
    _, folder = small_company
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    app_context_module.clear_cache()
    path = app_context_module.context_cache_path(folder, "seasonal_naive")
    assert not path.exists()
    first = app_context_module.load_context(data_dir=folder, forecast_method="seasonal_naive")
    assert path.exists()
    assert "quota_frame" in first.extra  # precomputed for every kernel
    app_context_module.clear_cache()  # a new kernel
    second = app_context_module.load_context(data_dir=folder, forecast_method="seasonal_naive")
    assert second is not first
    xr.testing.assert_identical(second.reconciled, first.reconciled)
    xr.testing.assert_identical(second.plan, first.plan)
    pd.testing.assert_frame_equal(second.extra["quota_frame"], first.extra["quota_frame"])
    # New data: a new fingerprint, so the context is rebuilt, not read.
    (folder / "extra-note.txt").write_text("changed", encoding="utf-8")
    try:
        assert app_context_module.context_cache_path(folder, "seasonal_naive") != path
    finally:
        (folder / "extra-note.txt").unlink()
    assert app_context_module.context_cache_path(folder, "seasonal_naive") == path
    app_context_module.clear_cache()


def test_a_changed_call_log_keeps_the_context_and_changed_data_does_not(tmp_path):
    # No cube, forecast or history depends on the calls: the weekly page scores them itself.
    from revmodel.apps import cache

    data = tmp_path / "data"
    data.mkdir()
    (data / "opportunities.csv").write_text("opportunity_id\nO1\n", encoding="utf-8")
    calls = data / config.CALL_LOG_FILE
    calls.write_text("at,level\n", encoding="utf-8")
    path = app_context_module.context_cache_path(data, "auto")
    weekly_path = cache.weekly_cache_path(path, data)
    calls.write_text("at,level,key\n2026-01-05,manager,Ann\n", encoding="utf-8")
    assert app_context_module.context_cache_path(data, "auto") == path
    assert cache.weekly_cache_path(path, data) == weekly_path
    (data / "opportunities.csv").write_text("opportunity_id\nO1\nO2\n", encoding="utf-8")
    assert app_context_module.context_cache_path(data, "auto") != path
    assert cache.weekly_cache_path(path, data) != weekly_path


def test_sample_team_map_names_sample_managers():
    from revmodel import sample
    from revmodel.overrides import TeamMap

    reps = sample.generate()["reps"]
    tm = TeamMap.from_yaml(Path(config.PARAMETERS_DIR) / "team.yaml")
    managers = {g.scope for g in tm.users.values() if g.role == "manager"}
    assert managers == set(reps["manager"].dropna())
    assert tm.users["revops"].role == "admin"


def test_vp_calls_the_company_and_sees_every_team(app_context, tmp_path, monkeypatch):
    team = tmp_path / "team.yaml"
    team.write_text(
        yaml.safe_dump({"users": {"vera": {"role": "vp"}, ADMIN: {"role": "admin"}}}),
        encoding="utf-8",
    )
    monkeypatch.setenv(app_context_module.ENV_TEAM_MAP, str(team))
    url = f"sqlite:///{tmp_path / 'vp.db'}"
    ctx = session(app_context, url, "vera")
    ctx.calls.open_period(app_context.cycle, Identity(ADMIN))
    app = forecast_call.build(ctx).app
    assert app.rep.options[0] == ("Company (the company's own call)", "total:total")
    assert not [v for _, v in app.rep.options if v.startswith("region:")]
    statistical = app_context_module.period_total(
        app_context, app_context.reconciled, app_context.cycle, "total", "total"
    )
    app.rep.value = "total:total"
    app.amount.value = str(round(statistical * 1.1))
    app.submit.click()
    assert app.message.text.startswith(
        f"Saved: commit of {round(statistical * 1.1):,} USD for Company"
    )
    rec, _ = forecast_call.reconciled_team(app.context, str(app.manager.value), app_context.cycle)
    company = rec[rec["name"] == "Company"].iloc[0]
    assert company["commit"] == round(statistical * 1.1)
    assert company["reconciled"] == pytest.approx(round(statistical * 1.1), rel=1e-6)
    # Every team side by side in the roll-up, the company's own call beside the sum below.
    managers = {m for m in app.store.team_map.managers if m != "(unassigned)"}
    shown = text(app.rollup.value)
    assert all(f"manager {m} " in shown for m in managers)
    roll = app.store.rollup(app_context.cycle).set_index(["level", "key"])
    assert roll.loc[("total", "total"), "call_commit"] == round(statistical * 1.1)
    # The VP may not call a team.
    app.rep.value = next(v for _, v in app.rep.options if v.startswith("manager:"))
    app.amount.value = "1000"
    app.submit.click()
    assert app.message.kind == "error"
    assert app.message.text.startswith("User 'vera' writes for the company only")


# --------------------------------------------------------------------------- one definition


@pytest.fixture(scope="module")
def pipedrive_context(tmp_path_factory):
    """The apps' context of a Pipedrive deals export (GBP, fiscal year from April), no sample."""
    import shutil

    from revmodel import mapdraft, sources
    from revmodel.cube import build_cube
    from tests.exports import generate

    folder = tmp_path_factory.mktemp("pipedrive")
    shutil.copytree(Path(__file__).parent / "exports" / "pipedrive", folder / "data")
    files = sorted((folder / "data").iterdir())
    mapping = folder / "mapping.yaml"
    mapping.write_text(mapdraft.to_yaml(mapdraft.draft(files)), encoding="utf-8")
    loaded = sources.load(folder / "data", mapping=mapping)
    cube = build_cube(loaded.tables, fiscal_year_start=4, currency=loaded.currency)
    ctx = app_context_module.load_context(cube=cube, forecast_method="seasonal_naive")
    raw = pd.read_csv(folder / "data" / generate.CASES["pipedrive"].files[0])
    return session(ctx), raw


def test_explorer_kpis_are_the_catalogue_s_on_a_pipedrive_export(pipedrive_context):
    from revmodel import kpi

    ctx, raw = pipedrive_context
    assert ctx.cube.attrs["currency"] == "GBP"
    # A past fiscal quarter (April start: FY2026-Q2 is July-September 2025) and one rep.
    period = "FY2026-Q2"
    reps = ctx.cube["rep"].values.astype(str)
    names = ctx.rep_names()
    rep = max(reps, key=lambda r: float(ctx.cube["won"].sel(rep=r).sum()))
    for sel in (explorer.Selection(period), explorer.Selection(period, rep=rep)):
        shown = explorer.summarise(ctx, sel)
        cube = ctx.cube if sel.rep is None else ctx.cube.sel(rep=[sel.rep])
        quota = ctx.rep_quota()
        quota = quota if sel.rep is None else quota.sel(rep=[sel.rep])
        lib = kpi.compute(
            cube, explorer.KPI_NAMES, period="fiscal_quarter", quota=quota.sum("rep")
        ).sel(fiscal_quarter=period)
        assert shown["bookings"] == pytest.approx(float(lib["bookings"]))
        assert shown["win_rate"] == pytest.approx(float(lib["win_rate"]))
        assert shown["deal_size"] == pytest.approx(float(lib["average_deal_size"]))
        np.testing.assert_allclose(shown["attainment"], float(lib["quota_attainment"]))
        # Independently, from the export's own rows: won and lost deals closing in the quarter.
        rows = raw if sel.rep is None else raw[raw["Deal - Owner"] == names[sel.rep]]
        won_at = pd.to_datetime(rows["Deal - Won time"])
        lost_at = pd.to_datetime(rows["Deal - Lost time"])
        inq = lambda d: (d >= "2025-07-01") & (d < "2025-10-01")  # noqa: E731
        won = rows[(rows["Deal - Status"] == "won") & inq(won_at)]
        lost = rows[(rows["Deal - Status"] == "lost") & inq(lost_at)]
        assert len(won) > 0
        assert shown["bookings"] == pytest.approx(won["Deal - Value"].sum())
        assert shown["win_rate"] == pytest.approx(len(won) / (len(won) + len(lost)))
        assert shown["deal_size"] == pytest.approx(won["Deal - Value"].mean())
    # The cards show those figures in the data's currency, as the plan pack formats them.
    page = explorer.build(ctx).app
    page.period.value = period
    page.rep.value = rep
    s = explorer.summarise(page.context, page.selection())
    assert page.kpis.values["bookings"] == explorer.layout.fmt_money(s["bookings"], "GBP")
    assert page.kpis.values["bookings"].startswith("£")
    assert page.kpis.values["win_rate"] == explorer.layout.fmt_pct(s["win_rate"])
    fig = explorer.figure(page.context, page.selection())
    assert fig.layout.yaxis.title.text == "GBP per month" and fig.layout.yaxis.tickprefix == "£"
    # The breakdown's rows (a team's reps, computed once by level) are the catalogue's too.
    manager = str(ctx.cube["manager"].sel(rep=rep).values)
    level, table = explorer.breakdown(page.context, explorer.Selection(period, manager=manager))
    assert level == "rep"
    by_rep = kpi.compute(ctx.cube, ["win_rate"], dims=("rep",), period="fiscal_quarter")
    row = table[table["name"] == ctx.label("rep", rep)]
    assert len(row) == 1
    assert float(row["win_rate"].iloc[0]) == pytest.approx(
        float(by_rep["win_rate"].sel(rep=rep, fiscal_quarter=period))
    )


def test_quotas_and_what_if_show_amounts_in_the_data_currency(pipedrive_context):
    ctx, _ = pipedrive_context
    shown = quotas.build(ctx).app.kpis.values
    assert shown["quota"].startswith("£") and shown["capacity"].startswith("£")
    page = whatif.build(ctx).app
    money = [k for k, (_, kind) in whatif.KPI_CARDS.items() if kind == "money"]
    shown = [page.kpis.values[k] for k in money]
    assert page.kpis.values["target"].startswith("£")
    # no subscriptions in this export: ARR figures are missing, never $0 or £0
    assert all(v.startswith("£") or v == "–" for v in shown) and not any("$" in v for v in shown)
    fig = whatif.figure(ctx.plan, ctx.plan, "GBP")
    assert fig.layout.yaxis.title.text == "GBP per year" and fig.layout.yaxis.tickprefix == "£"
    assert "$" not in fig.to_json()


# --------------------------------------------------------------------------- the published plan


def _publish(ctx, reports, stamp: str, quota_scale: float, data_dir, base_plan=True) -> Path:
    """A pack as `revmodel plan` leaves it: plan.nc groups and a manifest naming its version.

    Its base plan (``base_plan``) has the targets of ``ctx.plan`` times ``quota_scale``
    and a rep potential of 1, 2, 3...; ``base_plan`` False leaves the group out.
    """
    from revmodel import encoding, quota

    pack = reports / f".{ctx.cycle}" / stamp
    pack.mkdir(parents=True)
    q = quota.top_down(ctx.plan_context.inputs, ctx.assumptions, months=ctx.plan["month"].values)
    q["quota"] = q["quota"] * quota_scale
    q["rep_quota"] = q["rep_quota"] * quota_scale
    cap = ctx.plan["rep_capacity"].reindex(rep=q["rep"].values, fill_value=0.0)
    groups = {
        "cube": ctx.cube,
        "forecast": ctx.forecast,
        "reconciled": ctx.reconciled.rename("forecast").to_dataset(),
        "quota": q,
        "capacity": cap.rename("capacity").to_dataset(),
        "quota_balance": quota.balance(q, expected=cap),
    }
    if base_plan:
        plan = ctx.plan.copy()
        for name in ("target", "total_target"):
            plan[name] = plan[name] * quota_scale
        reps = q["rep"].values
        potential = xr.DataArray(np.arange(1.0, len(reps) + 1), coords={"potential_rep": reps})
        groups["base_plan"] = plan.assign(quota_potential=potential)
    mode = "w"
    for group, ds in groups.items():
        encoding.encode(ds).to_netcdf(pack / "plan.nc", mode=mode, group=group, engine="netcdf4")
        mode = "a"
    params = {"cycle": ctx.cycle, "data_dir": str(data_dir), "reconcile_method": "mint_shrink"}
    manifest = {
        "cycle": ctx.cycle,
        "parameters": params,
        "plan_version": f"forecast/{ctx.cycle}-{stamp}",
        "sections": {"shown": ["forecast", "quotas"], "skipped": []},
    }
    (pack / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    link = reports / ctx.cycle
    if link.is_symlink():
        link.unlink()
    link.symlink_to(pack.relative_to(reports))
    return pack


def test_every_app_reads_the_latest_published_plan(
    app_context, small_company, tmp_path, monkeypatch
):
    from revmodel.apps import published

    _, folder = small_company
    reports = tmp_path / "reports"
    monkeypatch.setattr(config, "REPORTS_DIR", reports)
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(app_context_module.ENV_CUBE, raising=False)
    assert published.latest() is None
    _publish(app_context, reports, "20261101T090000000000Z", 1.5, folder)
    # A pack being written (hidden, no link) is never read.
    (reports / ".FY1999-Q1").mkdir()
    first = published.latest()
    assert first.version == f"forecast/{app_context.cycle}-20261101T090000000000Z"
    path = app_context_module.context_cache_path(None, "auto", first)
    app_context_module.clear_cache()
    try:
        ctx = session(app_context_module.load_context())
        assert path.exists()  # written once, read by the next kernel
        assert ctx.published == first
        assert "published plan" in ctx.source and "20261101" in ctx.source
        # The published quota, not a recomputation: 1.5 times the top-down allocation.
        recomputed = float(app_context.plan["rep_quota"].sum())
        assert float(ctx.rep_quota().sum()) == pytest.approx(1.5 * recomputed)
        np.testing.assert_allclose(ctx.reconciled.values, app_context.reconciled.values)
        page = explorer.build(ctx).app
        page.period.value = app_context.assumptions.plan_year
        year = explorer.summarise(page.context, page.selection())
        assert year["quota"] == pytest.approx(1.5 * recomputed)
        assert page.kpis.values["quota"] == layout_money(1.5 * recomputed)
        q = quotas.quota_frame(ctx)
        assert q["full_year_quota"].sum() == pytest.approx(1.5 * recomputed)
        footer = text(explorer.build(ctx).children[-1].value)
        assert f"published plan {app_context.cycle} (version forecast/" in footer
        # The what-if starts from the published base plan, read, not recomputed.
        base_target = float(app_context.plan["total_target"])
        assert float(ctx.plan["total_target"]) == pytest.approx(1.5 * base_target)
        reps = [str(r) for r in ctx.extra["potential"].index]
        assert ctx.extra["potential"].values.tolist() == [float(i + 1) for i in range(len(reps))]
        assert reps == [str(r) for r in ctx.rep_quota()["rep"].values]
        what = whatif.build(ctx).app
        assert what.plan() is ctx.plan
        assert what.kpis.values["target"] == layout_money(1.5 * base_target)
        assert text(what.timing.value) == f"The base plan {ctx.assumptions.plan_year}."
        what.growth.value = ctx.assumptions.target_growth + 0.1
        assert what.kpis.values["target"] == layout_money(float(what.plan()["total_target"]))
        assert text(what.timing.value).startswith(f"Plan {ctx.assumptions.plan_year} recomputed in")

        # A later version is published: the next kernel reads it, from a new cache file.
        _publish(app_context, reports, "20261108T090000000000Z", 2.0, folder, base_plan=False)
        assert published.latest().version.endswith("20261108T090000000000Z")
        app_context_module.clear_cache()
        later = app_context_module.load_context()
        assert float(later.rep_quota().sum()) == pytest.approx(2.0 * recomputed)
        assert app_context_module.context_cache_path(None, "auto") != path
        # A pack without a base plan: the base plan is computed from its cube and assumptions.
        assert float(later.plan["total_target"]) == pytest.approx(base_target)
        assert "potential" not in later.extra
    finally:
        app_context_module.clear_cache()


def layout_money(value: float) -> str:
    return explorer.layout.fmt_money(value)


@pytest.mark.slow
def test_plan_leaves_the_apps_context_to_the_first_serve_which_reads_the_published_base_plan(
    small_company, tmp_path, monkeypatch
):
    import shutil

    from revmodel.apps import published

    _, folder = small_company
    project = tmp_path / "project"
    shutil.copytree(folder, project / "data")
    (project / "parameters").mkdir()  # the project's parameters: the models' own bands
    (project / "parameters" / "plan.yaml").write_text("data_dir: ../data\n", encoding="utf-8")
    without_band_calibration(project / "parameters" / "plan.yaml")
    run = run_revmodel(["plan", "--data", "data"], cwd=project)
    assert_plan_ran_cleanly(run)
    assert "the apps read it from their next start (`revmodel serve`)" in run.stderr

    def in_project():
        monkeypatch.setattr(config, "HOME", project)
        monkeypatch.setattr(config, "REPORTS_DIR", project / "reports")
        monkeypatch.setattr(config, "CACHE_DIR", project / ".cache" / "revmodel")
        monkeypatch.delenv(app_context_module.ENV_CUBE, raising=False)

    in_project()
    plan = published.latest()
    assert plan is not None and plan.cycle in run.stdout
    path = app_context_module.context_cache_path(None, "auto", plan)
    assert not path.exists()  # nothing prepared for apps nobody serves
    app_context_module.clear_cache()
    serve.warm()  # the first start builds it
    assert path.exists()

    # The next start only reads: building the context again would fail here.
    def no_build(*args, **kwargs):
        raise AssertionError("the context was built again")

    monkeypatch.setattr(app_context_module, "load_context", no_build)
    serve.warm()
    monkeypatch.undo()
    in_project()
    app_context_module.clear_cache()
    try:
        ctx = app_context_module.load_context()
        with xr.open_dataset(plan.plan_file, group="quota") as q:
            assert float(ctx.rep_quota().sum()) == pytest.approx(float(q["quota"].sum()))
        with xr.open_dataset(plan.plan_file, group="reconciled") as rec:
            assert float(ctx.reconciled.sum()) == pytest.approx(float(rec["forecast"].sum()))
        # The what-if's base plan is the pack's, as the scenarios notebook computed it.
        with xr.open_dataset(plan.plan_file, group="base_plan") as base:
            assert float(ctx.plan["total_target"]) == float(base["total_target"])
            assert float(ctx.plan["total_quota"]) == float(base["total_quota"])
        page = whatif.build(session(ctx)).app
        assert page.plan() is ctx.plan
        assert page.kpis.values["target"] == layout_money(float(ctx.plan["total_target"]))
        assert ctx.published == plan
    finally:
        app_context_module.clear_cache()


# --------------------------------------------------------------------------- layout


HOSTILE = '=HYPERLINK("http://evil.example","Paid")'


def test_explorer_drills_down_by_click_and_downloads_the_view_inert(app_context):
    import base64
    import dataclasses
    import io

    import openpyxl

    # A rep whose name in the export looks like a spreadsheet formula.
    cube = app_context.cube.copy()
    quota = app_context.rep_quota().sum("month")
    target = str(quota["rep"].values[int(np.argmax(quota.values))])
    at = list(cube["rep"].values.astype(str)).index(target)
    names = cube["rep_name"].values.astype(object).copy()
    names[at] = HOSTILE
    cube = cube.assign_coords(rep_name=("rep", names))
    if "rep_label" in cube.coords:
        labels = cube["rep_label"].values.astype(object).copy()
        labels[at] = HOSTILE
        cube = cube.assign_coords(rep_label=("rep", labels))
    ctx = session(dataclasses.replace(app_context, cube=cube, extra={}))
    assert ctx.label("rep", target) == HOSTILE
    page = explorer.build(ctx).app
    region = str(cube["rep_region"].sel(rep=target).values)
    manager = str(cube["manager"].sel(rep=target).values)

    def buttons(css):
        return {b.description: b for b in page.drill.children if css in b._dom_classes}

    assert not buttons("revmodel-drill-up")  # the company: nothing to go up to
    assert "Total" not in buttons("revmodel-drill-member")
    buttons("revmodel-drill-member")[region].click()
    assert page.region.value == region
    assert "Manager" in text(page.table.value)
    buttons("revmodel-drill-member")[manager].click()
    assert page.manager.value == manager
    assert HOSTILE in buttons("revmodel-drill-member")
    # The team's table at full height and width, the hostile name escaped on the page.
    assert "revmodel-full" in page.table.value and "revmodel-scroll" not in page.table.value
    assert "&lt;" not in HOSTILE and html_escaped(HOSTILE) in page.table.value

    # Excel of the view: the table's rows, the name written as text that never runs.
    page.excel.button.click()
    link = page.excel.link.value
    assert f"download='explorer-{page.selection().period}.xlsx'" in link
    data = base64.b64decode(link.split("base64,")[1].split("'")[0])
    assert data == page.excel.data
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb["Breakdown"]
    header = [c.value for c in ws[1]]
    assert header[0] == "Rep"
    rows = {r[0]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    assert "'" + HOSTILE in rows and HOSTILE not in rows
    cell = next(c for c in ws["A"] if c.value == "'" + HOSTILE)
    assert cell.data_type == "s"
    shown = page.shown["breakdown"].set_index("Rep")
    got = rows["'" + HOSTILE]
    assert got[header.index("forecast")] == pytest.approx(shown.loc[HOSTILE, "forecast"])
    assert got[header.index("quota")] == pytest.approx(shown.loc[HOSTILE, "quota"])
    assert rows["Total"][header.index("bookings")] == pytest.approx(shown.loc["Total", "bookings"])
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Slice"] == f"{region}, {manager}"
    # The view changes: the old file's link goes.
    buttons("revmodel-drill-member")[HOSTILE].click()
    assert page.rep.value == target
    assert page.excel.link.value == ""
    assert "Segment" in text(page.table.value)
    buttons("revmodel-drill-up")["Up one level"].click()
    assert page.rep.value == explorer.ALL_MEMBERS and page.manager.value == manager


def html_escaped(value: str) -> str:
    import html

    return html.escape(value)


# --------------------------------------------------------------------------- Excel of the call and what-if views


def _sheets(excel) -> dict[str, list[tuple]]:
    excel.button.click()
    data = base64.b64decode(excel.link.value.split("base64,")[1].split("'")[0])
    assert data == excel.data
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}


def _rows(sheet: list[tuple], key: str) -> dict[object, dict[str, object]]:
    header = list(sheet[0])
    return {r[header.index(key)]: dict(zip(header, r, strict=True)) for r in sheet[1:]}


def test_forecast_call_excel_holds_the_tables_shown_and_the_note_inert(
    app_context, store_url, manager_name
):
    app = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    assert app.excel.link.value == ""
    name = app.rep.label
    app.amount.value = "125000"
    app.note.value = HOSTILE
    app.submit.click()
    assert app.message.kind == "ok"
    sheets = _sheets(app.excel)
    assert list(sheets) == ["Team", "Roll-up", "Reconciled", "Calls"]
    link = app.excel.link.value
    named = re.sub(r"[^A-Za-z0-9_.-]+", "-", manager_name)
    assert f"download='forecast-call-{named}-{app_context.cycle}.xlsx'" in link
    team = _rows(sheets["Team"], "rep")
    shown = app.shown["team"].set_index("rep")
    assert team[name]["commit"] == 125000.0
    assert team["Team"]["reconciled with calls"] == pytest.approx(
        shown.loc["Team", "reconciled with calls"]
    )
    # The team's band is the explorer's for the manager, never the reps' bands added up.
    kpi = explorer.summarise(
        app_context, explorer.Selection(app_context.cycle, manager=manager_name)
    )
    assert (team["Team"]["p10"], team["Team"]["p90"]) == pytest.approx((kpi["p10"], kpi["p90"]))
    assert team["Team"]["p10"] < shown.loc["Team", "statistical forecast"] < team["Team"]["p90"]
    assert (
        team["Team"]["p90"] - team["Team"]["p10"] < (shown["p90"] - shown["p10"]).drop("Team").sum()
    )
    reconciled = _rows(sheets["Reconciled"], "name")
    assert reconciled[name]["reconciled"] == pytest.approx(125000.0, rel=1e-6)
    calls = _rows(sheets["Calls"], "node")
    # The note a manager typed is text in the workbook, never a formula.
    assert calls[name]["note"] == "'" + HOSTILE
    assert calls[name]["new"] == 125000.0 and calls[name]["user"] == MANAGER_USER
    # The view changes: the link to the old file goes.
    app.amount.value = "130000"
    app.submit.click()
    assert app.excel.link.value == ""


def test_whatif_excel_holds_the_scenario_against_the_base(app_context, tmp_path):
    app = whatif.build(session(app_context, scenarios=tmp_path)).app
    app.growth.value = app_context.assumptions.target_growth + 0.2
    plan, base = app.plan(), app_context.plan
    sheets = _sheets(app.excel)
    assert list(sheets) == ["KPIs", "By region", "Assumptions"]
    year = app_context.assumptions.plan_year
    assert f"download='whatif-{year}.xlsx'" in app.excel.link.value
    kpis = _rows(sheets["KPIs"], "KPI")
    target = kpis["Bookings target"]
    assert target["unit"] == "USD/year"
    assert target["scenario"] == pytest.approx(float(plan["total_target"]))
    assert target["base"] == pytest.approx(float(base["total_target"]))
    assert target["change"] == pytest.approx(
        float(plan["total_target"]) - float(base["total_target"])
    )
    regions = _rows(sheets["By region"], "Region")
    assert set(regions) == {str(r) for r in plan["region"].values}
    assert sum(r["Target"] for r in regions.values()) == pytest.approx(float(plan["total_target"]))
    assumptions = {r[0]: r[1] for r in sheets["Assumptions"][1:]}
    assert float(assumptions["target_growth"]) == pytest.approx(app.growth.value)
    app.growth.value = app.growth.value + 0.05
    assert app.excel.link.value == ""


def test_a_chart_is_sent_as_escaped_plotly_json_with_the_bundle_it_needs():
    import plotly.graph_objects as go

    name = '</div><script>alert("x")</script> & =SUM(A1)'
    pane = whatif.layout.FigurePane("revmodel-test-chart")
    pane.show(go.Figure(go.Bar(x=[name, "B"], y=[1.5, 2.0], name=name)))
    assert "<script" not in pane.value
    assert pane.value.count("<") == 2  # the chart's element and its end: the name is escaped
    shown = re.search(r'data-figure="([^"]*)"', pane.value).group(1)
    spec = json.loads(html.unescape(shown))
    assert spec["data"][0]["x"] == [name, "B"] and spec["data"][0]["name"] == name
    assert spec["data"][0]["y"] == [1.5, 2.0] and spec == pane.spec
    assert "data-bundle='basic'" in pane.value  # a bar chart: plotly.js's basic bundle
    pane.show(go.Figure(go.Waterfall(x=["a", "b"], y=[1, -1])))
    assert "data-bundle='full'" in pane.value  # a waterfall: the full bundle
    pane.clear()
    assert pane.value == "" and pane.figure is None


def test_a_plain_figure_is_sent_as_plotly_sends_the_checked_one(app_context):
    # The explorer's chart is built as a plain dict (no Plotly checks on every filter change):
    # the page gets what Plotly's own figure of that dict would send, template included.
    import plotly.graph_objects as go

    page = explorer.build(session(app_context)).app
    page.region.value = page.region.options[1]
    plain = explorer.figure_spec(page.context, page.selection())
    assert plain["layout"]["template"] == "revmodel"
    checked = json.loads(go.Figure(plain).to_json())
    sent = page.chart.spec
    assert sent["data"] == checked["data"]
    assert {**sent["layout"], "meta": None} == {**checked["layout"], "meta": None}
    assert (
        sent["layout"]["template"]["layout"]["font"]
        == go.Figure(layout={"template": "revmodel"}).layout.template.layout.font.to_plotly_json()
    )
    assert [t.name for t in page.chart.figure.data] == [t["name"] for t in plain["data"]]
    # A missing amount is a gap in the line, never 0; a NaN is never sent as a number.
    pane = whatif.layout.FigurePane("revmodel-test-chart")
    with pytest.raises(ValueError):
        pane.show({"data": [{"type": "bar", "x": ["a"], "y": [float("nan")]}], "layout": {}})
    assert pane.value == ""
    series = pd.Series([1.0, np.nan], index=pd.to_datetime(["2026-01-01", "2026-02-01"]))
    assert explorer._points(series) == {"x": ["2026-01-01", "2026-02-01"], "y": [1.0, None]}


def test_the_template_path_holds_the_apps_template_and_plotly(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    first, extra, theirs = serve.template_path({"JUPYTER_PATH": "/x/share"}).split(os.pathsep)
    template = Path(first) / "voila" / "templates" / "revmodel"
    assert json.loads((template / "conf.json").read_text()) == {"base_template": "lab"}
    assert "cdn" not in (template / "index.html.j2").read_text().lower()
    assert (template / "static" / "plotly-basic.min.js").stat().st_size > 500_000
    full = Path(extra) / "voila" / "templates" / "revmodel" / "static" / "plotly.min.js"
    plotly = Path(importlib.util.find_spec("plotly").origin).parent / "package_data"
    assert full.read_bytes() == (plotly / "plotly.min.js").read_bytes()
    assert not full.is_symlink() and theirs == "/x/share"
    # Voila's chunks, each as Voila ships it, in one file beside plotly's.
    static = Path(sys.prefix) / "share/jupyter/voila/templates/base/static"
    bundle = full.with_name(serve.VOILA_BUNDLE).read_bytes()
    assert len(serve.VOILA_CHUNKS) == len(set(serve.VOILA_CHUNKS)) == 72
    parts = [(static / f"{name}.voila.js").read_bytes() for name in serve.VOILA_CHUNKS]
    assert bundle == b"".join(part + b"\n" for part in parts)
    assert bundle.count(b"self.webpackChunk_JUPYTERLAB_CORE_OUTPUT||[]).push(") == 72
    before = full.with_name(serve.VOILA_BUNDLE).stat().st_mtime_ns
    serve.template_path({})  # an unchanged bundle is not written again
    assert full.with_name(serve.VOILA_BUNDLE).stat().st_mtime_ns == before


def test_the_bundle_leaves_out_a_chunk_another_voila_lacks_and_says_so(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(serve, "VOILA_CHUNKS", ("9212", "0000000"))
    with caplog.at_level("WARNING", logger="revmodel.apps.serve"):
        bundle = serve.voila_bundle(tmp_path / "static")
    assert bundle.read_bytes().count(b"self.webpackChunk_JUPYTERLAB_CORE_OUTPUT||[]).push(") == 1
    assert caplog.messages == [
        "Voila's chunks ['0000000'] were not found: pages fetch them one by one."
    ]


def test_a_page_opened_again_resends_no_unchanged_chart(app_context, store_url):
    page = explorer.build(session(app_context, store_url)).app
    sent = []
    page.chart.observe(lambda change: sent.append(change["new"]), names="value")
    revision = page.chart.revision
    page.refresh()  # what a preheated page does when someone opens it
    assert sent == [] and page.chart.revision == revision
    page.region.value = page.region.options[1]
    assert len(sent) == 1 and page.chart.revision == revision + 1
    shown = re.search(r'data-figure="([^"]*)"', sent[0]).group(1)
    spec = json.loads(html.unescape(shown))
    assert spec == page.chart.spec
    assert spec["layout"]["meta"] == {"revision": revision + 1}
    assert spec["data"] == json.loads(page.chart.figure.to_json())["data"]


def test_an_opened_page_is_redrawn_only_when_a_call_changed(app_context, store_url, manager_name):
    page = explorer.build(session(app_context, store_url)).app
    page.period.value = app_context.cycle
    page.manager.value = manager_name
    assert page.kpis.values["commit"] == "–"
    redrawn = []
    refresh = page.refresh
    page.refresh = lambda: (redrawn.append(1), refresh())
    built = layout_calls_version(page)
    assert explorer.layout.refresh_if_changed(page, built) is False and redrawn == []
    # A manager's call in another session: the page opened now shows it.
    caller = forecast_call.build(session(app_context, store_url, MANAGER_USER)).app
    caller.amount.value = "125000"
    caller.submit.click()
    assert caller.message.kind == "ok", caller.message.text
    assert explorer.layout.refresh_if_changed(page, built) is True and redrawn == [1]
    assert page.kpis.values["commit"] == layout_money(125000.0)


def test_an_opened_what_if_reads_scenarios_saved_since(app_context, tmp_path):
    first = whatif.build(session(app_context, scenarios=tmp_path)).app
    other = whatif.build(session(app_context, scenarios=tmp_path)).app
    assert explorer.layout.refresh_if_changed(first, layout_calls_version(first)) is True
    assert first.saved == {}
    other.name.value = "stretch"
    other.save.click()
    assert other.message.kind == "ok"
    explorer.layout.refresh_if_changed(first, layout_calls_version(first))
    assert list(first.saved) == ["stretch"]
    assert "stretch" in text(first.comparison.value)


def layout_calls_version(page) -> int | None:
    return explorer.layout.calls_version(page)


def test_exports_outside_the_project_are_found_through_this_machine_s_record(tmp_path, monkeypatch):
    from revmodel import versions
    from revmodel.apps.published import PublishedPlan

    home, elsewhere = tmp_path / "acme", tmp_path / "exports"
    home.mkdir()
    elsewhere.mkdir()
    (elsewhere / "mapping.yaml").write_text("currency: EUR\n", encoding="utf-8")
    monkeypatch.setattr(config, "HOME", home)
    version = "forecast/FY2027-Q1-20261129T120000000000Z-1"
    # the pack names them without the machine's path, as formatting.display_path does
    plan = PublishedPlan(
        pack_dir=home / "reports" / "FY2027-Q1",
        cycle="FY2027-Q1",
        version=version,
        published="2026-11-29T12:00:00",
        parameters={"data_dir": "…/exports", "mapping": "…/mapping.yaml"},
    )
    assert plan.data_dir is None and plan.mapping is None
    versions.remember_exports(version, elsewhere, elsewhere / "mapping.yaml")
    assert plan.data_dir == elsewhere.resolve()
    assert plan.mapping == (elsewhere / "mapping.yaml").resolve()
    # a record of another version does not apply; a vanished folder is not offered
    other = PublishedPlan(
        plan.pack_dir, "FY2027-Q1", version + "0", plan.published, plan.parameters
    )
    assert other.data_dir is None
    (elsewhere / "mapping.yaml").unlink()
    elsewhere.rmdir()
    assert plan.data_dir is None and plan.mapping is None
