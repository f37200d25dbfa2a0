"""Forecast accuracy and bands on exports in the shapes CRM and ERP tools produce.

The eight exports of ``tests/exports`` (a Salesforce report, HubSpot, Pipedrive, Dynamics
365, a European ERP file, an orders-only file, a billing system's subscriptions and a CRM
with its own stage names; 12 reps over about three years each, written by
``tests/exports/generate.py``) are taken as a user takes them: ``revmodel map``, the
draft completed where a person would have to (``tests/test_exports.complete``), then
loaded and built into a cube as ``revmodel cube`` does. Each cube is backtested from
``--folds`` origins ``--horizon`` months apart (with ``--calibration-folds`` more before
them, for the calibrated band), with AutoETS forecasts summed bottom-up and seasonal
naive beside it in the same run.

What such exports hold that the sample company does not: the first months of the
export ramp in (only the deals that closed within a sales cycle of its start), reps
whose months are often without a deal, and in some (the CRM with its own stage names,
the ERP file) reps who sell in every segment and region, so that most of a rep's
cells have no deal in most months.

Prints, per export and in total over them, at the total and the rep level: WAPE of
each model, and the share of actuals inside each band with its width relative to the
actuals (sum of upper - lower over sum of actuals), and writes
``benchmarks/results/bench_forecast_exports.json``.

Usage::

    python benchmarks/bench_forecast_exports.py [--horizon 3] [--folds 4] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_forecast_hierarchy import MODELS  # noqa: E402
from benchkit import write_result  # noqa: E402

from revmodel import backtest, cube, partitions  # noqa: E402
from revmodel.cli import main as cli  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_forecast_exports.json"
LEVELS = ("total", "rep")


def export_cube(case: str, root: Path):
    """The case's cube, from its files through map, the completed draft, load and build."""
    from tests.exports import generate
    from tests.test_exports import complete

    data = root / case
    data.mkdir(parents=True)
    files = [ROOT / "tests" / "exports" / case / f for f in generate.CASES[case].files]
    for f in files:
        shutil.copy(f, data / f.name)
    mapping = data / "mapping.yaml"
    report = io.StringIO()  # the draft's report (on stderr), not the benchmark's
    with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
        cli(["map", *(str(data / f.name) for f in files), "--out", str(mapping)])
    mapping.write_text(complete(mapping.read_text(encoding="utf-8"), case), encoding="utf-8")
    result = partitions.load(data, mapping=None, deal_cells=True)
    if result.status == 2:
        raise SystemExit(f"{case}: the export did not load:\n{result.summary()}")
    return cube.build_cube(result.tables, currency=result.currency)


def _rows(case: str, res: backtest.BacktestResult) -> list[dict]:
    s = res.scores[res.scores["level"].isin(LEVELS)]
    inside = backtest.cell_inside(
        s["actual"].to_numpy(), s["lower"].to_numpy(), s["upper"].to_numpy(),
        s["zero_inside"].to_numpy() if "zero_inside" in s else None,
    )  # fmt: skip
    s = s.assign(inside=inside, width=s["upper"] - s["lower"])
    rows = []
    for (level, model), g in s.groupby(["level", "model"]):
        banded = g["lower"].notna().all() and model != "autoets_bottom_up"
        rows.append(
            {
                "case": case,
                "level": level,
                "model": model,
                "actual": float(g["actual"].sum()),
                "abs_error": float((g["forecast"] - g["actual"]).abs().sum()),
                "inside": float(g["inside"].sum()) if banded else np.nan,
                "cells": len(g),
                "width": float(g["width"].sum()) if banded else np.nan,
            }
        )
    return rows


def _summary(rows: pd.DataFrame) -> pd.DataFrame:
    g = rows.groupby(["level", "model"])
    return pd.DataFrame(
        {
            "wape_pct": 100 * g["abs_error"].sum() / g["actual"].sum(),
            "coverage_pct": 100 * g["inside"].sum(min_count=1) / g["cells"].sum(),
            "width_to_actual": g["width"].sum(min_count=1) / g["actual"].sum(),
        }
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--horizon", type=int, default=3)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--calibration-folds", type=int, default=2)
    p.add_argument("--cases", default=None, help="comma-separated; default every export")
    p.add_argument("--cache-dir", default=None, help="forecast cache (default: a new one)")
    args = p.parse_args(argv)
    from tests.exports import generate

    cases = args.cases.split(",") if args.cases else list(generate.CASES)
    t0 = time.perf_counter()
    models = dict(MODELS)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            ds = export_cube(case, Path(tmp) / "data")
            res = backtest.rolling_origin(
                ds, args.horizon, folds=args.folds, step=args.horizon, models=models,
                cache_dir=args.cache_dir or Path(tmp) / "cache" / case,
                calibration_folds=args.calibration_folds,
            )  # fmt: skip
            rows += _rows(case, res)
            print(f"{case}: {ds.sizes['rep']} reps, origins "
                  + ", ".join(f"{o:%Y-%m}" for o in res.origins), flush=True)  # fmt: skip
    frame = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    per_case = frame.set_index(["level", "case"]).groupby(["level", "case", "model"]).apply(
        lambda g: pd.Series({"wape_pct": 100 * g["abs_error"].sum() / g["actual"].sum()})
    )["wape_pct"].unstack("model")[list(MODELS)]  # fmt: skip
    print(f"\nWAPE by export, {args.horizon} months ahead, {args.folds} origins (%):")
    print(per_case.round(1).to_string())
    total = _summary(frame)
    print("\nOver the exports (sums of errors, actuals, cells inside and band widths):")
    print(total.round(3).to_string())
    out: dict = {
        "cases": ", ".join(cases),
        "horizon_months": args.horizon,
        "folds_n": args.folds,
        "calibration_folds_n": args.calibration_folds,
    }
    for (level, model), r in total.iterrows():
        out[f"{level}_wape_pct_{model}"] = round(float(r["wape_pct"]), 2)
        if np.isfinite(r["coverage_pct"]):
            out[f"{level}_coverage_pct_{model}"] = round(float(r["coverage_pct"]), 1)
            out[f"{level}_band_width_to_actual_{model}"] = round(float(r["width_to_actual"]), 3)
    for (level, case), r in per_case.iterrows():
        for model in MODELS:
            out[f"{case}_{level}_wape_pct_{model}"] = round(float(r[model]), 2)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"\nwall time {out['seconds']:.0f} s")
    print(f"Wrote {write_result(RESULTS.stem, out, RESULTS)}")
    return out


if __name__ == "__main__":
    main()
