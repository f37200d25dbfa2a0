"""One definition per metric: every surface shows the value of the one function.

Each KPI is computed by its library function, then read back from every
surface that shows it: the command line, the apps' widgets built headless, the
plan pack's summary and its Excel workbook.
"""

from __future__ import annotations

import re

import numpy as np
import openpyxl
import pytest
import xarray as xr

from revmodel import capacity, cli, kpi, publish, quota, retention, scenario
from revmodel.apps import context as app_context_module
from revmodel.apps import layout, quotas, whatif
from revmodel.cube import load_cube


def _session(ctx, tmp_path):
    return app_context_module.app_context(
        context=ctx, store_url="sqlite://", scenarios_dir=tmp_path / "scenarios"
    )


def _pack_summary(ctx, tmp_path, **results) -> dict:
    """The plan pack's summary of a run folder holding ``results`` (as the notebooks save them)."""
    work = tmp_path / "work"
    publish.save_result(work, "cube", ctx.cube)
    for name, obj in results.items():
        publish.save_result(work, name, obj)
    return publish.summary(work, {"cycle": ctx.cycle, "plan_year": ctx.assumptions.plan_year})


def _excel_summary(summ: dict, path) -> dict:
    publish.write_excel(path, summ, {})
    ws = openpyxl.load_workbook(path)["Summary"]
    return {row[0]: row[1] for row in ws.iter_rows(min_row=2, values_only=True)}


