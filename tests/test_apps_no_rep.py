"""The apps open on data that names no rep (an orders-only export), and say what is not provided.

The sections that plan sellers (quotas, scenarios) say it in the plan pack's
words (:func:`revmodel.sections.note`); the forecast and actuals show as usual.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from revmodel import config, mapdraft, sections
from revmodel.apps import context as app_context_module
from revmodel.apps import explorer, forecast_call, quotas, weekly, whatif

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
        s["forecast"]
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
    project = tmp_path / "acme"
    _orders_project(project)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    env.pop("REVMODEL_HOME", None)
    run = subprocess.run(
        [sys.executable, "-m", "revmodel", "plan", "--data", "data"],
        cwd=project, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "apps context prepared" in run.stderr
    assert "context was not prepared" not in run.stderr
    monkeypatch.setattr(config, "HOME", project)
    monkeypatch.setattr(config, "REPORTS_DIR", project / "reports")
    monkeypatch.setattr(config, "CACHE_DIR", project / ".cache" / "revmodel")
    monkeypatch.delenv(app_context_module.ENV_CUBE, raising=False)
    app_context_module.clear_cache()
    try:
        ctx = app_context_module.load_context()
        assert ctx.published is not None and ctx.published.sections == (
            "forecast",
            "kpis",
            "accuracy",
        )
        _check_pages(ctx)
    finally:
        app_context_module.clear_cache()
