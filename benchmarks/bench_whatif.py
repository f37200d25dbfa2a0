"""What-if recompute: change one assumption and recompute the whole plan.

    .venv/bin/python benchmarks/bench_whatif.py [--reps 2000] [--segments 5] [--regions 8] [--months 36] [--runs 30]

A synthetic cube of 2,000 reps x 5 segments x 8 regions with 36 months of
actuals; a 36-month plan. For each run one assumption changes (target growth,
churn, win rate, over-assignment, ramp, hires, in turn) and the whole plan is
recomputed: capacity, quotas, capacity gap and hires needed, retention, plan
KPIs and their region x fiscal-quarter roll-ups. Side by side: the same
recompute from the cube without a prepared context (what a naive what-if
does). Prints a table and writes benchmarks/results/bench_whatif.json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from benchkit import stopwatch, timings_of, write_result

from revmodel import calendar as fcal
from revmodel import scenario
from revmodel.assumptions import Assumptions, Hire
from revmodel.cube import MEASURES

HERE = Path(__file__).resolve().parent
SEGMENTS = ["SMB", "Mid-Market", "Enterprise", "Strategic", "Public Sector"]


def synthetic_cube(
    reps: int, segments: int, regions: int, months: int, seed: int = 0
) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    segs = SEGMENTS[:segments]
    regs = [f"Region {i + 1}" for i in range(regions)]
    month_index = pd.date_range("2023-11-01", periods=months + 12, freq="MS")
    as_of = month_index[months - 1]
    rs = rng.integers(0, segments, reps)
    rg = rng.integers(0, regions, reps)
    rep_idx = np.arange(reps)
    shape = (segments, regions, reps, len(month_index))
    season = 1 + 0.4 * (np.arange(len(month_index)) % 3 == 2)
    data = {name: np.zeros(shape) for name in MEASURES}
    data["bookings"][rs, rg, rep_idx, :] = (
        rng.gamma(2.0, 25_000.0, (reps, len(month_index))) * season
    )
    data["won"][rs, rg, rep_idx, :] = rng.poisson(3, (reps, len(month_index)))
    data["lost"][rs, rg, rep_idx, :] = rng.poisson(6, (reps, len(month_index)))
    new = rng.gamma(2.0, 8_000.0, (reps, len(month_index)))
    churn_rate = 0.06 / 12
    arr = np.zeros((reps, len(month_index)))
    level = rng.gamma(4.0, 150_000.0, reps)
    churned = np.zeros_like(arr)
    for m in range(len(month_index)):
        churned[:, m] = level * churn_rate
        level = level - churned[:, m] + new[:, m]
        arr[:, m] = level
    data["arr"][rs, rg, rep_idx, :] = arr
    data["new_arr"][rs, rg, rep_idx, :] = new * 0.6
    data["expansion_arr"][rs, rg, rep_idx, :] = new * 0.4
    data["churned_arr"][rs, rg, rep_idx, :] = churned
    data["pipeline"][rs, rg, rep_idx, :] = rng.gamma(2.0, 60_000.0, (reps, len(month_index)))
    future = month_index > as_of
    for name, m in MEASURES.items():
        if m.actual:
            data[name][..., future] = np.nan
    hire = pd.Timestamp("2017-01-01") + pd.to_timedelta(rng.integers(0, 365 * 9, reps), "D")
    cal = fcal.month_coords(month_index, 11, "end")
    return xr.Dataset(
        {
            n: (("segment", "region", "rep", "month"), data[n], {"units": m.units})
            for n, m in MEASURES.items()
        },
        coords={
            "segment": np.array(segs, dtype=object),
            "region": np.array(regs, dtype=object),
            "rep": np.array([f"R{i:05d}" for i in range(reps)], dtype=object),
            "month": month_index.values,
            "manager": (
                "rep",
                np.array(
                    [f"M{(r * 37) % max(reps // 8, 1):04d}" for r in range(reps)], dtype=object
                ),
            ),
            "rep_region": ("rep", np.array(regs, dtype=object)[rg]),
            "rep_segment": ("rep", np.array(segs, dtype=object)[rs]),
            "hire_date": ("rep", hire.values.astype("datetime64[ns]")),
            "end_date": ("rep", np.full(reps, np.datetime64("NaT"), dtype="datetime64[ns]")),
            "ramp_months": ("rep", np.full(reps, np.nan)),
            **{k: ("month", v.astype(object)) for k, v in cal.items()},
        },
        attrs={
            "fiscal_year_start": 11,
            "fiscal_year_naming": "end",
            "currency": "USD",
            "as_of": as_of.strftime("%Y-%m-%d"),
        },
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--segments", type=int, default=5)
    p.add_argument("--regions", type=int, default=8)
    p.add_argument("--months", type=int, default=36)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args()

    cube = synthetic_cube(args.reps, args.segments, args.regions, args.months)
    as_of = pd.Timestamp(cube.attrs["as_of"])
    plan_months = pd.date_range(as_of + pd.DateOffset(months=1), periods=36, freq="MS")
    plan_year = fcal.year_label(plan_months[:1], 11, "end")[0]
    hires = tuple(
        Hire(s, r, plan_months[2].strftime("%Y-%m"), 1)
        for s in SEGMENTS[: args.segments]
        for r in cube["region"].values[:4]
    )
    base = Assumptions(plan_year=plan_year, hires=hires)
    changes = [
        {"target_growth": 0.30},
        {"churn_rate": 0.08},
        {"win_rate_change": 0.05},
        {"over_assignment": 1.15},
        {
            "ramp_months": {
                "SMB": 2,
                "Mid-Market": 4,
                "Enterprise": 6,
                "Strategic": 8,
                "Public Sector": 9,
            }
        },
        {"hires": hires[:5]},
        {"productivity_change": -0.05},
    ]

    with stopwatch() as preparing:
        ctx = scenario.prepare(cube)
    prepare_ms = preparing.seconds * 1000
    scenario.plan(ctx, base, months=plan_months)  # warm-up
    cases = [base.with_changes(**changes[i % len(changes)]) for i in range(args.runs)]

    def timed(fn) -> list[float]:
        return [1000 * s for s in timings_of(fn, cases)]

    fast = timed(lambda a: scenario.plan(ctx, a, months=plan_months))
    naive = timed(lambda a: scenario.plan(cube, a, months=plan_months))[: max(5, args.runs // 3)]
    check = scenario.plan(ctx, base, months=plan_months)
    result = {
        "reps": args.reps,
        "segments": args.segments,
        "regions": args.regions,
        "history_months": args.months,
        "plan_months": len(plan_months),
        "cube_cells": int(np.prod(list(cube["bookings"].shape))),
        "prepare_ms": round(prepare_ms, 1),
        "recompute_median_ms": round(float(np.median(fast)), 2),
        "recompute_p90_ms": round(float(np.percentile(fast, 90)), 2),
        "recompute_from_cube_median_ms": round(float(np.median(naive)), 2),
        "plan_total_target_usd": round(float(check["total_target"]), 0),
        "plan_total_capacity_usd": round(float(check["total_capacity"]), 0),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    rows = [
        ("prepare context (once per cube)", f"{result['prepare_ms']:.0f} ms", ""),
        ("what-if recompute, median", f"{result['recompute_median_ms']:.1f} ms", "aim < 50 ms"),
        ("what-if recompute, p90", f"{result['recompute_p90_ms']:.1f} ms", ""),
        (
            "naive: recompute from the cube, median",
            f"{result['recompute_from_cube_median_ms']:.1f} ms",
            "peer",
        ),
    ]
    print(
        f"bench_whatif: {args.reps} reps x {args.segments} segments x {args.regions} regions x "
        f"{args.months} months of actuals, {len(plan_months)}-month plan, {args.runs} runs "
        f"(load average {result['load_average_1m']})"
    )
    w = max(len(r[0]) for r in rows)
    for name, fig, note in rows:
        print(f"{name:<{w}}  {fig:>10}  {note}")
    write_result("bench_whatif", result)


if __name__ == "__main__":
    main()
