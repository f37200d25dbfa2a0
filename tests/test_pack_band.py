"""The plan pack's 10-90% band is the calibrated one ``revmodel forecast --calibrate-bands`` writes.

On a Pipedrive deals export (pound amounts, its own headers and stages, a fiscal year
starting in April), not the sample company: the pack's paths and the forecast
command's are one definition (:func:`revmodel.forecast.coherent_paths`), drawn with
the same band factors, learned on the same past origins.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import backtest, forecast, mapdraft
from revmodel import reconcile as rc
from revmodel.cli import main
from revmodel.publish import tables as pack_tables

pytestmark = pytest.mark.slow

PIPEDRIVE = Path(__file__).parent / "exports" / "pipedrive" / "deals-export.csv"
HORIZON, FOLDS = 6, 2


@pytest.fixture(scope="module")
def pipedrive(tmp_path_factory) -> dict:
    """The export's cube, the forecast command's calibrated forecast, and the pack's forecast."""
    root = tmp_path_factory.mktemp("pipedrive")
    data = root / "data"
    data.mkdir()
    shutil.copy(PIPEDRIVE, data / PIPEDRIVE.name)
    draft = mapdraft.draft([data / PIPEDRIVE.name])
    (data / "mapping.yaml").write_text(mapdraft.to_yaml(draft), encoding="utf-8")
    args = ["--fiscal-year-start", "4", "--out", str(root / "cube.nc")]
    assert main(["cube", str(data), "--mapping", str(data / "mapping.yaml"), *args]) == 0
    out = str(root / "fc.nc")
    calibrate = ["--calibrate-bands", str(FOLDS)]
    assert main(["forecast", str(root / "cube.nc"), "--horizon", str(HORIZON), *calibrate, "--out", out]) == 0  # fmt: skip
    with xr.open_dataset(root / "cube.nc") as c:
        cube = c.load()
    with xr.open_dataset(out) as f:
        command = f.load()
    # The plan's way (notebook 02): the base forecast, then the calibration stated on it.
    base = forecast.forecast_cube(cube, horizon=HORIZON, progress=False)
    plan = backtest.with_calibrated_bands(base, cube, FOLDS, "mint_shrink")
    return {"cube": cube, "command": command, "plan": plan}


def test_the_pack_states_the_calibration_the_command_applied(pipedrive):
    cube, command, plan = pipedrive["cube"], pipedrive["command"], pipedrive["plan"]
    assert cube.attrs["currency"] == "GBP" and int(cube.attrs["fiscal_year_start"]) == 4
    cal = rc.BandCalibration.from_attrs(plan.attrs)
    assert cal == rc.BandCalibration.from_attrs(command.attrs)
    assert command.attrs["band_scale"] == plan.attrs["band_scale"] == cal.factors_text()
    # the origins: the last FOLDS that leave HORIZON months of actuals up to as_of
    as_of = pd.Timestamp(cube.attrs["as_of"])
    first = as_of - pd.DateOffset(months=HORIZON)
    expected = [f"{first - pd.DateOffset(months=HORIZON * k):%Y-%m}" for k in (1, 0)]
    assert list(cal.origins) == expected and cal.horizon == HORIZON
    assert cal.method == "mint_shrink" and set(cal.scale.levels) >= {"total", "rep"}
    assert all(f != 1.0 for f in cal.scale.factors)  # learned, not the models' own
    assert [len(row) for row in cal.scale.by_step] == [HORIZON] * len(cal.scale.levels)
    ranges = ", ".join(
        f"{lv} {min(row):.2f}-{max(row):.2f}"
        for lv, row in zip(cal.scale.levels, cal.scale.by_step, strict=True)
    )
    statement = pack_tables.band_statement(plan)
    assert statement == (
        f"10-90% bands calibrated on 2 past origins (factors: {cal.factors_text()}); by month "
        f"ahead {ranges}; learned on the backtest of mint_shrink forecasts from {expected[0]} "
        f"and {expected[1]}, {HORIZON} months ahead each, to hold 80% of actuals at every level"
    )


