"""A forecast call redraws from what it kept (the team's statistical figures, the
reconciliation's weights and factorisation): the numbers shown must be those of a full
recomputation, on a Salesforce org's exports with another fiscal year (April)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from revmodel import reconcile
from revmodel.apps import context as app_context_module
from revmodel.apps import explorer, forecast_call
from revmodel.overrides import Identity


@pytest.fixture(scope="module")
def salesforce(tmp_path_factory) -> app_context_module.AppContext:
    """The apps' context of a Salesforce org's exports (API field names, picklist stage
    labels, managers on the users), with a fiscal year from April."""
    from revmodel import sample, sources
    from revmodel.cube import build_cube
    from tests.test_valueadd_salesforce import salesforce_org

    root = tmp_path_factory.mktemp("salesforce-calls")
    canonical, org = root / "canonical", root / "org"
    org.mkdir()
    sample.write_sample(canonical, reps=12, months=30, seed=3)
    salesforce_org(canonical, org)
    loaded = sources.load(org, mapping=org / "mapping.yaml")
    cube = build_cube(loaded.tables, fiscal_year_start=4)
    return app_context_module.load_context(cube=cube, forecast_method="seasonal_naive")


def _full_team(ctx, manager: str, period: str) -> pd.DataFrame:
    """The team table computed from scratch, by the explorer's one summary of each rep."""
    live = app_context_module.with_live_forecast(ctx, period)
    rows = []
    for rep in forecast_call.team_reps(ctx, manager):
        sel = explorer.Selection(period, rep=rep)
        s, now = explorer.summarise(ctx, sel), explorer.summarise(live, sel)
        rows.append(
            {"rep": rep, "statistical": s["landing"], "forecast": now["landing"], "p10": s["p10"],
             "p90": s["p90"], "pipeline": s["pipeline"], "quota": s["quota"]}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _lock_effect_key(key: object) -> bool:
    """The page's kept lock effects and counterfactual forecasts (by store version)."""
    return isinstance(key, tuple) and str(key[0]).startswith("effects")


def test_each_redraw_after_a_call_is_the_full_recomputation(salesforce, tmp_path, monkeypatch):
    ctx = salesforce
    managers = sorted(set(map(str, ctx.cube["manager"].values)))
    manager = max(managers, key=lambda m: len(forecast_call.team_reps(ctx, m)))
    reps = forecast_call.team_reps(ctx, manager)
    assert len(reps) >= 2
    team = tmp_path / "team.yaml"
    team.write_text(
        yaml.safe_dump({"users": {"ops": {"role": "admin"}, "lead": {"manager": manager}}})
    )
    monkeypatch.setenv(app_context_module.ENV_TEAM_MAP, str(team))
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    app_context_module.open_store(ctx, url).open_period(ctx.cycle, Identity("ops"))
    page = forecast_call.build(
        app_context_module.app_context(context=ctx, store_url=url, user="lead")
    ).app
    period = str(page.period.value)
    assert period == ctx.cycle

    def submit(node: str, amount: str) -> None:
        page.rep.value = node
        page.amount.value = amount
        page.submit.click()
        assert page.message.kind == "ok", page.message.text
        shown = page.shown["team"].set_index("rep")
        full = _full_team(page.context, manager, period)
        names = [ctx.label("rep", r) for r in full["rep"]]
        assert shown.index[:-1].tolist() == names  # the team, then its total row
        for col, label in (("statistical", "statistical forecast"), ("forecast", "reconciled with calls"),
                           ("p10", "p10"), ("p90", "p90"), ("pipeline", "pipeline"), ("quota", "quota")):  # fmt: skip
            np.testing.assert_array_equal(shown[label].to_numpy()[:-1], full[col].to_numpy())
        live = app_context_module.live_forecast(page.context, period)
        reconcile._STRUCTURES.clear()  # noqa: SLF001 - computed again from nothing
        fresh, notes = ctx.reconcile_with_calls(live.locked, period)
        xr.testing.assert_identical(live.reconciled, fresh)
        assert notes == live.notes
        rec = page.shown["reconciled"].set_index("name")
        for r in reps:
            want = app_context_module.period_total(ctx, fresh, period, "rep", r)
            assert rec.loc[ctx.label("rep", r), "reconciled"] == want
            stat = app_context_module.period_total(ctx, ctx.reconciled, period, "rep", r)
            assert rec.loc[ctx.label("rep", r), "statistical"] == stat
        # Why nodes moved: each lock's counterfactual kept from the last call, or computed
        # again from nothing, gives the same table.
        nodes = [("rep", r) for r in reps] + [("manager", manager)]
        kept = forecast_call.explain_moves(page.context, period, nodes)
        scratch = replace(
            page.context,
            extra={k: v for k, v in page.context.extra.items() if not _lock_effect_key(k)},
        )
        pd.testing.assert_frame_equal(kept, forecast_call.explain_moves(scratch, period, nodes))

    first = f"rep:{reps[0]}"
    submit(first, "125000")
    row = page.shown["reconciled"].set_index("name").loc[ctx.label("rep", reps[0])]
    assert row["reconciled"] == pytest.approx(125000.0, rel=1e-6)  # the call is kept exactly
    moved = forecast_call.explain_moves(page.context, period, [("manager", manager)])
    assert moved["key"].tolist() == [manager]  # the team moved with its rep's call
    assert moved["why"].iloc[0].startswith(f"the commit on {ctx.label('rep', reps[0])} (")
    submit(first, "90000")
    submit(f"rep:{reps[1]}", "40000")
    team_total = float(
        page.shown["reconciled"].set_index("name").loc["Team " + manager, "reconciled"]
    )
    submit(f"manager:{manager}", f"{round(team_total * 1.1)}")
    rec = page.shown["reconciled"].set_index("name")
    assert rec.loc["Team " + manager, "reconciled"] == pytest.approx(
        round(team_total * 1.1), rel=1e-6
    )
    assert rec.loc[ctx.label("rep", reps[0]), "reconciled"] == pytest.approx(90000.0, rel=1e-6)
