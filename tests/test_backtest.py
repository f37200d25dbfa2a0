"""Tests of revmodel.backtest: metrics, origins, leakage, models and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import backtest, cli
from revmodel.errors import ParameterError


def small_cube(months: int = 36, seed: int = 3) -> xr.Dataset:
    """2 segments x 2 regions x 4 reps x ``months``; each rep sells in one region."""
    rng = np.random.default_rng(seed)
    segs, regs, reps = ["SMB", "Enterprise"], ["EMEA", "APAC"], ["r1", "r2", "r3", "r4"]
    t = pd.date_range("2022-01-01", periods=months, freq="MS")
    season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(months) / 12)
    data = np.zeros((2, 2, 4, months))
    for s in range(2):
        for p in range(4):
            g = p % 2  # r1, r3 in EMEA; r2, r4 in APAC
            level = (s + 1) * (p + 2) * 1000.0
            data[s, g, p] = np.round(level * season * rng.uniform(0.8, 1.2, months))
    ds = xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), data, {"units": "USD/month"})},
        coords={
            "segment": segs,
            "region": regs,
            "rep": reps,
            "month": t.values,
            "manager": ("rep", np.array(["m1", "m1", "m2", "m2"], dtype=object)),
            "end_date": ("rep", np.full(4, np.datetime64("NaT"), dtype="datetime64[ns]")),
        },
        attrs={
            "as_of": f"{t[-1]:%Y-%m-%d}",
            "fiscal_year_start": 2,
            "fiscal_year_naming": "end",
            "currency": "USD",
        },
    )
    return ds


# --------------------------------------------------------------------------- metrics


def test_metrics_by_hand():
    a = np.array([100.0, 200.0, 0.0])
    f = np.array([110.0, 180.0, 0.0])
    assert backtest.wape(a, f) == pytest.approx(30 / 300)
    # (2*10/210 + 2*20/380 + 0) / 3 * 100
    assert backtest.smape(a, f) == pytest.approx(100 * (20 / 210 + 40 / 380) / 3)
    assert backtest.bias(a, f) == pytest.approx(-10 / 300)
    assert backtest.interval_coverage(a, [90, 190, 1], [120, 199, 2]) == pytest.approx(1 / 3)
    assert np.isnan(backtest.interval_coverage(a, [np.nan] * 3, [np.nan] * 3))
    assert np.isnan(backtest.wape([0.0, 0.0], [1.0, 2.0]))


def test_mase_and_seasonal_scale():
    hist = np.array([np.arange(14.0), np.zeros(14)])  # lag-12 differences: 12, 12 and 0, 0
    scale = backtest.seasonal_scale(hist)
    np.testing.assert_allclose(scale, [12.0, 0.0])
    actual = np.array([[20.0, 30.0], [1.0, 1.0]])
    fc = np.array([[26.0, 30.0], [0.0, 0.0]])
    # the zero-scale series is left out: mean(6/12, 0/12)
    assert backtest.mase(actual, fc, scale) == pytest.approx(0.25)
    assert np.isnan(backtest.mase([1.0], [2.0], [0.0]))


def test_metric_shapes_must_match():
    with pytest.raises(
        ParameterError, match=r"actual has shape \(2,\) but forecast has shape \(3,\)"
    ):
        backtest.wape([1, 2], [1, 2, 3])


# --------------------------------------------------------------------------- origins


def test_origins_step_back_from_as_of():
    ds = small_cube()
    got = backtest.origins_for(ds, horizon=3, folds=4, step=3)
    assert [f"{o:%Y-%m}" for o in got] == ["2023-12", "2024-03", "2024-06", "2024-09"]


def test_origins_too_long_for_history():
    ds = small_cube(months=24)
    with pytest.raises(
        ParameterError,
        match=r"backtest: 4 folds 3 months apart with a 3-month horizon reach back 12 months, "
        r"leaving 12 months of history",
    ):
        backtest.origins_for(ds, horizon=3, folds=4, step=3, min_train=13)
    with pytest.raises(ParameterError, match=r"backtest: folds must be a whole number >= 1, got 0"):
        backtest.origins_for(ds, horizon=3, folds=0)


# --------------------------------------------------------------------------- rolling origin


def _fast(ds, **kw):
    return backtest.rolling_origin(ds, 3, method="seasonal_naive", **kw)


def test_rolling_origin_never_sees_after_origin(tmp_path):
    ds = small_cube()
    spiked = ds.copy(deep=True)
    # the last month is after every origin (the last origin is as_of - horizon)
    spiked["bookings"][0, 0, 0, -1] = 1e9
    a = _fast(ds, folds=2, step=3, cache_dir=tmp_path / "c1", models=["base", "reconciled"])
    b = _fast(spiked, folds=2, step=3, cache_dir=tmp_path / "c2", models=["base", "reconciled"])
    np.testing.assert_allclose(a.scores["forecast"], b.scores["forecast"])
    np.testing.assert_allclose(a.scores["lower"], b.scores["lower"])
    old = float(ds["bookings"][0, 0, 0, -1])
    assert (b.scores["actual"] - a.scores["actual"]).max() == pytest.approx(1e9 - old)


def test_rolling_origin_scores_every_level(tmp_path):
    ds = small_cube()
    res = _fast(ds, folds=2, step=2, cache_dir=tmp_path)
    assert [f"{o:%Y-%m}" for o in res.origins] == ["2024-07", "2024-09"]
    assert set(res.metrics["level"]) == set(backtest.LEVEL_ORDER)
    assert set(res.metrics["model"]) == {"reconciled", "base", "bottom_up", "seasonal_naive"}
    total = res.scores[(res.scores["level"] == "total") & (res.scores["model"] == "reconciled")]
    # totals are the sum of the cube over the forecast months
    want = [float(ds["bookings"].sel(month=m).sum()) for m in total["month"]]
    np.testing.assert_allclose(total["actual"], want)
    # reconciled forecasts add up: total = sum of bottom cells per fold and month
    rec = res.scores[res.scores["model"] == "reconciled"]
    per = rec.groupby(["fold", "month", "level"])["forecast"].sum().unstack()
    np.testing.assert_allclose(per["total"], per["bottom"], rtol=1e-6)
    np.testing.assert_allclose(per["region"], per["bottom"], rtol=1e-6)
    table = backtest.summary_table(res)
    assert list(table.columns) == [
        "level", "model", "nodes", "wape", "smape", "mase", "bias", "coverage", "beats_floor",
    ]  # fmt: skip
    assert table["level"].iloc[0] == "total"
    assert table[table["model"] == "seasonal_naive"]["beats_floor"].all()


def test_seasonal_naive_floor_by_hand(tmp_path):
    ds = small_cube()
    res = backtest.rolling_origin(ds, 2, folds=1, models=["seasonal_naive"], cache_dir=tmp_path)
    rows = res.scores[res.scores["level"] == "total"]
    y = ds["bookings"].sum(["segment", "region", "rep"]).values
    np.testing.assert_allclose(rows["forecast"], y[-2 - 12 : -12])
    np.testing.assert_allclose(rows["actual"], y[-2:])
    m = res.metrics[res.metrics["level"] == "total"].iloc[0]
    assert m["wape"] == pytest.approx(np.abs(y[-14:-12] - y[-2:]).sum() / y[-2:].sum())


def test_callable_model_is_summed_up(tmp_path):
    ds = small_cube()

    def zero(history, horizon):
        return xr.zeros_like(history.isel(month=slice(-horizon, None)))

    res = backtest.rolling_origin(ds, 3, folds=1, models={"zero": zero}, cache_dir=tmp_path)
    m = res.metrics.set_index(["model", "level"])
    assert m.loc[("zero", "total"), "wape"] == pytest.approx(1.0)
    assert m.loc[("zero", "bottom"), "bias"] == pytest.approx(-1.0)
    assert "seasonal_naive" in set(res.metrics["model"])  # the floor always runs


def test_unknown_model_and_method():
    ds = small_cube()
    with pytest.raises(ParameterError, match=r"backtest: unknown model 'arima'"):
        backtest.rolling_origin(ds, 3, models=["arima"])
    with pytest.raises(ParameterError, match=r"model 'blend' needs the opportunities table"):
        backtest.rolling_origin(ds, 3, models=["blend"])
    with pytest.raises(ParameterError, match=r"backtest: unknown reconciliation method 'magic'"):
        backtest.rolling_origin(ds, 3, reconcile="magic")
    with pytest.raises(ParameterError, match=r"backtest: measure 'arr' is not in the cube"):
        backtest.rolling_origin(ds, 3, measure="arr")


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_prints_table_and_writes_out(tmp_path, capsys, monkeypatch):
    from revmodel import config, cube

    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    path = cube.save_cube(small_cube(), tmp_path / "c.nc")
    out = tmp_path / "bt.csv"
    code = cli.main(["backtest", str(path), "--horizon", "3", "--folds", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "Backtest of bookings: 2 origins (2024-06, 2024-09), 3 months ahead" in text
    assert "seasonal_naive" in text and "beats_naive" in text
    table = pd.read_csv(out)
    assert set(table["level"]) == set(backtest.LEVEL_ORDER)
    out_json = tmp_path / "bt.json"
    assert (
        cli.main(["backtest", str(path), "--horizon", "3", "--folds", "1", "--out", str(out_json)])
        == 0
    )
    rows = json.loads(out_json.read_text())
    assert {"level", "model", "wape"} <= set(rows[0])


def test_cli_errors(tmp_path, capsys):
    from revmodel import cube

    path = cube.save_cube(small_cube(months=20), tmp_path / "c.nc")
    assert (
        cli.main(["backtest", str(path), "--horizon", "3", "--out", str(tmp_path / "x.txt")]) == 2
    )
    assert "error: --out" in capsys.readouterr().err
    assert cli.main(["backtest", str(path), "--horizon", "3", "--folds", "4"]) == 2
    err = capsys.readouterr().err
    assert "use fewer --folds or a shorter --horizon" in err


@pytest.mark.slow
def test_pipeline_and_blend_on_the_sample_company(tmp_path):
    from revmodel import cube, pipeline, sample

    tables = sample.generate(reps=24, months=36)
    ds = cube.build_cube(tables)
    res = backtest.rolling_origin(
        ds, 3, folds=2, models=["reconciled", "pipeline", "blend"],
        opportunities=tables["opportunities"], cache_dir=tmp_path,
        sampling=backtest.rec.SampleSettings(n_samples=50),
    )  # fmt: skip
    assert set(res.metrics["model"]) == {"reconciled", "pipeline", "blend", "seasonal_naive"}
    inputs = res.blend_inputs
    assert len(inputs) == 2 * 3 * ds.sizes["segment"]
    s = res.scores[res.scores["level"] == "segment"].set_index(["model", "fold", "node", "month"])
    # the blend of each fold uses the weights learned on the other fold
    for fold in (0, 1):
        w = pipeline.learn_blend_weights(inputs[inputs["fold"] != fold])
        rows = inputs[inputs["fold"] == fold]
        for row in rows.itertuples():
            weight = float(w.get(row.segment, w.get(pipeline.POOLED)))
            want = weight * row.stat + (1 - weight) * row.pipeline
            got = s.loc[("blend", fold, row.segment, row.month), "forecast"]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6)
            stat = s.loc[("reconciled", fold, row.segment, row.month), "forecast"]
            assert stat == pytest.approx(row.stat, rel=1e-9, abs=1e-6)


# --------------------------------------------------------------------------- last cycle


def test_last_cycle_accuracy_names_reps_and_leaves_out_idle_ones():
    ds = small_cube(months=36)
    ds["bookings"][:, :, 3, -9:] = 0.0  # r4 left nine months ago: nothing forecast, nothing booked
    ds["end_date"][3] = np.datetime64("2024-03-31")
    ds = ds.assign_coords(
        rep_label=("rep", np.array(["Ann Lee", "Bo Chen", "Cy Diaz", "Di Eng"], dtype=object))
    )
    # fiscal year from February: the cube ends 2024-12, so FY2025-Q4 (Nov-Jan) is not complete;
    # the quarter measured for cycle FY2026-Q1 is FY2025-Q3 (Aug-Oct 2024)
    table, info = backtest.last_cycle_accuracy(ds, "FY2026-Q1", horizon=3)
    assert info["quarter"] == "FY2025-Q3"
    assert info["source"] == "re-run"
    reps = table[table["level"] == "rep"].set_index("name")
    assert sorted(reps.index) == ["Ann Lee", "Bo Chen", "Cy Diaz"]
    months = pd.date_range("2024-08-01", periods=3, freq="MS")
    for rep, name in [("r1", "Ann Lee"), ("r2", "Bo Chen"), ("r3", "Cy Diaz")]:
        expected = float(ds["bookings"].sel(rep=rep, month=months).sum())
        assert reps.loc[name, "actual"] == pytest.approx(expected)
    total = table[table["level"] == "total"].iloc[0]
    assert total["actual"] == pytest.approx(float(ds["bookings"].sel(month=months).sum()))
    assert backtest.accuracy_table(table).set_index("level").loc["rep", "nodes"] == 3