def test_churn_rate_is_one_value_on_every_surface(app_context, small_company, tmp_path, capsys):
    ctx = app_context
    rate = float(retention.churn_rate(ctx.cube))
    # Independently: (contraction + churned ARR over the last 12 months) / ARR 12 months before.
    hist = ctx.cube.rev.actuals().sum(["segment", "region", "rep"])
    tail = hist.isel(month=slice(-12, None))
    opening = float(hist["arr"].isel(month=-13))
    lost = float(tail["contraction_arr"].sum() + tail["churned_arr"].sum())
    assert rate == pytest.approx(lost / opening)
    assert 0.02 < rate < 0.5
    # And from the exported subscriptions.csv alone.
    raw = _sample_subscriptions(small_company[1])
    assert rate == pytest.approx(_raw_churn(raw, ctx.cube.attrs["as_of"]), rel=1e-9)

    # The what-if: the plan's churn rate and the slider's starting value.
    assert float(ctx.plan["total_churn_rate"]) == pytest.approx(rate)
    app = whatif.build(_session(ctx, tmp_path)).app
    assert app.churn.value == pytest.approx(round(rate, 3))
    assert app.churn_history.value is True

    # The cube summary (the library's and the accessor's).
    assert f"last 12 months): {rate:.1%}" in kpi.cube_summary(ctx.cube)
    assert ctx.cube.rev.summary() == kpi.cube_summary(ctx.cube)

    # The KPI catalogue: its churn_rate of the period holding as_of is the same rate.
    k = kpi.compute(ctx.cube, ["churn_rate"], period="fiscal_quarter")["churn_rate"]
    assert float(k.isel(fiscal_quarter=-1)) == pytest.approx(rate, rel=1e-12)
    assert k.attrs["units"] == "ratio/year"

    # The plan pack and its Excel workbook: the summary and the KPI table's last quarter.
    plan = retention.retention_plan(ctx.cube, ctx.assumptions)
    summ = _pack_summary(ctx, tmp_path, retention_plan=plan)
    assert summ["churn_rate"] == pytest.approx(rate)
    assert _excel_summary(summ, tmp_path / "plan.xlsx")["churn_rate"] == pytest.approx(rate)
    kpis = kpi.compute(ctx.cube, period="fiscal_quarter")
    publish.save_result(tmp_path / "work", "kpis", kpis)
    shown = publish.pack_tables(tmp_path / "work", {"cycle": ctx.cycle})["kpis"]
    assert float(shown["churn_rate"].iloc[-1]) == pytest.approx(rate, rel=1e-12)

    # The command line, on a cube it builds from the same exports.
    _, folder = small_company
    out = tmp_path / "cube.nc"
    assert cli.main(["cube", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    shown = re.search(r"Churn rate \(gross revenue churn, last 12 months\): ([\d.]+)%", printed)
    assert shown is not None, printed
    assert float(shown.group(1)) == pytest.approx(
        100 * float(retention.churn_rate(load_cube(out))), abs=0.05
    )


def test_an_assumed_churn_rate_is_the_one_every_surface_shows(app_context, tmp_path):
    ctx = app_context
    assumed = ctx.assumptions.with_changes(churn_rate=0.07)
    assert retention.plan_churn_rate(ctx.cube, assumed) == 0.07
    plan = retention.retention_plan(ctx.cube, assumed)
    assert _pack_summary(ctx, tmp_path, retention_plan=plan)["churn_rate"] == 0.07
    app = whatif.build(_session(ctx, tmp_path)).app
    app.churn.value = 0.07
    assert float(app.plan()["total_churn_rate"]) == pytest.approx(0.07)
    np.testing.assert_allclose(app.plan()["churn_rate"].values, 0.07)


def test_expected_to_attain_is_one_value_on_every_surface(app_context, tmp_path):
    ctx = app_context
    tol = ctx.assumptions.attainment_tolerance
    q = ctx.plan["rep_quota"].sum("month")
    cap = ctx.plan["rep_capacity"].sum("month")
    share = float(quota.expected_attainment(q, cap, tolerance=tol)["share_expected_to_attain"])
    # Independently: reps with a quota whose capacity reaches the tolerance of it.
    has = q.values > 0
    assert share == pytest.approx(np.mean(cap.values[has] >= tol * q.values[has]))

    assert float(ctx.plan["total_reps_expected_to_attain"]) == pytest.approx(share)
    what = whatif.build(_session(ctx, tmp_path)).app
    assert what.kpis.values["reps_expected_to_attain"] == layout.fmt_pct(share)
    page = quotas.build(_session(ctx, tmp_path)).app
    assert page.kpis.values["attain"] == layout.fmt_pct(share)

    # The plan pack reads it from quota.balance, which calls the same function.
    quotas_ds = quota.top_down(ctx.plan_context.inputs, ctx.assumptions, months=ctx.plan["month"])
    capacity = ctx.plan["rep_capacity"].reindex(rep=quotas_ds["rep"].values, fill_value=0.0)
    bal = quota.balance(quotas_ds, expected=capacity, tolerance=tol)
    expected = quota.expected_attainment(quotas_ds["quota"], capacity, tolerance=tol)
    summ = _pack_summary(ctx, tmp_path, balance=bal)
    assert summ["share_expected_to_attain"] == float(expected["share_expected_to_attain"])
    assert summ["share_expected_to_attain"] == pytest.approx(share)


def test_attainment_with_tolerance_is_one_rule(app_context):
    ctx = app_context
    q = ctx.plan["rep_quota"].isel(month=slice(0, 3))
    bookings = q * xr.DataArray(np.linspace(0.5, 1.2, q.sizes["rep"]), dims="rep")
    out = quota.attainment(bookings, q)
    assert out.attrs["tolerance"] == ctx.assumptions.attainment_tolerance == 0.9
    ratio = bookings.sum("month") / q.sum("month")
    np.testing.assert_allclose(out["attainment"].values, ratio.values)
    np.testing.assert_array_equal(out["met"].values, ratio.values >= 0.9 - 1e-12)


@pytest.mark.slow
def test_balance_verdict_is_the_same_on_the_quotas_and_territories_tabs(tmp_path, monkeypatch):
    from revmodel import config, sample

    sample.write(sample.generate(reps=60, months=36, seed=5), tmp_path / "data")
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    ctx = app_context_module.load_context(
        data_dir=tmp_path / "data", forecast_method="seasonal_naive"
    )
    page = quotas.build(_session(ctx, tmp_path)).app
    frame = quotas.quota_frame(ctx)
    assert 0 < int(frame["out_of_line"].sum()) < len(frame)
    assert page.kpis.values["out_of_line"] == str(int(frame["out_of_line"].sum()))
    page.tabs.selected_index = 1  # the territories tab is drawn when it shows
    shown = re.sub(r"<[^>]+>", "|", page.territory_table.value)
    cells = [c.strip() for c in shown.split("|") if c.strip()]
    assert cells.count("out of line") == int(frame["out_of_line"].sum())
    assert cells.count("in line") == int((~frame["out_of_line"]).sum())


@pytest.mark.parametrize("region", [None, "EMEA"])
def test_coverage_is_one_value_on_every_surface(app_context, region):
    """Pipeline coverage: the KPI catalogue, pipeline.coverage, the explorer and the pack agree."""
    from revmodel import pipeline
    from revmodel.apps import explorer

    ctx = app_context
    cube, period = ctx.cube, ctx.cycle
    months = ctx.period_months(period)
    rep_quota = ctx.plan["rep_quota"]
    in_period = rep_quota.sel(month=rep_quota["month"].isin(months.values))
    pipe = cube["pipeline"].sel(month=cube["month"].isin(months.values))
    if region is not None:
        in_period = in_period.isel(rep=np.asarray(in_period["rep_region"].values) == region)
        pipe = pipe.sel(region=region)
    # Independently: open pipeline closing in the quarter over its quota (nothing booked yet:
    # the quarter starts after the actuals).
    assert pd_months_after(months, ctx.as_of)
    expected = float(pipe.sum()) / float(in_period.sum())
    assert 0.2 < expected < 20

    # The library's one function, and pipeline.coverage over the cube's months.
    assert pipeline.coverage_ratio(float(pipe.sum()), float(in_period.sum())) == pytest.approx(
        expected
    )
    target = float(in_period.sum())
    whole = cube["pipeline"] if region is None else cube["pipeline"].sel(region=region)
    assert pipeline.coverage(whole, target, months) == pytest.approx(expected)

    # The KPI catalogue (cube summary tables, the pack's KPI sheet).
    dims = () if region is None else ("region",)
    k = kpi.compute(
        cube, ["pipeline_coverage"], dims=dims, period="fiscal_quarter", quota=rep_quota
    )
    got = k["pipeline_coverage"].sel(fiscal_quarter=period)
    if region is not None:
        got = got.sel(region=region)
    assert float(got) == pytest.approx(expected)

    # The explorer app.
    s = explorer.summarise(ctx, explorer.Selection(period, region=region))
    assert s["coverage"] == pytest.approx(expected)

    # The plan pack's forecast table (HTML, Excel, tables.json).
    quota_ds = ctx.plan[["rep_quota"]].rename(rep_quota="quota")
    level = "total" if region is None else "region"
    table = publish.forecast_table(cube, ctx.forecast, ctx.reconciled, quota_ds, months, level)
    row = table.iloc[0] if region is None else table.set_index("name").loc[region]
    assert float(row["coverage"]) == pytest.approx(expected)
    assert float(row["forecast_to_target"]) == pytest.approx(row["forecast"] / row["target"])


def pd_timestamp(value):
    import pandas as pd

    return pd.Timestamp(value)


def pd_months_after(months, as_of) -> bool:
    """Whether every month of ``months`` comes after ``as_of`` (so nothing is booked yet)."""
    import pandas as pd

    return bool((pd.DatetimeIndex(months) > pd.Timestamp(as_of)).all())


def test_capacity_to_target_is_one_value_on_every_surface(app_context, tmp_path):
    """Capacity / target is "capacity to target" everywhere; "coverage" is the pipeline's only."""
    ctx = app_context
    p = ctx.plan
    # Independently: the plan's capacity over its target, from the per-rep months.
    expected = float(p["rep_capacity"].sum()) / float(p["total_target"])
    assert 0.2 < expected < 5
    assert float(p["total_capacity_to_target"]) == pytest.approx(expected)
    assert "total_coverage" not in p and "coverage" not in p
    assert p["capacity_to_target"].attrs["long_name"] == "Capacity to target: capacity / target"

    # The what-if card, labelled as such.
    app = whatif.build(_session(ctx, tmp_path)).app
    assert whatif.KPI_CARDS["capacity_to_target"] == ("Capacity to target", "pct")
    assert "coverage" not in whatif.KPI_CARDS
    assert app.kpis.values["capacity_to_target"] == layout.fmt_pct(expected)

    # The pack's capacity table and the Excel sheet written from it, as notebook 04 builds them.
    plan = capacity.capacity_plan(ctx.cube, ctx.assumptions)
    quotas = quota.top_down(ctx.cube, ctx.assumptions, capacity=plan)
    gap = capacity.capacity_gap(plan, quotas["segment_quota"])
    work = tmp_path / "work"
    publish.save_result(work, "cube", ctx.cube)
    publish.save_result(work, "gap", gap)
    table = publish.pack_tables(work, {"cycle": ctx.cycle})["capacity"]
    assert "coverage" not in table.columns
    cells = table[table["target"] > 0]
    np.testing.assert_allclose(cells["capacity_to_target"], cells["capacity"] / cells["target"])
    assert float(table["capacity"].sum() / table["target"].sum()) == pytest.approx(expected)
    publish.write_excel(tmp_path / "plan.xlsx", {"cycle": ctx.cycle}, {"capacity": table})
    rows = list(openpyxl.load_workbook(tmp_path / "plan.xlsx")["Capacity"].values)
    col = rows[0].index("capacity_to_target")
    # A cell without a target has no ratio: an empty Excel cell, never 0.
    want = [None if np.isnan(v) else pytest.approx(v) for v in table["capacity_to_target"]]
    assert [r[col] for r in rows[1:]] == want
    assert scenario.PLAN_KPIS["capacity_to_target"][1] == "Capacity to target: capacity / target"


# --------------------------------------------------------------------------- a real-shaped export


@pytest.fixture(scope="module")
def billing(tmp_path_factory):
    """A billing system's subscriptions beside a CRM's deals (tests/exports/billing), as a
    user loads them: ``revmodel init``, ``revmodel map`` completed, ``revmodel cube``.

    Returns (app context, data folder, what ``revmodel cube`` printed, the cube file).
    """
    import contextlib
    import io
    import shutil

    from revmodel import config
    from tests.test_exports import _files, complete

    root = tmp_path_factory.mktemp("billing")
    project = root / "acme"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["init", str(project)]) == 0
        data = project / "data"
        for f in _files("billing"):
            shutil.copy(f, data / f.name)
        mapping = data / "mapping.yaml"
        assert cli.main(["map", *(str(data / f.name) for f in _files("billing")), "--out", str(mapping)]) == 0  # fmt: skip
        mapping.write_text(complete(mapping.read_text(encoding="utf-8"), "billing"), "utf-8")
        start = printed.tell()
        assert cli.main(["cube", str(data), "--out", str(root / "cube.nc")]) == 0
    cube = load_cube(root / "cube.nc")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "CACHE_DIR", root / "cache")
        ctx = app_context_module.load_context(cube=cube, forecast_method="seasonal_naive")
    return ctx, data, printed.getvalue()[start:], root / "cube.nc"


