"""M3 monthly benchmark of revmodel's default automatic forecast.

1,428 monthly series, horizon 18, the last 18 values of each series held out
(Makridakis and Hibon 2000). Scores sMAPE [%] and MASE (seasonal, m = 12,
in-sample scale) [-] and the wall time per series [s] of:

- ``revmodel``: ``revmodel.forecast.forecast_series`` with default settings,
  the method ``forecast_cube`` uses, with its cross-series member fitted on
  every series' training part (``revmodel.forecast.fit_pooled``, as
  ``forecast_many`` does: no value after a series' forecast origin is used);
- ``autoets``, ``autotheta``: statsforecast's AutoETS and AutoTheta (numba;
  compilation is done on one series before timing and reported apart);
- ``sm_theta``: statsmodels' ThetaModel with its default seasonality test;
- ``dot``: statsforecast's DynamicOptimizedTheta (season 12);
- ``sf_ensemble``: the mean of statsforecast's AutoARIMA, AutoETS, AutoCES and
  DynamicOptimizedTheta (season 12), the strongest purely statistical
  combination published for M3/M4 by its authors.

Every method runs the same way: serially in one process (or, with
``--workers N``, over the same N-process pool), with BLAS threads pinned to 1,
one method after the other, so timings are comparable within a run. Other
jobs on the machine make absolute timings noisy.

``--validation`` drops the 18 test values and scores on the last 18 values of
the training part instead: use it for tuning, so the test set stays unseen.

Usage::

    python benchmarks/bench_forecast_m3.py [--limit N] [--workers N] [--validation]

The data file is :data:`revmodel.config.M3_PATH`: ``REVMODEL_M3_PATH``, else
``shared/data/m3-monthly/m3_monthly.csv`` beside the checkout.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from benchkit import write_result  # noqa: E402

HORIZON = 18
SEASON = 12
RESULTS = Path(__file__).resolve().parent / "results" / "bench_forecast_m3.json"
METHODS = ("revmodel", "autoets", "autotheta", "sm_theta", "dot", "sf_ensemble")


def load_m3(path: str | os.PathLike) -> list[np.ndarray]:
    """Every M3 monthly series as a float array, oldest first."""
    df = pd.read_csv(path)
    cols = [c for c in df.columns if c.isdigit()]
    values = df[cols].to_numpy(dtype=float)
    return [row[: int(n)] for row, n in zip(values, df["N"], strict=True)]


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE as in the M3 paper [%]."""
    return float(np.mean(200 * np.abs(actual - forecast) / (np.abs(actual) + np.abs(forecast))))


def mase(train: np.ndarray, actual: np.ndarray, forecast: np.ndarray, m: int = SEASON) -> float:
    """Mean absolute scaled error, scaled by the in-sample seasonal naive error [-]."""
    scale = np.mean(np.abs(train[m:] - train[:-m]))
    return float(np.mean(np.abs(actual - forecast)) / scale)


def _forecaster(method: str, pooled=None):
    warnings.filterwarnings("ignore")
    if method == "revmodel":
        from revmodel.forecast import forecast_series

        return lambda y: forecast_series(y, HORIZON, season_length=SEASON, pooled=pooled).mean
    if method == "sm_theta":
        from statsmodels.tsa.forecasting.theta import ThetaModel

        return lambda y: np.asarray(ThetaModel(y, period=SEASON).fit().forecast(HORIZON))
    from statsforecast.models import (
        AutoARIMA,
        AutoCES,
        AutoETS,
        AutoTheta,
        DynamicOptimizedTheta,
    )

    if method == "sf_ensemble":
        members = (AutoARIMA, AutoETS, AutoCES, DynamicOptimizedTheta)
        return lambda y: np.mean(
            [m(season_length=SEASON).forecast(y=y, h=HORIZON)["mean"] for m in members], axis=0
        )
    cls = {"autoets": AutoETS, "autotheta": AutoTheta, "dot": DynamicOptimizedTheta}[method]
    return lambda y: cls(season_length=SEASON).forecast(y=y, h=HORIZON)["mean"]


def _run(job: tuple) -> list[tuple[np.ndarray, float]]:
    method, series, pooled = job
    fit = _forecaster(method, pooled)
    out = []
    for y in series:
        t0 = time.perf_counter()
        try:
            f = np.asarray(fit(y), dtype=float)
        except Exception:  # noqa: BLE001 - a failed series is scored with a naive forecast
            f = np.full(HORIZON, y[-1])
        out.append((f, time.perf_counter() - t0))
    return out


