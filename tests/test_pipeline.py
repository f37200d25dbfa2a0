"""Tests of revmodel.pipeline: conversion, slippage, weighting, coverage and the blend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import pipeline as pl
from revmodel.errors import DataError, ParameterError


def deals(rows):
    cols = [
        "opportunity_id",
        "stage",
        "amount",
        "created_date",
        "close_date",
        "segment",
        "region",
        "rep_id",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("created_date", "close_date"):
        frame[c] = pd.to_datetime(frame[c])
    return frame


#: Closed history of segment A: cycles of 20, 40, 100 and 200 days; 2 of 4 won.
HISTORY = [
    ("w1", "won", 100.0, "2024-01-01", "2024-01-21", "A", "EU", "r1"),
    ("l1", "lost", 100.0, "2024-01-01", "2024-02-10", "A", "EU", "r1"),
    ("w2", "won", 300.0, "2024-01-01", "2024-04-10", "A", "EU", "r1"),
    ("l2", "lost", 100.0, "2024-01-01", "2024-07-19", "A", "EU", "r1"),
]


def test_stage_conversion_by_age_exact():
    conv = pl.stage_conversion(
        deals(HISTORY), "2024-12", age_edges=(0, 30, 90), prior_deals=0, weight="count"
    )
    got = conv.set_index("age_from_days")["win_rate"]
    # all 4 deals: 2 won; cycle >= 30: 40, 100, 200 -> 1 won of 3; >= 90: 100, 200 -> 1 of 2
    assert got.to_dict() == pytest.approx({0: 0.5, 30: 1 / 3, 90: 0.5})
    by_amount = pl.stage_conversion(deals(HISTORY), "2024-12", age_edges=(0, 90), prior_deals=0)
    assert by_amount["win_rate"].tolist() == pytest.approx([400 / 600, 300 / 400])
    assert by_amount["closed"].tolist() == pytest.approx([600.0, 400.0])


def test_stage_conversion_only_uses_deals_closed_by_as_of():
    conv = pl.stage_conversion(
        deals(HISTORY), "2024-03", age_edges=(0,), prior_deals=0, weight="count"
    )
    assert conv["win_rate"].tolist() == pytest.approx([0.5])  # w1 and l1 only
    with pytest.raises(DataError, match=r"no deal closed won or lost by 2023-12"):
        pl.stage_conversion(deals(HISTORY), "2023-12")
    with pytest.raises(ParameterError, match=r"age_edges must start at 0 days"):
        pl.stage_conversion(deals(HISTORY), "2024-12", age_edges=(30, 90))


def test_shrinkage_pulls_thin_buckets_to_the_segment_rate():
    conv = pl.stage_conversion(
        deals(HISTORY), "2024-12", age_edges=(0, 90), prior_deals=2, weight="count"
    )
    rate = conv.set_index("age_from_days")["win_rate"]
    assert rate[0] == pytest.approx(0.5)  # the overall rate is 0.5 too
    assert rate[90] == pytest.approx((1 + 2 * 0.5) / (2 + 2))


OPEN = [("o1", "proposal", 1000.0, "2024-12-20", "2025-02-15", "A", "EU", "r1")]
CONV = pd.DataFrame(
    {"segment": ["A"], "age_from_days": [0], "closed": [1.0], "won": [1.0], "win_rate": [0.5]}
)


def test_weighted_pipeline_exact():
    point = pd.DataFrame({"A": [1.0]}, index=pd.Index([0], name="offset_months"))
    wp = pl.weighted_pipeline(
        deals(HISTORY + OPEN), "2024-12", horizon=3, conversion=CONV, slip=point
    )
    assert wp.dims == ("segment", "region", "rep", "month")
    assert wp.sel(segment="A", region="EU", rep="r1").values.tolist() == [0.0, 500.0, 0.0]
    assert wp.attrs["units"] == "USD/month"
    assert wp.attrs["open_deals"] == 1


def test_slippage_shifts_mass_later():
    point = pd.DataFrame({"A": [1.0, 0.0]}, index=pd.Index([0, 1], name="offset_months"))
    late = pd.DataFrame({"A": [0.5, 0.5]}, index=pd.Index([0, 1], name="offset_months"))
    kw = {"horizon": 4, "conversion": CONV}
    a = pl.weighted_pipeline(deals(HISTORY + OPEN), "2024-12", slip=point, **kw).sum(
        ["segment", "region", "rep"]
    )
    b = pl.weighted_pipeline(deals(HISTORY + OPEN), "2024-12", slip=late, **kw).sum(
        ["segment", "region", "rep"]
    )
    assert a.values.tolist() == [0.0, 500.0, 0.0, 0.0]
    assert b.values.tolist() == [0.0, 250.0, 250.0, 0.0]
    weights = np.arange(1, 5)
    assert float((b * weights).sum()) > float((a * weights).sum())


def test_overdue_deal_moves_after_as_of():
    overdue = [("o2", "negotiation", 800.0, "2024-10-01", "2024-11-15", "A", "EU", "r1")]
    slip = pd.DataFrame({"A": [0.25, 0.25, 0.5]}, index=pd.Index([0, 1, 2], name="offset_months"))
    wp = pl.weighted_pipeline(
        deals(HISTORY + overdue), "2024-12", horizon=2, conversion=CONV, slip=slip
    )
    # expected 2024-11; closing after 2024-12 leaves offset 2 only -> all in 2025-01
    assert wp.sum(["segment", "region", "rep"]).values.tolist() == [400.0, 0.0]


def test_estimated_slippage_is_a_distribution_around_the_median_cycle():
    slip = pl.slippage(deals(HISTORY), "2024-12")
    assert list(slip.columns) == ["A", pl.POOLED]
    np.testing.assert_allclose(slip.sum(), 1.0)
    # cycles 20, 40, 100, 200 around the median 70 days: -1.6, -1.0, +1.0, +4.3 months
    assert slip["A"][slip["A"] > 0].to_dict() == pytest.approx(
        {-2: 0.25, -1: 0.25, 1: 0.25, 4: 0.25}
    )


def test_reconstructed_pipeline_at_a_past_origin():
    frame = deals(HISTORY + OPEN)
    past = pl.open_deals(frame, "2024-02", reconstruct=True)
    # w1 closed in January; l1 closed on 2024-02-10; w2, l2 were still open at the end of February
    assert sorted(past["amount"].tolist()) == [100.0, 300.0]
    now = pl.open_deals(frame, "2024-12")
    assert now["amount"].tolist() == [1000.0]


def test_coverage_exact():
    months = pd.date_range("2026-11-01", periods=6, freq="MS")
    pipe = xr.DataArray(
        np.array([[100.0, 100.0, 100.0, 50.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0, 0.0, 0.0]]),
        dims=("segment", "month"),
        coords={"segment": ["A", "B"], "month": months.values},
        attrs={"fiscal_year_start": 2, "fiscal_year_naming": "end"},
    )
    # fiscal year starting in February: FY2027-Q4 is Nov, Dec, Jan
    assert pl.coverage(pipe, 155.0, "FY2027-Q4") == pytest.approx(2.0)
    assert pl.coverage(pipe, 400.0, "FY2027-Q4", booked=245.0) == pytest.approx(2.0)
    target = xr.DataArray([150.0, 0.0], dims="segment", coords={"segment": ["A", "B"]})
    got = pl.coverage(pipe, target, months[:3])
    assert got.sel(segment="A") == pytest.approx(2.0)
    assert np.isnan(got.sel(segment="B"))


def test_blend_weights_recovered():
    rng = np.random.default_rng(0)
    n = 40
    stat = rng.uniform(50, 150, 2 * n)
    pipe = rng.uniform(20, 200, 2 * n)
    w = np.r_[np.full(n, 0.7), np.full(n, 0.2)]
    frame = pd.DataFrame(
        {
            "segment": ["A"] * n + ["B"] * n,
            "stat": stat,
            "pipeline": pipe,
            "actual": w * stat + (1 - w) * pipe,
        }
    )
    got = pl.learn_blend_weights(frame)
    assert got["A"] == pytest.approx(0.7, abs=1e-9)
    assert got["B"] == pytest.approx(0.2, abs=1e-9)
    assert 0.2 <= got[pl.POOLED] <= 0.7
    with pytest.raises(ParameterError, match=r"learn_blend_weights needs a table with columns"):
        pl.learn_blend_weights(frame.drop(columns="pipeline"))


def test_blend_weights_stay_in_unit_interval():
    frame = pd.DataFrame(
        {
            "segment": ["A"] * 3,
            "stat": [1.0, 2.0, 3.0],
            "pipeline": [2.0, 3.0, 4.0],
            "actual": [0.0, 1.0, 2.0],
        }
    )
    assert pl.learn_blend_weights(frame)["A"] == 1.0  # the truth (w = 2) lies outside [0, 1]


def test_blend_arithmetic_and_bad_weights():
    stat = xr.DataArray(
        [[10.0, 20.0], [30.0, 40.0]],
        dims=("segment", "month"),
        coords={"segment": ["A", "B"], "month": [1, 2]},
    )
    pipe = xr.DataArray(
        [[0.0, 10.0], [10.0, 0.0]],
        dims=("segment", "month"),
        coords={"segment": ["A", "B"], "month": [1, 2]},
    )
    out = pl.blend(stat, pipe, {"A": 0.5, "B": 1.0})
    assert out.values.tolist() == [[5.0, 15.0], [30.0, 40.0]]
    assert pl.blend(stat, pipe, 0.0).values.tolist() == pipe.values.tolist()
    with pytest.raises(ParameterError, match=r"blend weights must lie in \[0, 1\]"):
        pl.blend(stat, pipe, {"A": 1.5, "B": 0.5})


def test_blended_forecast_current_and_next_quarter():
    from revmodel import cube

    rows = [
        (f"h{i}", "won" if i % 2 else "lost", 1000.0, "2024-01-01", d, "A", "EU", "r1")
        for i, d in enumerate(
            pd.date_range("2024-02-01", "2026-09-01", freq="MS").strftime("%Y-%m-%d")
        )
    ]
    rows.append(("o1", "proposal", 4000.0, "2026-09-01", "2026-12-10", "A", "EU", "r1"))
    opps = deals(rows)
    ds = cube.build_cube({"opportunities": opps}, fiscal_year_start=2, as_of="2026-10")
    months = pd.date_range("2026-11-01", periods=6, freq="MS")
    stat = xr.DataArray(
        np.full((1, 1, 1, 6), 100.0),
        dims=("segment", "region", "rep", "month"),
        coords={"segment": ["A"], "region": ["EU"], "rep": ["r1"], "month": months.values},
    )
    out = pl.blended_forecast(ds, opps, stat, 1.0)
    assert out["fiscal_quarter"].values.tolist() == ["FY2027-Q4", "FY2028-Q1"]
    # as_of 2026-10 closes FY2027-Q3, so nothing is booked yet in the current quarter
    assert out["booked"].sum(["segment", "region", "rep"]).values.tolist() == [0.0, 0.0]
    assert out["forecast"].sum(["segment", "region", "rep"]).values.tolist() == [300.0, 300.0]
    assert float(out["open_pipeline"].sum()) == 4000.0
    assert float(out["weighted_pipeline"].sum()) > 0
    pipe_only = pl.blended_forecast(ds, opps, stat, 0.0)
    np.testing.assert_allclose(pipe_only["forecast"].values, pipe_only["weighted_pipeline"].values)
    with pytest.raises(ParameterError, match=r"forecast with horizon >= 6"):
        pl.blended_forecast(ds, opps, stat.isel(month=slice(0, 3)), 1.0)