def _raw_churn(subs, as_of, months: int = 12) -> float:
    """Gross revenue churn over the 12 months to ``as_of`` from subscription rows alone.

    ``subs``: account, start, end (NaT while active), arr. A term counts in the months from
    its start month up to (not including) its end month; an account's fall to 0 is churn, a
    fall to more than 0 contraction.
    """
    import pandas as pd

    end_month = pd.Period(as_of, "M")
    axis = pd.period_range(end_month - months, end_month, freq="M")
    s = subs["start"].dt.to_period("M").map(lambda p: p.ordinal).to_numpy()
    e = subs["end"].dt.to_period("M").map(lambda p: p.ordinal if p is not pd.NaT else np.inf)
    m = np.array([p.ordinal for p in axis])
    active = (s[:, None] <= m[None, :]) & (m[None, :] < e.to_numpy(dtype=float)[:, None])
    level = pd.DataFrame(active * subs["arr"].to_numpy()[:, None]).groupby(subs["account"].to_numpy()).sum().to_numpy()  # fmt: skip
    prev, cur = level[:, :-1], level[:, 1:]
    lost = np.where(prev > 0, np.where(cur <= 0, prev, np.maximum(prev - cur, 0.0)), 0.0)
    return float(lost.sum() / level[:, 0].sum())


