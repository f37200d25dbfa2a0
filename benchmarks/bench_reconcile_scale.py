"""Non-negative ``mint_shrink`` with locks at 45,000 nodes: time and peak memory by case.

    nice -n 5 .venv/bin/python benchmarks/bench_reconcile_scale.py [--reps 20000] [--months 48]

A synthetic grouped hierarchy the shape of the ``bench_scale`` company (3 segments,
8 regions, ``--reps`` reps under reps/10 managers, each rep in one region selling in
about one segment in three: 20,000 reps give some 42,000 nodes and 20,000 bottom
series), base forecasts for 12 months that do not add up and ``--months`` months of
correlated residuals. Each case runs in its own Python process, so its peak resident
memory (``VmHWM``) is its own:

- ``mint_shrink``: non-negative MinT with the shrunk covariance held as diagonal plus
  rank T (:class:`revmodel.reconcile._LowRankProjection`), the total locked at 102 % of
  its base forecast and one region at its base forecast;
- ``mint_shrink_paths``: the same covariance on 1,200 right-hand sides (100 sample
  paths x 12 months; the sampled quantiles take 500), without the bound: the input and
  output are (n x 1,200) arrays, the solver's own working memory a few (n x 256) blocks;
- ``wls_var`` (the peer): the same non-negative problem with the residual variances
  alone (a diagonal ``W``, the sparse KKT system);
- ``quantiles`` (``--cases quantiles``): the sampled quantiles,
  :func:`revmodel.reconcile.sample_reconciled_by_month` with ``--paths`` paths a month
  drawn from p10/p50/p90 around the base forecasts (wide enough that some paths go below
  0), non-negative, the total locked at 102 % for the first three months; every path
  checked (coherence gap, minimum, locks).

Beside them, what the dense covariance would take (8 n^2 bytes). Writes
``benchmarks/results/bench_reconcile_scale.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from benchkit import (  # noqa: E402
    RESULTS,
    measure_in_subprocess,
    peak_memory_mb,
    print_table,
    write_result,
)

HORIZON = 12
PATHS = 100
CASES = ("mint_shrink", "mint_shrink_paths", "wls_var")
#: Sample paths a month of the ``quantiles`` case (``--paths``).
QUANTILE_PATHS = 20


def organisation(reps: int, months: int, seed: int = 7):
    """The hierarchy, base forecasts (n x 12), residuals (n x months) and the locks."""
    from revmodel import reconcile as rec

    rng = np.random.default_rng(seed)
    segments = np.array(["SMB", "Mid-Market", "Enterprise"])
    regions = np.array([f"G{i}" for i in range(8)])
    managers = np.array([f"M{i:04d}" for i in rng.integers(0, max(reps // 10, 1), reps)])
    region_of = rng.integers(0, regions.size, reps)
    keep = rng.random((reps, 3)) < 0.33
    keep[np.arange(reps), rng.integers(0, 3, reps)] = True  # every rep sells somewhere
    rep_i, seg_i = np.nonzero(keep)
    cells = np.column_stack([seg_i, region_of[rep_i], rep_i])
    names = np.array([f"r{i:05d}" for i in range(reps)])
    h = rec.hierarchy_from_cells(cells, segments, regions, names, managers)
    noise = np.sqrt(np.asarray(h.S.sum(1)))
    level = rng.gamma(1.5, 20_000.0, h.n_bottom)[:, None]
    y = rec.aggregate(h, level * rng.lognormal(0.0, 0.3, (h.n_bottom, HORIZON)))
    y = y + rng.normal(0.0, 3_000.0, y.shape) * noise
    common = rng.normal(0.0, 2_000.0, (1, months))  # a shock every series shares
    resid = rec.aggregate(h, rng.normal(0.0, 5_000.0, (h.n_bottom, months)) + common)
    resid = resid + rng.normal(0.0, 2_000.0, resid.shape) * noise
    region = h.tags["region"][0]
    locked = {0: y[0] * 1.02, int(region): y[region].copy()}
    return h, y, resid, locked


def run_quantiles(reps: int, months: int, paths: int) -> dict:
    """The ``quantiles`` case in this process: seconds, peak memory and the paths' checks."""
    from revmodel import reconcile as rec

    h, y, resid, _ = organisation(reps, months)
    spread = 0.5 * np.abs(y) + 1_000.0
    q = np.stack([y - spread, y, y + 1.3 * spread], axis=-1)
    locked = {0: np.where(np.arange(HORIZON) < 3, y[0] * 1.02, np.nan)}
    before = peak_memory_mb()
    t0 = time.perf_counter()
    out = rec.sample_reconciled_by_month(
        q,
        [0.1, 0.5, 0.9],
        h,
        residuals=resid,
        locked=locked,
        settings=rec.SampleSettings(n_samples=paths),
        keep_samples=False,
    )
    seconds = time.perf_counter() - t0
    checks = out.info["checks"]
    return {
        "nodes": h.n_nodes,
        "bottom_series": h.n_bottom,
        "columns": HORIZON * paths,
        "seconds": round(seconds, 2),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "inputs_memory_mb": round(before, 1),
        "covariance": str(out.info.get("covariance")),
        "nonnegative_iterations": out.info.get("nonnegative_iterations"),
        "coherence_gap_relative": checks["coherence_gap"],
        "min_usd": round(checks["min"], 3),
        "locks_exact": checks["locks_held"],
    }


