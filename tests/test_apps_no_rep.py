"""The apps open on data that names no rep (an orders-only export), and say what is not provided.

The sections that plan sellers (quotas, scenarios) say it in the plan pack's
words (:func:`revmodel.sections.note`); the forecast and actuals show as usual.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import config, mapdraft, sections
from revmodel.apps import context as app_context_module
from revmodel.apps import explorer, forecast_call, quotas, weekly, whatif
from tests.conftest import assert_plan_ran_cleanly, run_revmodel
from tests.exports import generate

ORDERS = Path(__file__).parent / "exports" / "orders" / "orders.csv"
NO_REP = (
    "no rep is known — add the reps table, or map the owner column (rep_id) of the opportunities"
)
APPS = (explorer, forecast_call, quotas, weekly, whatif)


def _text(widget) -> str:
    """Every visible text of a page (its HTML widgets' values, tags and stylesheet aside)."""
    parts = []
    value = getattr(widget, "value", None)
    if isinstance(value, str):
        value = re.sub(r"<style.*?</style>", "", value, flags=re.DOTALL)
        parts.append(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", value)).strip())
    for child in getattr(widget, "children", ()):
        parts.append(_text(child))
    return " | ".join(p for p in parts if p)


def _orders_project(root: Path) -> Path:
    """A project folder with the orders export and its drafted mapping in ``data/``."""
    data = root / "data"
    data.mkdir(parents=True)
    shutil.copy(ORDERS, data / ORDERS.name)
    draft = mapdraft.draft([data / ORDERS.name])
    (data / "mapping.yaml").write_text(mapdraft.to_yaml(draft), encoding="utf-8")
    return data


def _check_pages(ctx) -> None:
    session = app_context_module.app_context(context=ctx, store_url="sqlite://")
    assert ctx.rep_known is False and ctx.plan is None
    pages = {m.__name__.rsplit(".", 1)[-1]: _text(m.build(session)) for m in APPS}
    quotas_note = f"Quotas, attainment and balance: not provided — {NO_REP}."
    assert quotas_note == sections.no_rep_note("quotas")
    assert quotas_note in pages["quotas"]
    assert f"Scenario comparison: not provided — {NO_REP}." in pages["whatif"]
    assert quotas_note in pages["explorer"]
    assert f"Calls by rep and team: not provided — {NO_REP}." in pages["forecast_call"]
    # The forecast still shows: the company's quarter, in the explorer's cards.
    page = explorer.build(session).app
    s = explorer.summarise(page.context, page.selection())
    assert s["forecast"] > 0 and page.kpis.values["forecast"] == explorer.layout.fmt_money(
        s["forecast"], ctx.cube.attrs.get("currency")
    )
    assert page.kpis.values["quota"] == "–"  # not provided: missing, never 0
    assert ctx.rep_quota().sizes == {"rep": 0, "month": 0}
    assert "No pipeline history" in pages["weekly"]


def test_apps_open_on_an_orders_export_without_reps(tmp_path, monkeypatch):
    data = _orders_project(tmp_path)
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(app_context_module.ENV_CUBE, raising=False)
    app_context_module.clear_cache()
    try:
        ctx = app_context_module.load_context(data_dir=data, forecast_method="seasonal_naive")
        _check_pages(ctx)
    finally:
        app_context_module.clear_cache()


@pytest.mark.slow
def test_plan_of_an_orders_export_prepares_apps_that_open(tmp_path, monkeypatch):
    """``revmodel plan --params`` of a file in a subfolder, run from another folder: the
    file's relative paths start at its folder; the apps, started after it, open on the plan; the pack's band
    is the reconciled paths' own."""
    project = tmp_path / "acme"
    _orders_project(project)
    plans = project / "plans" / "q4"
    plans.mkdir(parents=True)
    (plans / "plan.yaml").write_text(
        "data_dir: ../../data\nmapping: ../../data/mapping.yaml\n", encoding="utf-8"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = run_revmodel(["plan", "--params", plans / "plan.yaml"], cwd=elsewhere)
    assert_plan_ran_cleanly(run)
    # the apps' context is left to their first start, which reads this pack
    assert "the apps read it from their next start (`revmodel serve`)" in run.stderr
    pack = elsewhere / "reports" / "FY2026-Q4"
    with xr.open_dataset(pack / "plan.nc", group="cube") as cube:
        assert float(cube["bookings"].sum()) == pytest.approx(
            generate.won_total("orders"), abs=0.01
        )
    _check_band(pack)
    monkeypatch.setattr(config, "HOME", elsewhere)
    monkeypatch.setattr(config, "REPORTS_DIR", elsewhere / "reports")
    monkeypatch.setattr(config, "CACHE_DIR", elsewhere / ".cache" / "revmodel")
    monkeypatch.delenv(app_context_module.ENV_CUBE, raising=False)
    app_context_module.clear_cache()
    try:
        from revmodel.apps import cache, serve

        serve.warm()  # what `revmodel serve` does first: the context, written to its cache
        plan = cache.published_plan(None)
        assert cache.context_cache_path(None, cache.forecast_method(), plan).is_file()
        ctx = app_context_module.load_context()
        assert ctx.published is not None and ctx.published.sections == (
            "forecast",
            "kpis",
            "accuracy",
        )
        _check_pages(ctx)
    finally:
        app_context_module.clear_cache()


def _check_band(pack: Path) -> None:
    """The company's band of the cycle: the quantiles of the reconciled paths' quarter totals."""
    from revmodel import encoding
    from revmodel.publish import tables as pack_tables

    summary = json.loads((pack / "tables.json").read_text(encoding="utf-8"))["summary"]
    with xr.open_dataset(pack / "plan.nc", group="forecast") as f:
        fc = encoding.decode(f.load())
    months = list(pd.date_range("2026-10-01", periods=3, freq="MS").values)
    paths = pack_tables.reconciled_paths(fc, "mint_shrink")
    assert np.isfinite(paths.samples).all()
    (band,), names = pack_tables.level_band(fc, months, "total", paths)
    assert names == ["Company"] and list(fc["quantile"].values) == [0.1, 0.5, 0.9]
    lower, median, upper = band
    assert np.isfinite(band).all() and 0 <= lower <= median <= upper
    assert (summary["quarter_p10"], summary["quarter_p90"]) == pytest.approx((lower, upper))
    assert lower <= summary["quarter_forecast"] <= upper
    # Each region's paths add up to the company's, path by path.
    regions, _ = pack_tables.level_band(fc, months, "region", paths)
    assert regions[:, 0].sum() < lower and regions[:, 2].sum() > upper
    # Not the sum of the months' bounds floored at 0: one end apart is enough (here the upper
    # ends are 0.7% apart, the lower ends a factor of 100).
    total = fc["node_forecast"].isel(node=int(np.flatnonzero(fc["level"].values == "total")[0]))
    monthly = total.sel(month=months).values
    floored = np.maximum(monthly, 0.0).sum(axis=0)
    assert abs(floored[0] - lower) > 0.01 * lower or abs(floored[2] - upper) > 0.01 * upper