def _sample_subscriptions(folder):
    """The sample company's subscriptions.csv, read as plain CSV."""
    import pandas as pd

    raw = pd.read_csv(folder / "subscriptions.csv", dtype=str)
    return pd.DataFrame(
        {
            "account": raw["account_id"],
            "start": pd.to_datetime(raw["start_date"]),
            "end": pd.to_datetime(raw["end_date"]),
            "arr": raw["arr"].astype(float),
        }
    )


def _billing_raw(data):
    """The billing export's subscriptions and deals, read as plain CSV."""
    import pandas as pd

    raw = pd.read_csv(data / "billing_subscriptions.csv", dtype=str)
    day = "%m/%d/%Y"
    subs = pd.DataFrame(
        {
            "account": raw["Account Number"],
            "start": pd.to_datetime(raw["Term Start Date"], format=day),
            "end": pd.to_datetime(raw["Cancelled Date"], format=day),
            "arr": raw["ARR"].astype(float),
        }
    )
    deals = pd.read_csv(data / "deals.csv")
    deals["Close Date"] = pd.to_datetime(deals["Close Date"])
    return subs, deals


def test_churn_is_one_value_on_every_surface_of_a_billing_export(billing, tmp_path):
    ctx, data, printed, cube_file = billing
    subs, _ = _billing_raw(data)
    expected = _raw_churn(subs, ctx.cube.attrs["as_of"])
    assert 0.05 < expected < 0.5
    assert subs["end"].notna().any() and subs["end"].isna().any()

    rate = float(retention.churn_rate(ctx.cube))
    assert rate == pytest.approx(expected, rel=1e-9)
    k = kpi.compute(ctx.cube, ["churn_rate"], period="fiscal_quarter")["churn_rate"]
    assert float(k.isel(fiscal_quarter=-1)) == pytest.approx(expected, rel=1e-9)
    label = f"Churn rate (gross revenue churn, last 12 months): {expected:.1%}"
    assert label in kpi.cube_summary(ctx.cube) and label in ctx.cube.rev.summary()
    assert label in printed  # `revmodel cube`
    assert float(retention.churn_rate(load_cube(cube_file))) == pytest.approx(expected, rel=1e-9)
    # The plan, the what-if's starting churn rate, the pack's summary, KPI table and Excel.
    assert float(ctx.plan["total_churn_rate"]) == pytest.approx(expected, rel=1e-9)
    app = whatif.build(_session(ctx, tmp_path)).app
    assert app.churn.value == pytest.approx(round(expected, 3))
    assert app.churn.description == "Churn rate / year"
    summ = _pack_summary(
        ctx,
        tmp_path,
        retention_plan=retention.retention_plan(ctx.cube, ctx.assumptions),
        kpis=kpi.compute(ctx.cube, period="fiscal_quarter"),
    )
    assert summ["churn_rate"] == pytest.approx(expected, rel=1e-9)
    assert _excel_summary(summ, tmp_path / "plan.xlsx")["churn_rate"] == pytest.approx(expected)
    shown = publish.pack_tables(tmp_path / "work", {"cycle": ctx.cycle})["kpis"]
    assert float(shown["churn_rate"].iloc[-1]) == pytest.approx(expected, rel=1e-9)