def test_pack_band_equals_the_forecast_commands_at_every_node_and_month(pipedrive):
    command, plan = pipedrive["command"], pipedrive["plan"]
    paths = pack_tables.reconciled_paths(plan, "mint_shrink")
    got = paths.quantiles
    want = command["node_forecast"].transpose("node", "month", "quantile").values
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # the models' own band differs: the calibration changed what the pack shows
    own = pack_tables.reconciled_paths(plan.assign_attrs(band_calibration=""), "mint_shrink")
    assert np.abs(own.quantiles[..., 2] - got[..., 2]).max() > 1.0
    # a one-month period of the pack: each level's p10/p90 is the command's node quantile
    month = command["month"].values[0]
    for level, fc_level in (("total", "total"), ("region", "region"), ("rep", "rep")):
        band, names = pack_tables.level_band(plan, [month], level, paths)
        nodes = command["node_forecast"].where(command["level"] == fc_level, drop=True)
        key = "node_rep" if level == "rep" else f"node_{level}"
        labels = ["Company"] if level == "total" else [str(v) for v in nodes[key].values]
        node_q = nodes.sel(month=month).transpose("node", "quantile").values
        expected = dict(zip(labels, node_q, strict=True))
        assert set(names) == set(expected), level
        for name, row in zip(names, band, strict=True):
            np.testing.assert_allclose(row, expected[name], rtol=1e-9, atol=1e-6)


def test_each_reps_forecast_of_the_quarter_lies_inside_its_band(pipedrive):
    cube, plan = pipedrive["cube"], pipedrive["plan"]
    reconciled, _ = forecast.reconcile_forecast(plan, cube, method="mint_shrink")
    months = pd.DatetimeIndex(plan["month"].values[:3])
    paths = pack_tables.reconciled_paths(plan, "mint_shrink")
    table = pack_tables.forecast_table(cube, plan, reconciled, None, months, "rep", paths)
    shown = table[table["forecast"] > 0]
    assert len(shown) >= 5
    inside = (shown["p10"] <= shown["forecast"]) & (shown["forecast"] <= shown["p90"])
    assert inside.all(), shown.loc[~inside, ["name", "p10", "forecast", "p90"]]
    # the same quarter of the company: its band is its own paths' quarter totals
    total = pack_tables.forecast_table(cube, plan, reconciled, None, months, "total", paths)
    sums = paths.samples[0, :3].sum(axis=0)
    assert (total["p10"].iloc[0], total["p90"].iloc[0]) == pytest.approx(
        tuple(np.quantile(sums, [0.1, 0.9]))
    )


def test_too_short_a_history_keeps_the_models_bands_and_says_why(pipedrive):
    cube = pipedrive["cube"]
    fc = pipedrive["plan"].isel(month=slice(0, 3))
    as_of = pd.Timestamp(cube.attrs["as_of"])
    short = cube.sel(month=slice(as_of - pd.DateOffset(months=13), None))  # 14 months to as_of
    got = backtest.with_calibrated_bands(fc, short, FOLDS)
    assert "band_calibration" not in got.attrs and "band_scale" not in got.attrs
    assert pack_tables.band_statement(got) == (
        f"bands not calibrated: the 14 months of history up to {as_of:%Y-%m} leave no past "
        "origin with 3 months of actuals after it and 12 before it; the 10-90% bands are "
        "the models' own"
    )
    none = backtest.with_calibrated_bands(fc, cube, 0)
    assert pack_tables.band_statement(none) == (
        "bands not calibrated: band_calibration_folds is 0; the 10-90% bands are the models' own"
    )


def test_the_band_statement_warns_when_the_packs_paths_stopped_at_the_solvers_cap(
    pipedrive, monkeypatch
):
    """The pack's band is its own paths': when some of their non-negative solves stop at the
    iteration cap, the statement says so (the forecast command's warning, same words)."""
    plan = pipedrive["plan"]
    statement = pack_tables.band_statement(plan)
    exact = pack_tables.reconciled_paths(plan, "mint_shrink")
    assert exact.info["nonnegative_converged"]
    assert pack_tables.band_statement(plan, exact) == statement
    assert "warning" not in statement
    monkeypatch.setattr(rc, "NONNEGATIVE_MAX_ITER", 1)  # one step: paths with bounds stop short
    capped = pack_tables.reconciled_paths(plan, "mint_shrink")
    assert not capped.info["nonnegative_converged"]
    assert pack_tables.band_statement(plan, capped) == (
        f"{statement}; warning: the non-negative reconciliation stopped at its iteration cap "
        "for some months or sample paths; those are coherent and >= 0 but not the exact "
        "reconciled solution"
    )
    # without the pack's paths: what the forecast file states of its own
    assert pack_tables.band_statement(plan.assign_attrs(reconcile_converged=0)).endswith(
        "; warning: " + forecast.CAPPED_SOLVES
    )
