"""Tests of the charts: figure data (trace types, values), not pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import xarray as xr

from revmodel import plots


@pytest.fixture
def cube() -> xr.Dataset:
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    values = np.arange(2 * 2 * 3 * 12, dtype=float).reshape(2, 2, 3, 12)
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), values)},
        coords={"segment": ["SMB", "ENT"], "region": ["EU", "US"], "rep": ["a", "b", "c"], "month": months},
        attrs={"as_of": "2024-12-01"},
    )  # fmt: skip


@pytest.fixture
def fc() -> xr.Dataset:
    months = pd.date_range("2025-01-01", periods=3, freq="MS")
    q = np.array([0.1, 0.5, 0.9])
    node_fc = np.array([[[90.0, 100.0, 110.0]] * 3, [[40.0, 50.0, 60.0]] * 3])
    return xr.Dataset(
        {
            "node_forecast": (("node", "month", "quantile"), node_fc),
            "node_mean": (("node", "month"), node_fc[:, :, 1]),
        },
        coords={"node": ["total", "region=EU"], "month": months, "quantile": q,
                "level": ("node", ["total", "region"])},
    )  # fmt: skip


def test_fan_chart_has_history_band_forecast_and_target(cube, fc):
    quota = xr.Dataset(
        {"quota": (("rep", "month"), np.full((2, 3), 60.0))},
        coords={"rep": ["a", "b"], "month": fc["month"].values},
    )
    fig = plots.forecast_fan(cube, fc, quota=quota, cycle_months=fc["month"].values)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names == ["Actual", "P90", "10-90% band", "Forecast", "Target"]
    hist = cube["bookings"].sum(("segment", "region", "rep")).values
    np.testing.assert_allclose(fig.data[0].y, hist)
    np.testing.assert_allclose(fig.data[1].y, [110.0] * 3)
    np.testing.assert_allclose(fig.data[2].y, [90.0] * 3)
    assert fig.data[2].fill == "tonexty"
    np.testing.assert_allclose(fig.data[3].y, [100.0] * 3)
    np.testing.assert_allclose(fig.data[4].y, [120.0] * 3)
    assert fig.layout.template.layout.font.family.startswith("DejaVu Sans")


def test_fan_chart_uses_the_reconciled_forecast(cube, fc):
    rec = xr.DataArray(
        np.ones((2, 2, 3, 3)), dims=("segment", "region", "rep", "month"),
        coords={"month": fc["month"].values},
    )  # fmt: skip
    fig = plots.forecast_fan(cube, fc, rec)
    np.testing.assert_allclose(fig.data[3].y, [12.0] * 3)


def test_bookings_vs_target_bars_and_band():
    t = pd.DataFrame({"name": ["EU", "US"], "forecast": [10.0, 20.0], "p10": [8.0, 15.0],
                      "p90": [13.0, 22.0], "target": [12.0, 18.0]})  # fmt: skip
    fig = plots.bookings_vs_target(t)
    assert [tr.type for tr in fig.data] == ["bar", "bar"]
    assert list(fig.data[0].y) == [10.0, 20.0] and list(fig.data[1].y) == [12.0, 18.0]
    assert list(fig.data[0].error_y.array) == [3.0, 2.0]
    assert list(fig.data[0].error_y.arrayminus) == [2.0, 5.0]


def test_arr_bridge_waterfall_closes():
    q = ["Q1", "Q2"]
    b = xr.Dataset(
        {"opening": ("fiscal_quarter", [100.0, 110.0]), "new": ("fiscal_quarter", [10.0, 5.0]),
         "expansion": ("fiscal_quarter", [2.0, 3.0]), "contraction": ("fiscal_quarter", [1.0, 1.0]),
         "churn": ("fiscal_quarter", [1.0, 2.0]), "closing": ("fiscal_quarter", [110.0, 115.0])},
        coords={"fiscal_quarter": q}, attrs={"period": "fiscal_quarter"},
    )  # fmt: skip
    fig = plots.arr_bridge(b)
    (w,) = fig.data
    assert w.type == "bar"  # drawn by plotly.js's basic bundle
    assert list(w.y) == [100.0, 15.0, 5.0, -2.0, -3.0, 115.0]
    assert list(w.customdata) == ["absolute", *["relative"] * 4, "total"]
    assert sum(w.y[:-1]) == w.y[-1]
    # each bar stands where the ones before it ended; opening and closing on zero
    assert list(w.base) == [0.0, 100.0, 115.0, 120.0, 118.0, 0.0]
    tops = [b + v for b, v in zip(w.base, w.y, strict=True)]
    assert tops == [100.0, 115.0, 120.0, 118.0, 115.0, 115.0]
    green, red, total = plots.COLORS["positive"], plots.COLORS["negative"], plots.COLORS["total"]
    assert list(w.marker.color) == [total, green, green, red, red, total]
    assert list(w.x)[0] == "Opening Q1" and list(w.x)[-1] == "Closing Q2"
    # the highest bar (after expansion: 100 + 15 + 5 = 120) is inside the axis, room for its label
    low, high = fig.layout.yaxis.range
    assert high == pytest.approx(120.0 * 1.08) and low == pytest.approx(100.0 * 0.8)


def test_quota_balance_splits_out_of_line_reps():
    t = pd.DataFrame({"rep": ["a", "b", "c"], "full_year_quota": [100.0, 200.0, 500.0],
                      "potential": [1.0, 2.0, 2.0], "out_of_line": [False, False, True]})  # fmt: skip
    fig = plots.quota_balance(t)
    assert [tr.name for tr in fig.data] == ["In line", "Out of line", "Median ratio"]
    assert list(fig.data[0].text) == ["a", "b"] and list(fig.data[1].text) == ["c"]
    np.testing.assert_allclose(fig.data[2].y / fig.data[2].x.clip(1e-9), [0.0, 100.0], atol=1e-6)


def test_territory_balance_before_after():
    b = pd.DataFrame({"rep_id": ["a", "b", "c"], "status": ["active", "active", "left"],
                      "deviation_before": [0.3, -0.3, 0.0], "deviation_after": [0.01, -0.01, 0.0]})  # fmt: skip
    fig = plots.territory_balance(b)
    assert [tr.name for tr in fig.data] == ["Before", "After"]
    assert list(fig.data[0].x) == ["b", "a"]
    assert list(fig.data[1].y) == [-0.01, 0.01]


def test_scenario_comparison_one_trace_per_scenario():
    t = pd.DataFrame({"scenario": ["base", "down"], "target": [10.0, 10.0], "capacity": [9.0, 7.0],
                      "gap": [1.0, 3.0]})  # fmt: skip
    fig = plots.scenario_comparison(t)
    assert [tr.name for tr in fig.data] == ["base", "down"]
    assert list(fig.data[1].y) == [10.0, 7.0, 3.0]
    assert list(fig.data[0].x) == ["target", "capacity", "gap"]


def test_accuracy_scatter_and_diagonal():
    t = pd.DataFrame({"level": ["total", "region", "region"], "name": ["Company", "EU", "US"],
                      "forecast": [30.0, 10.0, 20.0], "p10": [25.0, 8.0, 15.0], "p90": [35.0, 12.0, 25.0],
                      "actual": [28.0, 11.0, 17.0]})  # fmt: skip
    fig = plots.accuracy(t)
    assert [tr.name for tr in fig.data] == ["region", "Perfect forecast"]
    assert list(fig.data[0].x) == [11.0, 17.0] and list(fig.data[0].y) == [10.0, 20.0]


def test_divs_do_not_fetch_plotly_and_js_is_inline():
    div = plots.to_div(go.Figure(go.Bar(x=[1], y=[2])))
    assert "<script src" not in div and "cdn.plot.ly" not in div
    assert "Plotly.newPlot" in div
    assert len(plots.plotly_js()) > 1_000_000


@pytest.mark.parametrize(("currency", "symbol"), [("EUR", "€"), ("GBP", "£"), ("CHF", "CHF ")])
def test_money_charts_are_labelled_in_the_data_currency(currency, symbol):
    table = pd.DataFrame(
        {"name": ["A"], "forecast": [1.0e6], "p10": [0.8e6], "p90": [1.2e6], "target": [1.1e6]}
    )
    fig = plots.bookings_vs_target(table, currency=currency)
    assert fig.layout.yaxis.tickprefix == symbol
    assert fig.layout.yaxis.tickformat == "~s"
    row = pd.Series(
        {"opening": 1e6, "new": 2e5, "pulled_in": 0.0, "pushed_out": 1e5, "increased": 0.0,
         "decreased": 0.0, "won": 3e5, "lost": 0.0, "closing": 8e5}
    )  # fmt: skip
    wf = plots.pipeline_waterfall(row, "What changed", currency=currency)
    # the pack's one money format: the sign before the symbol, a zero bar as 0
    assert list(wf.data[0].text) == [
        f"{symbol}1.0M", f"{symbol}200K", f"{symbol}0", f"-{symbol}100K", f"{symbol}0",
        f"{symbol}0", f"-{symbol}300K", f"{symbol}0", f"{symbol}800K",
    ]  # fmt: skip
    assert "USD" not in wf.to_json() and "$" not in wf.to_json()


def test_quota_balance_title_names_what_the_x_axis_holds():
    base = {"rep": ["R1", "R2"], "full_year_quota": [1e6, 2e6], "out_of_line": [False, True]}
    by_capacity = plots.quota_balance(pd.DataFrame({**base, "capacity_year": [1.1e6, 1.9e6]}))
    assert by_capacity.layout.title.text == "Quota balance: full-year quota against capacity"
    assert by_capacity.layout.xaxis.title.text == "Capacity over the plan year [USD]"
    by_potential = plots.quota_balance(
        pd.DataFrame({**base, "capacity_year": [1.1e6, 1.9e6], "potential": [10.0, 30.0]})
    )
    assert by_potential.layout.title.text == "Quota balance: full-year quota against potential"
    assert by_potential.layout.xaxis.title.text == "Potential (territory score)"