def test_backlog_of_a_billing_export_without_end_dates_is_missing(billing):
    """Active terms have a blank end date: their remaining value is unknown, never 0."""
    from revmodel import formatting, sources

    ctx, data, _, _ = billing
    subs, _ = _billing_raw(data)
    tables = sources.load(data).tables
    backlog = kpi.compute(ctx.cube, ["backlog"], period="fiscal_quarter", tables=tables)["backlog"]
    as_of = pd_timestamp(ctx.cube.attrs["as_of"])
    assert ((subs["start"] <= as_of) & subs["end"].isna()).any()  # active, no end date
    assert np.isnan(float(backlog.isel(fiscal_quarter=-1)))
    assert formatting.cell("money", float(backlog.isel(fiscal_quarter=-1))) == formatting.MISSING


def test_coverage_and_capacity_to_target_on_a_billing_export(billing, tmp_path):
    """Pipeline coverage and capacity to target, from the raw deals and on every surface."""
    import pandas as pd

    from revmodel import pipeline
    from revmodel.apps import explorer

    ctx, data, _, _ = billing
    _, deals = _billing_raw(data)
    months = ctx.period_months(ctx.cycle)
    assert pd_months_after(months, ctx.as_of)
    in_q = deals["Close Date"].dt.to_period("M").isin(pd.PeriodIndex(months, freq="M"))
    is_open = ~deals["Stage"].isin(["Won", "Lost"])
    raw_pipe = float(deals.loc[in_q & is_open, "Amount"].sum())
    rq = ctx.plan["rep_quota"]
    target_q = float(rq.sel(month=rq["month"].isin(months.values)).sum())
    coverage = raw_pipe / target_q
    assert 0.2 < coverage < 20

    assert pipeline.coverage_ratio(raw_pipe, target_q) == pytest.approx(coverage)
    got = kpi.compute(ctx.cube, ["pipeline_coverage"], period="fiscal_quarter", quota=rq)
    assert float(got["pipeline_coverage"].sel(fiscal_quarter=ctx.cycle)) == pytest.approx(coverage)
    s = explorer.summarise(ctx, explorer.Selection(ctx.cycle))
    assert s["coverage"] == pytest.approx(coverage)
    quota_ds = ctx.plan[["rep_quota"]].rename(rep_quota="quota")
    table = publish.forecast_table(
        ctx.cube, ctx.forecast, ctx.reconciled, quota_ds, months, "total"
    )
    assert float(table.iloc[0]["coverage"]) == pytest.approx(coverage)

    # Capacity to target: the target is last fiscal year's won deals grown by target_growth.
    a = ctx.assumptions
    last_year = int(a.plan_year[2:]) - 1  # the fiscal year is the calendar year here
    won = deals["Stage"].eq("Won") & deals["Close Date"].dt.year.eq(last_year)
    target = float(deals.loc[won, "Amount"].sum()) * (1 + a.target_growth)
    assert float(ctx.plan["total_target"]) == pytest.approx(target, abs=1.0)
    to_target = float(ctx.plan["rep_capacity"].sum()) / float(ctx.plan["total_target"])
    assert float(ctx.plan["total_capacity_to_target"]) == pytest.approx(to_target)
    app = whatif.build(_session(ctx, tmp_path)).app
    assert app.kpis.values["capacity_to_target"] == layout.fmt_pct(to_target)
    plan = capacity.capacity_plan(ctx.cube, a)
    gap = capacity.capacity_gap(plan, quota.top_down(ctx.cube, a, capacity=plan)["segment_quota"])
    publish.save_result(tmp_path / "work", "cube", ctx.cube)
    publish.save_result(tmp_path / "work", "gap", gap)
    cap_table = publish.pack_tables(tmp_path / "work", {"cycle": ctx.cycle})["capacity"]
    assert "coverage" not in cap_table.columns
    ratio = float(cap_table["capacity"].sum() / cap_table["target"].sum())
    assert ratio == pytest.approx(to_target)
    # Capacity to target is not coverage: the two figures differ on this company.
    assert abs(to_target - coverage) > 0.05
