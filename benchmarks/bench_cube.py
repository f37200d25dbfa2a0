"""Build the revenue cube from a large sample company and roll it up.

    .venv/bin/python benchmarks/bench_cube.py [--reps 2000] [--months 60]

Generates the sample (cached under benchmarks/data/), then, in a fresh process
so peak memory is the step's own: loads and validates the CSV exports, builds
the cube, and times a region x fiscal-quarter roll-up (median of 25). Prints a
table and writes benchmarks/results/bench_cube.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchkit import (
    measure_in_subprocess,
    median_ms,
    peak_memory_mb,
    print_table,
    stopwatch,
    write_result,
)

HERE = Path(__file__).resolve().parent


def _measure(data_dir: str) -> dict:
    import numpy as np

    from revmodel import sources
    from revmodel.cube import build_cube, rollup

    with stopwatch() as loading:
        loaded = sources.load(data_dir, quarantine_dir=str(Path(data_dir) / "quarantine"))
    rss_after_load = peak_memory_mb()
    with stopwatch() as building:
        ds = build_cube(loaded.tables)
    peak = peak_memory_mb()

    bookings = ds["bookings"]
    rollup_ms = median_ms(lambda: rollup(bookings, dims=("region",), period="fiscal_quarter"), 25)
    rollup_all_ms = median_ms(lambda: rollup(ds, dims=("region",), period="fiscal_quarter"), 5)
    chunked = ds.chunk({"rep": 250})
    dask_ms = median_ms(
        lambda: rollup(chunked["bookings"], dims=("region",), period="fiscal_quarter").compute(),
        5,
    )
    return {
        "opportunities": int(len(loaded.tables["opportunities"])),
        "reps": int(ds.sizes["rep"]),
        "segments": int(ds.sizes["segment"]),
        "regions": int(ds.sizes["region"]),
        "months": int(ds.sizes["month"]),
        "cells": int(np.prod([ds.sizes[d] for d in ("segment", "region", "rep", "month")])),
        "load_validate_seconds": round(loading.seconds, 3),
        "build_seconds": round(building.seconds, 3),
        "peak_memory_after_load_mb": round(rss_after_load, 1),
        "peak_memory_mb": round(peak, 1),
        "rollup_region_quarter_median_ms": round(rollup_ms, 2),
        "rollup_all_measures_region_quarter_median_ms": round(rollup_all_ms, 2),
        "rollup_region_quarter_dask_median_ms": round(dask_ms, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--months", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._measure:
        print(json.dumps(_measure(args._measure)))
        return

    data_dir = HERE / "data" / f"sample-{args.reps}x{args.months}-s{args.seed}"
    with stopwatch() as generating:
        if not (data_dir / "opportunities.csv").exists():
            from revmodel import sample

            tables = sample.generate(reps=args.reps, months=args.months, seed=args.seed)
            sample.write(tables, data_dir)
    result = measure_in_subprocess(__file__, "--_measure", str(data_dir))
    result["sample_generate_seconds"] = round(generating.seconds, 2)

    rows = [
        ("opportunities", f"{result['opportunities']:,}", ""),
        ("cube cells (seg x reg x rep x month)", f"{result['cells']:,}", ""),
        ("load + validate CSV exports", f"{result['load_validate_seconds']:.2f} s", ""),
        ("build cube", f"{result['build_seconds']:.2f} s", "aim < 10 s"),
        ("peak memory (load + build)", f"{result['peak_memory_mb']:,.0f} MB", "aim < 2,000 MB"),
        (
            "roll-up region x fiscal quarter (bookings)",
            f"{result['rollup_region_quarter_median_ms']:.1f} ms",
            "aim < 50 ms",
        ),
        (
            "roll-up region x fiscal quarter (all 9 measures)",
            f"{result['rollup_all_measures_region_quarter_median_ms']:.1f} ms",
            "",
        ),
        (
            "same roll-up, dask-backed (250 reps/chunk)",
            f"{result['rollup_region_quarter_dask_median_ms']:.1f} ms",
            "",
        ),
    ]
    print_table(f"bench_cube: {args.reps} reps x {args.months} months (seed {args.seed})", rows)
    write_result("bench_cube", result)


if __name__ == "__main__":
    main()
