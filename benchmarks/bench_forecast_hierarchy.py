"""Hierarchical accuracy of revmodel's reconciled forecast against AutoETS bottom-up.

On the sample company (default size), a rolling-origin backtest with the last
four fiscal quarters as origins and a one-quarter horizon (3 months) scores,
at every level of the hierarchy (total, region, segment, bottom cell):

- ``revmodel``: the default automatic forecast of every node, reconciled
  with MinT (shrunk covariance), the default of ``revmodel forecast``;
- ``autoets_bottom_up``: statsforecast's AutoETS (season 12) fitted to every
  bottom series (from its first non-zero month, forecasts clipped at 0, as
  revmodel clips a non-negative measure) and summed up;
- ``seasonal_naive``: the same month a year earlier, the floor.

Other reconciliation methods are scored too and written to the JSON. Prints a
table of WAPE by level and writes ``benchmarks/results/bench_forecast_hierarchy.json``.
Timings are wall-clock on a shared machine (noisy).

Usage::

    python benchmarks/bench_forecast_hierarchy.py
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from revmodel import backtest, cube, sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_forecast_hierarchy.json"
HORIZON = 3
FOLDS = 4
STEP = 3
LEVELS = ("total", "region", "segment", "bottom")
#: Reconciliation methods scored besides the default.
OTHER_METHODS = ("wls_struct", "wls_var", "ols", "bottom_up")


def autoets_bottom_up(history: xr.DataArray, horizon: int) -> xr.DataArray:
    """statsforecast AutoETS on every bottom cell with data; the backtest sums it up."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Naive

    values = np.nan_to_num(
        np.asarray(history.transpose("segment", "region", "rep", "month").values)
    )
    months = pd.DatetimeIndex(history["month"].values)
    cells = np.argwhere(np.any(values != 0, axis=-1))
    frames = []
    for k, (s, g, r) in enumerate(cells):
        y = values[s, g, r]
        first = int(np.argmax(y != 0))
        frames.append(pd.DataFrame({"unique_id": k, "ds": months[first:], "y": y[first:]}))
    df = pd.concat(frames, ignore_index=True)
    sf = StatsForecast(
        models=[AutoETS(season_length=12)], freq="MS", n_jobs=1, fallback_model=Naive()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=df, h=horizon)
    col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
    fc = fc.sort_values(["unique_id", "ds"])
    out = np.zeros((*values.shape[:3], horizon))
    pred = np.clip(fc[col].to_numpy(dtype=float).reshape(len(cells), horizon), 0, None)
    out[cells[:, 0], cells[:, 1], cells[:, 2]] = np.nan_to_num(pred)
    fmonths = pd.date_range(months[-1] + pd.offsets.MonthBegin(1), periods=horizon, freq="MS")
    coords = {d: history[d].values for d in ("segment", "region", "rep")}
    return xr.DataArray(
        out, dims=("segment", "region", "rep", "month"), coords={**coords, "month": fmonths.values}
    )


def main() -> dict:
    t0 = time.perf_counter()
    tables = sample.generate()
    ds = cube.build_cube(tables)
    models = {
        "revmodel": "reconciled",
        **{f"revmodel_{m}": f"reconciled:{m}" for m in OTHER_METHODS},
        "base": "base",
        "autoets_bottom_up": autoets_bottom_up,
        "seasonal_naive": "seasonal_naive",
    }
    with tempfile.TemporaryDirectory() as cache:
        res = backtest.rolling_origin(
            ds,
            HORIZON,
            folds=FOLDS,
            step=STEP,
            models=models,
            reconcile="mint_shrink",
            cache_dir=cache,
        )
    seconds = time.perf_counter() - t0
    table = backtest.summary_table(res)
    wape = table.pivot(index="level", columns="model", values="wape")
    out: dict = {
        "origins": ", ".join(f"{o:%Y-%m}" for o in res.origins),
        "horizon_months": HORIZON,
        "folds": FOLDS,
        "n_reps": int(ds.sizes["rep"]),
        "n_bottom_series": int(table.loc[table["level"] == "bottom", "nodes"].iloc[0]),
        "reconcile_method_used": ", ".join(
            sorted({str(i["method"]) for i in res.info["reconcile"] if i["method"]})
        ),
        "total_seconds": round(seconds, 1),
    }
    rows = []
    for level in LEVELS:
        row = {"level": level}
        for name in models:
            v = float(wape.loc[level, name])
            out[f"{level}_wape_{name}"] = round(v, 4)
            row[name] = v
        row["revmodel_wins"] = row["revmodel"] <= row["autoets_bottom_up"] + 1e-12
        out[f"{level}_revmodel_beats_autoets"] = bool(row["revmodel_wins"])
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("level")
    show = frame[["revmodel", "autoets_bottom_up", "seasonal_naive", "revmodel_wins"]].copy()
    print(
        f"Backtest on the sample company: origins {out['origins']}, {HORIZON} months ahead; WAPE by level"
    )
    for c in ("revmodel", "autoets_bottom_up", "seasonal_naive"):
        show[c] = show[c].map(lambda v: f"{v:.1%}")
    print(show.to_string())
    others = frame[[f"revmodel_{m}" for m in OTHER_METHODS] + ["base"]].map(lambda v: f"{v:.1%}")
    print("\nOther reconciliation methods (and unreconciled base forecasts), WAPE:")
    print(others.to_string())
    losses = [lv for lv in LEVELS if not frame.loc[lv, "revmodel_wins"]]
    if losses:
        print(
            f"\nrevmodel's reconciled forecast LOSES to AutoETS bottom-up at: {', '.join(losses)}"
        )
    else:
        print(
            "\nrevmodel's reconciled forecast is at least as accurate as AutoETS bottom-up at every level."
        )
    print(f"wall time {seconds:.0f} s (shared machine, noisy)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"Wrote {RESULTS}")
    return out


if __name__ == "__main__":
    main()