def run_method(
    method: str, trains: list[np.ndarray], workers: int
) -> tuple[np.ndarray, float, float]:
    """Forecasts (n, h), wall seconds per series, and warm-up seconds.

    revmodel first fits its cross-series member on every training part
    (:func:`revmodel.forecast.fit_pooled`, as ``forecast_many`` does for a
    cube), in the parent process; that time is counted in its wall time.
    """
    t0 = time.perf_counter()
    _run((method, trains[:1], None))  # imports and numba compilation
    warm = time.perf_counter() - t0
    t_pool = 0.0
    pooled = None
    if method == "revmodel":
        from revmodel.forecast import fit_pooled

        t0 = time.perf_counter()
        pooled = fit_pooled(trains, HORIZON, SEASON)
        t_pool = time.perf_counter() - t0
    t0 = time.perf_counter()
    if workers <= 1:
        results = _run((method, trains, pooled))
    else:
        chunks = [trains[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            # warm each worker, then time the run
            list(pool.map(_run, [(method, trains[:1], None)] * workers))
            t0 = time.perf_counter()
            parts = list(pool.map(_run, [(method, c, pooled) for c in chunks]))
        results = [None] * len(trains)
        for i, part in enumerate(parts):
            for j, r in enumerate(part):
                results[i + j * workers] = r
    wall = time.perf_counter() - t0 + t_pool
    return np.stack([f for f, _ in results]), wall / len(trains), warm


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="first N series only (quick run)")
    p.add_argument(
        "--workers", type=int, default=1, help="processes per method (default 1: serial)"
    )
    p.add_argument("--validation", action="store_true", help="score on the last 18 training values")
    p.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset of " + ",".join(METHODS),
    )
    p.add_argument("--out", default=str(RESULTS), help="JSON results file")
    args = p.parse_args(argv)

    from revmodel import config

    path = str(config.M3_PATH)
    series = load_m3(path)
    if args.validation:
        series = [y[:-HORIZON] for y in series]
    if args.limit:
        series = series[: args.limit]
    trains = [y[:-HORIZON] for y in series]
    tests = [y[-HORIZON:] for y in series]

    result: dict = {
        "n_series": len(series),
        "horizon_months": HORIZON,
        "workers": args.workers,
        "validation": bool(args.validation),
        "load_average_1min_start": round(os.getloadavg()[0], 2),
    }
    rows = []
    for method in args.methods.split(","):
        fc, per_series, warm = run_method(method, trains, args.workers)
        s = float(np.mean([smape(a, f) for a, f in zip(tests, fc, strict=True)]))
        m = float(np.mean([mase(t, a, f) for t, a, f in zip(trains, tests, fc, strict=True)]))
        result.update(
            {
                f"{method}_smape": round(s, 3),
                f"{method}_mase": round(m, 4),
                f"{method}_seconds_per_series": round(per_series, 5),
                f"{method}_warmup_seconds": round(warm, 2),
            }
        )
        rows.append((method, s, m, per_series, warm))
        print(f"  done {method}: sMAPE {s:.2f}", flush=True)
    if "autoets_seconds_per_series" in result and "revmodel_seconds_per_series" in result:
        result["revmodel_time_ratio_to_autoets"] = round(
            result["revmodel_seconds_per_series"] / result["autoets_seconds_per_series"], 3
        )

    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    mode = "serial" if args.workers <= 1 else f"{args.workers} processes"
    split = "validation (last 18 training values)" if args.validation else "test (last 18 values)"
    print(f"\nM3 monthly, {len(series)} series, h={HORIZON}, {split}, every method {mode}")
    print(f"{'method':<12}{'sMAPE %':>10}{'MASE':>9}{'s/series':>11}{'warm-up s':>11}")
    for method, s, m, t, w in rows:
        print(f"{method:<12}{s:>10.2f}{m:>9.3f}{t:>11.4f}{w:>11.1f}")
    print("published best monthly sMAPE (Theta, M3 paper): 13.85")
    print(
        "timings: every method in the same run and the same processes; load average "
        f"{result['load_average_1min_start']} at the start, {result['load_average_1min_end']} at the end"
    )
    print(f"written to {write_result('bench_forecast_m3', result, args.out)}")
    return result


if __name__ == "__main__":
    main()