def run_case(case: str, reps: int, months: int, paths: int = QUANTILE_PATHS) -> dict:
    """One case in this process: seconds, peak memory and what the result holds."""
    from revmodel import reconcile as rec

    if case == "quantiles":
        return run_quantiles(reps, months, paths)
    h, y, resid, locked = organisation(reps, months)
    before = peak_memory_mb()
    if case == "mint_shrink_paths":
        rng = np.random.default_rng(1)
        y = np.repeat(y, PATHS, axis=1)
        y *= rng.lognormal(0.0, 0.1, (1, HORIZON * PATHS))
        locked, nonnegative = None, False
    else:
        nonnegative = True
    method = "wls_var" if case == "wls_var" else "mint_shrink"
    t0 = time.perf_counter()
    out, info = rec.MinTrace(method, nonnegative=nonnegative).reconcile(
        y, h, residuals=resid, locked=locked
    )
    seconds = time.perf_counter() - t0
    peak = peak_memory_mb()  # before the checks below, which take memory of their own
    gap = max(
        float(np.abs(h.S @ out[h.bottom, c : c + 256] - out[:, c : c + 256]).max())
        for c in range(0, out.shape[1], 256)
    )
    held = all(np.array_equal(out[i], v) for i, v in (locked or {}).items())
    return {
        "nodes": h.n_nodes,
        "bottom_series": h.n_bottom,
        "columns": int(y.shape[1]),
        "seconds": round(seconds, 2),
        "peak_memory_mb": round(peak, 1),
        "inputs_memory_mb": round(before, 1),
        "covariance": str(info.get("covariance", "diagonal")),
        "factor_nnz": info.get("factor_nnz"),
        "nonnegative_iterations": info.get("nonnegative_iterations"),
        "coherence_gap_usd": round(gap, 6),
        "min_usd": round(float(out.min()), 3),
        "locks_exact": held,
    }


def main(
    reps: int, months: int, cases: tuple[str, ...] = CASES, paths: int = QUANTILE_PATHS
) -> dict:
    result: dict = {"reps": reps, "residual_months": months, "horizon_months": HORIZON}
    if cases != CASES:  # a run of some cases keeps the other cases' figures, its own prefixed
        out = RESULTS / "bench_reconcile_scale.json"
        kept = json.loads(out.read_text()) if out.exists() else {}
        own = {"reps": reps, "load_average_1min": round(os.getloadavg()[0], 2)}
        own["paths_per_month"] = paths
        result = {**kept, **{f"{c}_{k}": v for c in cases for k, v in own.items()}}
    for case in cases:
        figures = measure_in_subprocess(
            __file__,
            *("--_case", case, "--reps", str(reps), "--months", str(months)),
            *("--paths", str(paths)),
        )
        result.update({f"{case}_{k}": v for k, v in figures.items()})
    n = result[f"{cases[0]}_nodes"]
    if cases == CASES:
        result["nodes"] = n
        result["dense_covariance_mb_would_be"] = round(8 * n**2 / 1024**2, 1)
        result["load_average_1min"] = round(os.getloadavg()[0], 2)
    write_result("bench_reconcile_scale", result)
    rows = [
        (
            f"{case} ({result[f'{case}_columns']:,} columns)",
            f"{result[f'{case}_seconds']:.1f} s",
            f"peak {result[f'{case}_peak_memory_mb']:,.0f} MB",
        )
        for case in cases
    ]
    rows.append(("dense covariance would be", f"{round(8 * n**2 / 1024**2):,} MB", ""))
    load = result.get("load_average_1min", result.get(f"{cases[0]}_load_average_1min"))
    print_table(f"reconcile at {n:,} nodes (load average {load})", rows)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20_000)
    p.add_argument("--months", type=int, default=48)
    p.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {CASES + ('quantiles',)}"
    )
    p.add_argument("--paths", type=int, default=QUANTILE_PATHS, help="paths a month (quantiles)")
    p.add_argument("--_case", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._case:
        print(json.dumps(run_case(args._case, args.reps, args.months, args.paths)))
    else:
        main(args.reps, args.months, tuple(args.cases.split(",")), args.paths)
